/* libFuzzer target: an AES-256-GCM envelope (nonce, ciphertext, tag) opened
 * under a fixed key and associated data, in place and into a new buffer;
 * whatever opens must seal and open again to the same plaintext. */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/crypto.h"
#include "util/error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  /* The key and AAD the sealed corpus files were made with. */
  static const char aad[] = "pilotlight/0123456789abcdef0123456789abcdef/index";
  struct repo_keys k;
  memset(&k, 0x42, sizeof k);
  uint8_t *out = malloc(size > SEAL_OVERHEAD ? size - SEAL_OVERHEAD : 1);
  assert(out);
  int rc = unseal(&k, aad, strlen(aad), data, size, out);
  assert(rc == 0 || get_errno() == EIO);
  uint8_t *p = NULL;
  size_t plen = 0;
  int rc2 = unseal_alloc(&k, aad, strlen(aad), data, size, &p, &plen);
  assert(rc2 == rc);
  if (rc == 0) {
    assert(plen == size - SEAL_OVERHEAD && (plen == 0 || memcmp(p, out, plen) == 0));
    uint8_t *s, *back;
    size_t slen, blen;
    assert(seal_alloc(&k, aad, strlen(aad), p, plen, &s, &slen) == 0 && slen == size);
    assert(unseal_alloc(&k, aad, strlen(aad), s, slen, &back, &blen) == 0 && blen == plen);
    assert(blen == 0 || memcmp(back, p, blen) == 0);
    free(s);
    free(back);
    /* Under another AAD it does not open. */
    assert(unseal(&k, aad, strlen(aad) - 1, data, size, out) == -1 && get_errno() == EIO);
  }
  free(p);
  free(out);
  return 0;
}
