/* A sink is where a snapshot's bytes go: a new file, an existing file or
 * block device, or standard output. It owns the safety rules every writer
 * shares: a new file is written under a temporary name and appears only on
 * commit; an existing target is overwritten only when allowed, never while
 * another process holds it, and is marked incomplete while it is written;
 * sizes, sparse writes, zeroing and fsync are done once here. */
#ifndef PL_SINK_H
#define PL_SINK_H

#include <stddef.h>
#include <stdint.h>

enum {
  SINK_EXISTING = 1 << 0,    /* an existing file or block device is written in place */
  SINK_REPLACE = 1 << 1,     /* an existing file is replaced on commit by the new one */
  SINK_IGNORE_MARK = 1 << 2, /* write over a target marked incomplete (--force) */
  SINK_IN_PLACE = 1 << 3,    /* a new file is created under its own name (replica sync:
                                its state file says what the target holds) */
  SINK_READ = 1 << 4,        /* also open for reading */
  SINK_STDOUT = 1 << 5,      /* "-" is standard output, written strictly in order */
  SINK_FILE_ONLY = 1 << 6,   /* refuse block devices (image files) */
};

struct sink {
  int fd;
  char *path;     /* the target's name as given; owned */
  char *tmp_path; /* a new file is written here until sink_commit; NULL otherwise; owned */
  char *mark;     /* the incomplete marker's path (a file target); owned */
  int is_dev;
  int is_stream; /* standard output: only appends (gaps are written as zeros) */
  int created;   /* a new file (under tmp_path, or in place) */
  int fresh;     /* reads as zeros wherever nothing was written yet */
  int marked;    /* the marker was written by us or found */
  int committed;
  int hold_fd;   /* SINK_REPLACE: the old file, opened to hold its lock; -1 if none */
  uint64_t size; /* file size (device: capacity; stream: bytes written) */
};

/* The marker that says path is incomplete: "PATH.pilotlight-incomplete"
 * beside a file, or in /var/lib/pilotlight/incomplete for a block device.
 * Caller frees. NULL with the error set. */
char *sink_marker_path(const char *path, int is_dev);

/* Open path for writing with flags (SINK_*). A new file is created sparse
 * as "PATH.pilotlight-part.PID" in the same folder (unless SINK_IN_PLACE).
 * Refuses: an existing target without SINK_EXISTING or SINK_REPLACE (the
 * message names --force); one marked incomplete by an interrupted restore
 * (the message says so) without SINK_IGNORE_MARK; anything but a regular file or block
 * device; a device that is mounted or held (O_EXCL) or read-only; a file
 * another process holds locked (QEMU, qemu-nbd or another sync lock their
 * images with OFD locks); a terminal as standard output. Returns NULL with
 * the error set. Caller frees with sink_free. Not thread-safe, except that
 * sink_pwrite / sink_pwrite_sparse / sink_zero on a seekable sink may be
 * called from several threads for disjoint ranges. */
struct sink *sink_open(const char *path, unsigned flags);

/* Record that the target is being overwritten with what (e.g. "DISK@ID"),
 * durably, before the first byte is written. sink_commit removes it. For an
 * existing target only; a no-op for new files and streams. */
int sink_mark_incomplete(struct sink *s, const char *what);

/* Give a file its size: with fresh, every old byte is dropped first (the
 * file then reads as zeros, and becomes s->fresh). Devices: a no-op. A
 * stream: zeros are appended up to size. */
int sink_set_size(struct sink *s, uint64_t size, int fresh);

/* Write len bytes of buf at off. A stream accepts off >= what was written
 * (the gap is written as zeros). buf is borrowed for the call. */
int sink_pwrite(struct sink *s, const void *buf, size_t len, uint64_t off);

/* The same, but the all-zero 64 KiB pieces are skipped: only for ranges that
 * read as zeros already (a fresh file). */
int sink_pwrite_sparse(struct sink *s, const void *buf, size_t len, uint64_t off);

/* Make [off, off + len) read as zeros, clipped to a device's capacity: a
 * hole in a file, BLKZEROOUT on a device. */
int sink_zero(struct sink *s, uint64_t off, uint64_t len);

int sink_fsync(struct sink *s);

/* Finish: fsync; a new file is renamed into place and its folder fsynced;
 * the incomplete marker is removed. Returns 0 or -1 (error set). */
int sink_commit(struct sink *s);

/* Close. An uncommitted new file is removed; an existing target written over
 * keeps its incomplete marker. NULL is a no-op. */
void sink_free(struct sink *s);

/* Open path (a file or block device) read-only for verification: *fd
 * (caller closes), its size (a device's capacity) and *is_dev. Returns 0 or
 * -1 with the error set. */
int sink_open_read(const char *path, int *fd, uint64_t *size, int *is_dev);

#endif
