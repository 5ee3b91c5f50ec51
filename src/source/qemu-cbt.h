/* Changed-block tracking from QEMU persistent dirty bitmaps, read over NBD
 * (the qemu:dirty-bitmap:NAME meta context). Three workflows, described in
 * docs/CBT.md: an NBD export the user manages, an offline qcow2 image whose
 * bitmaps pilotlight rotates with qemu-img and reads through a private
 * qemu-nbd, and a running qemu-storage-daemon or QEMU driven over QMP with a
 * point-in-time fleece. Whenever a bitmap cannot be trusted, the session
 * says why and hands back no changed extents, so the backup falls back to
 * hash-compare. */
#ifndef PL_QEMU_CBT_H
#define PL_QEMU_CBT_H

#include <stddef.h>
#include <stdint.h>

#include "extent-list.h"
#include "source.h"

#define CBT_COOKIE_PREFIX "qemu-bitmap:"

/* What the user asked for; all strings borrowed for the call. Exactly one
 * of nbd_uri, qcow2 or qmp is set. */
struct cbt_plan {
  const char *nbd_uri;     /* an NBD export offering qemu:dirty-bitmap:bitmap */
  const char *bitmap;      /* with nbd_uri: the bitmap to read (changes since the parent) */
  const char *next_bitmap; /* with nbd_uri: the bitmap recording from now on; NULL = bitmap */
  const char *qcow2;       /* an offline qcow2 image */
  const char *qmp;         /* a QMP Unix socket of qemu-storage-daemon or QEMU */
  const char *node;        /* with qmp: the block node (node-name) to back up */
  const char *nbd_socket;  /* with qmp: the daemon's running NBD server, or NULL to start one */
  const char *tmpdir;      /* with qmp: where the fleece overlay goes; NULL = $TMPDIR or /var/tmp */
  int has_parent;          /* the disk has a snapshot to continue from */
  const char *parent_cbt;  /* with has_parent: its CBT cookie ("" if none) */
  uint64_t parent_size;    /* with has_parent: its disk size */
  int full;                /* read everything: rotate the bitmaps but do not use them */
};

/* A started session. The public members are valid until cbt_session_finish. */
struct cbt_session {
  struct source *src;                /* the disk to back up; owned */
  const struct extent_list *changed; /* changed extents since the parent, or NULL */
  char *cookie;                      /* the CBT cookie to record in the snapshot */
  const char *mode;                  /* "cbt" when changed is set, else NULL */
  char note[512];                    /* why CBT was not used; "" when it was, or not expected */
  int fell_back;                     /* 1 when a parent exists but its CBT could not be used */
  /* private */
  struct extent_list changes;
  int kind;         /* which workflow */
  char *image;      /* qcow2 image or node */
  char *old_bitmap; /* bitmap consumed: removed once the snapshot commits */
  char *new_bitmap; /* bitmap created by this session, or NULL */
  int old_disabled; /* we disabled old_bitmap (roll back on failure) */
  char *tmpdir;     /* private folder for sockets and the fleece */
  int nbd_pid;      /* qemu-nbd we started */
  struct qmp *qmp;
  char *fleece_node, *job_id, *export_id;
  int nbd_server_started;
};

/* Start a session: rotate bitmaps as the workflow needs, open the source and
 * read the changed extents when they can be trusted. Returns NULL with the
 * error set when the backup cannot go on at all (e.g. the image is in use).
 * Caller ends it with cbt_session_finish. */
struct cbt_session *cbt_session_start(const struct cbt_plan *p);

/* End a session: close the source, stop what was started, and settle the
 * bitmaps. committed says whether the snapshot was committed: if so, the
 * consumed bitmap is removed; if not, the rotation is undone so that the
 * next run continues from the same parent; 2 means committed but found
 * wrong by cbt_verify: the new bitmap is dropped too, so that the next run
 * cannot trust it and reads everything. Frees s (NULL is a no-op).
 * Returns 0, or -1 with the error set when cleanup failed. */
int cbt_session_finish(struct cbt_session *s, int committed);

/* Decide whether a bitmap named bitmap may stand for the changes since a
 * parent snapshot with cookie parent_cbt and size parent_size. Returns NULL
 * when it may, or the reason why not, written into buf (size n). */
const char *cbt_parent_mismatch(const char *parent_cbt, uint64_t parent_size, const char *bitmap,
                                uint64_t size, char *buf, size_t n);

/* The meta context name of a bitmap, "qemu:dirty-bitmap:NAME", into ctx
 * (size n). Returns 0, or -1 when it does not fit. */
int cbt_bitmap_context(const char *bitmap, char *ctx, size_t n);

/* Read the dirty extents of qemu:dirty-bitmap:bitmap from src, an NBD
 * source opened with that context (nbd_source_open_ctx), into out (appended,
 * then normalized). Returns 0; 1 when the server does not offer that context
 * (the reason in buf, size n); or -1 with the error set. */
int cbt_read_bitmap(struct source *src, const char *bitmap, struct extent_list *out, char *buf,
                    size_t n);

#endif
