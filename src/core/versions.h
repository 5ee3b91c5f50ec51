/* Object Lock repositories (docs/FORMAT.md, "Object Lock"): their bucket is
 * versioned, so a delete only hides an object behind a delete marker and a
 * put to an existing name shadows it with a new version. This is what sees
 * through that: prune's purge of hidden versions whose retention ended and
 * renewal of the retention of what stays, and repair --undelete (verify:
 * its report) of objects hidden or shadowed by someone else. */
#ifndef PL_VERSIONS_H
#define PL_VERSIONS_H

#include <stddef.h>
#include <stdint.h>

#include "repo.h"

/* One line of what happened, borrowed for the call; from the calling thread. */
typedef void (*versions_say_fn)(void *opaque, const char *msg);

struct lock_upkeep {
  size_t renewed;         /* objects whose retention was extended */
  size_t purged;          /* hidden versions deleted (their retention had ended) */
  uint64_t purged_bytes;  /* their bytes */
  size_t waiting;         /* hidden versions still retained */
  uint64_t waiting_bytes; /* their bytes */
  int64_t waiting_until;  /* when the last of them can be deleted */
};

/* 1 if r is an Object Lock repository on a store that has versions. */
int repo_versioned(const struct repo *r);

/* prune, before it marks: refuse (-1, the error naming it and repair
 * --undelete) when a snapshot is hidden by a delete marker that no forget
 * record accounts for, since its chunks would look unused. */
int repo_check_hidden_snapshots(struct repo *r);

/* prune, after its deletes: delete every version of a hidden object that no
 * kept snapshot needs once its retention has ended (and then the delete
 * marker), and extend the retention of every current object but locks to
 * now plus the repository's lock days. With dry_run, only count. */
int repo_lock_upkeep(struct repo *r, int dry_run, versions_say_fn say, void *opaque,
                     struct lock_upkeep *res);

struct undelete_result {
  size_t hidden;       /* objects found hidden by a delete marker */
  size_t shadowed;     /* objects whose current version does not match its name */
  size_t restored;     /* brought back (or, with dry_run, that would be) */
  size_t unrestorable; /* no version matches the name */
  size_t waiting;      /* hidden by forget or prune, retained until their retention ends */
};

/* repair --undelete, first step, before the repository can be opened: bring
 * back the config (its first version: init writes it once) and, when no key
 * object is left, the key objects. settings as for repo_open. */
int repo_undelete_base(const char *location, const struct repo_settings *settings, int dry_run,
                       versions_say_fn say, void *opaque, struct undelete_result *res);

/* repair --undelete: bring back the last version that matches its name of
 * every forget record, snapshot (but those a forget record lists), pack and
 * index object (only one whose packs are all there) that is hidden or
 * shadowed. report_only (verify): find and report them, download only the
 * current versions of objects that have several, change nothing. */
int repo_undelete(struct repo *r, int dry_run, int report_only, versions_say_fn say, void *opaque,
                  struct undelete_result *res);

#endif
