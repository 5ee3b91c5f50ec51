/* The S3 store's HTTP layer: a pool of curl easy handles (each holds its own
 * connection, reused across requests), one SigV4-signed exchange with every
 * response body capped, retries with exponential backoff and jitter, and the
 * mapping of failures to errors that name the fix. */
#define _GNU_SOURCE
#include "store.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "../util/error.h"
#include "../util/hash.h"
#include "../util/ratelimit.h"
#include "s3-internal.h"
#include "sigv4.h"

void s3_response_reset(struct s3_response *r)
{
  free(r->body);
  unsigned attempts = r->attempts;
  memset(r, 0, sizeof *r);
  r->attempts = attempts;
}

void s3_base64(const unsigned char *in, size_t len, char *out)
{
  EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}

void s3_md5_base64(const void *buf, size_t len, char out[32])
{
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  EVP_Digest(buf, len, md, &mdlen, EVP_md5(), NULL);
  s3_base64(md, 16, out);
}

int s3_hexval(char c)
{
  return c >= '0' && c <= '9'   ? c - '0'
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                : -1;
}

void s3_md5_hex(const void *buf, size_t len, char out[33])
{
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  EVP_Digest(buf, len, md, &mdlen, EVP_md5(), NULL);
  for (int i = 0; i < 16; i++)
    snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* Per-thread xorshift generator for retry jitter, seeded once. */
static _Thread_local uint64_t rng_state;

static uint64_t rng_next(void)
{
  if (rng_state == 0) {
    if (getrandom(&rng_state, sizeof rng_state, 0) != sizeof rng_state || rng_state == 0)
      rng_state = (uint64_t)time(NULL) * 2654435761u + (uint64_t)(uintptr_t)&rng_state;
  }
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

/* Sleep before retry number attempt (1-based): half the exponential delay
 * plus a random part up to the other half, so clients spread out. */
static void backoff(const struct s3_store *s, unsigned attempt)
{
  uint64_t ms = (uint64_t)s->backoff_ms;
  for (unsigned i = 1; i < attempt && ms < 20000; i++)
    ms *= 2;
  if (ms > 20000)
    ms = 20000;
  ms = ms / 2 + (ms ? rng_next() % (ms / 2 + 1) : 0);
  struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
    ;
}

/* "s3://bucket/prefix/key" for messages into buf. */
const char *s3_where(const struct s3_store *s, const char *key, char *buf, size_t cap)
{
  snprintf(buf, cap, "s3://%s/%s", s->bucket, key ? key : s->prefix);
  return buf;
}

/* ---- curl handle pool ---- */

/* A curl handle with its own connection cache, and the socket of the
 * connection it holds open (CURL_SOCKET_BAD when none). */
struct s3_conn {
  CURL *h;
  curl_socket_t fd;
};

void s3_conn_free(struct s3_conn *c)
{
  if (!c)
    return;
  curl_easy_cleanup(c->h);
  free(c);
}

static struct s3_conn *pool_get(struct s3_store *s)
{
  struct s3_conn *c = NULL;
  pthread_mutex_lock(&s->lock);
  if (s->nidle > 0)
    c = s->idle[--s->nidle];
  pthread_mutex_unlock(&s->lock);
  if (!c) {
    c = calloc(1, sizeof *c);
    if (c)
      c->h = curl_easy_init();
    if (!c || !c->h) {
      free(c);
      set_error(ENOMEM, "curl_easy_init");
      return NULL;
    }
    c->fd = CURL_SOCKET_BAD;
  }
  return c;
}

static void pool_put(struct s3_store *s, struct s3_conn *c)
{
  pthread_mutex_lock(&s->lock);
  if (s->nidle < POOL_MAX) {
    s->idle[s->nidle++] = c;
    c = NULL;
  }
  pthread_mutex_unlock(&s->lock);
  s3_conn_free(c);
}

/* curl's socket callbacks keep conn->fd current. */
static int on_sockopt(void *opaque, curl_socket_t fd, curlsocktype purpose)
{
  struct s3_conn *c = opaque;
  if (purpose == CURLSOCKTYPE_IPCXN)
    c->fd = fd;
  return CURL_SOCKOPT_OK;
}

static int on_closesocket(void *opaque, curl_socket_t fd)
{
  struct s3_conn *c = opaque;
  if (c->fd == fd)
    c->fd = CURL_SOCKET_BAD;
  return close(fd);
}

/* Ceph RGW's beast frontend (by default, tcp_nodelay=0), like any server
 * that leaves Nagle's algorithm on, sends a reply's headers and its body as
 * separate segments; the body waits until the client ACKs the headers, and
 * on a kept-alive connection Linux delays that ACK by about 40 ms. Called
 * when the headers are in: TCP_QUICKACK sends the pending ACK at once, and
 * turns 40 ms a request into about 1 ms. A failure only costs the delay. */
static void ack_now(const struct s3_conn *c)
{
#ifdef TCP_QUICKACK
  int one = 1;
  if (c->fd != CURL_SOCKET_BAD)
    (void)setsockopt(c->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
#else
  (void)c;
#endif
}

/* ---- one HTTP exchange ---- */

struct transfer {
  const struct s3_request *req;
  struct s3_response *resp;
  size_t sent;
  const struct s3_conn *conn;
  struct ratelimit *up, *down; /* the store's limits (borrowed; NULL: none) */
  int cancelled;               /* a limit's wait was cancelled: the error is set */
};

static int body_append(struct s3_response *r, const char *data, size_t n, size_t cap)
{
  if (r->len + n > cap) {
    r->too_big = 1;
    return -1;
  }
  if (r->len + n + 1 > r->cap) {
    size_t ncap = r->cap ? r->cap : 4096;
    while (ncap < r->len + n + 1)
      ncap *= 2;
    if (ncap > cap + 1)
      ncap = cap + 1;
    char *nb = realloc(r->body, ncap);
    if (!nb)
      return -1;
    r->body = nb;
    r->cap = ncap;
  }
  memcpy(r->body + r->len, data, n);
  r->len += n;
  r->body[r->len] = 0;
  return 0;
}

static size_t on_write(char *data, size_t size, size_t nmemb, void *opaque)
{
  struct transfer *t = opaque;
  struct s3_response *r = t->resp;
  const struct s3_request *req = t->req;
  size_t n = size * nmemb;
  /* Every byte received counts; while this waits, TCP holds the sender back. */
  if (ratelimit_take(t->down, n) == -1) {
    t->cancelled = 1;
    return 0;
  }
  if (r->status < 200 || r->status >= 300) {
    /* Keep the start of an error body for its Code; drop the rest. */
    size_t keep = r->len < ERROR_BODY_MAX ? ERROR_BODY_MAX - r->len : 0;
    if (keep > n)
      keep = n;
    if (keep && body_append(r, data, keep, ERROR_BODY_MAX) == -1)
      return 0;
    return n;
  }
  if (req->dst) {
    size_t off = 0;
    if (r->skipped < req->skip) {
      uint64_t drop = req->skip - r->skipped;
      off = drop < n ? (size_t)drop : n;
      r->skipped += off;
    }
    size_t take = n - off;
    if (take > req->dst_cap - r->dst_len) {
      r->too_big = 1;
      return 0;
    }
    memcpy(req->dst + r->dst_len, data + off, take);
    r->dst_len += take;
    return n;
  }
  if (r->len == 0 && r->have_content_length && r->content_length <= req->max && !r->body) {
    r->body = malloc((size_t)r->content_length + 1);
    if (!r->body)
      return 0;
    r->cap = (size_t)r->content_length + 1;
  }
  return body_append(r, data, n, req->max) == -1 ? 0 : n;
}

static void header_copy(char *dst, size_t cap, const char *v, size_t n)
{
  while (n > 0 && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
    n--;
  while (n > 0 && *v == ' ') {
    v++;
    n--;
  }
  if (n >= cap)
    n = cap - 1;
  memcpy(dst, v, n);
  dst[n] = 0;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *opaque)
{
  struct transfer *t = opaque;
  struct s3_response *r = t->resp;
  size_t n = size * nmemb;
  if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
    /* A new status line (after 100 Continue, say): forget earlier headers. */
    const char *sp = memchr(data, ' ', n);
    free(r->body);
    unsigned attempts = r->attempts;
    memset(r, 0, sizeof *r);
    r->attempts = attempts;
    if (sp && sp + 4 <= data + n) {
      long status = 0;
      for (int i = 1; i <= 3; i++)
        status = sp[i] >= '0' && sp[i] <= '9' ? status * 10 + (sp[i] - '0') : -1000;
      r->status = status > 0 ? status : 0;
    }
    return n;
  }
  const char *colon = memchr(data, ':', n);
  if (!colon) {
    if (n <= 2) /* the blank line that ends the headers */
      ack_now(t->conn);
    return n;
  }
  size_t nlen = (size_t)(colon - data);
  const char *v = colon + 1;
  size_t vlen = n - nlen - 1;
  char tmp[32];
  if (nlen == 14 && strncasecmp(data, "content-length", 14) == 0) {
    header_copy(tmp, sizeof tmp, v, vlen);
    char *end;
    errno = 0;
    unsigned long long cl = strtoull(tmp, &end, 10);
    if (!errno && end != tmp && !*end) {
      r->content_length = cl;
      r->have_content_length = 1;
      /* Refuse an oversized object before its body arrives. */
      const struct s3_request *req = t->req;
      if (strcmp(req->method, "GET") == 0 && !req->dst && r->status >= 200 && r->status < 300 &&
          cl > req->max) {
        r->too_big = 1;
        return 0;
      }
    }
  } else if (nlen == 16 && strncasecmp(data, "x-amz-request-id", 16) == 0) {
    header_copy(r->request_id, sizeof r->request_id, v, vlen);
  } else if (nlen == 4 && strncasecmp(data, "etag", 4) == 0) {
    header_copy(r->etag, sizeof r->etag, v, vlen);
  } else if (nlen == 13 && strncasecmp(data, "content-range", 13) == 0) {
    header_copy(r->content_range, sizeof r->content_range, v, vlen);
  } else if (nlen == 19 && strncasecmp(data, "x-amz-bucket-region", 19) == 0) {
    header_copy(r->bucket_region, sizeof r->bucket_region, v, vlen);
  } else if (nlen == 16 && strncasecmp(data, "x-amz-version-id", 16) == 0) {
    header_copy(r->version_id, sizeof r->version_id, v, vlen);
  } else if (nlen == 35 && strncasecmp(data, "x-amz-object-lock-retain-until-date", 35) == 0) {
    char date[64];
    header_copy(date, sizeof date, v, vlen);
    r->retain_until = s3_parse_time(date, strlen(date));
  } else if (nlen == 19 && strncasecmp(data, "x-amz-delete-marker", 19) == 0) {
    header_copy(tmp, sizeof tmp, v, vlen);
    r->delete_marker = strcmp(tmp, "true") == 0;
  }
  return n;
}

static size_t on_read(char *buf, size_t size, size_t nmemb, void *opaque)
{
  struct transfer *t = opaque;
  size_t want = size * nmemb, left = t->req->body_len - t->sent;
  size_t n = want < left ? want : left;
  /* One piece per call, so curl sends each as soon as it is let through. */
  if (n > ratelimit_piece(t->up))
    n = ratelimit_piece(t->up);
  if (n && ratelimit_take(t->up, n) == -1) {
    t->cancelled = 1;
    return CURL_READFUNC_ABORT;
  }
  if (n)
    memcpy(buf, (const char *)t->req->body + t->sent, n);
  t->sent += n;
  return n;
}

static int on_seek(void *opaque, curl_off_t offset, int origin)
{
  struct transfer *t = opaque;
  if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > t->req->body_len)
    return CURL_SEEKFUNC_CANTSEEK;
  t->sent = (size_t)offset;
  return CURL_SEEKFUNC_OK;
}

/* Build the decoded request path: "/bucket/key" (path style) or "/key". */
static char *request_path(const struct s3_store *s, const char *key)
{
  char *p = NULL;
  int r;
  if (s->path_style)
    r = asprintf(&p, "/%s%s%s", s->bucket, key ? "/" : "", key ? key : "");
  else
    r = asprintf(&p, "/%s", key ? key : "");
  if (r == -1) {
    set_error(ENOMEM, "asprintf");
    return NULL;
  }
  return p;
}

static int slist_add(struct curl_slist **l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int slist_add(struct curl_slist **l, const char *fmt, ...)
{
  char *line = NULL;
  va_list ap;
  va_start(ap, fmt);
  int r = vasprintf(&line, fmt, ap);
  va_end(ap);
  if (r == -1) {
    set_error(ENOMEM, "header");
    return -1;
  }
  struct curl_slist *nl = curl_slist_append(*l, line);
  explicit_bzero(line, (size_t)r);
  free(line);
  if (!nl) {
    set_error(ENOMEM, "curl_slist_append");
    return -1;
  }
  *l = nl;
  return 0;
}

/* The request's signed headers, as curl header lines appended to *headers
 * (which the caller frees, wiping it, even on failure). path is the decoded
 * request path, query the canonical query string. */
static int sign_headers(const struct s3_store *s, const struct s3_request *req, const char *path,
                        const char *query, const char *payload_hash, struct curl_slist **headers)
{
  struct sigv4_signature sig = {0};
  char amz_date[17];
  int ret = -1;
  sigv4_amz_date(time(NULL), amz_date);

  struct sigv4_header sh[11];
  size_t n = 0;
  sh[n++] = (struct sigv4_header){"host", s->host};
  sh[n++] = (struct sigv4_header){"x-amz-content-sha256", payload_hash};
  sh[n++] = (struct sigv4_header){"x-amz-date", amz_date};
  if (s->cfg.session_token)
    sh[n++] = (struct sigv4_header){"x-amz-security-token", s->cfg.session_token};
  char checksum[48];
  if (req->content_md5)
    sh[n++] = (struct sigv4_header){"content-md5", req->content_md5};
  if (req->checksum_sha256) {
    unsigned char raw[HASH_LEN];
    for (int i = 0; i < HASH_LEN; i++)
      raw[i] =
          (unsigned char)(s3_hexval(payload_hash[2 * i]) << 4 | s3_hexval(payload_hash[2 * i + 1]));
    s3_base64(raw, HASH_LEN, checksum);
    sh[n++] = (struct sigv4_header){"x-amz-checksum-sha256", checksum};
  }
  if (req->range)
    sh[n++] = (struct sigv4_header){"range", req->range};
  if (req->if_none_match)
    sh[n++] = (struct sigv4_header){"if-none-match", "*"};
  if (req->lock_mode) {
    sh[n++] = (struct sigv4_header){"x-amz-object-lock-mode", req->lock_mode};
    sh[n++] = (struct sigv4_header){"x-amz-object-lock-retain-until-date", req->lock_until};
  }
  struct sigv4_request sr = {
      .method = req->method,
      .path = path,
      .query = query,
      .headers = sh,
      .nheaders = n,
      .payload_hash = payload_hash,
      .amz_date = amz_date,
      .region = s->cfg.region,
      .service = "s3",
      .access_key = s->cfg.access_key,
      .secret_key = s->cfg.secret_key,
  };
  if (sigv4_sign(&sr, &sig) == -1)
    goto out;
  for (size_t i = 0; i < n; i++)
    if (slist_add(headers, "%s: %s", sh[i].name, sh[i].value) == -1)
      goto out;
  if (slist_add(headers, "Authorization: %s", sig.authorization) == -1 ||
      slist_add(headers, "Expect:") == -1)
    goto out;
  ret = 0;
out:
  sigv4_signature_free(&sig);
  return ret;
}

/* Reset conn's handle and set it up for req to url: headers, callbacks
 * (into t), timeouts and the method. Everything set is borrowed until the
 * transfer ends. */
static void setup_handle(const struct s3_store *s, struct s3_conn *conn,
                         const struct s3_request *req, const char *url, struct curl_slist *headers,
                         struct transfer *t, char *curl_msg)
{
  CURL *h = conn->h;
  curl_easy_reset(h);
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_USERAGENT, "pilotlight");
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, t);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, t);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, s->timeout < 30 ? s->timeout : 30L);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, s->timeout);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  /* One connection per handle, so that conn->fd names it. */
  curl_easy_setopt(h, CURLOPT_MAXCONNECTS, 1L);
  curl_easy_setopt(h, CURLOPT_SOCKOPTFUNCTION, on_sockopt);
  curl_easy_setopt(h, CURLOPT_SOCKOPTDATA, conn);
  curl_easy_setopt(h, CURLOPT_CLOSESOCKETFUNCTION, on_closesocket);
  curl_easy_setopt(h, CURLOPT_CLOSESOCKETDATA, conn);
  /* Packs are megabytes: larger buffers mean fewer callbacks and syscalls.
   * Under a download limit, one piece: each read waits for its own take. */
  long rbuf = 256L * 1024;
  if (t->down && ratelimit_piece(t->down) < (size_t)rbuf)
    rbuf = (long)ratelimit_piece(t->down);
  curl_easy_setopt(h, CURLOPT_BUFFERSIZE, rbuf);
  curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, 256L * 1024);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_msg);
  if (s->cfg.ca_bundle)
    curl_easy_setopt(h, CURLOPT_CAINFO, s->cfg.ca_bundle);
  if (req->fresh_connect)
    curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);
  if (strcmp(req->method, "HEAD") == 0) {
    curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
  } else if (strcmp(req->method, "PUT") == 0 || strcmp(req->method, "POST") == 0) {
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(h, CURLOPT_READDATA, t);
    curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
    curl_easy_setopt(h, CURLOPT_SEEKDATA, t);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)req->body_len);
    if (strcmp(req->method, "POST") == 0)
      curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "POST");
  } else if (strcmp(req->method, "GET") != 0) {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
  }
}

