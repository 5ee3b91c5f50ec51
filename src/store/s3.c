/* S3 store: objects in a bucket under a prefix. This file holds the store
 * operations and opening a store; the signed HTTP exchange with retries is in
 * s3-http.c, large uploads in s3-multipart.c. Settings: docs/S3.md. */
#define _GNU_SOURCE
#include "store.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "../util/error.h"
#include "s3-internal.h"
#include "sigv4.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static void curl_init(void)
{
  curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* The full key of an object: prefix + key. Caller frees. */
char *s3_full_key(const struct s3_store *s, const char *key)
{
  char *k = NULL;
  if (asprintf(&k, "%s%s", s->prefix, key) == -1) {
    set_error(ENOMEM, "asprintf");
    return NULL;
  }
  return k;
}

int s3_head_key(struct s3_store *s, const char *fkey, uint64_t *size)
{
  struct s3_request req = {.method = "HEAD", .key = fkey};
  struct s3_response resp;
  int ret = -1;
  if (s3_perform(s, &req, &resp) == -1)
    return -1;
  if (resp.status == 200 && resp.have_content_length) {
    *size = resp.content_length;
    ret = 0;
  } else if (resp.status == 404) {
    char w[512];
    set_error(ENOENT, "HEAD %s: not found", s3_where(s, fkey, w, sizeof w));
  } else {
    s3_fail(s, "HEAD", fkey, &resp);
  }
  s3_response_reset(&resp);
  return ret;
}

/* After a retried conditional PUT got 412: is the object there ours? Our
 * first attempt may have landed before its answer was lost. */
static int is_our_object(struct s3_store *s, const char *fkey, const void *buf, size_t len)
{
  struct s3_request req = {.method = "HEAD", .key = fkey};
  struct s3_response resp;
  char hex[33], quoted[40];
  if (s3_perform(s, &req, &resp) == -1)
    return 0;
  s3_md5_hex(buf, len, hex);
  snprintf(quoted, sizeof quoted, "\"%s\"", hex);
  int same_size = resp.status == 200 && resp.have_content_length && resp.content_length == len;
  int ours = same_size && (strcmp(resp.etag, quoted) == 0 || strcmp(resp.etag, hex) == 0);
  s3_response_reset(&resp);
  if (same_size && !ours) {
    /* The ETag is not always the MD5 (server-side encryption): compare bytes. */
    struct s3_request get = {.method = "GET", .key = fkey, .max = len};
    if (s3_perform(s, &get, &resp) == -1)
      return 0;
    ours = resp.status == 200 && !resp.too_big && resp.len == len &&
           (len == 0 || memcmp(resp.body, buf, len) == 0);
    s3_response_reset(&resp);
  }
  return ours;
}

static int put_single(struct s3_store *s, const char *fkey, const void *buf, size_t len,
                      unsigned flags)
{
  struct s3_response resp;
  int ret = -1;
  char until[32];
  /* The SHA-256 is computed anyway for the signature; sending it as the
   * checksum costs nothing, where Content-MD5 would cost a second pass (and
   * it is the integrity check S3 requires of a put with a retention). */
  struct s3_request req = {
      .method = "PUT",
      .key = fkey,
      .body = buf,
      .body_len = len,
      .checksum_sha256 = 1,
      .if_none_match = (flags & STORE_PUT_EXCL) != 0,
      .fresh_connect = (flags & STORE_PUT_EXCL) != 0,
      .lock_mode = s3_retention_for(s, fkey, until),
      .lock_until = until,
      .max = ERROR_BODY_MAX,
  };
  if (s3_perform(s, &req, &resp) == -1)
    return -1;
  if (resp.status == 200) {
    ret = 0;
  } else if (resp.status == 412 && (flags & STORE_PUT_EXCL)) {
    if (resp.attempts > 1 && is_our_object(s, fkey, buf, len)) {
      ret = 0;
    } else {
      char w[512];
      set_error(EEXIST, "PUT %s: already exists", s3_where(s, fkey, w, sizeof w));
    }
  } else {
    s3_fail(s, "PUT", fkey, &resp);
  }
  s3_response_reset(&resp);
  return ret;
}

static int s3_put(struct store *st, const char *key, const void *buf, size_t len, unsigned flags)
{
  struct s3_store *s = (struct s3_store *)st;
  char *fkey = s3_full_key(s, key);
  if (!fkey)
    return -1;
  /* A conditional create stays one PUT up to S3's 5 GiB limit: not every
   * server honours If-None-Match on CompleteMultipartUpload (Ceph 16 does
   * not), and one PUT is atomic everywhere. */
  int multipart = (uint64_t)len > s->multipart_threshold &&
                  (!(flags & STORE_PUT_EXCL) || (uint64_t)len > MAX_SINGLE_PUT);
  int r =
      multipart ? s3_put_multipart(s, fkey, buf, len, flags) : put_single(s, fkey, buf, len, flags);
  free(fkey);
  return r;
}

int s3_get_key(struct s3_store *s, const char *fkey, const char *query, size_t max, void **bufp,
               size_t *lenp)
{
  struct s3_response resp;
  char w[512];
  int ret = -1;
  struct s3_request req = {.method = "GET", .key = fkey, .query = query, .max = max};
  if (s3_perform(s, &req, &resp) == -1)
    return -1;
  if (resp.too_big) {
    set_error(EFBIG, "GET %s: object is larger than the %zu bytes allowed",
              s3_where(s, fkey, w, sizeof w), max);
  } else if (resp.status == 200) {
    if (!resp.body) {
      resp.body = malloc(1);
      if (!resp.body) {
        set_error(errno, "malloc");
        s3_response_reset(&resp);
        return -1;
      }
      resp.body[0] = 0;
    }
    *bufp = resp.body;
    *lenp = resp.len;
    resp.body = NULL;
    ret = 0;
  } else if (resp.status == 404) {
    struct s3_error_info e;
    if (s3_error_parse(resp.body, resp.len, &e) && strcmp(e.code, "NoSuchBucket") == 0)
      s3_fail(s, "GET", fkey, &resp);
    else
      set_error(ENOENT, "GET %s: not found", s3_where(s, fkey, w, sizeof w));
  } else {
    s3_fail(s, "GET", fkey, &resp);
  }
  s3_response_reset(&resp);
  return ret;
}

static int s3_get(struct store *st, const char *key, size_t max, void **bufp, size_t *lenp)
{
  struct s3_store *s = (struct s3_store *)st;
  char *fkey = s3_full_key(s, key);
  if (!fkey)
    return -1;
  int r = s3_get_key(s, fkey, NULL, max, bufp, lenp);
  free(fkey);
  return r;
}

static int s3_get_range(struct store *st, const char *key, uint64_t off, size_t len, void *buf)
{
  struct s3_store *s = (struct s3_store *)st;
  struct s3_response resp;
  char w[512], range[64];
  int ret = -1;
  if (len == 0)
    return 0;
  char *fkey = s3_full_key(s, key);
  if (!fkey)
    return -1;
  snprintf(range, sizeof range, "bytes=%" PRIu64 "-%" PRIu64, off, off + len - 1);
  struct s3_request req = {
      .method = "GET", .key = fkey, .range = range, .dst = buf, .dst_cap = len, .max = len};
  /* A server that ignores Range sends the whole object from offset 0. */
  req.skip = 0;
  if (s3_perform(s, &req, &resp) == -1)
    goto out;
  if (resp.status == 200 && off > 0) {
    /* Range ignored: ask again, dropping the first off bytes this time. */
    s3_response_reset(&resp);
    req.skip = off;
    if (s3_perform(s, &req, &resp) == -1)
      goto out;
  }
  s3_where(s, fkey, w, sizeof w);
  if (resp.status == 206 || resp.status == 200) {
    uint64_t start = off;
    if (resp.status == 206 && resp.content_range[0]) {
      char *end;
      const char *cr = resp.content_range;
      if (strncmp(cr, "bytes ", 6) == 0)
        start = strtoull(cr + 6, &end, 10);
    }
    if (start != off) {
      set_error(EIO, "GET %s: asked for bytes from %" PRIu64 ", got %s", w, off,
                resp.content_range);
    } else if (resp.too_big && !(resp.status == 200 && resp.dst_len == len)) {
      /* (A 200 is a whole object from a server that ignored Range: its
       * bytes past ours were cut off on purpose.) */
      set_error(EIO, "GET %s: more bytes than the %zu asked for", w, len);
    } else if (resp.dst_len < len) {
      set_error(EIO, "GET %s: truncated: wanted %zu bytes at offset %" PRIu64 ", got %zu", w, len,
                off, resp.dst_len);
    } else {
      ret = 0;
    }
  } else if (resp.status == 416) {
    set_error(EIO, "GET %s: truncated: object ends before offset %" PRIu64, w, off);
  } else if (resp.status == 404) {
    set_error(ENOENT, "GET %s: not found", w);
  } else {
    s3_fail(s, "GET", fkey, &resp);
  }
  s3_response_reset(&resp);
out:
  free(fkey);
  return ret;
}

static int s3_head(struct store *st, const char *key, uint64_t *size)
{
  struct s3_store *s = (struct s3_store *)st;
  char *fkey = s3_full_key(s, key);
  if (!fkey)
    return -1;
  int r = s3_head_key(s, fkey, size);
  free(fkey);
  return r;
}

static int s3_del(struct store *st, const char *key)
{
  struct s3_store *s = (struct s3_store *)st;
  struct s3_response resp;
  int ret = -1;
  char *fkey = s3_full_key(s, key);
  if (!fkey)
    return -1;
  struct s3_request req = {.method = "DELETE", .key = fkey, .max = ERROR_BODY_MAX};
  if (s3_perform(s, &req, &resp) == -1)
    goto out;
  if (resp.status == 204 || resp.status == 200 || resp.status == 404)
    ret = 0;
  else
    s3_fail(s, "DELETE", fkey, &resp);
  s3_response_reset(&resp);
out:
  free(fkey);
  return ret;
}

static int s3_list(struct store *st, const char *prefix, store_list_cb cb, void *opaque)
{
  struct s3_store *s = (struct s3_store *)st;
  struct s3_response resp = {0};
  struct s3_list_page page = {0};
  char *fprefix = NULL, *enc_prefix = NULL, *enc_token = NULL, *query = NULL;
  size_t plen = strlen(s->prefix);
  int ret = -1;
  char w[512];

  fprefix = s3_full_key(s, prefix);
  if (!fprefix)
    goto out;
  enc_prefix = sigv4_uri_encode(fprefix, strlen(fprefix), 0);
  if (!enc_prefix)
    goto out;
  for (;;) {
    free(query);
    query = NULL;
    /* Parameters in canonical order: continuation-token < list-type <
     * max-keys < prefix. */
    char maxkeys[32] = "";
    if (s->list_max_keys)
      snprintf(maxkeys, sizeof maxkeys, "max-keys=%u&", s->list_max_keys);
    int r =
        asprintf(&query, "%s%s%slist-type=2&%sprefix=%s", enc_token ? "continuation-token=" : "",
                 enc_token ? enc_token : "", enc_token ? "&" : "", maxkeys, enc_prefix);
    if (r == -1) {
      query = NULL;
      set_error(ENOMEM, "asprintf");
      goto out;
    }
    struct s3_request req = {.method = "GET", .key = NULL, .query = query, .max = S3_XML_MAX_BODY};
    if (s3_perform(s, &req, &resp) == -1)
      goto out;
    if (resp.too_big) {
      set_error(EFBIG, "LIST %s: reply larger than %u bytes", s3_where(s, fprefix, w, sizeof w),
                S3_XML_MAX_BODY);
      goto out;
    }
    if (resp.status != 200) {
      s3_fail(s, "LIST", fprefix, &resp);
      goto out;
    }
    if (s3_list_page_parse(resp.body, resp.len, &page) == -1) {
      prefix_error("LIST %s", s3_where(s, fprefix, w, sizeof w));
      goto out;
    }
    s3_response_reset(&resp);
    for (size_t i = 0; i < page.nentries; i++) {
      const char *k = page.entries[i].key;
      if (strncmp(k, fprefix, strlen(fprefix)) != 0)
        continue; /* not ours: a server that ignored the prefix */
      if (cb(opaque, k + plen, page.entries[i].size, page.entries[i].mtime) == -1)
        goto out;
    }
    if (!page.is_truncated)
      break;
    char *next = sigv4_uri_encode(page.next_token, strlen(page.next_token), 0);
    if (!next)
      goto out;
    if (enc_token && strcmp(next, enc_token) == 0) {
      /* A server handing back the same token would have us loop forever. */
      free(next);
      set_error(EBADMSG, "LIST %s: the server repeated its continuation token",
                s3_where(s, fprefix, w, sizeof w));
      goto out;
    }
    free(enc_token);
    enc_token = next;
    s3_list_page_free(&page);
  }
  ret = 0;
out:
  s3_list_page_free(&page);
  s3_response_reset(&resp);
  free(fprefix);
  free(enc_prefix);
  free(enc_token);
  free(query);
  return ret;
}

int s3_next_markers(const struct s3_store *s, const char *what, const char *where,
                    const char *next_key, const char *next_id, char **enc_key, char **enc_id)
{
  char w[512];
  char *nk = sigv4_uri_encode(next_key, strlen(next_key), 0);
  char *ni = next_id ? sigv4_uri_encode(next_id, strlen(next_id), 0) : NULL;
  if (!nk || (next_id && !ni)) {
    free(nk);
    free(ni);
    return -1;
  }
  if (*enc_key && strcmp(nk, *enc_key) == 0 &&
      (ni ? *enc_id && strcmp(ni, *enc_id) == 0 : !*enc_id)) {
    free(nk);
    free(ni);
    set_error(EBADMSG, "%s %s: the server repeated its markers", what,
              s3_where(s, where, w, sizeof w));
    return -1;
  }
  free(*enc_key);
  free(*enc_id);
  *enc_key = nk;
  *enc_id = ni;
  return 0;
}

/* Incomplete multipart uploads under the prefix (ListMultipartUploads),
 * each named "KEY?uploadId=ID" for s3_remove_temp. */
static int s3_list_temp(struct store *st, store_list_cb cb, void *opaque)
{
  struct s3_store *s = (struct s3_store *)st;
  struct s3_response resp = {0};
  struct s3_uploads_page page = {0};
  char *enc_prefix = NULL, *enc_key = NULL, *enc_id = NULL, *query = NULL, *name = NULL;
  size_t plen = strlen(s->prefix);
  int ret = -1;
  char w[512];

  enc_prefix = sigv4_uri_encode(s->prefix, plen, 0);
  if (!enc_prefix)
    goto out;
  for (;;) {
    free(query);
    query = NULL;
    /* Canonical order: key-marker < prefix < upload-id-marker < uploads. */
    if (asprintf(&query, "%s%s%sprefix=%s&%s%s%suploads=", enc_key ? "key-marker=" : "",
                 enc_key ? enc_key : "", enc_key ? "&" : "", enc_prefix,
                 enc_id ? "upload-id-marker=" : "", enc_id ? enc_id : "",
                 enc_id ? "&" : "") == -1) {
      query = NULL;
      set_error(ENOMEM, "asprintf");
      goto out;
    }
    struct s3_request req = {.method = "GET", .key = NULL, .query = query, .max = S3_XML_MAX_BODY};
    if (s3_perform(s, &req, &resp) == -1)
      goto out;
    if (resp.too_big) {
      set_error(EFBIG, "LIST uploads %s: reply larger than %u bytes",
                s3_where(s, s->prefix, w, sizeof w), S3_XML_MAX_BODY);
      goto out;
    }
    if (resp.status != 200) {
      s3_fail(s, "LIST uploads", s->prefix, &resp);
      goto out;
    }
    if (s3_uploads_page_parse(resp.body, resp.len, &page) == -1) {
      prefix_error("LIST uploads %s", s3_where(s, s->prefix, w, sizeof w));
      goto out;
    }
    s3_response_reset(&resp);
    for (size_t i = 0; i < page.nentries; i++) {
      const char *k = page.entries[i].key;
      if (strncmp(k, s->prefix, plen) != 0)
        continue; /* not ours: a server that ignored the prefix */
      free(name);
      if (asprintf(&name, "%s?uploadId=%s", k + plen, page.entries[i].upload_id) == -1) {
        name = NULL;
        set_error(ENOMEM, "asprintf");
        goto out;
      }
      if (cb(opaque, name, 0, page.entries[i].initiated) == -1)
        goto out;
    }
    if (!page.is_truncated)
      break;
    if (s3_next_markers(s, "LIST uploads", s->prefix, page.next_key, page.next_upload, &enc_key,
                        &enc_id) == -1)
      goto out;
    s3_uploads_page_free(&page);
  }
  ret = 0;
out:
  s3_uploads_page_free(&page);
  s3_response_reset(&resp);
  free(enc_prefix);
  free(enc_key);
  free(enc_id);
  free(query);
  free(name);
  return ret;
}

/* Abort the multipart upload named "KEY?uploadId=ID" by s3_list_temp. */
static int s3_remove_temp(struct store *st, const char *name)
{
  struct s3_store *s = (struct s3_store *)st;
  struct s3_response resp;
  char *key = NULL, *fkey = NULL, *enc_id = NULL, *query = NULL;
  int ret = -1;
  const char *q = strstr(name, "?uploadId=");
  if (!q || q == name || !q[10]) {
    set_error_code(EINVAL, "%s: not an incomplete upload's name", name);
    return -1;
  }
  key = strndup(name, (size_t)(q - name));
  if (!key) {
    set_error(errno, "strndup");
    goto out;
  }
  fkey = s3_full_key(s, key);
  enc_id = sigv4_uri_encode(q + 10, strlen(q + 10), 0);
  if (!fkey || !enc_id)
    goto out;
  if (asprintf(&query, "uploadId=%s", enc_id) == -1) {
    query = NULL;
    set_error(ENOMEM, "asprintf");
    goto out;
  }
  struct s3_request req = {.method = "DELETE", .key = fkey, .query = query, .max = ERROR_BODY_MAX};
  if (s3_perform(s, &req, &resp) == -1)
    goto out;
  if (resp.status == 204 || resp.status == 200 || resp.status == 404)
    ret = 0;
  else
    s3_fail(s, "DELETE upload", fkey, &resp);
  s3_response_reset(&resp);
out:
  free(key);
  free(fkey);
  free(enc_id);
  free(query);
  return ret;
}

static void s3_free(struct store *st)
{
  struct s3_store *s = (struct s3_store *)st;
  if (!s)
    return;
  for (size_t i = 0; i < s->nidle; i++)
    s3_conn_free(s->idle[i]);
  pthread_mutex_destroy(&s->lock);
  s3_settings_free(&s->cfg);
  free(s->endpoint);
  free(s->host);
  free(s->bucket);
  free(s->prefix);
  free(s->base.location);
  free(s);
}

static const struct store_ops s3_ops = {
    .name = "s3",
    .put = s3_put,
    .get = s3_get,
    .get_range = s3_get_range,
    .head = s3_head,
    .del = s3_del,
    .list = s3_list,
    .list_temp = s3_list_temp,
    .remove_temp = s3_remove_temp,
    .lock_enabled = s3_lock_enabled,
    .get_retention = s3_get_retention,
    .set_retention = s3_set_retention,
    .list_versions = s3_list_versions,
    .get_version = s3_get_version,
    .del_version = s3_del_version,
    .free = s3_free,
};

static int valid_bucket(const char *b)
{
  size_t n = strlen(b);
  if (n == 0 || n > 255)
    return 0;
  for (; *b; b++)
    if (!isalnum((unsigned char)*b) && *b != '.' && *b != '-' && *b != '_')
      return 0;
  return 1;
}

/* Split "BUCKET/PREFIX..." into bucket and a normalised prefix ("" or "p/"). */
static int split_bucket(struct s3_store *s, const char *rest, const char *location)
{
  const char *slash = strchr(rest, '/');
  size_t blen = slash ? (size_t)(slash - rest) : strlen(rest);
  s->bucket = strndup(rest, blen);
  if (!s->bucket) {
    set_error(errno, "strndup");
    return -1;
  }
  if (!valid_bucket(s->bucket)) {
    set_error(EINVAL, "%s: bad bucket name '%s' (expected s3://BUCKET/PREFIX)", location,
              s->bucket);
    return -1;
  }
  const char *p = slash ? slash + 1 : "";
  while (*p == '/')
    p++;
  size_t plen = strlen(p);
  while (plen > 0 && p[plen - 1] == '/')
    plen--;
  if (asprintf(&s->prefix, "%.*s%s", (int)plen, p, plen ? "/" : "") == -1) {
    s->prefix = NULL;
    set_error(ENOMEM, "asprintf");
    return -1;
  }
  return 0;
}

/* Check that the bucket answers: used when creating a repository. A list of
 * at most one key under the prefix, rather than HEAD /BUCKET, so that a
 * policy that allows s3:ListBucket only under the prefix is enough. */
static int check_bucket(struct s3_store *s)
{
  struct s3_response resp;
  char *enc = NULL, *query = NULL;
  int ret = -1;
  enc = sigv4_uri_encode(s->prefix, strlen(s->prefix), 0);
  if (!enc)
    return -1;
  if (asprintf(&query, "list-type=2&max-keys=1&prefix=%s", enc) == -1) {
    query = NULL;
    set_error(ENOMEM, "asprintf");
    goto out;
  }
  struct s3_request req = {.method = "GET", .key = NULL, .query = query, .max = S3_XML_MAX_BODY};
  if (s3_perform(s, &req, &resp) == -1)
    goto out;
  if (resp.status == 200 && !resp.too_big) {
    ret = 0;
  } else if (resp.status == 404) {
    struct s3_error_info e;
    if (s3_error_parse(resp.body, resp.len, &e) && strcmp(e.code, "NoSuchBucket") != 0)
      s3_fail(s, "LIST", NULL, &resp);
    else
      set_error(ENXIO, "bucket %s does not exist: create it first (LIST at %s: HTTP 404)",
                s->bucket, s->endpoint);
  } else {
    if (resp.status == 400 && resp.bucket_region[0])
      resp.status = 301;
    s3_fail(s, "LIST", NULL, &resp);
  }
  s3_response_reset(&resp);
out:
  free(enc);
  free(query);
  return ret;
}

/* Location: s3://BUCKET/PREFIX or s3:http(s)://HOST[:PORT]/BUCKET/PREFIX.
 * *endpoint receives the HOST part of the second form (caller frees). */
static int parse_location(struct s3_store *s, const char *location, char **endpoint)
{
  if (strncmp(location, "s3://", 5) == 0)
    return split_bucket(s, location + 5, location);
  if (strncmp(location, "s3:http://", 10) == 0 || strncmp(location, "s3:https://", 11) == 0) {
    const char *url = location + 3;
    const char *hoststart = strstr(url, "://") + 3;
    const char *slash = strchr(hoststart, '/');
    if (!slash || slash == hoststart) {
      set_error(EINVAL, "%s: expected s3:http(s)://HOST[:PORT]/BUCKET/PREFIX", location);
      return -1;
    }
    *endpoint = strndup(url, (size_t)(slash - url));
    if (!*endpoint) {
      set_error(errno, "strndup");
      return -1;
    }
    return split_bucket(s, slash + 1, location);
  }
  set_error(EINVAL, "%s: expected s3://BUCKET/PREFIX or s3:http(s)://HOST[:PORT]/BUCKET/PREFIX",
            location);
  return -1;
}

/* Set s->path_style, s->host and s->endpoint from endpoint (NULL for AWS;
 * trailing slashes are trimmed in place) and the addressing setting. */
static int set_endpoint(struct s3_store *s, char *endpoint)
{
  /* Addressing: path style for custom endpoints, virtual-hosted for AWS
   * (except bucket names with dots, which break TLS name checks). */
  int aws = endpoint == NULL;
  if (s->cfg.addressing == S3_ADDRESSING_PATH)
    s->path_style = 1;
  else if (s->cfg.addressing == S3_ADDRESSING_VIRTUAL)
    s->path_style = 0;
  else
    s->path_style = !aws || strchr(s->bucket, '.') != NULL;
  const char *scheme = "https://", *hostport;
  char awshost[128];
  if (aws) {
    snprintf(awshost, sizeof awshost, "s3.%s.amazonaws.com", s->cfg.region);
    hostport = awshost;
  } else {
    size_t n = strlen(endpoint);
    while (n > 0 && endpoint[n - 1] == '/')
      endpoint[--n] = 0;
    if (strncmp(endpoint, "http://", 7) == 0) {
      scheme = "http://";
    } else if (strncmp(endpoint, "https://", 8) != 0) {
      set_error(EINVAL, "S3 endpoint %s: expected http://HOST[:PORT] or https://HOST[:PORT]",
                endpoint);
      return -1;
    }
    hostport = endpoint + strlen(scheme);
    if (!hostport[0] || strchr(hostport, '/')) {
      set_error(EINVAL, "S3 endpoint %s: expected http(s)://HOST[:PORT] without a path", endpoint);
      return -1;
    }
  }
  if (asprintf(&s->host, "%s%s%s", s->path_style ? "" : s->bucket, s->path_style ? "" : ".",
               hostport) == -1 ||
      asprintf(&s->endpoint, "%s%s", scheme, s->host) == -1) {
    set_error(ENOMEM, "asprintf");
    return -1;
  }
  return 0;
}

struct store *s3_store_open(const char *location, int create, const struct s3_settings *settings)
{
  struct s3_store *s = calloc(1, sizeof *s);
  struct s3_settings defaults;
  char *endpoint = NULL;
  if (!s) {
    set_error(errno, "calloc");
    return NULL;
  }
  if (!settings) {
    s3_settings_default(&defaults);
    settings = &defaults;
  }
  pthread_mutex_init(&s->lock, NULL);
  s->base.ops = &s3_ops;
  s->base.is_remote = 1;
  s->base.location = strdup(location);
  if (!s->base.location) {
    set_error(errno, "strdup");
    goto fail;
  }
  pthread_once(&curl_once, curl_init);
  if (curl_init_result != CURLE_OK) {
    set_error(EIO, "curl_global_init: %s", curl_easy_strerror(curl_init_result));
    goto fail;
  }
  if (parse_location(s, location, &endpoint) == -1)
    goto fail;
  if (s3_settings_check_credentials(settings) == -1 || s3_settings_copy(&s->cfg, settings) == -1)
    goto fail;
  if (!endpoint && s->cfg.endpoint) {
    endpoint = strdup(s->cfg.endpoint);
    if (!endpoint) {
      set_error(errno, "strdup");
      goto fail;
    }
  }
  if (set_endpoint(s, endpoint) == -1)
    goto fail;
  /* Limits: larger values are clamped, not refused. */
  s->retries = s->cfg.retries > 100 ? 100 : s->cfg.retries;
  s->timeout = s->cfg.timeout > 86400 ? 86400 : s->cfg.timeout < 1 ? 1 : s->cfg.timeout;
  s->backoff_ms = s->cfg.backoff_ms > 60000 ? 60000 : s->cfg.backoff_ms < 0 ? 0 : s->cfg.backoff_ms;
  s->part_size = s->cfg.part_size < S3_MIN_PART_SIZE ? S3_MIN_PART_SIZE : s->cfg.part_size;
  s->multipart_threshold =
      s->cfg.multipart_threshold < S3_MIN_PART_SIZE ? S3_MIN_PART_SIZE : s->cfg.multipart_threshold;
  s->list_max_keys = s->cfg.list_max_keys > 1000 ? 1000 : s->cfg.list_max_keys;

  if (create && check_bucket(s) == -1)
    goto fail;
  free(endpoint);
  return &s->base;
fail:
  free(endpoint);
  s3_free(&s->base);
  return NULL;
}
