/* S3 store: objects in a bucket under a prefix, spoken to over HTTP(S) with
 * libcurl and signed with SigV4 (sigv4.c). A small pool of curl easy handles
 * gives each concurrent request its own connection, reused across requests.
 * Every response body is capped; transient failures are retried with
 * exponential backoff and jitter. Settings: s3-config.c and docs/S3.md. */
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
#include "s3-config.h"
#include "s3-xml.h"
#include "sigv4.h"

#define POOL_MAX 32
#define ERROR_BODY_MAX S3_XML_MAX_BODY
#define MIN_PART_SIZE (5ull << 20)
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
  struct s3_config cfg;
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

/* What came back. Free with response_reset. */
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
};

static void response_reset(struct s3_response *r)
{
  free(r->body);
  unsigned attempts = r->attempts;
  memset(r, 0, sizeof *r);
  r->attempts = attempts;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result;

static void curl_init(void)
{
  curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- small helpers ---- */

static int parse_u64_env(const char *name, uint64_t def, uint64_t min, uint64_t *out)
{
  const char *v = getenv(name);
  if (!v || !v[0]) {
    *out = def;
    return 0;
  }
  char *end;
  errno = 0;
  unsigned long long n = strtoull(v, &end, 10);
  uint64_t mul = 1;
  if (*end == 'k' || *end == 'K')
    mul = 1ull << 10;
  else if (*end == 'm' || *end == 'M')
    mul = 1ull << 20;
  else if (*end == 'g' || *end == 'G')
    mul = 1ull << 30;
  if (mul != 1)
    end++;
  if (errno || end == v || *end || v[0] == '-' || n > UINT64_MAX / mul || n * mul < min) {
    set_error(EINVAL, "%s=%s: expected a number of at least %" PRIu64, name, v, min);
    return -1;
  }
  *out = n * mul;
  return 0;
}

static void base64(const unsigned char *in, size_t len, char *out)
{
  EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}

static void md5_base64(const void *buf, size_t len, char out[32])
{
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;
  EVP_Digest(buf, len, md, &mdlen, EVP_md5(), NULL);
  base64(md, 16, out);
}

static int hexval(char c)
{
  return c >= '0' && c <= '9'   ? c - '0'
         : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                : -1;
}

static void md5_hex(const void *buf, size_t len, char out[33])
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
static const char *where(const struct s3_store *s, const char *key, char *buf, size_t cap)
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

static void conn_free(struct s3_conn *c)
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
  conn_free(c);
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
  }
  return n;
}

static size_t on_read(char *buf, size_t size, size_t nmemb, void *opaque)
{
  struct transfer *t = opaque;
  size_t want = size * nmemb, left = t->req->body_len - t->sent;
  size_t n = want < left ? want : left;
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

/* Send req once on conn. Returns 0 with *code set to curl's result (the HTTP
 * outcome is in resp), or -1 with the error set for a local failure. */
static int exchange(struct s3_store *s, struct s3_conn *conn, const struct s3_request *req,
                    const char *payload_hash, struct s3_response *resp, CURLcode *code,
                    char *curl_msg)
{
  struct sigv4_signature sig = {0};
  struct curl_slist *headers = NULL;
  char *path = NULL, *epath = NULL, *url = NULL;
  char amz_date[17];
  struct transfer t = {req, resp, 0, conn};
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
  sigv4_amz_date(time(NULL), amz_date);

  struct sigv4_header sh[9];
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
    unsigned char raw[32];
    for (int i = 0; i < 32; i++)
      raw[i] = (unsigned char)(hexval(payload_hash[2 * i]) << 4 | hexval(payload_hash[2 * i + 1]));
    base64(raw, 32, checksum);
    sh[n++] = (struct sigv4_header){"x-amz-checksum-sha256", checksum};
  }
  if (req->range)
    sh[n++] = (struct sigv4_header){"range", req->range};
  if (req->if_none_match)
    sh[n++] = (struct sigv4_header){"if-none-match", "*"};
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
    if (slist_add(&headers, "%s: %s", sh[i].name, sh[i].value) == -1)
      goto out;
  if (slist_add(&headers, "Authorization: %s", sig.authorization) == -1 ||
      slist_add(&headers, "Expect:") == -1)
    goto out;

  curl_easy_reset(h);
  curl_easy_setopt(h, CURLOPT_URL, url);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_PATH_AS_IS, 1L);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(h, CURLOPT_USERAGENT, "pilotlight");
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &t);
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
  /* Packs are megabytes: larger buffers mean fewer callbacks and syscalls. */
  curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 256L * 1024);
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
    curl_easy_setopt(h, CURLOPT_READDATA, &t);
    curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
    curl_easy_setopt(h, CURLOPT_SEEKDATA, &t);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)req->body_len);
    if (strcmp(req->method, "POST") == 0)
      curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "POST");
  } else if (strcmp(req->method, "GET") != 0) {
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req->method);
  }
  curl_msg[0] = 0;
  *code = curl_easy_perform(h);
  long status = 0;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
  if (status)
    resp->status = status;
  /* Never leave pointers to this call's stack or header list in the handle. */
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
  ret = 0;
