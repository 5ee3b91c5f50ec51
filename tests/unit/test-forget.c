/* Unit tests for the retention engine (src/core/forget.c) against a
 * reference table worked out by hand over a synthetic two-year history,
 * durations, and the forget record format. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "core/forget.h"
#include "core/format.h"

/* "YYYY-MM-DDTHH:MM:SS" with an optional ".F" (tenths), UTC. */
static void parse_time(const char *s, int64_t *t, uint32_t *ns)
{
  struct tm tm = {0};
  int tenths = 0;
  int n = sscanf(s, "%d-%d-%dT%d:%d:%d.%1d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                 &tm.tm_min, &tm.tm_sec, &tenths);
  if (n < 6) {
    fprintf(stderr, "bad time in the test table: %s\n", s);
    abort();
  }
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  *t = (int64_t)timegm(&tm);
  *ns = (uint32_t)tenths * 100000000u;
}

static int64_t at(const char *s)
{
  int64_t t;
  uint32_t ns;
  parse_time(s, &t, &ns);
  return t;
}

/* The history: one snapshot every 6 hours from 2024-01-01T00:00 to
 * 2025-12-31T18:00, and these irregular ones. */
static const char *const irregular[] = {
    "2024-02-29T23:59:59",                          /* leap day, its last hour */
    "2024-12-29T20:00:00",                          /* a Sunday: the last of ISO week 2024-W52 */
    "2025-03-30T01:30:00", "2025-12-30T12:00:00.5", /* half a second after a regular one */
    "2025-12-31T23:59:59",                          /* the latest */
};

struct history {
  struct snapshot *s;
  size_t n;
};

static void history_build(struct history *h)
{
  int64_t first = at("2024-01-01T00:00:00"), last = at("2025-12-31T18:00:00");
  size_t regular = (size_t)((last - first) / 21600 + 1);
  size_t nirr = sizeof irregular / sizeof *irregular;
  h->n = regular + nirr;
  h->s = calloc(h->n, sizeof *h->s);
  for (size_t i = 0; i < regular; i++)
    h->s[i].time = first + (int64_t)i * 21600;
  for (size_t i = 0; i < nirr; i++)
    parse_time(irregular[i], &h->s[regular + i].time, &h->s[regular + i].time_ns);
  for (size_t i = 0; i < h->n; i++)
    snprintf(h->s[i].id, sizeof h->s[i].id, "%064zx", i * 7919 % 100003);
}

/* One policy over the history up to `until` (inclusive; NULL: all of it).
 * expect lists every kept snapshot as "TIME RULES", newest first; or, for
 * the big sets, count and oldest give the number kept and the oldest. */
struct policy_case {
  const char *name;
  struct forget_policy p;
  const char *within; /* parsed into p.within */
  const char *until;
  const char *expect[12];
  size_t count;
  const char *oldest;
};

static const struct policy_case cases[] = {
    {"keep-last 3",
     {.last = 3},
     NULL,
     NULL,
     {"2025-12-31T23:59:59 latest,last", "2025-12-31T18:00:00 last", "2025-12-31T12:00:00 last"},
     0,
     NULL},
    {"keep-last 1", {.last = 1}, NULL, NULL, {"2025-12-31T23:59:59 latest,last"}, 0, NULL},
    {"keep-hourly 5",
     {.hourly = 5},
     NULL,
     NULL,
     {"2025-12-31T23:59:59 latest,hourly", "2025-12-31T18:00:00 hourly",
      "2025-12-31T12:00:00 hourly", "2025-12-31T06:00:00 hourly", "2025-12-31T00:00:00 hourly"},
     0,
     NULL},
    /* 2025-12-30 12:00:00.5 is not the newest of its day. */
    {"keep-daily 7",
     {.daily = 7},
     NULL,
     NULL,
     {"2025-12-31T23:59:59 latest,daily", "2025-12-30T18:00:00 daily", "2025-12-29T18:00:00 daily",
      "2025-12-28T18:00:00 daily", "2025-12-27T18:00:00 daily", "2025-12-26T18:00:00 daily",
      "2025-12-25T18:00:00 daily"},
     0,
     NULL},
    /* 2025-12-31 is a Wednesday in ISO week 2026-W01 (Monday 12-29 to
     * Sunday 2026-01-04); each earlier week ends on a Sunday. */
    {"keep-weekly 4",
     {.weekly = 4},
     NULL,
     NULL,
     {"2025-12-31T23:59:59 latest,weekly", "2025-12-28T18:00:00 weekly",
      "2025-12-21T18:00:00 weekly", "2025-12-14T18:00:00 weekly"},
     0,
     NULL},
    {"keep-monthly 3",
     {.monthly = 3},
     NULL,
     NULL,
     {"2025-12-31T23:59:59 latest,monthly", "2025-11-30T18:00:00 monthly",
      "2025-10-31T18:00:00 monthly"},
     0,
     NULL},
    /* Two years only: five are asked for, two exist. */
    {"keep-yearly 5",
     {.yearly = 5},
     NULL,
     NULL,
     {"2025-12-31T23:59:59 latest,yearly", "2024-12-31T18:00:00 yearly"},
     0,
     NULL},
    /* Within two days of the latest (not of now): after 2025-12-29T23:59:59. */
    {"keep-within 2d",
     {0},
     "2d",
     NULL,
     {"2025-12-31T23:59:59 latest,within", "2025-12-31T18:00:00 within",
      "2025-12-31T12:00:00 within", "2025-12-31T06:00:00 within", "2025-12-31T00:00:00 within",
      "2025-12-30T18:00:00 within", "2025-12-30T12:00:00.5 within", "2025-12-30T12:00:00 within",
      "2025-12-30T06:00:00 within", "2025-12-30T00:00:00 within"},
     0,
     NULL},
    {"keep-within 1d12h",
     {0},
     "1d12h",
     NULL,
     {"2025-12-31T23:59:59 latest,within", "2025-12-31T18:00:00 within",
      "2025-12-31T12:00:00 within", "2025-12-31T06:00:00 within", "2025-12-31T00:00:00 within",
      "2025-12-30T18:00:00 within", "2025-12-30T12:00:00.5 within", "2025-12-30T12:00:00 within"},
     0,
     NULL},
    /* Grandfather-father-son. */
    {"daily 3 weekly 3 monthly 2 yearly 2",
     {.daily = 3, .weekly = 3, .monthly = 2, .yearly = 2},
     NULL,
     NULL,
     {"2025-12-31T23:59:59 latest,daily,weekly,monthly,yearly", "2025-12-30T18:00:00 daily",
      "2025-12-29T18:00:00 daily", "2025-12-28T18:00:00 weekly", "2025-12-21T18:00:00 weekly",
      "2025-11-30T18:00:00 monthly", "2024-12-31T18:00:00 yearly"},
     0,
     NULL},
    /* ISO week-years: 2024-12-30 and 31 belong to 2025-W01, with
     * 2025-01-01; the Sunday before ends 2024-W52. */
    {"weekly 2 monthly 2 yearly 2 up to 2025-01-01",
     {.weekly = 2, .monthly = 2, .yearly = 2},
     NULL,
     "2025-01-01T00:00:00",
     {"2025-01-01T00:00:00 latest,weekly,monthly,yearly", "2024-12-31T18:00:00 monthly,yearly",
      "2024-12-29T20:00:00 weekly"},
     0,
     NULL},
    {"hourly 3 daily 2 up to 2024-03-01 (leap day)",
     {.hourly = 3, .daily = 2},
     NULL,
     "2024-03-01T00:00:00",
     {"2024-03-01T00:00:00 latest,hourly,daily", "2024-02-29T23:59:59 hourly,daily",
      "2024-02-29T18:00:00 hourly"},
     0,
     NULL},
    {"hourly 3 up to 2025-03-30T05:00",
     {.hourly = 3},
     NULL,
     "2025-03-30T05:00:00",
     {"2025-03-30T01:30:00 latest,hourly", "2025-03-30T00:00:00 hourly",
      "2025-03-29T18:00:00 hourly"},
     0,
     NULL},
    /* One month before 2024-03-31 is "February 31", which rolls over to
     * March 2 (2024 is a leap year); kept: everything after 2024-03-02T00:00,
     * 3 that day, 4 a day from March 3 to 30, and the latest. */
    {"keep-within 1m up to 2024-03-31",
     {0},
     "1m",
     "2024-03-31T00:00:00",
     {NULL},
     3 + 28 * 4 + 1,
     "2024-03-02T06:00:00"},
    {"keep-within 1mo up to 2024-03-31",
     {0},
     "1mo",
     "2024-03-31T00:00:00",
     {NULL},
     3 + 28 * 4 + 1,
     "2024-03-02T06:00:00"},
    /* Daily over the whole history: one per day, 731 days. */
    {"keep-daily 1000", {.daily = 1000}, NULL, NULL, {NULL}, 731, "2024-01-01T18:00:00"},
};

/* "TIME RULES" for a kept snapshot, as the table writes it. */
static void describe(const struct snapshot *s, unsigned keep, char *buf, size_t n)
{
  time_t t = (time_t)s->time;
  struct tm tm;
  size_t len;
  gmtime_r(&t, &tm);
  len = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
  if (s->time_ns)
    len += (size_t)snprintf(buf + len, n - len, ".%u", s->time_ns / 100000000u);
  for (unsigned i = 0, first = 1; i < FORGET_RULES; i++) {
    if (!(keep & (1u << i)))
      continue;
    len += (size_t)snprintf(buf + len, n - len, "%s%s", first ? " " : ",", forget_rule_name(i));
    first = 0;
  }
}

static int cmp_desc_time(const void *a, const void *b)
{
  const struct snapshot *x = *(struct snapshot *const *)a, *y = *(struct snapshot *const *)b;
  if (x->time != y->time)
    return x->time > y->time ? -1 : 1;
  return x->time_ns > y->time_ns ? -1 : x->time_ns < y->time_ns;
}

static void run_case(const struct history *h, const struct policy_case *c)
{
  struct forget_policy p = c->p;
  struct snapshot **in = calloc(h->n, sizeof *in), **kept = calloc(h->n, sizeof *kept);
  unsigned *keep = calloc(h->n, sizeof *keep), *kept_bits = calloc(h->n, sizeof *kept_bits);
  int64_t until = c->until ? at(c->until) : INT64_MAX;
  size_t n = 0, nk = 0;
  char got[256];
  fprintf(stderr, "case: %s\n", c->name);
  if (c->within)
    check_int(forget_duration_parse(c->within, &p.within), ==, 0);
  /* Handed over in a scrambled order: the engine sorts for itself. */
  for (size_t i = 0; i < h->n; i++) {
    const struct snapshot *s = &h->s[(i * 1009) % h->n];
    if (s->time <= until)
      in[n++] = (struct snapshot *)s;
  }
  check_int(forget_policy_apply(&p, in, n, keep), ==, 0);
  for (size_t i = 0; i < n; i++)
    if (keep[i])
      kept[nk++] = in[i];
  qsort(kept, nk, sizeof *kept, cmp_desc_time);
  for (size_t i = 0; i < nk; i++)
    for (size_t j = 0; j < n; j++)
      if (in[j] == kept[i])
        kept_bits[i] = keep[j];
  if (c->oldest) {
    check_int(nk, ==, c->count);
    if (nk > 0) {
      describe(kept[nk - 1], 0, got, sizeof got);
      check_str(got, c->oldest);
      /* The latest is kept, and says so. */
      check(kept_bits[0] & FORGET_LATEST);
    }
  } else {
    size_t want = 0;
    while (want < sizeof c->expect / sizeof *c->expect && c->expect[want])
      want++;
    check_int(nk, ==, want);
    for (size_t i = 0; i < nk && i < want; i++) {
      describe(kept[i], kept_bits[i], got, sizeof got);
      check_str(got, c->expect[i]);
    }
  }
  free(in);
  free(kept);
  free(keep);
  free(kept_bits);
}

static void test_durations(void)
{
  struct forget_duration d;
  check_int(forget_duration_parse("2y5m7d3h", &d), ==, 0);
  check(d.years == 2 && d.months == 5 && d.days == 7 && d.seconds == 3 * 3600);
  check_int(forget_duration_parse("1mo", &d), ==, 0);
  check(d.years == 0 && d.months == 1 && d.days == 0 && d.seconds == 0);
  check_int(forget_duration_parse("90min", &d), ==, 0);
  check(d.months == 0 && d.seconds == 5400);
  check_int(forget_duration_parse("2w1d", &d), ==, 0);
  check(d.days == 15);
  check_int(forget_duration_parse("1h30s", &d), ==, 0);
  check(d.seconds == 3630);
  const char *bad[] = {"", "15", "m", "1x", "0d", "-1d", "1.5h", "1d 2h", "1D", "9999999d", "d1"};
  for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
    check_int(forget_duration_parse(bad[i], &d), ==, -1);

  /* Calendar arithmetic, rolling over as restic (Go's AddDate) does. */
  struct {
    const char *from, *dur, *want;
  } before[] = {
      {"2025-03-31T00:00:00", "1m", "2025-03-03T00:00:00"},
      {"2024-03-31T00:00:00", "1m", "2024-03-02T00:00:00"},
      {"2024-02-29T12:00:00", "1y", "2023-03-01T12:00:00"},
      {"2025-01-01T00:30:00", "1h", "2024-12-31T23:30:00"},
      {"2025-01-15T00:00:00", "13m", "2023-12-15T00:00:00"},
      {"2025-12-31T23:59:59", "2y5m7d3h", "2023-07-24T20:59:59"},
      {"1970-01-01T00:00:00", "1d", "1969-12-31T00:00:00"},
  };
  for (size_t i = 0; i < sizeof before / sizeof *before; i++) {
    check_int(forget_duration_parse(before[i].dur, &d), ==, 0);
    check_int(forget_duration_before(at(before[i].from), &d), ==, at(before[i].want));
  }
}

static void test_edges(void)
{
  struct forget_policy empty = {0}, daily = {.daily = 2};
  struct snapshot s[3] = {0};
  struct snapshot *in[3] = {&s[0], &s[1], &s[2]};
  unsigned keep[3];
  check_int(forget_policy_empty(&empty), ==, 1);
  check_int(forget_policy_apply(&empty, in, 3, keep), ==, -1);
  check_int(forget_policy_apply(&daily, in, 0, keep), ==, 0);
  /* Before 1970: the day of -1 s is 1969-12-31. */
  s[0].time = -7200;
  s[1].time = -3600;
  s[2].time = 0;
  for (int i = 0; i < 3; i++)
    snprintf(s[i].id, sizeof s[i].id, "%064d", i);
  check_int(forget_policy_apply(&daily, in, 3, keep), ==, 0);
  check_int(keep[0], ==, 0);
  check_int(keep[1], ==, FORGET_DAILY);
  check_int(keep[2], ==, FORGET_LATEST | FORGET_DAILY);
  /* Equal times: the greater id is the newer (the repository's order). */
  s[0].time = s[1].time = s[2].time = 1000;
  struct forget_policy last = {.last = 1};
  check_int(forget_policy_apply(&last, in, 3, keep), ==, 0);
  check_int(keep[2], ==, FORGET_LATEST | FORGET_LAST);
  check_int(keep[0] | keep[1], ==, 0);
}

static void test_record(void)
{
  struct forget_record rec = {.time = 1767225599, .host = "dr host%1"}, back;
  struct forget_record_entry e[2] = {{.disk = "vm", .time = 5}, {.disk = "d b", .time = 0}};
  memset(e[0].id, 'a', 2 * HASH_LEN);
  memset(e[1].id, '0', 2 * HASH_LEN);
  rec.e.v = e;
  rec.e.len = 2;
  char *t = forget_record_encode(&rec);
  check(t != NULL);
  check(strstr(t, "host=dr%20host%251\n") != NULL);
  check(strstr(t, "\nsnapshot=0000000000000000000000000000000000000000000000000000000000000000 "
                  "d%20b 0\n") != NULL);
  check_int(forget_record_decode(t, strlen(t), &back), ==, 0);
  check_int(back.time, ==, rec.time);
  check_str(back.host, "dr host%1");
  check_int(back.e.len, ==, 2);
  check_str(back.e.v[1].disk, "d b");
  check_str(back.e.v[0].id, e[0].id);
  check_int(back.e.v[0].time, ==, 5);
  forget_record_clear(&back);
  /* Truncated, an extra line, a wrong count, a bad id: all refused. */
  size_t len = strlen(t);
  check_int(forget_record_decode(t, len - 1, &back), ==, -1);
  char *longer = malloc(len + 8);
  memcpy(longer, t, len);
  memcpy(longer + len, "x=1\n", 5);
  check_int(forget_record_decode(longer, len + 4, &back), ==, -1);
  char *p = strstr(t, "snapshots=2");
  p[10] = '3';
  check_int(forget_record_decode(t, len, &back), ==, -1);
  p[10] = '2';
  p = strstr(t, "snapshot=a");
  p[9] = 'g';
  check_int(forget_record_decode(t, len, &back), ==, -1);
  /* Raw bytes the encoder would have escaped (found by the fuzzer: a NUL
   * in a disk name decoded to an empty name). */
  static const char raw_nul[] = "pilotlight-forgotten=1\ntime=1\nhost=h\nsnapshots=1\nsnapshot="
                                "0000000000000000000000000000000000000000000000000000000000000000"
                                " \0vm 1\nend=\n";
  check_int(forget_record_decode(raw_nul, sizeof raw_nul - 1, &back), ==, -1);
  static const char raw_space[] = "pilotlight-forgotten=1\ntime=1\nhost=a b\nsnapshots=0\nend=\n";
  check_int(forget_record_decode(raw_space, sizeof raw_space - 1, &back), ==, -1);
  free(longer);
  free(t);
}

int main(void)
{
  struct history h;
  history_build(&h);
  check_int(h.n, ==, 731 * 4 + 5);
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
    run_case(&h, &cases[i]);
  free(h.s);
  test_durations();
  test_edges();
  test_record();
  return check_summary();
}
