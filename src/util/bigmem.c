/* Huge-page-advised anonymous mappings for large tables (bigmem.h). */
#define _GNU_SOURCE
#include "bigmem.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#define HUGE_PAGE ((size_t)2 << 20)

static size_t mapped_len(size_t len)
{
  return (len + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1);
}

void *bigmem_alloc(size_t len)
{
  if (len < BIGMEM_MIN)
    return calloc(1, len ? len : 1);
  size_t map = mapped_len(len);
  if (map < len || map + HUGE_PAGE < map) {
    errno = ENOMEM;
    return NULL;
  }
  /* Map one huge page more and trim, so that the table starts on a huge
   * page boundary (the kernel backs only aligned 2 MiB ranges with them). */
  uint8_t *p =
      mmap(NULL, map + HUGE_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED)
    return NULL;
  uint8_t *start = (uint8_t *)(((uintptr_t)p + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
  if (start > p)
    munmap(p, (size_t)(start - p));
  if (start + map < p + map + HUGE_PAGE)
    munmap(start + map, (size_t)(p + map + HUGE_PAGE - (start + map)));
  madvise(start, map, MADV_HUGEPAGE); /* advice: without THP, 4 KiB pages serve */
  return start;
}

void bigmem_free(void *p, size_t len)
{
  if (!p)
    return;
  if (len < BIGMEM_MIN)
    free(p);
  else
    munmap(p, mapped_len(len));
}
