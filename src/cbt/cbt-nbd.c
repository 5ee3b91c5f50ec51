/* The user-managed NBD workflow: an export that already offers
 * qemu:dirty-bitmap:NAME. The user rotates the bitmaps; pilotlight checks
 * the bitmap against the parent snapshot and reads it, nothing more. */
#include <errno.h>
#include <stdio.h>

#include "../source/nbd-source.h"
#include "../util/error.h"
#include "cbt-internal.h"

static int nbd_start(struct cbt_session *s, const struct cbt_plan *p)
{
  const char *next = p->next_bitmap ? p->next_bitmap : p->bitmap;
  char why[512], ctx[1100];
  int usable = 0;
  if (!p->nbd_uri || !p->bitmap) {
    set_error(EINVAL, "changed-block tracking over NBD needs an NBD URI and a bitmap");
    return -1;
  }
  if (cbt_bitmap_context(p->bitmap, ctx, sizeof ctx) == -1)
    return -1;
  s->src = nbd_source_open_ctx(p->nbd_uri, ctx);
  if (!s->src)
    return -1;
  if (p->has_parent && !p->full) {
    const char *r = cbt_parent_mismatch(p->parent_cbt, p->parent_size, p->bitmap, s->src->size, why,
                                        sizeof why);
    if (r)
      cbt_fall_back(s, "%s", r);
    else
      usable = 1;
  }
  return cbt_use_bitmap(s, usable, p->bitmap, next);
}

const struct cbt_workflow_ops cbt_nbd_ops = {
    .name = "nbd",
    .size = sizeof(struct cbt_session),
    .start = nbd_start,
};
