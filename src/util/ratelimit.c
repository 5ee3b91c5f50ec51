/* Bandwidth limits: the spec grammar of ratelimit.h and a token bucket kept
 * as a virtual time (GCRA): each reservation moves the time at which every
 * byte granted so far is paid for, and a caller waits until that time less
 * the bucket's depth. Threads queue in the order they reserve, so several
 * transfers share the rate evenly and the total never runs ahead of it. */
#define _GNU_SOURCE
#include "ratelimit.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "error.h"
#include "vec.h"

#define NS 1000000000LL
#define PIECE_MAX (64u << 10)
#define PIECE_MIN 1024u
#define BURST_MIN (64u << 10)
#define SLEEP_SLICE_NS (100 * 1000000LL) /* how often a waiting take looks at cancel */

/* ---- the spec ---------------------------------------------------------- */

static const char *const day_names[7] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

static const char *skip_space(const char *p, const char *end)
{
  while (p < end && isspace((unsigned char)*p))
    p++;
  return p;
}

static const char *trim_end(const char *p, const char *end)
{
  while (end > p && isspace((unsigned char)end[-1]))
    end--;
  return end;
}

static int bad(const char *what, const char *p, const char *end, const char *expected)
{
  set_error_code(EINVAL, "%s '%.*s': expected %s", what, (int)(end - p), p, expected);
  return -1;
}

#define RATE_MAX (1ull << 40)
#define RATE_FORM "bytes per second such as 10M, 512K/s, 1.5G or off"

/* RATE in [p, end). */
static int parse_rate(const char *p, const char *end, uint64_t *out)
{
  const char *s = p;
  if (end - p == 3 && strncasecmp(p, "off", 3) == 0) {
    *out = 0;
    return 0;
  }
  uint64_t whole = 0, frac = 0, frac_div = 1;
  int digits = 0;
  for (; p < end && isdigit((unsigned char)*p); p++, digits++) {
    if (whole > (UINT64_MAX - 9) / 10)
      return bad("rate", s, end, RATE_FORM);
    whole = whole * 10 + (uint64_t)(*p - '0');
  }
  if (p < end && *p == '.') {
    p++;
    for (; p < end && isdigit((unsigned char)*p); p++, digits++)
      if (frac_div < 1000000000u) {
        frac = frac * 10 + (uint64_t)(*p - '0');
        frac_div *= 10;
      }
  }
  if (!digits)
    return bad("rate", s, end, RATE_FORM);
  uint64_t mult = 1;
  if (p < end) {
    switch (tolower((unsigned char)*p)) {
    case 'k':
      mult = 1ull << 10;
      p++;
      break;
    case 'm':
      mult = 1ull << 20;
      p++;
      break;
    case 'g':
      mult = 1ull << 30;
      p++;
      break;
    case 't':
      mult = 1ull << 40;
      p++;
      break;
    default:
      break;
    }
  }
  if (end - p == 2 && strncasecmp(p, "/s", 2) == 0)
    p += 2;
  if (p != end)
    return bad("rate", s, end, RATE_FORM);
  if (whole > RATE_MAX / mult)
    return bad("rate", s, end, "at most 1T (1 TiB per second)");
  uint64_t v = whole * mult + frac * mult / frac_div;
  if (v > RATE_MAX)
    return bad("rate", s, end, "at most 1T (1 TiB per second)");
  if (v > 0 && v < RATELIMIT_MIN_RATE)
    return bad("rate", s, end, "0 (off) or at least 1K (1024 bytes per second)");
  *out = v;
  return 0;
}

static int day_index(const char *p, const char *end)
{
  if (end - p != 3)
    return -1;
  for (int d = 0; d < 7; d++)
    if (strncasecmp(p, day_names[d], 3) == 0)
      return d;
  return -1;
}

#define DAYS_FORM "days such as mon-fri, sat-sun, mon, mon+wed+fri or daily"

