/* The writable export's overlay file: a 4 KiB header, the bitmap of written
 * granules, then the data area at data_off + the disk offset (docs/SERVE.md).
 * The caller (served.c) serialises writes; reads may run beside each other. */
#include "overlay.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/error.h"
#include "util/fileio.h"

#define HEADER_LEN 4096u
#define DATA_ALIGN (1u << 20)
#define MAGIC "pilotlight overlay 1\n"

struct overlay {
  int fd;
  char *path;
  uint64_t size, granules;
  uint8_t *bitmap; /* granules bits, a whole number of HEADER_LEN pages */
  size_t bitmap_len;
  uint64_t data_off;
  uint64_t written;
};

static void header_text(char *h, const char *disk, const char *snapshot_id, uint64_t size)
{
  memset(h, 0, HEADER_LEN);
  snprintf(h, HEADER_LEN, MAGIC "disk %s\nsnapshot %s\nsize %llu\ngranule %u\n", disk, snapshot_id,
           (unsigned long long)size, OVERLAY_GRANULE);
}

/* A new overlay: written under a temporary name and renamed into place, so
 * a crash never leaves a half-made header at path. */
static int create_file(struct overlay *o, const char *hdr)
{
  char tmp[PATH_MAX];
  if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", o->path, (long)getpid()) >= (int)sizeof tmp) {
    set_error_code(ENAMETOOLONG, "overlay %s: path too long", o->path);
    return -1;
  }
  int fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    set_error(errno, "overlay %s: cannot create it (is its folder writable?)", o->path);
    return -1;
  }
  if (pwrite_all(fd, hdr, HEADER_LEN, 0, tmp) == -1 ||
      ftruncate(fd, (off_t)(o->data_off + o->size)) == -1 || fsync(fd) == -1 ||
      rename(tmp, o->path) == -1) {
    if (errno)
      set_error(errno, "overlay %s: cannot create it", o->path);
    close(fd);
    unlink(tmp);
    return -1;
  }
  if (fsync_folder_of(AT_FDCWD, o->path, o->path) == -1) {
    close(fd);
    return -1;
  }
  o->fd = fd;
  return 0;
}

/* The value of "key VALUE\n" in a header, for a message; "?" if absent. */
static void header_value(const char *h, const char *key, char *out, size_t cap)
{
  snprintf(out, cap, "?");
  const char *p = strstr(h, key);
  if (!p)
    return;
  p += strlen(key);
  size_t n = strcspn(p, "\n");
  if (n >= cap)
    n = cap - 1;
  memcpy(out, p, n);
  out[n] = 0;
}

static int open_existing(struct overlay *o, int fd, const char *hdr)
{
  char got[HEADER_LEN + 1];
  struct stat st;
  got[HEADER_LEN] = 0;
  if (fstat(fd, &st) == -1 || st.st_size < HEADER_LEN ||
      pread_all(fd, got, HEADER_LEN, 0, o->path) == -1 || memcmp(got, MAGIC, strlen(MAGIC)) != 0) {
    set_error_code(EINVAL,
                   "overlay %s is not a pilotlight overlay: name a new file for --writable, or "
                   "move this one aside",
                   o->path);
    return -1;
  }
  if (memcmp(got, hdr, HEADER_LEN) != 0) {
    char disk[128], snap[80];
    header_value(got, "\ndisk ", disk, sizeof disk);
    header_value(got, "\nsnapshot ", snap, sizeof snap);
    set_error_code(EINVAL,
                   "overlay %s holds the writes to %s@%.8s, not to this snapshot: serve that "
                   "snapshot, or name a new file for --writable",
                   o->path, disk, snap);
    return -1;
  }
  if ((uint64_t)st.st_size < o->data_off + o->size) {
    set_error_code(EIO, "overlay %s is truncated (%lld bytes, expected %llu): it is damaged",
                   o->path, (long long)st.st_size, (unsigned long long)(o->data_off + o->size));
    return -1;
  }
  if (pread_all(fd, o->bitmap, o->bitmap_len, HEADER_LEN, o->path) == -1)
    return -1;
  o->fd = fd;
  for (uint64_t g = 0; g < o->granules; g++)
    o->written += (o->bitmap[g / 8] >> (g % 8)) & 1;
  return 0;
}

