/* pilotlight repair: turns what verify recorded (damage/ objects) into a
 * repository that no longer names damaged data, so that the next backup of
 * each disk stores again what the disk still holds. */
#ifndef PL_REPAIR_H
#define PL_REPAIR_H

#include <stddef.h>
#include <stdint.h>

#include "repo.h"

struct repair_report {
  size_t chunks_rewritten;      /* readable chunks of damaged packs copied to new packs */
  size_t chunks_dropped;        /* damaged or lost chunk copies removed from the index */
  size_t packs_quarantined;     /* damaged packs moved to quarantine/packs/ */
  size_t index_written;         /* new index objects */
  size_t index_deleted;         /* index objects replaced by new ones */
  size_t index_quarantined;     /* damaged index objects moved to quarantine/index/ */
  size_t snapshots_quarantined; /* damaged snapshot objects moved to quarantine/snapshots/ */
  size_t records_deleted;       /* damage records fully handled */
  size_t snapshots_damaged;     /* snapshots that stay damaged (listed through lost) */
};

/* What repair tells its caller, one call each, from the calling thread.
 * All strings are borrowed for the call. */
struct repair_ops {
  /* An action taken (or, with dry_run, that would be taken). */
  void (*action)(void *opaque, const char *msg);
  /* A snapshot that stays damaged: the byte ranges its disk lost, as
   * "OFFSET+LENGTH" items separated by spaces (at most about 1 KiB; the
   * count says how many blocks in all). */
  void (*lost)(void *opaque, const struct snapshot *s, uint64_t blocks, const char *ranges);
  void *opaque;
};

/* Repair r from its damage records and from the damaged index and snapshot
 * objects found at open: rewrite readable chunks of damaged packs into new
 * packs, drop damaged and lost chunks from the index (new index objects
 * replace those that listed them), index the packs a damaged index object
 * listed from their trailers, move damaged packs, index and snapshot
 * objects to quarantine/, delete the records, then list the snapshots that
 * stay damaged. With dry_run, nothing is written. Needs no other writer
 * (the caller holds the exclusive lock). Returns 0 or -1 with the error
 * set; rep is filled either way. */
int repo_repair(struct repo *r, int dry_run, const struct repair_ops *ops,
                struct repair_report *rep);

#endif
