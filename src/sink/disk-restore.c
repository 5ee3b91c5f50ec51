/* Restore a snapshot to a raw file or block device: sparse where blocks are
 * zero, each chunk verified as it is written, fsynced and committed through
 * the sink at the end. */
#include "restore.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/error.h"
#include "../util/progress.h"
#include "image-export.h"
#include "sink.h"

struct restore_ctx {
  struct sink *sink;
  const struct blockmap *m;
  const _Atomic int *cancel;
  _Atomic uint64_t done;
  pthread_mutex_t write_lock;
};

static int write_block(void *opaque, uint64_t block, const void *data, size_t len)
{
  struct restore_ctx *c = opaque;
  uint64_t off = block * c->m->block_size;
  if (c->cancel != NULL && *c->cancel) {
    set_error_code(ECANCELED, "%s: restore interrupted", c->sink->path);
    return -1;
  }
  c->done += len;
  /* Several reader threads (eight on S3) call this at once. Buffered writes
   * to one file take its inode lock anyway; waiting here sleeps where the
   * kernel's lock spins (a third less system time restoring from S3). */
  pthread_mutex_lock(&c->write_lock);
  int rc = c->sink->fresh ? sink_pwrite_sparse(c->sink, data, len, off)
                          : sink_pwrite(c->sink, data, len, off);
  pthread_mutex_unlock(&c->write_lock);
  return rc;
}

/* The non-zero blocks of m into *blocks (caller frees); on a target that
 * does not read as zeros, the zero runs are zeroed on the way. */
static int plan_blocks(const struct blockmap *m, struct sink *sk, uint64_t **blocks, size_t *n)
{
  *n = 0;
  *blocks = malloc((m->nblocks ? m->nblocks : 1) * sizeof **blocks);
  if (*blocks == NULL) {
    set_error(errno, "malloc");
    return -1;
  }
  for (uint64_t i = 0; i < m->nblocks; i++) {
    if (!blockmap_is_zero(m, i)) {
      (*blocks)[(*n)++] = i;
      continue;
    }
    if (sk->fresh)
      continue;
    uint64_t j = i;
    while (j + 1 < m->nblocks && blockmap_is_zero(m, j + 1))
      j++;
    uint64_t off = i * m->block_size;
    uint64_t end = (j + 1) * m->block_size < m->size ? (j + 1) * m->block_size : m->size;
    if (sink_zero(sk, off, end - off) == -1)
      return -1;
    i = j;
  }
  return 0;
}

int repo_restore(struct repo *r, const struct snapshot *s, const struct restore_opts *o)
{
  struct blockmap m = {0};
  struct restore_ctx c = {.m = &m, .cancel = o->cancel, .write_lock = PTHREAD_MUTEX_INITIALIZER};
  uint64_t *blocks = NULL;
  size_t n = 0;
  int ret = -1;
  char what[512];

  if (strcmp(o->target, "-") == 0) {
    /* Standard output takes the bytes in order: the raw image writer does that. */
    struct image_export_opts eo = {
        .format = IMAGE_RAW, .path = "-", .cancel = o->cancel, .progress = o->progress};
    return image_export(r, s, &eo, NULL);
  }
  c.sink = sink_open(o->target, o->force ? SINK_EXISTING | SINK_IGNORE_MARK : 0);
  if (c.sink == NULL)
    return -1;
  /* A smaller device will do when every non-zero block fits. */
  if (c.sink->is_dev && c.sink->size < s->size && s->used_end > c.sink->size) {
    set_error_code(
        ENOSPC, "%s holds %llu bytes, too small for disk %s: its highest used offset is %llu",
        o->target, (unsigned long long)c.sink->size, s->disk, (unsigned long long)s->used_end);
    goto out;
  }
  snprintf(what, sizeof what, "%s@%.12s", s->disk, s->id);
  if (sink_mark_incomplete(c.sink, what) == -1 || sink_set_size(c.sink, s->size, 1) == -1)
    goto out;
  if (repo_load_blockmap(r, s, &m) == -1 || plan_blocks(&m, c.sink, &blocks, &n) == -1)
    goto out;
  struct progress_info prog = {.label = s->disk, .done = &c.done};
  for (size_t i = 0; i < n; i++)
    prog.total += blockmap_block_len(&m, blocks[i]);
  progress_begin(o->progress, &prog);
  int rc = repo_read_blocks(r, &m, blocks, n, write_block, &c);
  progress_end(o->progress);
  if (rc == -1 || sink_commit(c.sink) == -1)
    goto out;
  ret = 0;
out:
  sink_free(c.sink); /* a half-written new file must not pass for a restore */
  free(blocks);
  blockmap_free(&m);
  return ret;
}
