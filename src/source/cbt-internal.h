/* Shared between the QEMU changed-block tracking files (qemu-cbt.c,
 * cbt-live.c); not part of the library's API. */
#ifndef PL_CBT_INTERNAL_H
#define PL_CBT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "qemu-cbt.h"

enum { CBT_KIND_NBD = 1, CBT_KIND_QCOW2, CBT_KIND_QMP };

/* A fresh bitmap name, "pilotlight-" and 16 random hex digits. Its random
 * part is what ties a snapshot to this very image: no other image has it. */
int cbt_new_bitmap_name(char *buf, size_t n);

/* A private folder (mode 0700) under $TMPDIR or base; caller frees. */
char *cbt_make_tmpdir(const char *base);

/* Remove a private folder made by cbt_make_tmpdir and the files in it. */
void cbt_remove_tmpdir(const char *dir);

/* Record a fallback reason in s->note (printf-style). */
void cbt_fall_back(struct cbt_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The state of a bitmap on a block node, as QMP reports it. */
/* After the rotation: if usable, read bitmap oldname's changed extents into
 * the session (falling back to hash-compare when that fails), and set the
 * cookie the next backup continues from to newname. Returns 0, or -1 when
 * out of memory. */
int cbt_use_bitmap(struct cbt_session *s, int usable, const char *oldname, const char *newname);

struct node_bitmap {
  int found, recording, busy, inconsistent;
};

struct json_object;

/* From a query-named-block-nodes reply (untrusted), find node: its size
 * into *size and bitmap's state (bitmap may be NULL) into *bm. Returns 0,
 * or -1 with the error set (ENOENT when there is no such node). */
int cbt_node_from_reply(struct json_object *ret, const char *node, const char *bitmap,
                        uint64_t *size, struct node_bitmap *bm);

/* The live (QMP) workflow. */
int cbt_live_start(struct cbt_session *s, const struct cbt_plan *p);
int cbt_live_finish(struct cbt_session *s, int committed);

#endif