/* DAYS in [p, end) into a bit set of tm_wday values. */
static int parse_days(const char *p, const char *end, unsigned *out)
{
  if (end - p == 5 && strncasecmp(p, "daily", 5) == 0) {
    *out = 0x7f;
    return 0;
  }
  const char *dash = memchr(p, '-', (size_t)(end - p));
  if (dash) {
    int a = day_index(p, dash), b = day_index(dash + 1, end);
    if (a < 0 || b < 0)
      return bad("days", p, end, DAYS_FORM);
    unsigned set = 0;
    for (int d = a;; d = (d + 1) % 7) { /* fri-mon wraps over the weekend */
      set |= 1u << d;
      if (d == b)
        break;
    }
    *out = set;
    return 0;
  }
  unsigned set = 0;
  const char *q = p;
  while (q <= end) {
    const char *plus = memchr(q, '+', (size_t)(end - q));
    const char *e = plus ? plus : end;
    int d = day_index(q, e);
    if (d < 0)
      return bad("days", p, end, DAYS_FORM);
    set |= 1u << d;
    q = e + 1;
    if (!plus)
      break;
  }
  *out = set;
  return 0;
}

/* HH:MM in [p, end) as minutes; 24:00 only when allow_24. */
static int parse_clock(const char *p, const char *end, int allow_24, unsigned *out)
{
  if (end - p != 5 || !isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1]) ||
      p[2] != ':' || !isdigit((unsigned char)p[3]) || !isdigit((unsigned char)p[4]))
    return bad("time", p, end, "HH:MM, 00:00 to 23:59 (24:00 as an end)");
  unsigned h = (unsigned)(p[0] - '0') * 10 + (unsigned)(p[1] - '0');
  unsigned m = (unsigned)(p[3] - '0') * 10 + (unsigned)(p[4] - '0');
  if (m > 59 || h > 24 || (h == 24 && (m != 0 || !allow_24)))
    return bad("time", p, end, "HH:MM, 00:00 to 23:59 (24:00 as an end)");
  *out = h * 60 + m;
  return 0;
}

#define WINDOW_FORM "RATE@DAYS HH:MM-HH:MM such as 2M@mon-fri 08:00-18:00"

/* "DAYS HH:MM-HH:MM" in [p, end) into w (its rate already set). */
static int parse_when(const char *p, const char *end, struct ratelimit_window *w)
{
  const char *sp = p;
  while (sp < end && !isspace((unsigned char)*sp))
    sp++;
  if (sp == end)
    return bad("window", p, end, WINDOW_FORM);
  if (parse_days(p, sp, &w->days) == -1)
    return -1;
  const char *t = skip_space(sp, end);
  const char *dash = memchr(t, '-', (size_t)(end - t));
  if (!dash)
    return bad("window", p, end, WINDOW_FORM);
  if (parse_clock(t, trim_end(t, dash), 0, &w->start) == -1 ||
      parse_clock(skip_space(dash + 1, end), end, 1, &w->end) == -1)
    return -1;
  if (w->start == w->end)
    return bad("window", p, end, "a start time different from the end time");
  return 0;
}

int ratelimit_spec_parse(const char *s, struct ratelimit_spec *out)
{
  struct ratelimit_spec spec;
  int have_default = 0;
  memset(&spec, 0, sizeof spec);
  memset(out, 0, sizeof *out);
  if (!s)
    return 0;
  const char *end_all = s + strlen(s);
  if (skip_space(s, end_all) == end_all)
    return 0;
  for (const char *p = s; p <= end_all;) {
    const char *comma = memchr(p, ',', (size_t)(end_all - p));
    const char *e = comma ? comma : end_all;
    const char *a = skip_space(p, e), *b = trim_end(a, e);
    if (a == b) {
      set_error_code(EINVAL, "'%s': an empty item between commas: expected RATE or %s", s,
                     WINDOW_FORM);
      return -1;
    }
    const char *at = memchr(a, '@', (size_t)(b - a));
    uint64_t rate;
    if (parse_rate(a, at ? trim_end(a, at) : b, &rate) == -1)
      return -1;
    if (!at) {
      if (have_default) {
        set_error_code(EINVAL, "'%s': two default rates: give one RATE and windows as %s", s,
                       WINDOW_FORM);
        return -1;
      }
      have_default = 1;
      spec.rate = rate;
    } else {
      if (spec.nwindows == RATELIMIT_MAX_WINDOWS) {
        set_error_code(EINVAL, "'%s': more than %d windows", s, RATELIMIT_MAX_WINDOWS);
        return -1;
      }
      struct ratelimit_window *w = &spec.windows[spec.nwindows];
      w->rate = rate;
      if (parse_when(skip_space(at + 1, b), b, w) == -1)
        return -1;
      spec.nwindows++;
    }
    if (!comma)
      break;
    p = comma + 1;
  }
  *out = spec;
  return 0;
}

