/* SHA-256 through OpenSSL's EVP one-shot interface (SHA-NI where present),
 * and hex encoding. */
#include "hash.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <string.h>

const uint8_t zero_hash[HASH_LEN];

/* The SHA-256 implementation, fetched from the provider once: EVP_sha256()
 * makes every EVP_Digest fetch it again, which doubles the cost of hashing
 * a small object (an index or snapshot object, 10,000 of them at open). */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void fetch_sha256(void)
{
  sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

void sha256(const void *buf, size_t len, uint8_t out[HASH_LEN])
{
  unsigned int n = 0;
  pthread_once(&sha256_once, fetch_sha256);
  int ok = EVP_Digest(buf, len, out, &n, sha256_md ? sha256_md : EVP_sha256(), NULL);
  (void)ok;
}

void hex_encode(const uint8_t *in, size_t n, char *out)
{
  static const char digits[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++) {
    out[2 * i] = digits[in[i] >> 4];
    out[2 * i + 1] = digits[in[i] & 15];
  }
  out[2 * n] = 0;
}

/* A hex digit's value + 1 (either case); 0 for anything else. */
static const uint8_t hexval[256] = {
    ['0'] = 1,  ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,  ['6'] = 7,  ['7'] = 8,
    ['8'] = 9,  ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
    ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
};

int hex_decode(const char *in, uint8_t *out, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    unsigned hi = hexval[(unsigned char)in[2 * i]], lo;
    if (!hi || !(lo = hexval[(unsigned char)in[2 * i + 1]])) /* a NUL ends in at hi */
      return -1;
    out[i] = (uint8_t)((hi - 1) << 4 | (lo - 1));
  }
  return 0;
}

int is_zero(const void *buf, size_t len)
{
  const unsigned char *p = buf;
  /* Check the first 16 bytes directly, then compare the buffer with itself
   * shifted by 16: memcmp is vectorised and this needs no zero page. */
  size_t head = len < 16 ? len : 16;
  for (size_t i = 0; i < head; i++)
    if (p[i])
      return 0;
  return len <= 16 || memcmp(p, p + 16, len - 16) == 0;
}
