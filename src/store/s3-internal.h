/* State shared by the S3 store's files (s3.c: the store operations,
 * s3-http.c: one signed HTTP exchange with retries, s3-multipart.c: large
 * uploads); not part of the public API. */
#ifndef PL_S3_INTERNAL_H
#define PL_S3_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "s3-config.h"
#include "s3-xml.h"
#include "store.h"

#define POOL_MAX 32
#define ERROR_BODY_MAX S3_XML_MAX_BODY
#define MAX_PARTS 10000
#define MAX_SINGLE_PUT (5ull << 30) /* S3's limit for one PUT */
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

struct s3_store {
  struct store base;
  char *endpoint; /* "scheme://host[:port]" requests go to (bucket included if virtual) */
  char *host;     /* the Host header: host[:port] of endpoint */
  char *bucket;
  char *prefix; /* "" or "some/prefix/" */
  int path_style;
  struct s3_settings cfg; /* owned copy */
  unsigned retries;
  long timeout;    /* seconds without progress before a request is given up */
  long backoff_ms; /* first retry delay; doubles each time, capped at 20 s */
  uint64_t multipart_threshold;
  uint64_t part_size;
  unsigned list_max_keys; /* 0: the server's default page size */
  pthread_mutex_t lock;   /* guards idle */
  struct s3_conn *idle[POOL_MAX];
  size_t nidle;
};

/* What to send. Strings are borrowed. */
struct s3_request {
  const char *method;
  const char *key;   /* full object key (prefix included), or NULL for the bucket */
  const char *query; /* canonical query string (sorted, encoded), or NULL */
  const void *body;
  size_t body_len;
  const char *content_md5; /* base64, or NULL */
  int checksum_sha256;     /* send x-amz-checksum-sha256 (the payload hash, base64) */
  const char *range;       /* "bytes=A-B", or NULL */
  int if_none_match;       /* send If-None-Match: * */
  /* Object Lock retention to write with the object (PUT, CreateMultipartUpload):
   * "GOVERNANCE" or "COMPLIANCE", and the ISO 8601 date; NULL for none. */
  const char *lock_mode;
  const char *lock_until;
  /* Use a new connection: curl silently resends a request whose reused
   * connection died, which would hide from attempts that a non-idempotent
   * request may already have landed. */
  int fresh_connect;
  /* Where a success body goes: into dst (at most dst_cap bytes, the first
   * skip bytes dropped), else into the response, at most max bytes. */
  char *dst;
  size_t dst_cap;
  uint64_t skip;
  size_t max;
};

/* What came back. Free with s3_response_reset. */
struct s3_response {
  long status;
  char *body; /* success body (no dst) or error body; NUL-terminated; owned */
  size_t len, cap;
  size_t dst_len;
  uint64_t skipped;
  uint64_t content_length;
  int have_content_length;
  int too_big;       /* the body passed its cap */
  unsigned attempts; /* how many times the request was sent */
  char request_id[128];
  char etag[128];
  char content_range[128];
  char bucket_region[64];
  char version_id[128]; /* x-amz-version-id, "" if absent */
  int64_t retain_until; /* x-amz-object-lock-retain-until-date; 0 if absent */
  int delete_marker;    /* x-amz-delete-marker: true */
};

struct s3_conn;

/* Free a response's body and clear it, keeping its attempt count. */
void s3_response_reset(struct s3_response *r);

/* Send req, retrying transient failures. Returns 0 when an HTTP answer came
 * (any status; a body over its cap sets resp->too_big), or -1 with the error
 * set when the endpoint could not be reached or a local step failed.
 * Thread-safe: each call takes its own connection from the pool. Free resp
 * with s3_response_reset. */
int s3_perform(struct s3_store *s, const struct s3_request *req, struct s3_response *resp);

/* Set the error for an unexpected HTTP answer (method and key, status, S3
 * error code, request id, mapped to an errno) and return -1. */
int s3_fail(struct s3_store *s, const char *method, const char *key, const struct s3_response *r);

/* "s3://bucket/prefix/key" for messages into buf; returns buf. */
const char *s3_where(const struct s3_store *s, const char *key, char *buf, size_t cap);

/* Close a pooled connection; NULL is a no-op. */
void s3_conn_free(struct s3_conn *c);

/* Encodings: base64 of len bytes into out (4 * ceil(len / 3) + 1 bytes), the
 * MD5 of buf in base64 or lower-case hex, and the value of one hex digit
 * (-1 if c is not one). */
void s3_base64(const unsigned char *in, size_t len, char *out);
void s3_md5_base64(const void *buf, size_t len, char out[32]);
void s3_md5_hex(const void *buf, size_t len, char out[33]);
int s3_hexval(char c);

/* prefix + key, or NULL with the error set. Caller frees. */
char *s3_full_key(const struct s3_store *s, const char *key);

/* GET the object at the full key fkey (query: NULL, or "versionId=..."). As
 * the store's get. */
int s3_get_key(struct s3_store *s, const char *fkey, const char *query, size_t max, void **bufp,
               size_t *lenp);

/* The Object Lock mode to write fkey with, with its retain-until date put in
 * until; NULL (until empty) when the store has no retention or fkey is a
 * lock object. */
const char *s3_retention_for(const struct s3_store *s, const char *fkey, char until[32]);

/* A paged listing's next markers, next_key and next_id (NULL: none) as the
 * server gave them, encoded into *enc_key and *enc_id (freeing the current
 * ones). -1 with the error set when they repeat the current ones ("what
 * where: the server repeated its markers") or encoding fails. */
int s3_next_markers(const struct s3_store *s, const char *what, const char *where,
                    const char *next_key, const char *next_id, char **enc_key, char **enc_id);

/* The Object Lock operations of store_ops (s3-lock.c). */
int s3_lock_enabled(struct store *st);
int s3_get_retention(struct store *st, const char *key, const char *version, int64_t *until);
int s3_set_retention(struct store *st, const char *key, int64_t until);
int s3_list_versions(struct store *st, const char *prefix, store_version_cb cb, void *opaque);
int s3_get_version(struct store *st, const char *key, const char *version, size_t max, void **buf,
                   size_t *len);
int s3_del_version(struct store *st, const char *key, const char *version);

/* Size of the object at the full key fkey; ENOENT if missing. */
int s3_head_key(struct s3_store *s, const char *fkey, uint64_t *size);

/* Upload buf as a multipart upload of parts of s->part_size bytes (doubled
 * until at most MAX_PARTS), aborting it on failure. With STORE_PUT_EXCL an
 * existing object is EEXIST. buf is borrowed for the call. */
int s3_put_multipart(struct s3_store *s, const char *fkey, const void *buf, size_t len,
                     unsigned flags);

#endif
