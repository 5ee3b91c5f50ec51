/* The image writer front end: format names, the output sink (a file written
 * under a temporary name and renamed when complete, or standard output),
 * order checks, and helpers that the format backends share. */
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
#include "../util/hash.h"
#include "sink.h"

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
  return sink_pwrite(w->sink, buf, len, off);
}

int image_writer_write_sparse(struct image_writer *w, uint64_t off, const void *buf, size_t len,
                              uint64_t file_off)
{
  return sink_pwrite_sparse(w->sink, buf, len, file_off + off);
}

int image_writer_set_size(struct image_writer *w, uint64_t size)
{
  return sink_set_size(w->sink, size, 0);
}

struct image_writer *image_writer_new(enum image_format f, const char *path, uint64_t disk_size,
                                      int threads, int force)
{
  struct image_writer *w = NULL;
  if (strcmp(path, "-") == 0 && (f == IMAGE_VHD || f == IMAGE_VHD_FIXED)) {
    set_error_code(EINVAL,
                   "%s cannot be written to standard output (the format needs seeking): give "
                   "a file name, or use --format vmdk or raw",
                   format_names[f]);
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
  w->disk_size = disk_size;
  if (threads <= 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    threads = n > 0 ? (int)n : 1;
  }
  w->threads = threads;
  w->sink =
      sink_open(path, SINK_FILE_ONLY | SINK_STDOUT | (force ? SINK_REPLACE | SINK_IGNORE_MARK : 0));
  if (w->sink == NULL)
    goto fail;
  w->path = w->sink->is_stream ? "standard output" : w->sink->path;
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
  if (w->ops->finish(w) == -1 || sink_commit(w->sink) == -1)
    return -1;
  w->finished = 1;
  return 0;
}

int image_writer_file_size(struct image_writer *w, uint64_t *size)
{
  struct stat st;
  if (w->sink->is_stream) {
    *size = w->sink->size;
    return 0;
  }
  if (fstat(w->sink->fd, &st) == -1) {
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
  sink_free(w->sink); /* an unfinished image's partial file is removed */
  free(w);
}
