/* Local folder store: object keys are file names below the root folder.
 * Objects are written to a temporary name, fsynced, renamed into place and
 * the folder fsynced, so a crash leaves either the whole object or nothing. */
#define _GNU_SOURCE
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../util/error.h"

struct local_store {
  struct store base;
  char *root;
  int rootfd;
};

static atomic_uint tmp_counter;

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
    if (mkdirat(ls->rootfd, dir, 0755) == -1 && errno != EEXIST) {
      set_error(errno, "%s/%s: cannot create folder", ls->root, dir);
      return -1;
    }
    p++;
  }
  return 0;
}

static int fsync_parent(struct local_store *ls, const char *key)
{
  char dir[PATH_MAX];
  const char *slash = strrchr(key, '/');
  size_t n = slash ? (size_t)(slash - key) : 0;
  if (n == 0) {
    dir[0] = '.';
    dir[1] = 0;
  } else {
    memcpy(dir, key, n);
    dir[n] = 0;
  }
  int fd = openat(ls->rootfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd == -1 || fsync(fd) == -1) {
    set_error(errno, "%s/%s: fsync folder", ls->root, dir);
    if (fd != -1)
      close(fd);
    return -1;
  }
  close(fd);
  return 0;
}

static int write_all(int fd, const void *buf, size_t len)
{
  const char *p = buf;
  while (len > 0) {
    ssize_t r = write(fd, p, len);
    if (r == -1) {
      if (errno == EINTR)
        continue;
      return -1;
    }
    p += r;
    len -= (size_t)r;
  }
  return 0;
}

static int local_put(struct store *s, const char *key, const void *buf, size_t len, unsigned flags)
{
  struct local_store *ls = (struct local_store *)s;
  char tmp[PATH_MAX];
  int fd = -1, ret = -1;

  if (make_parents(ls, key) == -1)
    return -1;
  if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld.%u", key, (long)getpid(),
               atomic_fetch_add(&tmp_counter, 1)) >= (int)sizeof tmp) {
    set_error(ENAMETOOLONG, "%s", key);
    return -1;
  }
  fd = openat(ls->rootfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd == -1) {
    set_error(errno, "%s/%s: cannot create", ls->root, tmp);
    return -1;
  }
  if (write_all(fd, buf, len) == -1) {
    set_error(errno, "%s/%s: write", ls->root, tmp);
    goto out;
  }
  if (fsync(fd) == -1) {
    set_error(errno, "%s/%s: fsync", ls->root, tmp);
    goto out;
  }
  if (close(fd) == -1) {
    fd = -1;
    set_error(errno, "%s/%s: close", ls->root, tmp);
    goto out;
  }
  fd = -1;
  if (renameat2(ls->rootfd, tmp, ls->rootfd, key,
                (flags & STORE_PUT_EXCL) ? RENAME_NOREPLACE : 0) == -1) {
    if (errno == EEXIST)
      set_error(EEXIST, "%s/%s: already exists", ls->root, key);
    else
      set_error(errno, "%s/%s: rename", ls->root, key);
    goto out;
  }
  if (fsync_parent(ls, key) == -1)
    return -1;
  return 0;
out:
  if (fd != -1)
    close(fd);
  unlinkat(ls->rootfd, tmp, 0);
  return ret;
}

static int local_get(struct store *s, const char *key, size_t max, void **bufp, size_t *lenp)
{
  struct local_store *ls = (struct local_store *)s;
  struct stat st;
  char *buf = NULL;
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
  size_t got = 0;
  while (got < (size_t)st.st_size) {
    ssize_t r = pread(fd, buf + got, (size_t)st.st_size - got, (off_t)got);
    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1) {
      set_error(errno, "%s/%s: read", ls->root, key);
      goto out;
    }
    if (r == 0)
      break;
    got += (size_t)r;
  }
  buf[got] = 0; /* convenience for text objects */
  *bufp = buf;
  *lenp = got;
  buf = NULL;
  ret = 0;
out:
  free(buf);
  close(fd);
  return ret;
}

static int local_get_range(struct store *s, const char *key, uint64_t off, size_t len, void *buf)
{
  struct local_store *ls = (struct local_store *)s;
  int ret = -1;
  int fd = openat(ls->rootfd, key, O_RDONLY | O_CLOEXEC);
  if (fd == -1) {
    set_error(errno, "%s/%s", ls->root, key);
    return -1;
  }
  size_t got = 0;
  while (got < len) {
    ssize_t r = pread(fd, (char *)buf + got, len - got, (off_t)(off + got));
    if (r == -1 && errno == EINTR)
      continue;
    if (r == -1) {
      set_error(errno, "%s/%s: read", ls->root, key);
      goto out;
    }
    if (r == 0) {
      set_error(EIO, "%s/%s: truncated: wanted %zu bytes at offset %llu, object ends at %llu",
                ls->root, key, len, (unsigned long long)off, (unsigned long long)(off + got));
      goto out;
    }
    got += (size_t)r;
  }
  ret = 0;
out:
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
 * whose key starts with prefix. Temporary files are skipped. */
static int walk(struct local_store *ls, const char *rel, const char *prefix, store_list_cb cb,
                void *opaque)
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
    if (e->d_name[0] == '.' || strstr(e->d_name, ".tmp."))
      continue;
    char key[PATH_MAX];
    if (snprintf(key, sizeof key, "%s%s%s", rel, rel[0] ? "/" : "", e->d_name) >= (int)sizeof key)
      continue;
    struct stat st;
    if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == -1)
      continue;
    size_t klen = strlen(key);
    size_t cmp = klen < plen ? klen : plen;
    if (strncmp(key, prefix, cmp) != 0)
      continue;
    if (S_ISDIR(st.st_mode)) {
      ret = walk(ls, key, prefix, cb, opaque);
    } else if (S_ISREG(st.st_mode) && klen >= plen) {
      ret = cb(opaque, key, (uint64_t)st.st_size);
    }
    if (ret == -1)
      break;
  }
  closedir(d);
  return ret;
}

static int local_list(struct store *s, const char *prefix, store_list_cb cb, void *opaque)
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
  return walk(ls, rel, prefix, cb, opaque);
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
    .get_range = local_get_range,
    .head = local_head,
    .del = local_del,
    .list = local_list,
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
