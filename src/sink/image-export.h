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

struct image_export_opts {
  enum image_format format;
  const char *path;          /* the image file; "-" is standard output (raw and vmdk only) */
  int force;                 /* replace an existing file (on commit) */
  int threads;               /* compression threads (0: online CPUs) */
  const _Atomic int *cancel; /* borrowed; non-zero stops with ECANCELED; NULL: none */
  const struct progress_ops *progress; /* borrowed; NULL: none */
};

/* Write snapshot s (borrowed) of repository r as an image file. The file
 * appears under its name only when complete (written as
 * "PATH.pilotlight-part.PID" until then). st may be NULL. Returns 0 or -1
 * (error set; ECANCELED when o->cancel was raised). */
int image_export(struct repo *r, const struct snapshot *s, const struct image_export_opts *o,
                 struct image_export_stats *st);

#endif
