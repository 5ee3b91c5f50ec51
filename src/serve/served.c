/* The served snapshot: block map, overlay and the chunk cache.
 *
 * The cache holds whole blocks (verified, decompressed chunks), at most
 * cache_bytes of them, evicted least recently used first. A block being
 * fetched is an entry in state LOADING, so concurrent requests for it wait
 * for one fetch instead of each making their own. When reads move forward
 * along the disk, a readahead thread fetches the next blocks with
 * repo_read_blocks, which groups them by pack and reads them in parallel;
 * random reads fetch only the block they need. */
#include "served.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "overlay.h"
#include "util/error.h"
#include "util/hash.h"

enum { E_FREE, E_LOADING, E_READY };

struct entry {
  uint64_t block;
  uint8_t *data; /* malloc'd, or NULL */
  int state;
  int pins;
  struct entry *prev, *next; /* the LRU list of READY entries, newest first */
};

struct served {
  struct repo *r;
  struct snapshot *snap;
  struct blockmap map;
  struct overlay *ov;
  pthread_rwlock_t ov_lock; /* writers exclusive; readers look at the bitmap */

  pthread_mutex_t lock; /* everything below */
  pthread_cond_t cond;  /* an entry changed state or was unpinned; readahead has work */
  struct entry *entries;
  size_t nentries;
  int32_t *slot; /* per block: its entry, or -1 */
  struct entry **free_list;
  size_t nfree;
  struct entry *lru_head, *lru_tail;

  uint64_t ra_blocks;      /* blocks fetched ahead of a forward reader */
  uint64_t seq_next;       /* the block after the last read */
  uint64_t ra_from, ra_to; /* blocks still to fetch ahead */
  uint64_t *ra_list;
  pthread_t ra_thread;
  int ra_started, stop;

  _Atomic uint64_t reads, chunks, chunk_bytes, failed, hits;
  _Atomic int64_t first_read_ns;
};

int64_t served_now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void lru_unlink(struct served *s, struct entry *e)
{
  if (e->prev)
    e->prev->next = e->next;
  else
    s->lru_head = e->next;
  if (e->next)
    e->next->prev = e->prev;
  else
    s->lru_tail = e->prev;
  e->prev = e->next = NULL;
}

static void lru_push(struct served *s, struct entry *e)
{
  e->prev = NULL;
  e->next = s->lru_head;
  if (s->lru_head)
    s->lru_head->prev = e;
  s->lru_head = e;
  if (!s->lru_tail)
    s->lru_tail = e;
}

/* A free entry, evicting the least recently used unpinned block if need be;
 * NULL if every entry is loading or pinned. Under s->lock. */
static struct entry *claim(struct served *s)
{
  if (s->nfree)
    return s->free_list[--s->nfree];
  for (struct entry *e = s->lru_tail; e; e = e->prev)
    if (!e->pins) {
      lru_unlink(s, e);
      s->slot[e->block] = -1;
      e->state = E_FREE;
      return e;
    }
  return NULL;
}

static void release(struct served *s, struct entry *e)
{
  s->slot[e->block] = -1;
  e->state = E_FREE;
  s->free_list[s->nfree++] = e;
}

/* Block b, pinned, in the cache (fetched if need be); NULL with the error
 * set if it cannot be read. Unpin with unpin(). */
static struct entry *get_block(struct served *s, uint64_t b)
{
  pthread_mutex_lock(&s->lock);
  struct entry *e;
  for (;;) {
    int32_t i = s->slot[b];
    if (i >= 0) {
      e = &s->entries[i];
      if (e->state == E_READY) {
        e->pins++;
        lru_unlink(s, e);
        lru_push(s, e);
        s->hits++;
        pthread_mutex_unlock(&s->lock);
        return e;
      }
      pthread_cond_wait(&s->cond, &s->lock); /* another thread is fetching it */
      continue;
    }
    if ((e = claim(s)))
      break;
    pthread_cond_wait(&s->cond, &s->lock); /* every entry busy: wait for one */
  }
  e->block = b;
  e->state = E_LOADING;
  s->slot[b] = (int32_t)(e - s->entries);
  pthread_mutex_unlock(&s->lock);

