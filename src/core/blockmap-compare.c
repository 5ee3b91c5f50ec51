/* The parallel read-hash-compare loop shared by the verifiers: workers take
 * the next block number from a counter, read it through the caller's
 * callback and compare its SHA-256 with the block map. */
#include "blockmap-compare.h"

#include "crypto.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../util/error-slot.h"
#include "../util/error.h"
#include "../util/hash.h"
#include "../util/workers.h"

#define MAX_THREADS 16

struct compare {
  const struct blockmap *m;
  const struct blockmap_compare_opts *o;
  uint64_t nblocks;         /* blocks that start below the limit */
  struct error_slot failed; /* the first read failure; the workers stop on it */
  pthread_mutex_t mu;       /* guards the fields below */
  uint64_t next;
  uint64_t mismatches;
  uint64_t first;
  int stop; /* stop_first and a difference was found */
};

/* 1 if block b (len bytes in buf) matches the map. */
static int block_matches(const struct blockmap *m, uint64_t b, const uint8_t *buf, size_t len)
{
  uint8_t h[HASH_LEN];
  if (blockmap_is_zero(m, b))
    return is_zero(buf, len);
  chunk_name(m->keys, buf, len, h);
  return memcmp(h, m->h[b], HASH_LEN) == 0;
}

static int compare_worker(void *opaque, int index)
{
  struct compare *c = opaque;
  int ret = 0;
  (void)index;
  uint8_t *buf = malloc(c->m->block_size);
  if (buf == NULL) {
    set_error_msg(ENOMEM, "out of memory");
    return -1;
  }
  for (;;) {
    pthread_mutex_lock(&c->mu);
    uint64_t b = c->next++;
    int stop = c->stop;
    pthread_mutex_unlock(&c->mu);
    if (stop || error_slot_failed(&c->failed) || b >= c->nblocks)
      break;
    uint64_t off = b * c->m->block_size;
    size_t len = blockmap_block_len(c->m, b);
    if (off + len > c->o->limit)
      len = (size_t)(c->o->limit - off);
    if (c->o->read(c->o->opaque, buf, len, off) == -1) {
      ret = -1;
      break;
    }
    if (block_matches(c->m, b, buf, len))
      continue;
    pthread_mutex_lock(&c->mu);
    c->mismatches++;
    if (c->o->differs)
      c->o->differs(c->o->opaque, b);
    if (b < c->first)
      c->first = b;
    if (c->o->stop_first)
      c->stop = 1;
    pthread_mutex_unlock(&c->mu);
  }
  free(buf);
  return ret;
}

int blockmap_compare(const struct blockmap *m, const struct blockmap_compare_opts *o,
                     struct blockmap_compare_result *res)
{
  struct compare c = {.m = m, .o = o, .first = UINT64_MAX};
  uint64_t limit = o->limit < m->size ? o->limit : m->size;
  c.nblocks = m->block_size ? (limit + m->block_size - 1) / m->block_size : 0;
  int want = o->threads < 1 ? 1 : o->threads > MAX_THREADS ? MAX_THREADS : o->threads;
  error_slot_init(&c.failed);
  pthread_mutex_init(&c.mu, NULL);
  int rc = workers_run(want, compare_worker, &c, &c.failed);
  pthread_mutex_destroy(&c.mu);
  error_slot_destroy(&c.failed);
  if (rc == -1)
    return -1;
  res->mismatches = c.mismatches;
  res->first = c.first;
  return 0;
}
