/* prune: garbage collection of a repository. Marks every chunk that a
 * snapshot references, deletes packs nothing references, rewrites sparse
 * packs, merges the index objects and removes old temporary leftovers, in
 * an order that a kill at any point leaves valid (docs/FORMAT.md, Prune). */
#ifndef PL_PRUNE_H
#define PL_PRUNE_H

#include <stddef.h>
#include <stdint.h>

struct repo;
struct progress_ops;

#define PRUNE_DEFAULT_MAX_UNUSED 5      /* percent, as restic's --max-unused */
#define PRUNE_DEFAULT_GRACE (24 * 3600) /* seconds */

struct prune_opts {
  int dry_run;         /* plan and report, write and delete nothing */
  unsigned max_unused; /* percent (0 to 100) of the stored bytes that may stay unused */
  int64_t grace;       /* seconds: younger leftovers are kept */
  /* Called with one line per object deleted, rewritten or written (or that
   * would be, with dry_run), from the calling thread. NULL: none. */
  void (*report)(void *opaque, const char *line);
  void *opaque;
  /* Follows the bytes of live chunks copied out of rewritten packs, the
   * long part of a prune. NULL: none. */
  const struct progress_ops *progress;
};

/* The defaults above, no dry run, no report. */
void prune_opts_default(struct prune_opts *o);

/* What prune did (or, with dry_run, would do). */
struct prune_result {
  size_t snapshots, pages, chunks, chunks_live;
  size_t packs_before, packs_after;
  size_t packs_deleted, packs_rewritten, packs_written;
  size_t index_before, index_written;
  uint64_t bytes_before, bytes_after; /* bytes in indexed packs */
  uint64_t unused_before, unused_after;
  uint64_t bytes_deleted, bytes_written;
  size_t leftover_packs, leftover_temp; /* removed (older than the grace) */
  uint64_t leftover_bytes;
  size_t leftovers_kept; /* younger than the grace */
  /* An Object Lock repository: retention renewed, hidden versions deleted
   * and those still retained (core/versions.h). */
  size_t lock_renewed, lock_purged, lock_waiting;
  uint64_t lock_purged_bytes, lock_waiting_bytes;
  int64_t lock_waiting_until;
};

/* Run prune on r (opened with repo_open; r's in-memory chunk index is
 * replaced by the one prune loads, so free r afterwards rather than back up
 * with it). The caller holds the repository's exclusive lock. When any
 * snapshot, page or index object cannot be read, or a snapshot names a
 * chunk no index lists, prune deletes nothing and fails with a message
 * naming the object and pilotlight verify / repair. res (required) is
 * filled as far as prune got. Returns 0 or -1 with the error set. */
int repo_prune(struct repo *r, const struct prune_opts *o, struct prune_result *res);

#endif
