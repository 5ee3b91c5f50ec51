/* Export a snapshot of a disk as an image file (raw, VMDK, VHD) for cloud
 * import or another hypervisor: the snapshot's blocks are read from the
 * repository in batches, verified, and handed in order to an image writer. */
#ifndef PL_IMAGE_EXPORT_H
#define PL_IMAGE_EXPORT_H

#include <stdint.h>

#include "../core/repo.h"
#include "image-writer.h"

struct image_export_stats {
  uint64_t bytes_read; /* bytes of non-zero blocks read from the repository */
  uint64_t file_size;  /* size of the image file written */
};

/* Write snapshot s (borrowed) of repository r to path in format f. The file
 * appears under its name only when complete. threads: compression threads
 * (0: online CPUs); progress: the caller's renderer
 * or NULL. st may be
 * NULL. Returns 0 or -1 (error set). */
int image_export(struct repo *r, const struct snapshot *s, enum image_format f, const char *path,
                 int threads, const struct progress_ops *progress, struct image_export_stats *st);

#endif
