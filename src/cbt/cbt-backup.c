/* The changed-block tracking part of a backup: the parent lookup and the
 * block-size policy around a session, and --verify-cbt's compare of the
 * committed snapshot with the disk. Library code: it sets errors, prints
 * nothing. */
#include <errno.h>
#include <string.h>

#include "../core/blockmap-compare.h"
#include "../util/error.h"
#include "cbt.h"

struct cbt_session *cbt_backup_start(struct repo *r, const struct cbt_plan *plan,
                                     struct backup_opts *bo)
{
  struct cbt_plan p = *plan;
  struct snapshot *parent = repo_find_snapshot(r, bo->disk, "latest");
  struct cbt_session *s = NULL;
  if (!parent && get_errno() != ENOENT)
    return NULL;
  p.full = bo->full;
  p.has_parent = parent != NULL;
  p.parent_cbt = parent ? parent->cbt : NULL;
  p.parent_size = parent ? parent->size : 0;
  s = cbt_session_start(&p);
  snapshot_free(parent);
  if (!s)
    return NULL;
  /* A disk's first backup fixes its block size: unless told otherwise,
   * match QEMU's default bitmap granularity (see repo.h). */
  if (!p.has_parent && !bo->block_size)
    bo->block_size = repo_cbt_block_size(s->src->size);
  bo->src = s->src;
  bo->changed = s->changed;
  bo->cbt = s->cookie;
  bo->mode = s->mode;
  if (s->fell_back)
    bo->note = s->note;
  return s;
}

static int read_source(void *opaque, void *buf, size_t len, uint64_t off)
{
  return source_pread(opaque, buf, len, off);
}

int cbt_backup_verify(struct repo *r, struct cbt_session *s, const struct snapshot *snap,
                      struct cbt_check *out)
{
  struct blockmap m = {0};
  struct blockmap_compare_result cr;
  int ret = -1;
  memset(out, 0, sizeof *out);
  if (repo_load_blockmap(r, snap, &m) == -1)
    goto out;
  if (m.block_size == 0 || m.nblocks != (s->src->size + m.block_size - 1) / m.block_size) {
    set_error_code(EINVAL,
                   "--verify-cbt: the snapshot covers %llu blocks of %u bytes, but the disk has "
                   "%llu bytes",
                   (unsigned long long)m.nblocks, m.block_size, (unsigned long long)s->src->size);
    goto out;
  }
  struct blockmap_compare_opts co = {
      .limit = s->src->size, .threads = repo_threads(r), .read = read_source, .opaque = s->src};
  if (blockmap_compare(&m, &co, &cr) == -1) {
    prefix_error("--verify-cbt");
    goto out;
  }
  out->nblocks = m.nblocks;
  out->block_size = m.block_size;
  out->mismatches = cr.mismatches;
  out->first = cr.first;
  ret = 0;
out:
  blockmap_free(&m);
  return ret;
}