int ratelimit_spec_unlimited(const struct ratelimit_spec *spec)
{
  if (spec->rate)
    return 0;
  for (size_t i = 0; i < spec->nwindows; i++)
    if (spec->windows[i].rate)
      return 0;
  return 1;
}

uint64_t ratelimit_spec_rate_at(const struct ratelimit_spec *spec, int wday, unsigned minute)
{
  assert(wday >= 0 && wday < 7 && minute < 1440);
  unsigned today = 1u << wday, yesterday = 1u << ((wday + 6) % 7);
  for (size_t i = 0; i < spec->nwindows; i++) {
    const struct ratelimit_window *w = &spec->windows[i];
    int in;
    if (w->start < w->end)
      in = (w->days & today) && minute >= w->start && minute < w->end;
    else /* crosses midnight: the evening of its day, the morning after */
      in = ((w->days & today) && minute >= w->start) || ((w->days & yesterday) && minute < w->end);
    if (in)
      return w->rate;
  }
  return spec->rate;
}

uint64_t ratelimit_spec_rate_local(const struct ratelimit_spec *spec, int64_t t)
{
  if (spec->nwindows == 0)
    return spec->rate;
  time_t tt = (time_t)t;
  struct tm tm;
  if (!localtime_r(&tt, &tm))
    return spec->rate;
  return ratelimit_spec_rate_at(spec, tm.tm_wday, (unsigned)(tm.tm_hour * 60 + tm.tm_min));
}

/* ---- the bucket -------------------------------------------------------- */

struct ratelimit {
  pthread_mutex_t lock; /* guards everything below but the constants */
  char name[32];
  struct ratelimit_spec spec;
  const _Atomic int *cancel;
  size_t piece;
  uint64_t rate;     /* in force */
  int64_t rate_next; /* monotonic ns when the rate is looked up again */
  int64_t paid;      /* monotonic ns at which every byte granted so far is paid for */
#ifdef PL_TEST_HOOKS
  /* Test hook: bytes granted in each second after the first take, written
   * to $PILOTLIGHT_TEST_RATELIMIT_LOG by ratelimit_free. */
  int64_t log_start;
  int log_started;
  VEC(uint64_t) log;
#endif
};

static int64_t mono_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * NS + ts.tv_nsec;
}

struct ratelimit *ratelimit_new(const char *name, const struct ratelimit_spec *spec,
                                const _Atomic int *cancel)
{
  struct ratelimit *rl = calloc(1, sizeof *rl);
  if (!rl) {
    set_error(errno, "calloc");
    return NULL;
  }
  pthread_mutex_init(&rl->lock, NULL);
  snprintf(rl->name, sizeof rl->name, "%s", name ? name : "transfer");
  rl->spec = *spec;
  rl->cancel = cancel;
  /* A 16th of the lowest rate: with a piece per thread queued, each of 16
   * threads still moves one every second, well inside any request timeout. */
  uint64_t lowest = spec->rate;
  for (size_t i = 0; i < spec->nwindows; i++)
    if (spec->windows[i].rate && (!lowest || spec->windows[i].rate < lowest))
      lowest = spec->windows[i].rate;
  uint64_t piece = lowest ? lowest / 16 : PIECE_MAX;
  rl->piece = piece > PIECE_MAX ? PIECE_MAX : piece < PIECE_MIN ? PIECE_MIN : (size_t)piece;
  rl->rate_next = INT64_MIN;
  rl->paid = INT64_MIN;
  return rl;
}

