/* Encryption of a version-2 repository (docs/FORMAT.md, Encryption): the
 * master key, AES-256-GCM envelopes for objects and chunks, HMAC-SHA256
 * chunk names, and key objects that wrap the master key under a passphrase
 * (scrypt). Pure functions over buffers: no I/O. */
#ifndef PL_CRYPTO_H
#define PL_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include "../util/hash.h"

struct key_object; /* format.h */

#define SEAL_NONCE_LEN 12
#define SEAL_TAG_LEN 16
#define SEAL_OVERHEAD (SEAL_NONCE_LEN + SEAL_TAG_LEN)

/* The master key: enc encrypts every object and chunk, mac names chunks
 * and authenticates the config. Wipe with repo_keys_wipe. */
struct repo_keys {
  uint8_t enc[32];
  uint8_t mac[32];
};

/* Fill k with fresh random keys. Returns 0 or -1 with the error set. */
int repo_keys_random(struct repo_keys *k);
void repo_keys_wipe(struct repo_keys *k);

/* A chunk's name: HMAC-SHA256 of its bytes under k->mac, or SHA-256 when k
 * is NULL (a clear repository). */
void chunk_name(const struct repo_keys *k, const void *buf, size_t len, uint8_t out[HASH_LEN]);

/* HMAC-SHA256 of buf under the config key (derived from k->mac). */
void config_mac(const struct repo_keys *k, const void *buf, size_t len, uint8_t out[HASH_LEN]);

/* Encrypt len bytes of in into out (len + SEAL_OVERHEAD bytes: a random
 * nonce, the ciphertext, the tag), authenticating aad too. in and out may
 * not overlap. Returns 0 or -1 with the error set. */
int seal(const struct repo_keys *k, const void *aad, size_t aadlen, const void *in, size_t len,
         uint8_t *out);

/* Decrypt len bytes of untrusted in (as seal wrote them) into out (len -
 * SEAL_OVERHEAD bytes). -1 with EIO ("failed authentication") if the bytes,
 * the key or aad differ from what was sealed; nothing is left in out then. */
int unseal(const struct repo_keys *k, const void *aad, size_t aadlen, const uint8_t *in, size_t len,
           uint8_t *out);

/* seal/unseal into a malloc'd buffer (caller frees). */
int seal_alloc(const struct repo_keys *k, const void *aad, size_t aadlen, const void *in,
               size_t len, uint8_t **out, size_t *outlen);
int unseal_alloc(const struct repo_keys *k, const void *aad, size_t aadlen, const uint8_t *in,
                 size_t len, uint8_t **out, size_t *outlen);

/* The associated data of a whole object of a kind ("index", "snapshots",
 * ...): "pilotlight/<repo id>/<kind>". out holds AAD_MAX. Returns its length. */
#define AAD_MAX 96
size_t object_aad(const char *repo_id, const char *kind, char out[AAD_MAX]);

/* scrypt parameters: the defaults (one unlock takes about 0.5-1 s on the
 * machines this was measured on; docs/FORMAT.md) and the bounds a reader
 * accepts. Besides each parameter's range, scrypt's memory (128 * N * r
 * bytes) and work (N * r * p) have caps, so that a key object cannot make
 * an unlock allocate gigabytes. */
#define KDF_DEFAULT_N (1u << 16) /* 64 MiB of memory (128 * N * r) */
#define KDF_DEFAULT_R 8u
#define KDF_DEFAULT_P 2u /* twice the work in the same memory: about 0.65 s */
#define KDF_MIN_N (1u << 10)
#define KDF_MAX_N (1u << 22)
#define KDF_MAX_R 32u
#define KDF_MAX_P 16u
#define KDF_MAX_MEM ((uint64_t)1 << 30)  /* 128 * N * r: 1 GiB, 8 times the default */
#define KDF_MAX_WORK ((uint64_t)1 << 24) /* N * r * p: 16 times the default */

/* 0 if n, r and p are within the bounds above (n a power of two), or -1
 * with EINVAL and a one-line message that names them. */
int scrypt_params_check(uint64_t n, uint64_t r, uint64_t p);

/* Make a key object that wraps k under password (len bytes) with cost n
 * (0: KDF_DEFAULT_N) and created (seconds since the epoch, not negative).
 * Returns 0, or -1 (EINVAL for parameters the decoder would refuse: nothing
 * is derived then). */
int key_object_make(const struct repo_keys *k, const char *password, size_t len, uint64_t n,
                    int64_t created, struct key_object *o);
/* Unwrap: 0 and k filled, or -1 (EACCES when the password does not open
 * it; EINVAL, before scrypt runs, for parameters out of bounds). */
int key_object_open(const struct key_object *o, const char *password, size_t len,
                    struct repo_keys *k);

#endif
