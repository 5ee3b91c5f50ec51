/* libFuzzer target: the snapshot decoder; whatever it accepts must
 * re-encode to an object that decodes to the same fields. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct snapshot s, d;
  if (snapshot_decode((const char *)data, size, &s) == 0) {
    char *t = snapshot_encode(&s);
    assert(t && snapshot_decode(t, strlen(t), &d) == 0);
    assert(strcmp(s.disk, d.disk) == 0 && strcmp(s.source, d.source) == 0);
    assert(s.size == d.size && s.pages.len == d.pages.len && s.used_end <= s.size);
    snapshot_clear(&d);
    snapshot_clear(&s);
    free(t);
  }
  return 0;
}
