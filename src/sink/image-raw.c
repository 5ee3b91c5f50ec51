/* The raw image writer: the disk's bytes at their own offsets in a sparse
 * file, zero regions left as holes. */
#define _GNU_SOURCE
#include "image-writer.h"

#include <errno.h>
#include <stdlib.h>

#include "../util/error.h"
#include "../util/compiler.h"

static int raw_start(struct image_writer *w PL_UNUSED)
{
  return 0;
}

static int raw_write(struct image_writer *w, uint64_t off, const void *buf, size_t len)
{
  return image_writer_write_sparse(w, off, buf, len, 0);
}

static int raw_finish(struct image_writer *w)
{
  return image_writer_set_size(w, w->disk_size);
}

static void raw_free(struct image_writer *w PL_UNUSED)
{
}

static const struct image_writer_ops raw_ops = {
    .name = "raw",
    .start = raw_start,
    .write = raw_write,
    .finish = raw_finish,
    .free = raw_free,
};

struct image_writer *raw_image_writer_alloc(void)
{
  struct image_writer *w = calloc(1, sizeof *w);
  if (w == NULL) {
    set_error(ENOMEM, "out of memory");
    return NULL;
  }
  w->ops = &raw_ops;
  return w;
}
