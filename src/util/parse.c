/* Parsers of durations, byte counts and percentages (parse.h). */
#include "parse.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

int parse_duration(const char *s, int64_t *seconds)
{
  static const struct {
    const char *unit;
    int64_t mult;
  } units[] = {{"min", 60}, {"s", 1}, {"h", 3600}, {"d", 86400}, {"w", 604800}};
  int64_t total = 0;
  if (!s || !isdigit((unsigned char)*s))
    return -1;
  while (*s) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno == ERANGE || end == s)
      return -1;
    int64_t mult = 0;
    size_t ulen = 0;
    if (*end == 0 && total == 0) {
      mult = 1; /* a bare number: seconds */
    } else {
      for (size_t i = 0; i < sizeof units / sizeof *units && !mult; i++)
        if (strncmp(end, units[i].unit, strlen(units[i].unit)) == 0) {
          mult = units[i].mult;
          ulen = strlen(units[i].unit);
        }
    }
    if (!mult || v > (unsigned long long)(INT64_MAX / mult) ||
        total > INT64_MAX - (int64_t)v * mult)
      return -1;
    total += (int64_t)v * mult;
    s = end + ulen;
    if (*s && !isdigit((unsigned char)*s))
      return -1;
  }
  *seconds = total;
  return 0;
}

int parse_percent(const char *s, unsigned *out)
{
  char *end;
  errno = 0;
  if (!isdigit((unsigned char)*s))
    return -1;
  unsigned long v = strtoul(s, &end, 10);
  if (errno || v > 100 || (*end && !(end[0] == '%' && end[1] == 0)))
    return -1;
  *out = (unsigned)v;
  return 0;
}

int parse_size(const char *s, uint64_t *out)
{
  char *end;
  errno = 0;
  if (!s || !isdigit((unsigned char)*s))
    return -1;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno == ERANGE)
    return -1;
  unsigned shift = 0;
  switch (*end) {
  case 0:
    break;
  case 'k':
  case 'K':
    shift = 10;
    end++;
    break;
  case 'm':
  case 'M':
    shift = 20;
    end++;
    break;
  case 'g':
  case 'G':
    shift = 30;
    end++;
    break;
  case 't':
  case 'T':
    shift = 40;
    end++;
    break;
  default:
    return -1;
  }
  if (*end == 'i' && shift)
    end++;
  if ((*end == 'B' || *end == 'b') && shift)
    end++;
  if (*end || (shift && v > (UINT64_MAX >> shift)))
    return -1;
  *out = (uint64_t)v << shift;
  return 0;
}
