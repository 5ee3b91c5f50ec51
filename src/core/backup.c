/* The backup pipeline: source blocks -> worker threads (zero check, SHA-256,
 * dedup, zstd) -> pack writer -> uploader thread(s) -> index object ->
 * snapshot object, the commit point. Queues are bounded, so memory stays
 * flat whatever the disk size: a pack being filled, one waiting, one per
 * uploader, and one block buffer pair per worker. */
#include "repo-internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "../util/error.h"
#include "../util/hash.h"
#include "../util/progress.h"

#define PACK_TARGET (16u << 20)
#define QUEUE_MAX 1
#define MAX_UPLOADERS 16

struct pack_buf {
  VEC(uint8_t) data;
  VEC(struct chunk_entry) entries;
};

struct backup {
  struct repo *r;
  const struct backup_opts *o;
  struct source *src;
  uint32_t bs;
  uint64_t nblocks;
  uint8_t (*map)[HASH_LEN];

  /* Blocks still to read: ranges of block numbers. */
  pthread_mutex_t work_lock;
  struct extent_list work;
  size_t work_i;
  uint64_t work_next;
  uint64_t total_bytes;

  pthread_mutex_t pack_lock;
  struct pack_buf *open_pack;

  pthread_mutex_t q_lock;
  pthread_cond_t q_cond;
  struct pack_buf *queue[QUEUE_MAX];
  size_t qlen;
  int q_closed;
  /* Stored packs' buffers, kept for the next packs: reusing them saves
   * faulting in and zeroing 16 MiB of fresh memory per pack. */
  struct pack_buf *spare[MAX_UPLOADERS + 2];
  size_t nspare;

  _Atomic uint64_t bytes_read, bytes_new, bytes_stored, bytes_done;
  _Atomic int failed;
  pthread_mutex_t err_lock;
  char err[1024];
  int err_errno;
};

static void fail(struct backup *b)
{
  pthread_mutex_lock(&b->err_lock);
  if (!b->failed) {
    snprintf(b->err, sizeof b->err, "%s", get_error());
    b->err_errno = get_errno();
    b->failed = 1;
  }
  pthread_mutex_unlock(&b->err_lock);
  /* Wake anyone waiting on the queue so they notice. */
  pthread_mutex_lock(&b->q_lock);
  pthread_cond_broadcast(&b->q_cond);
  pthread_mutex_unlock(&b->q_lock);
}

static void pack_buf_free(struct pack_buf *p)
{
  if (p) {
    vec_free(&p->data);
    vec_free(&p->entries);
    free(p);
  }
}

/* ---- the upload queue ------------------------------------------------ */

static int enqueue(struct backup *b, struct pack_buf *p)
{
  pthread_mutex_lock(&b->q_lock);
  while (b->qlen == QUEUE_MAX && !b->failed)
    pthread_cond_wait(&b->q_cond, &b->q_lock);
  if (b->failed) {
    pthread_mutex_unlock(&b->q_lock);
    pack_buf_free(p);
    return -1;
  }
  b->queue[b->qlen++] = p;
  pthread_cond_broadcast(&b->q_cond);
  pthread_mutex_unlock(&b->q_lock);
  return 0;
}

static struct pack_buf *dequeue(struct backup *b)
{
  struct pack_buf *p = NULL;
  pthread_mutex_lock(&b->q_lock);
  while (b->qlen == 0 && !b->q_closed && !b->failed)
    pthread_cond_wait(&b->q_cond, &b->q_lock);
  if (b->qlen > 0 && !b->failed) {
    p = b->queue[0];
    memmove(b->queue, b->queue + 1, (b->qlen - 1) * sizeof *b->queue);
    b->qlen--;
    pthread_cond_broadcast(&b->q_cond);
  }
  pthread_mutex_unlock(&b->q_lock);
  return p;
}

/* Seal a pack (append its trailer), store it under its hash, and point its
 * chunks' index entries at it. */
