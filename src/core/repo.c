/* Opening and creating repositories, the chunk index, snapshots and block
 * maps. Everything here reads; backup.c writes. */
#include "repo-internal.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "../util/error.h"
#include "../util/hash.h"
#include "../util/fileio.h"
#include "../util/compiler.h"

void pack_key(const uint8_t h[HASH_LEN], char out[PACK_KEY_LEN])
{
  char hex[2 * HASH_LEN + 1];
  hex_encode(h, HASH_LEN, hex);
  snprintf(out, PACK_KEY_LEN, "packs/%.2s/%s", hex, hex);
}

const char *repo_id(const struct repo *r)
{
  return r->cfg.id;
}

void repo_set_threads(struct repo *r, int n)
{
  r->threads = n > 0 ? n : 1;
}

int repo_threads(const struct repo *r)
{
  return r->threads;
}

int repo_io_threads(const struct repo *r, int local_default, int remote_default)
{
  if (r->io_threads >= 1 && r->io_threads <= 16)
    return r->io_threads;
  return r->store->is_remote ? remote_default : local_default;
}

void repo_free(struct repo *r)
{
  if (!r)
    return;
  lock_release(r->lock);
  if (r->keys) {
    repo_keys_wipe(r->keys);
    free(r->keys);
  }
  chunk_index_free(r->ix);
  damage_clear(&r->damage);
  strings_free(&r->damage_keys);
  strings_free(&r->bad_index);
  strings_free(&r->bad_snapshots);
  strings_free(&r->loaded_index);
  pthread_mutex_destroy(&r->warn_lock);
  bundle_free(&r->bundles[BUNDLE_SNAPSHOTS]);
  bundle_free(&r->bundles[BUNDLE_INDEX]);
  store_free(r->cache);
  store_free(r->store);
  ratelimit_free(r->limit_up);
  ratelimit_free(r->limit_down);
  free(r);
}

void repo_settings_default(struct repo_settings *s)
{
  s->io_threads = 0;
  s->zstd_level = 3;
  s->cache_dir = NULL;
  s->s3 = NULL;
  s->warn = NULL;
  s->warn_opaque = NULL;
  s->lock = REPO_LOCK_NONE;
  s->lock_command = NULL;
  s->lock_wait_ms = 0;
  s->lock_refresh_seconds = 0;
  s->store_reads = 0;
  s->metadata_only = 0;
  s->clear = 0;
  s->password = NULL;
  s->password_opaque = NULL;
  s->kdf_n = 0;
  memset(&s->limit_upload, 0, sizeof s->limit_upload);
  memset(&s->limit_download, 0, sizeof s->limit_download);
  s->cancel = NULL;
}

void repo_warn(struct repo *r, const char *fmt, ...)
{
  char msg[1024];
  va_list ap;
  if (!r->warn)
    return;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  pthread_mutex_lock(&r->warn_lock);
  r->warn(r->warn_opaque, msg);
  pthread_mutex_unlock(&r->warn_lock);
}

static struct repo *repo_alloc(const struct repo_settings *settings)
{
  struct repo *r = calloc(1, sizeof *r);
  if (!r) {
    set_error(errno, "calloc");
    return NULL;
  }
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  r->threads = n > 0 ? (int)n : 1;
  r->level = 3;
  if (settings && settings->zstd_level >= -7 && settings->zstd_level <= 19)
    r->level = settings->zstd_level;
  if (settings && settings->io_threads >= 1 && settings->io_threads <= 16)
    r->io_threads = settings->io_threads;
  if (settings) {
    r->store_reads = settings->store_reads;
    r->warn = settings->warn;
    r->warn_opaque = settings->warn_opaque;
  }
  pthread_mutex_init(&r->warn_lock, NULL);
  return r;
}

/* ---- keys ------------------------------------------------------------- */

#define MAX_PASSWORD 1024

/* The password from the settings' callback into pw (MAX_PASSWORD bytes). */
static int ask_password(const struct repo_settings *st, int is_new, char *pw, size_t *len)
{
  if (!st || !st->password) {
    set_error_code(EACCES, "the repository is encrypted and no password was given");
    return -1;
  }
  return st->password(st->password_opaque, is_new, pw, MAX_PASSWORD, len);
}

/* Wrap r's master key under pw in a new key object; id receives its name. */
static int write_key(struct repo *r, const char *pw, size_t len, uint64_t n,
                     char id[2 * HASH_LEN + 1])
{
  struct key_object o;
  uint8_t h[HASH_LEN];
  char key[128];
  if (key_object_make(r->keys, pw, len, n, (int64_t)time(NULL), &o) == -1)
    return -1;
  char *text = key_object_encode(&o);
  explicit_bzero(&o, sizeof o);
  if (!text)
    return -1;
  sha256(text, strlen(text), h);
  hex_encode(h, HASH_LEN, id);
  snprintf(key, sizeof key, "keys/%s", id);
  int rc = store_put(r->store, key, text, strlen(text), STORE_PUT_EXCL);
  free(text);
  return rc;
}

/* A key object, read and checked against its name. */
static int read_key(struct repo *r, const char *key, struct key_object *o)
{
  void *buf;
  size_t len;
  uint8_t want[HASH_LEN], got[HASH_LEN];
  const char *name = key + strlen("keys/");
  if (strlen(name) != 2 * HASH_LEN || hex_decode(name, want, HASH_LEN) == -1) {
    set_error_code(EINVAL, "%s: not a key object name", key);
    return -1;
  }
  if (store_get(r->store, key, MAX_KEY_OBJECT_BYTES, &buf, &len) == -1)
    return -1;
  sha256(buf, len, got);
  int rc = memcmp(got, want, HASH_LEN) == 0 ? key_object_decode(buf, len, o) : -1;
  if (rc == -1 && memcmp(got, want, HASH_LEN) != 0)
    set_error_code(EIO, "content does not match its name (damaged key object)");
  free(buf);
  if (rc == -1)
    prefix_error("%s", key);
  return rc;
}

/* Open r's master key with the password: try each key object in turn. */
static int unlock_keys(struct repo *r, const struct repo_settings *st)
{
  struct strings keys = {0};
  char pw[MAX_PASSWORD];
  size_t len = 0;
  int ret = -1, tried = 0;
  if (store_list_keys(r->store, "keys/", &keys) == -1)
    goto out;
  if (keys.len == 0) {
    set_error_code(ENOENT,
                   "the repository is encrypted but has no key objects (keys/): copy them "
                   "back from a backup of the repository; without one its data cannot be read");
    goto out;
  }
  r->keys = calloc(1, sizeof *r->keys);
  if (!r->keys) {
    set_error(errno, "calloc");
    goto out;
  }
  if (ask_password(st, 0, pw, &len) == -1)
    goto out;
  for (size_t i = 0; i < keys.len; i++) {
    struct key_object o;
    if (read_key(r, keys.v[i], &o) == -1) {
      repo_warn(r, "%s", get_error()); /* another key may open it */
      continue;
    }
    tried++;
    if (key_object_open(&o, pw, len, r->keys) == 0) {
      snprintf(r->key_id, sizeof r->key_id, "%s", keys.v[i] + strlen("keys/"));
      ret = 0;
      goto out;
    }
    if (get_errno() != EACCES)
      repo_warn(r, "%s: %s", keys.v[i], get_error()); /* another key may open it */
  }
  set_error_code(EACCES,
                 "wrong password (none of the repository's %d key objects opens with it): check "
                 "PILOTLIGHT_PASSWORD, --password-file or --password-command",
                 tried);
out:
  explicit_bzero(pw, sizeof pw);
  strings_free(&keys);
  if (ret == -1 && r->keys) {
    repo_keys_wipe(r->keys);
    free(r->keys);
    r->keys = NULL;
  }
  return ret;
}

