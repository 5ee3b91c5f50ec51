/* The one sink: opening a restore, replica or export target with the safety
 * rules (temporary name for new files, --force for existing ones, refusal
 * of targets held by another process, the incomplete marker), and the
 * writes, zeroing, fsync and commit that every writer shares. */
#define _GNU_SOURCE
#include "sink.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../util/error.h"
#include "../util/fileio.h"

#define DEVICE_MARK_DIR "/var/lib/pilotlight/incomplete"
#define MARK_MAX 512

static const uint8_t zeros[64 << 10];

char *sink_marker_path(const char *path, int is_dev)
{
  char *p = NULL;
  if (!is_dev) {
    if (asprintf(&p, "%s.pilotlight-incomplete", path) == -1)
      p = NULL;
  } else {
    /* /dev/vg/lv -> dev_vg_lv: stable across reboots for a stable name. */
    char name[PATH_MAX];
    size_t j = 0;
    for (const char *c = path; *c && j + 1 < sizeof name; c++)
      name[j++] = *c == '/' ? '_' : *c;
    name[j] = '\0';
    if (asprintf(&p, "%s/%s", DEVICE_MARK_DIR, name[0] == '_' ? name + 1 : name) == -1)
      p = NULL;
  }
  if (p == NULL)
    set_error(ENOMEM, "out of memory");
  return p;
}

/* 1 and what it says in what (size n) when mark exists, 0 when not. */
static int read_mark(const char *mark, char *what, size_t n)
{
  int fd = open(mark, O_RDONLY | O_CLOEXEC);
  if (fd == -1)
    return 0;
  ssize_t r = read(fd, what, n - 1);
  close(fd);
  what[r > 0 ? (size_t)r : 0] = '\0';
  what[strcspn(what, "\n")] = '\0';
  if (what[0] == '\0')
    snprintf(what, n, "a snapshot");
  return 1;
}

/* Refuse a file that another process holds: QEMU and qemu-nbd lock their
 * images with OFD locks, and so does a running replica sync. Our lock is
 * kept until the fd is closed. */
static int lock_file(int fd, const char *path)
{
  struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
  if (fcntl(fd, F_OFD_SETLK, &fl) == -1 && (errno == EAGAIN || errno == EACCES)) {
    set_error_code(EBUSY,
                   "%s is in use (locked by another process, such as a running VM, qemu-nbd "
                   "or another sync): stop it first",
                   path);
    return -1;
  }
  return 0;
}

static int open_existing(struct sink *s, const struct stat *st, unsigned flags)
{
  s->is_dev = S_ISBLK(st->st_mode);
  if (!s->is_dev && !S_ISREG(st->st_mode)) {
    set_error_code(EINVAL, "%s is not a regular file or block device", s->path);
    return -1;
  }
  if (s->is_dev && (flags & SINK_FILE_ONLY)) {
    set_error_code(EINVAL, "%s is a block device: export writes image files; use restore", s->path);
    return -1;
  }
  char what[MARK_MAX];
  s->mark = sink_marker_path(s->path, s->is_dev);
  if (s->mark == NULL)
    return -1;
  s->marked = read_mark(s->mark, what, sizeof what);
  if (s->marked && !(flags & SINK_IGNORE_MARK)) {
    set_error_code(EBUSY,
                   "%s is incomplete: an earlier restore of %s was interrupted; rerun restore "
                   "--force",
                   s->path, what);
    return -1;
  }
  if (!(flags & (SINK_EXISTING | SINK_REPLACE))) {
    set_error_code(EEXIST, "%s exists: add --force to overwrite it", s->path);
    return -1;
  }
  int mode = (flags & SINK_READ) ? O_RDWR : O_WRONLY;
  /* O_EXCL on a block device fails with EBUSY while it is mounted or held
   * by another exclusive opener. */
  int fd = open(s->path, mode | O_CLOEXEC | (s->is_dev ? O_EXCL : 0));
  if (fd == -1) {
    if (errno == EBUSY)
      set_error_code(EBUSY, "%s is in use (mounted or held by another program)", s->path);
    else
      set_error(errno, "%s: cannot open for writing", s->path);
    return -1;
  }
  if (s->is_dev) {
    s->fd = fd;
    int ro = 0;
    if (ioctl(fd, BLKROGET, &ro) == 0 && ro) {
      set_error_code(EROFS, "%s is a read-only device", s->path);
      return -1;
    }
    if (ioctl(fd, BLKGETSIZE64, &s->size) == -1) {
      set_error(errno, "%s: BLKGETSIZE64", s->path);
      return -1;
    }
    return 0;
  }
  if (flags & SINK_REPLACE)
    s->hold_fd = fd;
  else
    s->fd = fd;
  if (lock_file(fd, s->path) == -1)
    return -1;
  s->size = (uint64_t)st->st_size;
  return 0;
}

