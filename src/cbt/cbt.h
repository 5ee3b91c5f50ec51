/* Changed-block tracking from QEMU persistent dirty bitmaps, read over NBD
 * (the qemu:dirty-bitmap:NAME meta context). Three workflows, described in
 * docs/CBT.md, each in its own file behind struct cbt_workflow_ops: an NBD
 * export the user manages (cbt-nbd.c), an offline qcow2 image whose bitmaps
 * pilotlight rotates with qemu-img and reads through a private qemu-nbd
 * (cbt-qcow2.c), and a running qemu-storage-daemon or QEMU driven over QMP
 * with a point-in-time fleece (cbt-live.c). Whenever a bitmap cannot be
 * trusted, the session says why and hands back no changed extents, so the
 * backup falls back to hash-compare. The library prints nothing and reads
 * no environment: settings come in struct cbt_plan. A session is used by
 * one thread at a time. */
#ifndef PL_CBT_H
#define PL_CBT_H

#include <stddef.h>
#include <stdint.h>

#include "../core/repo.h"
#include "../source/extent-list.h"
#include "../source/source.h"

#define CBT_COOKIE_PREFIX "qemu-bitmap:"

/* Which workflow a plan asks for: an index into cbt.c's table. */
enum cbt_workflow {
  CBT_NBD,   /* nbd_uri, bitmap, next_bitmap */
  CBT_QCOW2, /* qcow2 */
  CBT_QMP,   /* qmp, node, nbd_socket */
  CBT_WORKFLOWS
};

/* What the user asked for; all strings borrowed for the call. */
struct cbt_plan {
  enum cbt_workflow workflow;
  const char *nbd_uri;     /* CBT_NBD: an export offering qemu:dirty-bitmap:bitmap */
  const char *bitmap;      /* CBT_NBD: the bitmap to read (changes since the parent) */
  const char *next_bitmap; /* CBT_NBD: the bitmap recording from now on; NULL = bitmap */
  const char *qcow2;       /* CBT_QCOW2: an offline qcow2 image */
  const char *qmp;         /* CBT_QMP: a QMP Unix socket of qemu-storage-daemon or QEMU */
  const char *node;        /* CBT_QMP: the block node (node-name) to back up */
  const char *nbd_socket;  /* CBT_QMP: the daemon's running NBD server, or NULL to start one */
  /* Where the private folder (sockets, the fleece overlay) is made; NULL or
   * "" = /tmp for CBT_QCOW2, /var/tmp for CBT_QMP (the fleece can be big). */
  const char *tmpdir;
  int has_parent;         /* the disk has a snapshot to continue from */
  const char *parent_cbt; /* with has_parent: its CBT cookie ("" if none) */
  uint64_t parent_size;   /* with has_parent: its disk size */
  int full;               /* read everything: rotate the bitmaps but do not use them */
};

struct cbt_workflow_ops;

/* A started session. The public members are valid until cbt_session_finish.
 * Each workflow extends it (this struct is the first member of its own). */
struct cbt_session {
  struct source *src;                /* the disk to back up; owned */
  const struct extent_list *changed; /* changed extents since the parent, or NULL */
  char *cookie;                      /* the CBT cookie to record in the snapshot; owned */
  const char *mode;                  /* "cbt" when changed is set, else NULL */
  char note[512];                    /* why CBT was not used; "" when it was, or not expected */
  int fell_back;                     /* 1 when a parent exists but its CBT could not be used */
  /* private */
  const struct cbt_workflow_ops *ops;
  struct extent_list changes; /* what changed points to */
};

/* What became of the snapshot a session served, for cbt_session_finish. */
enum cbt_outcome {
  CBT_ROLLBACK,            /* not committed: undo the rotation */
  CBT_COMMITTED,           /* committed: drop the consumed bitmap */
  CBT_COMMITTED_UNTRUSTED, /* committed, but --verify-cbt found it wrong: drop the new bitmap too */
};

/* Start a session: rotate bitmaps as the workflow needs, open the source and
 * read the changed extents when they can be trusted. Returns NULL with the
 * error set when the backup cannot go on at all (e.g. the image is in use).
 * Caller ends it with cbt_session_finish. */
struct cbt_session *cbt_session_start(const struct cbt_plan *p);

/* End a session: close the source, stop what was started, and settle the
 * bitmaps by outcome: CBT_COMMITTED removes the consumed bitmap;
 * CBT_ROLLBACK undoes the rotation so that the next run continues from the
 * same parent; CBT_COMMITTED_UNTRUSTED also drops the new bitmap, so that
 * the next run cannot trust it and reads everything. Frees s (NULL is a
 * no-op). Returns 0, or -1 with the error set when cleanup failed. */
int cbt_session_finish(struct cbt_session *s, enum cbt_outcome outcome);

/* The CBT part of a backup (cbt-backup.c). Look up the disk's latest
 * snapshot in r as the parent, start a session for plan p (its parent and
 * full members are ignored: they come from r and bo->full), and fill bo's
 * src, changed, cbt, mode and note (note only when CBT fell back: the caller
 * may warn with s->note). A disk's first backup gets the CBT block size
 * unless bo->block_size is set. bo's new members are borrowed from the
 * session until cbt_session_finish. Returns the session, or NULL with the
 * error set. */
struct cbt_session *cbt_backup_start(struct repo *r, const struct cbt_plan *p,
                                     struct backup_opts *bo);

/* The result of cbt_backup_verify. */
struct cbt_check {
  uint64_t nblocks;    /* blocks compared */
  uint32_t block_size; /* of the snapshot */
  uint64_t mismatches; /* blocks that differ: 0 when the snapshot equals the disk */
  uint64_t first;      /* the first that differs, UINT64_MAX if none */
};

/* --verify-cbt: read the whole disk of s and compare it with snap, the
 * snapshot just committed from it, with r's worker count. Returns 0 when it
 * could compare (the outcome in *out), or -1 with the error set. */
int cbt_backup_verify(struct repo *r, struct cbt_session *s, const struct snapshot *snap,
                      struct cbt_check *out);

/* Decide whether a bitmap named bitmap may stand for the changes since a
 * parent snapshot with cookie parent_cbt and size parent_size. Returns NULL
 * when it may, or the reason why not, written into buf (size n). */
const char *cbt_parent_mismatch(const char *parent_cbt, uint64_t parent_size, const char *bitmap,
                                uint64_t size, char *buf, size_t n);

/* The meta context name of a bitmap, "qemu:dirty-bitmap:NAME", into ctx
 * (size n). Returns 0, or -1 with the error set when it does not fit. */
int cbt_bitmap_context(const char *bitmap, char *ctx, size_t n);

/* Read the dirty extents of qemu:dirty-bitmap:bitmap from src, an NBD
 * source opened with that context (nbd_source_open_ctx), into out (appended,
 * then normalized). The server's reply is untrusted; it is walked over the
 * disk's size only (nbd_source_walk). Returns 0; 1 when the server does not
 * offer that context (the reason in buf, size n); or -1 with the error set. */
int cbt_read_bitmap(struct source *src, const char *bitmap, struct extent_list *out, char *buf,
                    size_t n);

#endif
