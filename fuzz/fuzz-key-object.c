/* libFuzzer target: the key object decoder; whatever it accepts must encode
 * and decode again to the same values, and opening it with a password must
 * fail cleanly or succeed (cheap scrypt parameters only). */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "core/format.h"
#include "util/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct key_object a, b;
  struct repo_keys k;
  if (key_object_decode((const char *)data, size, &a) == -1)
    return 0;
  assert(a.n >= KDF_MIN_N && a.n <= KDF_MAX_N && (a.n & (a.n - 1)) == 0);
  assert(a.r >= 1 && a.r <= KDF_MAX_R && a.p >= 1 && a.p <= KDF_MAX_P && a.created >= 0);
  char *t = key_object_encode(&a);
  assert(t && strlen(t) <= MAX_KEY_OBJECT_BYTES);
  assert(key_object_decode(t, strlen(t), &b) == 0);
  assert(a.n == b.n && a.r == b.r && a.p == b.p && a.created == b.created &&
         memcmp(a.salt, b.salt, sizeof a.salt) == 0 &&
         memcmp(a.wrapped, b.wrapped, sizeof a.wrapped) == 0);
  /* The decoder is canonical: what it accepts re-encodes to itself. */
  char *t2 = key_object_encode(&b);
  assert(t2 && strcmp(t, t2) == 0);
  assert(strlen(t) == size && memcmp(t, data, size) == 0);
  free(t2);
  free(t);
  /* scrypt's cost is n * r * p: open only what takes a few milliseconds.
   * The corpus's valid objects were made with the password "pw". */
  if ((uint64_t)a.n * a.r * a.p <= (uint64_t)KDF_MIN_N * 4 * KDF_DEFAULT_R) {
    int rc = key_object_open(&a, "pw", 2, &k);
    assert(rc == 0 || get_errno() == EACCES);
    repo_keys_wipe(&k);
  }
  return 0;
}
