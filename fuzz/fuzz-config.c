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
  struct repo_keys k;
  memset(&k, 0x42, sizeof k);
  if (config_decode((const char *)data, size, &c) == 0) {
    /* A version-2 config's MAC is checked after decoding, with the key. */
    if (c.encrypted)
      (void)config_check_mac(&c, (const char *)data, &k);
    char *t = config_encode(&c, c.encrypted ? &k : NULL);
    assert(t && config_decode(t, strlen(t), &d) == 0);
    assert(strcmp(c.id, d.id) == 0 && c.page_entries == d.page_entries);
    assert(d.encrypted == c.encrypted && (!d.encrypted || config_check_mac(&d, t, &k) == 0));
    free(t);
  }
  return 0;
}
