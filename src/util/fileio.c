/* Whole reads and writes with EINTR and short-transfer handling, sparse and
 * zeroing writes, and write-temporary / fsync / rename / fsync-folder. */
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "hash.h"
#include "ratelimit.h"

#define PIECE 65536u

int pread_all(int fd, void *buf, size_t len, uint64_t off, const char *name)
{
  for (size_t got = 0; got < len;) {
    ssize_t r = pread(fd, (char *)buf + got, len - got, (off_t)(off + got));
    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1) {
      set_error(errno, "%s: read at offset %llu", name, (unsigned long long)(off + got));
      return -1;
    }
    if (r == 0) {
      set_error_code(EIO, "%s: truncated: wanted %zu bytes at offset %llu, it ends at %llu", name,
                     len, (unsigned long long)off, (unsigned long long)(off + got));
      return -1;
    }
    got += (size_t)r;
  }
  return 0;
}

int read_all(int fd, void *buf, size_t cap, size_t *len, const char *name)
{
  size_t got = 0;
  while (got < cap) {
    ssize_t r = read(fd, (char *)buf + got, cap - got);
    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1) {
      set_error(errno, "%s: read", name);
      return -1;
    }
    if (r == 0)
      break;
    got += (size_t)r;
  }
  *len = got;
  return 0;
}

int write_all(int fd, const void *buf, size_t len, const char *name)
{
  for (size_t done = 0; done < len;) {
    ssize_t w = write(fd, (const char *)buf + done, len - done);
    if (w == -1 && errno == EINTR)
      continue;
    if (w == -1) {
      set_error(errno, "%s: write", name);
      return -1;
    }
    done += (size_t)w;
  }
  return 0;
}

int pwrite_all(int fd, const void *buf, size_t len, uint64_t off, const char *name)
{
  for (size_t done = 0; done < len;) {
    ssize_t w = pwrite(fd, (const char *)buf + done, len - done, (off_t)(off + done));
    if (w == -1 && errno == EINTR)
      continue;
    if (w == -1) {
      set_error(errno, "%s: write at offset %llu", name, (unsigned long long)(off + done));
      return -1;
    }
    done += (size_t)w;
  }
  return 0;
}

/* Length of the piece of [i, len) that starts at file offset off + i. */
static size_t piece_at(uint64_t off, size_t i, size_t len)
{
  size_t n = PIECE - (size_t)((off + i) % PIECE);
  return n < len - i ? n : len - i;
}

int pwrite_sparse(int fd, const void *buf, size_t len, uint64_t off, const char *name)
{
  const unsigned char *p = buf;
  size_t i = 0;
  while (i < len) {
    /* Skip a run of zero pieces, then write the run of data pieces after it
     * with one call. */
    while (i < len && is_zero(p + i, piece_at(off, i, len)))
      i += piece_at(off, i, len);
    size_t start = i;
    while (i < len && !is_zero(p + i, piece_at(off, i, len)))
      i += piece_at(off, i, len);
    if (i > start && pwrite_all(fd, p + start, i - start, off + start, name) == -1)
      return -1;
  }
  return 0;
}

int zero_range(int fd, int is_dev, uint64_t off, uint64_t len, const char *name)
{
  static const char zeros[PIECE];
  if (len == 0)
    return 0;
  if (!is_dev) {
    if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) == 0)
      return 0;
  } else {
    uint64_t range[2] = {off, len};
    if (ioctl(fd, BLKZEROOUT, range) == 0)
      return 0;
  }
  for (uint64_t done = 0; done < len;) {
    size_t n = len - done < sizeof zeros ? (size_t)(len - done) : sizeof zeros;
    if (pwrite_all(fd, zeros, n, off + done, name) == -1)
      return -1;
    done += n;
  }
  return 0;
}

static atomic_uint tmp_counter;

