/* libFuzzer target: a whole pack object's trailer, read as the index
 * rebuild and verify read it (footer, then entries before it). */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>

#include "core/format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  uint32_t count;
  uint8_t th[HASH_LEN];
  struct chunk_entry *e;
  if (size < PACK_HEADER_LEN + PACK_FOOTER_LEN)
    return 0;
  if (pack_footer_decode(data + size - PACK_FOOTER_LEN, &count, th) == -1)
    return 0;
  uint64_t tlen = (uint64_t)count * PACK_ENTRY_LEN;
  if (tlen > size - PACK_HEADER_LEN - PACK_FOOTER_LEN)
    return 0;
  uint64_t data_end = size - PACK_FOOTER_LEN - tlen;
  if (pack_entries_decode(data + data_end, count, th, data_end, &e) == 0) {
    for (uint32_t i = 0; i < count; i++)
      assert(e[i].offset + e[i].stored_len <= data_end);
    free(e);
  }
  return 0;
}
