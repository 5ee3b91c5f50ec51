/* libFuzzer target: the index object decoder. */
#include <assert.h>
#include <stdint.h>

#include "core/format.h"
#include "util/compiler.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint32_t npacks;

static int on_pack(void *o PL_UNUSED, uint32_t ord, const uint8_t h[HASH_LEN] PL_UNUSED)
{
  npacks = ord + 1;
  return 0;
}

static int on_entry(void *o PL_UNUSED, uint32_t ord, const struct chunk_entry *e)
{
  assert(ord < npacks && e->raw_len > 0 && e->stored_len > 0);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct index_visitor v = {on_pack, on_entry, NULL};
  npacks = 0;
  index_decode(data, size, 0, &v);
  index_decode(data, size, SEAL_OVERHEAD, &v);
  return 0;
}
