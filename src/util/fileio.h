/* Reading and writing files and block devices: whole reads and writes,
 * sparse writes, zeroing and atomic replacement of small files. Shared by
 * sources, stores, restore, replica sync and the image writers. */
#ifndef PL_FILEIO_H
#define PL_FILEIO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Read exactly len bytes at off into buf, retrying EINTR and short reads.
 * The end of the file before len bytes is an error (EIO, "NAME: truncated:
 * ..."). name is for messages. Returns 0 or -1. */
int pread_all(int fd, void *buf, size_t len, uint64_t off, const char *name);

/* Read a stream (pipe, socket, file position) until its end or until cap
 * bytes are in buf, retrying EINTR and short reads. *len receives the count;
 * *len == cap means the stream may hold more. Returns 0 or -1. */
int read_all(int fd, void *buf, size_t cap, size_t *len, const char *name);

/* Map file name (relative to folder dirfd) read-only: *p and *len receive
 * its bytes, which stay valid until unmap_file(*p, *len), even if the file
 * is replaced or removed meanwhile (not if it is truncated in place: the
 * process then gets SIGBUS on touching the lost pages). A file larger than
 * max is EFBIG. A mapping costs a page fault per 16 pages touched, where
 * reading into fresh memory costs one per page. shown names the file in
 * messages. Returns 0 or -1. */
int map_file_at(int dirfd, const char *name, size_t max, const char *shown, void **p, size_t *len);
void unmap_file(void *p, size_t len);

/* Write all len bytes of buf to a stream (a pipe, standard output),
 * retrying EINTR and short writes. name is for messages. Returns 0 or -1. */
int write_all(int fd, const void *buf, size_t len, const char *name);

/* Write all len bytes of buf at off. name is for messages. */
int pwrite_all(int fd, const void *buf, size_t len, uint64_t off, const char *name);

/* Write buf at off, skipping the all-zero 64 KiB pieces (aligned to the file
 * offset), for a target that already reads as zeros there: holes stay holes. */
int pwrite_sparse(int fd, const void *buf, size_t len, uint64_t off, const char *name);

/* Make [off, off + len) read as zeros: a punched hole in a file, BLKZEROOUT
 * on a block device, and written zeros where neither works. */
int zero_range(int fd, int is_dev, uint64_t off, uint64_t len, const char *name);

/* Fsync the folder that holds name (relative to folder dirfd, or AT_FDCWD),
 * which makes a rename, creation or removal of name durable. shown names
 * name in messages. Returns 0 or -1. */
int fsync_folder_of(int dirfd, const char *name, const char *shown);

/* write_file_atomic flag: fail with EEXIST ("already exists") if name exists. */
#define WRITE_ATOMIC_EXCL 1u
/* write_file_atomic flag: no fsync of the file or its folder, for a file a
 * crash may lose or tear because it is checked and rebuilt (the cache). */
#define WRITE_ATOMIC_NOSYNC 2u

/* Replace (or create) file name, relative to folder dirfd (AT_FDCWD for the
 * current folder), with len bytes of buf and mode: writes a unique temporary
 * "NAME.tmp.PID.N" beside it, fsyncs it, renames it into place and fsyncs
 * the folder, so a crash leaves the old file or the new one, whole. The
 * folders of name must exist. label, if not NULL, names dirfd in messages
 * ("LABEL/NAME"). Thread-safe. Returns 0 or -1; the temporary is removed on
 * failure. */
int write_file_atomic(int dirfd, const char *label, const char *name, const void *buf, size_t len,
                      mode_t mode, unsigned flags);

/* As write_file_atomic, with the bytes written in pieces, each after its
 * ratelimit_take on limit (borrowed; NULL: unlimited), so a large file
 * reaches the disk at the limit's rate, not all at once after a wait. */
struct ratelimit;
int write_file_atomic_limited(int dirfd, const char *label, const char *name, const void *buf,
                              size_t len, mode_t mode, unsigned flags, struct ratelimit *limit);

#endif
