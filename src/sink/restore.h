/* Restore a snapshot to a raw file or block device through a sink: a new
 * file appears under its name only when complete; an existing one (with
 * force) is marked incomplete until the last fsync. */
#ifndef PL_RESTORE_H
#define PL_RESTORE_H

#include "../core/repo.h"

struct restore_opts {
  const char *target; /* a new file (created sparse), or with force an existing file or
                         device; "-" is standard output (raw, in order) */
  int force;
  const _Atomic int *cancel;           /* borrowed; non-zero stops with ECANCELED; NULL: none */
  const struct progress_ops *progress; /* borrowed; NULL: none */
};

/* Write snapshot s (borrowed) to o->target: zero blocks become holes, every
 * chunk is checked against its hash as it is written, and the target is
 * fsynced. Returns 0, or -1 with the error set (ECANCELED when o->cancel
 * was raised; a new file is then removed, an existing one stays marked
 * incomplete). */
int repo_restore(struct repo *r, const struct snapshot *s, const struct restore_opts *o);

#endif
