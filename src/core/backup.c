/* The backup pipeline: plan (parent, block size, blocks to read) -> worker
 * threads (zero check, SHA-256, dedup, zstd) -> pack writer (pack-writer.c)
 * -> block-map pages -> index object -> snapshot object, the commit point.
 * Memory stays flat whatever the disk size: the pack writer's bounded packs
 * and one block buffer pair per worker. */
#include "repo-internal.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "../util/error-slot.h"
#include "../util/error.h"
#include "../util/hash.h"
#include "../util/progress.h"
#include "../util/workers.h"
#include "pack-writer.h"

struct backup {
  struct repo *r;
  const struct backup_opts *o;
  struct source *src;
  const struct snapshot *parent; /* the disk's latest snapshot, or NULL */
  struct snapshot *found;        /* parent when found here, not passed in o->parent; owned */
  uint32_t bs;
  uint64_t nblocks;
  uint8_t (*map)[HASH_LEN];
  const char *mode; /* recorded unless o->mode overrides it */
  char note[512];

  /* Blocks still to read: ranges of block numbers. */
  pthread_mutex_t work_lock;
  struct extent_list work;
  size_t work_i;
  uint64_t work_next;
  uint64_t total_bytes;

  struct pack_writer *pw;

  _Atomic uint64_t bytes_read, bytes_new, bytes_stored, bytes_done;
  struct error_slot failed; /* the first worker failure */
};

/* Store one chunk unless the repository has it. cbuf holds cap >=
 * ZSTD_compressBound(len) bytes; in an encrypted repository ebuf holds cap
 * + SEAL_OVERHEAD, for the sealed chunk. */
