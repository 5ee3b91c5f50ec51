/* Bandwidth limits: the spec grammar (what it accepts and refuses), which
 * window is in force at given local times, the bucket's arithmetic with an
 * explicit clock, and a real take that sleeps and can be cancelled. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "util/error.h"
#include "util/ratelimit.h"

#define K 1024ull
#define M (1024ull * 1024)
#define NS 1000000000LL

enum { SUN, MON, TUE, WED, THU, FRI, SAT };

static unsigned hm(unsigned h, unsigned m)
{
  return h * 60 + m;
}

static void test_accept(void)
{
  struct ratelimit_spec s;
  check_int(ratelimit_spec_parse("10M", &s), ==, 0);
  check_int(s.rate, ==, 10 * M);
  check_int(s.nwindows, ==, 0);
  check_int(ratelimit_spec_parse("512K/s", &s), ==, 0);
  check_int(s.rate, ==, 512 * K);
  check_int(ratelimit_spec_parse("1.5m", &s), ==, 0);
  check_int(s.rate, ==, 3 * M / 2);
  check_int(ratelimit_spec_parse("2G", &s), ==, 0);
  check_int(s.rate, ==, 2048 * M);
  check_int(ratelimit_spec_parse("100000", &s), ==, 0);
  check_int(s.rate, ==, 100000);
  check_int(ratelimit_spec_parse("1T", &s), ==, 0);
  check_int(s.rate, ==, 1024 * 1024 * M);
  check_int(ratelimit_spec_parse("off", &s), ==, 0);
  check(ratelimit_spec_unlimited(&s));
  check_int(ratelimit_spec_parse("0", &s), ==, 0);
  check(ratelimit_spec_unlimited(&s));
  check_int(ratelimit_spec_parse("", &s), ==, 0);
  check(ratelimit_spec_unlimited(&s));
  check_int(ratelimit_spec_parse(NULL, &s), ==, 0);
  check(ratelimit_spec_unlimited(&s));

  check_int(ratelimit_spec_parse("10M,2M@mon-fri 08:00-18:00", &s), ==, 0);
  check_int(s.rate, ==, 10 * M);
  check_int(s.nwindows, ==, 1);
  check_int(s.windows[0].rate, ==, 2 * M);
  check_int(s.windows[0].days, ==, 0x3e); /* mon..fri */
  check_int(s.windows[0].start, ==, hm(8, 0));
  check_int(s.windows[0].end, ==, hm(18, 0));
  check(!ratelimit_spec_unlimited(&s));

  /* Spaces, case, several windows, a wrapping day range, + lists, daily. */
  check_int(ratelimit_spec_parse(" 10M , 2M @ Mon-Fri  08:00 - 18:00 , off@sat-sun 00:00-24:00 ,"
                                 "1M@fri-mon 12:30-13:30,4M@mon+wed+fri 20:00-21:00,"
                                 "512K@daily 22:00-06:00",
                                 &s),
            ==, 0);
  check_int(s.nwindows, ==, 5);
  check_int(s.windows[1].rate, ==, 0);
  check_int(s.windows[1].days, ==, (1u << SAT) | (1u << SUN));
  check_int(s.windows[1].end, ==, 1440);
  check_int(s.windows[2].days, ==, (1u << FRI) | (1u << SAT) | (1u << SUN) | (1u << MON));
  check_int(s.windows[3].days, ==, (1u << MON) | (1u << WED) | (1u << FRI));
  check_int(s.windows[4].days, ==, 0x7f);
  check_int(s.windows[4].start, ==, hm(22, 0));
  check_int(s.windows[4].end, ==, hm(6, 0));

  /* Only windows: unlimited outside them. */
  check_int(ratelimit_spec_parse("1M@mon 09:00-10:00", &s), ==, 0);
  check_int(s.rate, ==, 0);
  check(!ratelimit_spec_unlimited(&s));
}

/* s must be refused with a message that contains what. */
static void refused(const char *s, const char *what)
{
  struct ratelimit_spec spec;
  spec.rate = 12345;
  int r = ratelimit_spec_parse(s, &spec);
  check_int(r, ==, -1);
  if (r == -1) {
    check_int(get_errno(), ==, EINVAL);
    if (!strstr(get_error(), what)) {
      check_failed++;
      fprintf(stderr, "'%s': message '%s' lacks '%s'\n", s, get_error(), what);
    }
  }
}