static int upload_pack(struct backup *b, struct pack_buf *p)
{
  uint8_t *trailer = NULL, h[HASH_LEN];
  size_t tlen;
  char key[PACK_KEY_LEN];
  int ret = -1;
  if (pack_trailer_encode(p->entries.v, p->entries.len, &trailer, &tlen) == -1)
    return -1;
  if (vec_reserve(&p->data, tlen) == -1)
    goto out;
  memcpy(p->data.v + p->data.len, trailer, tlen);
  p->data.len += tlen;
  /* The trailer names every chunk by the hash of its content, so hashing it
   * names the pack without a second pass over the data. */
  sha256(trailer, tlen, h);
  pack_key(h, key);
  if (store_put(b->r->store, key, p->data.v, p->data.len, 0) == -1)
    goto out;
  pthread_mutex_lock(&b->r->ix->lock);
  int64_t ord = chunk_index_pack(b->r->ix, h);
  for (size_t i = 0; ord != -1 && i < p->entries.len; i++) {
    struct index_slot *s = chunk_index_find(b->r->ix, p->entries.v[i].hash);
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
  pthread_mutex_unlock(&b->r->ix->lock);
  ret = ord == -1 ? -1 : 0;
out:
  free(trailer);
  return ret;
}

/* Keep p's buffer for a later pack, or free it. */
static void recycle(struct backup *b, struct pack_buf *p)
{
  pthread_mutex_lock(&b->q_lock);
  if (b->nspare < sizeof b->spare / sizeof *b->spare) {
    p->data.len = 0;
    p->entries.len = 0;
    b->spare[b->nspare++] = p;
    p = NULL;
  }
  pthread_mutex_unlock(&b->q_lock);
  pack_buf_free(p);
}

/* A pack buffer with its header written: a spare one, or a new one. */
static struct pack_buf *pack_buf_get(struct backup *b)
{
  struct pack_buf *p = NULL;
  pthread_mutex_lock(&b->q_lock);
  if (b->nspare > 0)
    p = b->spare[--b->nspare];
  pthread_mutex_unlock(&b->q_lock);
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
  struct backup *b = arg;
  struct pack_buf *p;
  while ((p = dequeue(b)) != NULL) {
    if (upload_pack(b, p) == -1)
      fail(b);
    recycle(b, p);
  }
  return NULL;
}

/* ---- the pack writer ------------------------------------------------- */

static int pack_add(struct backup *b, const uint8_t h[HASH_LEN], uint8_t type, uint8_t comp,
                    const void *data, uint32_t stored_len, uint32_t raw_len)
{
  struct pack_buf *sealed = NULL;
  int ret = -1;
  pthread_mutex_lock(&b->pack_lock);
  if (!b->open_pack) {
    b->open_pack = pack_buf_get(b);
    if (!b->open_pack)
      goto out;
  }
  struct pack_buf *p = b->open_pack;
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
    b->open_pack = NULL;
  }
  ret = 0;
out:
  pthread_mutex_unlock(&b->pack_lock);
  if (sealed && enqueue(b, sealed) == -1)
    return -1;
  return ret;
}

static int pack_flush(struct backup *b)
{
  struct pack_buf *p;
  pthread_mutex_lock(&b->pack_lock);
  p = b->open_pack;
  b->open_pack = NULL;
  pthread_mutex_unlock(&b->pack_lock);
  return p ? enqueue(b, p) : 0;
}

/* Store one chunk unless the repository has it. cbuf holds at least
 * ZSTD_compressBound(len) bytes. */
static int store_chunk(struct backup *b, ZSTD_CCtx *cctx, uint8_t *cbuf, size_t cap,
                       const uint8_t h[HASH_LEN], uint8_t type, const void *data, size_t len)
{
  int added;
  pthread_mutex_lock(&b->r->ix->lock);
  struct index_slot *s = chunk_index_insert(b->r->ix, h, &added);
  pthread_mutex_unlock(&b->r->ix->lock);
  if (!s)
    return -1;
  if (!added)
    return 0;
  size_t n = ZSTD_compressCCtx(cctx, cbuf, cap, data, len, b->r->level);
  int raw = ZSTD_isError(n) || n >= len;
  b->bytes_new += len;
  b->bytes_stored += raw ? len : n;
  return pack_add(b, h, type, raw ? COMP_NONE : COMP_ZSTD, raw ? data : cbuf,
                  (uint32_t)(raw ? len : n), (uint32_t)len);
}

