/* SHA-256 through OpenSSL's EVP one-shot interface (SHA-NI where present),
 * and hex encoding. */
#include "hash.h"

#include <openssl/evp.h>
#include <string.h>

const uint8_t zero_hash[HASH_LEN];

void sha256(const void *buf, size_t len, uint8_t out[HASH_LEN])
{
  unsigned int n = 0;
  int ok = EVP_Digest(buf, len, out, &n, EVP_sha256(), NULL);
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

static int hexval(char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

int hex_decode(const char *in, uint8_t *out, size_t n)
{
  for (size_t i = 0; i < n; i++) {
    int hi = hexval(in[2 * i]);
    int lo = hi < 0 ? -1 : hexval(in[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return -1;
    out[i] = (uint8_t)(hi << 4 | lo);
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