static void test_refuse(void)
{
  refused("fast", "rate 'fast'");
  refused("10X", "rate '10X'");
  refused("-5M", "rate '-5M'");
  refused("10M/h", "rate '10M/h'");
  refused("M", "rate 'M'");
  refused("100", "at least 1K");
  refused("2T", "at most 1T");
  refused("99999999999999999999999", "rate");
  refused("10M,", "empty item");
  refused(",10M", "empty item");
  refused("10M,5M", "two default rates");
  refused("10M,2M@", "window");
  refused("10M,2M@mon-fri", "window");
  refused("10M,2M@08:00-18:00", "window");
  refused("10M,2M@mon,fri 08:00-18:00", "window 'mon'"); /* a comma ends the item */
  refused("10M,2M@monday 08:00-18:00", "days 'monday'");
  refused("10M,2M@mon-xyz 08:00-18:00", "days 'mon-xyz'");
  refused("10M,2M@mon+ 08:00-18:00", "days 'mon+'");
  refused("10M,2M@mon-fri 8:00-18:00", "time '8:00'");
  refused("10M,2M@mon-fri 08:00-25:00", "time '25:00'");
  refused("10M,2M@mon-fri 24:00-06:00", "time '24:00'");
  refused("10M,2M@mon-fri 08:60-18:00", "time '08:60'");
  refused("10M,2M@mon-fri 08:00-08:00", "different");
  refused("10M,2M@mon-fri 08:00", "window");
  refused("10M,bad@mon-fri 08:00-18:00", "rate 'bad'");
  /* A refused spec leaves *out unlimited, not half filled. */
  struct ratelimit_spec s;
  check_int(ratelimit_spec_parse("10M,2M@mon-fri 08:00-25:00", &s), ==, -1);
  check(ratelimit_spec_unlimited(&s));
  char many[1024] = "1M";
  for (int i = 0; i <= RATELIMIT_MAX_WINDOWS; i++)
    strcat(many, ",2M@mon 01:00-02:00");
  refused(many, "more than");
}

static void test_windows(void)
{
  struct ratelimit_spec s;
  check_int(ratelimit_spec_parse("10M,2M@mon-fri 08:00-18:00,512K@fri 22:00-06:00,off@sun "
                                 "12:00-13:00",
                                 &s),
            ==, 0);
  check_int(ratelimit_spec_rate_at(&s, MON, hm(7, 59)), ==, 10 * M);
  check_int(ratelimit_spec_rate_at(&s, MON, hm(8, 0)), ==, 2 * M);
  check_int(ratelimit_spec_rate_at(&s, WED, hm(12, 0)), ==, 2 * M);
  check_int(ratelimit_spec_rate_at(&s, FRI, hm(17, 59)), ==, 2 * M);
  check_int(ratelimit_spec_rate_at(&s, FRI, hm(18, 0)), ==, 10 * M); /* the end is excluded */
  check_int(ratelimit_spec_rate_at(&s, SAT, hm(12, 0)), ==, 10 * M);
  /* Across midnight: Friday evening and Saturday morning, not Friday morning. */
  check_int(ratelimit_spec_rate_at(&s, FRI, hm(22, 0)), ==, 512 * K);
  check_int(ratelimit_spec_rate_at(&s, FRI, hm(23, 59)), ==, 512 * K);
  check_int(ratelimit_spec_rate_at(&s, SAT, hm(0, 0)), ==, 512 * K);
  check_int(ratelimit_spec_rate_at(&s, SAT, hm(5, 59)), ==, 512 * K);
  check_int(ratelimit_spec_rate_at(&s, SAT, hm(6, 0)), ==, 10 * M);
  check_int(ratelimit_spec_rate_at(&s, FRI, hm(3, 0)), ==, 10 * M);
  /* An unlimited window inside a limited default. */
  check_int(ratelimit_spec_rate_at(&s, SUN, hm(12, 30)), ==, 0);
  check_int(ratelimit_spec_rate_at(&s, SUN, hm(13, 0)), ==, 10 * M);

  /* The first matching window wins; a daily window crossing midnight
   * covers Monday morning (it started on Sunday). */
  check_int(ratelimit_spec_parse("off,1M@mon 00:00-24:00,3M@daily 23:00-01:00", &s), ==, 0);
  check_int(ratelimit_spec_rate_at(&s, MON, hm(0, 30)), ==, 1 * M);
  check_int(ratelimit_spec_rate_at(&s, MON, hm(23, 30)), ==, 1 * M);
  check_int(ratelimit_spec_rate_at(&s, TUE, hm(0, 30)), ==, 3 * M);
  check_int(ratelimit_spec_rate_at(&s, SUN, hm(23, 30)), ==, 3 * M);
  check_int(ratelimit_spec_rate_at(&s, SUN, hm(22, 59)), ==, 0);

  /* Local time: 2024-01-01 (a Monday) 08:30 UTC, read with TZ=UTC, then in
   * a zone two hours ahead (so 10:30), then five hours behind (03:30). */
  check_int(ratelimit_spec_parse("10M,2M@mon-fri 08:00-10:00", &s), ==, 0);
  const int64_t t = 1704097800;
  setenv("TZ", "UTC", 1);
  tzset();
  check_int(ratelimit_spec_rate_local(&s, t), ==, 2 * M);
  setenv("TZ", "XXX-2", 1);
  tzset();
  check_int(ratelimit_spec_rate_local(&s, t), ==, 10 * M);
  setenv("TZ", "XXX+5", 1);
  tzset();
  check_int(ratelimit_spec_rate_local(&s, t), ==, 10 * M);
  check_int(ratelimit_spec_rate_local(&s, t + 5 * 3600), ==, 2 * M);
}