out:
  sigv4_signature_free(&sig);
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
static int s3_perform(struct s3_store *s, const struct s3_request *req, struct s3_response *resp)
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
    response_reset(resp);
    resp->attempts = attempt + 1;
    if (exchange(s, conn, req, payload_hash, resp, &code, curl_msg) == -1) {
      conn_free(conn);
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
                req->method, where(s, req->key, w, sizeof w), s->endpoint,
                curl_msg[0] ? curl_msg : curl_easy_strerror(code));
      conn_free(conn);
      return -1;
    }
    /* A gateway whose storage is full (Ceph blocks writes to a full OSD)
     * or that is overloaded accepts connections and then says nothing. */
    if (code == CURLE_OPERATION_TIMEDOUT)
      set_error(ETIMEDOUT,
                "%s %s: no answer from the S3 endpoint %s within %ld s (%u attempt%s): check "
                "that it is up, not overloaded and not out of space; PILOTLIGHT_S3_TIMEOUT "
                "sets the limit (%s)",
                req->method, where(s, req->key, w, sizeof w), s->endpoint, s->timeout, attempt + 1,
                attempt ? "s" : "", curl_msg[0] ? curl_msg : curl_easy_strerror(code));
    else
      set_error(code == CURLE_COULDNT_CONNECT        ? ECONNREFUSED
                : code == CURLE_COULDNT_RESOLVE_HOST ? EHOSTUNREACH
                                                     : EIO,
                "%s %s: cannot reach the S3 endpoint %s: %s (%u attempt%s)", req->method,
                where(s, req->key, w, sizeof w), s->endpoint,
                curl_msg[0] ? curl_msg : curl_easy_strerror(code), attempt + 1, attempt ? "s" : "");
    /* A handle whose transfer failed may hold a broken connection. */
    conn_free(conn);
    return -1;
  }
  pool_put(s, conn);
  return 0;
}