#ifdef PL_TEST_HOOKS
static void log_write(struct ratelimit *rl)
{
  const char *path = getenv("PILOTLIGHT_TEST_RATELIMIT_LOG");
  if (!path || !*path || !rl->log.len)
    return;
  FILE *f = fopen(path, "a");
  if (!f)
    return;
  for (size_t i = 0; i < rl->log.len; i++)
    fprintf(f, "%s %zu %llu\n", rl->name, i, (unsigned long long)rl->log.v[i]);
  fclose(f);
}

/* Count bytes in the second they are released at. */
static void log_bytes(struct ratelimit *rl, int64_t at, uint64_t bytes)
{
  if (!rl->log_started) {
    rl->log_start = at;
    rl->log_started = 1;
  }
  int64_t sec = at > rl->log_start ? (at - rl->log_start) / NS : 0;
  while ((int64_t)rl->log.len <= sec)
    if (vec_push(&rl->log, 0) == -1)
      return;
  rl->log.v[sec] += bytes;
}
#endif

void ratelimit_free(struct ratelimit *rl)
{
  if (!rl)
    return;
#ifdef PL_TEST_HOOKS
  log_write(rl);
  vec_free(&rl->log);
#endif
  pthread_mutex_destroy(&rl->lock);
  free(rl);
}

size_t ratelimit_piece(const struct ratelimit *rl)
{
  return rl ? rl->piece : SIZE_MAX;
}

int64_t ratelimit_reserve(struct ratelimit *rl, uint64_t bytes, uint64_t rate, int64_t now_ns)
{
  assert(bytes <= (4ull << 30));
  pthread_mutex_lock(&rl->lock);
  int64_t release = now_ns;
  if (rate == 0) {
    rl->paid = now_ns; /* unlimited now: no debt carried into a limited window */
  } else {
    /* The bucket's depth in time: a tenth of a second, or BURST_MIN bytes. */
    int64_t tolerance =
        rate / 10 > BURST_MIN ? NS / 10 : (int64_t)(BURST_MIN * (uint64_t)NS / rate);
    if (rl->paid < now_ns)
      rl->paid = now_ns; /* an idle bucket fills up to its depth, no further */
    rl->paid += (int64_t)(bytes * (uint64_t)NS / rate);
    release = rl->paid - tolerance;
    if (release < now_ns)
      release = now_ns;
  }
#ifdef PL_TEST_HOOKS
  log_bytes(rl, release, bytes);
#endif
  pthread_mutex_unlock(&rl->lock);
  return release;
}

/* The rate in force, looked up in local time at most once a second. */
static uint64_t rate_now(struct ratelimit *rl, int64_t now)
{
  pthread_mutex_lock(&rl->lock);
  if (now >= rl->rate_next) {
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    rl->rate = ratelimit_spec_rate_local(&rl->spec, (int64_t)wall.tv_sec);
    rl->rate_next = now + NS;
  }
  uint64_t rate = rl->rate;
  pthread_mutex_unlock(&rl->lock);
  return rate;
}

static int cancelled(const struct ratelimit *rl)
{
  if (rl->cancel && atomic_load(rl->cancel)) {
    set_error_code(ECANCELED, "%s interrupted while throttled", rl->name);
    return 1;
  }
  return 0;
}

/* Sleep until the monotonic time until, looking at cancel every slice. */
static int sleep_until(const struct ratelimit *rl, int64_t until)
{
  for (;;) {
    if (cancelled(rl))
      return -1;
    int64_t now = mono_ns();
    if (now >= until)
      return 0;
    int64_t t = until - now > SLEEP_SLICE_NS ? now + SLEEP_SLICE_NS : until;
    struct timespec ts = {(time_t)(t / NS), (long)(t % NS)};
    /* EINTR (a signal, perhaps the one that raises cancel) loops to check. */
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
  }
}

int ratelimit_take(struct ratelimit *rl, size_t bytes)
{
  if (!rl)
    return 0;
  while (bytes > 0) {
    size_t n = bytes < rl->piece ? bytes : rl->piece;
    int64_t now = mono_ns();
    int64_t release = ratelimit_reserve(rl, n, rate_now(rl, now), now);
    if (release > now && sleep_until(rl, release) == -1)
      return -1;
    bytes -= n;
  }
  return 0;
}
