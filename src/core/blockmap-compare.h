/* Compare a disk (or anything read at an offset) with a snapshot's block
 * map, block by block and in parallel: the loop behind `restore --verify`,
 * `replica sync --verify` and `backup --verify-cbt`. */
#ifndef PL_BLOCKMAP_COMPARE_H
#define PL_BLOCKMAP_COMPARE_H

#include <stddef.h>
#include <stdint.h>

#include "repo.h"

/* Read len bytes at off into buf, whole (a short read is an error). Called
 * from several threads at once. Returns 0, or -1 with the error set. */
typedef int (*blockmap_read_fn)(void *opaque, void *buf, size_t len, uint64_t off);

struct blockmap_compare_opts {
  uint64_t limit; /* bytes that can be read: blocks are clipped to it (the
                     caller checks that whatever lies past it is zero) */
  int threads;    /* readers; < 1 means one, at most 16 */
  int stop_first; /* stop at the first difference instead of counting all */
  blockmap_read_fn read;
  void *opaque; /* passed to read and differs */
  /* Called with each differing block, one call at a time (under the
   * comparison's lock); NULL: none. */
  void (*differs)(void *opaque, uint64_t block);
};

struct blockmap_compare_result {
  uint64_t mismatches; /* blocks that differ (with stop_first: those seen) */
  uint64_t first;      /* the lowest differing block seen, UINT64_MAX if none */
};

/* Read every block of m that starts below o->limit and compare it with its
 * hash (a zero block must read as zeros). m is borrowed and only read.
 * Returns 0 when the comparison ran, whatever it found (look at res), or -1
 * with the error set (the first read failure, carried from its thread). */
int blockmap_compare(const struct blockmap *m, const struct blockmap_compare_opts *o,
                     struct blockmap_compare_result *res);

#endif
