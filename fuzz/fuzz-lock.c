/* libFuzzer target: the lock object decoder; whatever it accepts must
 * encode and decode again to the same values. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/lock.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct lock_info a, b;
  if (lock_decode((const char *)data, size, &a) == 0) {
    char *t = lock_encode(&a);
    assert(t && lock_decode(t, strlen(t), &b) == 0);
    assert(a.exclusive == b.exclusive && a.pid == b.pid && a.created == b.created &&
           a.refreshed == b.refreshed && strcmp(a.host, b.host) == 0 &&
           strcmp(a.command, b.command) == 0);
    free(t);
  }
  return 0;
}
