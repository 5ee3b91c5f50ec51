/* Local folder store: object keys are file names below the root folder.
 * Objects are written to a temporary name, fsynced, renamed into place and
 * the folder fsynced, so a crash leaves either the whole object or nothing. */
#define _GNU_SOURCE
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../util/error.h"
#include "../util/fileio.h"
#include "../util/ratelimit.h"

struct local_store {
  struct store base;
  char *root;
  int rootfd;
};

/* Create the parent folders of key below the root. */
static int make_parents(struct local_store *ls, const char *key)
{
  char dir[PATH_MAX];
  const char *p = key;
  while ((p = strchr(p, '/')) != NULL) {
    size_t n = (size_t)(p - key);
    if (n >= sizeof dir) {
      set_error(ENAMETOOLONG, "%s", key);
      return -1;
    }
    memcpy(dir, key, n);
    dir[n] = 0;
    if (mkdirat(ls->rootfd, dir, 0755) == 0) {
      /* A new folder is durable only once the folder holding it is. */
      char shown[PATH_MAX + 256];
      snprintf(shown, sizeof shown, "%s/%s", ls->root, dir);
      if (fsync_folder_of(ls->rootfd, dir, shown) == -1)
        return -1;
    } else if (errno != EEXIST) {
      set_error(errno, "%s/%s: cannot create folder", ls->root, dir);
      return -1;
    }
    p++;
  }
  return 0;
}

static int local_put(struct store *s, const char *key, const void *buf, size_t len, unsigned flags)
{
  struct local_store *ls = (struct local_store *)s;
  if (make_parents(ls, key) == -1)
    return -1;
  return write_file_atomic_limited(ls->rootfd, ls->root, key, buf, len, 0644,
                                   ((flags & STORE_PUT_EXCL) ? WRITE_ATOMIC_EXCL : 0) |
                                       ((flags & STORE_PUT_DISPOSABLE) ? WRITE_ATOMIC_NOSYNC : 0),
                                   s->limit_up);
}

/* pread_all in pieces, each after its take on the store's download limit. */
static int read_limited(struct store *s, int fd, void *buf, size_t len, uint64_t off,
                        const char *shown)
{
  size_t piece = ratelimit_piece(s->limit_down);
  for (size_t done = 0; done < len;) {
    size_t n = len - done < piece ? len - done : piece;
    if (ratelimit_take(s->limit_down, n) == -1 ||
        pread_all(fd, (char *)buf + done, n, off + done, shown) == -1)
      return -1;
    done += n;
  }
  return 0;
}

static int local_get(struct store *s, const char *key, size_t max, void **bufp, size_t *lenp)
{
  struct local_store *ls = (struct local_store *)s;
  struct stat st;
  char *buf = NULL, shown[PATH_MAX + 256];
  int ret = -1;
  int fd = openat(ls->rootfd, key, O_RDONLY | O_CLOEXEC);
  if (fd == -1) {
    set_error(errno, "%s/%s", ls->root, key);
    return -1;
  }
  if (fstat(fd, &st) == -1) {
    set_error(errno, "%s/%s: stat", ls->root, key);
    goto out;
  }
  if ((uint64_t)st.st_size > max) {
    set_error(EFBIG, "%s/%s: object of %lld bytes is larger than the %zu allowed", ls->root, key,
              (long long)st.st_size, max);
    goto out;
  }
  buf = malloc((size_t)st.st_size + 1);
  if (!buf) {
    set_error(errno, "malloc");
    goto out;
  }
  snprintf(shown, sizeof shown, "%s/%s", ls->root, key);
  if (read_limited(s, fd, buf, (size_t)st.st_size, 0, shown) == -1)
    goto out;
  buf[st.st_size] = 0; /* convenience for text objects */
  *bufp = buf;
  *lenp = (size_t)st.st_size;
  buf = NULL;
  ret = 0;
out:
  free(buf);
  close(fd);
  return ret;
}

static int local_map(struct store *s, const char *key, size_t max, void **bufp, size_t *lenp)
{
  struct local_store *ls = (struct local_store *)s;
  char shown[PATH_MAX + 256];
  snprintf(shown, sizeof shown, "%s/%s", ls->root, key);
  return map_file_at(ls->rootfd, key, max, shown, bufp, lenp);
}

static int local_get_range(struct store *s, const char *key, uint64_t off, size_t len, void *buf)
{
  struct local_store *ls = (struct local_store *)s;
  char shown[PATH_MAX + 256];
  int fd = openat(ls->rootfd, key, O_RDONLY | O_CLOEXEC);
  if (fd == -1) {
    set_error(errno, "%s/%s", ls->root, key);
    return -1;
  }
  snprintf(shown, sizeof shown, "%s/%s", ls->root, key);
  int ret = read_limited(s, fd, buf, len, off, shown);
  close(fd);
  return ret;
}

static int local_head(struct store *s, const char *key, uint64_t *size)
{
  struct local_store *ls = (struct local_store *)s;
  struct stat st;
  if (fstatat(ls->rootfd, key, &st, 0) == -1) {
    set_error(errno, "%s/%s", ls->root, key);
    return -1;
  }
  *size = (uint64_t)st.st_size;
  return 0;
}

