/* Encoding and decoding of repository objects (docs/FORMAT.md): config,
 * snapshot, pack trailer and index objects. Decoders take untrusted bytes,
 * check every length and field, and never read past the buffer. */
#ifndef PL_FORMAT_H
#define PL_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "repo.h"

/* Chunk types and compression methods, as stored. */
#define CHUNK_DATA 0
#define CHUNK_PAGE 1
#define COMP_NONE 0
#define COMP_ZSTD 1

#define PACK_MAGIC "PLPACK\0\1"
#define PACK_HEADER_LEN 8
#define PACK_ENTRY_LEN 52
#define PACK_FOOTER_LEN 44 /* count u32, trailer SHA-256, "PLTRAIL1" */
#define INDEX_MAGIC "PLINDEX\1"
#define INDEX_ENTRY_LEN 56

/* Largest block size and so largest chunk. */
#define MAX_BLOCK_SIZE (64u << 20)
#define MIN_BLOCK_SIZE 4096u
#define MAX_PAGE_ENTRIES (1u << 20)

/* Largest objects of each kind: readers refuse larger ones and the text
 * encoders never produce them. */
#define MAX_CONFIG_BYTES (64u << 10)
#define MAX_SNAPSHOT_BYTES (512u << 20)
#define MAX_INDEX_BYTES (1u << 30)
#define MAX_FORGET_RECORD_BYTES (64u << 20)
#define MAX_DAMAGE_BYTES (64u << 20)

struct repo_config {
  unsigned version;
  char id[33];
  uint32_t page_entries;
};

/* A chunk's place in a pack, as listed in a pack trailer or index. */
struct chunk_entry {
  uint8_t hash[HASH_LEN];
  uint8_t type, comp;
  uint32_t stored_len, raw_len;
  uint64_t offset;
};

/* Config object: text. encode returns a malloc'd string (caller frees). */
char *config_encode(const struct repo_config *c);
int config_decode(const char *buf, size_t len, struct repo_config *c);

/* Snapshot object: text. encode returns a malloc'd string (caller frees);
 * decode fills *s (caller frees with snapshot_free) but not s->id. */
char *snapshot_encode(const struct snapshot *s);
int snapshot_decode(const char *buf, size_t len, struct snapshot *s);
/* Free a snapshot's fields and zero it, leaving the struct itself. */
void snapshot_clear(struct snapshot *s);

/* A forget record ("forgotten/" object): text, written by forget before it
 * deletes the snapshot objects it lists. */
struct forget_record_entry {
  char id[2 * HASH_LEN + 1]; /* the removed snapshot */
  char *disk;                /* owned */
  int64_t time;              /* the snapshot's time */
};
struct forget_record {
  int64_t time; /* when forget ran */
  char *host;   /* owned */
  VEC(struct forget_record_entry) e;
};
/* encode returns a malloc'd string (caller frees); decode takes untrusted
 * bytes and fills *rec (caller frees with forget_record_clear). */
char *forget_record_encode(const struct forget_record *rec);
int forget_record_decode(const char *buf, size_t len, struct forget_record *rec);
/* Free a record's fields and zero it, leaving the struct itself. */
void forget_record_clear(struct forget_record *rec);

/* Pack trailer: encode appends the trailer for entries to out (a byte
 * vector). decode_footer reads the last PACK_FOOTER_LEN bytes and returns the
 * entry count; decode_entries parses count entries (count*PACK_ENTRY_LEN
 * bytes) and checks them against the footer's hash and data_end (the offset
 * where the trailer starts). */
int pack_trailer_encode(const struct chunk_entry *e, size_t n, uint8_t **out, size_t *outlen);
int pack_footer_decode(const uint8_t *footer, uint32_t *count, uint8_t hash[HASH_LEN]);
int pack_entries_decode(const uint8_t *buf, uint32_t count, const uint8_t hash[HASH_LEN],
                        uint64_t data_end, struct chunk_entry **out);

/* Index object: packs (npacks hashes) and entries whose offset field is
 * relative to their own pack, named by pack_of[i] (an ordinal into packs). */
int index_encode(const uint8_t (*packs)[HASH_LEN], uint32_t npacks, const struct chunk_entry *e,
                 const uint32_t *pack_of, size_t n, uint8_t **out, size_t *outlen);
/* Calls cb for each pack (ordinal, hash) first, then each entry. */
struct index_visitor {
  int (*pack)(void *opaque, uint32_t ordinal, const uint8_t hash[HASH_LEN]);
  int (*entry)(void *opaque, uint32_t ordinal, const struct chunk_entry *e);
  void *opaque;
};
int index_decode(const uint8_t *buf, size_t len, const struct index_visitor *v);

/* Damage record: text (docs/FORMAT.md, "Damage records"). What verify
 * found: packs that are missing, truncated or whose trailer is damaged,
 * chunk copies (a chunk in one pack) that do not decode to their hash,
 * and damaged index and snapshot objects, each named by its hash. */
#define DAMAGE_MISSING 1   /* the pack object is gone */
#define DAMAGE_TRUNCATED 2 /* shorter than its chunks: copies in it are lost */
#define DAMAGE_TRAILER 3   /* its trailer is damaged; chunks readable by the index */
struct damage_pack {
  uint8_t pack[HASH_LEN];
  uint8_t kind; /* DAMAGE_* */
};
struct damage_chunk {
  uint8_t chunk[HASH_LEN];
  uint8_t pack[HASH_LEN];
};
struct damage_name {
  uint8_t h[HASH_LEN];
};
struct damage {
  VEC(struct damage_pack) packs;
  VEC(struct damage_chunk) chunks;
  VEC(struct damage_name) index, snapshots;
};

/* Sort every list and drop duplicates (a pack listed twice keeps its
 * first kind in sort order), so records can be searched with bsearch and
 * equal findings encode to equal objects. */
void damage_sort(struct damage *d);
/* Append src's entries to dst (then call damage_sort). Returns 0 or -1. */
int damage_merge(struct damage *dst, const struct damage *src);
/* Encode d, sorted first, in canonical form. Returns a malloc'd string
 * (caller frees), or NULL with the error set. */
char *damage_encode(struct damage *d);
/* Decode untrusted bytes into *d (zeroed first; caller frees with
 * damage_clear, also on failure). */
int damage_decode(const char *buf, size_t len, struct damage *d);
void damage_clear(struct damage *d);
int damage_is_empty(const struct damage *d);

/* Little-endian helpers. */
static inline void put_u32(uint8_t *p, uint32_t v)
{
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}
static inline void put_u64(uint8_t *p, uint64_t v)
{
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint32_t get_u32(const uint8_t *p)
{
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t get_u64(const uint8_t *p)
{
  return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

#endif
