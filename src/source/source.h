/* Disk sources: something with a size that can be read at any offset and
 * can say which extents hold data. Each backend (file or block device, NBD)
 * is a struct whose first member is struct source, plus a table of
 * operations. */
#ifndef PL_SOURCE_H
#define PL_SOURCE_H

#include <stddef.h>
#include <stdint.h>

struct source;

/* Called for each extent, in increasing offset order; return 0 to go on or
 * -1 (error set) to stop. */
typedef int (*extent_cb)(void *opaque, uint64_t off, uint64_t len);

struct source_ops {
  const char *name; /* "file", "nbd" */
  /* Read exactly len bytes at off (off + len <= size). Must be safe to call
   * from several threads at once. */
  int (*pread)(struct source *s, void *buf, size_t len, uint64_t off);
  /* Report the extents that may hold non-zero data (allocated) within
   * [off, off + len), in order. Reporting more than is allocated is allowed;
   * reporting less is not. */
  int (*allocated)(struct source *s, uint64_t off, uint64_t len, extent_cb cb, void *opaque);
  void (*close)(struct source *s);
};

struct source {
  const struct source_ops *ops;
  uint64_t size;
  char *name; /* as given by the user, for messages and the snapshot record; owned */
  int remote; /* each read is a round trip to a server (NBD) */
};

/* Open SOURCE read-only: an "nbd://" / "nbd+unix://" URI, a block device or
 * a regular file. Returns NULL with the error set. Caller frees with
 * source_close. */
struct source *source_open(const char *name);
void source_close(struct source *s);

static inline int source_pread(struct source *s, void *buf, size_t len, uint64_t off)
{
  return s->ops->pread(s, buf, len, off);
}
static inline int source_allocated(struct source *s, uint64_t off, uint64_t len, extent_cb cb,
                                   void *opaque)
{
  return s->ops->allocated(s, off, len, cb, opaque);
}

/* Backend constructors, used by source_open. */
struct source *file_source_open(const char *path);
struct source *nbd_source_open(const char *uri);

#endif