static int local_del(struct store *s, const char *key)
{
  struct local_store *ls = (struct local_store *)s;
  if (unlinkat(ls->rootfd, key, 0) == -1 && errno != ENOENT) {
    set_error(errno, "%s/%s: delete", ls->root, key);
    return -1;
  }
  return 0;
}

/* Walk folder rel (relative to the root; "" for the root) and report files
 * whose key starts with prefix: objects, or with temp only the temporary
 * files (names holding ".tmp.") that every other listing skips. With
 * names, a file's size and mtime are passed as 0 and it is not stat'ed
 * where the folder entry tells its type. */
static int walk(struct local_store *ls, const char *rel, const char *prefix, int temp, int names,
                store_list_cb cb, void *opaque)
{
  int fd = openat(ls->rootfd, rel[0] ? rel : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd == -1) {
    if (errno == ENOENT)
      return 0;
    set_error(errno, "%s/%s: open folder", ls->root, rel);
    return -1;
  }
  DIR *d = fdopendir(fd);
  if (!d) {
    set_error(errno, "%s/%s: open folder", ls->root, rel);
    close(fd);
    return -1;
  }
  int ret = 0;
  struct dirent *e;
  size_t plen = strlen(prefix);
  while ((e = readdir(d)) != NULL) {
    int is_temp = strstr(e->d_name, ".tmp.") != NULL;
    if (e->d_name[0] == '.')
      continue;
    char key[PATH_MAX];
    if (snprintf(key, sizeof key, "%s%s%s", rel, rel[0] ? "/" : "", e->d_name) >= (int)sizeof key)
      continue;
    size_t klen = strlen(key);
    size_t cmp = klen < plen ? klen : plen;
    if (strncmp(key, prefix, cmp) != 0)
      continue;
    struct stat st = {0};
    if (names && (e->d_type == DT_DIR || e->d_type == DT_REG))
      st.st_mode = e->d_type == DT_DIR ? S_IFDIR : S_IFREG;
    else if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1)
      continue;
    if (S_ISDIR(st.st_mode) && !is_temp) {
      ret = walk(ls, key, prefix, temp, names, cb, opaque);
    } else if (S_ISREG(st.st_mode) && klen >= plen && is_temp == temp) {
      ret = cb(opaque, key, (uint64_t)st.st_size, (int64_t)st.st_mtim.tv_sec);
    }
    if (ret == -1)
      break;
  }
  closedir(d);
  return ret;
}

static int list_from(struct store *s, const char *prefix, int names, store_list_cb cb, void *opaque)
{
  struct local_store *ls = (struct local_store *)s;
  /* Start at the deepest folder named by the prefix. */
  char rel[PATH_MAX];
  const char *slash = strrchr(prefix, '/');
  size_t n = slash ? (size_t)(slash - prefix) : 0;
  if (n >= sizeof rel) {
    set_error(ENAMETOOLONG, "%s", prefix);
    return -1;
  }
  memcpy(rel, prefix, n);
  rel[n] = 0;
  return walk(ls, rel, prefix, 0, names, cb, opaque);
}

static int local_list(struct store *s, const char *prefix, store_list_cb cb, void *opaque)
{
  return list_from(s, prefix, 0, cb, opaque);
}

static int local_list_names(struct store *s, const char *prefix, store_list_cb cb, void *opaque)
{
  return list_from(s, prefix, 1, cb, opaque);
}

static int local_list_temp(struct store *s, store_list_cb cb, void *opaque)
{
  return walk((struct local_store *)s, "", "", 1, 0, cb, opaque);
}

static int local_remove_temp(struct store *s, const char *name)
{
  if (!strstr(name, ".tmp.") || strstr(name, "..") || name[0] == '/') {
    set_error_code(EINVAL, "%s: not a temporary file name", name);
    return -1;
  }
  return local_del(s, name);
}

static void local_free(struct store *s)
{
  struct local_store *ls = (struct local_store *)s;
  if (ls->rootfd != -1)
    close(ls->rootfd);
  free(ls->root);
  free(ls->base.location);
  free(ls);
}

static const struct store_ops local_ops = {
    .name = "local",
    .put = local_put,
    .get = local_get,
    .map = local_map,
    .get_range = local_get_range,
    .head = local_head,
    .del = local_del,
    .list = local_list,
    .list_names = local_list_names,
    .list_temp = local_list_temp,
    .remove_temp = local_remove_temp,
    .free = local_free,
};

struct store *local_store_open(const char *path, int create)
{
  struct local_store *ls = calloc(1, sizeof *ls);
  if (!ls) {
    set_error(errno, "calloc");
    return NULL;
  }
  ls->rootfd = -1;
  ls->base.ops = &local_ops;
  ls->root = strdup(path);
  ls->base.location = strdup(path);
  if (!ls->root || !ls->base.location) {
    set_error(errno, "strdup");
    goto fail;
  }
  size_t n = strlen(ls->root);
  while (n > 1 && ls->root[n - 1] == '/')
    ls->root[--n] = 0;
  if (create && mkdir(ls->root, 0755) == -1 && errno != EEXIST) {
    set_error(errno, "%s: cannot create the repository folder", ls->root);
    goto fail;
  }
  ls->rootfd = open(ls->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (ls->rootfd == -1) {
    set_error(errno, "%s: cannot open the repository folder", ls->root);
    goto fail;
  }
  return &ls->base;
fail:
  local_free(&ls->base);
  return NULL;
}