static int store_chunk(struct backup *b, ZSTD_CCtx *cctx, uint8_t *cbuf, size_t cap, uint8_t *ebuf,
                       const uint8_t h[HASH_LEN], uint8_t type, const void *data, size_t len)
{
  int added;
  pthread_mutex_lock(&b->r->ix->lock);
  struct index_slot *s = chunk_index_insert(b->r->ix, h, &added);
  /* Never dedup against a copy known damaged: store the chunk again, so
   * every snapshot that names it heals. The pack writer points the slot at
   * the new copy, and the index object lists it. */
  if (s && !added && s->damaged) {
    s->damaged = 0;
    s->pack = PACK_PENDING;
    s->indexed = 0;
    added = 1;
  }
  pthread_mutex_unlock(&b->r->ix->lock);
  if (!s)
    return -1;
  if (!added)
    return 0;
  size_t n = ZSTD_compressCCtx(cctx, cbuf, cap, data, len, b->r->level);
  int raw = ZSTD_isError(n) || n >= len;
  const void *stored = raw ? data : cbuf;
  size_t slen = raw ? len : n;
  if (b->r->keys) {
    /* The chunk's name is its associated data: a sealed chunk cannot be
     * passed off as another. */
    if (seal(b->r->keys, h, HASH_LEN, stored, slen, ebuf) == -1)
      return -1;
    stored = ebuf;
    slen += SEAL_OVERHEAD;
  }
  b->bytes_new += len;
  b->bytes_stored += slen;
  return pack_writer_add(b->pw, h, type, raw ? COMP_NONE : COMP_ZSTD, stored, (uint32_t)slen,
                         (uint32_t)len);
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

static int worker(void *arg, int index)
{
  struct backup *b = arg;
  size_t cap = ZSTD_compressBound(b->bs);
  uint8_t *buf = malloc(b->bs), *cbuf = malloc(cap);
  uint8_t *ebuf = b->r->keys ? malloc(cap + SEAL_OVERHEAD) : NULL;
  ZSTD_CCtx *cctx = ZSTD_createCCtx();
  uint64_t blk;
  int ret = -1;
  (void)index;
  if (!buf || !cbuf || !cctx || (b->r->keys && !ebuf)) {
    set_error(ENOMEM, "worker buffers");
    goto out;
  }
  while (!error_slot_failed(&b->failed) && !pack_writer_failed(b->pw) && next_block(b, &blk)) {
    uint64_t off = blk * b->bs;
    size_t len = b->src->size - off < b->bs ? (size_t)(b->src->size - off) : b->bs;
    if (source_pread(b->src, buf, len, off) == -1)
      goto out;
    b->bytes_read += len;
    if (is_zero(buf, len)) {
      memset(b->map[blk], 0, HASH_LEN);
    } else {
      chunk_name(b->r->keys, buf, len, b->map[blk]);
      if (store_chunk(b, cctx, cbuf, cap, ebuf, b->map[blk], CHUNK_DATA, buf, len) == -1)
        goto out;
    }
    b->bytes_done += len;
  }
  ret = 0;
out:
  free(buf);
  free(cbuf);
  free(ebuf);
  ZSTD_freeCCtx(cctx);
  return ret;
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
int repo_write_index(struct repo *r)
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
    if (!s->used || s->indexed || s->damaged || s->pack == PACK_PENDING)
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

/* ---- plan: the parent, the block size, the blocks to read --------------- */

/* The block size: the parent's, fixed at a disk's first backup, unless
 * --full starts over. */
static int backup_block_size(struct backup *b)
{
  const struct backup_opts *o = b->o;
  const struct snapshot *parent = b->parent;
  b->bs = parent ? parent->block_size : (o->block_size ? o->block_size : DEFAULT_BLOCK_SIZE);
  if (parent && o->block_size && o->block_size != parent->block_size && !o->full) {
    set_error_code(EINVAL,
                   "disk %s uses a block size of %u bytes, fixed at its first backup: drop "
                   "--block-size, or add --full to start over with a new one",
                   o->disk, parent->block_size);
    return -1;
  }
  if (o->full && o->block_size)
    b->bs = o->block_size;
  if (b->bs < MIN_BLOCK_SIZE || b->bs > MAX_BLOCK_SIZE || (b->bs & (b->bs - 1))) {
    set_error_code(EINVAL, "block size %u is not a power of two between %u and %u", b->bs,
                   MIN_BLOCK_SIZE, MAX_BLOCK_SIZE);
    return -1;
  }
  return 0;
}

/* Start from the parent's map; read only what changed, plus anything past
 * the parent's end (and its last, possibly partial, block). */
static int plan_incremental(struct backup *b, struct plan_ctx *pc)
{
  struct blockmap pmap = {0};
  const struct extent_list *changed = b->o->changed;
  uint64_t size = b->src->size;
  int ret = -1;
  if (repo_load_blockmap(b->r, b->parent, &pmap) == -1)
    goto out;
  uint64_t keep = pmap.nblocks < b->nblocks ? pmap.nblocks : b->nblocks;
  memcpy(b->map, pmap.h, keep * HASH_LEN);
  for (size_t i = 0; i < changed->e.len; i++) {
    const struct extent *x = &changed->e.v[i];
    if (x->off >= size)
      continue;
    uint64_t len = x->len < size - x->off ? x->len : size - x->off;
    if (add_block_range(pc, x->off, len) == -1)
      goto out;
  }
  if (b->parent->size != size) {
    uint64_t common = b->parent->size < size ? b->parent->size : size;
    pc->min_block = common / b->bs;
    for (uint64_t i = pc->min_block; i < b->nblocks; i++)
      memset(b->map[i], 0, HASH_LEN);
    if (source_allocated(b->src, pc->min_block * b->bs, size - pc->min_block * b->bs,
                         add_block_range, pc) == -1)
      goto out;
  }
  ret = 0;
out:
  blockmap_free(&pmap);
  return ret;
}

/* Find the parent, fix the block size, allocate the block map and list the
 * blocks to read in b->work, setting b->mode and b->note. */
static int backup_plan(struct backup *b)
{
  const struct backup_opts *o = b->o;
  if (o->parent) {
    b->parent = o->parent;
  } else {
    b->found = repo_find_snapshot(b->r, o->disk, "latest");
    if (!b->found && get_errno() != ENOENT)
      return -1;
    b->parent = b->found;
  }
  if (backup_block_size(b) == -1)
    return -1;
  b->nblocks = blocks_for(b->src->size, b->bs);
  b->map = calloc(b->nblocks ? b->nblocks : 1, HASH_LEN);
  if (!b->map) {
    set_error(errno, "block map of %llu blocks", (unsigned long long)b->nblocks);
    return -1;
  }

  struct plan_ctx pc = {&b->work, b->bs, 0};
  b->mode = "full";
  int incremental = b->parent && o->changed && !o->full && b->parent->block_size == b->bs;
  if (incremental && plan_incremental(b, &pc) == -1) {
    /* A damaged parent block map must not stop the backup that heals it. */
    if (get_errno() != EIO && get_errno() != ENOENT)
      return -1;
    snprintf(b->note, sizeof b->note,
             "the parent snapshot's block map cannot be read (%s): read every allocated block",
             get_error());
    extent_list_free(&b->work);
    memset(b->map, 0, b->nblocks * HASH_LEN);
    pc.min_block = 0;
    incremental = 0;
  }
  if (incremental) {
    b->mode = "changed-extents";
  } else {
    if (source_allocated(b->src, 0, b->src->size, add_block_range, &pc) == -1)
      return -1;
    if (b->parent && !o->full)
      b->mode = "hash-compare";
    if (o->changed && !b->parent && !b->note[0])
      snprintf(b->note, sizeof b->note, "first backup of disk %s: read every allocated block",
               o->disk);
  }
  extent_list_normalize(&b->work);
  for (size_t i = 0; i < b->work.e.len; i++)
    b->total_bytes += b->work.e.v[i].len * b->bs;
  return 0;
}

/* ---- run: the workers feed the pack writer ------------------------------ */

/* Read, hash and store every planned block with r->threads workers. On
 * failure, returns -1 with the first error set, a worker's or an upload's. */
static int backup_run(struct backup *b)
{
  struct progress_info prog = {.label = b->o->disk,
                               .total = b->total_bytes,
                               .done = &b->bytes_done,
                               .extra = &b->bytes_new,
                               .extra_label = "new"};
  int rc;
  progress_begin(b->o->progress, &prog);
  rc = workers_run(b->r->threads, worker, b, &b->failed);
  progress_end(b->o->progress);
  if (rc == -1)
    return -1;
  /* Workers stop early when an upload fails; finishing reports it. */
  if (pack_writer_failed(b->pw))
    return pack_writer_finish(b->pw);
  return 0;
}

/* ---- pages: the block map, as chunks in the same packs ------------------ */

static int backup_pages(struct backup *b, struct snapshot *snap)
{
  uint32_t per = b->r->cfg.page_entries;
  size_t cap = ZSTD_compressBound((size_t)per * HASH_LEN);
  uint8_t *cbuf = malloc(cap), *ebuf = b->r->keys ? malloc(cap + SEAL_OVERHEAD) : NULL;
  ZSTD_CCtx *cctx = ZSTD_createCCtx();
  int ret = -1;
  snap->page_entries = per;
  if (!cbuf || !cctx || (b->r->keys && !ebuf)) {
    set_error(ENOMEM, "page buffers");
    goto out;
  }
  for (uint64_t first = 0; first < b->nblocks; first += per) {
    uint64_t count = b->nblocks - first < per ? b->nblocks - first : per;
    uint8_t *h = malloc(HASH_LEN);
    if (!h || vec_push(&snap->pages, h) == -1) {
      free(h);
      set_error(ENOMEM, "block map");
      goto out;
    }
    if (is_zero(b->map[first], count * HASH_LEN)) {
      memset(h, 0, HASH_LEN);
      continue;
    }
    chunk_name(b->r->keys, b->map[first], count * HASH_LEN, h);
    if (store_chunk(b, cctx, cbuf, cap, ebuf, h, CHUNK_PAGE, b->map[first], count * HASH_LEN) == -1)
      goto out;
  }
  ret = 0;
out:
  free(cbuf);
  free(ebuf);
  ZSTD_freeCCtx(cctx);
  return ret;
}

/* ---- commit: the index object, then the snapshot ----------------------- */

/* Fill snap's metadata from the finished backup. */
static int snapshot_fill(const struct backup *b, const struct timespec *now, struct snapshot *snap)
{
  const struct backup_opts *o = b->o;
  char host[256] = "";
  snap->disk = strdup(o->disk);
  snap->size = b->src->size;
  snap->block_size = b->bs;
  snap->time = now->tv_sec;
  snap->time_ns = (uint32_t)now->tv_nsec;
  if (b->parent)
    memcpy(snap->parent, b->parent->id, sizeof snap->parent);
  gethostname(host, sizeof host - 1);
  snap->source = dup_or_empty(b->src->name);
  snap->cbt = dup_or_empty(o->cbt);
  snap->host = dup_or_empty(host);
  snap->mode = dup_or_empty(o->mode ? o->mode : b->mode);
  snap->note = dup_or_empty(o->note ? o->note : b->note);
  snap->bytes_read = b->bytes_read;
  snap->bytes_new = b->bytes_new;
  snap->bytes_stored = b->bytes_stored;
  for (uint64_t i = b->nblocks; i-- > 0;)
    if (!hash_is_zero(b->map[i])) {
      uint64_t off = i * b->bs;
      snap->used_end = off + (b->src->size - off < b->bs ? b->src->size - off : b->bs);
      break;
    }
  if (!snap->disk || !snap->source || !snap->cbt || !snap->host || !snap->mode || !snap->note) {
    set_error(ENOMEM, "snapshot");
    return -1;
  }
  return 0;
}

#ifdef PL_TEST_HOOKS
/* Test builds only: run $PILOTLIGHT_TEST_BEFORE_COMMIT (a shell command)
 * just before the snapshot is written, e.g. to remove the lock. */
static void before_commit_hook(void)
{
  const char *hook = getenv("PILOTLIGHT_TEST_BEFORE_COMMIT");
  if (hook && hook[0] && system(hook) == -1)
    abort();
}
#else
static void before_commit_hook(void)
{
}
#endif

/* Every pack is stored: write the index object, then the snapshot, the
 * commit point (created only if no object has its name). */
static int backup_commit(struct backup *b, const struct timespec *now, struct snapshot *snap)
{
  char *text = NULL;
  int ret = -1;
  if (repo_write_index(b->r) == -1 || snapshot_fill(b, now, snap) == -1)
    goto out;
  text = snapshot_encode(snap);
  before_commit_hook();
  /* A lock lost while the backup ran means a prune may have deleted a
   * chunk this snapshot names: do not commit it. */
  if (!text || lock_check(b->r->lock) == -1 ||
      repo_put_hashed(b->r, "snapshots", text, strlen(text), 1, snap->id) == -1)
    goto out;
  ret = 0;
out:
  free(text);
  return ret;
}

/* ---- interrupted backups ----------------------------------------------
 * A running backup leaves backups/<host>.<pid> in the local cache folder,
 * removed when it commits. Only a marker whose process is gone says that
 * packs no index lists may be waiting to be reused, so only then is packs/
 * listed (a request per thousand packs on S3). Without a cache, every
 * backup lists it. A backup interrupted on another host is not seen: its
 * chunks are stored again, and prune removes its packs after the grace. */

static void marker_key(char *out, size_t cap, const char *host, long pid)
{
  snprintf(out, cap, "backups/%s.%ld", host, pid);
}

static void this_host(char host[256])
{
  if (gethostname(host, 255) == -1)
    snprintf(host, 256, "unknown");
  host[255] = 0;
}

/* Whether the marker key was left by a process of this host that is gone
 * (a malformed name counts as gone). Another host's marker is its own. */
static int marker_dead(const char *key, const char *host)
{
  const char *name = key + strlen("backups/");
  const char *dot = strrchr(name, '.');
  char *end;
  if (!dot)
    return 1;
  long pid = strtol(dot + 1, &end, 10);
  if (*end || pid <= 0)
    return 1;
  if ((size_t)(dot - name) != strlen(host) || strncmp(name, host, strlen(host)) != 0)
    return 0;
  return kill((pid_t)pid, 0) == -1 && errno == ESRCH;
}

/* Reuse the chunks of interrupted backups (repo_adopt_packs) when a marker
 * says there were any, then leave this backup's marker in mine. */
static int adopt_interrupted(struct repo *r, char *mine, size_t cap)
{
  struct strings keys = {0};
  char host[256];
  int dead = 0, ret = 0;
  mine[0] = 0;
  if (!r->cache)
    return repo_adopt_packs(r);
  this_host(host);
  if (store_list_keys(r->cache, "backups/", &keys) == -1)
    dead = 1;
  for (size_t i = 0; i < keys.len && !dead; i++)
    dead = marker_dead(keys.v[i], host);
  if (dead)
    ret = repo_adopt_packs(r);
  for (size_t i = 0; ret == 0 && dead && i < keys.len; i++)
    if (marker_dead(keys.v[i], host))
      store_del(r->cache, keys.v[i]); /* handled: its packs are adopted */
  strings_free(&keys);
  if (ret == 0) {
    marker_key(mine, cap, host, (long)getpid());
    if (store_put(r->cache, mine, "", 0, 0) == -1)
      mine[0] = 0;
  }
  return ret;
}

int repo_backup(struct repo *r, const struct backup_opts *o, struct snapshot **out)
{
  char marker[300];
  struct backup b = {.r = r, .o = o, .src = o->src};
  struct snapshot snap = {0};
  struct timespec now;
  int ret = -1;

  if (!valid_disk_name(o->disk)) {
    set_error_code(EINVAL, "disk name \"%s\" is not valid: use letters, digits, '.', '_' and '-'",
                   o->disk ? o->disk : "");
    return -1;
  }
  clock_gettime(CLOCK_REALTIME, &now);
#ifdef PL_TEST_HOOKS
  /* Record this time instead of the clock's, so that a test can build a
   * history of years in seconds (tests/integration/test-forget.sh). */
  const char *test_time = getenv("PILOTLIGHT_TEST_TIME");
  if (test_time) {
    now.tv_sec = (time_t)strtoll(test_time, NULL, 10);
    now.tv_nsec = 0;
  }
#endif
  pthread_mutex_init(&b.work_lock, NULL);
  error_slot_init(&b.failed);

  if (backup_plan(&b) == -1)
    goto out;
  /* Chunks left by interrupted backups are reused, not uploaded again. */
  if (adopt_interrupted(r, marker, sizeof marker) == -1)
    goto out;
  b.pw = pack_writer_new(r->store, r->ix, r->keys, repo_io_threads(r, 1, 4));
  if (!b.pw || backup_run(&b) == -1 || backup_pages(&b, &snap) == -1 ||
      pack_writer_finish(b.pw) == -1)
    goto out;
  if (backup_commit(&b, &now, &snap) == -1)
    goto out;
  if (marker[0])
    store_del(r->cache, marker);
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
  pack_writer_free(b.pw);
  snapshot_clear(&snap);
  snapshot_free(b.found);
  extent_list_free(&b.work);
  free(b.map);
  pthread_mutex_destroy(&b.work_lock);
  error_slot_destroy(&b.failed);
  return ret;
}
