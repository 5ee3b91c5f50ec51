/* Repository verification: structure (snapshots, block-map pages, index
 * entries, pack sizes and trailers) and, with read_data, every byte of every
 * pack. Problems are reported one line each, with the snapshots they hit. */
#include "repo-internal.h"

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
  uint8_t *pack_bad; /* by pack ordinal */
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

static int collect(void *opaque, const char *key, uint64_t size PL_UNUSED, int64_t mtime PL_UNUSED)
{
  VEC(char *) *keys = opaque;
  char *k = strdup(key);
  if (!k || vec_push(keys, k) == -1) {
    free(k);
    set_error(ENOMEM, "listing");
    return -1;
  }
  return 0;
}

/* Check one pack: its trailer agrees with the index; with read_data, its
 * content matches its name and every chunk decodes to its hash. */
static void check_pack(struct verifier *v, uint32_t ord, int read_data)
{
  struct repo *r = v->r;
  const uint8_t *ph = r->ix->packs.v[ord];
  char key[PACK_KEY_LEN];
  struct chunk_entry *e = NULL;
  uint32_t n = 0;
  uint64_t size;
  uint8_t *buf = NULL, *dst = NULL;
  size_t len;
  pack_key(ph, key);
  if (repo_read_trailer(r, ph, &e, &n, &size) == -1) {
    problem(v, "%s: %s", key, get_error());
    v->pack_bad[ord] = 1;
    return;
  }
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
    }
  }
  if (read_data) {
    if (store_get(r->store, key, MAX_PACK_BYTES, (void **)&buf, &len) == -1) {
      problem(v, "%s: %s", key, get_error());
      v->pack_bad[ord] = 1;
      goto out;
    }
    /* The trailer matched the name; the header and every chunk remain. */
    if (len < PACK_HEADER_LEN || memcmp(buf, PACK_MAGIC, PACK_HEADER_LEN) != 0)
      problem(v, "%s: pack header is damaged", key);
    for (uint32_t k = 0; k < n; k++) {
      struct index_slot *s = chunk_index_find(r->ix, e[k].hash);
      if (!s || s->pack != ord)
        continue; /* a duplicate kept elsewhere */
      free(dst);
      dst = malloc(s->raw_len);
      if (!dst || s->offset + s->stored_len > len ||
          chunk_decode(s, buf + s->offset, dst, key) == -1) {
        problem(v, "%s", dst ? get_error() : "out of memory");
        s->damaged = 1;
      }
      v->rep->chunks++;
    }
  }
out:
  free(dst);
  free(buf);
  free(e);
}

/* Report how a snapshot is affected by missing or damaged chunks. */
static void check_snapshot(struct verifier *v, const struct snapshot *s)
{
  struct repo *r = v->r;
  uint64_t nblocks = blocks_for(s->size, s->block_size), bad = 0, first_bad = 0;
  for (size_t p = 0; p < s->pages.len; p++) {
    uint64_t first = (uint64_t)p * s->page_entries;
    uint64_t count = nblocks - first < s->page_entries ? nblocks - first : s->page_entries;
    void *data = NULL;
    size_t len;
    if (hash_is_zero(s->pages.v[p]))
      continue;
    struct index_slot *ps = chunk_index_find(r->ix, s->pages.v[p]);
    if (!ps || ps->damaged || v->pack_bad[ps->pack] ||
        repo_read_chunk(r, s->pages.v[p], &data, &len) == -1 || len != count * HASH_LEN) {
      if (!bad)
        first_bad = first * s->block_size;
      bad += count;
      free(data);
      continue;
    }
    const uint8_t(*h)[HASH_LEN] = data;
    for (uint64_t i = 0; i < count; i++) {
      if (hash_is_zero(h[i]))
        continue;
      struct index_slot *cs = chunk_index_find(r->ix, h[i]);
      if (!cs || cs->damaged || v->pack_bad[cs->pack] ||
          cs->raw_len != (s->size - (first + i) * s->block_size < s->block_size
                              ? s->size - (first + i) * s->block_size
                              : s->block_size)) {
        if (!bad)
          first_bad = (first + i) * s->block_size;
        bad++;
      }
    }
    free(data);
  }
  if (bad)
    problem(v,
            "snapshot %.12s of disk %s is damaged: %llu block(s) unreadable, the first at "
            "offset %llu",
            s->id, s->disk, (unsigned long long)bad, (unsigned long long)first_bad);
}

int repo_verify(struct repo *r, int read_data, void (*report)(void *opaque, const char *msg),
                void *opaque, struct verify_report *rep)
{
  struct verifier v = {r, report, opaque, rep, NULL};
  VEC(char *) keys = {0};
  int ret = -1;
  memset(rep, 0, sizeof *rep);
  v.pack_bad = calloc(r->ix->packs.len + 1, 1);
  if (!v.pack_bad) {
    set_error(errno, "calloc");
    return -1;
  }
  /* A chunk must be in an index and its pack must be readable. */
  for (uint32_t ord = 0; ord < r->ix->packs.len; ord++) {
    check_pack(&v, ord, read_data);
    rep->packs++;
  }
  if (store_list(r->store, "snapshots/", collect, &keys) == -1)
    goto out;
  for (size_t i = 0; i < keys.len; i++) {
    void *buf;
    size_t len;
    struct snapshot s;
    const char *name = keys.v[i] + strlen("snapshots/");
    if (repo_get_hashed(r, keys.v[i], name, 512u << 20, &buf, &len) == -1) {
      problem(&v, "%s", get_error());
      continue;
    }
    int rc = snapshot_decode(buf, len, &s);
    free(buf);
    if (rc == -1) {
      problem(&v, "%s: %s", keys.v[i], get_error());
      continue;
    }
    snprintf(s.id, sizeof s.id, "%s", name);
    check_snapshot(&v, &s);
    snapshot_clear(&s);
    rep->snapshots++;
  }
  if (repo_verify_deletions(r, report, opaque, &rep->damaged) == -1)
    goto out;
  ret = 0;
out:
  for (size_t i = 0; i < keys.len; i++)
    free(keys.v[i]);
  vec_free(&keys);
  free(v.pack_bad);
  return ret;
}