  void *data = NULL;
  size_t len = 0, want = blockmap_block_len(&s->map, b);
  int ret = repo_read_chunk(s->r, s->map.h[b], &data, &len);
  if (ret == 0 && len != want) {
    set_error_code(EIO,
                   "chunk of block %llu has %zu bytes, the block map says %zu (damaged "
                   "repository): run pilotlight verify",
                   (unsigned long long)b, len, want);
    ret = -1;
  }
  pthread_mutex_lock(&s->lock);
  if (ret == 0) {
    free(e->data);
    e->data = data;
    e->state = E_READY;
    e->pins = 1;
    lru_push(s, e);
    s->chunks++;
    s->chunk_bytes += len;
  } else {
    free(data);
    release(s, e);
    s->failed++;
    e = NULL;
  }
  pthread_cond_broadcast(&s->cond);
  pthread_mutex_unlock(&s->lock);
  return e;
}

static void unpin(struct served *s, struct entry *e)
{
  pthread_mutex_lock(&s->lock);
  if (--e->pins == 0)
    pthread_cond_broadcast(&s->cond);
  pthread_mutex_unlock(&s->lock);
}

/* repo_read_blocks' callback for the readahead: fill the block's entry. */
static int ra_block(void *opaque, uint64_t block, const void *data, size_t len)
{
  struct served *s = opaque;
  pthread_mutex_lock(&s->lock);
  int32_t i = s->slot[block];
  if (i >= 0 && s->entries[i].state == E_LOADING) {
    struct entry *e = &s->entries[i];
    if (!e->data)
      e->data = malloc(s->map.block_size);
    if (e->data) {
      memcpy(e->data, data, len);
      e->state = E_READY;
      lru_push(s, e);
      s->chunks++;
      s->chunk_bytes += len;
      pthread_cond_broadcast(&s->cond);
    }
  }
  pthread_mutex_unlock(&s->lock);
  return 0;
}

static void *ra_main(void *opaque)
{
  struct served *s = opaque;
  pthread_mutex_lock(&s->lock);
  while (!s->stop) {
    if (s->ra_from >= s->ra_to) {
      pthread_cond_wait(&s->cond, &s->lock);
      continue;
    }
    uint64_t end = s->ra_to < s->ra_from + s->ra_blocks ? s->ra_to : s->ra_from + s->ra_blocks;
    size_t n = 0;
    for (uint64_t b = s->ra_from; b < end; b++) {
      if (blockmap_is_zero(&s->map, b) || s->slot[b] >= 0)
        continue;
      struct entry *e = claim(s);
      if (!e)
        break; /* the cache is busy: fetch less ahead */
      e->block = b;
      e->state = E_LOADING;
      s->slot[b] = (int32_t)(e - s->entries);
      s->ra_list[n++] = b;
    }
    s->ra_from = end;
    pthread_mutex_unlock(&s->lock);
    /* A failure here is not reported: the reader that needs the block
     * fetches it itself and gets the error. */
    repo_read_blocks(s->r, &s->map, s->ra_list, n, ra_block, s);
    pthread_mutex_lock(&s->lock);
    for (size_t k = 0; k < n; k++) {
      int32_t i = s->slot[s->ra_list[k]];
      if (i >= 0 && s->entries[i].state == E_LOADING)
        release(s, &s->entries[i]);
    }
    pthread_cond_broadcast(&s->cond);
  }
  pthread_mutex_unlock(&s->lock);
  return NULL;
}

/* A read of blocks [b0, b1]: when it continues the previous one, keep the
 * readahead window ahead of it. */
static void note_read(struct served *s, uint64_t b0, uint64_t b1)
{
  pthread_mutex_lock(&s->lock);
  int forward = b0 + 2 >= s->seq_next && b0 <= s->seq_next + 2;
  if (b1 + 1 > s->seq_next)
    s->seq_next = b1 + 1;
  if (forward && s->ra_blocks) {
    uint64_t to = b1 + 1 + s->ra_blocks;
    if (to > s->map.nblocks)
      to = s->map.nblocks;
    if (s->ra_to < b1 + 1 + s->ra_blocks / 2 && to > s->ra_to) {
      if (s->ra_from < b1 + 1)
        s->ra_from = b1 + 1; /* what is behind the reader is not wanted */
      s->ra_to = to;
      pthread_cond_broadcast(&s->cond);
    }
  }
  pthread_mutex_unlock(&s->lock);
}

/* Bytes [within, within + n) of block b of the snapshot (not the overlay). */
static int base_read(struct served *s, uint64_t b, size_t within, size_t n, uint8_t *p)
{
  if (blockmap_is_zero(&s->map, b)) {
    memset(p, 0, n);
    return 0;
  }
  struct entry *e = get_block(s, b);
  if (!e)
    return -1;
  memcpy(p, e->data + within, n);
  unpin(s, e);
  return 0;
}

/* The current content of [off, off + len), overlay over snapshot. locked:
 * the caller holds ov_lock for writing; else it is taken for reading
 * around each look at the overlay. */
