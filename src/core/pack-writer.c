/* The pack writer: producers append chunks to one open pack under a lock; a
 * full pack goes through a bounded queue to the uploader threads, which
 * store it and update the chunk index. Owns the pack buffers and threads. */
#include "pack-writer.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../store/store.h"
#include "../util/error-slot.h"
#include "../util/error.h"
#include "../util/hash.h"
#include "repo-internal.h"

#define PACK_TARGET (16u << 20)
#define QUEUE_MAX 1

struct pack_buf {
  VEC(uint8_t) data;
  VEC(struct chunk_entry) entries;
};

struct pack_writer {
  struct store *store;
  struct chunk_index *ix;
  const struct repo_keys *keys; /* seals trailers; NULL in a clear repository */
  pthread_t up[PACK_WRITER_MAX_UPLOADERS];
  int nup; /* uploader threads running */

  pthread_mutex_t pack_lock;
  struct pack_buf *open_pack;

  pthread_mutex_t q_lock;
  pthread_cond_t q_cond;
  struct pack_buf *queue[QUEUE_MAX];
  size_t qlen;
  int q_closed; /* no more packs: uploaders exit once the queue is empty */
  int q_drop;   /* uploaders exit now, leaving the queue */
  /* Stored packs' buffers, kept for the next packs: reusing them saves
   * faulting in and zeroing 16 MiB of fresh memory per pack. */
  struct pack_buf *spare[PACK_WRITER_MAX_UPLOADERS + 2];
  size_t nspare;

  struct error_slot failed; /* the first upload failure */
};

static void pack_buf_free(struct pack_buf *p)
{
  if (p) {
    vec_free(&p->data);
    vec_free(&p->entries);
    free(p);
  }
}

/* Record this thread's error as the writer's, unless one came first. */
static void fail(struct pack_writer *pw)
{
  error_slot_set_from_current(&pw->failed);
  /* Wake anyone waiting on the queue so they notice. */
  pthread_mutex_lock(&pw->q_lock);
  pthread_cond_broadcast(&pw->q_cond);
  pthread_mutex_unlock(&pw->q_lock);
}

/* ---- the upload queue ------------------------------------------------ */

static int enqueue(struct pack_writer *pw, struct pack_buf *p)
{
  pthread_mutex_lock(&pw->q_lock);
  while (pw->qlen == QUEUE_MAX && !error_slot_failed(&pw->failed))
    pthread_cond_wait(&pw->q_cond, &pw->q_lock);
  if (error_slot_failed(&pw->failed)) {
    pthread_mutex_unlock(&pw->q_lock);
    pack_buf_free(p);
    return error_slot_restore(&pw->failed);
  }
  pw->queue[pw->qlen++] = p;
  pthread_cond_broadcast(&pw->q_cond);
  pthread_mutex_unlock(&pw->q_lock);
  return 0;
}

static struct pack_buf *dequeue(struct pack_writer *pw)
{
  struct pack_buf *p = NULL;
  pthread_mutex_lock(&pw->q_lock);
  while (pw->qlen == 0 && !pw->q_closed && !pw->q_drop && !error_slot_failed(&pw->failed))
    pthread_cond_wait(&pw->q_cond, &pw->q_lock);
  if (pw->qlen > 0 && !pw->q_drop && !error_slot_failed(&pw->failed)) {
    p = pw->queue[0];
    memmove(pw->queue, pw->queue + 1, (pw->qlen - 1) * sizeof *pw->queue);
    pw->qlen--;
    pthread_cond_broadcast(&pw->q_cond);
  }
  pthread_mutex_unlock(&pw->q_lock);
  return p;
}

/* ---- uploads ----------------------------------------------------------- */

/* Seal a pack (append its trailer), store it under its hash, and point its
 * chunks' index entries at it. */
static int upload_pack(struct pack_writer *pw, struct pack_buf *p)
{
  uint8_t *trailer = NULL, h[HASH_LEN];
  size_t tlen;
  char key[PACK_KEY_LEN];
  int ret = -1;
  if (pack_trailer_encode(p->entries.v, p->entries.len, pw->keys, &trailer, &tlen) == -1)
    return -1;
  if (vec_reserve(&p->data, tlen) == -1)
    goto out;
  memcpy(p->data.v + p->data.len, trailer, tlen);
  p->data.len += tlen;
  /* The trailer names every chunk by the hash of its content, so hashing it
   * names the pack without a second pass over the data. */
  sha256(trailer, tlen, h);
  pack_key(h, key);
  if (store_put(pw->store, key, p->data.v, p->data.len, 0) == -1)
    goto out;
  pthread_mutex_lock(&pw->ix->lock);
  int64_t ord = chunk_index_pack(pw->ix, h);
  for (size_t i = 0; ord != -1 && i < p->entries.len; i++) {
    struct index_slot *s = chunk_index_find(pw->ix, p->entries.v[i].hash);
    if (!s)
      continue;
    s->pack = (uint32_t)ord;
    s->offset = p->entries.v[i].offset;
    s->stored_len = p->entries.v[i].stored_len;
    s->raw_len = p->entries.v[i].raw_len;
    s->type = p->entries.v[i].type;
    s->comp = p->entries.v[i].comp;
    s->indexed = 0;
  }
  pthread_mutex_unlock(&pw->ix->lock);
  ret = ord == -1 ? -1 : 0;
out:
  free(trailer);
  return ret;
}

