/* Read a restored or replicated target back and compare it with a
 * snapshot's block map, block by block, using every CPU for SHA-256. */
#define _GNU_SOURCE
#include "replica.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../util/error.h"
#include "../util/hash.h"

struct verifier {
  int fd;
  const char *target;
  const struct blockmap *m;
  uint64_t nblocks; /* blocks to read (those that start before the target's end) */
  uint64_t limit;   /* bytes readable: min(target size, disk size) */
  pthread_mutex_t mu;
  uint64_t next;
  int failed;
  uint64_t bad_block; /* lowest differing block */
  int err;            /* errno of a read failure, 0 for a mismatch */
};

static void *verify_worker(void *arg)
{
  struct verifier *v = arg;
  uint8_t *buf = malloc(v->m->block_size);
  uint8_t h[HASH_LEN];
  for (;;) {
    pthread_mutex_lock(&v->mu);
    uint64_t b = v->next++;
    int stop = v->failed || buf == NULL;
    if (buf == NULL && !v->failed) {
      v->failed = 1;
      v->err = ENOMEM;
      v->bad_block = 0;
    }
    pthread_mutex_unlock(&v->mu);
    if (stop || b >= v->nblocks)
      break;
    uint64_t off = b * v->m->block_size;
    size_t len = blockmap_block_len(v->m, b);
    if (off + len > v->limit)
      len = (size_t)(v->limit - off); /* shrunk target: the rest is checked zero in the map */
    int bad = 0, err = 0;
    for (size_t got = 0; got < len;) {
      ssize_t r = pread(v->fd, buf + got, len - got, (off_t)(off + got));
      if (r == -1 && errno == EINTR)
        continue;
      if (r <= 0) {
        err = r == 0 ? EIO : errno;
        break;
      }
      got += (size_t)r;
    }
    if (!err) {
      if (blockmap_is_zero(v->m, b)) {
        bad = !is_zero(buf, len);
      } else {
        sha256(buf, len, h);
        bad = memcmp(h, v->m->h[b], HASH_LEN) != 0;
      }
    }
    if (bad || err) {
      pthread_mutex_lock(&v->mu);
      if (!v->failed || b < v->bad_block) {
        v->bad_block = b;
        v->err = err;
      }
      v->failed = 1;
      pthread_mutex_unlock(&v->mu);
    }
  }
  free(buf);
  return NULL;
}

int target_verify(struct repo *r, const struct snapshot *s, const char *target)
{
  struct blockmap m = {0};
  struct verifier v = {.fd = -1, .target = target, .m = &m};
  pthread_t t[16];
  int nt = 0, ret = -1;
  struct stat st;
  uint64_t size;

  v.fd = open(target, O_RDONLY | O_CLOEXEC);
  if (v.fd == -1 || fstat(v.fd, &st) == -1) {
    set_error(errno, "%s: cannot open for verification", target);
    goto out;
  }
  if (S_ISBLK(st.st_mode)) {
    if (ioctl(v.fd, BLKGETSIZE64, &size) == -1) {
      set_error(errno, "%s: BLKGETSIZE64", target);
      goto out;
    }
  } else {
    size = (uint64_t)st.st_size;
  }
  if (repo_load_blockmap(r, s, &m) == -1)
    goto out;
  v.limit = size < m.size ? size : m.size;
  if (size < m.size && !S_ISBLK(st.st_mode)) {
    set_error(EIO, "verify %s: the file is %llu bytes, the disk %llu", target,
              (unsigned long long)size, (unsigned long long)m.size);
    goto out;
  }
  for (uint64_t b = 0; b < m.nblocks; b++) {
    if (b * (uint64_t)m.block_size + blockmap_block_len(&m, b) > v.limit &&
        !blockmap_is_zero(&m, b)) {
      set_error(ENOSPC, "verify %s: block at offset %llu lies past the target's end", target,
                (unsigned long long)(b * m.block_size));
      goto out;
    }
  }
  v.nblocks = (v.limit + m.block_size - 1) / m.block_size;
  pthread_mutex_init(&v.mu, NULL);
  long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
  int want = ncpu < 1 ? 1 : ncpu > 16 ? 16 : (int)ncpu;
  for (; nt < want; nt++) {
    if (pthread_create(&t[nt], NULL, verify_worker, &v) != 0)
      break;
  }
  if (nt == 0)
    verify_worker(&v);
  for (int i = 0; i < nt; i++)
    pthread_join(t[i], NULL);
  pthread_mutex_destroy(&v.mu);
  if (v.failed) {
    if (v.err)
      set_error(v.err, "verify %s: read at offset %llu", target,
                (unsigned long long)(v.bad_block * m.block_size));
    else
      set_error(EIO, "verify %s: the block at offset %llu differs from snapshot %.12s", target,
                (unsigned long long)(v.bad_block * m.block_size), s->id);
    goto out;
  }
  ret = 0;
out:
  if (v.fd != -1)
    close(v.fd);
  blockmap_free(&m);
  return ret;
}