/* Set the error for an unexpected HTTP answer and return -1. */
static int s3_fail(struct s3_store *s, const char *method, const char *key,
                   const struct s3_response *r)
{
  struct s3_error_info e;
  char w[512], rid[160] = "";
  int have = s3_error_parse(r->body, r->len, &e);
  const char *code = have && e.code[0] ? e.code : "";
  const char *request_id = have && e.request_id[0] ? e.request_id : r->request_id;
  if (request_id[0])
    snprintf(rid, sizeof rid, ", request id %s", request_id);
  where(s, key, w, sizeof w);

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

/* The full key of an object: prefix + key. Caller frees. */
static char *full_key(const struct s3_store *s, const char *key)
{
  char *k = NULL;
  if (asprintf(&k, "%s%s", s->prefix, key) == -1) {
    set_error(ENOMEM, "asprintf");
    return NULL;
  }
  return k;
}

/* Keep the current error across a clean-up step that may overwrite it. */
struct saved_error {
  int errnum;
  char msg[1024];
};

static void error_save(struct saved_error *se)
{
  se->errnum = get_errno();
  snprintf(se->msg, sizeof se->msg, "%s", get_error());
  if (se->errnum) {
    /* set_error appends ": strerror"; drop it so restoring does not repeat it. */
    const char *suffix = strerror(se->errnum);
    size_t ml = strlen(se->msg), sl = strlen(suffix);
    if (ml >= sl + 2 && strcmp(se->msg + ml - sl, suffix) == 0 &&
        memcmp(se->msg + ml - sl - 2, ": ", 2) == 0)
      se->msg[ml - sl - 2] = 0;
  }
}

static void error_restore(const struct saved_error *se)
{
  set_error(se->errnum, "%s", se->msg);
}

/* ---- operations ---- */

static int s3_head_key(struct s3_store *s, const char *fkey, uint64_t *size)
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
    set_error(ENOENT, "HEAD %s: not found", where(s, fkey, w, sizeof w));
  } else {
    s3_fail(s, "HEAD", fkey, &resp);
  }
  response_reset(&resp);
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
  md5_hex(buf, len, hex);
  snprintf(quoted, sizeof quoted, "\"%s\"", hex);
  int same_size = resp.status == 200 && resp.have_content_length && resp.content_length == len;
  int ours = same_size && (strcmp(resp.etag, quoted) == 0 || strcmp(resp.etag, hex) == 0);
  response_reset(&resp);
  if (same_size && !ours) {
    /* The ETag is not always the MD5 (server-side encryption): compare bytes. */
    struct s3_request get = {.method = "GET", .key = fkey, .max = len};
    if (s3_perform(s, &get, &resp) == -1)
      return 0;
    ours = resp.status == 200 && !resp.too_big && resp.len == len &&
           (len == 0 || memcmp(resp.body, buf, len) == 0);
    response_reset(&resp);
  }
  return ours;
}

static int put_single(struct s3_store *s, const char *fkey, const void *buf, size_t len,
                      unsigned flags)
{
  struct s3_response resp;
  int ret = -1;
  /* The SHA-256 is computed anyway for the signature; sending it as the
   * checksum costs nothing, where Content-MD5 would cost a second pass. */
  struct s3_request req = {
      .method = "PUT",
      .key = fkey,
      .body = buf,
      .body_len = len,
      .checksum_sha256 = 1,
      .if_none_match = (flags & STORE_PUT_EXCL) != 0,
      .fresh_connect = (flags & STORE_PUT_EXCL) != 0,
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
      set_error(EEXIST, "PUT %s: already exists", where(s, fkey, w, sizeof w));
    }
  } else {
    s3_fail(s, "PUT", fkey, &resp);
  }
  response_reset(&resp);
  return ret;
}

static void abort_upload(struct s3_store *s, const char *fkey, const char *query)
{
  struct saved_error se;
  struct s3_response resp;
  struct s3_request req = {.method = "DELETE", .key = fkey, .query = query, .max = ERROR_BODY_MAX};
  error_save(&se);
  if (s3_perform(s, &req, &resp) == 0)
    response_reset(&resp);
  error_restore(&se);
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
      if (hexval(e[2 * j]) < 0 || hexval(e[2 * j + 1]) < 0)
        goto out;
      md5s[16 * i + (size_t)j] = (unsigned char)(hexval(e[2 * j]) << 4 | hexval(e[2 * j + 1]));
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
  response_reset(&resp);
out:
  free(md5s);
  return ok;
}

