/* The image writer front end: format names, the output file (written under
 * a ".part" name and renamed when complete), order checks, and helpers that
 * the format backends share. */
#define _GNU_SOURCE
#include "image-writer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../util/error.h"
#include "../util/fileio.h"
#include "../util/hash.h"

static const char *const format_names[] = {
    [IMAGE_RAW] = "raw",
    [IMAGE_VMDK] = "vmdk",
    [IMAGE_VHD] = "vhd",
    [IMAGE_VHD_FIXED] = "vhd-fixed",
};

int image_format_parse(const char *name, enum image_format *out)
{
  for (size_t i = 0; i < sizeof format_names / sizeof format_names[0]; i++) {
    if (strcmp(name, format_names[i]) == 0) {
      *out = (enum image_format)i;
      return 0;
    }
  }
  set_error(EINVAL, "unknown image format '%s' (expected raw, vmdk, vhd or vhd-fixed)", name);
  return -1;
}

const char *image_format_name(enum image_format f)
{
  return format_names[f];
}

int image_writer_pwrite(struct image_writer *w, const void *buf, size_t len, uint64_t off)
{
  return pwrite_all(w->fd, buf, len, off, w->path);
}

int image_writer_write_sparse(struct image_writer *w, uint64_t off, const void *buf, size_t len,
                              uint64_t file_off)
{
  return pwrite_sparse(w->fd, buf, len, file_off + off, w->path);
}

struct image_writer *image_writer_new(enum image_format f, const char *path, uint64_t disk_size,
                                      int threads)
{
  struct image_writer *w = NULL;
  struct stat st;
  if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
    set_error(EINVAL,
              "%s: not a regular file (export writes image files; use restore for a "
              "device)",
              path);
    return NULL;
  }
  switch (f) {
  case IMAGE_RAW:
    w = raw_image_writer_alloc();
    break;
  case IMAGE_VHD_FIXED:
    w = vhd_image_writer_alloc(1);
    break;
  case IMAGE_VMDK:
    w = vmdk_image_writer_alloc();
    break;
  case IMAGE_VHD:
    w = vhd_image_writer_alloc(0);
    break;
  }
  if (w == NULL)
    return NULL;
  w->fd = -1;
  w->disk_size = disk_size;
  if (threads <= 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    threads = n > 0 ? (int)n : 1;
  }
  w->threads = threads;
  w->path = strdup(path);
  size_t n = strlen(path) + sizeof ".part";
  w->tmp_path = malloc(n);
  if (w->path == NULL || w->tmp_path == NULL) {
    set_error(ENOMEM, "out of memory");
    goto fail;
  }
  snprintf(w->tmp_path, n, "%s.part", path);
  w->fd = open(w->tmp_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (w->fd == -1) {
    set_error(errno, "%s: create", w->tmp_path);
    goto fail;
  }
  if (w->ops->start(w) == -1)
    goto fail;
  return w;
fail:
  image_writer_free(w);
  return NULL;
}

int image_writer_write(struct image_writer *w, uint64_t off, const void *buf, size_t len)
{
  if (len == 0)
    return 0;
  if (w->finished || off < w->next_off || off > w->disk_size || len > w->disk_size - off) {
    set_error(EINVAL,
              "%s: write of %zu bytes at offset %llu is out of order or beyond the disk "
              "size %llu",
              w->path, len, (unsigned long long)off, (unsigned long long)w->disk_size);
    return -1;
  }
  w->next_off = off + len;
  if (is_zero(buf, len))
    return 0;
  w->data_bytes += len;
  return w->ops->write(w, off, buf, len);
}

int image_writer_finish(struct image_writer *w)
{
  if (w->finished)
    return 0;
  if (w->ops->finish(w) == -1)
    return -1;
  if (fsync(w->fd) == -1) {
    set_error(errno, "%s: fsync", w->tmp_path);
    return -1;
  }
  if (rename(w->tmp_path, w->path) == -1) {
    set_error(errno, "rename %s to %s", w->tmp_path, w->path);
    return -1;
  }
  w->finished = 1;
  return 0;
}

int image_writer_file_size(struct image_writer *w, uint64_t *size)
{
  struct stat st;
  if (fstat(w->fd, &st) == -1) {
    set_error(errno, "%s: stat", w->path);
    return -1;
  }
  *size = (uint64_t)st.st_size;
  return 0;
}

void image_writer_free(struct image_writer *w)
{
  if (w == NULL)
    return;
  w->ops->free(w);
  if (w->fd != -1)
    close(w->fd);
  if (!w->finished && w->tmp_path != NULL && w->fd != -1)
    unlink(w->tmp_path);
  free(w->path);
  free(w->tmp_path);
  free(w);
}
