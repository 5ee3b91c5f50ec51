/* The overlay of a writable export (pilotlight serve --writable FILE): the
 * VM's writes, kept in a local file so that they survive a restart of
 * serve. The file holds a header naming the snapshot it belongs to, a
 * bitmap of written granules and a sparse data area at the disk's own
 * offsets. Its layout and crash guarantees: docs/SERVE.md. */
#ifndef PL_SERVE_OVERLAY_H
#define PL_SERVE_OVERLAY_H

#include <stddef.h>
#include <stdint.h>

#define OVERLAY_GRANULE 4096u

struct overlay;

/* Open the overlay at path for the export of snapshot snapshot_id (64 hex
 * digits) of disk, size bytes; create it if it does not exist. An existing
 * file must be an overlay of the same snapshot, or it is refused. Returns
 * NULL with the error set. */
struct overlay *overlay_open(const char *path, const char *disk, const char *snapshot_id,
                             uint64_t size);
void overlay_close(struct overlay *o);

/* 1 if any granule of [off, off + len) has been written, else 0. */
int overlay_any(struct overlay *o, uint64_t off, uint64_t len);

/* Granule g (0-based) has been written. */
int overlay_has(struct overlay *o, uint64_t g);

/* Read len bytes at off from the data area (the caller checked they are
 * written). Returns 0, or -1 with the error set. */
int overlay_read(struct overlay *o, void *buf, size_t len, uint64_t off);

/* Write whole granules: len bytes at off, both multiples of the granule
 * (the last granule of the disk may be short: then off + len is the disk's
 * size). The data goes to the data area before the bitmap marks it, so a
 * killed process never leaves a marked granule without its data. Returns 0,
 * or -1 with the error set. */
int overlay_write(struct overlay *o, const void *buf, size_t len, uint64_t off);

/* Make every write so far durable (fdatasync). */
int overlay_flush(struct overlay *o);

/* Number of granules written. */
uint64_t overlay_written(const struct overlay *o);

#endif
