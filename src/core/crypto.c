/* AES-256-GCM envelopes, HMAC-SHA256 names and scrypt key wrapping, all
 * through OpenSSL's EVP interfaces. Owns nothing beyond each call. */
#include "crypto.h"

#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/error.h"
#include "format.h"

int repo_keys_random(struct repo_keys *k)
{
  if (RAND_bytes(k->enc, sizeof k->enc) != 1 || RAND_bytes(k->mac, sizeof k->mac) != 1) {
    set_error_code(EIO, "no random bytes for the master key");
    return -1;
  }
  return 0;
}

void repo_keys_wipe(struct repo_keys *k)
{
  explicit_bzero(k, sizeof *k);
}

static void hmac(const uint8_t key[32], const void *buf, size_t len, uint8_t out[HASH_LEN])
{
  unsigned n = HASH_LEN;
  /* HMAC fails only when out of memory or misconfigured; a zero name then
   * matches no stored chunk, so the failure shows as a mismatch. */
  if (!HMAC(EVP_sha256(), key, 32, buf, len, out, &n))
    memset(out, 0, HASH_LEN);
}

void chunk_name(const struct repo_keys *k, const void *buf, size_t len, uint8_t out[HASH_LEN])
{
  if (k)
    hmac(k->mac, buf, len, out);
  else
    sha256(buf, len, out);
}

void config_mac(const struct repo_keys *k, const void *buf, size_t len, uint8_t out[HASH_LEN])
{
  static const char label[] = "pilotlight config key";
  uint8_t ck[HASH_LEN];
  hmac(k->mac, label, sizeof label - 1, ck);
  hmac(ck, buf, len, out);
  explicit_bzero(ck, sizeof ck);
}

/* One AES-256-GCM pass: encrypt (enc=1) or decrypt and check the tag. */
static int gcm(int enc, const uint8_t key[32], const uint8_t nonce[SEAL_NONCE_LEN], const void *aad,
               size_t aadlen, const uint8_t *in, size_t len, uint8_t *out,
               uint8_t tag[SEAL_TAG_LEN])
{
  EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
  int n, ok = 0;
  if (!c || len > INT32_MAX || aadlen > INT32_MAX)
    goto out;
  if (EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, key, nonce, enc) != 1)
    goto out;
  if (aadlen && EVP_CipherUpdate(c, NULL, &n, aad, (int)aadlen) != 1)
    goto out;
  if (len && EVP_CipherUpdate(c, out, &n, in, (int)len) != 1)
    goto out;
  if (!enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, SEAL_TAG_LEN, tag) != 1)
    goto out;
  if (EVP_CipherFinal_ex(c, out + len, &n) != 1)
    goto out;
  if (enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, SEAL_TAG_LEN, tag) != 1)
    goto out;
  ok = 1;
out:
  EVP_CIPHER_CTX_free(c);
  return ok ? 0 : -1;
}

int seal(const struct repo_keys *k, const void *aad, size_t aadlen, const void *in, size_t len,
         uint8_t *out)
{
  if (RAND_bytes(out, SEAL_NONCE_LEN) != 1) {
    set_error_code(EIO, "no random bytes for a nonce");
    return -1;
  }
  if (gcm(1, k->enc, out, aad, aadlen, in, len, out + SEAL_NONCE_LEN, out + SEAL_NONCE_LEN + len) ==
      -1) {
    set_error_code(EIO, "AES-256-GCM encryption failed");
    return -1;
  }
  return 0;
}

int unseal(const struct repo_keys *k, const void *aad, size_t aadlen, const uint8_t *in, size_t len,
           uint8_t *out)
{
  uint8_t tag[SEAL_TAG_LEN];
  if (len < SEAL_OVERHEAD) {
    set_error_code(EIO, "encrypted object is truncated (%zu bytes)", len);
    return -1;
  }
  size_t n = len - SEAL_OVERHEAD;
  memcpy(tag, in + SEAL_NONCE_LEN + n, SEAL_TAG_LEN);
  if (gcm(0, k->enc, in, aad, aadlen, in + SEAL_NONCE_LEN, n, out, tag) == -1) {
    explicit_bzero(out, n);
    set_error_code(EIO, "failed authentication (damaged, altered or moved)");
    return -1;
  }
  return 0;
}

int seal_alloc(const struct repo_keys *k, const void *aad, size_t aadlen, const void *in,
               size_t len, uint8_t **out, size_t *outlen)
{
  uint8_t *p = malloc(len + SEAL_OVERHEAD);
  if (!p) {
    set_error(errno, "malloc");
    return -1;
  }
  if (seal(k, aad, aadlen, in, len, p) == -1) {
    free(p);
    return -1;
  }
  *out = p;
  *outlen = len + SEAL_OVERHEAD;
  return 0;
}

int unseal_alloc(const struct repo_keys *k, const void *aad, size_t aadlen, const uint8_t *in,
                 size_t len, uint8_t **out, size_t *outlen)
{
  uint8_t *p = malloc(len > SEAL_OVERHEAD ? len - SEAL_OVERHEAD : 1);
  if (!p) {
    set_error(errno, "malloc");
    return -1;
  }
  if (unseal(k, aad, aadlen, in, len, p) == -1) {
    free(p);
    return -1;
  }
  *out = p;
  *outlen = len - SEAL_OVERHEAD;
  return 0;
}

size_t object_aad(const char *repo_id, const char *kind, char out[AAD_MAX])
{
  int n = snprintf(out, AAD_MAX, "pilotlight/%s/%s", repo_id, kind);
  return n < 0 ? 0 : (size_t)n < AAD_MAX ? (size_t)n : AAD_MAX - 1;
}

