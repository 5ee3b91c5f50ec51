/* Object stores: a flat namespace of immutable objects under a prefix.
 * Each backend (local folder, S3) is a struct whose first member is
 * struct store, plus a table of operations. Keys are relative to the
 * repository root, '/'-separated, e.g. "packs/ab/ab12...". */
#ifndef PL_STORE_H
#define PL_STORE_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../util/error.h"
#include "../util/vec.h"

struct ratelimit;

struct store;

/* Flags for put. */
#define STORE_PUT_EXCL 1u /* fail with EEXIST if the key exists (If-None-Match: *) */
/* A disposable copy that a crash may lose or tear: the local cache, whose
 * files are checked when read and rebuilt. A folder skips its fsyncs. */
#define STORE_PUT_DISPOSABLE 2u

/* Called once per key by list; return 0 to go on, -1 to stop with an error
 * already set. key is borrowed for the duration of the call. mtime is the
 * object's last modification (seconds since the epoch, by the store's clock:
 * the file system's, or the S3 server's LastModified); 0 if unknown. */
typedef int (*store_list_cb)(void *opaque, const char *key, uint64_t size, int64_t mtime);

/* One version of an object in a versioned (Object Lock) bucket, for
 * list_versions. Strings are borrowed for the call. */
struct store_version {
  const char *key; /* relative to the repository root */
  const char *version_id;
  uint64_t size;
  int64_t mtime;
  int is_latest;     /* the version a plain GET reads (or the marker hiding them all) */
  int delete_marker; /* a delete marker, not bytes */
};
typedef int (*store_version_cb)(void *opaque, const struct store_version *v);

struct store_ops {
  const char *name; /* "local", "s3" */
  /* Write a whole object durably. With STORE_PUT_EXCL, fail (errno EEXIST) if
   * the key already exists. The buffer is borrowed for the call. Thread-safe. */
  int (*put)(struct store *s, const char *key, const void *buf, size_t len, unsigned flags);
  /* Read a whole object of at most max bytes into *buf (caller frees with
   * free()). ENOENT if missing, EFBIG if larger than max. Thread-safe. */
  int (*get)(struct store *s, const char *key, size_t max, void **buf, size_t *len);
  /* Map a whole object of at most max bytes read-only where objects are
   * files (a folder; NULL elsewhere): release with unmap_file(*buf, *len)
   * (util/fileio.h, which says what a mapping costs and risks). The limit
   * on downloads does not apply. */
  int (*map)(struct store *s, const char *key, size_t max, void **buf, size_t *len);
  /* Read exactly len bytes at off into buf; a short object is EIO
   * ("truncated"). Thread-safe. */
  int (*get_range)(struct store *s, const char *key, uint64_t off, size_t len, void *buf);
  /* Size of an object; ENOENT if missing. */
  int (*head)(struct store *s, const char *key, uint64_t *size);
  /* Remove an object; removing a missing object is not an error. */
  int (*del)(struct store *s, const char *key);
  /* Call cb for every key that starts with prefix, in no particular order. */
  int (*list)(struct store *s, const char *prefix, store_list_cb cb, void *opaque);
  /* As list, but cb may get 0 for size and mtime: cheaper where they cost a
   * call per key (a folder's stat). NULL: list serves. */
  int (*list_names)(struct store *s, const char *prefix, store_list_cb cb, void *opaque);
  /* Temporary leftovers of interrupted writes (a folder's KEY.tmp.* files, an
   * S3 bucket's incomplete multipart uploads under the prefix): cb gets a name
   * that remove_temp accepts (borrowed for the call), the size (0 if
   * unknown) and the time the write started or last touched it. */
  int (*list_temp)(struct store *s, store_list_cb cb, void *opaque);
  /* Remove one leftover named by list_temp; a gone one is not an error. A
   * name list_temp cannot have given is EINVAL. */
  int (*remove_temp)(struct store *s, const char *name);
  /* Object Lock, where the backend has it (S3); NULL elsewhere. In a
   * versioned bucket del adds a delete marker: the bytes stay as a
   * noncurrent version until del_version removes it. */
  /* 1 if the bucket has Object Lock enabled, 0 if not, -1 on error. */
  int (*lock_enabled)(struct store *s);
  /* The retain-until date of a version (NULL: the current one); 0 if none.
   * ENOENT if there is no such version. */
  int (*get_retention)(struct store *s, const char *key, const char *version, int64_t *until);
  /* Set the current version's retain-until date in the store's retain_mode.
   * Shortening it is refused by the server (EACCES). */
  int (*set_retention)(struct store *s, const char *key, int64_t until);
  /* Every version and delete marker of the keys that start with prefix,
   * each key's newest first. */
  int (*list_versions)(struct store *s, const char *prefix, store_version_cb cb, void *opaque);
  /* get and del of one version. A locked version's del is refused (EACCES). */
  int (*get_version)(struct store *s, const char *key, const char *version, size_t max, void **buf,
                     size_t *len);
  int (*del_version)(struct store *s, const char *key, const char *version);
  void (*free)(struct store *s);
};