/* The bucket with an explicit clock. */
static void test_bucket(void)
{
  struct ratelimit_spec s = {.rate = 256 * K};
  struct ratelimit *rl = ratelimit_new("test", &s, NULL);
  check(rl != NULL);
  check_int(ratelimit_piece(rl), ==, 16 * K);
  check_int(ratelimit_piece(NULL), ==, SIZE_MAX);
  int64_t now = 1000 * NS;
  /* At 256 KiB/s the bucket holds 64 KiB (more than a tenth of the rate),
   * a quarter of a second: the first 64 KiB pass at once, then each 64 KiB
   * waits a quarter of a second more. */
  check_int(ratelimit_reserve(rl, 64 * K, 256 * K, now), ==, now);
  check_int(ratelimit_reserve(rl, 64 * K, 256 * K, now), ==, now + NS / 4);
  check_int(ratelimit_reserve(rl, 64 * K, 256 * K, now), ==, now + NS / 2);
  /* 1 MiB more, in whatever pieces, is released 4 s later. */
  int64_t last = 0;
  for (int i = 0; i < 64; i++)
    last = ratelimit_reserve(rl, 16 * K, 256 * K, now);
  check_int(last, ==, now + NS / 2 + 4 * NS);
  /* Idle time fills the bucket to its depth only: after 100 s idle, 64 KiB
   * pass at once, the next piece waits. */
  int64_t t = now + 100 * NS;
  check_int(ratelimit_reserve(rl, 64 * K, 256 * K, t), ==, t);
  check_int(ratelimit_reserve(rl, 16 * K, 256 * K, t), ==, t + NS / 16);

  /* At 1 MiB/s and more the depth is a tenth of a second. */
  t += 100 * NS;
  check_int(ratelimit_reserve(rl, 64 * K, 1 * M, t), ==, t);
  check_int(ratelimit_reserve(rl, 64 * K, 1 * M, t), ==, t + NS / 8 - NS / 10);
  t += 100 * NS;
  check_int(ratelimit_reserve(rl, 10 * M, 100 * M, t), ==, t);
  check_int(ratelimit_reserve(rl, 1 * M, 100 * M, t), ==, t + NS / 100);

  /* Over a long run of callers who come back as soon as they are let
   * through, the grant is the rate plus one bucket depth. */
  t += 100 * NS;
  uint64_t granted = 0;
  int64_t end = t + 20 * NS;
  for (int64_t at = t; at < end;) {
    int64_t r = ratelimit_reserve(rl, 4096, 1 * M, at);
    if (r < end)
      granted += 4096;
    at = r > at ? r : at;
  }
  check_int(granted, >=, 20 * M + M / 10 - 4096);
  check_int(granted, <=, 20 * M + M / 10 + 4096);

  /* A lower rate in force later (a window began) paces from then on. */
  t = end;
  int64_t r1 = ratelimit_reserve(rl, 64 * K, 128 * K, t);
  int64_t r2 = ratelimit_reserve(rl, 64 * K, 128 * K, t);
  check_int(r2 - r1, ==, NS / 2);

  /* Unlimited (rate 0) passes everything and carries no debt back. */
  t += 100 * NS;
  check_int(ratelimit_reserve(rl, 4ull << 30, 0, t), ==, t);
  check_int(ratelimit_reserve(rl, 64 * K, 1 * M, t), ==, t);
  ratelimit_free(rl);
  ratelimit_free(NULL);

  /* Low rates take small pieces: a 16th of the lowest rate, 1 to 64 KiB. */
  struct ratelimit_spec low;
  check_int(ratelimit_spec_parse("10M,160K@daily 01:00-02:00", &low), ==, 0);
  rl = ratelimit_new("low", &low, NULL);
  check_int(ratelimit_piece(rl), ==, 10 * K);
  ratelimit_free(rl);
  check_int(ratelimit_spec_parse("1K", &low), ==, 0);
  rl = ratelimit_new("low", &low, NULL);
  check_int(ratelimit_piece(rl), ==, 1 * K);
  ratelimit_free(rl);
  check_int(ratelimit_spec_parse("1G", &low), ==, 0);
  rl = ratelimit_new("high", &low, NULL);
  check_int(ratelimit_piece(rl), ==, 64 * K);
  ratelimit_free(rl);
}

