/* The repository: config, snapshots, block maps, the chunk index and packs,
 * on top of a store. This is the library's public face for the command
 * line. The object formats are specified in docs/FORMAT.md. */
#ifndef PL_REPO_H
#define PL_REPO_H

#include <stddef.h>
#include <stdint.h>

#include "../source/extent-list.h"
#include "../source/source.h"
#include "../util/hash.h"
#include "../util/progress.h"
#include "../util/ratelimit.h"
#include "../util/vec.h"

#define REPO_FORMAT_VERSION 2

struct repo;
struct s3_settings;

/* How to open a repository; filled by the caller (env/settings.c reads them
 * from the environment). The library reads no environment variable. */
struct repo_settings {
  int io_threads; /* threads for object I/O, 1 to 16; 0 (default, or out of range): one
                     upload thread and a read thread per CPU for a folder, 4 and 8 for a
                     remote store */
  int zstd_level; /* -7 to 19; default 3 */
  /* Folder under which a remote repository's immutable objects are cached
   * (in a subfolder named by the repository id); NULL (default): no cache.
   * Borrowed for the call. */
  const char *cache_dir;
  const struct s3_settings *s3; /* for s3: locations; NULL: defaults, no credentials */
  /* Called with a one-line warning about something that did not stop the
   * operation (damage confined to the object it names, a cache folder that
   * cannot be created); from any thread, one call at a time. NULL (default):
   * warnings are dropped. warn_opaque is passed through. */
  void (*warn)(void *opaque, const char *msg);
  void *warn_opaque;
  /* The lock repo_open takes before it loads the index, held until
   * repo_free (docs/FORMAT.md, Locks): REPO_LOCK_NONE (default) for commands
   * that only list snapshots; SHARED for backup; SHARED_OPTIONAL for
   * restore, replica sync, export and verify, which go on unlocked with
   * read-only credentials; EXCLUSIVE for forget, prune and repair. */
  int lock;
  const char *lock_command; /* recorded in the lock, e.g. "backup disk0"; borrowed */
  int64_t lock_wait_ms;     /* wait this long for a conflicting lock; default 0 */
  int lock_refresh_seconds; /* 0: LOCK_REFRESH_SECONDS (tests shorten it) */
  /* Read every object from the store, none from the cache (verify, repair
   * and prune judge the repository, and a sound cached copy would hide a
   * damaged stored one); the cache is still updated. Default 0. */
  int store_reads;
  /* repo_open: load neither the chunk index nor the damage records, for a
   * caller that only lists snapshots and host status objects (status, the
   * daemon); such a repository must not back up, read chunks or verify.
   * Default 0. */
  int metadata_only;
  /* repo_create: make a clear (version 1) repository instead of an
   * encrypted one. Default 0. */
  int clear;
  /* repo_create: write every object with an S3 Object Lock retention of
   * lock_days days (0, default: none) in lock_mode (LOCK_MODE_GOVERNANCE or
   * LOCK_MODE_COMPLIANCE of core/format.h). The bucket must have Object Lock
   * enabled. */
  uint32_t lock_days;
  int lock_mode;
  /* The repository password, asked only when one is needed (opening or
   * creating an encrypted repository): fill buf (cap bytes) with it and
   * *len with its length, or return -1 with the error set. is_new: it is
   * the password of a new repository (a prompt asks twice). NULL (default):
   * an encrypted repository cannot be opened. */
  int (*password)(void *opaque, int is_new, char *buf, size_t cap, size_t *len);
  void *password_opaque;
  uint64_t kdf_n; /* scrypt cost of a new key (a power of two); 0: the default */
  /* Bandwidth limits on the repository's store (a folder or S3; not the
   * local cache), shared by all of the repository's threads: every byte
   * written to it (packs, indexes, snapshots, locks) passes limit_upload,
   * every byte read from it limit_download. Fill them with
   * ratelimit_spec_parse; all zero (default): unlimited. Copied at open. */
  struct ratelimit_spec limit_upload, limit_download;
  /* Borrowed for the repo's life; when non-zero, a transfer waiting under a
   * limit stops with ECANCELED. NULL (default): none. */
  const _Atomic int *cancel;
};

#define REPO_LOCK_NONE 0
#define REPO_LOCK_SHARED 1
#define REPO_LOCK_SHARED_OPTIONAL 2
#define REPO_LOCK_EXCLUSIVE 3

/* The defaults above. */
void repo_settings_default(struct repo_settings *s);

/* Create a new, empty repository at location (a folder path or an s3: URL).
 * Refuses if one already exists there. settings (NULL: the defaults) is
 * borrowed for the call. Caller frees with repo_free. */
struct repo *repo_create(const char *location, const struct repo_settings *settings);

/* Open an existing repository and load its chunk index. Fails clearly if
 * location is not a repository or has a newer format version. settings
 * (NULL: the defaults) is borrowed for the call. */