int fsync_folder_of(int dirfd, const char *name, const char *shown)
{
  char dir[PATH_MAX];
  const char *slash = strrchr(name, '/');
  size_t n = slash ? (size_t)(slash - name) : 0;
  if (slash == name)
    n = 1; /* "/x": the root folder */
  if (n == 0) {
    dir[0] = '.';
    dir[1] = 0;
  } else {
    memcpy(dir, name, n);
    dir[n] = 0;
  }
  int fd = openat(dirfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd == -1 || fsync(fd) == -1) {
    set_error(errno, "%s: fsync of its folder", shown);
    if (fd != -1)
      close(fd);
    return -1;
  }
  close(fd);
  return 0;
}

int write_file_atomic(int dirfd, const char *label, const char *name, const void *buf, size_t len,
                      mode_t mode, unsigned flags)
{
  return write_file_atomic_limited(dirfd, label, name, buf, len, mode, flags, NULL);
}

/* pwrite_all of buf in ratelimit_piece pieces, each after its take. */
static int pwrite_limited(int fd, const void *buf, size_t len, struct ratelimit *limit,
                          const char *name)
{
  size_t piece = ratelimit_piece(limit);
  for (size_t off = 0; off < len;) {
    size_t n = len - off < piece ? len - off : piece;
    if (ratelimit_take(limit, n) == -1 ||
        pwrite_all(fd, (const char *)buf + off, n, off, name) == -1)
      return -1;
    off += n;
  }
  return 0;
}

int write_file_atomic_limited(int dirfd, const char *label, const char *name, const void *buf,
                              size_t len, mode_t mode, unsigned flags, struct ratelimit *limit)
{
  char tmp[PATH_MAX], shown[PATH_MAX + 256], shown_tmp[PATH_MAX + 256];
  int fd = -1, ret = -1;
  if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%u", name, (long)getpid(),
               atomic_fetch_add(&tmp_counter, 1)) >= (int)sizeof tmp) {
    set_error(ENAMETOOLONG, "%s", name);
    return -1;
  }
  snprintf(shown, sizeof shown, "%s%s%s", label ? label : "", label ? "/" : "", name);
  snprintf(shown_tmp, sizeof shown_tmp, "%s%s%s", label ? label : "", label ? "/" : "", tmp);
  fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd == -1) {
    set_error(errno, "%s: cannot create", shown_tmp);
    return -1;
  }
  if (pwrite_limited(fd, buf, len, limit, shown_tmp) == -1)
    goto out;
  if (!(flags & WRITE_ATOMIC_NOSYNC) && fsync(fd) == -1) {
    set_error(errno, "%s: fsync", shown_tmp);
    goto out;
  }
  int rc = close(fd);
  fd = -1;
  if (rc == -1) {
    set_error(errno, "%s: close", shown_tmp);
    goto out;
  }
  if (renameat2(dirfd, tmp, dirfd, name, (flags & WRITE_ATOMIC_EXCL) ? RENAME_NOREPLACE : 0) ==
      -1) {
    if (errno == EEXIST)
      set_error(EEXIST, "%s: already exists", shown);
    else
      set_error(errno, "%s: rename", shown);
    goto out;
  }
  /* The file is in place; a failed folder fsync must not remove it. */
  return (flags & WRITE_ATOMIC_NOSYNC) ? 0 : fsync_folder_of(dirfd, name, shown);
out:
  if (fd != -1)
    close(fd);
  unlinkat(dirfd, tmp, 0);
  return ret;
}

int map_file_at(int dirfd, const char *name, size_t max, const char *shown, void **p, size_t *len)
{
  struct stat st;
  int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC), ret = -1;
  if (fd == -1) {
    set_error(errno, "%s", shown);
    return -1;
  }
  if (fstat(fd, &st) == -1) {
    set_error(errno, "%s: stat", shown);
  } else if ((uint64_t)st.st_size > max) {
    set_error(EFBIG, "%s: %lld bytes, more than the %zu allowed", shown, (long long)st.st_size,
              max);
  } else if (st.st_size == 0) {
    set_error_code(EINVAL, "%s: empty", shown); /* mmap cannot map nothing */
  } else {
    void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m == MAP_FAILED) {
      set_error(errno, "%s: mmap", shown);
    } else {
      *p = m;
      *len = (size_t)st.st_size;
      ret = 0;
    }
  }
  close(fd);
  return ret;
}

void unmap_file(void *p, size_t len)
{
  if (p)
    munmap(p, len);
}
