/* VHD writers (Microsoft Virtual Hard Disk, spec version 1.0): dynamic
 * (footer copy, dynamic header, block allocation table, 2 MiB blocks each
 * led by a sector bitmap, footer) and fixed (the data, then a footer), as
 * Microsoft's "Virtual Hard Disk Image Format Specification" lays them out. */
#define _GNU_SOURCE
#include "image-writer.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "../util/error.h"
#include "../util/hash.h"

#define VHD_SECTOR 512u
#define VHD_BLOCK (2u * 1024 * 1024)
#define VHD_BITMAP_BYTES 512u /* one bit per sector of a 2 MiB block, padded to a sector */
#define VHD_UNUSED 0xffffffffu
#define VHD_MAX_DYNAMIC (2040ull << 30)
#define VHD_EPOCH 946684800 /* 2000-01-01T00:00:00Z */

struct vhd_writer {
  struct image_writer base;
  int fixed;
  uint64_t size;        /* the virtual size: disk_size rounded up to a sector */
  uint32_t nblocks;     /* BAT entries */
  uint32_t *bat;        /* host order; converted when written */
  uint64_t bat_off;     /* byte offset of the BAT */
  uint64_t next_sector; /* where the next block goes */
  uint8_t footer[VHD_SECTOR];
};

static void put_be16(uint8_t *p, uint16_t v)
{
  p[0] = (uint8_t)(v >> 8);
  p[1] = (uint8_t)v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (24 - 8 * i));
}

static void put_be64(uint8_t *p, uint64_t v)
{
  for (int i = 0; i < 8; i++)
    p[i] = (uint8_t)(v >> (56 - 8 * i));
}

/* The one's complement of the byte sum, with the checksum field counted as zero. */
static uint32_t vhd_checksum(const uint8_t *p, size_t len)
{
  uint32_t sum = 0;
  for (size_t i = 0; i < len; i++)
    sum += p[i];
  return ~sum;
}

/* CHS geometry for a size in sectors, by the algorithm in the VHD spec's
 * appendix. */
static void vhd_geometry(uint64_t total, uint16_t *cyls, uint8_t *heads, uint8_t *spt)
{
  uint64_t cth, h, s;
  if (total > 65535ull * 16 * 255)
    total = 65535ull * 16 * 255;
  if (total >= 65535ull * 16 * 63) {
    s = 255;
    h = 16;
    cth = total / s;
  } else {
    s = 17;
    cth = total / s;
    h = (cth + 1023) / 1024;
    if (h < 4)
      h = 4;
    if (cth >= h * 1024 || h > 16) {
      s = 31;
      h = 16;
      cth = total / s;
    }
    if (cth >= h * 1024) {
      s = 63;
      h = 16;
      cth = total / s;
    }
  }
  *cyls = (uint16_t)(cth / h);
  *heads = (uint8_t)h;
  *spt = (uint8_t)s;
}

static int vhd_build_footer(struct vhd_writer *v)
{
  uint8_t *f = v->footer;
  uint16_t c;
  uint8_t h, s;
  memset(f, 0, VHD_SECTOR);
  memcpy(f, "conectix", 8);
  put_be32(f + 8, 2); /* features: the reserved bit that must be set */
  put_be32(f + 12, 0x00010000);
  put_be64(f + 16, v->fixed ? UINT64_MAX : VHD_SECTOR);
  time_t now = time(NULL);
  put_be32(f + 24, now > VHD_EPOCH ? (uint32_t)(now - VHD_EPOCH) : 0);
  /* Readers take the size either from the CHS geometry (Virtual PC, which
   * cannot express every size) or from current_size (Hyper-V and Azure),
   * and choose by the creator application. "win " makes QEMU, VirtualBox
   * and the clouds all read the exact current_size. */
  memcpy(f + 28, "win ", 4);
  put_be32(f + 32, 0x00010000);
  memcpy(f + 36, "Wi2k", 4);
  put_be64(f + 40, v->size);
  put_be64(f + 48, v->size);
  vhd_geometry(v->size / VHD_SECTOR, &c, &h, &s);
  put_be16(f + 56, c);
  f[58] = h;
  f[59] = s;
  put_be32(f + 60, v->fixed ? 2 : 3);
  if (getrandom(f + 68, 16, 0) != 16) {
    set_error(errno, "getrandom");
    return -1;
  }
  f[68 + 6] = (uint8_t)((f[68 + 6] & 0x0f) | 0x40); /* a version 4 UUID */
  f[68 + 8] = (uint8_t)((f[68 + 8] & 0x3f) | 0x80);
  put_be32(f + 64, vhd_checksum(f, VHD_SECTOR));
  return 0;
}

