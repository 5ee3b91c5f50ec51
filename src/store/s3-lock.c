/* S3 Object Lock: the retention written with each put, reading and
 * extending a version's retention, and the versions of a versioned bucket
 * (listing, reading and deleting one), for prune, verify and repair. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../util/error.h"
#include "s3-internal.h"
#include "sigv4.h"

/* "2026-12-07T10:57:10Z" */
static void iso_time(int64_t t, char out[32])
{
  struct tm tm;
  time_t tt = (time_t)t;
  gmtime_r(&tt, &tm);
  strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

const char *s3_retention_for(const struct s3_store *s, const char *fkey, char until[32])
{
  until[0] = 0;
  if (!s->base.retain_mode || s->base.retain_seconds <= 0 ||
      store_key_mutable(fkey + strlen(s->prefix)))
    return NULL;
  iso_time((int64_t)time(NULL) + s->base.retain_seconds, until);
  return s->base.retain_mode;
}

int s3_lock_enabled(struct store *st)
{
  struct s3_store *s = (struct s3_store *)st;
  struct s3_response resp;
  struct s3_request req = {.method = "GET", .query = "object-lock=", .max = S3_XML_MAX_BODY};
  if (s3_perform(s, &req, &resp) == -1)
    return -1;
  int ret;
  struct s3_error_info e;
  if (resp.status == 200)
    ret = s3_object_lock_parse(resp.body, resp.len);
  else if (resp.status == 404 && s3_error_parse(resp.body, resp.len, &e) &&
           strcmp(e.code, "NoSuchBucket") != 0)
    ret = 0; /* ObjectLockConfigurationNotFoundError */
  else
    ret = s3_fail(s, "GET (object lock configuration)", NULL, &resp);
  s3_response_reset(&resp);
  return ret;
}

/* The full key of key into *fkey and "versionId=V" (encoded) into *query,
 * NULL for the current version. Caller frees both. */
static int version_target(const struct s3_store *s, const char *key, const char *version,
                          char **fkey, char **query)
{
  char *enc = NULL;
  *query = NULL;
  *fkey = s3_full_key(s, key);
  if (!*fkey)
    return -1;
  if (!version)
    return 0;
  enc = sigv4_uri_encode(version, strlen(version), 0);
  if (!enc || asprintf(query, "versionId=%s", enc) == -1) {
    *query = NULL;
    free(enc);
    free(*fkey);
    *fkey = NULL;
    set_error(ENOMEM, "version query");
    return -1;
  }
  free(enc);
  return 0;
}

int s3_get_retention(struct store *st, const char *key, const char *version, int64_t *until)
{
  struct s3_store *s = (struct s3_store *)st;
  struct s3_response resp;
  char *query, *fkey, w[512];
  int ret = -1;
  if (version_target(s, key, version, &fkey, &query) == -1)
    return -1;
  struct s3_request req = {.method = "HEAD", .key = fkey, .query = query};
  if (s3_perform(s, &req, &resp) == -1)
    goto out;
  if (resp.status == 200) {
    *until = resp.retain_until;
    ret = 0;
  } else if (resp.status == 404 || (resp.status == 405 && resp.delete_marker)) {
    set_error(ENOENT, "HEAD %s: not found", s3_where(s, fkey, w, sizeof w));
  } else {
    s3_fail(s, "HEAD", fkey, &resp);
  }
  s3_response_reset(&resp);
out:
  free(query);
  free(fkey);
  return ret;
}

int s3_set_retention(struct store *st, const char *key, int64_t until)
{
  struct s3_store *s = (struct s3_store *)st;
  struct s3_response resp;
  char date[32], body[256], md5[32];
  int ret = -1;
  if (!s->base.retain_mode) {
    set_error(EINVAL, "%s: the repository has no Object Lock retention", key);
    return -1;
  }
  char *fkey = s3_full_key(s, key);
  if (!fkey)
    return -1;
  iso_time(until, date);
  int n = snprintf(body, sizeof body,
                   "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>%s</Mode>"
                   "<RetainUntilDate>%s</RetainUntilDate></Retention>",
                   s->base.retain_mode, date);
  /* S3 requires Content-MD5 (or a checksum) on PutObjectRetention. */
  s3_md5_base64(body, (size_t)n, md5);
  struct s3_request req = {.method = "PUT",
                           .key = fkey,
                           .query = "retention=",
                           .body = body,
                           .body_len = (size_t)n,
                           .content_md5 = md5,
                           .max = ERROR_BODY_MAX};
  if (s3_perform(s, &req, &resp) == -1)
    goto out;
  if (resp.status == 200 || resp.status == 204)
    ret = 0;
  else
    s3_fail(s, "PUT (retention)", fkey, &resp);
  s3_response_reset(&resp);
out:
  free(fkey);
  return ret;
}

int s3_get_version(struct store *st, const char *key, const char *version, size_t max, void **buf,
                   size_t *len)
{
  struct s3_store *s = (struct s3_store *)st;
  char *query, *fkey;
  if (version_target(s, key, version, &fkey, &query) == -1)
    return -1;
  int r = s3_get_key(s, fkey, query, max, buf, len);
  free(query);
  free(fkey);
  return r;
}

int s3_del_version(struct store *st, const char *key, const char *version)
{
  struct s3_store *s = (struct s3_store *)st;
  struct s3_response resp;
  char *query, *fkey, w[512];
  int ret = -1;
  if (version_target(s, key, version, &fkey, &query) == -1)
    return -1;
  struct s3_request req = {.method = "DELETE", .key = fkey, .query = query, .max = ERROR_BODY_MAX};
  if (s3_perform(s, &req, &resp) == -1)
    goto out;
  if (resp.status == 204 || resp.status == 200 || resp.status == 404) {
    ret = 0;
  } else if (resp.status == 403) {
    /* Refused by the lock, or by the credentials: the retention tells. */
    int64_t until = 0;
    char date[32];
    if (s3_get_retention(st, key, version, &until) == 0 && until > (int64_t)time(NULL)) {
      iso_time(until, date);
      set_error(EACCES, "%s (version %s) is locked by Object Lock until %s",
                s3_where(s, fkey, w, sizeof w), version, date);
    } else {
      s3_fail(s, "DELETE", fkey, &resp);
    }
  } else {
    s3_fail(s, "DELETE", fkey, &resp);
  }
  s3_response_reset(&resp);
out:
  free(query);
  free(fkey);
  return ret;
}

int s3_list_versions(struct store *st, const char *prefix, store_version_cb cb, void *opaque)
{
  struct s3_store *s = (struct s3_store *)st;
  struct s3_response resp = {0};
  struct s3_versions_page page = {0};
  char *full = NULL, *enc_prefix = NULL, *enc_key = NULL, *enc_id = NULL, *query = NULL;
  size_t plen = strlen(s->prefix);
  int ret = -1;
  char w[512];

  full = s3_full_key(s, prefix);
  if (!full || !(enc_prefix = sigv4_uri_encode(full, strlen(full), 0)))
    goto out;
  for (;;) {
    free(query);
    query = NULL;
    /* Canonical order: key-marker < prefix < version-id-marker < versions. */
    if (asprintf(&query, "%s%s%sprefix=%s&%s%s%sversions=", enc_key ? "key-marker=" : "",
                 enc_key ? enc_key : "", enc_key ? "&" : "", enc_prefix,
                 enc_id ? "version-id-marker=" : "", enc_id ? enc_id : "",
                 enc_id ? "&" : "") == -1) {
      query = NULL;
      set_error(ENOMEM, "asprintf");
      goto out;
    }
    struct s3_request req = {.method = "GET", .query = query, .max = S3_XML_MAX_BODY};
    if (s3_perform(s, &req, &resp) == -1)
      goto out;
    if (resp.too_big) {
      set_error(EFBIG, "LIST versions %s: reply larger than %u bytes",
                s3_where(s, full, w, sizeof w), S3_XML_MAX_BODY);
      goto out;
    }
    if (resp.status != 200) {
      s3_fail(s, "LIST versions", full, &resp);
      goto out;
    }
    if (s3_versions_page_parse(resp.body, resp.len, &page) == -1) {
      prefix_error("LIST versions %s", s3_where(s, full, w, sizeof w));
      goto out;
    }
    s3_response_reset(&resp);
    for (size_t i = 0; i < page.nentries; i++) {
      const struct s3_version_entry *e = &page.entries[i];
      if (strncmp(e->key, full, strlen(full)) != 0)
        continue; /* not ours: a server that ignored the prefix */
      struct store_version v = {.key = e->key + plen,
                                .version_id = e->version_id,
                                .size = e->size,
                                .mtime = e->mtime,
                                .is_latest = e->is_latest,
                                .delete_marker = e->delete_marker};
      if (cb(opaque, &v) == -1)
        goto out;
    }
    if (!page.is_truncated)
      break;
    if (s3_next_markers(s, "LIST versions", full, page.next_key, page.next_version, &enc_key,
                        &enc_id) == -1)
      goto out;
    s3_versions_page_free(&page);
  }
  ret = 0;
out:
  s3_versions_page_free(&page);
  s3_response_reset(&resp);
  free(full);
  free(enc_prefix);
  free(enc_key);
  free(enc_id);
  free(query);
  return ret;
}