int repo_key_list(struct repo *r, struct repo_key_info **out, size_t *n)
{
  struct strings keys = {0};
  VEC(struct repo_key_info) v = {0};
  int ret = -1;
  if (!r->keys) {
    set_error_code(EINVAL, "the repository is not encrypted: it has no keys");
    return -1;
  }
  if (store_list_keys(r->store, "keys/", &keys) == -1)
    goto out;
  for (size_t i = 0; i < keys.len; i++) {
    struct key_object o;
    struct repo_key_info k = {0};
    if (read_key(r, keys.v[i], &o) == -1) {
      repo_warn(r, "%s", get_error());
      continue;
    }
    snprintf(k.id, sizeof k.id, "%s", keys.v[i] + strlen("keys/"));
    k.created = o.created;
    k.n = o.n;
    k.r = o.r;
    k.p = o.p;
    k.current = strcmp(k.id, r->key_id) == 0;
    if (vec_push(&v, k) == -1)
      goto out;
  }
  *out = v.v;
  *n = v.len;
  v.v = NULL;
  ret = 0;
out:
  vec_free(&v);
  strings_free(&keys);
  return ret;
}

int repo_key_add(struct repo *r, const char *password, size_t len, uint64_t kdf_n,
                 char id[2 * HASH_LEN + 1])
{
  if (!r->keys) {
    set_error_code(EINVAL, "the repository is not encrypted: it has no keys");
    return -1;
  }
  return write_key(r, password, len, kdf_n, id);
}

int repo_key_remove(struct repo *r, const char *id)
{
  struct repo_key_info *k = NULL;
  size_t n = 0, match = SIZE_MAX;
  int ret = -1;
  char key[128];
  if (repo_key_list(r, &k, &n) == -1)
    return -1;
  for (size_t i = 0; i < n; i++)
    if (strncmp(k[i].id, id, strlen(id)) == 0) {
      if (match != SIZE_MAX) {
        set_error_code(EINVAL, "key id %s is ambiguous: give more digits (pilotlight key list)",
                       id);
        goto out;
      }
      match = i;
    }
  if (!*id || match == SIZE_MAX) {
    set_error_code(ENOENT, "no key %s in this repository (pilotlight key list shows them)", id);
    goto out;
  }
  if (n == 1) {
    set_error_code(EPERM,
                   "key %.8s is the repository's only key: removing it would lose the "
                   "repository; add another first (pilotlight key add)",
                   k[match].id);
    goto out;
  }
  if (k[match].current) {
    set_error_code(EPERM,
                   "key %.8s is the one this command opened the repository with: open with "
                   "another key's password to remove it",
                   k[match].id);
    goto out;
  }
  snprintf(key, sizeof key, "keys/%s", k[match].id);
  ret = store_del(r->store, key);
out:
  free(k);
  return ret;
}

int repo_key_passwd(struct repo *r, const char *password, size_t len, uint64_t kdf_n,
                    char id[2 * HASH_LEN + 1])
{
  char old[128];
  if (repo_key_add(r, password, len, kdf_n, id) == -1)
    return -1;
  snprintf(old, sizeof old, "keys/%s", r->key_id);
  snprintf(r->key_id, sizeof r->key_id, "%s", id);
  if (store_del(r->store, old) == -1) {
    prefix_error("the new key %.8s was added, but the old key %.8s could not be removed "
                 "(remove it with pilotlight key remove)",
                 id, old + strlen("keys/"));
    return -1;
  }
  return 0;
}

const char *repo_key_id(const struct repo *r)
{
  return r->keys ? r->key_id : NULL;
}

int repo_encrypted(const struct repo *r)
{
  return r->keys != NULL;
}

uint32_t repo_lock_days(const struct repo *r, int *mode)
{
  if (mode)
    *mode = r->cfg.lock_mode;
  return r->cfg.lock_days;
}

/* Every object written from now on carries the config's retention (a store
 * without Object Lock, say a folder copy of an S3 repository, has none). */
static void apply_retention(struct repo *r)
{
  if (!r->cfg.lock_days || !r->store->ops->set_retention)
    return;
  r->store->retain_mode = r->cfg.lock_mode == LOCK_MODE_COMPLIANCE ? "COMPLIANCE" : "GOVERNANCE";
  r->store->retain_seconds = (int64_t)r->cfg.lock_days * 86400;
#ifdef PL_TEST_HOOKS
  /* Tests cannot wait days for a retention to end. */
  const char *t = getenv("PILOTLIGHT_TEST_LOCK_SECONDS");
  if (t && *t)
    r->store->retain_seconds = strtol(t, NULL, 10);
#endif
}

/* init --object-lock: the bucket must have Object Lock enabled. */
static int check_lock_bucket(struct repo *r, const char *location)
{
  int on = r->store->ops->lock_enabled(r->store);
  if (on == 0)
    set_error_code(EINVAL,
                   "%s: the bucket does not have Object Lock enabled, so --object-lock cannot "
                   "protect it: use an S3 bucket created with Object Lock (aws s3api "
                   "create-bucket --object-lock-enabled-for-bucket)",
                   location);
  return on == 1 ? 0 : -1;
}

/* Open r's store at location, with the settings' bandwidth limits. */
static int open_store(struct repo *r, const char *location, int create,
                      const struct repo_settings *settings)
{
  r->store = store_open(location, create, settings ? settings->s3 : NULL);
  if (!r->store)
    return -1;
  if (!settings)
    return 0;
  if (!ratelimit_spec_unlimited(&settings->limit_upload)) {
    r->limit_up = ratelimit_new("upload", &settings->limit_upload, settings->cancel);
    if (!r->limit_up)
      return -1;
  }
  if (!ratelimit_spec_unlimited(&settings->limit_download)) {
    r->limit_down = ratelimit_new("download", &settings->limit_download, settings->cancel);
    if (!r->limit_down)
      return -1;
  }
  r->store->limit_up = r->limit_up;
  r->store->limit_down = r->limit_down;
  return 0;
}

struct repo *repo_create(const char *location, const struct repo_settings *settings)
{
  struct repo *r = repo_alloc(settings);
  uint8_t idraw[16];
  uint64_t size;
  char *text = NULL, pw[MAX_PASSWORD];
  size_t pwlen = 0;
  if (!r)
    return NULL;
  if (settings && settings->lock_days && strncmp(location, "s3:", 3) != 0) {
    set_error_code(EINVAL,
                   "%s: a folder has no Object Lock, so --object-lock cannot protect it: use an "
                   "S3 bucket created with Object Lock (aws s3api create-bucket "
                   "--object-lock-enabled-for-bucket)",
                   location);
    goto fail;
  }
  if (open_store(r, location, 1, settings) == -1)
    goto fail;
  if (store_head(r->store, "config", &size) == 0) {
    set_error_code(EEXIST,
                   "%s already holds a pilotlight repository: use it, or choose another "
                   "location",
                   location);
    goto fail;
  }
  if (get_errno() != ENOENT)
    goto fail;
  if (RAND_bytes(idraw, sizeof idraw) != 1) {
    set_error_code(EIO, "no random bytes for the repository id");
    goto fail;
  }
  hex_encode(idraw, sizeof idraw, r->cfg.id);
  r->cfg.page_entries = 1024;
  r->cfg.version = 1;
  if (settings && settings->lock_days) {
    if (check_lock_bucket(r, location) == -1)
      goto fail;
    r->cfg.lock_days = settings->lock_days;
    r->cfg.lock_mode = settings->lock_mode;
    apply_retention(r);
  }
  if (!settings || !settings->clear) {
    r->cfg.version = 2;
    r->cfg.encrypted = 1;
    r->keys = calloc(1, sizeof *r->keys);
    if (!r->keys) {
      set_error(errno, "calloc");
      goto fail;
    }
    /* The key object first: a config is never without its key. */
    if (repo_keys_random(r->keys) == -1 || ask_password(settings, 1, pw, &pwlen) == -1 ||
        write_key(r, pw, pwlen, settings->kdf_n, r->key_id) == -1)
      goto fail;
  }
  text = config_encode(&r->cfg, r->keys);
  if (!text || store_put(r->store, "config", text, strlen(text), STORE_PUT_EXCL) == -1) {
    if (get_errno() == EEXIST)
      set_error_code(EEXIST, "%s already holds a pilotlight repository", location);
    if (r->keys && r->key_id[0]) {
      /* Another init won the race: our key wraps a master key no config
       * uses, and would open with its password to a key that fails. */
      char key[128], msg[1024];
      int e = get_errno();
      snprintf(msg, sizeof msg, "%s", get_error());
      snprintf(key, sizeof key, "keys/%s", r->key_id);
      store_del(r->store, key);
      set_error_msg(e, msg);
    }
    goto fail;
  }
  free(text);
  explicit_bzero(pw, sizeof pw);
  r->ix = chunk_index_new();
  if (!r->ix)
    goto fail;
  return r;
fail:
  explicit_bzero(pw, sizeof pw);
  free(text);
  repo_free(r);
  return NULL;
}

