/* libFuzzer target: the repository config decoder; whatever it accepts
 * must encode and decode again to the same values. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct repo_config c, d;
  if (config_decode((const char *)data, size, &c) == 0) {
    char *t = config_encode(&c);
    assert(t && config_decode(t, strlen(t), &d) == 0);
    assert(strcmp(c.id, d.id) == 0 && c.page_entries == d.page_entries);
    free(t);
  }
  return 0;
}