/* ---- workers --------------------------------------------------------- */

static int next_block(struct backup *b, uint64_t *block)
{
  int ret = 0;
  pthread_mutex_lock(&b->work_lock);
  while (b->work_i < b->work.e.len) {
    struct extent *x = &b->work.e.v[b->work_i];
    if (b->work_next < x->off)
      b->work_next = x->off;
    if (b->work_next < x->off + x->len) {
      *block = b->work_next++;
      ret = 1;
      break;
    }
    b->work_i++;
  }
  pthread_mutex_unlock(&b->work_lock);
  return ret;
}

static void *worker(void *arg)
{
  struct backup *b = arg;
  size_t cap = ZSTD_compressBound(b->bs);
  uint8_t *buf = malloc(b->bs), *cbuf = malloc(cap);
  ZSTD_CCtx *cctx = ZSTD_createCCtx();
  uint64_t blk;
  if (!buf || !cbuf || !cctx) {
    set_error(ENOMEM, "worker buffers");
    fail(b);
    goto out;
  }
  while (!b->failed && next_block(b, &blk)) {
    uint64_t off = blk * b->bs;
    size_t len = b->src->size - off < b->bs ? (size_t)(b->src->size - off) : b->bs;
    if (source_pread(b->src, buf, len, off) == -1) {
      fail(b);
      break;
    }
    b->bytes_read += len;
    if (is_zero(buf, len)) {
      memset(b->map[blk], 0, HASH_LEN);
    } else {
      sha256(buf, len, b->map[blk]);
      if (store_chunk(b, cctx, cbuf, cap, b->map[blk], CHUNK_DATA, buf, len) == -1) {
        fail(b);
        break;
      }
    }
    b->bytes_done += len;
  }
out:
  free(buf);
  free(cbuf);
  ZSTD_freeCCtx(cctx);
  return NULL;
}

/* ---- planning -------------------------------------------------------- */

struct plan_ctx {
  struct extent_list *blocks;
  uint32_t bs;
  uint64_t min_block; /* only blocks at or after this */
};

static int add_block_range(void *opaque, uint64_t off, uint64_t len)
{
  struct plan_ctx *c = opaque;
  uint64_t first = off / c->bs, last = (off + len - 1) / c->bs;
  if (len == 0 || last < c->min_block)
    return 0;
  if (first < c->min_block)
    first = c->min_block;
  return extent_list_add(c->blocks, first, last - first + 1);
}

static int valid_disk_name(const char *d)
{
  if (!d || !*d || strlen(d) > 128)
    return 0;
  for (const char *p = d; *p; p++)
    if (!(('a' <= *p && *p <= 'z') || ('A' <= *p && *p <= 'Z') || ('0' <= *p && *p <= '9') ||
          *p == '.' || *p == '_' || *p == '-'))
      return 0;
  return d[0] != '.' && d[0] != '-';
}

/* ---- the index and snapshot objects ----------------------------------- */

/* Write one index object listing every chunk that is stored but not yet in
 * an index object: this run's and any adopted from interrupted runs. */