struct repo *repo_open(const char *location, const struct repo_settings *settings);
void repo_free(struct repo *r);

/* The locks of the repository at location, each passed to cb with removed
 * set when it was stale (or any, with all) and is now deleted. Does not
 * load the index. Returns 0, or -1 with the error set. */
struct lock_info;
int repo_clean_locks(const char *location, const struct repo_settings *settings, int all,
                     void (*cb)(void *opaque, const struct lock_info *l, int removed),
                     void *opaque);

/* 0 if the lock repo_open took (if any) is still held and fresh; else -1
 * with the error set: stop before changing the repository. */
int repo_check_lock(struct repo *r);

/* The repository id, 32 hex digits; borrowed for the repo's lifetime. */
const char *repo_id(const struct repo *r);

/* 1 if the repository is encrypted (format version 2). */
int repo_encrypted(const struct repo *r);

/* The Object Lock retention in days (0: none), and its LOCK_MODE_* in *mode
 * (NULL: not wanted). */
uint32_t repo_lock_days(const struct repo *r, int *mode);

/* Key objects of an encrypted repository (keys/). */
struct repo_key_info {
  char id[2 * HASH_LEN + 1];
  int64_t created;
  uint64_t n; /* scrypt parameters */
  uint32_t r, p;
  int current; /* the key this repo was opened with */
};
/* The id of the key that opened r, or NULL if r is clear; borrowed. */
const char *repo_key_id(const struct repo *r);
/* Every key object (caller frees *out). */
int repo_key_list(struct repo *r, struct repo_key_info **out, size_t *n);
/* Add a key object for password (len bytes; kdf_n 0: the default cost);
 * id receives its id. */
int repo_key_add(struct repo *r, const char *password, size_t len, uint64_t kdf_n,
                 char id[2 * HASH_LEN + 1]);
/* Remove the key whose id starts with id; refuses the last key and the key
 * r was opened with. */
int repo_key_remove(struct repo *r, const char *id);
/* Change the password: add a key for it, then remove the key r was opened
 * with; id receives the new key's id. */
int repo_key_passwd(struct repo *r, const char *password, size_t len, uint64_t kdf_n,
                    char id[2 * HASH_LEN + 1]);

/* Threads to use for hashing, compression and reads (default: online CPUs). */
void repo_set_threads(struct repo *r, int n);
int repo_threads(const struct repo *r);

/* A snapshot: one complete block map of a disk at one point in time. */
struct snapshot {
  char id[2 * HASH_LEN + 1]; /* hex SHA-256 of the snapshot object */
  char *disk;
  uint64_t size;                 /* disk size in bytes */
  uint32_t block_size;           /* bytes; a power of two */
  int64_t time;                  /* seconds since the epoch, UTC */
  uint32_t time_ns;              /* and nanoseconds within that second */
  char parent[2 * HASH_LEN + 1]; /* "" for none */
  char *source;                  /* as the user named it */
  char *cbt;                     /* the CBT cookie the next backup continues from; "" if none */
  char *host;
  char *mode;            /* "full", "changed-extents", "hash-compare", "cbt" */
  char *note;            /* why CBT was not used, etc.; "" if nothing to say */
  uint64_t bytes_read;   /* bytes read from the source */
  uint64_t bytes_new;    /* uncompressed bytes of chunks new to the repository */
  uint64_t bytes_stored; /* bytes those new chunks take in packs */
  uint64_t used_end;     /* end offset of the last non-zero block (0 if all zero) */
  uint32_t page_entries; /* block hashes per block-map page */
  VEC(uint8_t *) pages;  /* each HASH_LEN bytes, owned; an all-zero hash = an all-zero page */
};

void snapshot_free(struct snapshot *s);

/* All snapshots (of disk, or of every disk when disk is NULL), oldest first.
 * The caller frees each with snapshot_free and the array with free(). */
int repo_list_snapshots(struct repo *r, const char *disk, struct snapshot ***out, size_t *n);

/* Resolve "latest" (or NULL), a full id or a unique id prefix for disk.
 * Returns NULL with a clear message if none or ambiguous. Caller frees. */
struct snapshot *repo_find_snapshot(struct repo *r, const char *disk, const char *spec);

/* A loaded block map: one hash per block; an all-zero hash is a zero block. */
struct repo_keys;
struct blockmap {
  uint64_t nblocks;
  uint32_t block_size;
  uint64_t size;
  uint8_t (*h)[HASH_LEN]; /* owned */
  /* How blocks are named: HMAC under these keys (an encrypted repository;
   * borrowed from the repo), or SHA-256 when NULL. */
  const struct repo_keys *keys;
};

