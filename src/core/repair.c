/* Damage records (loaded at open, so every client treats recorded copies as
 * absent) and repair, which acts on them: salvage, drop, re-index,
 * quarantine, then report what stays damaged. */
#include "repair.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/compiler.h"
#include "../util/error.h"
#include "../util/hash.h"
#include "pack-writer.h"
#include "repo-internal.h"

#define MAX_PACK_BYTES (1u << 30)

int repo_load_damage(struct repo *r)
{
  struct strings keys = {0};
  int ret = -1;
  if (store_list_keys(r->store, "damage/", &keys) == -1)
    goto out;
  for (size_t i = 0; i < keys.len; i++) {
    struct damage d;
    void *buf;
    size_t len;
    if (repo_get_hashed(r, keys.v[i], keys.v[i] + strlen("damage/"), MAX_DAMAGE_BYTES, &buf,
                        &len) == -1) {
      if (get_errno() == ENOMEM)
        goto out;
      repo_warn(r, "%s; ignored (pilotlight verify --read-data records the damage again)",
                get_error());
      continue;
    }
    int rc = damage_decode(buf, len, &d);
    free(buf);
    if (rc == -1) {
      repo_warn(r, "%s: %s; ignored (pilotlight verify --read-data records the damage again)",
                keys.v[i], get_error());
      damage_clear(&d);
      continue;
    }
    rc = damage_merge(&r->damage, &d);
    damage_clear(&d);
    if (rc == -1 || vec_push(&r->damage_keys, keys.v[i]) == -1)
      goto out;
    keys.v[i] = NULL;
  }
  damage_sort(&r->damage);
  ret = 0;
out:
  strings_free(&keys);
  return ret;
}

static int cmp_pack_key(const void *key, const void *elem)
{
  return memcmp(key, ((const struct damage_pack *)elem)->pack, HASH_LEN);
}

int damage_pack_kind(const struct damage *d, const uint8_t pack[HASH_LEN])
{
  const struct damage_pack *p =
      d->packs.len ? bsearch(pack, d->packs.v, d->packs.len, sizeof *d->packs.v, cmp_pack_key)
                   : NULL;
  return p ? p->kind : 0;
}

static int cmp_chunk_key(const void *key, const void *elem)
{
  return memcmp(key, elem, sizeof(struct damage_chunk));
}

int damage_has_copy(const struct damage *d, const uint8_t chunk[HASH_LEN],
                    const uint8_t pack[HASH_LEN])
{
  int kind = damage_pack_kind(d, pack);
  struct damage_chunk c;
  if (kind == DAMAGE_MISSING || kind == DAMAGE_TRUNCATED)
    return 1;
  if (!d->chunks.len)
    return 0;
  memcpy(c.chunk, chunk, HASH_LEN);
  memcpy(c.pack, pack, HASH_LEN);
  return bsearch(&c, d->chunks.v, d->chunks.len, sizeof c, cmp_chunk_key) != NULL;
}

/* ---- repair ------------------------------------------------------------ */

struct repairer {
  struct repo *r;
  int dry;
  const struct repair_ops *ops;
  struct repair_report *rep;
  struct damage bad; /* bad.index: the hashes of the packs to rewrite and move aside */
};

