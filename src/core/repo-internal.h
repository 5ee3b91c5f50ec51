/* State shared by the repository modules (repo.c, backup.c, pack-writer.c,
 * read.c, verify.c); not part of the public API. */
#ifndef PL_REPO_INTERNAL_H
#define PL_REPO_INTERNAL_H

#include <pthread.h>

#include "../store/store.h"
#include "bundle.h"
#include "chunk-index.h"
#include "crypto.h"
#include "format.h"
#include "lock.h"
#include "repo.h"

struct repo {
  struct store *store;
  /* The bandwidth limits the store borrows (NULL: unlimited); owned. */
  struct ratelimit *limit_up, *limit_down;
  /* The local cache folder (docs/FORMAT.md, Local cache), or NULL: bundles
   * of snapshot and index objects (for remote stores), and the markers of
   * running backups. */
  struct store *cache;
  struct bundle bundles[2]; /* BUNDLE_SNAPSHOTS, BUNDLE_INDEX; read at first use */
  uint8_t bundle_read[2];
  int store_reads; /* from repo_settings: the bundles are written, not read */
  struct repo_config cfg;
  /* The master key of an encrypted (version 2) repository, NULL for a clear
   * one; owned, wiped by repo_free. key_id names the key object that
   * opened it (keys/<key_id>). */
  struct repo_keys *keys;
  char key_id[2 * HASH_LEN + 1];
  struct chunk_index *ix;
  int threads;
  int level;                                   /* zstd compression level */
  int io_threads;                              /* 0: the store kind's default */
  int adopted;                                 /* unindexed packs have been scanned */
  void (*warn)(void *opaque, const char *msg); /* from repo_settings; may be NULL */
  void *warn_opaque;
  pthread_mutex_t warn_lock; /* one warning at a time */
  struct repo_lock *lock;    /* held from repo_open to repo_free; NULL if none */
  /* Damage stays local (repair.c): the merged damage records, sorted, and
   * their keys; objects found damaged while loading, each warned about
   * once. All owned. */
  struct damage damage;
  struct strings damage_keys;
  struct strings bad_index;     /* index objects that could not be loaded */
  struct strings bad_snapshots; /* snapshot objects that could not be read */
  struct strings loaded_index;  /* index objects loaded, sorted */
};

/* Load the damage records (damage/ objects) into r->damage; a malformed
 * record is warned about and skipped. In repair.c. */
int repo_load_damage(struct repo *r);
/* How pack is recorded as damaged: 0 (not), or DAMAGE_*. */
int damage_pack_kind(const struct damage *d, const uint8_t pack[HASH_LEN]);
/* Whether the copy of chunk in pack is recorded as damaged or lost (its
 * pack missing or truncated). */
int damage_has_copy(const struct damage *d, const uint8_t chunk[HASH_LEN],
                    const uint8_t pack[HASH_LEN]);

/* Load the index objects not loaded yet (all, at open; those written since,
 * later). A damaged or malformed one is warned about once, kept in
 * r->bad_index, and the packs no index lists are read from their trailers. */
int repo_load_index(struct repo *r);

/* Write one index object for every stored chunk not yet in one and not
 * damaged (in backup.c). */
int repo_write_index(struct repo *r);

/* Append "; the fix" to the current error of a read that found damaged
 * data: verify and repair name what it hits and heal it. */
void repo_advise_damage(void);

/* Call lost(opaque, offset, length) for each byte range of snapshot s whose
 * blocks cannot be read with the in-memory index (chunks missing or marked
 * damaged, pages unreadable); returns the number of such blocks. In
 * verify.c. */
uint64_t repo_snapshot_lost(struct repo *r, const struct snapshot *s,
                            void (*lost)(void *opaque, uint64_t off, uint64_t len), void *opaque);

/* Pass a one-line warning to the settings' warn callback, if any. */
void repo_warn(struct repo *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Key of a pack object: "packs/xx/<64 hex>". out must hold PACK_KEY_LEN. */
#define PACK_KEY_LEN (6 + 3 + 2 * HASH_LEN + 1)
void pack_key(const uint8_t h[HASH_LEN], char out[PACK_KEY_LEN]);

#define BUNDLE_SNAPSHOTS 0
#define BUNDLE_INDEX 1

/* Read an immutable object named by the SHA-256 of its stored content,
 * check the content against the name and, in an encrypted repository,
 * decrypt and authenticate it as an object of its folder ("index/...": kind
 * "index"), so *buf is always the plaintext; snapshot and index objects of a
 * remote store come from the cache's bundle when it holds them, and are
 * kept for its next save. Caller frees *buf. */
int repo_get_hashed(struct repo *r, const char *key, const char *hexname, size_t max, void **buf,
                    size_t *len);

/* Write an object (plaintext buf) under dir ("index", "snapshots"),
 * encrypted as an object of kind dir in an encrypted repository, and named
 * by the hash of what is stored; hexname receives the name. With excl, an
 * existing key fails. */
int repo_put_hashed(struct repo *r, const char *dir, const void *buf, size_t len, int excl,
                    char hexname[2 * HASH_LEN + 1]);

/* Read a pack's trailer entries (caller frees *e). */
int repo_read_trailer(struct repo *r, const uint8_t pack[HASH_LEN], struct chunk_entry **e,
                      uint32_t *n, uint64_t *pack_size);

/* Add the entries of packs no index object lists (left by an interrupted
 * backup) to the in-memory index, unindexed, so a backup reuses them and
 * lists them in its own index object. */
int repo_adopt_packs(struct repo *r);

/* Decrypt (encrypted repositories), decompress and verify one stored chunk
 * (stored_len bytes at src) into dst (raw_len bytes). pack is for messages. */
int chunk_decode(const struct repo *r, const struct index_slot *s, const uint8_t *src, uint8_t *dst,
                 const char *pack);

/* Encrypt (kind: the associated data's last part) or decrypt a whole object
 * in an encrypted repository; in a clear one, copy it. Caller frees *out. */
int repo_seal(const struct repo *r, const char *kind, const void *in, size_t len, uint8_t **out,
              size_t *outlen);
int repo_unseal(const struct repo *r, const char *kind, const void *in, size_t len, uint8_t **out,
                size_t *outlen);

/* What encryption adds to each stored chunk: SEAL_OVERHEAD, or 0. */
static inline uint32_t repo_chunk_overhead(const struct repo *r)
{
  return r->keys ? SEAL_OVERHEAD : 0;
}

/* Threads for object I/O (uploads or ranged reads): local_default for a
 * folder, remote_default for a remote store, which needs several requests
 * in flight to hide each request's latency. The io_threads setting
 * overrides both. */
int repo_io_threads(const struct repo *r, int local_default, int remote_default);

/* Derive nblocks for size and block size. */
static inline uint64_t blocks_for(uint64_t size, uint32_t bs)
{
  return size / bs + (size % bs != 0);
}

#endif
