/* Bundle files: see bundle.h and docs/FORMAT.md (Local cache). */
#include "bundle.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../util/bigmem.h"
#include "../util/error.h"
#include "../util/fileio.h"
#include "format.h"

#define BUNDLE_ENTRY_HEAD (HASH_LEN + 4)

static int cmp_entry(const void *a, const void *b)
{
  return memcmp(((const struct bundle_entry *)a)->name, ((const struct bundle_entry *)b)->name,
                HASH_LEN);
}

static void release(uint8_t *buf, size_t mapped)
{
  if (mapped)
    unmap_file(buf, mapped);
  else
    free(buf);
}

static int decode(uint8_t *buf, size_t len, size_t mapped, struct bundle *b)
{
  uint8_t sum[HASH_LEN];
  uint32_t n = 0;
  memset(b, 0, sizeof *b);
  if (len < BUNDLE_MAGIC_LEN + 4 + HASH_LEN || memcmp(buf, BUNDLE_MAGIC, BUNDLE_MAGIC_LEN) != 0) {
    set_error_code(EINVAL, "not a bundle (bad magic or too short)");
    goto bad;
  }
  size_t body = len - HASH_LEN;
  sha256(buf, body, sum);
  if (memcmp(sum, buf + body, HASH_LEN) != 0) {
    set_error_code(EINVAL, "bundle checksum mismatch (damaged or torn file)");
    goto bad;
  }
  n = get_u32(buf + BUNDLE_MAGIC_LEN);
  size_t pos = BUNDLE_MAGIC_LEN + 4;
  if (n > (body - pos) / BUNDLE_ENTRY_HEAD) {
    set_error_code(EINVAL, "bundle claims %u objects, more than fit", n);
    goto bad;
  }
  /* 10,000 entries are 480 KiB: bigmem's huge page saves 120 faults. */
  b->e = bigmem_alloc((n ? n : 1) * sizeof *b->e);
  if (!b->e) {
    set_error(errno, "bundle of %u objects", n);
    goto bad;
  }
  for (uint32_t i = 0; i < n; i++) {
    struct bundle_entry *e = &b->e[i];
    if (body - pos < BUNDLE_ENTRY_HEAD) {
      set_error_code(EINVAL, "bundle entry %u is truncated", i);
      goto bad;
    }
    memcpy(e->name, buf + pos, HASH_LEN);
    e->len = get_u32(buf + pos + HASH_LEN);
    pos += BUNDLE_ENTRY_HEAD;
    if (e->len > body - pos) {
      set_error_code(EINVAL, "bundle entry %u runs past the end", i);
      goto bad;
    }
    e->data = buf + pos;
    pos += e->len;
    if (i > 0 && memcmp(b->e[i - 1].name, e->name, HASH_LEN) >= 0) {
      set_error_code(EINVAL, "bundle entries are not in order");
      goto bad;
    }
  }
  if (pos != body) {
    set_error_code(EINVAL, "bundle has %zu bytes after its last entry", body - pos);
    goto bad;
  }
  b->buf = buf;
  b->mapped = mapped;
  b->n = n;
  return 0;
bad:
  if (b->e)
    bigmem_free(b->e, (n ? n : 1) * sizeof *b->e);
  b->e = NULL;
  release(buf, mapped);
  return -1;
}

int bundle_decode(uint8_t *buf, size_t len, struct bundle *b)
{
  return decode(buf, len, 0, b);
}

int bundle_decode_mapped(uint8_t *buf, size_t len, struct bundle *b)
{
  return decode(buf, len, len, b);
}

static int matches(const struct bundle_entry *e)
{
  uint8_t h[HASH_LEN];
  sha256(e->data, e->len, h);
  return memcmp(h, e->name, HASH_LEN) == 0;
}

const struct bundle_entry *bundle_lookup(const struct bundle *b, const uint8_t name[HASH_LEN])
{
  struct bundle_entry key = {0};
  memcpy(key.name, name, HASH_LEN);
  return b->n ? bsearch(&key, b->e, b->n, sizeof key, cmp_entry) : NULL;
}

const struct bundle_entry *bundle_find(struct bundle *b, const uint8_t name[HASH_LEN])
{
  struct bundle_entry key = {0};
  memcpy(key.name, name, HASH_LEN);
  struct bundle_entry *e = b->n ? bsearch(&key, b->e, b->n, sizeof key, cmp_entry) : NULL;
  if (!e || !e->data)
    return NULL;
  if (!matches(e)) {
    e->data = NULL; /* dropped at the next save */
    return NULL;
  }
  return e;
}

int bundle_add(struct bundle *b, const uint8_t name[HASH_LEN], const void *data, size_t len)
{
  struct bundle_entry e = {.len = (uint32_t)len};
  if (len > UINT32_MAX) {
    set_error_code(EFBIG, "object too large for a bundle");
    return -1;
  }
  memcpy(e.name, name, HASH_LEN);
  uint8_t *copy = malloc(len ? len : 1);
  if (!copy || vec_push(&b->added, e) == -1) {
    free(copy);
    set_error(ENOMEM, "bundle");
    return -1;
  }
  memcpy(copy, data, len);
  b->added.v[b->added.len - 1].data = copy;
  return 0;
}

uint8_t *bundle_encode(struct bundle_entry *e, size_t n, size_t *len)
{
  size_t total = BUNDLE_MAGIC_LEN + 4 + HASH_LEN, kept = 0;
  if (n)
    qsort(e, n, sizeof *e, cmp_entry);
  for (size_t i = 0; i < n; i++)
    if (i == 0 || memcmp(e[i - 1].name, e[i].name, HASH_LEN) != 0) {
      total += BUNDLE_ENTRY_HEAD + e[i].len;
      kept++;
    }
  if (kept > UINT32_MAX) {
    set_error_code(EFBIG, "too many objects for a bundle");
    return NULL;
  }
  uint8_t *out = malloc(total), *p = out;
  if (!out) {
    set_error(errno, "bundle of %zu bytes", total);
    return NULL;
  }
  memcpy(p, BUNDLE_MAGIC, BUNDLE_MAGIC_LEN);
  put_u32(p + BUNDLE_MAGIC_LEN, (uint32_t)kept);
  p += BUNDLE_MAGIC_LEN + 4;
  for (size_t i = 0; i < n; i++) {
    if (i > 0 && memcmp(e[i - 1].name, e[i].name, HASH_LEN) == 0)
      continue;
    memcpy(p, e[i].name, HASH_LEN);
    put_u32(p + HASH_LEN, e[i].len);
    memcpy(p + BUNDLE_ENTRY_HEAD, e[i].data, e[i].len);
    p += BUNDLE_ENTRY_HEAD + e[i].len;
  }
  sha256(out, total - HASH_LEN, p);
  *len = total;
  return out;
}

void bundle_free(struct bundle *b)
{
  for (size_t i = 0; i < b->added.len; i++)
    free((void *)b->added.v[i].data);
  vec_free(&b->added);
  if (b->e)
    bigmem_free(b->e, (b->n ? b->n : 1) * sizeof *b->e);
  release(b->buf, b->mapped);
  memset(b, 0, sizeof *b);
}