static int write_index(struct repo *r)
{
  struct chunk_index *ix = r->ix;
  VEC(struct chunk_entry) e = {0};
  VEC(uint32_t) pack_of = {0};
  VEC(uint8_t *) packs = {0};
  uint32_t *local = NULL;
  uint8_t *buf = NULL;
  size_t len;
  char name[2 * HASH_LEN + 1];
  int ret = -1;
  local = malloc((ix->packs.len ? ix->packs.len : 1) * sizeof *local);
  if (!local) {
    set_error(errno, "malloc");
    goto out;
  }
  for (size_t i = 0; i < ix->packs.len; i++)
    local[i] = UINT32_MAX;
  for (size_t i = 0; i < ix->cap; i++) {
    struct index_slot *s = &ix->slots[i];
    if (!s->used || s->indexed || s->pack == PACK_PENDING)
      continue;
    if (local[s->pack] == UINT32_MAX) {
      local[s->pack] = (uint32_t)packs.len;
      if (vec_push(&packs, ix->packs.v[s->pack]) == -1)
        goto out;
    }
    struct chunk_entry ce = {.type = s->type,
                             .comp = s->comp,
                             .stored_len = s->stored_len,
                             .raw_len = s->raw_len,
                             .offset = s->offset};
    memcpy(ce.hash, s->hash, HASH_LEN);
    if (vec_push(&e, ce) == -1 || vec_push(&pack_of, local[s->pack]) == -1)
      goto out;
  }
  if (e.len == 0) {
    ret = 0;
    goto out;
  }
  /* packs.v holds pointers; index_encode wants contiguous hashes. */
  uint8_t(*flat)[HASH_LEN] = malloc(packs.len * HASH_LEN);
  if (!flat) {
    set_error(errno, "malloc");
    goto out;
  }
  for (size_t i = 0; i < packs.len; i++)
    memcpy(flat[i], packs.v[i], HASH_LEN);
  int rc = index_encode((const uint8_t(*)[HASH_LEN])flat, (uint32_t)packs.len, e.v, pack_of.v,
                        e.len, &buf, &len);
  free(flat);
  if (rc == -1 || repo_put_hashed(r, "index", buf, len, 0, name) == -1)
    goto out;
  for (size_t i = 0; i < ix->cap; i++)
    if (ix->slots[i].used && ix->slots[i].pack != PACK_PENDING)
      ix->slots[i].indexed = 1;
  ret = 0;
out:
  free(buf);
  free(local);
  vec_free(&e);
  vec_free(&pack_of);
  vec_free(&packs);
  return ret;
}

static char *dup_or_empty(const char *s)
{
  return strdup(s ? s : "");
}

uint32_t repo_cbt_block_size(uint64_t disk_size)
{
  uint32_t bs = CBT_BLOCK_SIZE;
  while (bs < DEFAULT_BLOCK_SIZE && (disk_size + bs - 1) / bs > CBT_MAX_BLOCKS)
    bs <<= 1;
  return bs;
}