/* The cache folder: base/<id>, created with its parents. Without one,
 * a remote repository is read in full at every open, and every backup
 * scans packs/ for an interrupted one's leftovers: slower, not wrong, so
 * one warning says why. */
static void open_cache(struct repo *r, const char *base)
{
  char path[PATH_MAX];
  if (!base || !*base)
    return;
  if (snprintf(path, sizeof path, "%s/%s", base, r->cfg.id) >= (int)sizeof path) {
    repo_warn(r, "cache folder %s: path too long; going on without a cache", base);
    return;
  }
  for (char *p = path + 1; *p; p++) {
    if (*p != '/')
      continue;
    *p = 0;
    if (mkdir(path, 0700) == -1 && errno != EEXIST) {
      repo_warn(r,
                "cannot create the cache folder %s (%s): going on without a cache (slower); "
                "set PILOTLIGHT_CACHE_DIR to a writable folder",
                path, strerror(errno));
      return;
    }
    *p = '/';
  }
  r->cache = local_store_open(path, 1);
  if (!r->cache)
    repo_warn(r,
              "cannot create the cache folder %s (%s): going on without a cache (slower); set "
              "PILOTLIGHT_CACHE_DIR to a writable folder",
              path, get_error());
}

static const char *const bundle_dir[2] = {"snapshots/", "index/"};
static const char *const bundle_file[2] = {"snapshots.bundle", "index.bundle"};
#define MAX_BUNDLE_BYTES ((size_t)4 << 30)

/* The bundle that caches key's object, read from the cache at first use;
 * NULL if none does (no cache, or another kind of object). */
static struct bundle *bundle_for(struct repo *r, const char *key)
{
  if (!r->cache)
    return NULL;
  for (int i = 0; i < 2; i++) {
    if (strncmp(key, bundle_dir[i], strlen(bundle_dir[i])) != 0)
      continue;
    void *buf;
    size_t len;
    /* Mapped: reading a 2 MiB bundle into fresh memory cost more in page
     * faults than checking it. A damaged one is rebuilt. */
    if (!r->bundle_read[i] &&
        store_map(r->cache, bundle_file[i], MAX_BUNDLE_BYTES, &buf, &len) == 0)
      bundle_decode_mapped(buf, len, &r->bundles[i]);
    r->bundle_read[i] = 1;
    return &r->bundles[i];
  }
  return NULL;
}

static int cmp_hash(const void *a, const void *b)
{
  return memcmp(a, b, HASH_LEN);
}

/* A few objects: how many listed objects a sound bundle or summary file
 * on a folder may lack before it is rewritten (each lacking one costs a
 * file read, while rewriting a bundle of 10,000 objects for each backup's
 * one new object cost more than the rest of its metadata work), and how
 * many lacking snapshots are read from the store before the snapshot
 * bundle is worth reading. On S3, where a lacking object costs a request,
 * a bundle that lacks any is rewritten. */
#define CACHE_FEW 64

/* Whether a cache file that held have usable entries, lacks lacking listed
 * objects and holds stale unlisted or damaged ones must be rewritten. */
static int cache_rewrite(const struct repo *r, size_t have, size_t lacking, size_t stale)
{
  return stale || (lacking && (!have || r->store->is_remote || lacking > CACHE_FEW));
}

/* Whether the bundle entry e is listed: names (m, sorted) walked in step
 * with the entries, which are sorted too; *j is the walk's place. */
static int listed_in_step(const struct bundle_entry *e, const uint8_t (*names)[HASH_LEN], size_t m,
                          size_t *j)
{
  while (*j < m && memcmp(names[*j], e->name, HASH_LEN) < 0)
    (*j)++;
  return *j < m && memcmp(names[*j], e->name, HASH_LEN) == 0;
}

/* After a listing: rewrite bundle which to hold exactly the objects named
 * by the keys loaded (n, each "dir/<64 hex>"), if cache_rewrite says so,
 * and drop it from memory. Failure costs speed only. */
static void bundle_save(struct repo *r, int which, char *const *keys, size_t n)
{
  struct bundle *b = &r->bundles[which];
  uint8_t(*names)[HASH_LEN] = NULL;
  VEC(struct bundle_entry) keep = {0};
  if (!r->bundle_read[which])
    return;
  names = malloc((n ? n : 1) * HASH_LEN);
  if (!names)
    goto out;
  size_t m = 0;
  int sorted = 1;
  for (size_t i = 0; i < n; i++)
    if (hex_decode(keys[i] + strlen(bundle_dir[which]), names[m], HASH_LEN) == 0) {
      sorted = sorted && (m == 0 || memcmp(names[m - 1], names[m], HASH_LEN) < 0);
      m++;
    }
  if (!sorted) /* the index load's keys come sorted; a listing's need not */
    qsort(names, m, HASH_LEN, cmp_hash);
  /* Count first: most loads change nothing worth a rewrite, and the list
   * of entries to keep is then not worth making. */
  size_t held = 0, added = 0, j = 0;
  for (size_t i = 0; i < b->n; i++)
    held += b->e[i].data && listed_in_step(&b->e[i], names, m, &j);
  for (size_t i = 0; i < b->added.len; i++)
    added += bsearch(b->added.v[i].name, names, m, HASH_LEN, cmp_hash) != NULL;
  if (!cache_rewrite(r, held, added, b->n - held) || vec_reserve(&keep, held + added) == -1)
    goto out;
  j = 0;
  for (size_t i = 0; i < b->n; i++)
    if (b->e[i].data && listed_in_step(&b->e[i], names, m, &j))
      keep.v[keep.len++] = b->e[i];
  for (size_t i = 0; i < b->added.len; i++)
    if (bsearch(b->added.v[i].name, names, m, HASH_LEN, cmp_hash))
      keep.v[keep.len++] = b->added.v[i];
  size_t len;
  uint8_t *buf = bundle_encode(keep.v, keep.len, &len);
  if (buf)
    store_put(r->cache, bundle_file[which], buf, len, STORE_PUT_DISPOSABLE);
  free(buf);
out:
  free(names);
  vec_free(&keep);
  bundle_free(b);
  r->bundle_read[which] = 0;
}