struct overlay *overlay_open(const char *path, const char *disk, const char *snapshot_id,
                             uint64_t size)
{
  struct overlay *o = calloc(1, sizeof *o);
  char hdr[HEADER_LEN];
  if (!o || !(o->path = strdup(path))) {
    set_error(errno, "malloc");
    free(o);
    return NULL;
  }
  o->fd = -1;
  o->size = size;
  o->granules = (size + OVERLAY_GRANULE - 1) / OVERLAY_GRANULE;
  o->bitmap_len = ((o->granules + 7) / 8 + HEADER_LEN - 1) / HEADER_LEN * HEADER_LEN;
  o->data_off = (HEADER_LEN + o->bitmap_len + DATA_ALIGN - 1) / DATA_ALIGN * DATA_ALIGN;
  o->bitmap = calloc(1, o->bitmap_len ? o->bitmap_len : 1);
  if (!o->bitmap) {
    set_error(errno, "malloc");
    overlay_close(o);
    return NULL;
  }
  header_text(hdr, disk, snapshot_id, size);
  int fd = open(path, O_RDWR | O_CLOEXEC);
  int ret;
  if (fd >= 0) {
    ret = open_existing(o, fd, hdr);
    if (ret == -1)
      close(fd);
  } else if (errno == ENOENT) {
    ret = create_file(o, hdr);
  } else {
    set_error(errno, "overlay %s: cannot open it", path);
    ret = -1;
  }
  if (ret == -1) {
    overlay_close(o);
    return NULL;
  }
  return o;
}

void overlay_close(struct overlay *o)
{
  if (!o)
    return;
  if (o->fd >= 0)
    close(o->fd);
  free(o->bitmap);
  free(o->path);
  free(o);
}

int overlay_has(struct overlay *o, uint64_t g)
{
  return g < o->granules && ((o->bitmap[g / 8] >> (g % 8)) & 1);
}

int overlay_any(struct overlay *o, uint64_t off, uint64_t len)
{
  if (!o->written || !len)
    return 0;
  for (uint64_t g = off / OVERLAY_GRANULE; g <= (off + len - 1) / OVERLAY_GRANULE; g++)
    if (overlay_has(o, g))
      return 1;
  return 0;
}

int overlay_read(struct overlay *o, void *buf, size_t len, uint64_t off)
{
  return pread_all(o->fd, buf, len, o->data_off + off, o->path);
}

int overlay_write(struct overlay *o, const void *buf, size_t len, uint64_t off)
{
  if (!len)
    return 0;
  if (pwrite_all(o->fd, buf, len, o->data_off + off, o->path) == -1)
    return -1;
  uint64_t g0 = off / OVERLAY_GRANULE, g1 = (off + len - 1) / OVERLAY_GRANULE;
  for (uint64_t g = g0; g <= g1; g++) {
    if (!overlay_has(o, g))
      o->written++;
    o->bitmap[g / 8] |= (uint8_t)(1u << (g % 8));
  }
  /* The bitmap bytes that changed, in whole pages. */
  size_t b0 = (size_t)(g0 / 8) / HEADER_LEN * HEADER_LEN;
  size_t b1 = ((size_t)(g1 / 8) / HEADER_LEN + 1) * HEADER_LEN;
  return pwrite_all(o->fd, o->bitmap + b0, b1 - b0, HEADER_LEN + b0, o->path);
}

int overlay_flush(struct overlay *o)
{
  if (fdatasync(o->fd) == -1) {
    set_error(errno, "overlay %s: cannot flush", o->path);
    return -1;
  }
  return 0;
}

uint64_t overlay_written(const struct overlay *o)
{
  return o->written;
}
