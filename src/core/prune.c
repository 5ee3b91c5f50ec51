/* prune: mark from every snapshot (each distinct block-map page once), sweep
 * per pack, rewrite sparse packs, write merged index objects, then delete
 * old index objects, dead packs and old leftovers, in that order. Owns the
 * chunk index it loads (it replaces the repo's). */
#include "prune.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../util/compiler.h"
#include "../util/progress.h"
#include "../util/error.h"
#include "../util/hash.h"
#include "pack-writer.h"
#include "repo-internal.h"
#include "versions.h"

/* Entries per index object prune writes: 56 MiB objects, few of them. */
#define PRUNE_INDEX_ENTRIES (1u << 20)

/* What happens to an indexed pack. */
enum { PACK_KEEP, PACK_DELETE, PACK_REWRITE, PACK_DROP /* indexed but missing, unreferenced */ };

struct pack_info {
  uint64_t size, live_bytes, unused;
  int64_t mtime;
  uint32_t live_count;
  uint8_t listed, action;
};

struct leftover {
  char *name; /* a pack key, or a store_list_temp name */
  uint64_t size;
  int64_t mtime;
  int temp;
};

struct prune {
  struct repo *r;
  struct store *st; /* r->store, or the test hook's wrapper of it */
  const struct prune_opts *o;
  struct prune_result *res;
  struct chunk_index *ix;    /* = r->ix */
  struct strings index_keys; /* the index objects loaded */
  struct strings new_index;  /* names of the ones written */
  size_t nold;               /* packs known before any rewrite */
  struct pack_info *pk;      /* by ordinal, nold of them */
  VEC(struct leftover) leftovers;
  int64_t now;
};

void prune_opts_default(struct prune_opts *o)
{
  memset(o, 0, sizeof *o);
  o->max_unused = PRUNE_DEFAULT_MAX_UNUSED;
  o->grace = PRUNE_DEFAULT_GRACE;
}

static void say(struct prune *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct prune *p, const char *fmt, ...)
{
  char line[512];
  va_list ap;
  if (!p->o->report)
    return;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  p->o->report(p->o->opaque, line);
}

/* Turn this thread's error about an unreadable object into prune's refusal:
 * the object stays named, the fix is added. */
static int refuse(void)
{
  char msg[1024];
  int e = get_errno();
  snprintf(msg, sizeof msg, "%s", get_error());
  set_error_code(e ? e : EIO,
                 "%s; prune deleted nothing: run pilotlight verify, then pilotlight repair", msg);
  return -1;
}

/* ---- the test hook: SIGKILL before the Nth store mutation -------------- */

#ifdef PL_TEST_HOOKS
struct kill_store {
  struct store base;
  struct store *inner;
  long at;
  _Atomic long n;
};

static void kill_point(struct store *s)
{
  struct kill_store *k = (struct kill_store *)s;
  if (k->at > 0 && atomic_fetch_add(&k->n, 1) + 1 == k->at)
    raise(SIGKILL);
}

static int ks_put(struct store *s, const char *key, const void *buf, size_t len, unsigned flags)
{
  kill_point(s);
  return store_put(((struct kill_store *)s)->inner, key, buf, len, flags);
}
static int ks_get(struct store *s, const char *key, size_t max, void **buf, size_t *len)
{
  return store_get(((struct kill_store *)s)->inner, key, max, buf, len);
}
static int ks_get_range(struct store *s, const char *key, uint64_t off, size_t len, void *buf)
{
  return store_get_range(((struct kill_store *)s)->inner, key, off, len, buf);
}
static int ks_head(struct store *s, const char *key, uint64_t *size)
{
  return store_head(((struct kill_store *)s)->inner, key, size);
}
static int ks_del(struct store *s, const char *key)
{
  kill_point(s);
  return store_del(((struct kill_store *)s)->inner, key);
}
static int ks_list(struct store *s, const char *prefix, store_list_cb cb, void *opaque)
{
  return store_list(((struct kill_store *)s)->inner, prefix, cb, opaque);
}
static int ks_list_temp(struct store *s, store_list_cb cb, void *opaque)
{
  return store_list_temp(((struct kill_store *)s)->inner, cb, opaque);
}
static int ks_remove_temp(struct store *s, const char *name)
{
  kill_point(s);
  return store_remove_temp(((struct kill_store *)s)->inner, name);
}
static void ks_free(struct store *s PL_UNUSED)
{
}

static const struct store_ops kill_ops = {
    .name = "prune-kill-hook",
    .put = ks_put,
    .get = ks_get,
    .get_range = ks_get_range,
    .head = ks_head,
    .del = ks_del,
    .list = ks_list,
    .list_temp = ks_list_temp,
    .remove_temp = ks_remove_temp,
    .free = ks_free,
};
#endif