int repo_seal(const struct repo *r, const char *kind, const void *in, size_t len, uint8_t **out,
              size_t *outlen)
{
  char aad[AAD_MAX];
  if (r->keys)
    return seal_alloc(r->keys, aad, object_aad(r->cfg.id, kind, aad), in, len, out, outlen);
  *out = malloc(len ? len : 1);
  if (!*out) {
    set_error(errno, "malloc");
    return -1;
  }
  memcpy(*out, in, len);
  *outlen = len;
  return 0;
}

int repo_unseal(const struct repo *r, const char *kind, const void *in, size_t len, uint8_t **out,
                size_t *outlen)
{
  char aad[AAD_MAX];
  if (!r->keys)
    return repo_seal(r, kind, in, len, out, outlen);
  return unseal_alloc(r->keys, aad, object_aad(r->cfg.id, kind, aad), in, len, out, outlen);
}

/* The kind of the object at key: its folder ("index/..." -> "index"). */
static void key_kind(const char *key, char out[32])
{
  const char *slash = strchr(key, '/');
  size_t n = slash ? (size_t)(slash - key) : strlen(key);
  snprintf(out, 32, "%.*s", (int)(n < 31 ? n : 31), key);
}

/* The stored bytes of a hashed object, checked against its name: from
 * bundle b when it holds them, else from the store (and added to b). */
static int get_stored(struct repo *r, struct bundle *b, const char *key,
                      const uint8_t want[HASH_LEN], size_t max, void **buf, size_t *len)
{
  uint8_t got[HASH_LEN];
  const struct bundle_entry *e = b && !r->store_reads ? bundle_find(b, want) : NULL;
  if (e && e->len <= max) {
    *buf = malloc(e->len ? e->len : 1);
    if (!*buf) {
      set_error(errno, "malloc");
      return -1;
    }
    memcpy(*buf, e->data, e->len);
    *len = e->len;
    return 0;
  }
  if (store_get(r->store, key, max, buf, len) == -1)
    return -1;
  sha256(*buf, *len, got);
  if (memcmp(got, want, HASH_LEN) != 0) {
    set_error_code(EIO, "%s: content does not match its name (damaged object)", key);
    free(*buf);
    return -1;
  }
  if (b)
    bundle_add(b, want, *buf, *len); /* failure costs speed only */
  return 0;
}

/* repo_get_hashed through bundle b, or straight from the store (NULL). */
static int get_hashed(struct repo *r, struct bundle *b, const char *key, const char *hexname,
                      size_t max, void **buf, size_t *len)
{
  uint8_t want[HASH_LEN];
  char kind[32];
  void *stored;
  size_t slen;
  if (strlen(hexname) != 2 * HASH_LEN || hex_decode(hexname, want, HASH_LEN) == -1) {
    set_error_code(EINVAL, "%s: object name is not a SHA-256", key);
    return -1;
  }
  if (get_stored(r, b, key, want, r->keys ? max + SEAL_OVERHEAD : max, &stored, &slen) == -1)
    return -1;
  if (!r->keys) {
    *buf = stored;
    *len = slen;
    return 0;
  }
  key_kind(key, kind);
  int rc = repo_unseal(r, kind, stored, slen, (uint8_t **)buf, len);
  free(stored);
  if (rc == -1)
    prefix_error("%s", key);
  return rc;
}

int repo_get_hashed(struct repo *r, const char *key, const char *hexname, size_t max, void **buf,
                    size_t *len)
{
  return get_hashed(r, bundle_for(r, key), key, hexname, max, buf, len);
}

int repo_put_hashed(struct repo *r, const char *dir, const void *buf, size_t len, int excl,
                    char hexname[2 * HASH_LEN + 1])
{
  uint8_t h[HASH_LEN], *stored;
  size_t slen;
  char key[128];
  if (repo_seal(r, dir, buf, len, &stored, &slen) == -1)
    return -1;
  sha256(stored, slen, h);
  hex_encode(h, HASH_LEN, hexname);
  snprintf(key, sizeof key, "%s/%s", dir, hexname);
  int rc = store_put(r->store, key, stored, slen, excl ? STORE_PUT_EXCL : 0);
  free(stored);
  return rc;
}

/* ---- loading the index ---------------------------------------------- */

struct load_ctx {
  struct repo *r;
  struct strings keys;
  VEC(uint32_t) ord; /* object-local pack ordinal -> global ordinal */
};

static int visit_pack(void *opaque, uint32_t ordinal PL_UNUSED, const uint8_t hash[HASH_LEN])
{
  struct load_ctx *c = opaque;
  int64_t g = chunk_index_pack(c->r->ix, hash);
  if (g == -1)
    return -1;
  return vec_push(&c->ord, (uint32_t)g);
}

static int visit_entry(void *opaque, uint32_t ordinal, const struct chunk_entry *e)
{
  struct load_ctx *c = opaque;
  int added;
  struct index_slot *s = chunk_index_insert(c->r->ix, e->hash, &added);
  if (!s)
    return -1;
  const uint8_t *pack = c->r->ix->packs.v[c->ord.v[ordinal]];
  int bad = damage_has_copy(&c->r->damage, e->hash, pack);
  /* A duplicate from a concurrent backup, or the copy a backup stored again
   * after damage was found: a healthy copy serves. */
  if (!added && s->pack != PACK_PENDING && (bad || !s->damaged))
    return 0;
  s->damaged = (uint8_t)bad;
  index_slot_fill(s, e, c->ord.v[ordinal], 1);
  return 0;
}

