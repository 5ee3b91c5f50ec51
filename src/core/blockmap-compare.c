/* The parallel read-hash-compare loop shared by the verifiers: workers take
 * the next block number from a counter, read it through the caller's
 * callback and compare its SHA-256 with the block map. */
#include "blockmap-compare.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/error.h"
#include "../util/hash.h"

#define MAX_THREADS 16

struct compare {
  const struct blockmap *m;
  const struct blockmap_compare_opts *o;
  uint64_t nblocks; /* blocks that start below the limit */
  pthread_mutex_t mu;
  uint64_t next;
  uint64_t mismatches;
  uint64_t first;
  int stop;       /* a read failed, or stop_first and a difference was found */
  int err;        /* errno of the first read failure (0: none) */
  char msg[1024]; /* its message */
};

static void fail_read(struct compare *c, int err, const char *msg)
{
  pthread_mutex_lock(&c->mu);
  if (c->err == 0) {
    c->err = err ? err : EIO;
    snprintf(c->msg, sizeof c->msg, "%s", msg);
  }
  c->stop = 1;
  pthread_mutex_unlock(&c->mu);
}

/* 1 if block b (len bytes in buf) matches the map. */
static int block_matches(const struct blockmap *m, uint64_t b, const uint8_t *buf, size_t len)
{
  uint8_t h[HASH_LEN];
  if (blockmap_is_zero(m, b))
    return is_zero(buf, len);
  sha256(buf, len, h);
  return memcmp(h, m->h[b], HASH_LEN) == 0;
}

static void *compare_worker(void *arg)
{
  struct compare *c = arg;
  uint8_t *buf = malloc(c->m->block_size);
  if (buf == NULL) {
    fail_read(c, ENOMEM, "out of memory");
    return NULL;
  }
  for (;;) {
    pthread_mutex_lock(&c->mu);
    uint64_t b = c->next++;
    int stop = c->stop;
    pthread_mutex_unlock(&c->mu);
    if (stop || b >= c->nblocks)
      break;
    uint64_t off = b * c->m->block_size;
    size_t len = blockmap_block_len(c->m, b);
    if (off + len > c->o->limit)
      len = (size_t)(c->o->limit - off);
    if (c->o->read(c->o->opaque, buf, len, off) == -1) {
      fail_read(c, get_errno(), get_error());
      break;
    }
    if (block_matches(c->m, b, buf, len))
      continue;
    pthread_mutex_lock(&c->mu);
    c->mismatches++;
    if (b < c->first)
      c->first = b;
    if (c->o->stop_first)
      c->stop = 1;
    pthread_mutex_unlock(&c->mu);
  }
  free(buf);
  return NULL;
}

int blockmap_compare(const struct blockmap *m, const struct blockmap_compare_opts *o,
                     struct blockmap_compare_result *res)
{
  struct compare c = {.m = m, .o = o, .first = UINT64_MAX};
  pthread_t t[MAX_THREADS];
  int nt = 0;
  uint64_t limit = o->limit < m->size ? o->limit : m->size;
  c.nblocks = m->block_size ? (limit + m->block_size - 1) / m->block_size : 0;
  int want = o->threads < 1 ? 1 : o->threads > MAX_THREADS ? MAX_THREADS : o->threads;
  pthread_mutex_init(&c.mu, NULL);
  for (; nt < want; nt++) {
    if (pthread_create(&t[nt], NULL, compare_worker, &c) != 0)
      break;
  }
  if (nt == 0)
    compare_worker(&c);
  for (int i = 0; i < nt; i++)
    pthread_join(t[i], NULL);
  pthread_mutex_destroy(&c.mu);
  if (c.err) {
    set_error_msg(c.err, c.msg);
    return -1;
  }
  res->mismatches = c.mismatches;
  res->first = c.first;
  return 0;
}
