/* AWS Signature Version 4 (HMAC-SHA256 via OpenSSL): builds the canonical
 * request and string to sign, derives the signing key and signs. Pure: no
 * clock, no network. See docs/S3.md for the steps. */
#define _GNU_SOURCE
#include "sigv4.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "../util/error.h"
#include "../util/hash.h"
#include "../util/strbuf.h"

/* The longest text signing builds (a canonical request with its headers and
 * query); the requests pilotlight sends are a few KiB. */
#define SIGV4_MAX_TEXT (1u << 20)

void sigv4_sha256_hex(const void *buf, size_t len, char out[65])
{
  uint8_t md[HASH_LEN];
  sha256(buf, len, md);
  hex_encode(md, HASH_LEN, out);
}

void sigv4_amz_date(time_t t, char out[17])
{
  struct tm tm;
  gmtime_r(&t, &tm);
  strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

static int is_unreserved(unsigned char c)
{
  return isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

char *sigv4_uri_encode(const char *s, size_t len, int keep_slash)
{
  char *out = malloc(3 * len + 1);
  if (!out) {
    set_error(errno, "malloc");
    return NULL;
  }
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)s[i];
    if (is_unreserved(c) || (keep_slash && c == '/')) {
      out[o++] = (char)c;
    } else {
      out[o++] = '%';
      out[o++] = "0123456789ABCDEF"[c >> 4];
      out[o++] = "0123456789ABCDEF"[c & 15];
    }
  }
  out[o] = 0;
  return out;
}

/* Decode %XX in s[0..len) and re-encode canonically. Malformed escapes are
 * taken literally. */
static char *reencode(const char *s, size_t len)
{
  char *dec = malloc(len + 1);
  if (!dec) {
    set_error(errno, "malloc");
    return NULL;
  }
  size_t o = 0;
  for (size_t i = 0; i < len; i++) {
    uint8_t byte;
    if (s[i] == '%' && i + 2 < len && hex_decode(s + i + 1, &byte, 1) == 0) {
      dec[o++] = (char)byte;
      i += 2;
    } else {
      dec[o++] = s[i];
    }
  }
  char *enc = sigv4_uri_encode(dec, o, 0);
  free(dec);
  return enc;
}

struct qparam {
  char *name;
  char *value;
};

static int qparam_cmp(const void *a, const void *b)
{
  const struct qparam *x = a, *y = b;
  int c = strcmp(x->name, y->name);
  return c ? c : strcmp(x->value, y->value);
}

/* Canonical query string: parameters decoded, re-encoded, sorted by name
 * then value, value-less ones written "name=". */
static char *canonical_query(const char *q)
{
  struct qparam *params = NULL;
  size_t n = 0, cap = 0;
  char *out = NULL;
  struct strbuf sb = STRBUF_INIT(SIGV4_MAX_TEXT, "the canonical query string");
  const char *p = q ? q : "";
  while (*p) {
    const char *end = strchr(p, '&');
    size_t plen = end ? (size_t)(end - p) : strlen(p);
    if (plen > 0) {
      const char *eq = memchr(p, '=', plen);
      size_t nlen = eq ? (size_t)(eq - p) : plen;
      if (n == cap) {
        size_t ncap = cap ? 2 * cap : 8;
        struct qparam *np = realloc(params, ncap * sizeof *np);
        if (!np) {
          set_error(errno, "realloc");
          goto out;
        }
        params = np;
        cap = ncap;
      }
      params[n].name = reencode(p, nlen);
      params[n].value = eq ? reencode(eq + 1, plen - nlen - 1) : strdup("");
      n++;
      if (!params[n - 1].name || !params[n - 1].value) {
        set_error(ENOMEM, "query string");
        goto out;
      }
    }
    p += plen;
    if (*p == '&')
      p++;
  }
  if (n > 1)
    qsort(params, n, sizeof *params, qparam_cmp);
  for (size_t i = 0; i < n; i++)
    strbuf_appendf(&sb, "%s%s=%s", i ? "&" : "", params[i].name, params[i].value);
  out = strbuf_take(&sb, NULL);
out:
  for (size_t i = 0; i < n; i++) {
    free(params[i].name);
    free(params[i].value);
  }
  free(params);
  return out;
}

