/* The stream-optimized VMDK writer (VMware Virtual Disk Format 5.0,
 * createType "streamOptimized"): a sparse extent header and an embedded
 * descriptor, then each non-zero 64 KiB grain deflated behind a grain
 * marker, each grain table after its grains, the grain directory, a footer
 * (the header with the directory's offset) and an end-of-stream marker.
 * Grains are compressed by a pool of threads and written in order; the file
 * is written strictly front to back. */
#define _GNU_SOURCE
#include "image-writer.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <libdeflate.h>

#include "../util/error.h"
#include "../util/hash.h"

#define SECTOR 512u
#define GRAIN_SECTORS 128u
#define GRAIN (GRAIN_SECTORS * SECTOR)
#define GT_ENTRIES 512u
#define GT_BYTES (GT_ENTRIES * 4)
#define OVERHEAD_SECTORS 128u /* header and descriptor; grains start at 64 KiB */
#define DESC_SECTORS 20u
#define GD_AT_END UINT64_MAX
#define FLAG_NL_DETECT (1u << 0)
#define FLAG_COMPRESSED (1u << 16)
#define FLAG_MARKERS (1u << 17)
#define MARKER_EOS 0u
#define MARKER_GT 1u
#define MARKER_GD 2u
#define MARKER_FOOTER 3u
#define RING 32u        /* grains in flight */
#define OBUF (4u << 20) /* sequential output buffer */
/* libdeflate compresses whole buffers faster than zlib. Its level 6 is 1.5x
 * as fast as zlib's level 6 (what other VMDK writers use) but its output can
 * be a little larger (+0.006% on the benchmark workload); level 7 is 1.25x
 * as fast and 0.6% smaller, so an export is never larger than theirs. */
#define LIBDEFLATE_LEVEL 7
#define PROBE 1024u /* bytes tried at level 1, at each of PROBES places in a grain */
#define PROBES 4u

enum { JOB_FREE, JOB_FILLED, JOB_DONE };

struct grain_job {
  int state;
  uint64_t grain;
  uint8_t *in;    /* GRAIN bytes */
  uint8_t *out;   /* marker, deflated grain, padding to a sector */
  size_t out_len; /* bytes of out to write; 0 on failure */
  int failed;     /* the grain did not fit its output buffer */
};

struct vmdk_writer {
  struct image_writer base;
  uint64_t capacity; /* sectors */
  uint64_t ngts;
  uint32_t *gd; /* sector of each grain table, 0 for an absent (all-zero) one */
  uint32_t gt[GT_ENTRIES];
  uint64_t gt_cur; /* the grain table being filled */
  int gt_used;
  uint8_t *obuf;
  size_t olen;
  uint64_t pos; /* file offset of obuf[0] */
  uint8_t *cur; /* a grain being assembled from unaligned writes */
  uint64_t cur_grain;
  int cur_valid;
  size_t out_cap;
  /* The pool; jobs are numbered, and job k lives in ring[k % RING]. */
  pthread_mutex_t mu;
  pthread_cond_t work, done;
  int pool_started;
  pthread_t *thr;
  int nthr;
  struct grain_job ring[RING];
  uint64_t submitted, taken, written;
  int stop;
};

static void put_le16(uint8_t *p, uint16_t v)
{
  p[0] = (uint8_t)v;
  p[1] = (uint8_t)(v >> 8);
}

