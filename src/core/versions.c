/* Object Lock repositories: purge and renewal for prune, undelete for
 * repair and verify. See versions.h and docs/FORMAT.md, "Object Lock". */
#include "versions.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../util/compiler.h"
#include "../util/error.h"
#include "../util/hash.h"
#include "../util/vec.h"
#include "forget.h"
#include "repo-internal.h"

/* The largest object undelete reads back: an index object is the largest. */
#define MAX_VERSION_BYTES ((size_t)MAX_INDEX_BYTES)

struct ver {
  char *key, *vid;
  uint64_t size;
  uint8_t marker;
};
typedef VEC(struct ver) ver_vec;

static int push_ver(void *opaque, const struct store_version *v)
{
  ver_vec *vv = opaque;
  struct ver x = {.key = strdup(v->key),
                  .vid = strdup(v->version_id),
                  .size = v->size,
                  .marker = (uint8_t)v->delete_marker};
  if (!x.key || !x.vid || vec_push(vv, x) == -1) {
    free(x.key);
    free(x.vid);
    set_error(ENOMEM, "listing versions");
    return -1;
  }
  return 0;
}

static void vers_free(ver_vec *vv)
{
  for (size_t i = 0; i < vv->len; i++) {
    free(vv->v[i].key);
    free(vv->v[i].vid);
  }
  vec_free(vv);
}

/* Every version under prefix, each key's newest first (the S3 order). */
static int load_versions(struct store *st, const char *prefix, ver_vec *vv)
{
  if (st->ops->list_versions(st, prefix, push_ver, vv) == -1) {
    vers_free(vv);
    return -1;
  }
  return 0;
}

/* The number of versions from i on that share v[i]'s key. */
static size_t group_len(const ver_vec *vv, size_t i)
{
  size_t j = i + 1;
  while (j < vv->len && strcmp(vv->v[j].key, vv->v[i].key) == 0)
    j++;
  return j - i;
}

