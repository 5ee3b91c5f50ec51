/* Read a restored or replicated target back and compare it with a
 * snapshot's block map (blockmap_compare, one reader per CPU). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "../core/blockmap-compare.h"
#include "../util/error.h"
#include "../util/fileio.h"
#include "replica.h"
#include "sink.h"

struct verify_target {
  int fd;
  char *shown; /* "verify PATH", for messages */
};

static int read_target(void *opaque, void *buf, size_t len, uint64_t off)
{
  struct verify_target *t = opaque;
  return pread_all(t->fd, buf, len, off, t->shown);
}

int target_verify(struct repo *r, const struct snapshot *s, const char *target)
{
  struct blockmap m = {0};
  struct verify_target t = {.fd = -1};
  struct blockmap_compare_result res;
  int ret = -1, is_dev;
  uint64_t size;

  if (asprintf(&t.shown, "verify %s", target) == -1) {
    t.shown = NULL;
    set_error_msg(ENOMEM, "out of memory");
    goto out;
  }
  if (sink_open_read(target, &t.fd, &size, &is_dev) == -1)
    goto out;
  if (repo_load_blockmap(r, s, &m) == -1)
    goto out;
  uint64_t limit = size < m.size ? size : m.size;
  if (size < m.size && !is_dev) {
    set_error(EIO, "verify %s: the file is %llu bytes, the disk %llu", target,
              (unsigned long long)size, (unsigned long long)m.size);
    goto out;
  }
  /* A shrunk device: what lies past its end must be zero in the map. */
  for (uint64_t b = 0; b < m.nblocks; b++) {
    if (b * (uint64_t)m.block_size + blockmap_block_len(&m, b) > limit &&
        !blockmap_is_zero(&m, b)) {
      set_error(ENOSPC, "verify %s: block at offset %llu lies past the target's end", target,
                (unsigned long long)(b * m.block_size));
      goto out;
    }
  }
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  struct blockmap_compare_opts co = {
      .limit = limit, .threads = (int)ncpu, .stop_first = 1, .read = read_target, .opaque = &t};
  if (blockmap_compare(&m, &co, &res) == -1)
    goto out;
  if (res.mismatches) {
    set_error(EIO, "verify %s: the block at offset %llu differs from snapshot %.12s", target,
              (unsigned long long)(res.first * m.block_size), s->id);
    goto out;
  }
  ret = 0;
out:
  if (t.fd != -1)
    close(t.fd);
  free(t.shown);
  blockmap_free(&m);
  return ret;
}
