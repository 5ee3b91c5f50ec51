/* Retention: which snapshots a policy keeps (a pure engine: no I/O, no
 * clock), removing snapshots behind a forget record that says so, and the
 * check that no snapshot vanished without one. Formats: docs/FORMAT.md,
 * "Forget records". */
#ifndef PL_FORGET_H
#define PL_FORGET_H

#include <stddef.h>
#include <stdint.h>

#include "repo.h"

/* A keep-within duration. Like restic's: years, months and days move the
 * calendar date back (a day that does not exist rolls over: March 31 less
 * one month is March 3, or March 2 in a leap year), then the seconds are
 * subtracted. */
struct forget_duration {
  int64_t years, months, days;
  int64_t seconds; /* hours, minutes and seconds */
};

/* Parse a duration: one or more NUMBER UNIT pairs, in any order, with the
 * units y (years), m or mo (months, as in restic), w (weeks), d (days),
 * h (hours), min (minutes) and s (seconds): "2y5m7d3h", "1mo", "90min",
 * "1d12h". A duration of zero is refused. Returns 0, or -1 (EINVAL) with a
 * message naming the bad part. */
int forget_duration_parse(const char *s, struct forget_duration *d);

/* The time d before t (seconds since the epoch, UTC). */
int64_t forget_duration_before(int64_t t, const struct forget_duration *d);

/* The rules that keep a snapshot, as bits. */
#define FORGET_LATEST 0x01u /* the disk's latest snapshot: always kept by a policy */
#define FORGET_LAST 0x02u
#define FORGET_WITHIN 0x04u
#define FORGET_HOURLY 0x08u
#define FORGET_DAILY 0x10u
#define FORGET_WEEKLY 0x20u
#define FORGET_MONTHLY 0x40u
#define FORGET_YEARLY 0x80u
#define FORGET_RULES 8

/* The name of rule bit 1 << i ("latest", "last", "within", "hourly",
 * "daily", "weekly", "monthly", "yearly"); NULL past the last. */
const char *forget_rule_name(unsigned i);

/* A retention policy; restic's semantics. Each bucket rule keeps the
 * newest snapshot of each of the last N distinct periods that have one
 * (UTC; hour, day, ISO 8601 week, month, year); last keeps the newest N;
 * within keeps every snapshot newer than the disk's latest snapshot less
 * the duration (not now less it). A count of 0 and a zero duration leave a
 * rule out. */
struct forget_policy {
  unsigned last, hourly, daily, weekly, monthly, yearly;
  struct forget_duration within;
};

/* 1 if p has no rule (a policy that would remove everything but the
 * latest: callers refuse it). */
int forget_policy_empty(const struct forget_policy *p);

/* Decide for n snapshots of one disk, in any order, which p keeps:
 * keep[i] receives the FORGET_* bits of the rules that keep snaps[i], 0
 * when none does (remove it). Only time, time_ns and id are read; the
 * newest by (time, time_ns, id) is the latest. Returns 0, or -1 with the
 * error set (EINVAL for an empty policy, ENOMEM). */
int forget_policy_apply(const struct forget_policy *p, struct snapshot *const *snaps, size_t n,
                        unsigned *keep);

/* One snapshot in a plan. */
struct forget_entry {
  struct snapshot *s; /* owned by the plan */
  unsigned keep;      /* FORGET_* bits of the rules that keep it */
  int remove;         /* to be removed: by the policy, or named */
  int named;          /* named by forget_plan_name */
  int latest;         /* the latest snapshot of its disk */
};

/* The snapshots of one disk or every disk and what to do with each. */
struct forget_plan {
  VEC(struct forget_entry) e; /* by disk name (bytewise), each disk oldest first */
  size_t disks;
};

/* Load the snapshots of disk (NULL: every disk) into a new plan, all kept.
 * Returns NULL with the error set. Caller frees with forget_plan_free. */
struct forget_plan *forget_plan_new(struct repo *r, const char *disk);
void forget_plan_free(struct forget_plan *plan);

/* Apply p to each disk of the plan on its own: sets keep, latest and
 * remove of every entry. Returns 0, or -1 (an empty policy, ENOMEM). */
int forget_plan_policy(struct forget_plan *plan, const struct forget_policy *p);

/* Mark the snapshot of disk whose id is spec (a full id or a unique
 * prefix; not "latest") for removal, even the latest: naming it is the
 * only way to remove that. Returns its entry (borrowed from the plan), or
 * NULL with the error set: ENOENT none, EINVAL ambiguous. */
struct forget_entry *forget_plan_name(struct forget_plan *plan, const char *disk, const char *spec);

/* Remove every entry marked remove: first write one forget record listing
 * them all (forgotten/<SHA-256 of the record>, durable when this returns),
 * then delete their snapshot objects. A failure after the record leaves
 * snapshots that the record lists and a rerun removes. record (may be
 * NULL) receives the record's name, "" when nothing was to be removed.
 * Returns 0, or -1 with the error set. */
int forget_plan_commit(struct repo *r, const struct forget_plan *plan,
                       char record[2 * HASH_LEN + 1]);

/* The ids of every snapshot the repository's forget records list. */
struct forgotten_set {
  uint8_t (*id)[HASH_LEN]; /* sorted; owned */
  size_t n;
};

/* Load every forget record. A damaged or malformed record is skipped and
 * passed to report (a one-line message; NULL: the repository's warning
 * callback); *damaged (may be NULL) counts them. Caller frees with
 * forgotten_set_free. Returns NULL with the error set if the records
 * cannot be listed. */
struct forgotten_set *forgotten_set_load(struct repo *r,
                                         void (*report)(void *opaque, const char *msg),
                                         void *opaque, size_t *damaged);
void forgotten_set_free(struct forgotten_set *set);
/* 1 if hexid (64 hex digits) is in the set. */
int forgotten_set_has(const struct forgotten_set *set, const char *hexid);

/* The deletion check verify runs: report, one line each through report,
 * every snapshot whose parent is neither in the repository nor listed by a
 * forget record ("snapshot X of disk D names parent Y, which is gone
 * without a forget record"), every present snapshot a forget record lists
 * (an interrupted forget, or a replayed object), and every damaged forget
 * record. Adds their
 * count to *problems. Snapshot objects that cannot be read are left to the
 * rest of verify. Returns 0 when the check ran, -1 if it could not. */
int repo_verify_deletions(struct repo *r, void (*report)(void *opaque, const char *msg),
                          void *opaque, size_t *problems);

#endif
