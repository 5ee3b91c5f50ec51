/* A snapshot served as a block device: what the nbdkit plugin (plugin.c)
 * exports. Reads come from the overlay where the VM wrote, zeros where the
 * block map says so, and otherwise from verified chunks through a bounded
 * cache with readahead along the block map. Thread-safe: any number of
 * connections and requests at once. docs/SERVE.md. */
#ifndef PL_SERVE_SERVED_H
#define PL_SERVE_SERVED_H

#include <stddef.h>
#include <stdint.h>

#include "core/repo.h"

struct served_opts {
  const char *location;                 /* the repository */
  const struct repo_settings *settings; /* borrowed for served_open */
  const char *disk;
  const char *snapshot; /* id, unique prefix, or NULL / "latest" */
  const char *overlay;  /* --writable FILE, or NULL: read-only */
  uint64_t cache_bytes; /* 0: SERVED_DEFAULT_CACHE */
  uint64_t readahead;   /* bytes; 0: SERVED_DEFAULT_READAHEAD */
};

#define SERVED_DEFAULT_CACHE (256ull << 20)
#define SERVED_DEFAULT_READAHEAD (16ull << 20)

struct served;

/* Open the repository, find the snapshot, load its block map and open (or
 * create) the overlay. Returns NULL with the error set. */
struct served *served_open(const struct served_opts *o);
void served_free(struct served *s);

uint64_t served_size(const struct served *s);
int served_writable(const struct served *s);
const struct snapshot *served_snapshot(const struct served *s);

/* Read count bytes at off. A chunk that cannot be read or fails its check
 * fails the read (EIO) with the error set: wrong bytes are never returned. */
int served_pread(struct served *s, void *buf, uint32_t count, uint64_t off);
/* Write to the overlay (a writable export only); fua: durable on return. */
int served_pwrite(struct served *s, const void *buf, uint32_t count, uint64_t off, int fua);
int served_flush(struct served *s);

/* Describe [off, off + count) as runs: cb(opaque, run_off, run_len, zero)
 * with zero 1 for blocks the snapshot holds as zeros and the VM has not
 * written. Stops at cb's first non-zero return, which it returns. */
int served_extents(struct served *s, uint64_t off, uint64_t count,
                   int (*cb)(void *opaque, uint64_t off, uint64_t len, int zero), void *opaque);

struct served_stats {
  uint64_t reads;         /* read requests */
  uint64_t chunks;        /* chunks fetched from the repository, each verified */
  uint64_t chunk_bytes;   /* their uncompressed bytes */
  uint64_t failed;        /* chunks that could not be read or failed verification */
  uint64_t cache_hits;    /* blocks found in the cache */
  uint64_t overlay_bytes; /* bytes the VM has written (whole granules) */
  int64_t first_read_ns;  /* CLOCK_MONOTONIC of the first read request; 0 if none */
};
void served_get_stats(struct served *s, struct served_stats *out);

/* CLOCK_MONOTONIC in nanoseconds, the clock of first_read_ns. */
int64_t served_now_ns(void);

#endif
