/* Unit tests for the changed-extent list parser. */
#include <string.h>

#include "check.h"
#include "source/extent-list.h"
#include "util/error.h"

static int parse(const char *text, uint64_t size, struct extent_list *l)
{
  memset(l, 0, sizeof *l);
  return extent_list_parse(l, text, strlen(text), size, "list");
}

int main(void)
{
  struct extent_list l;

  check_int(parse("", 100, &l), ==, 0);
  check_int(l.e.len, ==, 0);

  check_int(parse("  5   10\r\n\r\n\t0 5\n", 100, &l), ==, 0);
  check_int(l.e.len, ==, 1); /* adjacent extents merge */
  check_int(l.e.v[0].off, ==, 0);
  check_int(l.e.v[0].len, ==, 15);
  extent_list_free(&l);

  check_int(parse("50 10\n0 10\n55 20\n90 10", 100, &l), ==, 0); /* no final newline */
  check_int(l.e.len, ==, 3);
  check_int(l.e.v[1].off, ==, 50);
  check_int(l.e.v[1].len, ==, 25);
  check_int(l.e.v[2].off, ==, 90);
  extent_list_free(&l);

  check_int(parse("0 0\n", 100, &l), ==, 0); /* empty extents are dropped */
  check_int(l.e.len, ==, 0);

  check_int(parse("91 10\n", 100, &l), ==, -1);
  check(strstr(get_error(), "list:1:") != NULL);
  check(strstr(get_error(), "past the end") != NULL);
  check_int(parse("0 1\n-1 2\n", 100, &l), ==, -1);
  check(strstr(get_error(), "list:2: negative") != NULL);
  check_int(l.e.len, ==, 0); /* nothing kept on failure */
  check_int(parse("1\n", 100, &l), ==, -1);
  check_int(parse("1 2 3\n", 100, &l), ==, -1);
  check_int(parse("1x 2\n", 100, &l), ==, -1);
  check_int(parse("+1 2\n", 100, &l), ==, -1);
  check_int(parse("99999999999999999999 1\n", UINT64_MAX, &l), ==, -1);
  check(strstr(get_error(), "too large") != NULL);
  check_int(parse("18446744073709551615 1\n", UINT64_MAX, &l), ==, -1);
  check_int(parse("18446744073709551614 1\n", UINT64_MAX, &l), ==, 0);
  extent_list_free(&l);

  /* normalize directly */
  memset(&l, 0, sizeof l);
  extent_list_add(&l, 100, 10);
  extent_list_add(&l, 0, 200);
  extent_list_add(&l, 300, 1);
  extent_list_normalize(&l);
  check_int(l.e.len, ==, 2);
  check_int(l.e.v[0].len, ==, 200);
  extent_list_free(&l);
  return check_summary();
}
