/* Whole, sparse and zeroing writes with EINTR and short-write handling. */
#include "fileio.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "error.h"
#include "hash.h"

#define PIECE 65536u

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