static int read_range(struct served *s, uint8_t *p, uint64_t len, uint64_t off, int locked)
{
  const uint64_t bs = s->map.block_size;
  while (len) {
    uint64_t b = off / bs, bstart = b * bs;
    uint64_t n = bstart + blockmap_block_len(&s->map, b) - off;
    if (n > len)
      n = len;
    if (s->ov) {
      /* The run from off whose granules are all written, or all not. */
      if (!locked)
        pthread_rwlock_rdlock(&s->ov_lock);
      uint64_t g = off / OVERLAY_GRANULE;
      int written = overlay_has(s->ov, g);
      uint64_t run_end = (g + 1) * OVERLAY_GRANULE;
      while (run_end < off + n && overlay_has(s->ov, run_end / OVERLAY_GRANULE) == written)
        run_end += OVERLAY_GRANULE;
      if (run_end < off + n)
        n = run_end - off;
      int ret = written ? overlay_read(s->ov, p, n, off) : 0;
      if (!locked)
        pthread_rwlock_unlock(&s->ov_lock);
      if (ret == -1)
        return -1;
      if (written)
        goto next;
    }
    if (base_read(s, b, off - bstart, n, p) == -1)
      return -1;
  next:
    p += n;
    off += n;
    len -= n;
  }
  return 0;
}

static int check_range(const struct served *s, uint64_t count, uint64_t off)
{
  if (off > s->map.size || count > s->map.size - off) {
    set_error_code(EINVAL, "request past the end of the disk (%llu + %llu > %llu)",
                   (unsigned long long)off, (unsigned long long)count,
                   (unsigned long long)s->map.size);
    return -1;
  }
  return 0;
}

int served_pread(struct served *s, void *buf, uint32_t count, uint64_t off)
{
  int64_t zero = 0;
  s->reads++;
  if (!atomic_load_explicit(&s->first_read_ns, memory_order_relaxed))
    atomic_compare_exchange_strong(&s->first_read_ns, &zero, served_now_ns());
  if (check_range(s, count, off) == -1)
    return -1;
  if (!count)
    return 0;
  note_read(s, off / s->map.block_size, (off + count - 1) / s->map.block_size);
  return read_range(s, buf, count, off, 0);
}

int served_pwrite(struct served *s, const void *buf, uint32_t count, uint64_t off, int fua)
{
  if (!s->ov) {
    set_error_code(EROFS, "the export is read-only: serve it with --writable OVERLAY");
    return -1;
  }
  if (check_range(s, count, off) == -1)
    return -1;
  if (!count)
    return 0;
  /* Whole granules: the partial ones at either end are filled with what
   * they hold now. */
  uint64_t a0 = off / OVERLAY_GRANULE * OVERLAY_GRANULE;
  uint64_t a1 = (off + count + OVERLAY_GRANULE - 1) / OVERLAY_GRANULE * OVERLAY_GRANULE;
  if (a1 > s->map.size)
    a1 = s->map.size;
  uint8_t *tmp = malloc(a1 - a0);
  if (!tmp) {
    set_error(errno, "malloc");
    return -1;
  }
  int ret = 0;
  pthread_rwlock_wrlock(&s->ov_lock);
  if (off > a0) {
    uint64_t n = a1 - a0 < OVERLAY_GRANULE ? a1 - a0 : OVERLAY_GRANULE;
    ret = read_range(s, tmp, n, a0, 1);
  }
  if (ret == 0 && off + count < a1) {
    uint64_t t0 = (a1 - 1) / OVERLAY_GRANULE * OVERLAY_GRANULE;
    if (t0 > a0 || off == a0)
      ret = read_range(s, tmp + (t0 - a0), a1 - t0, t0, 1);
  }
  if (ret == 0) {
    memcpy(tmp + (off - a0), buf, count);
    ret = overlay_write(s->ov, tmp, a1 - a0, a0);
  }
  if (ret == 0 && fua)
    ret = overlay_flush(s->ov);
  pthread_rwlock_unlock(&s->ov_lock);
  free(tmp);
  return ret;
}

int served_flush(struct served *s)
{
  return s->ov ? overlay_flush(s->ov) : 0;
}

