/* Open-addressing hash table of chunks keyed by their SHA-256, which is
 * already uniformly distributed, so its first bytes serve as the hash. */
#include "chunk-index.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

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
  ix->slots = calloc(ix->cap, sizeof *ix->slots);
  if (!ix->slots) {
    set_error(errno, "calloc");
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
  free(ix->slots);
  pthread_mutex_destroy(&ix->lock);
  free(ix);
}

int64_t chunk_index_pack(struct chunk_index *ix, const uint8_t h[HASH_LEN])
{
  /* Few packs are added per run; a backwards scan finds recent ones fast. */
  for (size_t i = ix->packs.len; i-- > 0;)
    if (memcmp(ix->packs.v[i], h, HASH_LEN) == 0)
      return (int64_t)i;
  uint8_t *copy = malloc(HASH_LEN);
  if (!copy || vec_push(&ix->packs, copy) == -1) {
    free(copy);
    set_error(ENOMEM, "adding a pack to the index");
    return -1;
  }
  memcpy(copy, h, HASH_LEN);
  return (int64_t)ix->packs.len - 1;
}

static size_t slot_of(const uint8_t h[HASH_LEN], size_t cap)
{
  uint64_t x;
  memcpy(&x, h, sizeof x);
  return (size_t)x & (cap - 1);
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
  struct index_slot *n = calloc(ncap, sizeof *n);
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
  free(ix->slots);
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