static void action(struct repairer *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void action(struct repairer *p, const char *fmt, ...)
{
  char msg[1200];
  va_list ap;
  int n = snprintf(msg, sizeof msg, "%s", p->dry ? "(dry run) " : "");
  va_start(ap, fmt);
  vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
  va_end(ap);
  if (p->ops && p->ops->action)
    p->ops->action(p->ops->opaque, msg);
}

static int cmp_name_key(const void *key, const void *elem)
{
  return memcmp(key, ((const struct damage_name *)elem)->h, HASH_LEN);
}

static int is_bad_pack(const struct repairer *p, const uint8_t h[HASH_LEN])
{
  return p->bad.index.len &&
         bsearch(h, p->bad.index.v, p->bad.index.len, HASH_LEN, cmp_name_key) != NULL;
}

/* The packs to rewrite: every pack a record names. */
static int plan_packs(struct repairer *p)
{
  const struct damage *d = &p->r->damage;
  for (size_t i = 0; i < d->packs.len; i++) {
    struct damage_name n = {{0}};
    memcpy(n.h, d->packs.v[i].pack, HASH_LEN);
    if (vec_push(&p->bad.index, n) == -1)
      return -1;
  }
  for (size_t i = 0; i < d->chunks.len; i++) {
    struct damage_name n = {{0}};
    memcpy(n.h, d->chunks.v[i].pack, HASH_LEN);
    if (vec_push(&p->bad.index, n) == -1)
      return -1;
  }
  damage_sort(&p->bad);
  return 0;
}

/* Read one chunk copy through its index slot and check it. */
static int read_copy(struct repo *r, const struct index_slot *s, const char *key, uint8_t **src)
{
  uint8_t *dst = malloc(s->raw_len ? s->raw_len : 1);
  int ret = -1;
  *src = malloc(s->stored_len ? s->stored_len : 1);
  if (!*src || !dst) {
    set_error(ENOMEM, "reading a chunk");
    goto out;
  }
  if (store_get_range(r->store, key, s->offset, s->stored_len, *src) == -1 ||
      chunk_decode(r, s, *src, dst, key) == -1)
    goto out;
  ret = 0;
out:
  free(dst);
  if (ret == -1) {
    free(*src);
    *src = NULL;
  }
  return ret;
}

/* Every chunk the index finds in a damaged pack is either copied into a
 * new pack (readable: its hash checks) or dropped (recorded damaged, or
 * unreadable now). Afterwards no usable slot points into a damaged pack. */
static int salvage(struct repairer *p, struct pack_writer *pw)
{
  struct repo *r = p->r;
  struct chunk_index *ix = r->ix;
  VEC(struct index_slot *) todo = {0};
  size_t *kept = calloc(ix->packs.len + 1, sizeof *kept);
  size_t *dropped = calloc(ix->packs.len + 1, sizeof *dropped);
  size_t npacks = ix->packs.len;
  int ret = -1;
  if (!kept || !dropped) {
    set_error(ENOMEM, "repair");
    goto out;
  }
  /* Collect first: the uploader threads update slots while chunks go out. */
  for (size_t i = 0; i < ix->cap; i++) {
    struct index_slot *s = &ix->slots[i];
    if (!s->used || s->pack == PACK_PENDING)
      continue;
    if (s->damaged) {
      dropped[s->pack]++;
      p->rep->chunks_dropped++;
    } else if (is_bad_pack(p, ix->packs.v[s->pack]) && vec_push(&todo, s) == -1) {
      goto out;
    }
  }
  for (size_t i = 0; i < todo.len; i++) {
    struct index_slot *s = todo.v[i];
    char key[PACK_KEY_LEN];
    uint8_t *src = NULL;
    uint32_t ord = s->pack;
    pack_key(ix->packs.v[ord], key);
    if (read_copy(r, s, key, &src) == -1) {
      if (get_errno() == ENOMEM)
        goto out;
      s->damaged = 1;
      dropped[ord]++;
      p->rep->chunks_dropped++;
      continue;
    }
    kept[ord]++;
    p->rep->chunks_rewritten++;
    if (!p->dry) {
      uint8_t type = s->type, comp = s->comp;
      uint32_t stored = s->stored_len, raw = s->raw_len;
      pthread_mutex_lock(&ix->lock);
      s->pack = PACK_PENDING;
      s->indexed = 0;
      pthread_mutex_unlock(&ix->lock);
      int rc = pack_writer_add(pw, s->hash, type, comp, src, stored, raw);
      free(src);
      if (rc == -1)
        goto out;
    } else {
      free(src);
    }
  }
  for (size_t o = 0; o < npacks; o++) {
    char key[PACK_KEY_LEN];
    if (!kept[o] && !dropped[o])
      continue;
    pack_key(ix->packs.v[o], key);
    action(p,
           "%s: %zu readable chunk(s) copied to a new pack, %zu damaged or lost chunk(s) "
           "dropped from the index",
           key, kept[o], dropped[o]);
  }
  ret = 0;
out:
  vec_free(&todo);
  free(kept);
  free(dropped);
  return ret;
}

/* One index object's content, as decoded. */
struct index_content {
  VEC(struct damage_name) packs;
  VEC(struct chunk_entry) e;
  VEC(uint32_t) pack_of;
};

static int keep_pack(void *opaque, uint32_t ordinal PL_UNUSED, const uint8_t hash[HASH_LEN])
{
  struct index_content *c = opaque;
  struct damage_name n = {{0}};
  memcpy(n.h, hash, HASH_LEN);
  return vec_push(&c->packs, n);
}

static int keep_entry(void *opaque, uint32_t ordinal, const struct chunk_entry *e)
{
  struct index_content *c = opaque;
  if (vec_push(&c->e, *e) == -1 || vec_push(&c->pack_of, ordinal) == -1)
    return -1;
  return 0;
}

/* Replace one index object that lists a damaged pack with one that lists
 * everything else it listed, then delete it. */
static int rewrite_index(struct repairer *p, const char *key)
{
  struct repo *r = p->r;
  struct index_content c = {0}, n = {0};
  struct index_visitor v = {keep_pack, keep_entry, &c};
  uint32_t *map = NULL;
  uint8_t *out = NULL;
  void *buf = NULL;
  size_t len, outlen, nbad = 0;
  char name[2 * HASH_LEN + 1] = "";
  int ret = -1;
  if (repo_get_hashed(r, key, key + strlen("index/"), MAX_INDEX_BYTES, &buf, &len) == -1 ||
      index_decode(buf, len, repo_chunk_overhead(r), &v) == -1)
    goto out;
  map = malloc((c.packs.len ? c.packs.len : 1) * sizeof *map);
  if (!map) {
    set_error(ENOMEM, "repair");
    goto out;
  }
  for (size_t i = 0; i < c.packs.len; i++) {
    map[i] = UINT32_MAX;
    if (is_bad_pack(p, c.packs.v[i].h)) {
      nbad++;
      continue;
    }
    map[i] = (uint32_t)n.packs.len;
    if (vec_push(&n.packs, c.packs.v[i]) == -1)
      goto out;
  }
  if (!nbad) {
    ret = 0;
    goto out;
  }
  assert(c.pack_of.len == c.e.len);
  for (size_t i = 0; i < c.e.len; i++)
    if (map[c.pack_of.v[i]] != UINT32_MAX &&
        (vec_push(&n.e, c.e.v[i]) == -1 || vec_push(&n.pack_of, map[c.pack_of.v[i]]) == -1))
      goto out;
  assert(n.pack_of.len == n.e.len);
  if (n.e.len && !p->dry) {
    if (index_encode((const uint8_t(*)[HASH_LEN])n.packs.v, (uint32_t)n.packs.len, n.e.v,
                     n.pack_of.v, n.e.len, &out, &outlen) == -1 ||
        repo_put_hashed(r, "index", out, outlen, 0, name) == -1)
      goto out;
  }
  if (n.e.len)
    p->rep->index_written++;
  if (!p->dry && store_del(r->store, key) == -1 && get_errno() != ENOENT)
    goto out;
  p->rep->index_deleted++;
  if (n.e.len)
    action(p, "%s lists %zu damaged pack(s): replaced by index/%s with its other %zu entries", key,
           nbad, p->dry ? "(new)" : name, n.e.len);
  else
    action(p, "%s lists only damaged packs: deleted", key);
  ret = 0;
out:
  free(buf);
  free(out);
  free(map);
  vec_free(&c.packs);
  vec_free(&c.e);
  vec_free(&c.pack_of);
  vec_free(&n.packs);
  vec_free(&n.e);
  vec_free(&n.pack_of);
  return ret;
}

/* Move an object to quarantine/KEY, where no reader looks. A missing
 * object is left alone (returns 1), and so is one named by its hash
 * (hashed) whose content now matches: the index object rebuilt from the
 * pack trailers can equal the damaged one byte for byte, and is written
 * under the same name. */
static int quarantine(struct repairer *p, const char *key, int hashed)
{
  struct repo *r = p->r;
  char qkey[256];
  void *buf = NULL;
  size_t len;
  uint64_t size;
  int ret = -1;
  if (store_head(r->store, key, &size) == -1)
    return get_errno() == ENOENT ? 1 : -1;
  snprintf(qkey, sizeof qkey, "quarantine/%s", key);
  if (!p->dry) {
    if (store_get(r->store, key, MAX_PACK_BYTES, &buf, &len) == -1)
      goto out;
    const char *name = strrchr(key, '/');
    uint8_t want[HASH_LEN], got[HASH_LEN];
    sha256(buf, len, got);
    if (hashed && name && strlen(name + 1) == 2 * HASH_LEN &&
        hex_decode(name + 1, want, HASH_LEN) == 0 && memcmp(want, got, HASH_LEN) == 0) {
      action(p, "%s rebuilt from the pack trailers", key);
      ret = 1;
      goto out;
    }
    if (store_put(r->store, qkey, buf, len, 0) == -1 || store_del(r->store, key) == -1)
      goto out;
  }
  action(p, "%s moved to %s", key, qkey);
  ret = 0;
out:
  free(buf);
  return ret;
}

struct lost_ctx {
  char ranges[1100];
  size_t used;
};

static void add_range(void *opaque, uint64_t off, uint64_t len)
{
  struct lost_ctx *c = opaque;
  if (c->used + 48 >= sizeof c->ranges) {
    if (c->used + 5 < sizeof c->ranges && !strstr(c->ranges, "...")) {
      memcpy(c->ranges + c->used, " ...", 5);
      c->used += 4;
    }
    return;
  }
  c->used += (size_t)snprintf(c->ranges + c->used, sizeof c->ranges - c->used, "%s%llu+%llu",
                              c->used ? " " : "", (unsigned long long)off, (unsigned long long)len);
}

static int repair_objects(struct repairer *p, struct snapshot **snaps, size_t nsnaps)
{
  struct repo *r = p->r;
  struct pack_writer *pw = NULL;
  int ret = -1;
  /* Packs no index lists (their index object damaged or gone, or left by
   * an interrupted backup) are indexed again from their trailers. */
  if (plan_packs(p) == -1 || repo_adopt_packs(r) == -1)
    goto out;
  if (!p->dry) {
    pw = pack_writer_new(r->store, r->ix, r->keys, repo_io_threads(r, 1, 4));
    if (!pw)
      goto out;
  }
  if (salvage(p, pw) == -1)
    goto out;
  if (!p->dry) {
    if (pack_writer_finish(pw) == -1)
      goto out;
    size_t unindexed = 0;
    for (size_t i = 0; i < r->ix->cap; i++) {
      const struct index_slot *s = &r->ix->slots[i];
      unindexed += s->used && !s->indexed && !s->damaged && s->pack != PACK_PENDING;
    }
    /* Salvaged chunks, and the chunks of packs no index listed. */
    if (unindexed) {
      if (repo_write_index(r) == -1)
        goto out;
      p->rep->index_written++;
      action(p, "indexed %zu chunk(s) in a new index object", unindexed);
    }
  }
  for (size_t i = 0; i < r->loaded_index.len; i++)
    if (rewrite_index(p, r->loaded_index.v[i]) == -1)
      goto out;
  for (size_t i = 0; i < p->bad.index.len; i++) {
    char key[PACK_KEY_LEN];
    pack_key(p->bad.index.v[i].h, key);
    int rc = quarantine(p, key, 0);
    if (rc == -1)
      goto out;
    p->rep->packs_quarantined += rc == 0;
  }
  for (size_t i = 0; i < r->bad_index.len; i++) {
    int rc = quarantine(p, r->bad_index.v[i], 1);
    if (rc == -1)
      goto out;
    p->rep->index_quarantined += rc == 0;
  }
  for (size_t i = 0; i < r->bad_snapshots.len; i++) {
    int rc = quarantine(p, r->bad_snapshots.v[i], 0);
    if (rc == -1)
      goto out;
    p->rep->snapshots_quarantined += rc == 0;
  }
  for (size_t i = 0; i < r->damage_keys.len; i++) {
    if (!p->dry && store_del(r->store, r->damage_keys.v[i]) == -1 && get_errno() != ENOENT)
      goto out;
    p->rep->records_deleted++;
    action(p, "%s handled: deleted", r->damage_keys.v[i]);
  }
  for (size_t i = 0; i < nsnaps; i++) {
    struct lost_ctx c = {.used = 0};
    c.ranges[0] = 0;
    uint64_t n = repo_snapshot_lost(r, snaps[i], add_range, &c);
    if (!n)
      continue;
    p->rep->snapshots_damaged++;
    if (p->ops && p->ops->lost)
      p->ops->lost(p->ops->opaque, snaps[i], n, c.ranges);
  }
  ret = 0;
out:
  pack_writer_free(pw);
  return ret;
}

int repo_repair(struct repo *r, int dry_run, const struct repair_ops *ops,
                struct repair_report *rep)
{
  struct repairer p = {.r = r, .dry = dry_run, .ops = ops, .rep = rep};
  struct snapshot **snaps = NULL;
  size_t nsnaps = 0;
  int ret = -1;
  memset(rep, 0, sizeof *rep);
  /* Listing first finds the damaged snapshot objects to move aside. */
  if (repo_list_snapshots(r, NULL, &snaps, &nsnaps) == -1)
    goto out;
  /* The exclusive lock must still be held (docs/FORMAT.md, Locks). */
  if (!dry_run && repo_check_lock(r) == -1)
    goto out;
  ret = repair_objects(&p, snaps, nsnaps);
out:
  for (size_t i = 0; i < nsnaps; i++)
    snapshot_free(snaps[i]);
  free(snaps);
  damage_clear(&p.bad);
  return ret;
}
