/* Encoding and decoding of repository objects (docs/FORMAT.md): config,
 * snapshot, pack trailer and index objects. Decoders take untrusted bytes,
 * check every length and field, and never read past the buffer. */
#ifndef PL_FORMAT_H
#define PL_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#include "crypto.h"
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

enum { LOCK_MODE_NONE, LOCK_MODE_GOVERNANCE, LOCK_MODE_COMPLIANCE };
#define MAX_LOCK_DAYS 36500u

struct repo_config {
  unsigned version; /* 1: clear; 2: encrypted */
  int encrypted;
  char id[33];
  uint32_t page_entries;
  /* Object Lock (S3): every object but locks is written retained for
   * lock_days days; 0 for none. */
  uint32_t lock_days;
  int lock_mode; /* LOCK_MODE_* */
  /* The last line, config-mac= (version 2) or config-sha256= (version 1,
   * optional), and the bytes before it that it covers. */
  int has_check;
  uint8_t check[HASH_LEN];
  size_t checked_len;
};

/* A chunk's place in a pack, as listed in a pack trailer or index. */
struct chunk_entry {
  uint8_t hash[HASH_LEN];
  uint8_t type, comp;
  uint32_t stored_len, raw_len;
  uint64_t offset;
};

/* Config object: text. encode returns a malloc'd string (caller frees): a
 * version-2 config authenticated under k, or with k NULL a version-1 one
 * with a checksum. decode checks untrusted bytes, every required line and a
 * version-1 checksum; a version-2 config's MAC needs the key: check it with
 * config_check_mac (buf as decoded) once the key is unlocked. */
char *config_encode(const struct repo_config *c, const struct repo_keys *k);
int config_decode(const char *buf, size_t len, struct repo_config *c);
int config_check_mac(const struct repo_config *c, const char *buf, const struct repo_keys *k);

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

/* Pack trailer: encode returns the trailer and footer for entries in *out
 * (caller frees): with k, the entries sealed (an encrypted repository's
 * "PLTRAIL2"), else in clear ("PLTRAIL1"). footer_decode reads the last
 * PACK_FOOTER_LEN bytes: the entry count, the hash of the stored trailer
 * and whether it is sealed. A sealed trailer (count * PACK_ENTRY_LEN +
 * SEAL_OVERHEAD bytes) is opened into out (count * PACK_ENTRY_LEN bytes)
 * with pack_trailer_unseal. entries_decode parses count entries, checks
 * them against hash (a clear trailer's; NULL: checked already) and
 * data_end (the offset where the trailer starts); overhead is what
 * encryption adds to each stored chunk (0 or SEAL_OVERHEAD). */
int pack_trailer_encode(const struct chunk_entry *e, size_t n, const struct repo_keys *k,
                        uint8_t **out, size_t *outlen);
int pack_footer_decode(const uint8_t *footer, uint32_t *count, uint8_t hash[HASH_LEN], int *sealed);
/* 1 if the whole pack in buf is named name: its trailer and footer hash to
 * it (the trailer names every chunk by its content). */
int pack_matches_name(const uint8_t *buf, size_t len, const uint8_t name[HASH_LEN]);
int pack_trailer_unseal(const struct repo_keys *k, const uint8_t *buf, uint32_t count,
                        uint8_t *out);
int pack_entries_decode(const uint8_t *buf, uint32_t count, const uint8_t *hash, uint32_t overhead,
                        uint64_t data_end, struct chunk_entry **out);

/* Index object: packs (npacks hashes) and entries whose offset field is
 * relative to their own pack, named by pack_of[i] (an ordinal into packs). */
int index_encode(const uint8_t (*packs)[HASH_LEN], uint32_t npacks, const struct chunk_entry *e,
                 const uint32_t *pack_of, size_t n, uint8_t **out, size_t *outlen);
/* Calls cb for each pack (ordinal, hash) first, then each entry; overhead
 * as for pack_entries_decode. */
struct index_visitor {
  int (*pack)(void *opaque, uint32_t ordinal, const uint8_t hash[HASH_LEN]);
  int (*entry)(void *opaque, uint32_t ordinal, const struct chunk_entry *e);
  void *opaque;
};
int index_decode(const uint8_t *buf, size_t len, uint32_t overhead, const struct index_visitor *v);

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

/* A key object (keys/<hash>, text): the scrypt parameters, a salt, and the
 * master key sealed under the key derived from the passphrase. */
struct key_object {
  uint64_t n; /* scrypt cost: a power of two */
  uint32_t r, p;
  uint8_t salt[32];
  int64_t created; /* seconds since the epoch */
  uint8_t wrapped[64 + SEAL_OVERHEAD];
};

/* Text form (docs/FORMAT.md). encode returns a malloc'd string (caller
 * frees); decode checks untrusted bytes. */
#define MAX_KEY_OBJECT_BYTES 4096u
char *key_object_encode(const struct key_object *o);
int key_object_decode(const char *buf, size_t len, struct key_object *o);

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