int repo_backup(struct repo *r, const struct backup_opts *o, struct snapshot **out)
{
  struct backup b = {.r = r, .o = o, .src = o->src};
  struct snapshot *parent = NULL, snap = {0};
  struct blockmap pmap = {0};
  struct timespec now;
  pthread_t *workers = NULL, up[MAX_UPLOADERS];
  struct progress_info prog = {
      .label = o->disk, .done = &b.bytes_done, .extra = &b.bytes_new, .extra_label = "new"};
  int nworkers = 0, up_started = 0, ret = -1;
  const char *mode = "full";
  char note[512] = "";
  char *text = NULL;
  char host[256] = "";

  if (!valid_disk_name(o->disk)) {
    set_error_code(EINVAL, "disk name \"%s\" is not valid: use letters, digits, '.', '_' and '-'",
                   o->disk ? o->disk : "");
    return -1;
  }
  clock_gettime(CLOCK_REALTIME, &now);
  pthread_mutex_init(&b.work_lock, NULL);
  pthread_mutex_init(&b.pack_lock, NULL);
  pthread_mutex_init(&b.q_lock, NULL);
  pthread_mutex_init(&b.err_lock, NULL);
  pthread_cond_init(&b.q_cond, NULL);

  /* The parent: the disk's latest snapshot. */
  parent = repo_find_snapshot(r, o->disk, "latest");
  if (!parent && get_errno() != ENOENT)
    goto out;
  b.bs = parent ? parent->block_size : (o->block_size ? o->block_size : DEFAULT_BLOCK_SIZE);
  if (parent && o->block_size && o->block_size != parent->block_size && !o->full) {
    set_error_code(EINVAL,
                   "disk %s uses a block size of %u bytes, fixed at its first backup: drop "
                   "--block-size, or add --full to start over with a new one",
                   o->disk, parent->block_size);
    goto out;
  }
  if (o->full && o->block_size)
    b.bs = o->block_size;
  if (b.bs < MIN_BLOCK_SIZE || b.bs > MAX_BLOCK_SIZE || (b.bs & (b.bs - 1))) {
    set_error_code(EINVAL, "block size %u is not a power of two between %u and %u", b.bs,
                   MIN_BLOCK_SIZE, MAX_BLOCK_SIZE);
    goto out;
  }
  b.nblocks = blocks_for(b.src->size, b.bs);
  b.map = calloc(b.nblocks ? b.nblocks : 1, HASH_LEN);
  if (!b.map) {
    set_error(errno, "block map of %llu blocks", (unsigned long long)b.nblocks);
    goto out;
  }

  struct plan_ctx pc = {&b.work, b.bs, 0};
  int incremental = parent && o->changed && !o->full && parent->block_size == b.bs;
  if (incremental) {
    /* Start from the parent's map; read only what changed, plus anything
     * past the parent's end (and its last, possibly partial, block). */
    if (repo_load_blockmap(r, parent, &pmap) == -1)
      goto out;
    uint64_t keep = pmap.nblocks < b.nblocks ? pmap.nblocks : b.nblocks;
    memcpy(b.map, pmap.h, keep * HASH_LEN);
    for (size_t i = 0; i < o->changed->e.len; i++) {
      const struct extent *x = &o->changed->e.v[i];
      if (x->off >= b.src->size)
        continue;
      uint64_t len = x->len < b.src->size - x->off ? x->len : b.src->size - x->off;
      if (add_block_range(&pc, x->off, len) == -1)
        goto out;
    }
    if (parent->size != b.src->size) {
      uint64_t common = parent->size < b.src->size ? parent->size : b.src->size;
      pc.min_block = common / b.bs;
      for (uint64_t i = pc.min_block; i < b.nblocks; i++)
        memset(b.map[i], 0, HASH_LEN);
      if (source_allocated(b.src, pc.min_block * b.bs, b.src->size - pc.min_block * b.bs,
                           add_block_range, &pc) == -1)
        goto out;
    }
    mode = "changed-extents";
  } else {
    if (source_allocated(b.src, 0, b.src->size, add_block_range, &pc) == -1)
      goto out;
    if (parent && !o->full)
      mode = "hash-compare";
    if (o->changed && !parent)
      snprintf(note, sizeof note, "first backup of disk %s: read every allocated block", o->disk);
  }
  extent_list_normalize(&b.work);
  for (size_t i = 0; i < b.work.e.len; i++)
    b.total_bytes += b.work.e.v[i].len * b.bs;

  /* Chunks left by interrupted backups are reused, not uploaded again. */
  if (repo_adopt_packs(r) == -1)
    goto out;

  for (int nup = repo_io_threads(r, 1, 4); up_started < nup; up_started++)
    if (pthread_create(&up[up_started], NULL, uploader, &b) != 0) {
      set_error(errno, "pthread_create");
      fail(&b);
      break;
    }
  if (b.failed)
    goto stop_uploader;
  prog.total = b.total_bytes;
  progress_begin(o->progress, &prog);
  workers = calloc((size_t)r->threads, sizeof *workers);
  if (!workers) {
    set_error(errno, "calloc");
    goto join;
  }
  for (; nworkers < r->threads; nworkers++)
    if (pthread_create(&workers[nworkers], NULL, worker, &b) != 0) {
      set_error(errno, "pthread_create");
      fail(&b);
      break;
    }
join:
  for (int i = 0; i < nworkers; i++)
    pthread_join(workers[i], NULL);
  progress_end(o->progress);
  if (b.failed)
    goto stop_uploader;

  /* The block map's pages, as chunks in the same packs. */
  snap.page_entries = r->cfg.page_entries;
  {
    size_t cap = ZSTD_compressBound((size_t)snap.page_entries * HASH_LEN);
    uint8_t *cbuf = malloc(cap);
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    for (uint64_t first = 0; cbuf && cctx && first < b.nblocks; first += snap.page_entries) {
      uint64_t count =
          b.nblocks - first < snap.page_entries ? b.nblocks - first : snap.page_entries;
      uint8_t *h = malloc(HASH_LEN);
      if (!h || vec_push(&snap.pages, h) == -1) {
        free(h);
        set_error(ENOMEM, "block map");
        fail(&b);
        break;
      }
      if (is_zero(b.map[first], count * HASH_LEN)) {
        memset(h, 0, HASH_LEN);
        continue;
      }
      sha256(b.map[first], count * HASH_LEN, h);
      if (store_chunk(&b, cctx, cbuf, cap, h, CHUNK_PAGE, b.map[first], count * HASH_LEN) == -1) {
        fail(&b);
        break;
      }
    }
    if (!cbuf || !cctx) {
      set_error(ENOMEM, "page buffers");
      fail(&b);
    }
    free(cbuf);
    ZSTD_freeCCtx(cctx);
  }
  if (!b.failed && pack_flush(&b) == -1)
    fail(&b);

stop_uploader : {
  pthread_mutex_lock(&b.q_lock);
  b.q_closed = 1;
  pthread_cond_broadcast(&b.q_cond);
  pthread_mutex_unlock(&b.q_lock);
  for (int i = 0; i < up_started; i++)
    pthread_join(up[i], NULL);
}
  if (b.failed) {
    set_error_msg(b.err_errno, b.err);
    goto out;
  }

  /* Commit: every pack is stored; now the index, then the snapshot. */
  if (write_index(r) == -1)
    goto out;
  snap.disk = strdup(o->disk);
  snap.size = b.src->size;
  snap.block_size = b.bs;
  snap.time = now.tv_sec;
  snap.time_ns = (uint32_t)now.tv_nsec;
  if (parent)
    memcpy(snap.parent, parent->id, sizeof snap.parent);
  gethostname(host, sizeof host - 1);
  snap.source = dup_or_empty(b.src->name);
  snap.cbt = dup_or_empty(o->cbt);
  snap.host = dup_or_empty(host);
  snap.mode = dup_or_empty(o->mode ? o->mode : mode);
  snap.note = dup_or_empty(o->note ? o->note : note);
  snap.bytes_read = b.bytes_read;
  snap.bytes_new = b.bytes_new;
  snap.bytes_stored = b.bytes_stored;
  for (uint64_t i = b.nblocks; i-- > 0;)
    if (memcmp(b.map[i], zero_hash, HASH_LEN) != 0) {
      snap.used_end = i * b.bs + (b.src->size - i * b.bs < b.bs ? b.src->size - i * b.bs : b.bs);
      break;
    }
  if (!snap.disk || !snap.source || !snap.cbt || !snap.host || !snap.mode || !snap.note) {
    set_error(ENOMEM, "snapshot");
    goto out;
  }
  text = snapshot_encode(&snap);
  if (!text || repo_put_hashed(r, "snapshots", text, strlen(text), 1, snap.id) == -1)
    goto out;
  if (out) {
    *out = malloc(sizeof **out);
    if (!*out) {
      set_error(errno, "malloc");
      goto out;
    }
    **out = snap;
    memset(&snap, 0, sizeof snap);
  }
  ret = 0;
out:
  free(text);
  free(workers);
  snapshot_clear(&snap);
  snapshot_free(parent);
  blockmap_free(&pmap);
  extent_list_free(&b.work);
  pack_buf_free(b.open_pack);
  for (size_t i = 0; i < b.qlen; i++)
    pack_buf_free(b.queue[i]);
  for (size_t i = 0; i < b.nspare; i++)
    pack_buf_free(b.spare[i]);
  free(b.map);
  pthread_mutex_destroy(&b.work_lock);
  pthread_mutex_destroy(&b.pack_lock);
  pthread_mutex_destroy(&b.q_lock);
  pthread_mutex_destroy(&b.err_lock);
  pthread_cond_destroy(&b.q_cond);
  return ret;
}
