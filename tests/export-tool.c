/* A test driver for the image writers: reads a raw image, hands its
 * allocated extents to an image writer in pieces of a chosen size, and
 * finishes the image. Used by tests/integration/test-export-formats.sh and
 * bench/export.sh.
 *   export-tool FORMAT IN OUT [CHUNK_BYTES [THREADS]] */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "source/source.h"
#include "sink/image-writer.h"
#include "util/error.h"

struct feed {
  struct source *src;
  struct image_writer *w;
  size_t chunk;
  uint8_t *buf;
};

static int feed_extent(void *opaque, uint64_t off, uint64_t len)
{
  struct feed *f = opaque;
  uint64_t end = off + len;
  while (off < end) {
    /* Cut at multiples of the chunk size, as block-aligned callers do. */
    uint64_t n = f->chunk - off % f->chunk;
    if (n > end - off)
      n = end - off;
    if (source_pread(f->src, f->buf, (size_t)n, off) == -1 ||
        image_writer_write(f->w, off, f->buf, (size_t)n) == -1)
      return -1;
    off += n;
  }
  return 0;
}

static int parse_u64(const char *s, uint64_t *out)
{
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v == 0) {
    set_error(EINVAL, "bad number '%s'", s);
    return -1;
  }
  *out = v;
  return 0;
}

int main(int argc, char **argv)
{
  enum image_format fmt;
  struct feed f = {0};
  uint64_t chunk = 1 << 20, threads = 0;
  int ret = 1;
  if (argc < 4 || argc > 6) {
    fprintf(stderr, "usage: export-tool raw|vmdk|vhd|vhd-fixed IN OUT [CHUNK_BYTES [THREADS]]\n");
    return 2;
  }
  if (image_format_parse(argv[1], &fmt) == -1 || (argc > 4 && parse_u64(argv[4], &chunk) == -1) ||
      (argc > 5 && parse_u64(argv[5], &threads) == -1))
    goto out;
  if (chunk > (64u << 20)) {
    set_error(EINVAL, "chunk too large");
    goto out;
  }
  f.chunk = (size_t)chunk;
  f.src = source_open(argv[2]);
  if (f.src == NULL)
    goto out;
  f.buf = malloc(f.chunk);
  if (f.buf == NULL) {
    set_error(ENOMEM, "out of memory");
    goto out;
  }
  f.w = image_writer_new(fmt, argv[3], f.src->size, (int)threads, 0);
  if (f.w == NULL)
    goto out;
  if (source_allocated(f.src, 0, f.src->size, feed_extent, &f) == -1 ||
      image_writer_finish(f.w) == -1)
    goto out;
  ret = 0;
out:
  if (ret != 0)
    fprintf(stderr, "export-tool: %s\n", get_error());
  image_writer_free(f.w);
  if (f.src != NULL)
    source_close(f.src);
  free(f.buf);
  return ret;
}