static int put_multipart(struct s3_store *s, const char *fkey, const void *buf, size_t len,
                         unsigned flags)
{
  struct s3_response resp = {0};
  char *upload_id = NULL, *enc_id = NULL, *id_query = NULL, *complete = NULL;
  char(*etags)[128] = NULL;
  size_t complete_len = 0;
  FILE *f = NULL;
  int ret = -1, started = 0;
  char w[512];

  uint64_t part = s->part_size;
  while ((len + part - 1) / part > MAX_PARTS)
    part *= 2;
  size_t nparts = (size_t)((len + part - 1) / part);

  if (flags & STORE_PUT_EXCL) {
    uint64_t size;
    if (s3_head_key(s, fkey, &size) == 0) {
      set_error(EEXIST, "PUT %s: already exists", where(s, fkey, w, sizeof w));
      return -1;
    }
    if (get_errno() != ENOENT)
      return -1;
  }

  struct s3_request init = {
      .method = "POST", .key = fkey, .query = "uploads=", .max = ERROR_BODY_MAX};
  if (s3_perform(s, &init, &resp) == -1)
    goto out;
  if (resp.status != 200) {
    s3_fail(s, "POST (CreateMultipartUpload)", fkey, &resp);
    goto out;
  }
  upload_id = s3_upload_id_parse(resp.body, resp.len);
  if (!upload_id) {
    prefix_error("POST %s", where(s, fkey, w, sizeof w));
    goto out;
  }
  response_reset(&resp);
  started = 1;
  enc_id = sigv4_uri_encode(upload_id, strlen(upload_id), 0);
  if (!enc_id || asprintf(&id_query, "uploadId=%s", enc_id) == -1) {
    id_query = NULL;
    set_error(ENOMEM, "multipart upload");
    goto out;
  }
  etags = calloc(nparts, sizeof *etags);
  if (!etags) {
    set_error(errno, "calloc");
    goto out;
  }
  for (size_t i = 0; i < nparts; i++) {
    char query[512], md5[32];
    size_t off = (size_t)(i * part);
    size_t plen = len - off < part ? len - off : (size_t)part;
    /* Parameters in canonical order: partNumber < uploadId. */
    snprintf(query, sizeof query, "partNumber=%zu&%s", i + 1, id_query);
    md5_base64((const char *)buf + off, plen, md5);
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
    response_reset(&resp);
  }

  f = open_memstream(&complete, &complete_len);
  if (!f) {
    set_error(errno, "open_memstream");
    goto out;
  }
  fputs("<CompleteMultipartUpload>", f);
  for (size_t i = 0; i < nparts; i++) {
    fprintf(f, "<Part><PartNumber>%zu</PartNumber><ETag>", i + 1);
    for (const char *c = etags[i]; *c; c++) {
      if (*c == '&')
        fputs("&amp;", f);
      else if (*c == '<')
        fputs("&lt;", f);
      else if (*c == '>')
        fputs("&gt;", f);
      else
        fputc(*c, f);
    }
    fputs("</ETag></Part>", f);
  }
  fputs("</CompleteMultipartUpload>", f);
  if (fclose(f) != 0) {
    f = NULL;
    set_error(errno, "multipart upload");
    goto out;
  }
  f = NULL;
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
  struct s3_error_info einfo;
  /* CompleteMultipartUpload can fail after its 200 status line. */
  if (resp.status == 200 && !s3_error_parse(resp.body, resp.len, &einfo)) {
    ret = 0;
  } else if (resp.status == 404 && resp.attempts > 1 &&
             s3_error_parse(resp.body, resp.len, &einfo) &&
             strcmp(einfo.code, "NoSuchUpload") == 0 &&
             multipart_landed(s, fkey, len, etags, nparts)) {
    /* An earlier attempt completed the upload; only its answer was lost. */
    ret = 0;
    started = 0;
  } else if (resp.status == 412) {
    set_error(EEXIST, "PUT %s: already exists", where(s, fkey, w, sizeof w));
  } else {
    if (resp.status == 200)
      resp.status = 500;
    s3_fail(s, "POST (CompleteMultipartUpload)", fkey, &resp);
  }
out:
  if (f)
    fclose(f);
  response_reset(&resp);
  if (ret == -1 && started && id_query)
    abort_upload(s, fkey, id_query);
  free(upload_id);
  free(enc_id);
  free(id_query);
  free(complete);
  free(etags);
  return ret;
}

static int s3_put(struct store *st, const char *key, const void *buf, size_t len, unsigned flags)
{
  struct s3_store *s = (struct s3_store *)st;
  char *fkey = full_key(s, key);
  if (!fkey)
    return -1;
  /* A conditional create stays one PUT up to S3's 5 GiB limit: not every
   * server honours If-None-Match on CompleteMultipartUpload (Ceph 16 does
   * not), and one PUT is atomic everywhere. */
  int multipart = (uint64_t)len > s->multipart_threshold &&
                  (!(flags & STORE_PUT_EXCL) || (uint64_t)len > MAX_SINGLE_PUT);
  int r =
      multipart ? put_multipart(s, fkey, buf, len, flags) : put_single(s, fkey, buf, len, flags);
  free(fkey);
  return r;
}