static void put_le32(uint8_t *p, uint32_t v)
{
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

/* One worker's compression state. */
struct grain_compressor {
  struct libdeflate_compressor *ld, *ld0, *ld1; /* LIBDEFLATE_LEVEL, level 0 (store), level 1 */
};

/* Returns 0, or -1 when out of memory. */
static int compressor_init(struct grain_compressor *gc)
{
  gc->ld = libdeflate_alloc_compressor(LIBDEFLATE_LEVEL);
  gc->ld0 = libdeflate_alloc_compressor(0);
  gc->ld1 = libdeflate_alloc_compressor(1);
  return gc->ld && gc->ld0 && gc->ld1 ? 0 : -1;
}

static void compressor_free(struct grain_compressor *gc)
{
  libdeflate_free_compressor(gc->ld);
  libdeflate_free_compressor(gc->ld0);
  libdeflate_free_compressor(gc->ld1);
}

/* The size of one probe compressed at level 1 (larger than PROBE if it
 * does not shrink). */
static size_t probe_size(struct grain_compressor *gc, const uint8_t *p)
{
  uint8_t out[PROBE + 64];
  size_t n = libdeflate_zlib_compress(gc->ld1, p, PROBE, out, sizeof out);
  return n ? n : sizeof out;
}

static int grain_incompressible(struct grain_compressor *gc, const uint8_t *in)
{
  for (unsigned i = 0; i < PROBES; i++) {
    if (probe_size(gc, in + (size_t)i * (GRAIN / PROBES)) < PROBE - PROBE / 64)
      return 0;
  }
  return 1;
}

/* Compress j->in into a zlib stream behind a grain marker, padded to a
 * sector. Returns 0, or -1 if it does not fit the output buffer. */
static int deflate_grain(struct grain_compressor *gc, struct grain_job *j)
{
  uint8_t *dst = j->out + 12;
  size_t cap = j->out_len - 12 - SECTOR; /* room for the padding */
  /* A grain none of whose sampled places shrinks at level 1 is
   * incompressible as a whole (encrypted or compressed data): store it,
   * which costs a few bytes and almost no time. One compressible place is
   * enough to compress the grain (a small write into text, the edge of a
   * run). */
  struct libdeflate_compressor *c = grain_incompressible(gc, j->in) ? gc->ld0 : gc->ld;
  size_t clen = libdeflate_zlib_compress(c, j->in, GRAIN, dst, cap);
  if (clen == 0)
    return -1;
  put_le64(j->out, j->grain * GRAIN_SECTORS);
  put_le32(j->out + 8, (uint32_t)clen);
  size_t total = 12 + clen;
  size_t padded = (total + SECTOR - 1) / SECTOR * SECTOR;
  memset(j->out + total, 0, padded - total);
  j->out_len = padded;
  return 0;
}

static void *vmdk_worker(void *arg)
{
  struct vmdk_writer *v = arg;
  struct grain_compressor gc;
  int init = compressor_init(&gc);
  pthread_mutex_lock(&v->mu);
  for (;;) {
    while (!v->stop && v->taken == v->submitted)
      pthread_cond_wait(&v->work, &v->mu);
    if (v->stop)
      break;
    struct grain_job *j = &v->ring[v->taken % RING];
    v->taken++;
    pthread_mutex_unlock(&v->mu);
    j->out_len = v->out_cap;
    int r = init == 0 ? deflate_grain(&gc, j) : -1;
    pthread_mutex_lock(&v->mu);
    j->failed = r == -1;
    j->state = JOB_DONE;
    pthread_cond_broadcast(&v->done);
  }
  pthread_mutex_unlock(&v->mu);
  compressor_free(&gc);
  return NULL;
}

static int obuf_flush(struct vmdk_writer *v)
{
  if (v->olen == 0)
    return 0;
  if (image_writer_pwrite(&v->base, v->obuf, v->olen, v->pos) == -1)
    return -1;
  v->pos += v->olen;
  v->olen = 0;
  return 0;
}

/* Append to the output; the file offset of what is appended is
 * v->pos + v->olen before the call. */
static int obuf_add(struct vmdk_writer *v, const void *p, size_t len)
{
  if (v->olen + len > OBUF && obuf_flush(v) == -1)
    return -1;
  if (len > OBUF) {
    if (image_writer_pwrite(&v->base, p, len, v->pos) == -1)
      return -1;
    v->pos += len;
    return 0;
  }
  memcpy(v->obuf + v->olen, p, len);
  v->olen += len;
  return 0;
}

static uint64_t out_sector(const struct vmdk_writer *v)
{
  return (v->pos + v->olen) / SECTOR;
}

static int add_marker(struct vmdk_writer *v, uint64_t nsectors, uint32_t type)
{
  uint8_t m[SECTOR];
  memset(m, 0, sizeof m);
  put_le64(m, nsectors);
  put_le32(m + 12, type);
  return obuf_add(v, m, sizeof m);
}

/* Write the finished grain table, if it names any grain. */
static int flush_gt(struct vmdk_writer *v)
{
  uint8_t t[GT_BYTES];
  if (!v->gt_used)
    return 0;
  if (add_marker(v, GT_BYTES / SECTOR, MARKER_GT) == -1)
    return -1;
  uint64_t s = out_sector(v);
  if (s > UINT32_MAX) {
    set_error(EFBIG, "%s: the VMDK file would pass 2 TiB", v->base.path);
    return -1;
  }
  for (unsigned i = 0; i < GT_ENTRIES; i++)
    put_le32(t + 4 * i, v->gt[i]);
  if (obuf_add(v, t, sizeof t) == -1)
    return -1;
  v->gd[v->gt_cur] = (uint32_t)s;
  memset(v->gt, 0, sizeof v->gt);
  v->gt_used = 0;
  return 0;
}

static int emit_job(struct vmdk_writer *v, struct grain_job *j)
{
  if (j->failed) {
    set_error_code(EIO, "%s: compressing grain %llu failed (out of memory?)", v->base.path,
                   (unsigned long long)j->grain);
    return -1;
  }
  uint64_t t = j->grain / GT_ENTRIES;
  if (t != v->gt_cur) {
    if (flush_gt(v) == -1)
      return -1;
    v->gt_cur = t;
  }
  uint64_t s = out_sector(v);
  if (s > UINT32_MAX) {
    set_error(EFBIG, "%s: the VMDK file would pass 2 TiB", v->base.path);
    return -1;
  }
  v->gt[j->grain % GT_ENTRIES] = (uint32_t)s;
  v->gt_used = 1;
  return obuf_add(v, j->out, j->out_len);
}

/* Write compressed grains in order. With wait, block until at least one is
 * written (or, with all, until every submitted grain is). */
static int drain(struct vmdk_writer *v, int all)
{
  int ret = 0;
  pthread_mutex_lock(&v->mu);
  for (;;) {
    while (v->written < v->submitted && v->ring[v->written % RING].state == JOB_DONE) {
      struct grain_job *j = &v->ring[v->written % RING];
      pthread_mutex_unlock(&v->mu);
      ret = emit_job(v, j);
      pthread_mutex_lock(&v->mu);
      j->state = JOB_FREE;
      v->written++;
      if (ret == -1)
        goto out;
    }
    int need = all ? v->written < v->submitted : v->submitted - v->written >= RING;
    if (!need)
      break;
    pthread_cond_wait(&v->done, &v->mu);
  }
out:
  pthread_mutex_unlock(&v->mu);
  return ret;
}

static int submit(struct vmdk_writer *v, uint64_t grain, const uint8_t *data)
{
  if (is_zero(data, GRAIN))
    return 0;
  if (drain(v, 0) == -1) /* makes room for one more */
    return -1;
  struct grain_job *j = &v->ring[v->submitted % RING];
  memcpy(j->in, data, GRAIN);
  j->grain = grain;
  pthread_mutex_lock(&v->mu);
  j->state = JOB_FILLED;
  v->submitted++;
  pthread_cond_signal(&v->work);
  pthread_mutex_unlock(&v->mu);
  return 0;
}

static int flush_cur(struct vmdk_writer *v)
{
  if (!v->cur_valid)
    return 0;
  v->cur_valid = 0;
  return submit(v, v->cur_grain, v->cur);
}

static int vmdk_write(struct image_writer *w, uint64_t off, const void *buf, size_t len)
{
  struct vmdk_writer *v = (struct vmdk_writer *)w;
  const uint8_t *p = buf;
  while (len > 0) {
    uint64_t g = off / GRAIN;
    size_t in = (size_t)(off % GRAIN);
    size_t n = GRAIN - in < len ? GRAIN - in : len;
    if (v->cur_valid && v->cur_grain != g && flush_cur(v) == -1)
      return -1;
    if (!v->cur_valid && in == 0 && n == GRAIN) {
      if (submit(v, g, p) == -1)
        return -1;
    } else {
      if (!v->cur_valid) {
        memset(v->cur, 0, GRAIN);
        v->cur_grain = g;
        v->cur_valid = 1;
      }
      memcpy(v->cur + in, p, n);
    }
    off += n;
    p += n;
    len -= n;
  }
  return 0;
}

static void build_header(const struct vmdk_writer *v, uint8_t *h, uint64_t gd_offset)
{
  memset(h, 0, SECTOR);
  memcpy(h, "KDMV", 4);
  put_le32(h + 4, 3);
  put_le32(h + 8, FLAG_NL_DETECT | FLAG_COMPRESSED | FLAG_MARKERS);
  put_le64(h + 12, v->capacity);
  put_le64(h + 20, GRAIN_SECTORS);
  put_le64(h + 28, 1); /* descriptor offset */
  put_le64(h + 36, DESC_SECTORS);
  put_le32(h + 44, GT_ENTRIES);
  put_le64(h + 48, 0); /* no redundant grain directory */
  put_le64(h + 56, gd_offset);
  put_le64(h + 64, OVERHEAD_SECTORS);
  h[72] = 0; /* clean */
  h[73] = '\n';
  h[74] = ' ';
  h[75] = '\r';
  h[76] = '\n';
  put_le16(h + 77, 1); /* deflate */
}

static int vmdk_start(struct image_writer *w)
{
  struct vmdk_writer *v = (struct vmdk_writer *)w;
  uint8_t head[OVERHEAD_SECTORS * SECTOR];
  uint32_t cid;
  v->capacity = (w->disk_size + SECTOR - 1) / SECTOR;
  uint64_t ngrains = (v->capacity + GRAIN_SECTORS - 1) / GRAIN_SECTORS;
  v->ngts = (ngrains + GT_ENTRIES - 1) / GT_ENTRIES;
  v->gt_cur = UINT64_MAX;
  v->out_cap = 12 + libdeflate_zlib_compress_bound(NULL, GRAIN) + SECTOR;
  v->gd = calloc(v->ngts ? v->ngts : 1, sizeof *v->gd);
  v->obuf = malloc(OBUF);
  v->cur = malloc(GRAIN);
  if (v->gd == NULL || v->obuf == NULL || v->cur == NULL) {
    set_error(ENOMEM, "out of memory");
    return -1;
  }
  for (unsigned i = 0; i < RING; i++) {
    v->ring[i].in = malloc(GRAIN);
    v->ring[i].out = malloc(v->out_cap);
    if (v->ring[i].in == NULL || v->ring[i].out == NULL) {
      set_error(ENOMEM, "out of memory");
      return -1;
    }
  }

  memset(head, 0, sizeof head);
  build_header(v, head, GD_AT_END);
  if (getrandom(&cid, sizeof cid, 0) != sizeof cid) {
    set_error(errno, "getrandom");
    return -1;
  }
  const char *name = strrchr(w->path, '/');
  name = name ? name + 1 : w->path;
  /* The geometry VMware derives for IDE disks: 16 heads, 63 sectors. */
  uint64_t cyl = v->capacity / (16 * 63);
  if (cyl > 16383)
    cyl = 16383;
  int n = snprintf((char *)head + SECTOR, DESC_SECTORS * SECTOR,
                   "# Disk DescriptorFile\n"
                   "version=1\n"
                   "CID=%08x\n"
                   "parentCID=ffffffff\n"
                   "createType=\"streamOptimized\"\n"
                   "\n"
                   "# Extent description\n"
                   "RW %llu SPARSE \"%s\"\n"
                   "\n"
                   "# The Disk Data Base\n"
                   "#DDB\n"
                   "\n"
                   "ddb.virtualHWVersion = \"4\"\n"
                   "ddb.geometry.cylinders = \"%llu\"\n"
                   "ddb.geometry.heads = \"16\"\n"
                   "ddb.geometry.sectors = \"63\"\n"
                   "ddb.adapterType = \"lsilogic\"\n",
                   (unsigned)cid, (unsigned long long)v->capacity, name, (unsigned long long)cyl);
  if (n < 0 || (size_t)n >= DESC_SECTORS * SECTOR) {
    set_error(ENAMETOOLONG, "%s: file name too long for the VMDK descriptor", w->path);
    return -1;
  }
  if (image_writer_pwrite(w, head, sizeof head, 0) == -1)
    return -1;
  v->pos = sizeof head;

  if (pthread_mutex_init(&v->mu, NULL) != 0 || pthread_cond_init(&v->work, NULL) != 0 ||
      pthread_cond_init(&v->done, NULL) != 0) {
    set_error(ENOMEM, "pthread init");
    return -1;
  }
  v->pool_started = 1;
  v->thr = calloc((size_t)w->threads, sizeof *v->thr);
  if (v->thr == NULL) {
    set_error(ENOMEM, "out of memory");
    return -1;
  }
  for (int i = 0; i < w->threads; i++) {
    int e = pthread_create(&v->thr[i], NULL, vmdk_worker, v);
    if (e != 0) {
      set_error(e, "pthread_create");
      return -1;
    }
    v->nthr++;
  }
  return 0;
}

static int vmdk_finish(struct image_writer *w)
{
  struct vmdk_writer *v = (struct vmdk_writer *)w;
  uint8_t h[SECTOR];
  if (flush_cur(v) == -1 || drain(v, 1) == -1 || flush_gt(v) == -1)
    return -1;
  size_t gd_bytes = (size_t)v->ngts * 4;
  size_t gd_sectors = (gd_bytes + SECTOR - 1) / SECTOR;
  if (add_marker(v, gd_sectors ? gd_sectors : 1, MARKER_GD) == -1)
    return -1;
  uint64_t gd_off = out_sector(v);
  uint8_t *gd = calloc(gd_sectors ? gd_sectors : 1, SECTOR);
  if (gd == NULL) {
    set_error(ENOMEM, "out of memory");
    return -1;
  }
  for (uint64_t i = 0; i < v->ngts; i++)
    put_le32(gd + 4 * i, v->gd[i]);
  int r = obuf_add(v, gd, (gd_sectors ? gd_sectors : 1) * SECTOR);
  free(gd);
  if (r == -1 || add_marker(v, 1, MARKER_FOOTER) == -1)
    return -1;
  build_header(v, h, gd_off);
  if (obuf_add(v, h, sizeof h) == -1 || add_marker(v, 0, MARKER_EOS) == -1)
    return -1;
  return obuf_flush(v);
}

static void vmdk_free(struct image_writer *w)
{
  struct vmdk_writer *v = (struct vmdk_writer *)w;
  if (v->pool_started) {
    pthread_mutex_lock(&v->mu);
    v->stop = 1;
    pthread_cond_broadcast(&v->work);
    pthread_mutex_unlock(&v->mu);
    for (int i = 0; i < v->nthr; i++)
      pthread_join(v->thr[i], NULL);
    pthread_mutex_destroy(&v->mu);
    pthread_cond_destroy(&v->work);
    pthread_cond_destroy(&v->done);
  }
  for (unsigned i = 0; i < RING; i++) {
    free(v->ring[i].in);
    free(v->ring[i].out);
  }
  free(v->thr);
  free(v->gd);
  free(v->obuf);
  free(v->cur);
}

static const struct image_writer_ops vmdk_ops = {
    .name = "vmdk",
    .start = vmdk_start,
    .write = vmdk_write,
    .finish = vmdk_finish,
    .free = vmdk_free,
};

struct image_writer *vmdk_image_writer_alloc(void)
{
  struct vmdk_writer *v = calloc(1, sizeof *v);
  if (v == NULL) {
    set_error(ENOMEM, "out of memory");
    return NULL;
  }
  v->base.ops = &vmdk_ops;
  return &v->base;
}
