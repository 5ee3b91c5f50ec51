/* libFuzzer target: the changed-extent list parser. Whatever it accepts
 * must be normalized and inside the disk. */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "source/extent-list.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct extent_list l = {0};
  const uint64_t disk = 1ull << 40;
  if (extent_list_parse(&l, (const char *)data, size, disk, "fuzz") == 0) {
    for (size_t i = 0; i < l.e.len; i++) {
      assert(l.e.v[i].len > 0);
      assert(l.e.v[i].off + l.e.v[i].len <= disk);
      assert(i == 0 || l.e.v[i - 1].off + l.e.v[i - 1].len < l.e.v[i].off);
    }
  } else {
    assert(l.e.len == 0);
  }
  extent_list_free(&l);
  return 0;
}
