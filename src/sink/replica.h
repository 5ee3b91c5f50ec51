/* Warm replicas: keep a raw file or block device equal to a chosen
 * snapshot of a disk, writing only the blocks that differ from the
 * snapshot last applied (found by comparing the two block maps). A small
 * state file records what the target holds; the protocol that makes an
 * interrupted sync finish on the next run, and the fingerprint that detects
 * a target changed behind our back, are described in docs/RUNBOOK.md. */
#ifndef PL_REPLICA_H
#define PL_REPLICA_H

#include <stddef.h>
#include <stdint.h>

#include "../core/repo.h"

struct replica_opts {
  const char *disk;          /* required */
  const char *target;        /* a raw file (created sparse if missing) or a block device */
  const char *snapshot;      /* id, prefix or "latest"; NULL means latest */
  const char *state_dir;     /* NULL: the state file sits beside a file target; block devices
                                default to /var/lib/pilotlight/replicas */
  int force;                 /* resync fully over a modified or unknown target */
  int verify;                /* re-read the whole target afterwards and check it */
  const _Atomic int *cancel; /* borrowed; non-zero stops with ECANCELED (the state file then
                                says the sync is to be finished); NULL: none */
  const struct progress_ops *progress; /* borrowed; NULL: none */
};

struct replica_result {
  char from[2 * HASH_LEN + 1]; /* the snapshot the target held ("" if none or unknown) */
  char to[2 * HASH_LEN + 1];   /* the snapshot it holds now */
  int full;                    /* every block was (re)written */
  int compared;                /* the snapshot the target held was gone: every block of the
                                  target was read and compared with the new one instead */
  int resumed;                 /* an interrupted sync was finished */
  int up_to_date;              /* nothing to do */
  uint64_t blocks_changed;     /* blocks that differ between from and to */
  uint64_t bytes_written;      /* data written to the target */
  uint64_t bytes_zeroed;       /* bytes turned into holes / zeroed */
  char note[256];              /* why a full sync was done, etc.; "" if nothing to say */
};

/* Bring o->target to the snapshot o->snapshot of o->disk. Fills *res (may
 * be NULL). Returns 0, or -1 with the error set: an unknown snapshot, a
 * target that is too small, read-only, in use, modified behind our back
 * (without force), or I/O failures. */
int replica_sync(struct repo *r, const struct replica_opts *o, struct replica_result *res);

/* What the state file says. */
struct replica_state {
  char repo_id[64];
  char *disk;                      /* owned */
  int syncing;                     /* 1: a sync was started and not finished */
  char applied[2 * HASH_LEN + 1];  /* "" when unknown */
  char applying[2 * HASH_LEN + 1]; /* when syncing: the snapshot being applied */
  uint64_t size;                   /* target size after the last finished sync */
  char fingerprint[256];
};

/* Parse a state file's bytes (untrusted: fuzzed). Returns 0, or -1 with the
 * error set. Free with replica_state_clear. */
int replica_state_parse(const char *buf, size_t len, struct replica_state *st);
void replica_state_clear(struct replica_state *st);

/* Check that target (a file or block device) holds exactly snapshot s of
 * repository r: every block within the disk is read back, hashed and
 * compared with the block map (the repository's data is not read). A target
 * smaller than the disk is checked up to its end, and the blocks past it
 * must be zero in the snapshot. Fails with a message naming the first
 * differing offset. */
int target_verify(struct repo *r, const struct snapshot *s, const char *target);

#endif
