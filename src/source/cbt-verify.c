/* --verify-cbt: read the whole disk and check that a snapshot's block map,
 * built from changed-block tracking, matches it block for block. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/error.h"
#include "../util/hash.h"
#include "cbt-verify.h"

struct verify {
  struct source *src;
  uint32_t bs;
  uint64_t nblocks;
  const uint8_t (*h)[32];
  atomic_uint_fast64_t next;
  atomic_uint_fast64_t mismatches;
  pthread_mutex_t lock;
  uint64_t first;
  int failed;
  char err[1024];
};

static void *verify_worker(void *arg)
{
  struct verify *v = arg;
  uint8_t *buf = malloc(v->bs), got[32];
  if (!buf) {
    pthread_mutex_lock(&v->lock);
    if (!v->failed)
      snprintf(v->err, sizeof v->err, "out of memory");
    v->failed = 1;
    pthread_mutex_unlock(&v->lock);
    return NULL;
  }
  for (;;) {
    uint64_t b = atomic_fetch_add(&v->next, 1);
    if (b >= v->nblocks || v->failed)
      break;
    uint64_t off = b * v->bs;
    size_t len = v->src->size - off < v->bs ? (size_t)(v->src->size - off) : v->bs;
    if (source_pread(v->src, buf, len, off) == -1) {
      pthread_mutex_lock(&v->lock);
      if (!v->failed)
        snprintf(v->err, sizeof v->err, "%s", get_error());
      v->failed = 1;
      pthread_mutex_unlock(&v->lock);
      break;
    }
    int ok;
    if (is_zero(buf, len)) {
      ok = memcmp(v->h[b], zero_hash, 32) == 0;
      if (!ok) {
        sha256(buf, len, got);
        ok = memcmp(v->h[b], got, 32) == 0;
      }
    } else {
      sha256(buf, len, got);
      ok = memcmp(v->h[b], got, 32) == 0;
    }
    if (!ok) {
      atomic_fetch_add(&v->mismatches, 1);
      pthread_mutex_lock(&v->lock);
      if (b < v->first)
        v->first = b;
      pthread_mutex_unlock(&v->lock);
    }
  }
  free(buf);
  return NULL;
}

int cbt_verify(struct source *src, uint32_t block_size, uint64_t nblocks,
               const uint8_t (*hashes)[32], int nthreads, uint64_t *mismatches, uint64_t *first)
{
  struct verify v = {
      .src = src, .bs = block_size, .nblocks = nblocks, .h = hashes, .first = UINT64_MAX};
  pthread_t t[16];
  int started = 0;
  if (block_size == 0 || nblocks != (src->size + block_size - 1) / block_size) {
    set_error(0, "the snapshot covers %llu blocks of %u bytes, but the disk has %llu bytes",
              (unsigned long long)nblocks, block_size, (unsigned long long)src->size);
    return -1;
  }
  if (nthreads < 1)
    nthreads = 1;
  if (nthreads > 16)
    nthreads = 16;
  atomic_init(&v.next, 0);
  atomic_init(&v.mismatches, 0);
  pthread_mutex_init(&v.lock, NULL);
  for (int i = 0; i < nthreads; i++) {
    if (pthread_create(&t[i], NULL, verify_worker, &v) != 0)
      break;
    started++;
  }
  if (started == 0)
    verify_worker(&v);
  for (int i = 0; i < started; i++)
    pthread_join(t[i], NULL);
  pthread_mutex_destroy(&v.lock);
  if (v.failed) {
    set_error(0, "--verify-cbt: %s", v.err);
    return -1;
  }
  *mismatches = atomic_load(&v.mismatches);
  *first = v.first;
  return 0;
}
