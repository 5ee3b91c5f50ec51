/* The in-memory chunk index: chunk hash -> (pack, offset, lengths), loaded
 * from index objects and pack trailers. Lookups and inserts are guarded by
 * the index's own lock, so workers may share one. */
#ifndef PL_CHUNK_INDEX_H
#define PL_CHUNK_INDEX_H

#include <pthread.h>
#include <stdint.h>

#include "format.h"

#define PACK_PENDING UINT32_MAX /* chunk is in a pack not yet stored */

struct index_slot {
  uint8_t hash[HASH_LEN];
  uint32_t pack; /* ordinal into packs, or PACK_PENDING */
  uint32_t stored_len, raw_len;
  uint8_t type, comp, used, indexed; /* indexed: listed in a stored index object */
  uint8_t damaged;                   /* set by verify */
  uint8_t marked;                    /* prune: a snapshot references it */
  uint64_t offset;
};

struct chunk_index {
  pthread_mutex_t lock;
  struct index_slot *slots;
  size_t cap, count;    /* cap is a power of two */
  VEC(uint8_t *) packs; /* pack hashes by ordinal, each HASH_LEN bytes, owned */
  uint32_t *pack_table; /* open addressing: ordinal + 1 by pack hash, 0 = empty */
  size_t pack_cap;      /* a power of two, more than twice packs.len */
};

/* Returns NULL with the error set. Caller frees with chunk_index_free. */
struct chunk_index *chunk_index_new(void);
void chunk_index_free(struct chunk_index *ix);

/* Ordinal of pack hash h, adding it if new; -1 on allocation failure. */
int64_t chunk_index_pack(struct chunk_index *ix, const uint8_t h[HASH_LEN]);

/* Ordinal of pack hash h, or -1 if the index has no such pack. */
int64_t chunk_index_find_pack(const struct chunk_index *ix, const uint8_t h[HASH_LEN]);

/* Find a chunk; returns a pointer valid until the next insert, or NULL.
 * Caller holds ix->lock if other threads may insert. */
struct index_slot *chunk_index_find(struct chunk_index *ix, const uint8_t h[HASH_LEN]);

/* Insert (or find) a chunk. *added is set to 1 if it was new. Returns the
 * slot, or NULL on allocation failure. Caller holds ix->lock if shared. */
struct index_slot *chunk_index_insert(struct chunk_index *ix, const uint8_t h[HASH_LEN],
                                      int *added);

/* Point slot s at entry e's place in pack (an ordinal); indexed says
 * whether a stored index object lists it. */
static inline void index_slot_fill(struct index_slot *s, const struct chunk_entry *e, uint32_t pack,
                                   uint8_t indexed)
{
  s->pack = pack;
  s->offset = e->offset;
  s->stored_len = e->stored_len;
  s->raw_len = e->raw_len;
  s->type = e->type;
  s->comp = e->comp;
  s->indexed = indexed;
}

#endif
