/* NBD source, read through libnbd: qcow2, VMDK and VHD served by qemu-nbd or
 * qemu-storage-daemon, raw files served by nbdkit. Size comes from the
 * server, allocation from the base:allocation meta context. */
#define _GNU_SOURCE
#include "source.h"

#include <errno.h>
#include <libnbd.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../util/error.h"
#include "nbd-source.h"

/* Each read is cut into pieces of this size, all sent before waiting, so
 * several requests are in flight even on one connection. */
#define PIECE_SIZE (256u * 1024)
/* Connections opened at most when the server allows multi-conn. */
#define MAX_CONNS 4

struct nbd_conn {
  struct nbd_handle *h;
  struct nbd_conn *next;
};

struct nbd_source {
  struct source base;
  char *uri; /* owned; base.name may be renamed by the caller */
  pthread_mutex_t lock;
  pthread_cond_t cond;
  struct nbd_conn *idle; /* connections not in use; owned */
  unsigned nconns;       /* open connections, idle or in use */
  unsigned max_conns;
  uint64_t piece;  /* bytes per request */
  int have_alloc;  /* the server offers base:allocation */
  char *extra_ctx; /* another meta context every connection asks for; owned */
  const char *contexts[3];
};

struct nbd_handle *nbd_source_connect(const char *uri, const char *const *contexts)
{
  return nbd_source_connect_timeout(uri, contexts, -1);
}