/* Keep p's buffer for a later pack, or free it. */
static void recycle(struct pack_writer *pw, struct pack_buf *p)
{
  pthread_mutex_lock(&pw->q_lock);
  if (pw->nspare < sizeof pw->spare / sizeof *pw->spare) {
    p->data.len = 0;
    p->entries.len = 0;
    pw->spare[pw->nspare++] = p;
    p = NULL;
  }
  pthread_mutex_unlock(&pw->q_lock);
  pack_buf_free(p);
}

/* A pack buffer with its header written: a spare one, or a new one. */
static struct pack_buf *pack_buf_get(struct pack_writer *pw)
{
  struct pack_buf *p = NULL;
  pthread_mutex_lock(&pw->q_lock);
  if (pw->nspare > 0)
    p = pw->spare[--pw->nspare];
  pthread_mutex_unlock(&pw->q_lock);
  if (!p) {
    p = calloc(1, sizeof *p);
    if (!p || vec_reserve(&p->data, PACK_TARGET + MAX_BLOCK_SIZE / 8) == -1) {
      pack_buf_free(p);
      set_error(ENOMEM, "pack buffer");
      return NULL;
    }
  }
  memcpy(p->data.v, PACK_MAGIC, PACK_HEADER_LEN);
  p->data.len = PACK_HEADER_LEN;
  return p;
}

static void *uploader(void *arg)
{
  struct pack_writer *pw = arg;
  struct pack_buf *p;
  while ((p = dequeue(pw)) != NULL) {
    if (upload_pack(pw, p) == -1)
      fail(pw);
    recycle(pw, p);
  }
  return NULL;
}

/* ---- the public interface ---------------------------------------------- */

struct pack_writer *pack_writer_new(struct store *s, struct chunk_index *ix,
                                    const struct repo_keys *keys, int nuploaders)
{
  assert(nuploaders >= 1 && nuploaders <= PACK_WRITER_MAX_UPLOADERS);
  struct pack_writer *pw = calloc(1, sizeof *pw);
  if (!pw) {
    set_error(errno, "calloc");
    return NULL;
  }
  pw->store = s;
  pw->ix = ix;
  pw->keys = keys;
  pthread_mutex_init(&pw->pack_lock, NULL);
  pthread_mutex_init(&pw->q_lock, NULL);
  error_slot_init(&pw->failed);
  pthread_cond_init(&pw->q_cond, NULL);
  for (; pw->nup < nuploaders; pw->nup++) {
    int rc = pthread_create(&pw->up[pw->nup], NULL, uploader, pw);
    if (rc != 0) {
      set_error(rc, "pthread_create");
      pack_writer_free(pw);
      return NULL;
    }
  }
  return pw;
}

int pack_writer_add(struct pack_writer *pw, const uint8_t h[HASH_LEN], uint8_t type, uint8_t comp,
                    const void *data, uint32_t stored_len, uint32_t raw_len)
{
  struct pack_buf *sealed = NULL;
  int ret = -1;
  pthread_mutex_lock(&pw->pack_lock);
  if (!pw->open_pack) {
    pw->open_pack = pack_buf_get(pw);
    if (!pw->open_pack)
      goto out;
  }
  struct pack_buf *p = pw->open_pack;
  struct chunk_entry e = {.type = type,
                          .comp = comp,
                          .stored_len = stored_len,
                          .raw_len = raw_len,
                          .offset = p->data.len};
  memcpy(e.hash, h, HASH_LEN);
  if (vec_reserve(&p->data, stored_len) == -1 || vec_push(&p->entries, e) == -1)
    goto out;
  memcpy(p->data.v + p->data.len, data, stored_len);
  p->data.len += stored_len;
  if (p->data.len >= PACK_TARGET) {
    sealed = p;
    pw->open_pack = NULL;
  }
  ret = 0;
out:
  pthread_mutex_unlock(&pw->pack_lock);
  if (sealed && enqueue(pw, sealed) == -1)
    return -1;
  return ret;
}

int pack_writer_flush(struct pack_writer *pw)
{
  struct pack_buf *p;
  pthread_mutex_lock(&pw->pack_lock);
  p = pw->open_pack;
  pw->open_pack = NULL;
  pthread_mutex_unlock(&pw->pack_lock);
  return p ? enqueue(pw, p) : 0;
}

int pack_writer_failed(const struct pack_writer *pw)
{
  return atomic_load(&pw->failed.failed); /* error_slot_failed, for a const writer */
}

int pack_writer_finish(struct pack_writer *pw)
{
  if (pack_writer_flush(pw) == -1)
    fail(pw);
  pthread_mutex_lock(&pw->q_lock);
  pw->q_closed = 1;
  pthread_cond_broadcast(&pw->q_cond);
  pthread_mutex_unlock(&pw->q_lock);
  for (; pw->nup > 0; pw->nup--)
    pthread_join(pw->up[pw->nup - 1], NULL);
  return error_slot_restore(&pw->failed);
}

void pack_writer_free(struct pack_writer *pw)
{
  if (!pw)
    return;
  pthread_mutex_lock(&pw->q_lock);
  pw->q_drop = 1;
  pthread_cond_broadcast(&pw->q_cond);
  pthread_mutex_unlock(&pw->q_lock);
  for (; pw->nup > 0; pw->nup--)
    pthread_join(pw->up[pw->nup - 1], NULL);
  pack_buf_free(pw->open_pack);
  for (size_t i = 0; i < pw->qlen; i++)
    pack_buf_free(pw->queue[i]);
  for (size_t i = 0; i < pw->nspare; i++)
    pack_buf_free(pw->spare[i]);
  pthread_mutex_destroy(&pw->pack_lock);
  pthread_mutex_destroy(&pw->q_lock);
  error_slot_destroy(&pw->failed);
  pthread_cond_destroy(&pw->q_cond);
  free(pw);
}
