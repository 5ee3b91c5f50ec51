/* SHA-256 (OpenSSL), the hash length every chunk, page and object name
 * uses, the all-zero hash that marks a zero block, and hex helpers. */
#ifndef PL_HASH_H
#define PL_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The length of a SHA-256 digest: every hash in the repository, and the
 * HMAC-SHA256 values S3 signing uses. */
#define HASH_LEN 32

/* HASH_LEN zero bytes: the hash a block map gives a zero block or page. */
extern const uint8_t zero_hash[HASH_LEN];

/* 1 if h is zero_hash. Inline: block maps test every entry. */
static inline int hash_is_zero(const uint8_t h[HASH_LEN])
{
  return memcmp(h, zero_hash, HASH_LEN) == 0;
}

/* out receives the SHA-256 of buf. */
void sha256(const void *buf, size_t len, uint8_t out[HASH_LEN]);

/* Write 2*n lowercase hex digits and a NUL to out (size >= 2*n+1). */
void hex_encode(const uint8_t *in, size_t n, char *out);

/* Parse exactly 2*n hex digits (either case) from in. Returns 0 or -1. */
int hex_decode(const char *in, uint8_t *out, size_t n);

/* 1 if all len bytes of buf are zero. */
int is_zero(const void *buf, size_t len);

#endif