static double elapsed(const struct timespec *a)
{
  struct timespec b;
  clock_gettime(CLOCK_MONOTONIC, &b);
  return (double)(b.tv_sec - a->tv_sec) + (double)(b.tv_nsec - a->tv_nsec) / 1e9;
}

struct taker {
  struct ratelimit *rl;
  int ret;
};

static void *take_4m(void *opaque)
{
  struct taker *tk = opaque;
  tk->ret = ratelimit_take(tk->rl, 4 * M);
  return NULL;
}

static void *raise_cancel(void *opaque)
{
  struct timespec ts = {0, 300 * 1000000L};
  nanosleep(&ts, NULL);
  *(_Atomic int *)opaque = 15;
  return NULL;
}

/* The real clock: 1.5 MiB at 1 MiB/s takes 1.4 s (the first tenth of a
 * second's worth passes at once); four threads share the rate, not
 * multiply it; a cancel raised during a long wait stops it within ~100 ms. */
static void test_take(void)
{
  struct ratelimit_spec s = {.rate = 1 * M};
  _Atomic int cancel = 0;
  struct ratelimit *rl = ratelimit_new("upload", &s, &cancel);
  struct timespec t0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  check_int(ratelimit_take(rl, 3 * M / 2), ==, 0);
  double secs = elapsed(&t0);
  check(secs > 1.35 && secs < 1.55);
  if (!(secs > 1.35 && secs < 1.55))
    fprintf(stderr, "1.5 MiB at 1 MiB/s took %.3f s\n", secs);
  check_int(ratelimit_take(NULL, 1ull << 40), ==, 0);
  ratelimit_free(rl);

  /* Four threads of 4 MiB each at 8 MiB/s: 2 s together, as one would. */
  s.rate = 8 * M;
  rl = ratelimit_new("upload", &s, &cancel);
  pthread_t th[4];
  struct taker tk[4];
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (int i = 0; i < 4; i++) {
    tk[i] = (struct taker){rl, 1};
    pthread_create(&th[i], NULL, take_4m, &tk[i]);
  }
  for (int i = 0; i < 4; i++) {
    pthread_join(th[i], NULL);
    check_int(tk[i].ret, ==, 0);
  }
  secs = elapsed(&t0); /* 16 MiB at 8 MiB/s, less the 0.1 s that pass at once */
  check(secs > 1.85 && secs < 2.05);
  if (!(secs > 1.85 && secs < 2.05))
    fprintf(stderr, "4 x 4 MiB at 8 MiB/s took %.3f s\n", secs);
  ratelimit_free(rl);

  /* 10 MiB at 1 MiB/s would take 10 s; cancel raised after 0.3 s. */
  s.rate = 1 * M;
  rl = ratelimit_new("upload", &s, &cancel);
  pthread_t canceller;
  pthread_create(&canceller, NULL, raise_cancel, &cancel);
  clock_gettime(CLOCK_MONOTONIC, &t0);
  check_int(ratelimit_take(rl, 10 * M), ==, -1);
  secs = elapsed(&t0);
  pthread_join(canceller, NULL);
  check_int(get_errno(), ==, ECANCELED);
  check(strstr(get_error(), "upload interrupted") != NULL);
  check(secs > 0.25 && secs < 0.5);
  ratelimit_free(rl);
}

int main(void)
{
  test_accept();
  test_refuse();
  test_windows();
  test_bucket();
  test_take();
  return check_summary();
}