/* Send req once on conn. Returns 0 with *code set to curl's result (the HTTP
 * outcome is in resp), or -1 with the error set for a local failure (a wait
 * under a bandwidth limit that was cancelled is one). */
static int exchange(struct s3_store *s, struct s3_conn *conn, const struct s3_request *req,
                    const char *payload_hash, struct s3_response *resp, CURLcode *code,
                    char *curl_msg)
{
  struct curl_slist *headers = NULL;
  char *path = NULL, *epath = NULL, *url = NULL;
  struct transfer t = {req, resp, 0, conn, s->base.limit_up, s->base.limit_down, 0};
  CURL *h = conn->h;
  int ret = -1;

  path = request_path(s, req->key);
  if (!path)
    goto out;
  epath = sigv4_uri_encode(path, strlen(path), 1);
  if (!epath)
    goto out;
  const char *query = req->query ? req->query : "";
  if (asprintf(&url, "%s%s%s%s", s->endpoint, epath, query[0] ? "?" : "", query) == -1) {
    url = NULL;
    set_error(ENOMEM, "asprintf");
    goto out;
  }
  if (sign_headers(s, req, path, query, payload_hash, &headers) == -1)
    goto out;
  setup_handle(s, conn, req, url, headers, &t, curl_msg);
  curl_msg[0] = 0;
  *code = curl_easy_perform(h);
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  if (status)
    resp->status = status;
  /* Never leave pointers to this call's stack or header list in the handle. */
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
  /* A cancelled wait under a limit set the error (ECANCELED): no retry. */
  ret = t.cancelled ? -1 : 0;
out:
  if (headers) {
    /* The Authorization and token lines are not secret keys, but wipe anyway. */
    for (struct curl_slist *l = headers; l; l = l->next)
      explicit_bzero(l->data, strlen(l->data));
    curl_slist_free_all(headers);
  }
  free(path);
  free(epath);
  free(url);
  return ret;
}

