/* Open-addressing hash table of chunks keyed by their SHA-256, which is
 * already uniformly distributed, so its first bytes serve as the hash. */
#include "chunk-index.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../util/bigmem.h"
#include "../util/error.h"

struct chunk_index *chunk_index_new(void)
{
  struct chunk_index *ix = calloc(1, sizeof *ix);
  if (!ix) {
    set_error(errno, "calloc");
    return NULL;
  }
  pthread_mutex_init(&ix->lock, NULL);
  ix->cap = 1024;
  ix->slots = bigmem_alloc(ix->cap * sizeof *ix->slots);
  if (!ix->slots) {
    set_error(errno, "the chunk index");
    chunk_index_free(ix);
    return NULL;
  }
  return ix;
}

void chunk_index_free(struct chunk_index *ix)
{
  if (!ix)
    return;
  for (size_t i = 0; i < ix->packs.len; i++)
    free(ix->packs.v[i]);
  vec_free(&ix->packs);
  free(ix->pack_table);
  bigmem_free(ix->slots, ix->cap * sizeof *ix->slots);
  pthread_mutex_destroy(&ix->lock);
  free(ix);
}

static size_t slot_of(const uint8_t h[HASH_LEN], size_t cap)
{
  uint64_t x;
  memcpy(&x, h, sizeof x);
  return (size_t)x & (cap - 1);
}

/* The pack table's slot for h: the one holding it, or the empty one where
 * it goes. Pack hashes are SHA-256 values, as uniform as chunk hashes. */
static size_t pack_slot(const struct chunk_index *ix, const uint8_t h[HASH_LEN])
{
  size_t i = slot_of(h, ix->pack_cap);
  while (ix->pack_table[i] && memcmp(ix->packs.v[ix->pack_table[i] - 1], h, HASH_LEN) != 0)
    i = (i + 1) & (ix->pack_cap - 1);
  return i;
}

int64_t chunk_index_find_pack(const struct chunk_index *ix, const uint8_t h[HASH_LEN])
{
  if (!ix->pack_cap)
    return -1;
  uint32_t o = ix->pack_table[pack_slot(ix, h)];
  return o ? (int64_t)o - 1 : -1;
}

static int grow_packs(struct chunk_index *ix)
{
  size_t ncap = ix->pack_cap ? ix->pack_cap * 2 : 256;
  uint32_t *n = calloc(ncap, sizeof *n);
  if (!n) {
    set_error(errno, "growing the pack table");
    return -1;
  }
  free(ix->pack_table);
  ix->pack_table = n;
  ix->pack_cap = ncap;
  for (size_t i = 0; i < ix->packs.len; i++)
    ix->pack_table[pack_slot(ix, ix->packs.v[i])] = (uint32_t)i + 1;
  return 0;
}

int64_t chunk_index_pack(struct chunk_index *ix, const uint8_t h[HASH_LEN])
{
  int64_t found = chunk_index_find_pack(ix, h);
  if (found != -1)
    return found;
  if ((ix->packs.len + 1) * 2 > ix->pack_cap && grow_packs(ix) == -1)
    return -1;
  if (vec_reserve(&ix->packs, 1) == -1 || !(ix->packs.v[ix->packs.len] = malloc(HASH_LEN))) {
    set_error(ENOMEM, "adding a pack to the index");
    return -1;
  }
  memcpy(ix->packs.v[ix->packs.len++], h, HASH_LEN);
  ix->pack_table[pack_slot(ix, h)] = (uint32_t)ix->packs.len;
  return (int64_t)ix->packs.len - 1;
}

struct index_slot *chunk_index_find(struct chunk_index *ix, const uint8_t h[HASH_LEN])
{
  for (size_t i = slot_of(h, ix->cap);; i = (i + 1) & (ix->cap - 1)) {
    struct index_slot *s = &ix->slots[i];
    if (!s->used)
      return NULL;
    if (memcmp(s->hash, h, HASH_LEN) == 0)
      return s;
  }
}

static int grow(struct chunk_index *ix)
{
  size_t ncap = ix->cap * 2;
  struct index_slot *n =
      ncap <= SIZE_MAX / sizeof *n ? bigmem_alloc(ncap * sizeof *n) : (errno = ENOMEM, NULL);
  if (!n) {
    set_error(errno, "growing the chunk index");
    return -1;
  }
  for (size_t i = 0; i < ix->cap; i++) {
    if (!ix->slots[i].used)
      continue;
    size_t j = slot_of(ix->slots[i].hash, ncap);
    while (n[j].used)
      j = (j + 1) & (ncap - 1);
    n[j] = ix->slots[i];
  }
  bigmem_free(ix->slots, ix->cap * sizeof *ix->slots);
  ix->slots = n;
  ix->cap = ncap;
  return 0;
}

struct index_slot *chunk_index_insert(struct chunk_index *ix, const uint8_t h[HASH_LEN], int *added)
{
  *added = 0;
  if ((ix->count + 1) * 4 > ix->cap * 3 && grow(ix) == -1)
    return NULL;
  size_t i = slot_of(h, ix->cap);
  for (;; i = (i + 1) & (ix->cap - 1)) {
    struct index_slot *s = &ix->slots[i];
    if (!s->used)
      break;
    if (memcmp(s->hash, h, HASH_LEN) == 0)
      return s;
  }
  struct index_slot *s = &ix->slots[i];
  memset(s, 0, sizeof *s);
  memcpy(s->hash, h, HASH_LEN);
  s->used = 1;
  s->pack = PACK_PENDING;
  ix->count++;
  *added = 1;
  return s;
}
