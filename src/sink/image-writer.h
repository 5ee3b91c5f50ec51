/* Disk image writers for export: raw, stream-optimized VMDK, dynamic VHD and
 * fixed VHD. Each format is a struct whose first member is struct
 * image_writer, plus a table of operations. The caller hands over the
 * disk's data in increasing offset order and skips what is zero; each writer
 * turns that into a complete image file. */
#ifndef PL_IMAGE_WRITER_H
#define PL_IMAGE_WRITER_H

#include <stddef.h>
#include <stdint.h>

enum image_format {
  IMAGE_RAW,
  IMAGE_VMDK,      /* VMDK, createType streamOptimized (deflate grains) */
  IMAGE_VHD,       /* dynamic VHD, 2 MiB blocks */
  IMAGE_VHD_FIXED, /* fixed VHD: the data and a footer */
};

/* Parse "raw", "vmdk", "vhd" or "vhd-fixed". Returns 0, or -1 (error set). */
int image_format_parse(const char *name, enum image_format *out);
const char *image_format_name(enum image_format f);

struct image_writer;

struct image_writer_ops {
  const char *name;
  /* Called once the base fields are set: write headers, allocate buffers. */
  int (*start)(struct image_writer *w);
  /* See image_writer_write. */
  int (*write)(struct image_writer *w, uint64_t off, const void *buf, size_t len);
  /* Write what is buffered and the format's trailing metadata, then fsync. */
  int (*finish)(struct image_writer *w);
  /* Release the format's own state (not the base). */
  void (*free)(struct image_writer *w);
};

struct sink;

struct image_writer {
  const struct image_writer_ops *ops;
  struct sink *sink;   /* the image file or standard output; owned */
  const char *path;    /* the final name, for messages; borrowed from sink */
  uint64_t disk_size;  /* virtual size in bytes */
  uint64_t next_off;   /* the lowest offset the next write may start at */
  uint64_t data_bytes; /* non-zero bytes handed over so far */
  int threads;         /* compression threads (vmdk) */
  int finished;
};

/* Create the image file path for a disk of disk_size bytes, through a sink:
 * it appears under its name only when finish succeeds; an existing file is
 * refused unless force (then replaced on finish); "-" is standard output,
 * for the formats that are written in order (raw, vmdk). threads is the
 * number of compression threads (0: online CPUs). Returns NULL with the
 * error set. Caller frees with image_writer_free. */
struct image_writer *image_writer_new(enum image_format f, const char *path, uint64_t disk_size,
                                      int threads, int force);

/* Hand over len bytes of the disk at off. Calls must come in increasing,
 * non-overlapping offset order within the disk size; whatever is never
 * written reads back as zeros. Data may contain zeros (they are detected and
 * left out where the format allows). buf is borrowed for the call. */
int image_writer_write(struct image_writer *w, uint64_t off, const void *buf, size_t len);

/* Complete the image, fsync it and move it to its final name. */
int image_writer_finish(struct image_writer *w);

/* Free the writer; an unfinished image's partial file is removed. NULL is a
 * no-op. */
void image_writer_free(struct image_writer *w);

/* Size of the image file written so far (after finish: the final size). */
int image_writer_file_size(struct image_writer *w, uint64_t *size);

/* Shared by the format backends (image-writer.c): write all of buf at off. */
int image_writer_pwrite(struct image_writer *w, const void *buf, size_t len, uint64_t off);

/* Shared by the backends: make the image file size bytes long. */
int image_writer_set_size(struct image_writer *w, uint64_t size);

/* Shared by the backends: write the non-zero 64 KiB pieces of buf (the
 * disk's bytes at off) at file offset file_off + off, leaving holes for the
 * zero pieces. */
int image_writer_write_sparse(struct image_writer *w, uint64_t off, const void *buf, size_t len,
                              uint64_t file_off);

/* Backend constructors, used by image_writer_new: each allocates its
 * writer zeroed, with the base's ops set. */
struct image_writer *raw_image_writer_alloc(void);
struct image_writer *vmdk_image_writer_alloc(void);
struct image_writer *vhd_image_writer_alloc(int fixed);

#endif