/* ---- loading the index ------------------------------------------------- */

struct load {
  struct chunk_index *ix;
  VEC(uint32_t) ord; /* object-local pack ordinal -> global ordinal */
};

static int load_pack(void *opaque, uint32_t ordinal PL_UNUSED, const uint8_t hash[HASH_LEN])
{
  struct load *l = opaque;
  int64_t g = chunk_index_pack(l->ix, hash);
  if (g == -1)
    return -1;
  return vec_push(&l->ord, (uint32_t)g);
}

static int load_entry(void *opaque, uint32_t ordinal, const struct chunk_entry *e)
{
  struct load *l = opaque;
  int added;
  struct index_slot *s = chunk_index_insert(l->ix, e->hash, &added);
  if (!s)
    return -1;
  if (!added)
    return 0; /* listed twice (racing backups, an interrupted prune): one copy serves */
  index_slot_fill(s, e, l->ord.v[ordinal], 1);
  return 0;
}

/* Load every index object into a fresh chunk index, remembering their keys:
 * exactly these are deleted once the merged ones are durable. Any object
 * that cannot be read stops prune (a skipped one would make its packs look
 * unreferenced). */
static int load_index(struct prune *p)
{
  struct load l = {0};
  struct index_visitor v = {load_pack, load_entry, &l};
  int ret = -1;
  /* One index in memory at a time: drop the one repo_open loaded. */
  chunk_index_free(p->r->ix);
  p->r->ix = p->ix = chunk_index_new();
  if (!p->ix)
    return -1;
  l.ix = p->ix;
  if (store_list_keys(p->st, "index/", &p->index_keys) == -1)
    goto out;
  for (size_t i = 0; i < p->index_keys.len; i++) {
    const char *key = p->index_keys.v[i];
    void *buf;
    size_t len;
    if (repo_get_hashed(p->r, key, key + strlen("index/"), MAX_INDEX_BYTES, &buf, &len) == -1) {
      refuse();
      goto out;
    }
    l.ord.len = 0;
    int rc = index_decode(buf, len, repo_chunk_overhead(p->r), &v);
    free(buf);
    if (rc == -1) {
      prefix_error("%s", key);
      refuse();
      goto out;
    }
  }
  p->res->index_before = p->index_keys.len;
  ret = 0;
out:
  vec_free(&l.ord);
  return ret;
}

/* ---- mark ---------------------------------------------------------------- */

/* A distinct block-map page to read: a copy of its slot, and who named it. */
struct page_ref {
  struct index_slot slot;
  char snap[13];
  size_t page;
};

static int cmp_page_ref(const void *a, const void *b)
{
  const struct page_ref *x = a, *y = b;
  if (x->slot.pack != y->slot.pack)
    return x->slot.pack < y->slot.pack ? -1 : 1;
  return x->slot.offset < y->slot.offset ? -1 : x->slot.offset > y->slot.offset;
}

/* Mark the pages of one snapshot; a page not seen before is queued. */
static int mark_snapshot_pages(struct prune *p, const struct snapshot *s, void *refsv)
{
  VEC(struct page_ref) *refs = refsv;
  uint64_t nblocks = blocks_for(s->size, s->block_size);
  char hex[2 * HASH_LEN + 1];
  for (size_t i = 0; i < s->pages.len; i++) {
    uint64_t first = (uint64_t)i * s->page_entries;
    uint64_t count = nblocks - first < s->page_entries ? nblocks - first : s->page_entries;
    if (hash_is_zero(s->pages.v[i]))
      continue;
    struct index_slot *slot = chunk_index_find(p->ix, s->pages.v[i]);
    if (!slot || slot->raw_len != count * HASH_LEN) {
      hex_encode(s->pages.v[i], HASH_LEN, hex);
      set_error_code(slot ? EIO : ENOENT, "snapshots/%s (disk %s): block-map page %zu (%.16s) %s",
                     s->id, s->disk, i, hex,
                     slot ? "has the wrong length" : "is in no index object");
      return refuse();
    }
    if (slot->marked)
      continue; /* shared with a snapshot marked before: its chunks are marked */
    slot->marked = 1;
    struct page_ref ref = {.slot = *slot, .page = i};
    snprintf(ref.snap, sizeof ref.snap, "%.12s", s->id);
    if (vec_push(refs, ref) == -1)
      return -1;
  }
  return 0;
}