int served_extents(struct served *s, uint64_t off, uint64_t count,
                   int (*cb)(void *opaque, uint64_t off, uint64_t len, int zero), void *opaque)
{
  const uint64_t bs = s->map.block_size;
  if (check_range(s, count, off) == -1)
    return -1;
  uint64_t end = off + count, run = off;
  int run_zero = -1;
  if (s->ov)
    pthread_rwlock_rdlock(&s->ov_lock);
  for (uint64_t b = off / bs; b * bs < end; b++) {
    uint64_t bstart = b * bs, blen = blockmap_block_len(&s->map, b);
    int zero = blockmap_is_zero(&s->map, b) && !(s->ov && overlay_any(s->ov, bstart, blen));
    if (run_zero != -1 && zero != run_zero) {
      int ret = cb(opaque, run, bstart - run, run_zero);
      if (ret) {
        if (s->ov)
          pthread_rwlock_unlock(&s->ov_lock);
        return ret;
      }
      run = bstart;
    }
    run_zero = zero;
  }
  if (s->ov)
    pthread_rwlock_unlock(&s->ov_lock);
  return run_zero == -1 ? 0 : cb(opaque, run, end - run, run_zero);
}

struct served *served_open(const struct served_opts *o)
{
  struct served *s = calloc(1, sizeof *s);
  if (!s) {
    set_error(errno, "malloc");
    return NULL;
  }
  pthread_mutex_init(&s->lock, NULL);
  pthread_cond_init(&s->cond, NULL);
  pthread_rwlock_init(&s->ov_lock, NULL);
  if (!(s->r = repo_open(o->location, o->settings)) ||
      !(s->snap = repo_find_snapshot(s->r, o->disk, o->snapshot)) ||
      repo_load_blockmap(s->r, s->snap, &s->map) == -1)
    goto fail;
  if (o->overlay && !(s->ov = overlay_open(o->overlay, s->snap->disk, s->snap->id, s->map.size)))
    goto fail;
  uint64_t bs = s->map.block_size;
  uint64_t cache = o->cache_bytes ? o->cache_bytes : SERVED_DEFAULT_CACHE;
  uint64_t ra = o->readahead ? o->readahead : SERVED_DEFAULT_READAHEAD;
  s->ra_blocks = (ra + bs - 1) / bs;
  /* Room for the readahead window and a block per request thread. */
  s->nentries = cache / bs;
  if (s->nentries < s->ra_blocks + 64)
    s->nentries = s->ra_blocks + 64;
  s->entries = calloc(s->nentries, sizeof *s->entries);
  s->free_list = malloc(s->nentries * sizeof *s->free_list);
  s->slot = malloc((s->map.nblocks ? s->map.nblocks : 1) * sizeof *s->slot);
  s->ra_list = malloc(s->ra_blocks * sizeof *s->ra_list);
  if (!s->entries || !s->free_list || !s->slot || !s->ra_list) {
    set_error(errno, "malloc");
    goto fail;
  }
  for (uint64_t b = 0; b < s->map.nblocks; b++)
    s->slot[b] = -1;
  for (size_t i = 0; i < s->nentries; i++)
    s->free_list[s->nfree++] = &s->entries[s->nentries - 1 - i];
  int err = pthread_create(&s->ra_thread, NULL, ra_main, s);
  if (err) {
    set_error(err, "cannot start the readahead thread");
    goto fail;
  }
  s->ra_started = 1;
  return s;
fail:
  served_free(s);
  return NULL;
}

void served_free(struct served *s)
{
  if (!s)
    return;
  if (s->ra_started) {
    pthread_mutex_lock(&s->lock);
    s->stop = 1;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->ra_thread, NULL);
  }
  if (s->ov) {
    overlay_flush(s->ov);
    overlay_close(s->ov);
  }
  for (size_t i = 0; s->entries && i < s->nentries; i++)
    free(s->entries[i].data);
  free(s->entries);
  free(s->free_list);
  free(s->slot);
  free(s->ra_list);
  blockmap_free(&s->map);
  snapshot_free(s->snap);
  repo_free(s->r);
  pthread_rwlock_destroy(&s->ov_lock);
  pthread_cond_destroy(&s->cond);
  pthread_mutex_destroy(&s->lock);
  free(s);
}

uint64_t served_size(const struct served *s)
{
  return s->map.size;
}

int served_writable(const struct served *s)
{
  return s->ov != NULL;
}

const struct snapshot *served_snapshot(const struct served *s)
{
  return s->snap;
}

void served_get_stats(struct served *s, struct served_stats *out)
{
  out->reads = s->reads;
  out->chunks = s->chunks;
  out->chunk_bytes = s->chunk_bytes;
  out->failed = s->failed;
  out->cache_hits = s->hits;
  out->overlay_bytes = s->ov ? overlay_written(s->ov) * OVERLAY_GRANULE : 0;
  out->first_read_ns = s->first_read_ns;
}