/* ---- key objects ----------------------------------------------------- */

int scrypt_params_check(uint64_t n, uint64_t r, uint64_t p)
{
  /* Each range first, so the products below cannot overflow. */
  int ok = n >= KDF_MIN_N && n <= KDF_MAX_N && (n & (n - 1)) == 0 && r >= 1 && r <= KDF_MAX_R &&
           p >= 1 && p <= KDF_MAX_P;
  if (ok && 128 * n * r <= KDF_MAX_MEM && n * r * p <= KDF_MAX_WORK)
    return 0;
  set_error_code(EINVAL,
                 "key object's scrypt parameters are out of bounds (N=%llu, r=%llu, p=%llu; "
                 "allowed: N a power of two from %u to %u, r 1 to %u, p 1 to %u, memory "
                 "128*N*r at most %llu MiB, work N*r*p at most %llu)",
                 (unsigned long long)n, (unsigned long long)r, (unsigned long long)p, KDF_MIN_N,
                 KDF_MAX_N, KDF_MAX_R, KDF_MAX_P, (unsigned long long)(KDF_MAX_MEM >> 20),
                 (unsigned long long)KDF_MAX_WORK);
  return -1;
}

/* The key-encryption key scrypt derives from password under o's salt and
 * parameters, refused before anything is allocated when they are out of
 * bounds. */
static int derive(const struct key_object *o, const char *password, size_t len, uint8_t kek[32])
{
  if (scrypt_params_check(o->n, o->r, o->p) == -1)
    return -1;
  EVP_KDF *kdf = EVP_KDF_fetch(NULL, "SCRYPT", NULL);
  EVP_KDF_CTX *c = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
  uint64_t n = o->n;
  uint32_t r = o->r, p = o->p;
  /* What OpenSSL's scrypt allocates, V and X (128 * r * (N + 2)) and B
   * (128 * r * p): at most KDF_MAX_MEM and a few KiB. */
  uint64_t maxmem = 128 * (uint64_t)r * (n + 2 + p);
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, (void *)password, len),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)o->salt, sizeof o->salt),
      OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n),
      OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r),
      OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &p),
      OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM, &maxmem),
      OSSL_PARAM_construct_end(),
  };
  int ok = c && EVP_KDF_derive(c, kek, 32, params) == 1;
  EVP_KDF_CTX_free(c);
  EVP_KDF_free(kdf);
  if (!ok) {
    set_error_code(ENOMEM, "scrypt key derivation failed (N=%llu, r=%u: out of memory?)",
                   (unsigned long long)n, r);
    return -1;
  }
  return 0;
}

/* The wrapped key's associated data: every other field of the key object
 * (docs/FORMAT.md), so that none can be changed, and the wrapped key cannot
 * be moved to another key object, without failing authentication. */
#define WRAP_AAD_LEN (24 + 8 + 4 + 4 + 32 + 8)
static size_t wrap_aad(const struct key_object *o, uint8_t out[WRAP_AAD_LEN])
{
  memcpy(out, "pilotlight key object v1", 24);
  put_u64(out + 24, o->n);
  put_u32(out + 32, o->r);
  put_u32(out + 36, o->p);
  memcpy(out + 40, o->salt, sizeof o->salt);
  put_u64(out + 40 + sizeof o->salt, (uint64_t)o->created);
  return WRAP_AAD_LEN;
}

int key_object_make(const struct repo_keys *k, const char *password, size_t len, uint64_t n,
                    int64_t created, struct key_object *o)
{
  uint8_t kek[32], aad[WRAP_AAD_LEN], master[64];
  struct repo_keys wrap;
  int ret = -1;
  memset(o, 0, sizeof *o);
  if (created < 0) {
    set_error_code(EINVAL, "key object's creation time is before 1970 (%lld): check the clock",
                   (long long)created);
    return -1;
  }
  o->n = n ? n : KDF_DEFAULT_N;
  o->r = KDF_DEFAULT_R;
  o->p = KDF_DEFAULT_P;
  o->created = created;
  if (RAND_bytes(o->salt, sizeof o->salt) != 1) {
    set_error_code(EIO, "no random bytes for a salt");
    return -1;
  }
  if (derive(o, password, len, kek) == -1)
    goto out;
  memcpy(wrap.enc, kek, 32);
  memcpy(master, k->enc, 32);
  memcpy(master + 32, k->mac, 32);
  ret = seal(&wrap, aad, wrap_aad(o, aad), master, sizeof master, o->wrapped);
out:
  explicit_bzero(kek, sizeof kek);
  explicit_bzero(master, sizeof master);
  repo_keys_wipe(&wrap);
  return ret;
}

int key_object_open(const struct key_object *o, const char *password, size_t len,
                    struct repo_keys *k)
{
  uint8_t kek[32], aad[WRAP_AAD_LEN], master[64];
  struct repo_keys wrap;
  int ret = -1;
  if (derive(o, password, len, kek) == -1)
    goto out;
  memcpy(wrap.enc, kek, 32);
  if (unseal(&wrap, aad, wrap_aad(o, aad), o->wrapped, sizeof o->wrapped, master) == -1) {
    set_error_code(EACCES, "wrong password");
    goto out;
  }
  memcpy(k->enc, master, 32);
  memcpy(k->mac, master + 32, 32);
  ret = 0;
out:
  explicit_bzero(kek, sizeof kek);
  explicit_bzero(master, sizeof master);
  repo_keys_wipe(&wrap);
  return ret;
}
