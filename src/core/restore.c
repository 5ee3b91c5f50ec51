/* Restore a snapshot to a raw file or block device: sparse where blocks are
 * zero, each chunk verified as it is written, fsynced at the end. */
#include "repo-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../util/error.h"
#include "../util/fileio.h"
#include "../util/hash.h"
#include "../util/progress.h"

struct restore_ctx {
  int fd;
  const char *target;
  const struct blockmap *m;
  int sparse; /* the target reads as zeros: zero runs inside a block need no write */
  _Atomic uint64_t done;
  pthread_mutex_t write_lock;
};

static int write_block(void *opaque, uint64_t block, const void *data, size_t len)
{
  struct restore_ctx *c = opaque;
  uint64_t off = block * c->m->block_size;
  c->done += len;
  /* Several reader threads (eight on S3) call this at once. Buffered writes
   * to one file take its inode lock anyway; waiting here sleeps where the
   * kernel's lock spins (a third less system time restoring from S3). */
  pthread_mutex_lock(&c->write_lock);
  int rc = c->sparse ? pwrite_sparse(c->fd, data, len, off, c->target)
                     : pwrite_all(c->fd, data, len, off, c->target);
  pthread_mutex_unlock(&c->write_lock);
  return rc;
}

int repo_restore(struct repo *r, const struct snapshot *s, const struct restore_opts *o)
{
  struct blockmap m = {0};
  struct restore_ctx c = {
      .fd = -1, .target = o->target, .m = &m, .write_lock = PTHREAD_MUTEX_INITIALIZER};
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
      set_error_code(ENOSPC,
                     "%s holds %llu bytes, too small for disk %s: its highest used "
                     "offset is %llu",
                     o->target, (unsigned long long)size, s->disk, (unsigned long long)s->used_end);
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
      if (off < end && zero_range(c.fd, 1, off, end - off, o->target) == -1)
        goto out;
      i = j;
    }
  }
  struct progress_info prog = {.label = s->disk, .done = &c.done};
  for (size_t i = 0; i < n; i++)
    prog.total += blockmap_block_len(&m, blocks[i]);
  progress_begin(o->progress, &prog);
  int rc = repo_read_blocks(r, &m, blocks, n, write_block, &c);
  progress_end(o->progress);
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