struct cheader {
  char *name;   /* lower case */
  char *value;  /* trimmed, spaces collapsed */
  size_t order; /* keeps repeated names in the given order */
};

static int cheader_cmp(const void *a, const void *b)
{
  const struct cheader *x = a, *y = b;
  int c = strcmp(x->name, y->name);
  if (c)
    return c;
  return x->order < y->order ? -1 : x->order > y->order;
}

static char *trim_collapse(const char *v)
{
  char *out = malloc(strlen(v) + 1);
  if (!out)
    return NULL;
  size_t o = 0;
  int space = 0;
  while (*v == ' ' || *v == '\t')
    v++;
  for (; *v; v++) {
    if (*v == ' ' || *v == '\t') {
      space = 1;
      continue;
    }
    if (space && o > 0)
      out[o++] = ' ';
    space = 0;
    out[o++] = *v;
  }
  out[o] = 0;
  return out;
}

static void hmac(const void *key, size_t keylen, const char *msg, unsigned char out[HASH_LEN])
{
  unsigned int len = 32;
  HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg, strlen(msg), out, &len);
}

void sigv4_signature_free(struct sigv4_signature *sig)
{
  if (!sig)
    return;
  free(sig->canonical_request);
  free(sig->string_to_sign);
  free(sig->signed_headers);
  if (sig->authorization) {
    explicit_bzero(sig->authorization, strlen(sig->authorization));
    free(sig->authorization);
  }
  explicit_bzero(sig, sizeof *sig);
}

static void free_cheaders(struct cheader *hs, size_t n)
{
  if (!hs)
    return;
  for (size_t i = 0; i < n; i++) {
    free(hs[i].name);
    free(hs[i].value);
  }
  free(hs);
}

/* The request's headers with lower-case names and trimmed values, sorted by
 * name (stable). Caller frees with free_cheaders. */
static struct cheader *canonical_headers(const struct sigv4_request *req)
{
  struct cheader *hs = calloc(req->nheaders ? req->nheaders : 1, sizeof *hs);
  if (!hs) {
    set_error(ENOMEM, "sigv4");
    return NULL;
  }
  for (size_t i = 0; i < req->nheaders; i++) {
    hs[i].name = strdup(req->headers[i].name);
    hs[i].value = trim_collapse(req->headers[i].value);
    hs[i].order = i;
    if (!hs[i].name || !hs[i].value) {
      set_error(ENOMEM, "sigv4");
      free_cheaders(hs, req->nheaders);
      return NULL;
    }
    for (char *c = hs[i].name; *c; c++)
      *c = (char)tolower((unsigned char)*c);
  }
  if (req->nheaders > 1)
    qsort(hs, req->nheaders, sizeof *hs, cheader_cmp);
  return hs;
}

/* out->signed_headers and out->canonical_request from the sorted headers. */
static int canonical_request(const struct sigv4_request *req, const char *path, const char *query,
                             const struct cheader *hs, struct sigv4_signature *out)
{
  struct strbuf sb = STRBUF_INIT(SIGV4_MAX_TEXT, "the signed headers");
  for (size_t i = 0; i < req->nheaders; i++) {
    if (i > 0 && strcmp(hs[i].name, hs[i - 1].name) == 0)
      continue;
    strbuf_appendf(&sb, "%s%s", i ? ";" : "", hs[i].name);
  }
  out->signed_headers = strbuf_take(&sb, NULL);
  if (!out->signed_headers)
    return -1;

  struct strbuf cr = STRBUF_INIT(SIGV4_MAX_TEXT, "the canonical request");
  strbuf_appendf(&cr, "%s\n%s\n%s\n", req->method, path, query);
  for (size_t i = 0; i < req->nheaders; i++) {
    int same_as_prev = i > 0 && strcmp(hs[i].name, hs[i - 1].name) == 0;
    if (same_as_prev)
      strbuf_appendf(&cr, ",%s", hs[i].value);
    else
      strbuf_appendf(&cr, "%s%s:%s", i ? "\n" : "", hs[i].name, hs[i].value);
  }
  strbuf_appendf(&cr, "\n\n%s\n%s", out->signed_headers, req->payload_hash);
  out->canonical_request = strbuf_take(&cr, NULL);
  return out->canonical_request ? 0 : -1;
}

