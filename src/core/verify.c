/* Repository verification: structure (snapshots, block-map pages, index
 * entries, pack sizes and trailers) and, with read_data, every byte of every
 * pack. Problems are reported one line each, with the snapshots they hit,
 * and recorded in a damage record that every client then heeds. */
#include "repo-internal.h"
#include "versions.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/error.h"
#include "../util/hash.h"
#include "../util/compiler.h"
#include "forget.h"

#define MAX_PACK_BYTES (1u << 30)

struct verifier {
  struct repo *r;
  void (*report)(void *, const char *);
  void *opaque;
  struct verify_report *rep;
  struct damage found;         /* what this run found, to record */
  _Atomic uint64_t read_bytes; /* of the packs read, for progress */
};

static void problem(struct verifier *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(struct verifier *v, const char *fmt, ...)
{
  char msg[1200];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  v->rep->damaged++;
  v->report(v->opaque, msg);
}

static int found_chunk(struct verifier *v, const uint8_t chunk[HASH_LEN],
                       const uint8_t pack[HASH_LEN])
{
  struct damage_chunk c;
  memcpy(c.chunk, chunk, HASH_LEN);
  memcpy(c.pack, pack, HASH_LEN);
  return vec_push(&v->found.chunks, c);
}

static int found_pack(struct verifier *v, const uint8_t pack[HASH_LEN], uint8_t kind)
{
  struct damage_pack p = {.kind = kind};
  memcpy(p.pack, pack, HASH_LEN);
  return vec_push(&v->found.packs, p);
}

static int found_name(struct verifier *v, void *list, const char *hexname)
{
  VEC(struct damage_name) *l = list;
  struct damage_name n = {{0}};
  if (strlen(hexname) != 2 * HASH_LEN || hex_decode(hexname, n.h, HASH_LEN) == -1)
    return 0;
  (void)v;
  return vec_push(l, n);
}

/* Decode every chunk the index finds in pack ord, from the pack's bytes
 * (buf, len), marking the ones that fail. */
static int check_indexed_chunks(struct verifier *v, uint32_t ord, const char *key,
                                const uint8_t *buf, size_t len)
{
  struct chunk_index *ix = v->r->ix;
  for (size_t i = 0; i < ix->cap; i++) {
    struct index_slot *s = &ix->slots[i];
    if (!s->used || s->pack != ord || s->damaged)
      continue;
    uint8_t *dst = malloc(s->raw_len ? s->raw_len : 1);
    if (!dst) {
      set_error(ENOMEM, "verify");
      return -1;
    }
    if (s->offset + s->stored_len > len || chunk_decode(v->r, s, buf + s->offset, dst, key) == -1) {
      char hex[2 * HASH_LEN + 1];
      hex_encode(s->hash, HASH_LEN, hex);
      problem(v, "chunk %.16s in %s cannot be read (damaged pack)", hex, key);
      s->damaged = 1;
      if (found_chunk(v, s->hash, ix->packs.v[ord]) == -1) {
        free(dst);
        return -1;
      }
    }
    free(dst);
    v->rep->chunks++;
  }
  return 0;
}

/* A pack whose trailer cannot be read: missing, truncated (its indexed
 * chunks reach past its end) or with a damaged trailer, which costs nothing
 * while the index lists its chunks. */
static int check_pack_without_trailer(struct verifier *v, uint32_t ord, const char *key,
                                      int read_data)
{
  struct repo *r = v->r;
  const uint8_t *ph = r->ix->packs.v[ord];
  char why[800];
  uint64_t size = 0, need = 0;
  size_t nidx = 0;
  uint8_t *buf = NULL;
  size_t len = 0;
  int ret = -1;
  int missing = get_errno() == ENOENT;
  snprintf(why, sizeof why, "%s", get_error());
  for (size_t i = 0; i < r->ix->cap; i++) {
    const struct index_slot *s = &r->ix->slots[i];
    if (s->used && s->pack == ord) {
      nidx++;
      if (s->offset + s->stored_len > need)
        need = s->offset + s->stored_len;
    }
  }
  if (!missing && store_head(r->store, key, &size) == -1)
    missing = get_errno() == ENOENT;
  if (missing) {
    problem(v, "%s is missing: the %zu chunk(s) the index lists in it are lost", key, nidx);
    for (size_t i = 0; i < r->ix->cap; i++)
      if (r->ix->slots[i].used && r->ix->slots[i].pack == ord)
        r->ix->slots[i].damaged = 1;
    return found_pack(v, ph, DAMAGE_MISSING);
  }
  if (size < need + PACK_FOOTER_LEN) {
    problem(v, "%s is truncated (%llu bytes; its chunks need %llu): chunks past its end are lost",
            key, (unsigned long long)size, (unsigned long long)(need + PACK_FOOTER_LEN));
    for (size_t i = 0; i < r->ix->cap; i++) {
      struct index_slot *s = &r->ix->slots[i];
      if (s->used && s->pack == ord && s->offset + s->stored_len > size)
        s->damaged = 1;
    }
    if (found_pack(v, ph, DAMAGE_TRUNCATED) == -1)
      return -1;
  } else {
    problem(v,
            "%s: trailer damaged (%s); its %zu chunks are readable through the index; pilotlight "
            "repair rewrites the pack",
            key, why, nidx);
    if (found_pack(v, ph, DAMAGE_TRAILER) == -1)
      return -1;
  }
  if (!read_data)
    return 0;
  if (store_get(r->store, key, MAX_PACK_BYTES, (void **)&buf, &len) == -1) {
    problem(v, "%s: %s", key, get_error());
    return 0;
  }
  ret = check_indexed_chunks(v, ord, key, buf, len);
  free(buf);
  return ret;
}

/* Check one pack: its trailer agrees with the index; with read_data, its
 * content matches its name and every chunk copy in it decodes to its hash
 * (copies the index does not use too: a record must name them, or a later
 * load could prefer them). */
static int check_pack(struct verifier *v, uint32_t ord, int read_data)
{
  struct repo *r = v->r;
  const uint8_t *ph = r->ix->packs.v[ord];
  char key[PACK_KEY_LEN];
  struct chunk_entry *e = NULL;
  uint32_t n = 0;
  uint64_t size;
  uint8_t *buf = NULL, *dst = NULL;
  size_t len;
  int ret = -1;
  pack_key(ph, key);
  if (repo_read_trailer(r, ph, &e, &n, &size) == -1)
    return check_pack_without_trailer(v, ord, key, read_data);
  /* Every index entry for this pack must match a trailer entry. */
  for (size_t i = 0; i < r->ix->cap; i++) {
    struct index_slot *s = &r->ix->slots[i];
    if (!s->used || s->pack != ord)
      continue;
    int found = 0;
    for (uint32_t k = 0; k < n && !found; k++)
      found = memcmp(e[k].hash, s->hash, HASH_LEN) == 0 && e[k].offset == s->offset &&
              e[k].stored_len == s->stored_len;
    if (!found) {
      char hex[2 * HASH_LEN + 1];
      hex_encode(s->hash, HASH_LEN, hex);
      problem(v, "%s: the index lists chunk %.16s that the pack does not hold", key, hex);
      s->damaged = 1;
      if (found_chunk(v, s->hash, ph) == -1)
        goto out;
    }
  }
  if (read_data) {
    if (store_get(r->store, key, MAX_PACK_BYTES, (void **)&buf, &len) == -1) {
      problem(v, "%s: %s", key, get_error());
      ret = 0;
      goto out;
    }
    v->read_bytes += len;
    /* The trailer matched the name; the header and every chunk remain. */
    if (len < PACK_HEADER_LEN || memcmp(buf, PACK_MAGIC, PACK_HEADER_LEN) != 0)
      problem(v, "%s: pack header is damaged", key);
    for (uint32_t k = 0; k < n; k++) {
      struct index_slot t = {.stored_len = e[k].stored_len,
                             .raw_len = e[k].raw_len,
                             .type = e[k].type,
                             .comp = e[k].comp,
                             .offset = e[k].offset};
      memcpy(t.hash, e[k].hash, HASH_LEN);
      free(dst);
      dst = malloc(t.raw_len ? t.raw_len : 1);
      if (!dst) {
        set_error(ENOMEM, "verify");
        goto out;
      }
      if (t.offset + t.stored_len > len || chunk_decode(r, &t, buf + t.offset, dst, key) == -1) {
        problem(v, "%s", get_error());
        struct index_slot *s = chunk_index_find(r->ix, e[k].hash);
        if (s && s->pack == ord)
          s->damaged = 1;
        if (found_chunk(v, e[k].hash, ph) == -1)
          goto out;
      }
      v->rep->chunks++;
    }
  }
  ret = 0;
out:
  free(dst);
  free(buf);
  free(e);
  return ret;
}

/* The byte ranges of lost blocks, merged while they touch. */
struct lost_run {
  void (*lost)(void *opaque, uint64_t off, uint64_t len);
  void *opaque;
  uint64_t off, end, blocks;
};

static void lose(struct lost_run *l, uint64_t off, uint64_t len)
{
  l->blocks++;
  if (l->end && l->end == off) {
    l->end += len;
    return;
  }
  if (l->end && l->lost)
    l->lost(l->opaque, l->off, l->end - l->off);
  l->off = off;
  l->end = off + len;
}

uint64_t repo_snapshot_lost(struct repo *r, const struct snapshot *s,
                            void (*lost)(void *opaque, uint64_t off, uint64_t len), void *opaque)
{
  struct lost_run l = {lost, opaque, 0, 0, 0};
  uint64_t nblocks = blocks_for(s->size, s->block_size);
  for (size_t p = 0; p < s->pages.len; p++) {
    uint64_t first = (uint64_t)p * s->page_entries;
    uint64_t count = nblocks - first < s->page_entries ? nblocks - first : s->page_entries;
    void *data = NULL;
    size_t len;
    if (hash_is_zero(s->pages.v[p]))
      continue;
    if (repo_read_chunk(r, s->pages.v[p], &data, &len) == -1 || len != count * HASH_LEN) {
      for (uint64_t i = 0; i < count; i++) {
        uint64_t off = (first + i) * s->block_size;
        lose(&l, off, s->size - off < s->block_size ? s->size - off : s->block_size);
      }
      free(data);
      continue;
    }
    const uint8_t(*h)[HASH_LEN] = data;
    for (uint64_t i = 0; i < count; i++) {
      uint64_t off = (first + i) * s->block_size;
      uint64_t blen = s->size - off < s->block_size ? s->size - off : s->block_size;
      if (hash_is_zero(h[i]))
        continue;
      struct index_slot *cs = chunk_index_find(r->ix, h[i]);
      if (!cs || cs->pack == PACK_PENDING || cs->damaged || cs->raw_len != blen)
        lose(&l, off, blen);
    }
    free(data);
  }
  if (l.end && l.lost)
    l.lost(l.opaque, l.off, l.end - l.off);
  return l.blocks;
}

struct first_lost {
  uint64_t off;
  int set;
};

static void note_first(void *opaque, uint64_t off, uint64_t len PL_UNUSED)
{
  struct first_lost *f = opaque;
  if (!f->set) {
    f->off = off;
    f->set = 1;
  }
}

/* Report how a snapshot is affected by missing or damaged chunks. */
static int check_snapshot(struct verifier *v, const struct snapshot *s)
{
  struct first_lost f = {0, 0};
  uint64_t bad = repo_snapshot_lost(v->r, s, note_first, &f);
  if (!bad)
    return 0;
  problem(v,
          "snapshot %.12s of disk %s is damaged: %llu block(s) unreadable, the first at "
          "offset %llu",
          s->id, s->disk, (unsigned long long)bad, (unsigned long long)f.off);
  for (size_t i = 0; i < v->rep->disks.len; i++)
    if (strcmp(v->rep->disks.v[i], s->disk) == 0)
      return 0;
  char *d = strdup(s->disk), *src = strdup(s->source);
  if (!d || !src || vec_push(&v->rep->disks, d) == -1) {
    free(d);
    free(src);
    set_error(ENOMEM, "verify");
    return -1;
  }
  if (vec_push(&v->rep->sources, src) == -1) {
    free(src);
    v->rep->disks.len--;
    free(d);
    set_error(ENOMEM, "verify");
    return -1;
  }
  return 0;
}

struct pack_listing {
  const struct chunk_index *ix;
  struct verify_report *rep;
};

static int count_unreferenced(void *opaque, const char *key, uint64_t size, int64_t mtime PL_UNUSED)
{
  struct pack_listing *l = opaque;
  const char *name = strrchr(key, '/');
  uint8_t h[HASH_LEN];
  if (!name || strlen(name + 1) != 2 * HASH_LEN || hex_decode(name + 1, h, HASH_LEN) == -1)
    return 0;
  if (chunk_index_find_pack(l->ix, h) != -1)
    return 0;
  l->rep->unreferenced_packs++;
  l->rep->unreferenced_bytes += size;
  return 0;
}

static int count_temp(void *opaque, const char *name PL_UNUSED, uint64_t size,
                      int64_t mtime PL_UNUSED)
{
  struct verify_report *rep = opaque;
  rep->temp_leftovers++;
  rep->temp_bytes += size;
  return 0;
}

/* Packs no index object lists, and temporary leftovers: both left by
 * interrupted or running backups, and both prune's to remove. */
static int check_unreferenced(struct verifier *v)
{
  /* A read-only user may be denied the listing of uploads; the note is
   * informational, so that is no reason to fail. */
  if (store_list_temp(v->r->store, count_temp, v->rep) == -1) {
    if (get_errno() != EACCES)
      return -1;
    v->rep->temp_leftovers = v->rep->temp_bytes = 0;
  }
  struct pack_listing l = {v->r->ix, v->rep};
  return store_list(v->r->store, "packs/", count_unreferenced, &l);
}

/* Write what this run found as a damage record; with read_data the run was
 * complete, so older records are superseded. */
static void record(struct verifier *v, int read_data)
{
  struct repo *r = v->r;
  char name[2 * HASH_LEN + 1] = "", key[128];
  if (!damage_is_empty(&v->found)) {
    char *text = damage_encode(&v->found);
    if (!text || repo_put_hashed(r, "damage", text, strlen(text), 0, name) == -1) {
      repo_warn(r,
                "the damage found could not be recorded in the repository (%s): backups may "
                "reuse damaged chunks until a verify --read-data with write access records it",
                get_error());
      v->rep->record_failed = 1;
      free(text);
      return;
    }
    free(text);
    snprintf(v->rep->record, sizeof v->rep->record, "%s", name);
  }
  if (!read_data)
    return;
  snprintf(key, sizeof key, "damage/%s", name);
  for (size_t i = 0; i < r->damage_keys.len; i++)
    if (strcmp(r->damage_keys.v[i], key) != 0 && store_del(r->store, r->damage_keys.v[i]) == -1)
      repo_warn(r, "%s", get_error());
}

void verify_report_clear(struct verify_report *rep)
{
  strings_free(&rep->disks);
  strings_free(&rep->sources);
}

/* Whether pack ph falls in the slice a partial read covers. */
static int in_slice(const uint8_t *ph, unsigned slices, unsigned slice)
{
  uint32_t v = (uint32_t)ph[0] << 24 | (uint32_t)ph[1] << 16 | (uint32_t)ph[2] << 8 | ph[3];
  return slices <= 1 || v % slices == slice;
}

int repo_verify(struct repo *r, unsigned read_slices, unsigned slice,
                void (*report)(void *opaque, const char *msg), void *opaque,
                struct verify_report *rep, const struct progress_ops *progress)
{
  int read_data = read_slices == 1;
  struct verifier v = {.r = r, .report = report, .opaque = opaque, .rep = rep};
  struct strings keys = {0};
  int ret = -1, shown = 0;
  memset(rep, 0, sizeof *rep);
  /* Snapshots first, then the index objects written since open: every
   * listed snapshot's index object was written before it (commit order),
   * so a backup running beside us causes no false damage. */
  if (store_list_keys(r->store, "snapshots/", &keys) == -1 || repo_load_index(r) == -1)
    goto out;
  /* Judge afresh: the records loaded at open say what an earlier run saw. */
  for (size_t i = 0; i < r->ix->cap; i++)
    r->ix->slots[i].damaged = 0;
  for (size_t i = 0; i < r->bad_index.len; i++) {
    problem(&v,
            "%s is damaged or malformed; its packs' chunks are found from their trailers; "
            "pilotlight repair rebuilds it",
            r->bad_index.v[i]);
    if (found_name(&v, &v.found.index, r->bad_index.v[i] + strlen("index/")) == -1)
      goto out;
  }
  /* What --read-data will read: the chunks of the packs in the slice. */
  struct progress_info pi = {.label = "verify --read-data", .done = &v.read_bytes};
  for (size_t i = 0; read_slices && i < r->ix->cap; i++) {
    const struct index_slot *s = &r->ix->slots[i];
    if (s->used && s->pack < r->ix->packs.len &&
        in_slice(r->ix->packs.v[s->pack], read_slices, slice))
      pi.total += s->stored_len;
  }
  shown = read_slices != 0;
  if (shown)
    progress_begin(progress, &pi);
  /* A chunk must be in an index and its pack must be readable. */
  for (uint32_t ord = 0; ord < r->ix->packs.len; ord++) {
    if (check_pack(&v, ord, read_slices && in_slice(r->ix->packs.v[ord], read_slices, slice)) == -1)
      goto out;
    rep->packs++;
  }
  if (shown)
    progress_end(progress);
  shown = 0;
  if (check_unreferenced(&v) == -1)
    goto out;
  for (size_t i = 0; i < keys.len; i++) {
    void *buf;
    size_t len;
    struct snapshot s;
    const char *name = keys.v[i] + strlen("snapshots/");
    if (repo_get_hashed(r, keys.v[i], name, MAX_SNAPSHOT_BYTES, &buf, &len) == -1) {
      problem(&v, "%s; every command skips it; pilotlight repair moves it aside", get_error());
      if (found_name(&v, &v.found.snapshots, name) == -1)
        goto out;
      continue;
    }
    int rc = snapshot_decode(buf, len, &s);
    free(buf);
    if (rc == -1) {
      problem(&v, "%s: %s; every command skips it; pilotlight repair moves it aside", keys.v[i],
              get_error());
      snapshot_clear(&s);
      if (found_name(&v, &v.found.snapshots, name) == -1)
        goto out;
      continue;
    }
    snprintf(s.id, sizeof s.id, "%s", name);
    rc = check_snapshot(&v, &s);
    snapshot_clear(&s);
    if (rc == -1)
      goto out;
    rep->snapshots++;
  }
  if (repo_verify_deletions(r, report, opaque, &rep->damaged) == -1)
    goto out;
  /* An Object Lock bucket: objects someone hid or shadowed. */
  struct undelete_result hid;
  if (repo_undelete(r, 0, 1, report, opaque, &hid) == -1) {
    if (get_errno() != EACCES)
      goto out;
    repo_warn(r, "hidden and shadowed objects not checked: these credentials may not list "
                 "versions (s3:ListBucketVersions)");
    memset(&hid, 0, sizeof hid);
  }
  rep->hidden = hid.hidden + hid.shadowed;
  rep->damaged += rep->hidden;
  /* What a hidden object makes look missing or damaged is not damage:
   * undelete brings it back, and a record would keep it out of use. */
  if (!rep->hidden)
    record(&v, read_data);
  ret = 0;
out:
  if (shown)
    progress_end(progress);
  strings_free(&keys);
  damage_clear(&v.found);
  return ret;
}
