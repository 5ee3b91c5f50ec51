/* Export: read a snapshot's non-zero blocks in batches (the repository
 * hands them back from several threads in pack order) and feed them to an
 * image writer in disk order. A batch is bounded in bytes, so memory stays
 * flat whatever the disk size. */
#define _GNU_SOURCE
#include "image-export.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../util/error.h"
#include "../util/progress.h"

#define BATCH_BYTES (32u << 20)

struct batch {
  const uint64_t *blocks; /* sorted */
  size_t n;
  uint8_t *buf; /* n slots of block_size bytes */
  uint32_t block_size;
};

static int cmp_u64(const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static int batch_store(void *opaque, uint64_t block, const void *data, size_t len)
{
  struct batch *b = opaque;
  const uint64_t *p = bsearch(&block, b->blocks, b->n, sizeof *b->blocks, cmp_u64);
  if (p == NULL || len > b->block_size) {
    set_error(EIO, "export: unexpected block %llu from the reader", (unsigned long long)block);
    return -1;
  }
  memcpy(b->buf + (size_t)(p - b->blocks) * b->block_size, data, len);
  return 0;
}

int image_export(struct repo *r, const struct snapshot *s, const struct image_export_opts *o,
                 struct image_export_stats *st)
{
  const struct progress_ops *progress = o->progress;
  struct blockmap m = {0};
  struct image_writer *w = NULL;
  struct batch b = {0};
  uint64_t *list = NULL;
  uint64_t read = 0;
  _Atomic uint64_t done = 0;
  struct progress_info prog = {.label = s->disk, .done = &done};
  int ret = -1;

  if (repo_load_blockmap(r, s, &m) == -1)
    goto out;
  size_t per = BATCH_BYTES / m.block_size ? BATCH_BYTES / m.block_size : 1;
  list = malloc(per * sizeof *list);
  b.buf = malloc(per * (size_t)m.block_size);
  if (list == NULL || b.buf == NULL) {
    set_error(ENOMEM, "out of memory");
    goto out;
  }
  b.blocks = list;
  b.block_size = m.block_size;
  w = image_writer_new(o->format, o->path, s->size, o->threads, o->force);
  if (w == NULL)
    goto out;
  for (uint64_t i = 0; i < m.nblocks; i++) {
    if (!blockmap_is_zero(&m, i))
      prog.total += blockmap_block_len(&m, i);
  }
  progress_begin(progress, &prog);
  for (uint64_t next = 0; next < m.nblocks;) {
    b.n = 0;
    while (next < m.nblocks && b.n < per) {
      if (!blockmap_is_zero(&m, next))
        list[b.n++] = next;
      next++;
    }
    if (b.n == 0)
      continue;
    if (repo_read_blocks(r, &m, list, b.n, batch_store, &b) == -1)
      goto out;
    for (size_t i = 0; i < b.n; i++) {
      if (o->cancel != NULL && *o->cancel) {
        set_error_code(ECANCELED, "%s: export interrupted", o->path);
        goto out;
      }
      size_t len = blockmap_block_len(&m, list[i]);
      if (image_writer_write(w, list[i] * m.block_size, b.buf + i * (size_t)m.block_size, len) ==
          -1)
        goto out;
      read += len;
      done += len;
    }
  }
  if (image_writer_finish(w) == -1)
    goto out;
  if (st != NULL) {
    st->bytes_read = read;
    if (image_writer_file_size(w, &st->file_size) == -1)
      goto out;
  }
  ret = 0;
out:
  progress_end(progress);
  image_writer_free(w);
  free(list);
  free(b.buf);
  blockmap_free(&m);
  return ret;
}
