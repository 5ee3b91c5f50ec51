/* libFuzzer target: a whole pack object's trailer, read as the index
 * rebuild and verify read it (footer, then entries before it). */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  uint32_t count;
  uint8_t th[HASH_LEN];
  struct chunk_entry *e;
  int sealed;
  struct repo_keys k;
  memset(&k, 0x42, sizeof k); /* the key the sealed corpus files were made with */
  if (size < PACK_HEADER_LEN + PACK_FOOTER_LEN)
    return 0;
  if (pack_footer_decode(data + size - PACK_FOOTER_LEN, &count, th, &sealed) == -1)
    return 0;
  uint64_t elen = (uint64_t)count * PACK_ENTRY_LEN, tlen = elen + (sealed ? SEAL_OVERHEAD : 0);
  if (tlen > size - PACK_HEADER_LEN - PACK_FOOTER_LEN)
    return 0;
  uint64_t data_end = size - PACK_FOOTER_LEN - tlen;
  const uint8_t *entries = data + data_end;
  uint8_t *plain = NULL;
  if (sealed) {
    plain = malloc(elen ? elen : 1);
    if (!plain || pack_trailer_unseal(&k, entries, count, plain) == -1) {
      free(plain);
      return 0;
    }
    entries = plain;
  }
  if (pack_entries_decode(entries, count, sealed ? NULL : th, sealed ? SEAL_OVERHEAD : 0, data_end,
                          &e) == 0) {
    for (uint32_t i = 0; i < count; i++)
      assert(e[i].offset + e[i].stored_len <= data_end);
    free(e);
  }
  free(plain);
  return 0;
}
