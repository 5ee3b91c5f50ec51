/* Restore a snapshot to a raw file or block device: sparse where blocks are
 * zero, each chunk verified as it is written, fsynced at the end. */
#include "repo-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../util/error.h"
#include "../util/hash.h"
#include "../util/progress.h"

struct restore_ctx {
  int fd;
  const char *target;
  const struct blockmap *m;
  int sparse; /* the target reads as zeros: zero runs inside a block need no write */
  _Atomic uint64_t done;
};

#define SPARSE_UNIT 65536

static int write_range(struct restore_ctx *c, const void *data, size_t len, uint64_t off)
{
  size_t done = 0;
  while (done < len) {
    ssize_t w = pwrite(c->fd, (const char *)data + done, len - done, (off_t)(off + done));
    if (w == -1 && errno == EINTR)
      continue;
    if (w == -1) {
      set_error(errno, "%s: write at offset %llu", c->target, (unsigned long long)(off + done));
      return -1;
    }
    done += (size_t)w;
  }
  return 0;
}

static int write_block(void *opaque, uint64_t block, const void *data, size_t len)
{
  struct restore_ctx *c = opaque;
  uint64_t off = block * c->m->block_size;
  const char *p = data;
  c->done += len;
  if (!c->sparse)
    return write_range(c, data, len, off);
  /* Write only the non-zero 64 KiB pieces, so holes inside a block stay holes. */
  for (size_t i = 0; i < len;) {
    size_t n = len - i < SPARSE_UNIT ? len - i : SPARSE_UNIT;
    if (is_zero(p + i, n)) {
      i += n;
      continue;
    }
    size_t j = i + n;
    while (j < len) {
      size_t m = len - j < SPARSE_UNIT ? len - j : SPARSE_UNIT;
      if (is_zero(p + j, m))
        break;
      j += m;
    }
    if (write_range(c, p + i, j - i, off + i) == -1)
      return -1;
    i = j;
  }
  return 0;
}

/* Zero [off, off+len) on a block device that may hold old data. */
static int zero_device_range(int fd, const char *target, uint64_t off, uint64_t len)
{
  uint64_t range[2] = {off, len};
  static const char zeros[1 << 16];
  if (ioctl(fd, BLKZEROOUT, range) == 0)
    return 0;
  for (uint64_t done = 0; done < len;) {
    size_t n = len - done < sizeof zeros ? (size_t)(len - done) : sizeof zeros;
    ssize_t w = pwrite(fd, zeros, n, (off_t)(off + done));
    if (w == -1 && errno == EINTR)
      continue;
    if (w == -1) {
      set_error(errno, "%s: zeroing at offset %llu", target, (unsigned long long)(off + done));
      return -1;
    }
    done += (uint64_t)w;
  }
  return 0;
}

int repo_restore(struct repo *r, const struct snapshot *s, const struct restore_opts *o)
{
  struct blockmap m = {0};
  struct restore_ctx c = {.fd = -1, .target = o->target, .m = &m};
  uint64_t *blocks = NULL;
  size_t n = 0;
  int ret = -1, is_dev = 0, created = 0;
  uint64_t dev_size = UINT64_MAX;
  struct stat st;

  if (stat(o->target, &st) == 0) {
    if (!o->force) {
      set_error_code(EEXIST, "%s exists: add --force to overwrite it", o->target);
      return -1;
    }
    is_dev = S_ISBLK(st.st_mode);
    if (!is_dev && !S_ISREG(st.st_mode)) {
      set_error_code(EINVAL, "%s is not a regular file or block device", o->target);
      return -1;
    }
    c.fd = open(o->target, O_WRONLY | O_CLOEXEC | (is_dev ? O_EXCL : 0));
  } else if (errno == ENOENT) {
    c.fd = open(o->target, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    created = c.fd != -1;
  } else {
    set_error(errno, "%s", o->target);
    return -1;
  }
  if (c.fd == -1) {
    set_error(errno, "%s: cannot open the restore target for writing", o->target);
    return -1;
  }
  if (is_dev) {
    uint64_t size;
    if (ioctl(c.fd, BLKGETSIZE64, &size) == -1) {
      set_error(errno, "%s: BLKGETSIZE64", o->target);
      goto out;
    }
    /* A smaller device will do when every non-zero block fits. */
    if (size < s->size && s->used_end > size) {
      set_error_code(ENOSPC, "%s holds %llu bytes, too small for disk %s: its highest used "
                     "offset is %llu", o->target, (unsigned long long)size, s->disk,
                     (unsigned long long)s->used_end);
      goto out;
    }
    dev_size = size;
  } else if (ftruncate(c.fd, 0) == -1 || ftruncate(c.fd, (off_t)s->size) == -1) {
    /* Truncating to zero first turns every old byte into a hole. */
    set_error(errno, "%s: cannot size the target to %llu bytes", o->target,
              (unsigned long long)s->size);
    goto out;
  }
  c.sparse = !is_dev;
  if (repo_load_blockmap(r, s, &m) == -1)
    goto out;
  blocks = malloc((m.nblocks ? m.nblocks : 1) * sizeof *blocks);
  if (!blocks) {
    set_error(errno, "malloc");
    goto out;
  }
  for (uint64_t i = 0; i < m.nblocks; i++) {
    if (!blockmap_is_zero(&m, i)) {
      blocks[n++] = i;
    } else if (is_dev) {
      uint64_t j = i;
      while (j + 1 < m.nblocks && blockmap_is_zero(&m, j + 1))
        j++;
      uint64_t off = i * m.block_size;
      uint64_t end = (j + 1) * m.block_size < m.size ? (j + 1) * m.block_size : m.size;
      if (end > dev_size)
        end = dev_size;
      if (off < end && zero_device_range(c.fd, o->target, off, end - off) == -1)
        goto out;
      i = j;
    }
  }
  struct progress prog = {.label = s->disk, .done = &c.done};
  for (size_t i = 0; i < n; i++)
    prog.total += blockmap_block_len(&m, blocks[i]);
  progress_start(&prog, o->progress);
  int rc = repo_read_blocks(r, &m, blocks, n, write_block, &c);
  progress_stop(&prog);
  if (rc == -1)
    goto out;
  if (fsync(c.fd) == -1) {
    set_error(errno, "%s: fsync", o->target);
    goto out;
  }
  ret = 0;
out:
  if (c.fd != -1 && close(c.fd) == -1 && ret == 0) {
    set_error(errno, "%s: close", o->target);
    ret = -1;
  }
  if (ret == -1 && created)
    unlink(o->target); /* a half-written new file must not pass for a restore */
  free(blocks);
  blockmap_free(&m);
  return ret;
}