static int vhd_start(struct image_writer *w)
{
  struct vhd_writer *v = (struct vhd_writer *)w;
  v->size = (w->disk_size + VHD_SECTOR - 1) / VHD_SECTOR * VHD_SECTOR;
  if (!v->fixed && v->size > VHD_MAX_DYNAMIC) {
    set_error(EFBIG, "%s: a dynamic VHD holds at most 2040 GiB; the disk is %llu bytes", w->path,
              (unsigned long long)w->disk_size);
    return -1;
  }
  if (vhd_build_footer(v) == -1)
    return -1;
  if (v->fixed)
    return 0;
  v->nblocks = (uint32_t)((v->size + VHD_BLOCK - 1) / VHD_BLOCK);
  v->bat = malloc(((size_t)v->nblocks + 1) * sizeof *v->bat);
  if (v->bat == NULL) {
    set_error(ENOMEM, "out of memory");
    return -1;
  }
  for (uint32_t i = 0; i < v->nblocks; i++)
    v->bat[i] = VHD_UNUSED;
  v->bat_off = 3 * VHD_SECTOR; /* after the footer copy and the 1024-byte header */
  uint64_t bat_bytes = ((uint64_t)v->nblocks * 4 + VHD_SECTOR - 1) / VHD_SECTOR * VHD_SECTOR;
  v->next_sector = (v->bat_off + bat_bytes) / VHD_SECTOR;
  return 0;
}

static int vhd_write(struct image_writer *w, uint64_t off, const void *buf, size_t len)
{
  struct vhd_writer *v = (struct vhd_writer *)w;
  uint8_t bitmap[VHD_BITMAP_BYTES];
  const uint8_t *p = buf;
  if (v->fixed)
    return image_writer_write_sparse(w, off, buf, len, 0);
  while (len > 0) {
    uint32_t b = (uint32_t)(off / VHD_BLOCK);
    size_t n = VHD_BLOCK - (size_t)(off % VHD_BLOCK);
    if (n > len)
      n = len;
    if (v->bat[b] == VHD_UNUSED && !is_zero(p, n)) {
      if (v->next_sector > UINT32_MAX - (VHD_BITMAP_BYTES + VHD_BLOCK) / VHD_SECTOR) {
        set_error(EFBIG, "%s: the VHD file would pass 2 TiB", w->path);
        return -1;
      }
      /* Every sector is marked present: the bitmap matters only to
       * differencing disks, and unwritten parts of the block read as zero. */
      memset(bitmap, 0xff, sizeof bitmap);
      if (image_writer_pwrite(w, bitmap, sizeof bitmap, v->next_sector * VHD_SECTOR) == -1)
        return -1;
      v->bat[b] = (uint32_t)v->next_sector;
      v->next_sector += (VHD_BITMAP_BYTES + VHD_BLOCK) / VHD_SECTOR;
    }
    if (v->bat[b] != VHD_UNUSED) {
      uint64_t data =
          ((uint64_t)v->bat[b] * VHD_SECTOR + VHD_BITMAP_BYTES) - (uint64_t)b * VHD_BLOCK;
      if (image_writer_write_sparse(w, off, p, n, data) == -1)
        return -1;
    }
    off += n;
    p += n;
    len -= n;
  }
  return 0;
}

static int vhd_finish(struct image_writer *w)
{
  struct vhd_writer *v = (struct vhd_writer *)w;
  uint8_t hdr[1024];
  int ret = -1;
  uint8_t *bat = NULL;
  if (v->fixed) {
    if (image_writer_set_size(w, v->size) == -1)
      return -1;
    return image_writer_pwrite(w, v->footer, VHD_SECTOR, v->size);
  }
  if (image_writer_pwrite(w, v->footer, VHD_SECTOR, v->next_sector * VHD_SECTOR) == -1 ||
      image_writer_pwrite(w, v->footer, VHD_SECTOR, 0) == -1)
    goto out;
  memset(hdr, 0, sizeof hdr);
  memcpy(hdr, "cxsparse", 8);
  put_be64(hdr + 8, UINT64_MAX);
  put_be64(hdr + 16, v->bat_off);
  put_be32(hdr + 24, 0x00010000);
  put_be32(hdr + 28, v->nblocks);
  put_be32(hdr + 32, VHD_BLOCK);
  put_be32(hdr + 36, vhd_checksum(hdr, sizeof hdr));
  if (image_writer_pwrite(w, hdr, sizeof hdr, VHD_SECTOR) == -1)
    goto out;
  size_t bat_bytes = ((size_t)v->nblocks * 4 + VHD_SECTOR - 1) / VHD_SECTOR * VHD_SECTOR;
  bat = malloc(bat_bytes ? bat_bytes : 1);
  if (bat == NULL) {
    set_error(ENOMEM, "out of memory");
    goto out;
  }
  memset(bat, 0xff, bat_bytes);
  for (uint32_t i = 0; i < v->nblocks; i++)
    put_be32(bat + 4 * (size_t)i, v->bat[i]);
  if (image_writer_pwrite(w, bat, bat_bytes, v->bat_off) == -1)
    goto out;
  ret = 0;
out:
  free(bat);
  return ret;
}

static void vhd_free(struct image_writer *w)
{
  struct vhd_writer *v = (struct vhd_writer *)w;
  free(v->bat);
}

static const struct image_writer_ops vhd_ops = {
    .name = "vhd",
    .start = vhd_start,
    .write = vhd_write,
    .finish = vhd_finish,
    .free = vhd_free,
};

struct image_writer *vhd_image_writer_alloc(int fixed)
{
  struct vhd_writer *v = calloc(1, sizeof *v);
  if (v == NULL) {
    set_error(ENOMEM, "out of memory");
    return NULL;
  }
  v->base.ops = &vhd_ops;
  v->fixed = fixed;
  return &v->base;
}