static int create_new(struct sink *s, unsigned flags)
{
  int mode = (flags & SINK_READ) ? O_RDWR : O_WRONLY;
  const char *name = s->path;
  if (!(flags & SINK_IN_PLACE)) {
    /* A unique name: what a killed run leaves behind never blocks a rerun. */
    if (asprintf(&s->tmp_path, "%s.pilotlight-part.%ld", s->path, (long)getpid()) == -1) {
      s->tmp_path = NULL;
      set_error(ENOMEM, "out of memory");
      return -1;
    }
    name = s->tmp_path;
  }
  s->fd = open(name, mode | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (s->fd == -1) {
    set_error(errno, "%s: cannot create", name);
    free(s->tmp_path);
    s->tmp_path = NULL;
    return -1;
  }
  s->created = 1;
  s->fresh = 1;
  return 0;
}

struct sink *sink_open(const char *path, unsigned flags)
{
  struct sink *s = calloc(1, sizeof *s);
  struct stat st;
  if (s == NULL) {
    set_error(ENOMEM, "out of memory");
    return NULL;
  }
  s->fd = -1;
  s->hold_fd = -1;
  s->path = strdup(path);
  if (s->path == NULL) {
    set_error(ENOMEM, "out of memory");
    goto fail;
  }
  if ((flags & SINK_STDOUT) && strcmp(path, "-") == 0) {
    if (isatty(STDOUT_FILENO)) {
      set_error_code(EINVAL, "standard output is a terminal: redirect it to a file or a pipe");
      goto fail;
    }
    s->fd = STDOUT_FILENO;
    s->is_stream = 1;
    s->fresh = 1;
    return s;
  }
  if (stat(path, &st) == 0) {
    if (open_existing(s, &st, flags) == -1)
      goto fail;
    if (s->fd != -1)
      return s;
  } else if (errno != ENOENT) {
    set_error(errno, "%s", path);
    goto fail;
  }
  if (create_new(s, flags) == -1)
    goto fail;
  return s;
fail:
  sink_free(s);
  return NULL;
}

int sink_mark_incomplete(struct sink *s, const char *what)
{
  if (s->created || s->is_stream || s->tmp_path != NULL)
    return 0;
  if (s->is_dev) {
    if (mkdir("/var/lib/pilotlight", 0755) == -1 && errno != EEXIST) {
      set_error(errno, "cannot create /var/lib/pilotlight");
      return -1;
    }
    if (mkdir(DEVICE_MARK_DIR, 0755) == -1 && errno != EEXIST) {
      set_error(errno, "cannot create %s", DEVICE_MARK_DIR);
      return -1;
    }
  }
  char buf[MARK_MAX];
  int n = snprintf(buf, sizeof buf, "%s\n", what);
  if (n < 0 || (size_t)n >= sizeof buf) {
    set_error(ENAMETOOLONG, "%s: marker text too long", s->mark);
    return -1;
  }
  if (write_file_atomic(AT_FDCWD, NULL, s->mark, buf, (size_t)n, 0644, 0) == -1) {
    prefix_error("cannot write the incomplete marker");
    return -1;
  }
  s->marked = 1;
  return 0;
}

/* Append zeros to a stream up to off. */
static int stream_fill(struct sink *s, uint64_t off)
{
  while (s->size < off) {
    size_t n = off - s->size < sizeof zeros ? (size_t)(off - s->size) : sizeof zeros;
    if (sink_pwrite(s, zeros, n, s->size) == -1)
      return -1;
  }
  return 0;
}

int sink_set_size(struct sink *s, uint64_t size, int fresh)
{
  if (s->is_dev)
    return 0;
  if (s->is_stream)
    return stream_fill(s, size);
  /* Truncating to zero first turns every old byte into a hole. */
  if ((fresh && ftruncate(s->fd, 0) == -1) || ftruncate(s->fd, (off_t)size) == -1) {
    set_error(errno, "%s: cannot size to %llu bytes", s->path, (unsigned long long)size);
    return -1;
  }
  s->size = size;
  if (fresh)
    s->fresh = 1;
  return 0;
}

#ifdef PL_TEST_HOOKS
/* Test hook: PILOTLIGHT_TEST_SINK_DELAY_US slows every write down, so that
 * the tests can interrupt a restore, sync or export half-way. */
static void test_delay(void)
{
  const char *d = getenv("PILOTLIGHT_TEST_SINK_DELAY_US");
  if (d != NULL)
    usleep((useconds_t)strtoul(d, NULL, 10));
}
#else
static void test_delay(void)
{
}
#endif

int sink_pwrite(struct sink *s, const void *buf, size_t len, uint64_t off)
{
  test_delay();
  if (!s->is_stream)
    return pwrite_all(s->fd, buf, len, off, s->path);
  if (off < s->size) {
    set_error(ESPIPE, "standard output: cannot go back to offset %llu", (unsigned long long)off);
    return -1;
  }
  if (stream_fill(s, off) == -1)
    return -1;
  if (write_all(s->fd, buf, len, "standard output") == -1)
    return -1;
  s->size += len;
  return 0;
}

int sink_pwrite_sparse(struct sink *s, const void *buf, size_t len, uint64_t off)
{
  if (s->is_stream)
    return sink_pwrite(s, buf, len, off);
  test_delay();
  return pwrite_sparse(s->fd, buf, len, off, s->path);
}

int sink_zero(struct sink *s, uint64_t off, uint64_t len)
{
  if (s->is_stream) {
    set_error(ESPIPE, "standard output: cannot zero a range");
    return -1;
  }
  uint64_t end = off + len;
  if (s->is_dev && end > s->size)
    end = s->size;
  if (off >= end)
    return 0;
  return zero_range(s->fd, s->is_dev, off, end - off, s->path);
}

int sink_fsync(struct sink *s)
{
  if (s->is_stream)
    return 0; /* a pipe has nothing to sync; a redirected file is the shell's */
  if (fsync(s->fd) == -1) {
    set_error(errno, "%s: fsync", s->tmp_path ? s->tmp_path : s->path);
    return -1;
  }
  return 0;
}

int sink_open_read(const char *path, int *fd, uint64_t *size, int *is_dev)
{
  struct stat st;
  *fd = open(path, O_RDONLY | O_CLOEXEC);
  if (*fd == -1 || fstat(*fd, &st) == -1) {
    set_error(errno, "%s: cannot open for verification", path);
    goto fail;
  }
  *is_dev = S_ISBLK(st.st_mode);
  *size = (uint64_t)st.st_size;
  if (*is_dev && ioctl(*fd, BLKGETSIZE64, size) == -1) {
    set_error(errno, "%s: BLKGETSIZE64", path);
    goto fail;
  }
  return 0;
fail:
  if (*fd != -1)
    close(*fd);
  *fd = -1;
  return -1;
}

int sink_commit(struct sink *s)
{
  if (s->committed)
    return 0;
  if (sink_fsync(s) == -1)
    return -1;
  if (s->tmp_path != NULL) {
    /* Only a target opened for replacement may be replaced: a file that
     * appeared under the name while we wrote is somebody else's. */
    unsigned how = s->hold_fd == -1 ? RENAME_NOREPLACE : 0;
    if (renameat2(AT_FDCWD, s->tmp_path, AT_FDCWD, s->path, how) == -1) {
      if (errno == EEXIST)
        set_error_code(EEXIST,
                       "%s was created by another program while this one wrote it: nothing "
                       "was overwritten; move it aside and rerun",
                       s->path);
      else
        set_error(errno, "rename %s to %s", s->tmp_path, s->path);
      return -1;
    }
    free(s->tmp_path);
    s->tmp_path = NULL;
    if (fsync_folder_of(AT_FDCWD, s->path, s->path) == -1)
      return -1;
  } else if (s->created && fsync_folder_of(AT_FDCWD, s->path, s->path) == -1) {
    return -1;
  }
  if (s->marked && s->mark != NULL) {
    if (unlink(s->mark) == -1 && errno != ENOENT) {
      set_error(errno, "%s: cannot remove the incomplete marker", s->mark);
      return -1;
    }
    s->marked = 0;
    if (fsync_folder_of(AT_FDCWD, s->mark, s->mark) == -1)
      return -1;
  }
  s->committed = 1;
  return 0;
}

void sink_free(struct sink *s)
{
  if (s == NULL)
    return;
  if (s->fd != -1 && !s->is_stream)
    close(s->fd);
  if (s->hold_fd != -1)
    close(s->hold_fd);
  if (s->tmp_path != NULL)
    unlink(s->tmp_path); /* never committed: a partial file must not stay */
  free(s->tmp_path);
  free(s->mark);
  free(s->path);
  free(s);
}