/* Mark the chunks one decoded page names. */
static int mark_page_chunks(struct prune *p, const struct page_ref *ref, const uint8_t *h)
{
  char hex[2 * HASH_LEN + 1];
  for (size_t k = 0; k < ref->slot.raw_len / HASH_LEN; k++) {
    const uint8_t *c = h + k * HASH_LEN;
    if (hash_is_zero(c))
      continue;
    struct index_slot *s = chunk_index_find(p->ix, c);
    if (!s) {
      hex_encode(c, HASH_LEN, hex);
      set_error_code(ENOENT,
                     "snapshot %s (block-map page %zu) names chunk %s, which is in no "
                     "index object",
                     ref->snap, ref->page, hex);
      return refuse();
    }
    s->marked = 1;
  }
  return 0;
}

/* Read the queued pages, neighbours in one pack with one ranged read, and
 * mark their chunks. */
static int mark_pages(struct prune *p, struct page_ref *refs, size_t n)
{
  uint8_t *buf = NULL, *raw = NULL;
  size_t rawcap = 0;
  char key[PACK_KEY_LEN];
  int ret = -1;
  qsort(refs, n, sizeof *refs, cmp_page_ref);
  for (size_t i = 0, j; i < n; i = j) {
    uint64_t lo = refs[i].slot.offset, hi = lo + refs[i].slot.stored_len;
    for (j = i + 1; j < n && refs[j].slot.pack == refs[i].slot.pack &&
                    refs[j].slot.offset <= hi + (256u << 10) &&
                    refs[j].slot.offset + refs[j].slot.stored_len - lo <= (16u << 20);
         j++)
      if (refs[j].slot.offset + refs[j].slot.stored_len > hi)
        hi = refs[j].slot.offset + refs[j].slot.stored_len;
    pack_key(p->ix->packs.v[refs[i].slot.pack], key);
    free(buf);
    buf = malloc(hi - lo);
    if (!buf) {
      set_error(errno, "malloc");
      goto out;
    }
    if (store_get_range(p->st, key, lo, hi - lo, buf) == -1) {
      prefix_error("snapshot %s block-map page %zu", refs[i].snap, refs[i].page);
      refuse();
      goto out;
    }
    for (size_t k = i; k < j; k++) {
      if (refs[k].slot.raw_len > rawcap) {
        free(raw);
        rawcap = refs[k].slot.raw_len;
        raw = malloc(rawcap);
        if (!raw) {
          set_error(errno, "malloc");
          goto out;
        }
      }
      if (chunk_decode(p->r, &refs[k].slot, buf + (refs[k].slot.offset - lo), raw, key) == -1) {
        prefix_error("snapshot %s block-map page %zu", refs[k].snap, refs[k].page);
        refuse();
        goto out;
      }
      if (mark_page_chunks(p, &refs[k], raw) == -1)
        goto out;
    }
  }
  ret = 0;
out:
  free(buf);
  free(raw);
  return ret;
}

/* Mark every chunk a snapshot references. A snapshot that cannot be read
 * stops prune: what it references is unknown. */
static int mark(struct prune *p)
{
  struct strings keys = {0};
  VEC(struct page_ref) refs = {0};
  int ret = -1;
  if (store_list_keys(p->st, "snapshots/", &keys) == -1)
    goto out;
  for (size_t i = 0; i < keys.len; i++) {
    const char *key = keys.v[i], *name = key + strlen("snapshots/");
    struct snapshot s = {0};
    void *buf;
    size_t len;
    if (repo_get_hashed(p->r, key, name, MAX_SNAPSHOT_BYTES, &buf, &len) == -1) {
      refuse();
      goto out;
    }
    int rc = snapshot_decode(buf, len, &s);
    free(buf);
    if (rc == -1) {
      prefix_error("%s", key);
      refuse();
      goto out;
    }
    snprintf(s.id, sizeof s.id, "%s", name);
    rc = mark_snapshot_pages(p, &s, &refs);
    snapshot_clear(&s);
    if (rc == -1)
      goto out;
    p->res->snapshots++;
  }
  p->res->pages = refs.len;
  if (mark_pages(p, refs.v, refs.len) == -1)
    goto out;
  ret = 0;
out:
  strings_free(&keys);
  vec_free(&refs);
  return ret;
}

/* ---- sweep: what each pack holds ----------------------------------------- */

struct listed_pack {
  uint8_t hash[HASH_LEN];
  uint64_t size;
  int64_t mtime;
};

static int push_pack(void *opaque, const char *key, uint64_t size, int64_t mtime)
{
  VEC(struct listed_pack) *v = opaque;
  const char *name = strrchr(key, '/');
  struct listed_pack lp = {.size = size, .mtime = mtime};
  if (!name || strlen(name + 1) != 2 * HASH_LEN || hex_decode(name + 1, lp.hash, HASH_LEN) == -1)
    return 0; /* not a pack's name: not ours to judge */
  return vec_push(v, lp);
}

