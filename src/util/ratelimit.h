/* Bandwidth limits: a spec (a default rate in bytes per second plus
 * optional weekly time windows in local time) parsed from one string, and
 * struct ratelimit, a token bucket on CLOCK_MONOTONIC that every thread
 * moving bytes in one direction shares, so the total stays at the rate. */
#ifndef PL_RATELIMIT_H
#define PL_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

#define RATELIMIT_MAX_WINDOWS 16
#define RATELIMIT_MIN_RATE 1024u /* the smallest non-zero rate, bytes per second */

/* A rate that applies on some days between two times of the day. A window
 * whose end is before its start crosses midnight and belongs to the day it
 * starts on: fri 22:00-06:00 runs from Friday 22:00 to Saturday 06:00. */
struct ratelimit_window {
  uint64_t rate;  /* bytes per second; 0: unlimited */
  unsigned days;  /* bit d set: the window starts on day d (0 = Sunday, as tm_wday) */
  unsigned start; /* minutes after local midnight, 0 to 1439 */
  unsigned end;   /* 1 to 1440; != start */
};

/* A plain value (no pointers): copy it freely. All zero: unlimited. */
struct ratelimit_spec {
  uint64_t rate; /* bytes per second outside every window; 0: unlimited */
  size_t nwindows;
  struct ratelimit_window windows[RATELIMIT_MAX_WINDOWS]; /* the first that matches wins */
};

/* Parse s into *out, which is set in full (an empty or NULL s is
 * unlimited). The grammar, also the value of the config file's
 * limit-upload / limit-download lines:
 *   SPEC   := ITEM [ "," ITEM ]...
 *   ITEM   := RATE                      the default rate (at most one)
 *           | RATE "@" DAYS " " HH:MM "-" HH:MM   a window, local time
 *   RATE   := "off" | NUMBER [ "K" | "M" | "G" | "T" ] [ "/s" ]
 *             bytes per second, K = 1024; 0 = off; else 1K to 1T
 *   DAYS   := "daily" | DAY [ "-" DAY ] | DAY "+" DAY [ "+" DAY ]...
 *   DAY    := mon | tue | wed | thu | fri | sat | sun
 * e.g. "10M", "10M,2M@mon-fri 08:00-18:00", "off,512K@daily 22:00-06:00".
 * NUMBER may have a decimal fraction ("1.5M"). Spaces around "," and "@"
 * are allowed; case does not matter; HH:MM may end at 24:00. Returns 0, or
 * -1 with the error (EINVAL) set to a message that quotes the wrong part
 * and shows the expected form; callers prefix the option or line. */
int ratelimit_spec_parse(const char *s, struct ratelimit_spec *out);

/* 1 if spec never limits (every rate is 0). */
int ratelimit_spec_unlimited(const struct ratelimit_spec *spec);

/* The rate in force on day wday (0 = Sunday) at minute (0 to 1439) after
 * local midnight. Pure: no clock. */
uint64_t ratelimit_spec_rate_at(const struct ratelimit_spec *spec, int wday, unsigned minute);

/* The rate in force at time t (seconds since the epoch) in local time. */
uint64_t ratelimit_spec_rate_local(const struct ratelimit_spec *spec, int64_t t);

/* The shared bucket. Thread-safe. */
struct ratelimit;

/* A bucket for spec (copied), or NULL with the error set. name ("upload",
 * "download"; copied) is for messages. cancel (borrowed for the bucket's
 * life; NULL: none): when non-zero, a waiting ratelimit_take stops with
 * ECANCELED within about 100 ms. Caller frees with ratelimit_free. */
struct ratelimit *ratelimit_new(const char *name, const struct ratelimit_spec *spec,
                                const _Atomic int *cancel);
void ratelimit_free(struct ratelimit *rl); /* NULL: no-op */

/* Account for bytes about to move, sleeping first as long as the rate in
 * force needs. The rate is looked up again at least once a second, so a
 * transfer running across a window's edge changes speed there. rl NULL:
 * returns at once. Large counts are taken in ratelimit_piece pieces; a
 * caller moving a large buffer should itself move it in such pieces, each
 * after its take, so the bytes flow evenly. Returns 0, or -1 with ECANCELED
 * set when the cancel flag was raised. */
int ratelimit_take(struct ratelimit *rl, size_t bytes);

/* The size of the pieces callers should move between takes: 64 KiB, less
 * for rates under 1 MiB/s (so each of several threads still moves a piece
 * about every second). rl NULL: SIZE_MAX. */
size_t ratelimit_piece(const struct ratelimit *rl);

/* The bucket's arithmetic with the time and rate given, for ratelimit_take
 * and for tests: reserve bytes (at most ratelimit_piece's size, or 4 GiB) at
 * monotonic time now_ns under rate (bytes per second; 0: unlimited) and
 * return the monotonic time in ns before which they must not move (<= now_ns:
 * at once). The bucket holds max(rate / 10, 64 KiB) bytes: a full bucket lets
 * that much pass at once, then the rate holds. */
int64_t ratelimit_reserve(struct ratelimit *rl, uint64_t bytes, uint64_t rate, int64_t now_ns);

#endif