static int s3_get(struct store *st, const char *key, size_t max, void **bufp, size_t *lenp)
{
  struct s3_store *s = (struct s3_store *)st;
  struct s3_response resp;
  char w[512];
  int ret = -1;
  char *fkey = full_key(s, key);
  if (!fkey)
    return -1;
  struct s3_request req = {.method = "GET", .key = fkey, .max = max};
  if (s3_perform(s, &req, &resp) == -1)
    goto out;
  if (resp.too_big) {
    set_error(EFBIG, "GET %s: object is larger than the %zu bytes allowed",
              where(s, fkey, w, sizeof w), max);
  } else if (resp.status == 200) {
    if (!resp.body) {
      resp.body = malloc(1);
      if (!resp.body) {
        set_error(errno, "malloc");
        goto out;
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
      set_error(ENOENT, "GET %s: not found", where(s, fkey, w, sizeof w));
  } else {
    s3_fail(s, "GET", fkey, &resp);
  }
  response_reset(&resp);
out:
  free(fkey);
  return ret;
}

static int s3_get_range(struct store *st, const char *key, uint64_t off, size_t len, void *buf)
{
  struct s3_store *s = (struct s3_store *)st;
  struct s3_response resp;
  char w[512], range[64];
  int ret = -1;
  if (len == 0)
    return 0;
  char *fkey = full_key(s, key);
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
    response_reset(&resp);
    req.skip = off;
    if (s3_perform(s, &req, &resp) == -1)
      goto out;
  }
  where(s, fkey, w, sizeof w);
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
  response_reset(&resp);
out:
  free(fkey);
  return ret;
}

static int s3_head(struct store *st, const char *key, uint64_t *size)
{
  struct s3_store *s = (struct s3_store *)st;
  char *fkey = full_key(s, key);
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
  char *fkey = full_key(s, key);
  if (!fkey)
    return -1;
  struct s3_request req = {.method = "DELETE", .key = fkey, .max = ERROR_BODY_MAX};
  if (s3_perform(s, &req, &resp) == -1)
    goto out;
  if (resp.status == 204 || resp.status == 200 || resp.status == 404)
    ret = 0;
  else
    s3_fail(s, "DELETE", fkey, &resp);
  response_reset(&resp);
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

  fprefix = full_key(s, prefix);
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
      set_error(EFBIG, "LIST %s: reply larger than %u bytes", where(s, fprefix, w, sizeof w),
                S3_XML_MAX_BODY);
      goto out;
    }
    if (resp.status != 200) {
      s3_fail(s, "LIST", fprefix, &resp);
      goto out;
    }
    if (s3_list_page_parse(resp.body, resp.len, &page) == -1) {
      prefix_error("LIST %s", where(s, fprefix, w, sizeof w));
      goto out;
    }
    response_reset(&resp);
    for (size_t i = 0; i < page.nentries; i++) {
      const char *k = page.entries[i].key;
      if (strncmp(k, fprefix, strlen(fprefix)) != 0)
        continue; /* not ours: a server that ignored the prefix */
      if (cb(opaque, k + plen, page.entries[i].size) == -1)
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
                where(s, fprefix, w, sizeof w));
      goto out;
    }
    free(enc_token);
    enc_token = next;
    s3_list_page_free(&page);
  }
  ret = 0;
out:
  s3_list_page_free(&page);
  response_reset(&resp);
  free(fprefix);
  free(enc_prefix);
  free(enc_token);
  free(query);
  return ret;
}

static void s3_free(struct store *st)
{
  struct s3_store *s = (struct s3_store *)st;
  if (!s)
    return;
  for (size_t i = 0; i < s->nidle; i++)
    conn_free(s->idle[i]);
  pthread_mutex_destroy(&s->lock);
  s3_config_free(&s->cfg);
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
  response_reset(&resp);
out:
  free(enc);
  free(query);
  return ret;
}