struct store {
  const struct store_ops *ops;
  char *location; /* the URL or path as given, for messages; owned */
  int is_remote;  /* 1 if reads cost a network round trip (cache index objects) */
  /* Object Lock retention written with every put outside locks/ (set by the
   * repository from its config; S3 only): "GOVERNANCE" or "COMPLIANCE"
   * (NULL: none), for retain_seconds from the time of the put. */
  const char *retain_mode;
  int64_t retain_seconds;
  /* Bandwidth limits shared by every thread using the store (borrowed;
   * NULL, the default: unlimited), set by whoever opened it, before use:
   * the bytes of put (and multipart parts) pass through limit_up, those of
   * get and get_range through limit_down, in ratelimit_piece pieces. */
  struct ratelimit *limit_up, *limit_down;
};

/* 1 for the objects a repository rewrites in place (locks/, status/): they
 * are written without Object Lock retention, and their older versions may
 * be purged at any time. */
static inline int store_key_mutable(const char *key)
{
  return strncmp(key, "locks/", 6) == 0 || strncmp(key, "status/", 7) == 0;
}

struct s3_settings;

/* Open the store named by location: "s3://BUCKET/PREFIX", "s3:http(s)://HOST/BUCKET/PREFIX",
 * or a local folder path. With create, a missing local folder is created.
 * s3 (borrowed for the call; NULL: the defaults of store/s3-config.h, with no
 * credentials) is used only for s3: locations. Returns NULL with the error
 * set. Caller frees with store_free. */
struct store *store_open(const char *location, int create, const struct s3_settings *s3);
void store_free(struct store *s);

static inline int store_put(struct store *s, const char *key, const void *buf, size_t len,
                            unsigned flags)
{
  return s->ops->put(s, key, buf, len, flags);
}
static inline int store_get(struct store *s, const char *key, size_t max, void **buf, size_t *len)
{
  return s->ops->get(s, key, max, buf, len);
}
/* ENOTSUP where the store has no map. */
static inline int store_map(struct store *s, const char *key, size_t max, void **buf, size_t *len)
{
  if (!s->ops->map) {
    set_error_code(ENOTSUP, "%s: a %s store cannot map objects", key, s->ops->name);
    return -1;
  }
  return s->ops->map(s, key, max, buf, len);
}
static inline int store_get_range(struct store *s, const char *key, uint64_t off, size_t len,
                                  void *buf)
{
  return s->ops->get_range(s, key, off, len, buf);
}
static inline int store_head(struct store *s, const char *key, uint64_t *size)
{
  return s->ops->head(s, key, size);
}
static inline int store_del(struct store *s, const char *key)
{
  return s->ops->del(s, key);
}
static inline int store_list(struct store *s, const char *prefix, store_list_cb cb, void *opaque)
{
  return s->ops->list(s, prefix, cb, opaque);
}

static inline int store_list_names(struct store *s, const char *prefix, store_list_cb cb,
                                   void *opaque)
{
  return (s->ops->list_names ? s->ops->list_names : s->ops->list)(s, prefix, cb, opaque);
}

/* Append every key that starts with prefix to out (copies, in no
 * particular order). Returns 0, or -1 with the error set; what was
 * appended stays for the caller to free. */
int store_list_keys(struct store *s, const char *prefix, struct strings *out);

static inline int store_list_temp(struct store *s, store_list_cb cb, void *opaque)
{
  return s->ops->list_temp(s, cb, opaque);
}
static inline int store_remove_temp(struct store *s, const char *name)
{
  return s->ops->remove_temp(s, name);
}

/* Backend constructors, used by store_open. */
struct store *local_store_open(const char *path, int create);
struct store *s3_store_open(const char *location, int create, const struct s3_settings *s3);

#endif
