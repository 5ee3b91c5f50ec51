/* --verify-cbt's block-for-block compare of a disk with a block map (its
 * declaration moved here from qemu-cbt.h when src/cbt/ was made). */
#ifndef PL_CBT_VERIFY_H
#define PL_CBT_VERIFY_H

#include <stdint.h>

#include "source.h"

/* Check that a block map (one SHA-256 per block of block_size bytes, an
 * all-zero hash for a zero block) matches the disk src block for block.
 * Reads with nthreads threads. *mismatches receives the count and *first the
 * first mismatched block (UINT64_MAX if none). Returns 0 when it could
 * compare (whatever the outcome), or -1 with the error set. */
int cbt_verify(struct source *src, uint32_t block_size, uint64_t nblocks,
               const uint8_t (*hashes)[32], int nthreads, uint64_t *mismatches, uint64_t *first);

#endif
