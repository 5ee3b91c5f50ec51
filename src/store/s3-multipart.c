/* S3 multipart upload of one object too large for a single PUT: create the
 * upload, send the parts, complete it, and abort it on failure; a retried
 * completion whose first answer was lost is recognised by its ETag. */
#define _GNU_SOURCE
#include "store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "../util/error-slot.h"
#include "../util/error.h"
#include "../util/strbuf.h"
#include "s3-internal.h"
#include "sigv4.h"

static void abort_upload(struct s3_store *s, const char *fkey, const char *query)
{
  /* The upload's own error is the one to report, whatever the DELETE says. */
  struct error_slot kept;
  struct s3_response resp;
  struct s3_request req = {.method = "DELETE", .key = fkey, .query = query, .max = ERROR_BODY_MAX};
  error_slot_init(&kept);
  error_slot_set_from_current(&kept);
  if (s3_perform(s, &req, &resp) == 0)
    s3_response_reset(&resp);
  error_slot_restore(&kept);
  error_slot_destroy(&kept);
}

/* Is the object at fkey the multipart upload of these parts? Its ETag is
 * then the MD5 of the parts' binary MD5s, a dash and the part count. */
static int multipart_landed(struct s3_store *s, const char *fkey, uint64_t len, char (*etags)[128],
                            size_t nparts)
{
  struct s3_request req = {.method = "HEAD", .key = fkey};
  struct s3_response resp;
  unsigned char *md5s = malloc(nparts * 16), md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  char want[64];
  int ok = 0;
  if (!md5s)
    return 0;
  for (size_t i = 0; i < nparts; i++) {
    const char *e = etags[i][0] == '"' ? etags[i] + 1 : etags[i];
    for (int j = 0; j < 16; j++) {
      if (s3_hexval(e[2 * j]) < 0 || s3_hexval(e[2 * j + 1]) < 0)
        goto out;
      md5s[16 * i + (size_t)j] =
          (unsigned char)(s3_hexval(e[2 * j]) << 4 | s3_hexval(e[2 * j + 1]));
    }
  }
  EVP_Digest(md5s, nparts * 16, md, &mdlen, EVP_md5(), NULL);
  for (int j = 0; j < 16; j++)
    snprintf(want + 2 * j, 3, "%02x", md[j]);
  snprintf(want + 32, sizeof want - 32, "-%zu", nparts);
  if (s3_perform(s, &req, &resp) == -1)
    goto out;
  const char *got = resp.etag[0] == '"' ? resp.etag + 1 : resp.etag;
  ok = resp.status == 200 && resp.have_content_length && resp.content_length == len &&
       strncmp(got, want, strlen(want)) == 0 &&
       (got[strlen(want)] == 0 || got[strlen(want)] == '"');
  s3_response_reset(&resp);
out:
  free(md5s);
  return ok;
}

/* Start a multipart upload of fkey. Returns the canonical query naming it,
 * "uploadId=...", or NULL with the error set. Caller frees. */
static char *create_upload(struct s3_store *s, const char *fkey)
{
  struct s3_response resp = {0};
  char *upload_id = NULL, *enc_id = NULL, *id_query = NULL;
  char w[512], until[32];
  struct s3_request init = {.method = "POST",
                            .key = fkey,
                            .query = "uploads=",
                            .lock_mode = s3_retention_for(s, fkey, until),
                            .lock_until = until,
                            .max = ERROR_BODY_MAX};
  if (s3_perform(s, &init, &resp) == -1)
    goto out;
  if (resp.status != 200) {
    s3_fail(s, "POST (CreateMultipartUpload)", fkey, &resp);
    goto out;
  }
  upload_id = s3_upload_id_parse(resp.body, resp.len);
  if (!upload_id) {
    prefix_error("POST %s", s3_where(s, fkey, w, sizeof w));
    goto out;
  }
  enc_id = sigv4_uri_encode(upload_id, strlen(upload_id), 0);
  if (!enc_id || asprintf(&id_query, "uploadId=%s", enc_id) == -1) {
    id_query = NULL;
    set_error(ENOMEM, "multipart upload");
  }
out:
  s3_response_reset(&resp);
  free(upload_id);
  free(enc_id);
  return id_query;
}

/* Send the nparts parts of buf (part bytes each, the last one shorter) and
 * keep each part's ETag in etags. */
static int upload_parts(struct s3_store *s, const char *fkey, const char *id_query, const void *buf,
                        size_t len, uint64_t part, size_t nparts, char (*etags)[128])
{
  struct s3_response resp = {0};
  int ret = -1;
  for (size_t i = 0; i < nparts; i++) {
    char query[512], md5[32];
    size_t off = (size_t)(i * part);
    size_t plen = len - off < part ? len - off : (size_t)part;
    /* Parameters in canonical order: partNumber < uploadId. */
    snprintf(query, sizeof query, "partNumber=%zu&%s", i + 1, id_query);
    s3_md5_base64((const char *)buf + off, plen, md5);
    struct s3_request up = {
        .method = "PUT",
        .key = fkey,
        .query = query,
        .body = (const char *)buf + off,
        .body_len = plen,
        .content_md5 = md5,
        .max = ERROR_BODY_MAX,
    };
    if (s3_perform(s, &up, &resp) == -1)
      goto out;
    if (resp.status != 200 || !resp.etag[0]) {
      s3_fail(s, "PUT (UploadPart)", fkey, &resp);
      goto out;
    }
    snprintf(etags[i], sizeof etags[i], "%s", resp.etag);
    s3_response_reset(&resp);
  }
  ret = 0;
out:
  s3_response_reset(&resp);
  return ret;
}