static int add_leftover(struct prune *p, const char *name, uint64_t size, int64_t mtime, int temp)
{
  struct leftover l = {.name = strdup(name), .size = size, .mtime = mtime, .temp = temp};
  if (!l.name || vec_push(&p->leftovers, l) == -1) {
    free(l.name);
    set_error(ENOMEM, "listing leftovers");
    return -1;
  }
  return 0;
}

static int push_temp(void *opaque, const char *name, uint64_t size, int64_t mtime)
{
  return add_leftover(opaque, name, size, mtime, 1);
}

/* List the packs: sizes for the indexed ones, and the ones no index object
 * lists (leftovers of interrupted backups). */
static int list_packs(struct prune *p)
{
  VEC(struct listed_pack) lp = {0};
  char key[PACK_KEY_LEN];
  int ret = -1;
  p->nold = p->ix->packs.len;
  p->pk = calloc(p->nold ? p->nold : 1, sizeof *p->pk);
  if (!p->pk) {
    set_error(errno, "calloc");
    goto out;
  }
  if (store_list(p->st, "packs/", push_pack, &lp) == -1)
    goto out;
  for (size_t i = 0; i < lp.len; i++) {
    int64_t ord = chunk_index_find_pack(p->ix, lp.v[i].hash);
    if (ord >= 0) {
      p->pk[ord].listed = 1;
      p->pk[ord].size = lp.v[i].size;
      p->pk[ord].mtime = lp.v[i].mtime;
      continue;
    }
    pack_key(lp.v[i].hash, key);
    if (add_leftover(p, key, lp.v[i].size, lp.v[i].mtime, 0) == -1)
      goto out;
  }
  if (store_list_temp(p->st, push_temp, p) == -1)
    goto out;
  ret = 0;
out:
  vec_free(&lp);
  return ret;
}

/* Count live chunks per pack and refuse if one is in a missing pack. */
static int tally(struct prune *p)
{
  char hex[2 * HASH_LEN + 1], phex[2 * HASH_LEN + 1];
  for (size_t i = 0; i < p->ix->cap; i++) {
    struct index_slot *s = &p->ix->slots[i];
    if (!s->used)
      continue;
    p->res->chunks++;
    if (!s->marked)
      continue;
    p->res->chunks_live++;
    struct pack_info *pi = &p->pk[s->pack];
    if (!pi->listed) {
      hex_encode(s->hash, HASH_LEN, hex);
      hex_encode(p->ix->packs.v[s->pack], HASH_LEN, phex);
      set_error_code(ENOENT,
                     "packs/%.2s/%s is missing, and it holds chunk %.16s that a "
                     "snapshot references",
                     phex, phex, hex);
      return refuse();
    }
    pi->live_count++;
    pi->live_bytes += s->stored_len;
  }
  return 0;
}

struct candidate {
  uint32_t ord;
  uint64_t unused, size;
};

static int cmp_candidate(const void *a, const void *b)
{
  const struct candidate *x = a, *y = b;
  /* The largest unused share first: x.unused / x.size > y.unused / y.size. */
  unsigned __int128 l = (unsigned __int128)x->unused * y->size;
  unsigned __int128 r = (unsigned __int128)y->unused * x->size;
  return l > r ? -1 : l < r;
}

/* Decide each pack's fate: dead packs go; sparse packs are rewritten, the
 * sparsest first, until the unused bytes are at most max_unused percent of
 * what stays (restic's --max-unused). */
static int plan(struct prune *p)
{
  struct candidate *c = calloc(p->nold ? p->nold : 1, sizeof *c);
  size_t nc = 0;
  uint64_t used = 0, unused = 0;
  if (!c) {
    set_error(errno, "calloc");
    return -1;
  }
  for (size_t i = 0; i < p->nold; i++) {
    struct pack_info *pi = &p->pk[i];
    if (!pi->listed) {
      pi->action = pi->live_count ? PACK_KEEP : PACK_DROP;
      continue;
    }
    p->res->packs_before++;
    p->res->bytes_before += pi->size;
    uint64_t u = pi->live_count ? PACK_HEADER_LEN + PACK_FOOTER_LEN +
                                      (uint64_t)PACK_ENTRY_LEN * pi->live_count + pi->live_bytes
                                : 0;
    pi->unused = pi->size > u ? pi->size - u : 0;
    p->res->unused_before += pi->unused;
    if (!pi->live_count) {
      pi->action = PACK_DELETE;
      continue;
    }
    pi->action = PACK_KEEP;
    used += u;
    unused += pi->unused;
    if (pi->unused)
      c[nc++] = (struct candidate){(uint32_t)i, pi->unused, pi->size};
  }
  qsort(c, nc, sizeof *c, cmp_candidate);
  for (size_t i = 0; i < nc && p->o->max_unused < 100; i++) {
    if ((unsigned __int128)unused * 100 <= (unsigned __int128)p->o->max_unused * (used + unused))
      break;
    p->pk[c[i].ord].action = PACK_REWRITE;
    unused -= c[i].unused;
  }
  p->res->unused_after = unused;
  free(c);
  return 0;
}