static int starts(const char *s, const char *prefix)
{
  return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Are len bytes what the 64 hex digits that end key name: their SHA-256, or
 * for a pack the SHA-256 of its trailer and footer? */
static int matches_name(const char *key, const void *buf, size_t len)
{
  const char *name = strrchr(key, '/');
  uint8_t want[HASH_LEN], got[HASH_LEN];
  name = name ? name + 1 : key;
  if (strlen(name) != 2 * HASH_LEN || hex_decode(name, want, HASH_LEN) == -1)
    return 0;
  if (starts(key, "packs/"))
    return pack_matches_name(buf, len, want);
  sha256(buf, len, got);
  return memcmp(want, got, HASH_LEN) == 0;
}

static void sayf(versions_say_fn say, void *opaque, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void sayf(versions_say_fn say, void *opaque, const char *fmt, ...)
{
  char msg[1024];
  va_list ap;
  if (!say)
    return;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  say(opaque, msg);
}

static void iso_date(int64_t t, char out[32])
{
  struct tm tm;
  time_t tt = (time_t)t;
  gmtime_r(&tt, &tm);
  strftime(out, 32, "%Y-%m-%d %H:%M UTC", &tm);
}

int repo_versioned(const struct repo *r)
{
  return r->cfg.lock_days && r->store->ops->list_versions;
}

/* Is the hidden snapshot object key accounted for: listed by a forget
 * record, or moved aside by repair? */
static int snapshot_accounted(struct repo *r, const struct forgotten_set *gone, const char *key)
{
  char q[160];
  uint64_t size;
  if (forgotten_set_has(gone, key + strlen("snapshots/")))
    return 1;
  snprintf(q, sizeof q, "quarantine/%s", key);
  return store_head(r->store, q, &size) == 0;
}

int repo_check_hidden_snapshots(struct repo *r)
{
  ver_vec vv = {0};
  struct forgotten_set *gone = NULL;
  int ret = -1;
  if (!repo_versioned(r))
    return 0;
  if (load_versions(r->store, "snapshots/", &vv) == -1 ||
      !(gone = forgotten_set_load(r, NULL, NULL, NULL)))
    goto out;
  for (size_t i = 0; i < vv.len; i += group_len(&vv, i)) {
    if (vv.v[i].marker && !snapshot_accounted(r, gone, vv.v[i].key)) {
      set_error_code(EPERM,
                     "%s is hidden by a delete marker that no forget record accounts for, so "
                     "its chunks would look unused: run pilotlight repair --undelete (from the "
                     "maintenance host) first",
                     vv.v[i].key);
      goto out;
    }
  }
  ret = 0;
out:
  forgotten_set_free(gone);
  vers_free(&vv);
  return ret;
}

/* ---- prune: purge and renewal ------------------------------------------- */

/* Extend the current version's retention of key to until. A version
 * already retained as long (a writer whose clock runs ahead) is renewed. */
static int renew(struct repo *r, const char *key, int64_t until)
{
  if (r->store->ops->set_retention(r->store, key, until) == 0)
    return 0;
  int64_t have = 0;
  char msg[1024];
  snprintf(msg, sizeof msg, "%s", get_error());
  int e = get_errno();
  if (r->store->ops->get_retention(r->store, key, NULL, &have) == 0 && have >= until - 3600)
    return 0;
  set_error_msg(e, msg);
  return -1;
}

/* Delete the versions of one hidden key (g[0] is its delete marker) whose
 * retention has ended, then its markers if no version is left. */
static int purge_group(struct repo *r, const struct ver *g, size_t n, int dry_run, int64_t now,
                       struct lock_upkeep *res)
{
  size_t left = 0;
  for (size_t j = 0; j < n; j++) {
    if (g[j].marker)
      continue;
    int64_t until = 0;
    if (!store_key_mutable(g[j].key) &&
        r->store->ops->get_retention(r->store, g[j].key, g[j].vid, &until) == -1)
      return -1;
    if (until > now) {
      left++;
      res->waiting++;
      res->waiting_bytes += g[j].size;
      if (until > res->waiting_until)
        res->waiting_until = until;
      continue;
    }
    if (!dry_run && r->store->ops->del_version(r->store, g[j].key, g[j].vid) == -1)
      return -1;
    res->purged++;
    res->purged_bytes += g[j].size;
  }
  for (size_t j = 0; j < n && !left && !dry_run; j++)
    if (g[j].marker && r->store->ops->del_version(r->store, g[j].key, g[j].vid) == -1)
      return -1;
  return 0;
}

int repo_lock_upkeep(struct repo *r, int dry_run, versions_say_fn say, void *opaque,
                     struct lock_upkeep *res)
{
  ver_vec vv = {0};
  struct forgotten_set *gone = NULL;
  int64_t now = (int64_t)time(NULL), until = now + r->store->retain_seconds;
  char date[32];
  int ret = -1;
  memset(res, 0, sizeof *res);
  if (!repo_versioned(r))
    return 0;
  if (load_versions(r->store, "", &vv) == -1 || !(gone = forgotten_set_load(r, NULL, NULL, NULL)))
    goto out;
  for (size_t i = 0, n; i < vv.len; i += n) {
    const struct ver *g = &vv.v[i];
    n = group_len(&vv, i);
    if (!g->marker) {
      if (store_key_mutable(g->key)) {
        /* The versions a lock's refreshes or a host's status updates left. */
        if (n > 1 && purge_group(r, g + 1, n - 1, dry_run, now, res) == -1)
          goto out;
      } else {
        if (!dry_run && renew(r, g->key, until) == -1)
          goto out;
        res->renewed++;
      }
      continue;
    }
    /* Hidden. The config and forget records are never deleted; a snapshot
     * only when accounted for (repo_check_hidden_snapshots refused the rest). */
    if (strcmp(g->key, "config") == 0 || starts(g->key, "forgotten/") ||
        (starts(g->key, "snapshots/") && !snapshot_accounted(r, gone, g->key)))
      continue;
    if (purge_group(r, g, n, dry_run, now, res) == -1)
      goto out;
  }
  iso_date(until, date);
  if (res->renewed)
    sayf(say, opaque, "%s the Object Lock retention of %zu objects to %s",
         dry_run ? "would extend" : "extended", res->renewed, date);
  if (res->purged)
    sayf(say, opaque, "%s %zu hidden object versions (%" PRIu64 " bytes) whose retention ended",
         dry_run ? "would delete" : "deleted", res->purged, res->purged_bytes);
  iso_date(res->waiting_until, date);
  if (res->waiting)
    sayf(say, opaque,
         "%zu hidden object versions (%" PRIu64 " bytes) are still retained by Object Lock; "
         "prune can delete the last of them after %s",
         res->waiting, res->waiting_bytes, date);
  ret = 0;
out:
  if (ret == -1)
    prefix_error("prune (Object Lock upkeep)");
  forgotten_set_free(gone);
  vers_free(&vv);
  return ret;
}

/* ---- undelete ------------------------------------------------------------ */

struct undo {
  struct store *st;
  struct repo *r; /* NULL in the base step */
  int dry_run, report_only;
  versions_say_fn say;
  void *opaque;
  struct undelete_result *res;
};

/* Make g[good] the current version of its key again: delete the versions
 * above it, or, where that is refused, put its bytes back on top. */
static int bring_back(struct undo *u, const struct ver *g, size_t good, const void *buf, size_t len)
{
  int refused = 0;
  if (!u->dry_run) {
    for (size_t j = 0; j < good; j++)
      if (u->st->ops->del_version(u->st, g[j].key, g[j].vid) == -1)
        refused = 1;
    if (refused && store_put(u->st, g[good].key, buf, len, 0) == -1)
      return -1;
  }
  u->res->restored++;
  sayf(u->say, u->opaque, "%s %s (version %s)%s", u->dry_run ? "would restore" : "restored",
       g[good].key, g[good].vid,
       refused ? ", put back on top of versions that cannot be deleted" : "");
  return 0;
}

struct pack_check {
  struct store *st;
  const char *missing; /* the first pack that is not there (points into pack), or NULL */
  char pack[PACK_KEY_LEN];
};

static int check_pack(void *opaque, uint32_t ordinal PL_UNUSED, const uint8_t hash[HASH_LEN])
{
  struct pack_check *c = opaque;
  uint64_t size;
  if (c->missing)
    return 0;
  pack_key(hash, c->pack);
  if (store_head(c->st, c->pack, &size) == -1)
    c->missing = c->pack;
  return 0;
}

static int skip_entry(void *opaque PL_UNUSED, uint32_t ordinal PL_UNUSED,
                      const struct chunk_entry *e PL_UNUSED)
{
  return 0;
}

/* NULL if the index object (stored bytes) decodes and every pack it names
 * is there; else why not, written into why. */
static const char *index_unusable(struct undo *u, const void *stored, size_t len, char *why,
                                  size_t cap)
{
  uint8_t *plain = NULL;
  size_t plen;
  struct pack_check c = {.st = u->st};
  struct index_visitor v = {check_pack, skip_entry, &c};
  if (repo_unseal(u->r, "index", stored, len, &plain, &plen) == -1 ||
      index_decode(plain, plen, repo_chunk_overhead(u->r), &v) == -1) {
    snprintf(why, cap, "it does not decode (%s)", get_error());
  } else if (c.missing) {
    snprintf(why, cap, "it lists %s, which is gone", c.missing);
  } else {
    why = NULL;
  }
  free(plain);
  return why;
}

/* One key's versions g[0..n-1], newest first. */
static int undelete_group(struct undo *u, const struct ver *g, size_t n,
                          const struct forgotten_set *gone)
{
  void *buf = NULL;
  size_t len = 0, first = 0;
  char why[600];
  int ret = -1;
  if (n == 1 && !g[0].marker)
    return 0;
  if (!g[0].marker) {
    /* Several versions: only a current one that does not match is wrong. */
    if (store_get(u->st, g[0].key, MAX_VERSION_BYTES, &buf, &len) == -1)
      return -1;
    int ok = matches_name(g[0].key, buf, len);
    free(buf);
    buf = NULL;
    if (ok)
      return 0;
    u->res->shadowed++;
    first = 1;
    if (u->report_only) {
      sayf(u->say, u->opaque,
           "%s is shadowed: its current version does not match its name (an older one may): "
           "run pilotlight repair --undelete from the maintenance host",
           g[0].key);
      return 0;
    }
  } else {
    if (starts(g[0].key, "snapshots/") && u->r && snapshot_accounted(u->r, gone, g[0].key)) {
      u->res->waiting++;
      return 0;
    }
    if (starts(g[0].key, "packs/") || starts(g[0].key, "index/") || starts(g[0].key, "keys/")) {
      /* prune hides what no snapshot needs and key remove a key: not a
       * problem in itself (a needed pack or index object shows as missing),
       * and undelete brings packs back harmlessly. */
      if (u->report_only) {
        u->res->waiting++;
        return 0;
      }
    }
    u->res->hidden++;
    if (u->report_only) {
      sayf(u->say, u->opaque,
           "%s is hidden by a delete marker: run pilotlight repair --undelete from the "
           "maintenance host",
           g[0].key);
      return 0;
    }
  }
  for (size_t j = first; j < n; j++) {
    if (g[j].marker)
      continue;
    if (u->st->ops->get_version(u->st, g[j].key, g[j].vid, MAX_VERSION_BYTES, &buf, &len) == -1)
      goto out;
    if (matches_name(g[j].key, buf, len)) {
      const char *bad =
          starts(g[j].key, "index/") && u->r ? index_unusable(u, buf, len, why, sizeof why) : NULL;
      if (bad) {
        sayf(u->say, u->opaque, "left %s hidden: %s", g[j].key, bad);
        ret = 0;
        goto out;
      }
      ret = bring_back(u, g, j, buf, len);
      goto out;
    }
    free(buf);
    buf = NULL;
  }
  u->res->unrestorable++;
  sayf(u->say, u->opaque, "cannot restore %s: none of its %zu versions matches its name", g[0].key,
       n);
  ret = 0;
out:
  free(buf);
  return ret;
}

static int undelete_prefix(struct undo *u, const char *prefix, const struct forgotten_set *gone)
{
  ver_vec vv = {0};
  int ret = -1;
  if (load_versions(u->st, prefix, &vv) == -1)
    return -1;
  for (size_t i = 0, n; i < vv.len; i += n) {
    n = group_len(&vv, i);
    if (undelete_group(u, &vv.v[i], n, gone) == -1)
      goto out;
  }
  ret = 0;
out:
  vers_free(&vv);
  return ret;
}

int repo_undelete(struct repo *r, int dry_run, int report_only, versions_say_fn say, void *opaque,
                  struct undelete_result *res)
{
  struct undo u = {.st = r->store,
                   .r = r,
                   .dry_run = dry_run || report_only,
                   .report_only = report_only,
                   .say = say,
                   .opaque = opaque,
                   .res = res};
  struct forgotten_set *gone = NULL;
  int ret = -1;
  memset(res, 0, sizeof *res);
  if (!repo_versioned(r))
    return 0;
  /* Forget records first: they say which hidden snapshots stay hidden.
   * Packs before index objects, which are brought back only with their packs. */
  if ((report_only && undelete_prefix(&u, "keys/", NULL) == -1) ||
      undelete_prefix(&u, "forgotten/", NULL) == -1 ||
      !(gone = forgotten_set_load(r, NULL, NULL, NULL)) ||
      undelete_prefix(&u, "snapshots/", gone) == -1 || undelete_prefix(&u, "packs/", gone) == -1 ||
      undelete_prefix(&u, "index/", gone) == -1)
    goto out;
  ret = 0;
out:
  forgotten_set_free(gone);
  return ret;
}

/* The config: init writes it once, so its first version is the one. */
static int undelete_config(struct undo *u)
{
  ver_vec vv = {0};
  void *buf = NULL;
  size_t len, good = SIZE_MAX;
  int ret = -1;
  if (load_versions(u->st, "config", &vv) == -1)
    return -1;
  for (size_t i = 0; i < vv.len; i++)
    if (strcmp(vv.v[i].key, "config") == 0 && !vv.v[i].marker)
      good = i;
  if (good == SIZE_MAX || good == 0) {
    ret = 0; /* none to go back to, or the current one is the first */
    goto out;
  }
  if (vv.v[0].marker)
    u->res->hidden++;
  else
    u->res->shadowed++;
  if (u->st->ops->get_version(u->st, "config", vv.v[good].vid, MAX_CONFIG_BYTES, &buf, &len) == -1)
    goto out;
  struct repo_config cfg;
  if (config_decode(buf, len, &cfg) == -1) {
    prefix_error("the first version of config");
    goto out;
  }
  if (cfg.lock_days) {
    u->st->retain_mode = cfg.lock_mode == LOCK_MODE_COMPLIANCE ? "COMPLIANCE" : "GOVERNANCE";
    u->st->retain_seconds = (int64_t)cfg.lock_days * 86400;
  }
  ret = bring_back(u, vv.v, good, buf, len);
out:
  free(buf);
  vers_free(&vv);
  return ret;
}

/* Key objects: shadowed ones always; hidden ones (key remove hides them)
 * only when no key object is left. */
static int undelete_keys(struct undo *u)
{
  ver_vec vv = {0};
  size_t current = 0;
  int ret = -1;
  if (load_versions(u->st, "keys/", &vv) == -1)
    return -1;
  for (size_t i = 0, n; i < vv.len; i += n) {
    n = group_len(&vv, i);
    if (vv.v[i].marker)
      continue;
    size_t before = u->res->unrestorable;
    if (undelete_group(u, &vv.v[i], n, NULL) == -1)
      goto out;
    current += u->res->unrestorable == before;
  }
  for (size_t i = 0, n; i < vv.len && !current; i += n) {
    n = group_len(&vv, i);
    if (vv.v[i].marker && undelete_group(u, &vv.v[i], n, NULL) == -1)
      goto out;
  }
  ret = 0;
out:
  vers_free(&vv);
  return ret;
}

int repo_undelete_base(const char *location, const struct repo_settings *settings, int dry_run,
                       versions_say_fn say, void *opaque, struct undelete_result *res)
{
  struct undo u = {.dry_run = dry_run, .say = say, .opaque = opaque, .res = res};
  memset(res, 0, sizeof *res);
  u.st = store_open(location, 0, settings ? settings->s3 : NULL);
  if (!u.st)
    return -1;
  int ret = 0;
  if (!u.st->ops->list_versions) {
    set_error_code(EINVAL,
                   "%s: repair --undelete needs an S3 bucket with Object Lock (a %s store "
                   "has no versions)",
                   location, u.st->ops->name);
    ret = -1;
  } else if (undelete_config(&u) == -1 || undelete_keys(&u) == -1) {
    ret = -1;
  }
  store_free(u.st);
  return ret;
}