/* The CompleteMultipartUpload body listing the parts. Caller frees. */
static char *complete_body(char (*etags)[128], size_t nparts, size_t *len)
{
  /* 10,000 parts of at most 128-byte ETags (each escaped to at most 5x). */
  struct strbuf sb = STRBUF_INIT(8u << 20, "the CompleteMultipartUpload body");
  strbuf_appends(&sb, "<CompleteMultipartUpload>");
  for (size_t i = 0; i < nparts; i++) {
    strbuf_appendf(&sb, "<Part><PartNumber>%zu</PartNumber><ETag>", i + 1);
    for (const char *c = etags[i]; *c; c++) {
      if (*c == '&')
        strbuf_appends(&sb, "&amp;");
      else if (*c == '<')
        strbuf_appends(&sb, "&lt;");
      else if (*c == '>')
        strbuf_appends(&sb, "&gt;");
      else
        strbuf_append(&sb, c, 1);
    }
    strbuf_appends(&sb, "</ETag></Part>");
  }
  strbuf_appends(&sb, "</CompleteMultipartUpload>");
  return strbuf_take(&sb, len);
}

/* Complete the upload. *landed is set when an earlier attempt completed it
 * and only its answer was lost (there is then nothing left to abort). */
static int complete_upload(struct s3_store *s, const char *fkey, const char *id_query, uint64_t len,
                           unsigned flags, char (*etags)[128], size_t nparts, int *landed)
{
  struct s3_response resp = {0};
  struct s3_error_info einfo;
  size_t complete_len = 0;
  char w[512];
  int ret = -1;
  char *complete = complete_body(etags, nparts, &complete_len);
  if (!complete)
    return -1;
  struct s3_request done = {
      .method = "POST",
      .key = fkey,
      .query = id_query,
      .body = complete,
      .body_len = complete_len,
      .if_none_match = (flags & STORE_PUT_EXCL) != 0,
      .fresh_connect = 1,
      .max = ERROR_BODY_MAX,
  };
  if (s3_perform(s, &done, &resp) == -1)
    goto out;
  /* CompleteMultipartUpload can fail after its 200 status line. */
  if (resp.status == 200 && !s3_error_parse(resp.body, resp.len, &einfo)) {
    ret = 0;
  } else if (resp.status == 404 && resp.attempts > 1 &&
             s3_error_parse(resp.body, resp.len, &einfo) &&
             strcmp(einfo.code, "NoSuchUpload") == 0 &&
             multipart_landed(s, fkey, len, etags, nparts)) {
    /* An earlier attempt completed the upload; only its answer was lost. */
    ret = 0;
    *landed = 1;
  } else if (resp.status == 412) {
    set_error(EEXIST, "PUT %s: already exists", s3_where(s, fkey, w, sizeof w));
  } else {
    if (resp.status == 200)
      resp.status = 500;
    s3_fail(s, "POST (CompleteMultipartUpload)", fkey, &resp);
  }
out:
  s3_response_reset(&resp);
  free(complete);
  return ret;
}

int s3_put_multipart(struct s3_store *s, const char *fkey, const void *buf, size_t len,
                     unsigned flags)
{
  char *id_query = NULL;
  char(*etags)[128] = NULL;
  int ret = -1, landed = 0;
  char w[512];

  uint64_t part = s->part_size;
  while ((len + part - 1) / part > MAX_PARTS)
    part *= 2;
  size_t nparts = (size_t)((len + part - 1) / part);

  if (flags & STORE_PUT_EXCL) {
    uint64_t size;
    if (s3_head_key(s, fkey, &size) == 0) {
      set_error(EEXIST, "PUT %s: already exists", s3_where(s, fkey, w, sizeof w));
      return -1;
    }
    if (get_errno() != ENOENT)
      return -1;
  }
  id_query = create_upload(s, fkey);
  if (!id_query)
    goto out;
  etags = calloc(nparts, sizeof *etags);
  if (!etags) {
    set_error(errno, "calloc");
    goto out;
  }
  if (upload_parts(s, fkey, id_query, buf, len, part, nparts, etags) == -1)
    goto out;
  ret = complete_upload(s, fkey, id_query, len, flags, etags, nparts, &landed);
out:
  if (ret == -1 && id_query && !landed)
    abort_upload(s, fkey, id_query);
  free(id_query);
  free(etags);
  return ret;
}