static int64_t now_ms(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct nbd_handle *nbd_source_connect_timeout(const char *uri, const char *const *contexts,
                                              int timeout_ms)
{
  struct nbd_handle *h = nbd_create();
  if (!h) {
    set_error(0, "%s: %s", uri, nbd_get_error());
    return NULL;
  }
  for (size_t i = 0; contexts && contexts[i]; i++) {
    if (nbd_add_meta_context(h, contexts[i]) == -1)
      goto fail;
  }
  if (nbd_set_uri_allow_local_file(h, false) == -1)
    goto fail;
  if (timeout_ms < 0) {
    if (nbd_connect_uri(h, uri) == -1)
      goto fail;
    return h;
  }
  if (nbd_aio_connect_uri(h, uri) == -1)
    goto fail;
  int64_t deadline = now_ms() + timeout_ms;
  while (nbd_aio_is_connecting(h) == 1) {
    int64_t left = deadline - now_ms();
    if (left <= 0) {
      set_error(ETIMEDOUT, "%s: the NBD server did not answer a new connection", uri);
      nbd_close(h);
      return NULL;
    }
    if (nbd_poll(h, (int)left) == -1)
      goto fail;
  }
  if (nbd_aio_is_ready(h) != 1) {
    set_error(0, "%s: cannot connect to the NBD server: %s", uri,
              nbd_get_error() ? nbd_get_error() : "handshake failed");
    nbd_close(h);
    return NULL;
  }
  return h;
fail:
  set_error(0, "%s: cannot connect to the NBD server: %s", uri, nbd_get_error());
  nbd_close(h);
  return NULL;
}

struct walk_state {
  const char *ctx;
  uint32_t mask, want;
  uint64_t end;              /* of the whole walk */
  uint64_t pos;              /* covered so far */
  uint64_t run_off, run_len; /* pending selected run, merged across replies */
  extent_cb cb;
  void *opaque;
  int failed;
};

static int walk_extent(void *user_data, const char *metacontext, uint64_t offset, uint32_t *entries,
                       size_t nr_entries, int *error)
{
  struct walk_state *w = user_data;
  if (w->failed || strcmp(metacontext, w->ctx) != 0)
    return 0;
  if (offset != w->pos) {
    /* A reply that does not start where the last one ended: never guess. */
    set_error(EPROTO, "block status reply at offset %llu, expected %llu",
              (unsigned long long)offset, (unsigned long long)w->pos);
    w->failed = 1;
    *error = EPROTO;
    return -1;
  }
  for (size_t i = 0; i + 1 < nr_entries; i += 2) {
    uint64_t len = entries[i];
    uint32_t flags = entries[i + 1];
    if (len == 0 || w->pos >= w->end)
      break;
    if (len > w->end - w->pos)
      len = w->end - w->pos;
    if ((flags & w->mask) == w->want) {
      if (w->run_len && w->run_off + w->run_len == w->pos) {
        w->run_len += len;
      } else {
        if (w->run_len && w->cb(w->opaque, w->run_off, w->run_len) == -1) {
          w->failed = 1;
          *error = EIO;
          return -1;
        }
        w->run_off = w->pos;
        w->run_len = len;
      }
    }
    w->pos += len;
  }
  return 0;
}

int nbd_source_walk(struct nbd_handle *h, const char *ctx, uint64_t off, uint64_t len,
                    uint32_t mask, uint32_t want, extent_cb cb, void *opaque, const char *name)
{
  /* Under 4 GiB a request, and a multiple of any alignment a server uses. */
  const uint64_t max_req = 2ull << 30;
  struct walk_state w = {.ctx = ctx,
                         .mask = mask,
                         .want = want,
                         .end = off + len,
                         .pos = off,
                         .cb = cb,
                         .opaque = opaque};
  while (w.pos < w.end) {
    uint64_t before = w.pos;
    uint64_t n = w.end - w.pos < max_req ? w.end - w.pos : max_req;
    nbd_extent_callback ecb = {.callback = walk_extent, .user_data = &w};
    if (nbd_block_status(h, n, w.pos, ecb, 0) == -1) {
      if (!w.failed)
        set_error(0, "%s: block status of %s at offset %llu: %s", name, ctx,
                  (unsigned long long)before, nbd_get_error());
      else
        prefix_error("%s: %s", name, ctx);
      return -1;
    }
    if (w.failed) {
      prefix_error("%s: %s", name, ctx);
      return -1;
    }
    if (w.pos == before) {
      set_error(EPROTO, "%s: the server reported no extents for %s at offset %llu", name, ctx,
                (unsigned long long)before);
      return -1;
    }
  }
  if (w.run_len && cb(opaque, w.run_off, w.run_len) == -1)
    return -1;
  return 0;
}

/* Take a connection for this thread: an idle one, a new one when the server
 * allows more, or wait for one to come back. A server may offer multi-conn
 * yet serve fewer clients (qemu-nbd --shared=2): a new connection that gets
 * no answer in time stops the pool from growing instead of failing. */
static struct nbd_conn *conn_get(struct nbd_source *ns)
{
  for (;;) {
    struct nbd_conn *c = NULL;
    int extra;
    pthread_mutex_lock(&ns->lock);
    while (!ns->idle && ns->nconns >= ns->max_conns && ns->nconns > 0)
      pthread_cond_wait(&ns->cond, &ns->lock);
    if (ns->idle) {
      c = ns->idle;
      ns->idle = c->next;
      pthread_mutex_unlock(&ns->lock);
      return c;
    }
    extra = ns->nconns > 0;
    ns->nconns++;
    pthread_mutex_unlock(&ns->lock);
    c = calloc(1, sizeof *c);
    if (!c)
      set_error(errno, "calloc");
    else
      c->h = nbd_source_connect_timeout(ns->uri, ns->contexts, extra ? 3000 : -1);
    if (c && c->h)
      return c;
    free(c);
    pthread_mutex_lock(&ns->lock);
    ns->nconns--;
    if (extra && ns->nconns > 0)
      ns->max_conns = ns->nconns;
    pthread_cond_broadcast(&ns->cond);
    pthread_mutex_unlock(&ns->lock);
    if (!extra)
      return NULL;
  }
}

/* Give a connection back; a connection that failed is closed instead, so a
 * broken socket is never reused. */
static void conn_put(struct nbd_source *ns, struct nbd_conn *c, int broken)
{
  pthread_mutex_lock(&ns->lock);
  if (broken) {
    ns->nconns--;
  } else {
    c->next = ns->idle;
    ns->idle = c;
  }
  pthread_cond_signal(&ns->cond);
  pthread_mutex_unlock(&ns->lock);
  if (broken) {
    nbd_close(c->h);
    free(c);
  }
}

static int nbd_src_pread(struct source *s, void *buf, size_t len, uint64_t off)
{
  struct nbd_source *ns = (struct nbd_source *)s;
  struct nbd_conn *c = conn_get(ns);
  int64_t cookies[64];
  size_t ncookies = 0, done = 0;
  int ret = -1;
  if (!c)
    return -1;
  while (done < len) {
    /* Send up to 64 pieces, then collect them all before sending more. */
    size_t start = done;
    ncookies = 0;
    while (done < len && ncookies < 64) {
      size_t n = len - done < ns->piece ? len - done : (size_t)ns->piece;
      int64_t ck = nbd_aio_pread(c->h, (char *)buf + done, n, off + done, NBD_NULL_COMPLETION, 0);
      if (ck == -1) {
        set_error(0, "%s: read at offset %llu: %s", s->name, (unsigned long long)(off + done),
                  nbd_get_error());
        goto out;
      }
      cookies[ncookies++] = ck;
      done += n;
    }
    for (size_t i = 0; i < ncookies; i++) {
      int r = nbd_aio_command_completed(c->h, (uint64_t)cookies[i]);
      while (r == 0) {
        if (nbd_poll(c->h, -1) == -1) {
          set_error(0, "%s: read at offset %llu: %s", s->name, (unsigned long long)(off + start),
                    nbd_get_error());
          goto out;
        }
        r = nbd_aio_command_completed(c->h, (uint64_t)cookies[i]);
      }
      if (r == -1) {
        set_error(0, "%s: read at offset %llu: %s", s->name, (unsigned long long)(off + start),
                  nbd_get_error());
        goto out;
      }
    }
  }
  ret = 0;
out:
  conn_put(ns, c, ret == -1);
  return ret;
}

static int nbd_src_allocated(struct source *s, uint64_t off, uint64_t len, extent_cb cb,
                             void *opaque)
{
  struct nbd_source *ns = (struct nbd_source *)s;
  struct nbd_conn *c;
  int ret;
  if (len == 0)
    return 0;
  if (!ns->have_alloc)
    return cb(opaque, off, len);
  c = conn_get(ns);
  if (!c)
    return -1;
  /* Holes that read as data (a fixed VHD reports "data,zero") are skipped:
   * only the ZERO bit matters. */
  ret = nbd_source_walk(c->h, LIBNBD_CONTEXT_BASE_ALLOCATION, off, len, LIBNBD_STATE_ZERO, 0, cb,
                        opaque, s->name);
  conn_put(ns, c, ret == -1 && nbd_aio_is_ready(c->h) != 1);
  return ret;
}

static void nbd_src_close(struct source *s)
{
  struct nbd_source *ns = (struct nbd_source *)s;
  struct nbd_conn *c = ns->idle;
  while (c) {
    struct nbd_conn *next = c->next;
    nbd_shutdown(c->h, 0);
    nbd_close(c->h);
    free(c);
    c = next;
  }
  pthread_mutex_destroy(&ns->lock);
  pthread_cond_destroy(&ns->cond);
  free(ns->uri);
  free(ns->extra_ctx);
  free(s->name);
  free(ns);
}

static const struct source_ops nbd_ops = {
    .name = "nbd",
    .pread = nbd_src_pread,
    .allocated = nbd_src_allocated,
    .close = nbd_src_close,
};

int nbd_source_meta_extents(struct source *s, const char *ctx, uint32_t mask, uint32_t want,
                            extent_cb cb, void *opaque)
{
  struct nbd_source *ns = (struct nbd_source *)s;
  struct nbd_conn *c;
  int ret;
  if (s->ops != &nbd_ops) {
    set_error(EINVAL, "%s: not an NBD source", s->name);
    return -1;
  }
  c = conn_get(ns);
  if (!c)
    return -1;
  if (nbd_can_meta_context(c->h, ctx) != 1) {
    conn_put(ns, c, 0);
    return 1;
  }
  ret = nbd_source_walk(c->h, ctx, 0, s->size, mask, want, cb, opaque, s->name);
  conn_put(ns, c, ret == -1 && nbd_aio_is_ready(c->h) != 1);
  return ret;
}

struct source *nbd_source_open(const char *uri)
{
  return nbd_source_open_ctx(uri, NULL);
}

struct source *nbd_source_open_ctx(const char *uri, const char *extra_ctx)
{
  struct nbd_source *ns = calloc(1, sizeof *ns);
  struct nbd_conn *c = NULL;
  int64_t size, maxb;
  if (!ns) {
    set_error(errno, "calloc");
    return NULL;
  }
  ns->base.ops = &nbd_ops;
  ns->base.remote = 1;
  pthread_mutex_init(&ns->lock, NULL);
  pthread_cond_init(&ns->cond, NULL);
  ns->base.name = strdup(uri);
  ns->uri = strdup(uri);
  ns->extra_ctx = extra_ctx ? strdup(extra_ctx) : NULL;
  c = calloc(1, sizeof *c);
  if (!ns->base.name || !ns->uri || !c || (extra_ctx && !ns->extra_ctx)) {
    set_error(errno, "calloc");
    goto fail;
  }
  ns->contexts[0] = LIBNBD_CONTEXT_BASE_ALLOCATION;
  ns->contexts[1] = ns->extra_ctx;
  c->h = nbd_source_connect(uri, ns->contexts);
  if (!c->h)
    goto fail;
  size = nbd_get_size(c->h);
  if (size == -1) {
    set_error(0, "%s: size: %s", uri, nbd_get_error());
    goto fail;
  }
  ns->base.size = (uint64_t)size;
  ns->have_alloc = nbd_can_meta_context(c->h, LIBNBD_CONTEXT_BASE_ALLOCATION) == 1;
  ns->max_conns = nbd_can_multi_conn(c->h) == 1 ? MAX_CONNS : 1;
  ns->piece = PIECE_SIZE;
  maxb = nbd_get_block_size(c->h, LIBNBD_SIZE_MAXIMUM);
  if (maxb > 0 && (uint64_t)maxb < ns->piece)
    ns->piece = (uint64_t)maxb;
  ns->nconns = 1;
  ns->idle = c;
  return &ns->base;
fail:
  if (c && c->h)
    nbd_close(c->h);
  free(c);
  nbd_src_close(&ns->base);
  return NULL;
}
