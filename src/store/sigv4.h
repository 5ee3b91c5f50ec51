/* AWS Signature Version 4 as a pure function: canonical request, string to
 * sign, signature and Authorization header from a request description. No I/O,
 * no clock: the caller passes the time, so tests can use AWS's vectors. */
#ifndef PL_SIGV4_H
#define PL_SIGV4_H

#include <stddef.h>
#include <time.h>

/* One request header to sign. name in any case; value as sent (trimmed and
 * inner runs of spaces collapsed for signing). Repeated names are joined
 * with ',' in the order given. */
struct sigv4_header {
  const char *name;
  const char *value;
};

/* Everything the signature covers. All strings are borrowed. */
struct sigv4_request {
  const char *method; /* "GET", "PUT", ... */
  const char *path;   /* decoded path, e.g. "/bucket/a key"; encoded here, '/' kept */
  const char *query;  /* query string as sent, "a=1&b" or "" (sorted and re-encoded here) */
  const struct sigv4_header *headers; /* every header to sign, host and x-amz-date included */
  size_t nheaders;
  const char *payload_hash; /* lowercase hex SHA-256 of the body, or "UNSIGNED-PAYLOAD" */
  const char *amz_date;     /* "YYYYMMDDTHHMMSSZ", the x-amz-date header value */
  const char *region;       /* "us-east-1" */
  const char *service;      /* "s3" */
  const char *access_key;
  const char *secret_key; /* never copied anywhere but a wiped stack key */
};

/* The result of signing; every string is owned: free with sigv4_signature_free. */
struct sigv4_signature {
  char *canonical_request;
  char *string_to_sign;
  char *signed_headers; /* "host;x-amz-date" */
  char *authorization;  /* the Authorization header value */
  char signature[65];   /* lowercase hex */
};

/* Sign req. Returns 0, or -1 with the error set (out is then empty). */
int sigv4_sign(const struct sigv4_request *req, struct sigv4_signature *out);

/* Free and wipe what sigv4_sign filled in; a zeroed struct is fine. */
void sigv4_signature_free(struct sigv4_signature *sig);

/* Percent-encode s the way SigV4 wants (RFC 3986 unreserved characters kept,
 * everything else %XX upper case); with keep_slash, '/' is kept too.
 * Returns a string the caller frees with free(), or NULL with the error set. */
char *sigv4_uri_encode(const char *s, size_t len, int keep_slash);

/* Lowercase hex SHA-256 of buf into out (65 bytes with the NUL). */
void sigv4_sha256_hex(const void *buf, size_t len, char out[65]);

/* Format t (UTC) as "YYYYMMDDTHHMMSSZ" into out (17 bytes with the NUL). */
void sigv4_amz_date(time_t t, char out[17]);

#endif