int repo_load_blockmap(struct repo *r, const struct snapshot *s, struct blockmap *out);
void blockmap_free(struct blockmap *m);
int blockmap_is_zero(const struct blockmap *m, uint64_t block);
/* Length of block (the last block may be short). */
size_t blockmap_block_len(const struct blockmap *m, uint64_t block);

/* Called for each block read by repo_read_blocks, from several threads at
 * once, in no particular order. data (len bytes, verified against its hash)
 * is borrowed for the call. Return 0 or -1 (error set) to stop. */
typedef int (*block_data_cb)(void *opaque, uint64_t block, const void *data, size_t len);

/* Read the listed blocks of m (zero blocks are skipped) and pass each to cb.
 * Reads are grouped by pack and coalesced. */
int repo_read_blocks(struct repo *r, const struct blockmap *m, const uint64_t *blocks, size_t n,
                     block_data_cb cb, void *opaque);

/* Read one chunk by hash, verified, into a malloc'd buffer (caller frees). */
int repo_read_chunk(struct repo *r, const uint8_t hash[HASH_LEN], void **data, size_t *len);

struct backup_opts {
  const char *disk;                    /* required: [A-Za-z0-9._-]+ */
  struct source *src;                  /* borrowed */
  const struct extent_list *changed;   /* changed extents since the parent, or NULL */
  int full;                            /* ignore the parent: read every allocated extent */
  uint32_t block_size;                 /* for a disk's first backup; 0 = default */
  const char *cbt;                     /* CBT cookie to record, or NULL */
  const char *mode;                    /* override the recorded mode (e.g. "cbt"), or NULL */
  const char *note;                    /* recorded in the snapshot (e.g. a CBT fallback reason) */
  const struct progress_ops *progress; /* borrowed; NULL: none */
  /* The disk's latest snapshot, as the caller found it (borrowed), so it
   * is not listed again; NULL: found here. */
  const struct snapshot *parent;
};

/* Back up a disk and commit a snapshot. *out (may be NULL) receives the
 * committed snapshot; caller frees. */
int repo_backup(struct repo *r, const struct backup_opts *o, struct snapshot **out);

struct verify_report {
  size_t snapshots, packs, chunks, damaged; /* damaged: objects reported as damaged or missing */
  size_t unreferenced_packs;                /* packs no index object lists (not damage) */
  uint64_t unreferenced_bytes;              /* and their bytes */
  size_t temp_leftovers;                    /* interrupted writes: *.tmp.*, multipart uploads */
  uint64_t temp_bytes;                      /* and their bytes (0 where the store cannot tell) */
  char record[2 * HASH_LEN + 1];            /* the damage record written (damage/<record>), or "" */
  int record_failed;                        /* damage found but not recorded (read-only access?) */
  size_t
      hidden; /* objects hidden or shadowed in an Object Lock bucket (then nothing is recorded) */
  struct strings disks;   /* disks with damaged snapshots; owned, see below */
  struct strings sources; /* the source each of those disks was backed up from */
};
/* Free what repo_verify left in rep (the disks and sources). */
void verify_report_clear(struct verify_report *rep);

/* Check the repository's structure (every snapshot's pages and chunks are
 * indexed, every indexed pack exists with a sane size and trailer); with
 * read_slices 1, read every pack whole and check every chunk; with
 * read_slices N > 1, read only the packs of slice number slice (0 to N-1: a
 * pack's slice is its name's first four bytes, big-endian, modulo N), so N
 * runs with slices 0 to N-1 read every pack once. Each problem is passed to
 * report (a one-line message naming the object and the snapshots it
 * affects). What it finds is recorded in a damage record (docs/FORMAT.md)
 * that every client loads at open: backups store the damaged chunks again
 * and pilotlight repair acts on it. When every pack was read the check is
 * complete, so the records it supersedes are deleted. Returns 0 when the
 * check ran (look at rep->damaged; free rep with verify_report_clear), -1 if
 * it could not run. progress (may be NULL) follows the bytes of the packs read
 * when any are. */
int repo_verify(struct repo *r, unsigned read_slices, unsigned slice,
                void (*report)(void *opaque, const char *msg), void *opaque,
                struct verify_report *rep, const struct progress_ops *progress);

#define DEFAULT_BLOCK_SIZE (512u << 10) /* chosen by bench/: see bench/RESULTS.md */

/* The block size for a disk's first backup with QEMU changed-block tracking,
 * when none is given: QEMU's default dirty-bitmap granularity (64 KiB), so
 * that one dirty bit costs one block, not eight (see docs/CBT.md). Past
 * 256 GiB it doubles, so that the block map never holds more than
 * CBT_MAX_BLOCKS entries, up to DEFAULT_BLOCK_SIZE. */
#define CBT_BLOCK_SIZE (64u << 10)
#define CBT_MAX_BLOCKS (4ull << 20)
uint32_t repo_cbt_block_size(uint64_t disk_size);

#endif