static int transient_curl(CURLcode c)
{
  switch (c) {
  case CURLE_COULDNT_CONNECT:
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_OPERATION_TIMEDOUT:
  case CURLE_SEND_ERROR:
  case CURLE_RECV_ERROR:
  case CURLE_PARTIAL_FILE:
  case CURLE_GOT_NOTHING:
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_HTTP2:
  case CURLE_HTTP2_STREAM:
  case CURLE_WEIRD_SERVER_REPLY:
  case CURLE_BAD_CONTENT_ENCODING:
    return 1;
  default:
    return 0;
  }
}

static int transient_status(const struct s3_response *r)
{
  if (r->status == 500 || r->status == 502 || r->status == 503 || r->status == 504 ||
      r->status == 429)
    return 1;
  if (r->status == 400 || r->status == 409) {
    struct s3_error_info e;
    if (s3_error_parse(r->body, r->len, &e) && (strcmp(e.code, "RequestTimeout") == 0 ||
                                                strcmp(e.code, "ConditionalRequestConflict") == 0 ||
                                                strcmp(e.code, "OperationAborted") == 0))
      return 1;
  }
  return 0;
}

/* Send req, retrying transient failures. Returns 0 when an HTTP answer came
 * (any status; a body over its cap sets resp->too_big), or -1 with the error
 * set when the endpoint could not be reached or a local step failed. */