static int cmp_str(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

static int ignore_pack(void *opaque PL_UNUSED, uint32_t ordinal PL_UNUSED,
                       const uint8_t hash[HASH_LEN] PL_UNUSED)
{
  return 0;
}

static int ignore_entry(void *opaque PL_UNUSED, uint32_t ordinal PL_UNUSED,
                        const struct chunk_entry *e PL_UNUSED)
{
  return 0;
}

/* Note a damaged object once: warn and remember its key in list. */
static int note_bad(struct repo *r, struct strings *l, const char *key, const char *what)
{
  for (size_t i = 0; i < l->len; i++)
    if (strcmp(l->v[i], key) == 0)
      return 0;
  char *k = strdup(key);
  if (!k || vec_push(l, k) == -1) {
    free(k);
    set_error(ENOMEM, "listing");
    return -1;
  }
  repo_warn(r, "%s; %s", get_error(), what);
  return 0;
}

int repo_load_index(struct repo *r)
{
  struct load_ctx c = {.r = r};
  struct index_visitor v = {visit_pack, visit_entry, &c};
  struct index_visitor check = {ignore_pack, ignore_entry, NULL};
  size_t bad_before = r->bad_index.len, sorted = r->loaded_index.len;
  int ret = -1;
  if (store_list_keys(r->store, "index/", &c.keys) == -1)
    goto out;
  for (size_t i = 0; i < c.keys.len; i++) {
    void *buf;
    size_t len;
    const char *name = c.keys.v[i] + strlen("index/");
    if (sorted && bsearch(&c.keys.v[i], r->loaded_index.v, sorted, sizeof(char *), cmp_str))
      continue;
    /* A damaged object costs its own entries only: the packs it listed are
     * found from their trailers below. A malformed one is checked whole
     * before any entry is used. */
    if (repo_get_hashed(r, c.keys.v[i], name, MAX_INDEX_BYTES, &buf, &len) == -1) {
      if (get_errno() == ENOMEM || note_bad(r, &r->bad_index, c.keys.v[i],
                                            "its packs' chunks are found from their trailers; "
                                            "pilotlight repair rebuilds it") == -1)
        goto out;
      continue;
    }
    int rc = index_decode(buf, len, repo_chunk_overhead(r), &check);
    if (rc == 0) {
      c.ord.len = 0;
      rc = index_decode(buf, len, repo_chunk_overhead(r), &v);
      if (rc == -1) {
        free(buf);
        goto out; /* out of memory: the object itself was sound */
      }
    }
    free(buf);
    if (rc == -1) {
      prefix_error("%s", c.keys.v[i]);
      if (note_bad(r, &r->bad_index, c.keys.v[i],
                   "its packs' chunks are found from their trailers; pilotlight repair rebuilds "
                   "it") == -1)
        goto out;
      continue;
    }
    if (vec_push(&r->loaded_index, c.keys.v[i]) == -1)
      goto out;
    c.keys.v[i] = NULL;
  }
  if (r->loaded_index.len)
    qsort(r->loaded_index.v, r->loaded_index.len, sizeof(char *), cmp_str);
  bundle_save(r, BUNDLE_INDEX, r->loaded_index.v, r->loaded_index.len);
  if (r->bad_index.len > bad_before && repo_adopt_packs(r) == -1)
    goto out;
  ret = 0;
out:
  strings_free(&c.keys);
  vec_free(&c.ord);
  return ret;
}

static void lock_waiting(void *opaque, const struct lock_info *h, int64_t wait_ms)
{
  struct repo *r = opaque;
  repo_warn(r, "the repository is locked by %s (pid %lld on %s, %s); waiting up to %lld s for it",
            h->command[0] ? h->command : "?", (long long)h->pid, h->host, h->key,
            (long long)(wait_ms + 999) / 1000);
}

static int take_lock(struct repo *r, const struct repo_settings *st)
{
  struct lock_opts o = {
      .exclusive = st->lock == REPO_LOCK_EXCLUSIVE,
      .command = st->lock_command,
      .wait_ms = st->lock_wait_ms > 0 ? st->lock_wait_ms : 0,
      .optional = st->lock == REPO_LOCK_SHARED_OPTIONAL,
      .waiting = lock_waiting,
      .opaque = r,
      .refresh_seconds = st->lock_refresh_seconds,
  };
  return lock_acquire(r->store, &o, &r->lock);
}

int repo_check_lock(struct repo *r)
{
  return lock_check(r->lock);
}

int repo_clean_locks(const char *location, const struct repo_settings *settings, int all,
                     void (*cb)(void *opaque, const struct lock_info *l, int removed), void *opaque)
{
  struct lock_info *locks = NULL;
  size_t n = 0;
  uint64_t size;
  int ret = -1;
  struct store *s = store_open(location, 0, settings ? settings->s3 : NULL);
  if (!s)
    return -1;
  if (store_head(s, "config", &size) == -1) {
    if (get_errno() == ENOENT)
      set_error_code(ENOENT, "%s is not a pilotlight repository (it has no config object)",
                     location);
    goto out;
  }
  if (lock_list(s, settings ? settings->lock_refresh_seconds : 0, &locks, &n) == -1)
    goto out;
  for (size_t i = 0; i < n; i++) {
    int remove = all || locks[i].stale;
    if (remove && store_del(s, locks[i].key) == -1)
      goto out;
    cb(opaque, &locks[i], remove);
  }
  ret = 0;
out:
  free(locks);
  store_free(s);
  return ret;
}

struct repo *repo_open(const char *location, const struct repo_settings *settings)
{
  struct repo *r = repo_alloc(settings);
  void *buf = NULL;
  size_t len;
  if (!r)
    return NULL;
  if (open_store(r, location, 0, settings) == -1) {
    if (!r->store && get_errno() == ENOENT)
      set_error_code(ENOENT,
                     "%s is not a pilotlight repository (no such folder): check -r, or "
                     "create one with pilotlight init",
                     location);
    goto fail;
  }
  if (store_get(r->store, "config", MAX_CONFIG_BYTES, &buf, &len) == -1) {
    if (get_errno() == ENOENT)
      set_error_code(ENOENT,
                     "%s is not a pilotlight repository (it has no config object): check -r, "
                     "or create one with pilotlight init",
                     location);
    goto fail;
  }
  if (config_decode(buf, len, &r->cfg) == -1) {
    prefix_error("%s", location);
    goto fail;
  }
  if (r->cfg.encrypted &&
      (unlock_keys(r, settings) == -1 || config_check_mac(&r->cfg, buf, r->keys) == -1)) {
    prefix_error("%s", location);
    goto fail;
  }
  free(buf);
  buf = NULL;
  apply_retention(r);
  open_cache(r, settings ? settings->cache_dir : NULL);
  /* Locked before the index is loaded: a prune that finished before the
   * lock was granted is seen whole, and none can start until it is freed. */
  if (settings && settings->lock != REPO_LOCK_NONE && take_lock(r, settings) == -1)
    goto fail;
  r->ix = chunk_index_new();
  if (!r->ix || (!(settings && settings->metadata_only) &&
                 (repo_load_damage(r) == -1 || repo_load_index(r) == -1)))
    goto fail;
  return r;
fail:
  free(buf);
  repo_free(r);
  return NULL;
}

int repo_read_trailer(struct repo *r, const uint8_t pack[HASH_LEN], struct chunk_entry **e,
                      uint32_t *n, uint64_t *pack_size)
{
  char key[PACK_KEY_LEN];
  uint8_t footer[PACK_FOOTER_LEN], th[HASH_LEN];
  uint8_t *buf = NULL, *plain = NULL;
  uint64_t size;
  int ret = -1, sealed;
  pack_key(pack, key);
  if (store_head(r->store, key, &size) == -1)
    return -1;
  if (size < PACK_HEADER_LEN + PACK_FOOTER_LEN) {
    set_error_code(EIO, "%s: truncated pack (%llu bytes)", key, (unsigned long long)size);
    return -1;
  }
  if (store_get_range(r->store, key, size - PACK_FOOTER_LEN, PACK_FOOTER_LEN, footer) == -1)
    return -1;
  if (pack_footer_decode(footer, n, th, &sealed) == -1)
    goto bad;
  if (sealed != (r->keys != NULL)) {
    set_error_code(EIO, "%s trailer in an %s repository (damaged or altered pack)",
                   sealed ? "an encrypted" : "a clear", sealed ? "unencrypted" : "encrypted");
    goto bad;
  }
  uint64_t elen = (uint64_t)*n * PACK_ENTRY_LEN, tlen = elen + (sealed ? SEAL_OVERHEAD : 0);
  if (tlen > size - PACK_HEADER_LEN - PACK_FOOTER_LEN) {
    set_error_code(EIO, "pack trailer larger than the pack (truncated pack?)");
    goto bad;
  }
  buf = malloc(tlen + PACK_FOOTER_LEN);
  plain = sealed ? malloc(elen ? elen : 1) : buf;
  if (!buf || !plain) {
    set_error(errno, "malloc");
    goto out;
  }
  if (store_get_range(r->store, key, size - PACK_FOOTER_LEN - tlen, tlen, buf) == -1)
    goto out;
  /* A pack is named by the hash of its trailer and footer. */
  memcpy(buf + tlen, footer, PACK_FOOTER_LEN);
  uint8_t name[HASH_LEN];
  sha256(buf, tlen + PACK_FOOTER_LEN, name);
  if (memcmp(name, pack, HASH_LEN) != 0) {
    set_error_code(EIO, "pack trailer does not match the pack's name (damaged pack)");
    goto bad;
  }
  if (sealed && pack_trailer_unseal(r->keys, buf, *n, plain) == -1)
    goto bad;
  if (pack_entries_decode(plain, *n, sealed ? NULL : th, sealed ? SEAL_OVERHEAD : 0,
                          size - PACK_FOOTER_LEN - tlen, e) == -1)
    goto bad;
  *pack_size = size;
  ret = 0;
  goto out;
bad:
  prefix_error("%s", key);
out:
  if (plain != buf)
    free(plain);
  free(buf);
  return ret;
}

int repo_adopt_packs(struct repo *r)
{
  struct load_ctx c = {.r = r};
  int ret = -1;
  if (r->adopted)
    return 0;
  if (store_list_keys(r->store, "packs/", &c.keys) == -1)
    goto out;
  for (size_t i = 0; i < c.keys.len; i++) {
    const char *name = strrchr(c.keys.v[i], '/');
    uint8_t h[HASH_LEN];
    struct chunk_entry *e = NULL;
    uint32_t n;
    uint64_t size;
    if (!name || strlen(name + 1) != 2 * HASH_LEN || hex_decode(name + 1, h, HASH_LEN) == -1)
      continue;
    int kind = damage_pack_kind(&r->damage, h);
    if (chunk_index_find_pack(r->ix, h) != -1 || kind == DAMAGE_MISSING || kind == DAMAGE_TRUNCATED)
      continue;
    /* A damaged leftover is simply not reused; verify reports it. */
    if (repo_read_trailer(r, h, &e, &n, &size) == -1)
      continue;
    int64_t ord = chunk_index_pack(r->ix, h);
    for (uint32_t k = 0; ord != -1 && k < n; k++) {
      int added;
      struct index_slot *s = chunk_index_insert(r->ix, e[k].hash, &added);
      if (!s) {
        ord = -1;
        break;
      }
      int bad = damage_has_copy(&r->damage, e[k].hash, h);
      if (!added && (bad || !s->damaged))
        continue;
      s->damaged = (uint8_t)bad;
      index_slot_fill(s, &e[k], (uint32_t)ord, 0);
    }
    free(e);
    if (ord == -1)
      goto out;
  }
  r->adopted = 1;
  ret = 0;
out:
  strings_free(&c.keys);
  return ret;
}

/* ---- chunks ---------------------------------------------------------- */

int chunk_decode(const struct repo *r, const struct index_slot *s, const uint8_t *src, uint8_t *dst,
                 const char *pack)
{
  uint8_t h[HASH_LEN], *plain = NULL;
  char hex[2 * HASH_LEN + 1];
  size_t plen = s->stored_len;
  int ret = -1;
  hex_encode(s->hash, HASH_LEN, hex);
  if (r->keys) {
    /* A raw chunk decrypts straight into dst; a compressed one first into
     * a buffer of its own. */
    if (s->stored_len < SEAL_OVERHEAD) {
      set_error_code(EIO, "chunk %.16s in %s: too short for an encrypted chunk (damaged pack)", hex,
                     pack);
      return -1;
    }
    plen = s->stored_len - SEAL_OVERHEAD;
    plain = s->comp == COMP_ZSTD ? malloc(plen ? plen : 1) : dst;
    if (!plain) {
      set_error(errno, "malloc");
      return -1;
    }
    if (plain == dst && plen != s->raw_len)
      goto bad_length;
    if (unseal(r->keys, s->hash, HASH_LEN, src, s->stored_len, plain) == -1) {
      set_error_code(EIO, "chunk %.16s in %s: failed authentication (damaged or altered pack)", hex,
                     pack);
      goto out;
    }
    src = plain;
  }
  if (s->comp == COMP_ZSTD) {
    size_t n = ZSTD_decompress(dst, s->raw_len, src, plen);
    if (ZSTD_isError(n) || n != s->raw_len) {
      set_error_code(EIO, "chunk %.16s in %s: cannot decompress (damaged pack)", hex, pack);
      goto out;
    }
  } else if (src != dst) {
    if (plen != s->raw_len)
      goto bad_length;
    memcpy(dst, src, s->raw_len);
  }
  chunk_name(r->keys, dst, s->raw_len, h);
  if (memcmp(h, s->hash, HASH_LEN) != 0) {
    set_error_code(EIO, "chunk %.16s in %s: content does not match its hash (damaged pack)", hex,
                   pack);
    goto out;
  }
  ret = 0;
  goto out;
bad_length:
  set_error_code(EIO, "chunk %.16s in %s: stored length does not match (damaged pack)", hex, pack);
out:
  if (plain != dst)
    free(plain);
  return ret;
}

void repo_advise_damage(void)
{
  char msg[1024];
  int e = get_errno();
  snprintf(msg, sizeof msg, "%s", get_error());
  if (strstr(msg, "pilotlight "))
    return; /* already says what to do */
  set_error_code(e,
                 "%s: run pilotlight verify --read-data, then pilotlight repair and a backup of "
                 "the disk",
                 msg);
}

/* The index slot of a stored chunk, or NULL with the error set. */
static struct index_slot *find_stored(struct repo *r, const uint8_t hash[HASH_LEN])
{
  char hex[2 * HASH_LEN + 1];
  struct index_slot *s = chunk_index_find(r->ix, hash);
  if (s && s->pack != PACK_PENDING && !s->damaged)
    return s;
  hex_encode(hash, HASH_LEN, hex);
  if (s && s->damaged) {
    char pk[PACK_KEY_LEN];
    pack_key(r->ix->packs.v[s->pack], pk);
    set_error_code(EIO,
                   "chunk %.16s in %s is recorded as damaged (damaged pack): pilotlight repair, "
                   "then a backup of the disk, heals it",
                   hex, pk);
    return NULL;
  }
  set_error_code(ENOENT, "chunk %s is missing from the index: run pilotlight verify", hex);
  return NULL;
}

int repo_read_chunk(struct repo *r, const uint8_t hash[HASH_LEN], void **data, size_t *len)
{
  char key[PACK_KEY_LEN];
  struct index_slot *s = find_stored(r, hash);
  uint8_t *src = NULL, *dst = NULL;
  if (!s)
    return -1;
  pack_key(r->ix->packs.v[s->pack], key);
  src = malloc(s->stored_len);
  dst = malloc(s->raw_len);
  if (!src || !dst) {
    set_error(errno, "malloc");
    goto fail;
  }
  if (store_get_range(r->store, key, s->offset, s->stored_len, src) == -1 ||
      chunk_decode(r, s, src, dst, key) == -1) {
    repo_advise_damage();
    goto fail;
  }
  free(src);
  *data = dst;
  *len = s->raw_len;
  return 0;
fail:
  free(src);
  free(dst);
  return -1;
}

/* ---- snapshots ------------------------------------------------------- */

static int cmp_snapshot(const void *a, const void *b)
{
  const struct snapshot *x = *(struct snapshot *const *)a, *y = *(struct snapshot *const *)b;
  if (x->time != y->time)
    return x->time < y->time ? -1 : 1;
  if (x->time_ns != y->time_ns)
    return x->time_ns < y->time_ns ? -1 : 1;
  return strcmp(x->id, y->id);
}

#define SKIPPED "skipped (pilotlight repair moves it aside)"

/* Read and decode the snapshot object at key ("snapshots/<id>") into s,
 * its id set, through bundle b (NULL: from the store). Returns 0; 1 when the
 * object is damaged or malformed, warned about once and to be skipped (it
 * costs only itself; a command naming it is told, repo_find_snapshot); -1
 * when the caller must stop (out of memory). */
static int read_snapshot(struct repo *r, struct bundle *b, const char *key, struct snapshot *s)
{
  const char *name = key + strlen("snapshots/");
  void *buf;
  size_t len;
  int rc = get_hashed(r, b, key, name, MAX_SNAPSHOT_BYTES, &buf, &len);
  if (rc == -1 && get_errno() == ENOMEM)
    return -1;
  if (rc == 0) {
    rc = snapshot_decode(buf, len, s);
    free(buf);
    if (rc == -1)
      prefix_error("%s", key);
  }
  if (rc == -1)
    return note_bad(r, &r->bad_snapshots, key, SKIPPED) == -1 ? -1 : 1;
  snprintf(s->id, sizeof s->id, "%s", name);
  return 0;
}

int repo_list_snapshots(struct repo *r, const char *disk, struct snapshot ***out, size_t *n)
{
  struct load_ctx c = {.r = r};
  VEC(struct snapshot *) list = {0};
  size_t loaded = 0; /* keys of the sound objects, moved to the front of c.keys */
  int ret = -1;
  if (store_list_keys(r->store, "snapshots/", &c.keys) == -1)
    goto out;
  for (size_t i = 0; i < c.keys.len; i++) {
    struct snapshot *s = calloc(1, sizeof *s);
    if (!s) {
      set_error(errno, "calloc");
      goto out;
    }
    int rc = read_snapshot(r, bundle_for(r, c.keys.v[i]), c.keys.v[i], s);
    if (rc != 0) {
      free(s);
      if (rc == -1)
        goto out;
      continue;
    }
    char *sound = c.keys.v[i]; /* kept in the cache */
    c.keys.v[i] = c.keys.v[loaded];
    c.keys.v[loaded++] = sound;
    if ((disk && strcmp(s->disk, disk) != 0) || vec_push(&list, s) == -1) {
      snapshot_free(s);
      continue;
    }
  }
  bundle_save(r, BUNDLE_SNAPSHOTS, c.keys.v, loaded);
  if (list.len)
    qsort(list.v, list.len, sizeof *list.v, cmp_snapshot);
  *out = list.v;
  *n = list.len;
  list.v = NULL;
  list.len = 0;
  ret = 0;
out:
  for (size_t i = 0; i < list.len; i++)
    snapshot_free(list.v[i]);
  vec_free(&list);
  strings_free(&c.keys);
  return ret;
}

/* ---- the latest snapshot, from summaries ---------------------------------
 * Finding a disk's latest snapshot needs only each snapshot's disk and
 * time. The cache's snapshots.summary holds those for every listed name (a
 * bundle whose entries are u64 time, u32 nanoseconds and the disk name,
 * sealed as a whole in an encrypted repository), so
 * that a backup decodes one snapshot object, not all of them. Names not in
 * it are read and summarised. */

#define SUMMARY_FILE "snapshots.summary"
#define SUMMARY_HEAD 12

struct summary {
  uint8_t name[HASH_LEN];
  int64_t time;
  uint32_t ns;
  const char *disk; /* len bytes, not terminated */
  size_t len;
};

static int summary_newer(const struct summary *a, const struct summary *b)
{
  if (a->time != b->time)
    return a->time > b->time;
  if (a->ns != b->ns)
    return a->ns > b->ns;
  return memcmp(a->name, b->name, HASH_LEN) > 0; /* as cmp_snapshot: hex order is byte order */
}

/* The summaries of every listed snapshot, from the cache or read; the
 * newest of disk is *best (best->disk NULL if none). Saves the summary file
 * when it changed. Returns -1 only when the listing fails. */
static int latest_from_summaries(struct repo *r, const char *disk, struct summary *best)
{
  struct strings keys = {0};
  struct bundle sum = {0};
  VEC(struct bundle_entry) lacked = {0}; /* listed, not in the file; data owned */
  uint8_t *listed = NULL;                /* per entry of the file: 1 if listed */
  size_t from_file = 0, dlen = strlen(disk);
  void *buf;
  size_t len;
  int ret = -1;
  memset(best, 0, sizeof *best);
  if (store_list_keys(r->store, "snapshots/", &keys) == -1)
    goto out;
  if (store_map(r->cache, SUMMARY_FILE, MAX_BUNDLE_BYTES, &buf, &len) == 0) {
    /* Sealed in an encrypted repository: the disk names are secret. A
     * damaged or altered file is rebuilt. */
    uint8_t *plain;
    size_t plen;
    if (!r->keys) {
      bundle_decode_mapped(buf, len, &sum);
    } else {
      if (repo_unseal(r, "summary", buf, len, &plain, &plen) == 0)
        bundle_decode(plain, plen, &sum);
      unmap_file(buf, len);
    }
  }
  if (!(listed = calloc(sum.n ? sum.n : 1, 1))) {
    set_error(ENOMEM, "snapshot summaries");
    goto out;
  }
  for (size_t i = 0; i < keys.len; i++) {
    const char *name = keys.v[i] + strlen("snapshots/");
    struct summary x = {0};
    struct bundle_entry e = {0};
    if (strlen(name) != 2 * HASH_LEN || hex_decode(name, e.name, HASH_LEN) == -1)
      continue;
    const struct bundle_entry *c = bundle_lookup(&sum, e.name);
    if (c && c->len > SUMMARY_HEAD) {
      e = *c;
      listed[c - sum.e] = 1;
      from_file++;
    } else {
      struct snapshot s = {0};
      /* The snapshots made since the file was written: a few, read from
       * the store; past CACHE_FEW (a new or lost file) through the snapshot
       * bundle, which is not worth reading for a few. */
      int rc = read_snapshot(r, lacked.len >= CACHE_FEW ? bundle_for(r, keys.v[i]) : NULL,
                             keys.v[i], &s);
      if (rc == -1)
        goto out;
      if (rc == 1)
        continue;
      size_t dl = strlen(s.disk);
      uint8_t *rec = malloc(SUMMARY_HEAD + dl);
      e.data = rec;
      e.len = (uint32_t)(SUMMARY_HEAD + dl);
      if (!rec || vec_push(&lacked, e) == -1) {
        free(rec);
        snapshot_clear(&s);
        set_error(ENOMEM, "snapshot summaries");
        goto out;
      }
      put_u64(rec, (uint64_t)s.time);
      put_u32(rec + 8, s.time_ns);
      memcpy(rec + SUMMARY_HEAD, s.disk, dl);
      snapshot_clear(&s);
    }
    memcpy(x.name, e.name, HASH_LEN);
    x.time = (int64_t)get_u64(e.data);
    x.ns = get_u32(e.data + 8);
    x.disk = (const char *)e.data + SUMMARY_HEAD;
    x.len = e.len - SUMMARY_HEAD;
    if (x.len == dlen && memcmp(x.disk, disk, x.len) == 0 &&
        (!best->disk || summary_newer(&x, best)))
      *best = x;
  }
  if (cache_rewrite(r, from_file, lacked.len, sum.n - from_file)) {
    /* The file's listed entries and the lacking ones: what was loaded. */
    VEC(struct bundle_entry) all = {0};
    if (vec_reserve(&all, from_file + lacked.len) == 0) {
      for (size_t i = 0; i < sum.n; i++)
        if (listed[i])
          all.v[all.len++] = sum.e[i];
      for (size_t i = 0; i < lacked.len; i++)
        all.v[all.len++] = lacked.v[i];
      uint8_t *out = bundle_encode(all.v, all.len, &len), *sealed = NULL;
      size_t slen;
      if (out && repo_seal(r, "summary", out, len, &sealed, &slen) == 0)
        store_put(r->cache, SUMMARY_FILE, sealed, slen, STORE_PUT_DISPOSABLE);
      free(sealed);
      free(out);
    }
    vec_free(&all);
  }
  ret = 0;
out:
  /* best->disk pointed into these: keep only its name. */
  best->disk = best->disk ? "" : NULL;
  strings_free(&keys);
  for (size_t i = 0; i < lacked.len; i++)
    free((void *)lacked.v[i].data);
  vec_free(&lacked);
  free(listed);
  bundle_free(&sum);
  return ret;
}

/* The latest snapshot of disk through the summaries; NULL with *fallback
 * set when the full listing must decide (no cache, or the chosen object
 * cannot be read or does not match its summary). */
static struct snapshot *find_latest(struct repo *r, const char *disk, int *fallback)
{
  struct summary best;
  char name[2 * HASH_LEN + 1], key[128];
  *fallback = 1;
  if (!r->cache || r->store_reads || !disk || latest_from_summaries(r, disk, &best) == -1)
    return NULL;
  if (!best.disk) {
    *fallback = 0;
    set_error_code(ENOENT,
                   "disk %s has no snapshots in this repository: list them with pilotlight "
                   "snapshots",
                   disk);
    return NULL;
  }
  hex_encode(best.name, HASH_LEN, name);
  snprintf(key, sizeof key, "snapshots/%s", name);
  /* One object: not worth reading the whole snapshot bundle for. */
  struct snapshot *s = calloc(1, sizeof *s);
  if (!s || read_snapshot(r, NULL, key, s) != 0) {
    free(s);
    return NULL;
  }
  if (strcmp(s->disk, disk) != 0 || s->time != best.time || s->time_ns != best.ns) {
    snapshot_free(s); /* summaries that lie: dropped; the full listing decides */
    store_del(r->cache, SUMMARY_FILE);
    return NULL;
  }
  *fallback = 0;
  return s;
}

struct snapshot *repo_find_snapshot(struct repo *r, const char *disk, const char *spec)
{
  if (!spec || strcmp(spec, "latest") == 0) {
    int fallback;
    struct snapshot *latest = find_latest(r, disk, &fallback);
    if (latest || !fallback)
      return latest;
  }
  struct snapshot **all, *found = NULL;
  size_t n, matches = 0;
  if (repo_list_snapshots(r, disk, &all, &n) == -1)
    return NULL;
  if (!spec || strcmp(spec, "latest") == 0) {
    if (n)
      found = all[n - 1];
    else
      set_error_code(ENOENT,
                     "disk %s has no snapshots in this repository: list them with pilotlight "
                     "snapshots",
                     disk);
  } else {
    size_t sl = strlen(spec);
    for (size_t i = 0; i < n; i++)
      if (strncmp(all[i]->id, spec, sl) == 0 && (matches++, 1))
        found = all[i];
    const char *bad = NULL;
    for (size_t i = 0; i < r->bad_snapshots.len && matches == 0 && !bad; i++)
      if (strncmp(r->bad_snapshots.v[i] + strlen("snapshots/"), spec, sl) == 0)
        bad = r->bad_snapshots.v[i];
    if (bad) {
      set_error_code(EIO,
                     "snapshot %s is damaged (%s fails its check) and cannot be read: restore "
                     "another snapshot; pilotlight repair moves it aside",
                     spec, bad);
    } else if (matches == 0) {
      set_error_code(ENOENT,
                     "disk %s has no snapshot %s: list them with pilotlight snapshots --disk "
                     "%s",
                     disk, spec, disk);
      found = NULL;
    } else if (matches > 1) {
      set_error_code(EINVAL, "snapshot prefix %s matches %zu snapshots of %s: give more digits",
                     spec, matches, disk);
      found = NULL;
    }
  }
  for (size_t i = 0; i < n; i++)
    if (all[i] != found)
      snapshot_free(all[i]);
  free(all);
  return found;
}

/* ---- block maps ------------------------------------------------------ */

void blockmap_free(struct blockmap *m)
{
  if (m) {
    free(m->h);
    m->h = NULL;
  }
}

int blockmap_is_zero(const struct blockmap *m, uint64_t block)
{
  return hash_is_zero(m->h[block]);
}

size_t blockmap_block_len(const struct blockmap *m, uint64_t block)
{
  uint64_t off = block * m->block_size;
  uint64_t rem = m->size - off;
  return rem < m->block_size ? (size_t)rem : m->block_size;
}

/* A block-map page to load: where its chunk is, and where it goes. */
struct page_ref {
  struct index_slot slot; /* a copy: the index may grow while we read */
  size_t page;
};

static int cmp_page_ref(const void *a, const void *b)
{
  const struct page_ref *x = a, *y = b;
  if (x->slot.pack != y->slot.pack)
    return x->slot.pack < y->slot.pack ? -1 : 1;
  if (x->slot.offset != y->slot.offset)
    return x->slot.offset < y->slot.offset ? -1 : 1;
  return 0;
}

/* Pages that sit near each other in one pack are read with one ranged read:
 * a snapshot's new pages are written together, so a map of thousands of
 * pages costs a few requests, not one per page (a round trip each on S3). */
#define PAGE_READ_GAP (256u << 10)
#define PAGE_READ_SPAN (16u << 20)

int repo_load_blockmap(struct repo *r, const struct snapshot *s, struct blockmap *out)
{
  uint64_t nblocks = blocks_for(s->size, s->block_size);
  struct page_ref *refs = NULL;
  uint8_t *buf = NULL;
  size_t nrefs = 0;
  char key[PACK_KEY_LEN];
  memset(out, 0, sizeof *out);
  out->nblocks = nblocks;
  out->block_size = s->block_size;
  out->size = s->size;
  out->keys = r->keys;
  out->h = calloc(nblocks ? nblocks : 1, HASH_LEN);
  refs = calloc(s->pages.len ? s->pages.len : 1, sizeof *refs);
  if (!out->h || !refs) {
    set_error(errno, "block map of %llu blocks", (unsigned long long)nblocks);
    goto fail;
  }
  for (size_t p = 0; p < s->pages.len; p++) {
    uint64_t first = (uint64_t)p * s->page_entries;
    uint64_t count = nblocks - first < s->page_entries ? nblocks - first : s->page_entries;
    struct index_slot *slot;
    if (hash_is_zero(s->pages.v[p]))
      continue;
    slot = find_stored(r, s->pages.v[p]);
    if (!slot) {
      prefix_error("snapshot %.12s block map page %zu", s->id, p);
      goto fail;
    }
    if (slot->raw_len != count * HASH_LEN) {
      set_error_code(EIO, "snapshot %.12s block map page %zu has the wrong length", s->id, p);
      goto fail;
    }
    refs[nrefs].slot = *slot;
    refs[nrefs++].page = p;
  }
  qsort(refs, nrefs, sizeof *refs, cmp_page_ref);
  for (size_t i = 0, j; i < nrefs; i = j) {
    uint64_t lo = refs[i].slot.offset, hi = lo + refs[i].slot.stored_len;
    for (j = i + 1; j < nrefs && refs[j].slot.pack == refs[i].slot.pack &&
                    refs[j].slot.offset <= hi + PAGE_READ_GAP &&
                    refs[j].slot.offset + refs[j].slot.stored_len - lo <= PAGE_READ_SPAN;
         j++)
      if (refs[j].slot.offset + refs[j].slot.stored_len > hi)
        hi = refs[j].slot.offset + refs[j].slot.stored_len;
    pack_key(r->ix->packs.v[refs[i].slot.pack], key);
    free(buf);
    buf = malloc(hi - lo);
    if (!buf) {
      set_error(errno, "malloc");
      goto fail;
    }
    if (store_get_range(r->store, key, lo, hi - lo, buf) == -1) {
      prefix_error("snapshot %.12s block map page %zu", s->id, refs[i].page);
      goto fail;
    }
    for (size_t k = i; k < j; k++) {
      uint8_t *dst = out->h[(uint64_t)refs[k].page * s->page_entries];
      if (chunk_decode(r, &refs[k].slot, buf + (refs[k].slot.offset - lo), dst, key) == -1) {
        prefix_error("snapshot %.12s block map page %zu", s->id, refs[k].page);
        repo_advise_damage();
        goto fail;
      }
    }
  }
  free(buf);
  free(refs);
  return 0;
fail:
  free(buf);
  free(refs);
  blockmap_free(out);
  return -1;
}
