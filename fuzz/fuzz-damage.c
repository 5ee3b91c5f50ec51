/* libFuzzer target: the damage-record decoder; whatever it accepts must
 * re-encode canonically to an object that decodes to the same lists. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct damage d, e;
  if (damage_decode((const char *)data, size, &d) == 0) {
    char *t = damage_encode(&d);
    assert(t && damage_decode(t, strlen(t), &e) == 0);
    assert(d.packs.len == e.packs.len && d.chunks.len == e.chunks.len &&
           d.index.len == e.index.len && d.snapshots.len == e.snapshots.len);
    char *u = damage_encode(&e);
    assert(u && strcmp(t, u) == 0);
    free(u);
    free(t);
    damage_clear(&e);
  }
  damage_clear(&d);
  return 0;
}
