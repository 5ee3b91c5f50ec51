/* Parallel chunk reads for restore, replica sync and export: blocks are
 * sorted by pack and offset, nearby chunks are read with one ranged read,
 * and every chunk is decompressed and checked against its hash once, however
 * many blocks share it. */
#include "repo-internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/error-slot.h"
#include "../util/error.h"
#include "../util/hash.h"
#include "../util/workers.h"
#include "../util/compiler.h"

#define MAX_RUN (8u << 20)   /* one ranged read covers at most this much */
#define MAX_GAP (256u << 10) /* chunks closer than this share a read */

struct want {
  const struct index_slot *s;
  uint64_t block;
};

struct reader {
  struct repo *r;
  struct want *w;
  size_t n;
  block_data_cb cb;
  void *opaque;
  pthread_mutex_t lock;
  size_t next; /* first want not yet taken */
  struct error_slot err;
};

static int cmp_want(const void *a, const void *b)
{
  const struct want *x = a, *y = b;
  if (x->s->pack != y->s->pack)
    return x->s->pack < y->s->pack ? -1 : 1;
  if (x->s->offset != y->s->offset)
    return x->s->offset < y->s->offset ? -1 : 1;
  return x->block < y->block ? -1 : x->block > y->block;
}

/* Take the next run [*first, *end) of wants that one read can cover. */
static int take_run(struct reader *rd, size_t *first, size_t *end)
{
  pthread_mutex_lock(&rd->lock);
  size_t i = rd->next;
  if (i >= rd->n || error_slot_failed(&rd->err)) {
    pthread_mutex_unlock(&rd->lock);
    return 0;
  }
  const struct index_slot *s0 = rd->w[i].s;
  uint64_t start = s0->offset, stop = s0->offset + s0->stored_len;
  size_t j = i + 1;
  while (j < rd->n) {
    const struct index_slot *s = rd->w[j].s;
    if (s->pack != s0->pack || s->offset > stop + MAX_GAP ||
        s->offset + s->stored_len - start > MAX_RUN)
      break;
    if (s->offset + s->stored_len > stop)
      stop = s->offset + s->stored_len;
    j++;
  }
  rd->next = j;
  pthread_mutex_unlock(&rd->lock);
  *first = i;
  *end = j;
  return 1;
}

static int read_worker(void *opaque, int index PL_UNUSED)
{
  struct reader *rd = opaque;
  VEC(uint8_t) src = {0}, dst = {0};
  size_t first, end;
  char key[PACK_KEY_LEN];
  int ret = 0;
  while (ret == 0 && take_run(rd, &first, &end)) {
    const struct index_slot *s0 = rd->w[first].s;
    uint64_t start = s0->offset, stop = 0;
    for (size_t k = first; k < end; k++)
      if (rd->w[k].s->offset + rd->w[k].s->stored_len > stop)
        stop = rd->w[k].s->offset + rd->w[k].s->stored_len;
    pack_key(rd->r->ix->packs.v[s0->pack], key);
    src.len = 0;
    if (vec_reserve(&src, stop - start) == -1 ||
        store_get_range(rd->r->store, key, start, stop - start, src.v) == -1) {
      ret = -1;
      break;
    }
    const struct index_slot *decoded = NULL;
    for (size_t k = first; ret == 0 && k < end && !error_slot_failed(&rd->err); k++) {
      const struct index_slot *s = rd->w[k].s;
      if (s != decoded) {
        dst.len = 0;
        if (vec_reserve(&dst, s->raw_len) == -1 ||
            chunk_decode(rd->r, s, src.v + (s->offset - start), dst.v, key) == -1) {
          repo_advise_damage();
          ret = -1;
          break;
        }
        decoded = s;
      }
      if (rd->cb(rd->opaque, rd->w[k].block, dst.v, s->raw_len) == -1)
        ret = -1;
    }
  }
  vec_free(&src);
  vec_free(&dst);
  return ret;
}

int repo_read_blocks(struct repo *r, const struct blockmap *m, const uint64_t *blocks, size_t n,
                     block_data_cb cb, void *opaque)
{
  struct reader rd = {.r = r, .cb = cb, .opaque = opaque};
  int ret = -1;
  char hex[2 * HASH_LEN + 1];
  rd.w = malloc((n ? n : 1) * sizeof *rd.w);
  if (!rd.w) {
    set_error(errno, "malloc");
    return -1;
  }
  for (size_t i = 0; i < n; i++) {
    uint64_t blk = blocks[i];
    if (blk >= m->nblocks || blockmap_is_zero(m, blk))
      continue;
    const struct index_slot *s = chunk_index_find(r->ix, m->h[blk]);
    if (!s || s->pack == PACK_PENDING) {
      hex_encode(m->h[blk], HASH_LEN, hex);
      set_error_code(ENOENT,
                     "chunk %.16s of block %llu is missing from the repository index: run "
                     "pilotlight verify",
                     hex, (unsigned long long)blk);
      goto out;
    }
    if (s->damaged) {
      char key[PACK_KEY_LEN];
      hex_encode(m->h[blk], HASH_LEN, hex);
      pack_key(r->ix->packs.v[s->pack], key);
      set_error_code(EIO,
                     "chunk %.16s of block %llu in %s is recorded as damaged (damaged pack): "
                     "pilotlight repair, then a backup of the disk, heals it",
                     hex, (unsigned long long)blk, key);
      goto out;
    }
    if (s->raw_len != blockmap_block_len(m, blk)) {
      set_error_code(EIO,
                     "chunk of block %llu has length %u, expected %zu (damaged repository): run "
                     "pilotlight verify",
                     (unsigned long long)blk, s->raw_len, blockmap_block_len(m, blk));
      goto out;
    }
    rd.w[rd.n++] = (struct want){s, blk};
  }
  qsort(rd.w, rd.n, sizeof *rd.w, cmp_want);
  pthread_mutex_init(&rd.lock, NULL);
  error_slot_init(&rd.err);
  /* Reads are small (at most MAX_RUN) and each waits a round trip: keep
   * more of them in flight than uploads. */
  int want = repo_io_threads(r, r->threads, 8);
  if (want < r->threads)
    want = r->threads;
  ret = workers_run(want, read_worker, &rd, &rd.err);
  error_slot_destroy(&rd.err);
  pthread_mutex_destroy(&rd.lock);
out:
  free(rd.w);
  return ret;
}
