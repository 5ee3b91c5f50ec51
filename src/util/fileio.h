/* Writing to files and block devices: whole writes, sparse writes and
 * zeroing. Shared by restore, replica sync and the image writers. */
#ifndef PL_FILEIO_H
#define PL_FILEIO_H

#include <stddef.h>
#include <stdint.h>

/* Write all len bytes of buf at off. name is for messages. */
int pwrite_all(int fd, const void *buf, size_t len, uint64_t off, const char *name);

/* Write buf at off, skipping the all-zero 64 KiB pieces (aligned to the file
 * offset), for a target that already reads as zeros there: holes stay holes. */
int pwrite_sparse(int fd, const void *buf, size_t len, uint64_t off, const char *name);

/* Make [off, off + len) read as zeros: a punched hole in a file, BLKZEROOUT
 * on a block device, and written zeros where neither works. */
int zero_range(int fd, int is_dev, uint64_t off, uint64_t len, const char *name);

#endif