/* ---- rewrite ------------------------------------------------------------- */

static int cmp_slot_place(const void *a, const void *b)
{
  const struct index_slot *x = a, *y = b;
  if (x->pack != y->pack)
    return x->pack < y->pack ? -1 : 1;
  return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* Live chunks closer than this are read with one ranged read; farther
 * apart, the dead bytes between them are skipped. */
#define COPY_READ_GAP (256u << 10)
#define COPY_READ_SPAN (16u << 20) /* and one read spans at most this */

/* A growable scratch buffer, kept across packs. */
struct scratch {
  uint8_t *v;
  size_t cap;
};

static uint8_t *scratch_get(struct scratch *b, size_t n)
{
  if (n > b->cap) {
    uint8_t *v = realloc(b->v, n);
    if (!v) {
      set_error(errno, "malloc");
      return NULL;
    }
    b->v = v;
    b->cap = n;
  }
  return b->v;
}

/* Copy the live chunks of one rewritten pack (moves[0..n), sorted by
 * offset) into the pack writer, each verified against its hash first,
 * reading only the live ranges. */
static int copy_pack(struct prune *p, struct pack_writer *pw, const struct index_slot *moves,
                     size_t n, struct scratch *buf, struct scratch *raw, _Atomic uint64_t *copied)
{
  char key[PACK_KEY_LEN];
  pack_key(p->ix->packs.v[moves[0].pack], key);
  for (size_t i = 0, j; i < n; i = j) {
    uint64_t lo = moves[i].offset, hi = lo + moves[i].stored_len;
    for (j = i + 1; j < n && moves[j].offset <= hi + COPY_READ_GAP &&
                    moves[j].offset + moves[j].stored_len - lo <= COPY_READ_SPAN;
         j++)
      if (moves[j].offset + moves[j].stored_len > hi)
        hi = moves[j].offset + moves[j].stored_len;
    if (!scratch_get(buf, hi - lo))
      return -1;
    if (store_get_range(p->st, key, lo, hi - lo, buf->v) == -1) {
      refuse();
      return -1;
    }
    for (size_t k = i; k < j; k++) {
      const uint8_t *src = buf->v + (moves[k].offset - lo);
      if (!scratch_get(raw, moves[k].raw_len))
        return -1;
      if (chunk_decode(p->r, &moves[k], src, raw->v, key) == -1) {
        refuse();
        return -1;
      }
      if (pack_writer_add(pw, moves[k].hash, moves[k].type, moves[k].comp, src, moves[k].stored_len,
                          moves[k].raw_len) == -1)
        return -1;
      *copied += moves[k].stored_len;
    }
  }
  return 0;
}

/* Copy every live chunk of the packs to rewrite into new packs; the pack
 * writer points their slots at the new packs once each is stored. */
static int rewrite(struct prune *p)
{
  VEC(struct index_slot) moves = {0};
  struct pack_writer *pw = NULL;
  struct scratch buf = {0}, raw = {0};
  _Atomic uint64_t copied = 0;
  struct progress_info pi = {.label = "prune: copying live chunks", .done = &copied};
  int ret = -1, shown = 0;
  for (size_t i = 0; i < p->ix->cap; i++) {
    struct index_slot *s = &p->ix->slots[i];
    if (s->used && s->marked && p->pk[s->pack].action == PACK_REWRITE) {
      if (vec_push(&moves, *s) == -1)
        goto out;
      pi.total += s->stored_len;
    }
  }
  if (moves.len == 0) {
    ret = 0;
    goto out;
  }
  progress_begin(p->o->progress, &pi);
  shown = 1;
  qsort(moves.v, moves.len, sizeof *moves.v, cmp_slot_place);
  pw = pack_writer_new(p->st, p->ix, p->r->keys, repo_io_threads(p->r, 1, 4));
  if (!pw)
    goto out;
  for (size_t i = 0, j; i < moves.len; i = j) {
    for (j = i + 1; j < moves.len && moves.v[j].pack == moves.v[i].pack; j++)
      ;
    if (copy_pack(p, pw, moves.v + i, j - i, &buf, &raw, &copied) == -1)
      goto out;
  }
  if (pack_writer_finish(pw) == -1)
    goto out;
  progress_end(p->o->progress);
  shown = 0;
  /* A new pack may come out byte for byte equal to one already listed (a
   * rerun after a kill rewrites the same chunks again): it was just stored
   * again, so it stays, whatever was planned for it. */
  for (size_t i = 0; i < moves.len; i++) {
    const struct index_slot *s = chunk_index_find(p->ix, moves.v[i].hash);
    if (s && s->pack < p->nold)
      p->pk[s->pack].action = PACK_KEEP;
  }
  p->res->packs_written = p->ix->packs.len - p->nold;
  for (size_t i = p->nold; i < p->ix->packs.len; i++) {
    char key[PACK_KEY_LEN];
    pack_key(p->ix->packs.v[i], key);
    say(p, "wrote %s (live chunks of rewritten packs)", key);
  }
  ret = 0;
out:
  if (shown)
    progress_end(p->o->progress);
  pack_writer_free(pw);
  vec_free(&moves);
  free(buf.v);
  free(raw.v);
  return ret;
}

/* ---- the merged index ---------------------------------------------------- */

/* Does the new index list slot s: its pack stays, or is new? */
static int slot_stays(const struct prune *p, const struct index_slot *s)
{
  if (!s->used || s->pack == PACK_PENDING)
    return 0;
  return s->pack >= p->nold || p->pk[s->pack].action == PACK_KEEP;
}

/* Write one index object of the entries e (packs named by pack_of, global
 * ordinals) and remember its name. */
static int put_index(struct prune *p, const struct chunk_entry *e, const uint32_t *pack_of,
                     size_t n, uint32_t *local)
{
  VEC(uint32_t) ords = {0};
  uint32_t *lpack = malloc(n * sizeof *lpack);
  uint8_t(*flat)[HASH_LEN] = NULL, *buf = NULL, *plain = NULL, h[HASH_LEN];
  size_t len, plen;
  char key[128], *name = NULL;
  int ret = -1;
  if (!lpack) {
    set_error(errno, "malloc");
    goto out;
  }
  for (size_t i = 0; i < n; i++) {
    if (local[pack_of[i]] == UINT32_MAX) {
      local[pack_of[i]] = (uint32_t)ords.len;
      if (vec_push(&ords, pack_of[i]) == -1)
        goto out;
    }
    lpack[i] = local[pack_of[i]];
  }
  flat = malloc(ords.len * HASH_LEN);
  if (!flat) {
    set_error(errno, "malloc");
    goto out;
  }
  for (size_t i = 0; i < ords.len; i++)
    memcpy(flat[i], p->ix->packs.v[ords.v[i]], HASH_LEN);
  if (index_encode((const uint8_t(*)[HASH_LEN])flat, (uint32_t)ords.len, e, lpack, n, &plain,
                   &plen) == -1 ||
      repo_seal(p->r, "index", plain, plen, &buf, &len) == -1)
    goto out;
  sha256(buf, len, h);
  name = malloc(2 * HASH_LEN + 1);
  if (!name) {
    set_error(errno, "malloc");
    goto out;
  }
  hex_encode(h, HASH_LEN, name);
  snprintf(key, sizeof key, "index/%s", name);
  if (store_put(p->st, key, buf, len, 0) == -1 || vec_push(&p->new_index, name) == -1)
    goto out;
  name = NULL;
  say(p, "wrote %s (%zu chunks in %zu packs)", key, n, ords.len);
  p->res->index_written++;
  ret = 0;
out:
  for (size_t i = 0; i < ords.len; i++)
    local[ords.v[i]] = UINT32_MAX;
  free(name);
  free(buf);
  free(plain);
  free(flat);
  free(lpack);
  vec_free(&ords);
  return ret;
}

/* Write merged index objects listing every chunk of every kept or new
 * pack, PRUNE_INDEX_ENTRIES to an object. */
static int write_index(struct prune *p)
{
  VEC(struct chunk_entry) e = {0};
  VEC(uint32_t) pack_of = {0};
  uint32_t *local = malloc((p->ix->packs.len ? p->ix->packs.len : 1) * sizeof *local);
  int ret = -1;
  if (!local) {
    set_error(errno, "malloc");
    goto out;
  }
  for (size_t i = 0; i < p->ix->packs.len; i++)
    local[i] = UINT32_MAX;
  for (size_t i = 0; i < p->ix->cap; i++) {
    const struct index_slot *s = &p->ix->slots[i];
    if (!slot_stays(p, s))
      continue;
    struct chunk_entry ce = {.type = s->type,
                             .comp = s->comp,
                             .stored_len = s->stored_len,
                             .raw_len = s->raw_len,
                             .offset = s->offset};
    memcpy(ce.hash, s->hash, HASH_LEN);
    if (vec_push(&e, ce) == -1 || vec_push(&pack_of, s->pack) == -1)
      goto out;
    if (e.len == PRUNE_INDEX_ENTRIES) {
      if (put_index(p, e.v, pack_of.v, e.len, local) == -1)
        goto out;
      e.len = pack_of.len = 0;
    }
  }
  if (e.len && put_index(p, e.v, pack_of.v, e.len, local) == -1)
    goto out;
  ret = 0;
out:
  free(local);
  vec_free(&e);
  vec_free(&pack_of);
  return ret;
}

/* ---- deletes --------------------------------------------------------------- */

static int is_new_index(const struct prune *p, const char *name)
{
  for (size_t i = 0; i < p->new_index.len; i++)
    if (strcmp(p->new_index.v[i], name) == 0)
      return 1;
  return 0;
}

/* Delete the index objects loaded (all replaced by the merged ones). */
static int delete_old_index(struct prune *p)
{
  for (size_t i = 0; i < p->index_keys.len; i++) {
    const char *key = p->index_keys.v[i];
    if (is_new_index(p, key + strlen("index/")))
      continue; /* the merged index came out the same: it stays */
    if (store_del(p->st, key) == -1)
      return -1;
    say(p, "deleted %s (merged)", key);
  }
  return 0;
}

/* Delete (or, with dry_run, report) the dead and the rewritten packs. */
static int delete_packs(struct prune *p)
{
  char key[PACK_KEY_LEN];
  for (size_t i = 0; i < p->nold; i++) {
    struct pack_info *pi = &p->pk[i];
    if (pi->action != PACK_DELETE && pi->action != PACK_REWRITE)
      continue;
    pack_key(p->ix->packs.v[i], key);
    if (pi->action == PACK_DELETE)
      p->res->packs_deleted++;
    else
      p->res->packs_rewritten++;
    p->res->bytes_deleted += pi->size;
    if (pi->action == PACK_DELETE)
      say(p, "%s %s (%llu bytes, no snapshot references it)",
          p->o->dry_run ? "would delete" : "deleted", key, (unsigned long long)pi->size);
    else
      say(p, "%s %s (%llu of %llu bytes in use)", p->o->dry_run ? "would rewrite" : "rewrote", key,
          (unsigned long long)(pi->size - pi->unused), (unsigned long long)pi->size);
    if (!p->o->dry_run && store_del(p->st, key) == -1)
      return -1;
  }
  return 0;
}

/* Did this run store the unindexed pack named key (a rerun after a kill
 * writes the pack the killed run left unindexed again, and now indexes it)? */
static int written_now(const struct prune *p, const char *key)
{
  const char *name = strrchr(key, '/');
  uint8_t h[HASH_LEN];
  if (!name || hex_decode(name + 1, h, HASH_LEN) == -1)
    return 0;
  for (size_t i = p->nold; i < p->ix->packs.len; i++)
    if (memcmp(p->ix->packs.v[i], h, HASH_LEN) == 0)
      return 1;
  return 0;
}

/* Remove (or report) the leftovers older than the grace period. An age the
 * store did not report counts as young unless the grace is 0. */
static int remove_leftovers(struct prune *p)
{
  for (size_t i = 0; i < p->leftovers.len; i++) {
    struct leftover *l = &p->leftovers.v[i];
    int old = p->o->grace <= 0 || (l->mtime > 0 && p->now - l->mtime >= p->o->grace);
    if (!l->temp && written_now(p, l->name))
      continue;
    if (!old) {
      p->res->leftovers_kept++;
      continue;
    }
    say(p, "%s %s %s (%llu bytes, %lld s old)", p->o->dry_run ? "would remove" : "removed",
        l->temp ? "temporary leftover" : "unindexed pack", l->name, (unsigned long long)l->size,
        (long long)(l->mtime > 0 ? p->now - l->mtime : -1));
    if (!p->o->dry_run &&
        (l->temp ? store_remove_temp(p->st, l->name) : store_del(p->st, l->name)) == -1)
      return -1;
    if (l->temp)
      p->res->leftover_temp++;
    else
      p->res->leftover_packs++;
    p->res->leftover_bytes += l->size;
  }
  return 0;
}

/* ---- the whole run ----------------------------------------------------------- */

static int changes_anything(const struct prune *p)
{
  for (size_t i = 0; i < p->nold; i++)
    if (p->pk[i].action != PACK_KEEP)
      return 1;
  return p->index_keys.len > 1;
}

static void account_after(struct prune *p)
{
  struct prune_result *res = p->res;
  res->packs_after = 0;
  res->bytes_after = 0;
  for (size_t i = 0; i < p->nold; i++)
    if (p->pk[i].listed && p->pk[i].action == PACK_KEEP) {
      res->packs_after++;
      res->bytes_after += p->pk[i].size;
    }
  /* The new packs: their chunks, a trailer entry each, header and footer. */
  res->bytes_written = 0;
  for (size_t i = 0; i < p->ix->cap; i++) {
    const struct index_slot *s = &p->ix->slots[i];
    if (s->used && s->pack != PACK_PENDING && s->pack >= p->nold)
      res->bytes_written += s->stored_len + PACK_ENTRY_LEN;
  }
  res->bytes_written += (uint64_t)res->packs_written * (PACK_HEADER_LEN + PACK_FOOTER_LEN);
  if (p->o->dry_run) {
    /* Estimate: the live bytes of rewritten packs move to new packs of
     * the pack writer's 16 MiB. */
    for (size_t i = 0; i < p->nold; i++)
      if (p->pk[i].action == PACK_REWRITE)
        res->bytes_written += p->pk[i].size - p->pk[i].unused;
    res->packs_written = (size_t)((res->bytes_written + (16u << 20) - 1) / (16u << 20));
  }
  res->packs_after += res->packs_written;
  res->bytes_after += res->bytes_written;
}

/* Before each deleting step: the exclusive lock is still held and fresh, so
 * no backup can have started beside us (docs/FORMAT.md, Locks). */
static int still_locked(const struct prune *p)
{
  if (p->o->dry_run || repo_check_lock(p->r) == 0)
    return 0;
  prefix_error("prune stopped");
  return -1;
}

static void say_line(void *opaque, const char *line)
{
  say(opaque, "%s", line);
}

/* An Object Lock repository: what prune hid goes once its retention ends,
 * and what stays is retained again for the lock days. */
static int lock_upkeep(struct prune *p)
{
  struct lock_upkeep u;
  if (repo_lock_upkeep(p->r, p->o->dry_run, say_line, p, &u) == -1)
    return -1;
  p->res->lock_renewed = u.renewed;
  p->res->lock_purged = u.purged;
  p->res->lock_purged_bytes = u.purged_bytes;
  p->res->lock_waiting = u.waiting;
  p->res->lock_waiting_bytes = u.waiting_bytes;
  p->res->lock_waiting_until = u.waiting_until;
  return 0;
}

static int run(struct prune *p)
{
  if (repo_check_hidden_snapshots(p->r) == -1 || load_index(p) == -1 || mark(p) == -1 ||
      list_packs(p) == -1 || tally(p) == -1 || plan(p) == -1)
    return -1;
  int change = changes_anything(p);
  if (!p->o->dry_run && change) {
    /* Crash safety: new packs durable, then the new index, then the old
     * index objects go, then the packs (docs/FORMAT.md, Prune). */
    if (rewrite(p) == -1 || write_index(p) == -1 || still_locked(p) == -1 ||
        delete_old_index(p) == -1)
      return -1;
  } else if (p->o->dry_run && change) {
    /* The estimate: what stays, and the live chunks of rewritten packs. */
    size_t n = 0;
    for (size_t i = 0; i < p->ix->cap; i++) {
      const struct index_slot *s = &p->ix->slots[i];
      n += slot_stays(p, s) || (s->used && s->marked && p->pk[s->pack].action == PACK_REWRITE);
    }
    p->res->index_written = (n + PRUNE_INDEX_ENTRIES - 1) / PRUNE_INDEX_ENTRIES;
    say(p, "would merge %zu index objects into %zu", p->index_keys.len, p->res->index_written);
  }
  if (still_locked(p) == -1 || delete_packs(p) == -1)
    return -1;
  account_after(p);
  if (still_locked(p) == -1 || remove_leftovers(p) == -1)
    return -1;
  return still_locked(p) == -1 ? -1 : lock_upkeep(p);
}

int repo_prune(struct repo *r, const struct prune_opts *o, struct prune_result *res)
{
  struct prune p = {.r = r, .st = r->store, .o = o, .res = res, .now = (int64_t)time(NULL)};
  memset(res, 0, sizeof *res);
#ifdef PL_TEST_HOOKS
  struct kill_store ks = {.base = *r->store, .inner = r->store};
  ks.base.ops = &kill_ops;
  const char *k = getenv("PILOTLIGHT_TEST_PRUNE_KILL_AT");
  if (k && *k) {
    ks.at = strtol(k, NULL, 10);
    p.st = &ks.base;
  }
#endif
  int ret = run(&p);
  strings_free(&p.index_keys);
  strings_free(&p.new_index);
  for (size_t i = 0; i < p.leftovers.len; i++)
    free(p.leftovers.v[i].name);
  vec_free(&p.leftovers);
  free(p.pk);
  return ret;
}