int s3_perform(struct s3_store *s, const struct s3_request *req, struct s3_response *resp)
{
  char payload_hash[65];
  char curl_msg[CURL_ERROR_SIZE];
  char w[512];
  CURLcode code = CURLE_OK;
  memset(resp, 0, sizeof *resp);
  if (req->body_len)
    sigv4_sha256_hex(req->body, req->body_len, payload_hash);
  else
    memcpy(payload_hash, EMPTY_SHA256, sizeof payload_hash);

  struct s3_conn *conn = pool_get(s);
  if (!conn)
    return -1;
  for (unsigned attempt = 0;; attempt++) {
    if (attempt > 0)
      backoff(s, attempt);
    s3_response_reset(resp);
    resp->attempts = attempt + 1;
    if (exchange(s, conn, req, payload_hash, resp, &code, curl_msg) == -1) {
      s3_conn_free(conn);
      return -1;
    }
    if (code == CURLE_OK) {
      if (transient_status(resp) && attempt < s->retries)
        continue;
      break;
    }
    if (resp->too_big)
      break;
    /* A short body whose status already says "error" is still an answer. */
    if (transient_curl(code) && attempt < s->retries)
      continue;
    if (code == CURLE_PEER_FAILED_VERIFICATION || code == CURLE_SSL_CACERT_BADFILE) {
      set_error(EIO,
                "%s %s: cannot verify the TLS certificate of the S3 endpoint %s: %s: check "
                "the endpoint's name, or set AWS_CA_BUNDLE to the CA certificate that signed it",
                req->method, s3_where(s, req->key, w, sizeof w), s->endpoint,
                curl_msg[0] ? curl_msg : curl_easy_strerror(code));
      s3_conn_free(conn);
      return -1;
    }
    /* A gateway whose storage is full (Ceph blocks writes to a full OSD)
     * or that is overloaded accepts connections and then says nothing. */
    if (code == CURLE_OPERATION_TIMEDOUT)
      set_error(ETIMEDOUT,
                "%s %s: no answer from the S3 endpoint %s within %ld s (%u attempt%s): check "
                "that it is up, not overloaded and not out of space; PILOTLIGHT_S3_TIMEOUT "
                "sets the limit (%s)",
                req->method, s3_where(s, req->key, w, sizeof w), s->endpoint, s->timeout,
                attempt + 1, attempt ? "s" : "", curl_msg[0] ? curl_msg : curl_easy_strerror(code));
    else
      set_error(code == CURLE_COULDNT_CONNECT        ? ECONNREFUSED
                : code == CURLE_COULDNT_RESOLVE_HOST ? EHOSTUNREACH
                                                     : EIO,
                "%s %s: cannot reach the S3 endpoint %s: %s (%u attempt%s)", req->method,
                s3_where(s, req->key, w, sizeof w), s->endpoint,
                curl_msg[0] ? curl_msg : curl_easy_strerror(code), attempt + 1, attempt ? "s" : "");
    /* A handle whose transfer failed may hold a broken connection. */
    s3_conn_free(conn);
    return -1;
  }
  pool_put(s, conn);
  return 0;
}

