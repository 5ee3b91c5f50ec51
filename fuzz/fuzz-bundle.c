/* libFuzzer target: the cache's bundle decoder (src/core/bundle.c). A bundle
 * is a local file, but a damaged or planted one must only be rejected:
 * whatever it accepts must re-encode to the same bytes, and every lookup
 * must stay inside the buffer. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/bundle.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct bundle b;
  uint8_t *copy = malloc(size ? size : 1);
  assert(copy);
  memcpy(copy, data, size);
  if (bundle_decode(copy, size, &b) == 0) {
    size_t len;
    struct bundle_entry *e = malloc((b.n ? b.n : 1) * sizeof *e);
    assert(e);
    memcpy(e, b.e, b.n * sizeof *e);
    uint8_t *out = bundle_encode(e, b.n, &len);
    assert(out && len == size && memcmp(out, data, size) == 0);
    for (size_t i = 0; i < b.n; i++)
      bundle_find(&b, e[i].name); /* hashes data in bounds */
    free(out);
    free(e);
    bundle_free(&b);
  }
  return 0;
}
