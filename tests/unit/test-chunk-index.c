/* Unit tests for the in-memory chunk index. */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "core/chunk-index.h"
#include "util/bigmem.h"
#include "util/hash.h"

/* bigmem: zeroed, writable, a large block on a huge page boundary. */
static void test_bigmem(void)
{
  size_t sizes[] = {1000, BIGMEM_MIN, (size_t)3 << 20};
  for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
    uint8_t *p = bigmem_alloc(sizes[k]);
    check(p != NULL);
    if (!p)
      continue;
    size_t nonzero = 0;
    for (size_t i = 0; i < sizes[k]; i++)
      nonzero += p[i] != 0;
    check_int(nonzero, ==, 0);
    memset(p, 0xa5, sizes[k]);
    if (sizes[k] >= BIGMEM_MIN)
      check_int((uintptr_t)p % ((size_t)2 << 20), ==, 0);
    bigmem_free(p, sizes[k]);
  }
  bigmem_free(NULL, 0);
}

int main(void)
{
  test_bigmem();
  struct chunk_index *ix = chunk_index_new();
  uint8_t h[HASH_LEN];
  int added, n = 20000, found = 0;
  check(ix != NULL);
  for (int i = 0; i < n; i++) {
    sha256(&i, sizeof i, h);
    struct index_slot *s = chunk_index_insert(ix, h, &added);
    check(s && added);
    s->offset = (uint64_t)i;
  }
  check_int(ix->count, ==, n);
  for (int i = 0; i < n; i++) {
    sha256(&i, sizeof i, h);
    struct index_slot *s = chunk_index_find(ix, h);
    found += s && s->offset == (uint64_t)i && s->pack == PACK_PENDING;
    chunk_index_insert(ix, h, &added);
    check_int(added, ==, 0);
  }
  check_int(found, ==, n);
  int x = -1;
  sha256(&x, sizeof x, h);
  check(chunk_index_find(ix, h) == NULL);
  check_int(chunk_index_pack(ix, h), ==, 0);
  check_int(chunk_index_pack(ix, h), ==, 0);
  h[0] ^= 1;
  check_int(chunk_index_pack(ix, h), ==, 1);
  chunk_index_free(ix);
  chunk_index_free(NULL);
  return check_summary();
}
