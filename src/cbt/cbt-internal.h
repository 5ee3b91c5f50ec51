/* Shared by the files of src/cbt/: the workflow ops table and the helpers
 * in cbt.c that every workflow uses. Workflows call only these helpers and
 * cbt.c calls workflows only through their ops; not part of the API. */
#ifndef PL_CBT_INTERNAL_H
#define PL_CBT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "cbt.h"

/* One changed-block tracking workflow. Its session struct has struct
 * cbt_session as first member and is size bytes; cbt.c allocates it zeroed
 * and sets ops before start. */
struct cbt_workflow_ops {
  const char *name; /* for messages */
  size_t size;
  /* Rotate the bitmaps, open s->src and read the changed extents when they
   * can be trusted (cbt_use_bitmap). Returns 0, or -1 with the error set;
   * after -1 cbt.c calls finish with CBT_ROLLBACK to undo what was done. */
  int (*start)(struct cbt_session *s, const struct cbt_plan *p);
  /* Stop what start started (s->src is already closed), settle the bitmaps
   * by outcome and free the workflow's own members, not s. May be NULL.
   * Returns 0, or -1 with the error set (the first failure; it goes on). */
  int (*finish)(struct cbt_session *s, enum cbt_outcome outcome);
};

extern const struct cbt_workflow_ops cbt_nbd_ops;
extern const struct cbt_workflow_ops cbt_qcow2_ops;
extern const struct cbt_workflow_ops cbt_live_ops;

/* The bitmap named by a CBT cookie ("qemu-bitmap:NAME"; borrowed from
 * cookie), or NULL when cookie is NULL or names none. */
const char *cbt_cookie_bitmap(const char *cookie);

/* A fresh bitmap name, "pilotlight-" and 16 random hex digits. Its random
 * part is what ties a snapshot to this very image: no other image has it. */
int cbt_new_bitmap_name(char *buf, size_t n);

/* A private folder (mode 0700) under base, or dflt when base is NULL or "";
 * caller frees and removes it with cbt_remove_tmpdir. NULL with the error
 * set. */
char *cbt_make_tmpdir(const char *base, const char *dflt);

/* Remove a private folder made by cbt_make_tmpdir and the files in it.
 * NULL is a no-op. */
void cbt_remove_tmpdir(const char *dir);

/* Record a fallback reason in s->note (printf-style) and drop any changed
 * extents: the backup reads everything. */
void cbt_fall_back(struct cbt_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* After the rotation: if usable, read bitmap oldname's changed extents from
 * s->src into the session (falling back to hash-compare when that fails),
 * and set the cookie the next backup continues from to newname. Returns 0,
 * or -1 with the error set when out of memory. */
int cbt_use_bitmap(struct cbt_session *s, int usable, const char *oldname, const char *newname);

/* The state of a bitmap on a block node, as QMP reports it. */
struct node_bitmap {
  int found, recording, busy, inconsistent;
};

struct json_object;

/* From a query-named-block-nodes reply (untrusted), find node: its size
 * into *size and bitmap's state (bitmap may be NULL) into *bm. Returns 0,
 * or -1 with the error set (ENOENT when there is no such node). In
 * cbt-live.c; exported for the unit test and the fuzz target. */
int cbt_node_from_reply(struct json_object *ret, const char *node, const char *bitmap,
                        uint64_t *size, struct node_bitmap *bm);

#endif