struct store *s3_store_open(const char *location, int create)
{
  struct s3_store *s = calloc(1, sizeof *s);
  char *endpoint = NULL;
  uint64_t v;
  if (!s) {
    set_error(errno, "calloc");
    return NULL;
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

  /* Location: s3://BUCKET/PREFIX or s3:http(s)://HOST[:PORT]/BUCKET/PREFIX. */
  if (strncmp(location, "s3://", 5) == 0) {
    if (split_bucket(s, location + 5, location) == -1)
      goto fail;
  } else if (strncmp(location, "s3:http://", 10) == 0 ||
             strncmp(location, "s3:https://", 11) == 0) {
    const char *url = location + 3;
    const char *hoststart = strstr(url, "://") + 3;
    const char *slash = strchr(hoststart, '/');
    if (!slash || slash == hoststart) {
      set_error(EINVAL, "%s: expected s3:http(s)://HOST[:PORT]/BUCKET/PREFIX", location);
      goto fail;
    }
    endpoint = strndup(url, (size_t)(slash - url));
    if (!endpoint) {
      set_error(errno, "strndup");
      goto fail;
    }
    if (split_bucket(s, slash + 1, location) == -1)
      goto fail;
  } else {
    set_error(EINVAL, "%s: expected s3://BUCKET/PREFIX or s3:http(s)://HOST[:PORT]/BUCKET/PREFIX",
              location);
    goto fail;
  }

  if (s3_config_load(&s->cfg) == -1)
    goto fail;
  if (!endpoint && s->cfg.endpoint) {
    endpoint = strdup(s->cfg.endpoint);
    if (!endpoint) {
      set_error(errno, "strdup");
      goto fail;
    }
  }

  /* Addressing: path style for custom endpoints, virtual-hosted for AWS
   * (except bucket names with dots, which break TLS name checks). */
  const char *addressing = getenv("PILOTLIGHT_S3_ADDRESSING");
  int aws = endpoint == NULL;
  if (addressing && addressing[0]) {
    if (strcmp(addressing, "path") == 0) {
      s->path_style = 1;
    } else if (strcmp(addressing, "virtual") == 0) {
      s->path_style = 0;
    } else {
      set_error(EINVAL, "PILOTLIGHT_S3_ADDRESSING=%s: expected path or virtual", addressing);
      goto fail;
    }
  } else {
    s->path_style = !aws || strchr(s->bucket, '.') != NULL;
  }
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
      goto fail;
    }
    hostport = endpoint + strlen(scheme);
    if (!hostport[0] || strchr(hostport, '/')) {
      set_error(EINVAL, "S3 endpoint %s: expected http(s)://HOST[:PORT] without a path", endpoint);
      goto fail;
    }
  }
  if (asprintf(&s->host, "%s%s%s", s->path_style ? "" : s->bucket, s->path_style ? "" : ".",
               hostport) == -1 ||
      asprintf(&s->endpoint, "%s%s", scheme, s->host) == -1) {
    set_error(ENOMEM, "asprintf");
    goto fail;
  }

  if (parse_u64_env("PILOTLIGHT_S3_RETRIES", 6, 0, &v) == -1)
    goto fail;
  s->retries = v > 100 ? 100 : (unsigned)v;
  if (parse_u64_env("PILOTLIGHT_S3_TIMEOUT", 60, 1, &v) == -1)
    goto fail;
  s->timeout = v > 86400 ? 86400 : (long)v;
  if (parse_u64_env("PILOTLIGHT_S3_BACKOFF_MS", 100, 0, &v) == -1)
    goto fail;
  s->backoff_ms = v > 60000 ? 60000 : (long)v;
  if (parse_u64_env("PILOTLIGHT_S3_PART_SIZE", 16ull << 20, MIN_PART_SIZE, &s->part_size) == -1)
    goto fail;
  if (parse_u64_env("PILOTLIGHT_S3_MULTIPART_THRESHOLD", 64ull << 20, MIN_PART_SIZE,
                    &s->multipart_threshold) == -1)
    goto fail;

  if (parse_u64_env("PILOTLIGHT_S3_LIST_MAX_KEYS", 0, 0, &v) == -1)
    goto fail;
  s->list_max_keys = v > 1000 ? 1000 : (unsigned)v;

  if (create && check_bucket(s) == -1)
    goto fail;
  free(endpoint);
  return &s->base;
fail:
  free(endpoint);
  s3_free(&s->base);
  return NULL;
}
