/* Raw image files and block devices, read with pread. Allocation comes from
 * SEEK_DATA/SEEK_HOLE on files; a block device reports all of itself. */
#define _GNU_SOURCE
#include "source.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../util/error.h"
#include "../util/fileio.h"

struct file_source {
  struct source base;
  int fd;
  int is_blockdev;
};

static int file_pread(struct source *s, void *buf, size_t len, uint64_t off)
{
  struct file_source *fs = (struct file_source *)s;
  return pread_all(fs->fd, buf, len, off, s->name);
}

static int file_allocated(struct source *s, uint64_t off, uint64_t len, extent_cb cb, void *opaque)
{
  struct file_source *fs = (struct file_source *)s;
  uint64_t end = off + len;
  if (fs->is_blockdev)
    return len ? cb(opaque, off, len) : 0;
  while (off < end) {
    off_t data = lseek(fs->fd, (off_t)off, SEEK_DATA);
    if (data == -1) {
      if (errno == ENXIO)
        return 0;          /* only a hole remains */
      if (errno == EINVAL) /* no SEEK_DATA support: everything is data */
        return cb(opaque, off, end - off);
      set_error(errno, "%s: SEEK_DATA", s->name);
      return -1;
    }
    if ((uint64_t)data >= end)
      return 0;
    off_t hole = lseek(fs->fd, data, SEEK_HOLE);
    if (hole == -1) {
      set_error(errno, "%s: SEEK_HOLE", s->name);
      return -1;
    }
    uint64_t e = (uint64_t)hole < end ? (uint64_t)hole : end;
    if (cb(opaque, (uint64_t)data, e - (uint64_t)data) == -1)
      return -1;
    off = e;
  }
  return 0;
}

static void file_close(struct source *s)
{
  struct file_source *fs = (struct file_source *)s;
  if (fs->fd != -1)
    close(fs->fd);
  free(s->name);
  free(fs);
}

static const struct source_ops file_ops = {
    .name = "file",
    .pread = file_pread,
    .allocated = file_allocated,
    .close = file_close,
};

struct source *file_source_open(const char *path)
{
  struct file_source *fs = calloc(1, sizeof *fs);
  struct stat st;
  if (!fs) {
    set_error(errno, "calloc");
    return NULL;
  }
  fs->base.ops = &file_ops;
  fs->fd = open(path, O_RDONLY | O_CLOEXEC);
  fs->base.name = strdup(path);
  if (fs->fd == -1) {
    set_error(errno, "%s: cannot open the source (check the path and read permission)", path);
    goto fail;
  }
  if (!fs->base.name || fstat(fs->fd, &st) == -1) {
    set_error(errno, "%s: stat", path);
    goto fail;
  }
  if (S_ISBLK(st.st_mode)) {
    uint64_t size;
    if (ioctl(fs->fd, BLKGETSIZE64, &size) == -1) {
      set_error(errno, "%s: BLKGETSIZE64", path);
      goto fail;
    }
    fs->base.size = size;
    fs->is_blockdev = 1;
  } else if (S_ISREG(st.st_mode)) {
    fs->base.size = (uint64_t)st.st_size;
  } else {
    set_error_code(EINVAL, "%s: not a regular file or block device", path);
    goto fail;
  }
  posix_fadvise(fs->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  return &fs->base;
fail:
  file_close(&fs->base);
  return NULL;
}