/* out->signature and out->authorization: the string to sign signed with the
 * key derived from the secret (an HMAC chain over date, region, service and
 * "aws4_request"). The key material is wiped. */
static int sign_string(const struct sigv4_request *req, const char *date, const char *scope,
                       struct sigv4_signature *out)
{
  unsigned char k1[HASH_LEN], k2[HASH_LEN], k3[HASH_LEN], k4[HASH_LEN], sig[HASH_LEN];
  char keybuf[256];
  int ret = -1;
  size_t slen = strlen(req->secret_key);
  if (slen + 5 > sizeof keybuf) {
    set_error(EINVAL, "sigv4: secret key too long");
    return -1;
  }
  memcpy(keybuf, "AWS4", 4);
  memcpy(keybuf + 4, req->secret_key, slen);
  hmac(keybuf, slen + 4, date, k1);
  hmac(k1, HASH_LEN, req->region, k2);
  hmac(k2, HASH_LEN, req->service, k3);
  hmac(k3, HASH_LEN, "aws4_request", k4);
  hmac(k4, HASH_LEN, out->string_to_sign, sig);
  hex_encode(sig, HASH_LEN, out->signature);
  struct strbuf sb = STRBUF_INIT(SIGV4_MAX_TEXT, "the Authorization header");
  strbuf_appendf(&sb, "AWS4-HMAC-SHA256 Credential=%s/%s, SignedHeaders=%s, Signature=%s",
                 req->access_key, scope, out->signed_headers, out->signature);
  out->authorization = strbuf_take(&sb, NULL);
  ret = out->authorization ? 0 : -1;
  explicit_bzero(keybuf, sizeof keybuf);
  explicit_bzero(k1, sizeof k1);
  explicit_bzero(k2, sizeof k2);
  explicit_bzero(k3, sizeof k3);
  explicit_bzero(k4, sizeof k4);
  return ret;
}

int sigv4_sign(const struct sigv4_request *req, struct sigv4_signature *out)
{
  struct cheader *hs = NULL;
  char *path = NULL, *query = NULL;
  char date[9];
  char scope[256];
  char creq_hash[65];
  int ret = -1;

  memset(out, 0, sizeof *out);
  if (strlen(req->amz_date) != 16) {
    set_error(EINVAL, "sigv4: bad x-amz-date '%s'", req->amz_date);
    return -1;
  }
  memcpy(date, req->amz_date, 8);
  date[8] = 0;
  if (snprintf(scope, sizeof scope, "%s/%s/%s/aws4_request", date, req->region, req->service) >=
      (int)sizeof scope) {
    set_error(EINVAL, "sigv4: region or service name too long");
    return -1;
  }

  path = sigv4_uri_encode(req->path, strlen(req->path), 1);
  query = canonical_query(req->query);
  if (!path || !query) {
    set_error(ENOMEM, "sigv4");
    goto out;
  }
  hs = canonical_headers(req);
  if (!hs || canonical_request(req, path, query, hs, out) == -1)
    goto out;
  sigv4_sha256_hex(out->canonical_request, strlen(out->canonical_request), creq_hash);
  struct strbuf sb = STRBUF_INIT(SIGV4_MAX_TEXT, "the string to sign");
  strbuf_appendf(&sb, "AWS4-HMAC-SHA256\n%s\n%s\n%s", req->amz_date, scope, creq_hash);
  out->string_to_sign = strbuf_take(&sb, NULL);
  if (!out->string_to_sign || sign_string(req, date, scope, out) == -1)
    goto out;
  ret = 0;
out:
  if (hs)
    free_cheaders(hs, req->nheaders);
  free(path);
  free(query);
  if (ret == -1)
    sigv4_signature_free(out);
  return ret;
}
