/* Zeroed memory for a large table that is filled soon after it is made
 * (the chunk index): an anonymous mapping aligned to and advised for
 * transparent huge pages, so that touching 2 MiB of it costs one page fault
 * instead of 512. A fault costs about 10 us on the virtual machines this
 * was measured on, so a chunk index of 20,000 chunks cost as many
 * milliseconds in faults as the rest of its load. Where THP is off (or
 * below BIGMEM_MIN) it is the same lazily zeroed memory calloc gives. */
#ifndef PL_BIGMEM_H
#define PL_BIGMEM_H

#include <stddef.h>

/* Below this, bigmem_alloc is calloc (a huge page would be mostly waste). */
#define BIGMEM_MIN ((size_t)256 << 10)

/* len zeroed bytes, or NULL with errno set. Free with bigmem_free(p, len),
 * len as given here. */
void *bigmem_alloc(size_t len);
void bigmem_free(void *p, size_t len);

#endif