/* Set the error for an unexpected HTTP answer and return -1. */
int s3_fail(struct s3_store *s, const char *method, const char *key, const struct s3_response *r)
{
  struct s3_error_info e;
  char w[512], rid[160] = "";
  int have = s3_error_parse(r->body, r->len, &e);
  const char *code = have && e.code[0] ? e.code : "";
  const char *request_id = have && e.request_id[0] ? e.request_id : r->request_id;
  if (request_id[0])
    snprintf(rid, sizeof rid, ", request id %s", request_id);
  s3_where(s, key, w, sizeof w);

  if (strcmp(code, "NoSuchBucket") == 0) {
    /* ENXIO, not ENOENT: callers must not take a missing bucket for a
     * missing object (say, "not a repository"). */
    set_error(ENXIO, "bucket %s does not exist: create it first (%s %s: HTTP %ld NoSuchBucket%s)",
              s->bucket, method, w, r->status, rid);
  } else if (r->status == 403 || r->status == 401) {
    const char *hint = strcmp(code, "RequestTimeTooSkewed") == 0
                           ? "the clock of this host is off: fix it (NTP)"
                           : "check the credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or "
                             "AWS_PROFILE), the clock, and the permissions on the bucket";
    set_error(EACCES, "access to bucket %s denied: %s (%s %s: HTTP %ld%s%s%s)", s->bucket, hint,
              method, w, r->status, code[0] ? " " : "", code, rid);
  } else if (r->status == 301 ||
             (r->status == 400 && strcmp(code, "AuthorizationHeaderMalformed") == 0)) {
    if (r->bucket_region[0])
      set_error(EINVAL,
                "bucket %s is in region %s, not %s: set AWS_REGION=%s (%s %s: HTTP %ld%s%s%s)",
                s->bucket, r->bucket_region, s->cfg.region, r->bucket_region, method, w, r->status,
                code[0] ? " " : "", code, rid);
    else
      set_error(EINVAL, "bucket %s is not in region %s: set AWS_REGION (%s %s: HTTP %ld%s%s%s)",
                s->bucket, s->cfg.region, method, w, r->status, code[0] ? " " : "", code, rid);
  } else {
    int err = r->status == 404                       ? ENOENT
              : r->status == 412                     ? EEXIST
              : r->status == 503 || r->status == 429 ? EAGAIN
              : r->status == 400                     ? EINVAL
                                                     : EIO;
    if (r->status == 503 || r->status == 429 || r->status >= 500)
      set_error(err, "%s %s: HTTP %ld%s%s%s (gave up after %u attempts)", method, w, r->status,
                code[0] ? " " : "", code, rid, r->attempts);
    else
      set_error(err, "%s %s: HTTP %ld%s%s%s%s%s", method, w, r->status, code[0] ? " " : "", code,
                rid, have && e.message[0] ? ": " : "", have ? e.message : "");
  }
  return -1;
}
