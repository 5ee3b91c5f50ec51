/* Changed-extent lists: VMware's changed-area text, sorting and merging. */
#include "extent-list.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../util/error.h"
#include "../util/fileio.h"

int extent_list_add(struct extent_list *l, uint64_t off, uint64_t len)
{
  if (len == 0)
    return 0;
  return vec_push(&l->e, ((struct extent){off, len}));
}

static int cmp_extent(const void *a, const void *b)
{
  const struct extent *x = a, *y = b;
  return x->off < y->off ? -1 : x->off > y->off;
}

void extent_list_normalize(struct extent_list *l)
{
  if (l->e.len == 0)
    return;
  qsort(l->e.v, l->e.len, sizeof *l->e.v, cmp_extent);
  size_t o = 0;
  for (size_t i = 1; i < l->e.len; i++) {
    struct extent *cur = &l->e.v[o];
    uint64_t end = cur->off + cur->len;
    if (l->e.v[i].off <= end) {
      uint64_t e2 = l->e.v[i].off + l->e.v[i].len;
      if (e2 > end)
        cur->len = e2 - cur->off;
    } else {
      l->e.v[++o] = l->e.v[i];
    }
  }
  l->e.len = o + 1;
}

void extent_list_free(struct extent_list *l)
{
  if (l)
    vec_free(&l->e);
}

/* Parse one unsigned decimal field starting at *p (within [*p, end)).
 * Returns 0 and advances *p, or -1. */
static int parse_field(const char **p, const char *end, uint64_t *out, const char **why)
{
  const char *s = *p;
  uint64_t v = 0;
  if (s < end && (*s == '-' || *s == '+')) {
    *why = *s == '-' ? "negative number" : "unexpected sign";
    return -1;
  }
  if (s >= end || !isdigit((unsigned char)*s)) {
    *why = "not a decimal number";
    return -1;
  }
  while (s < end && isdigit((unsigned char)*s)) {
    unsigned d = (unsigned)(*s - '0');
    if (v > (UINT64_MAX - d) / 10) {
      *why = "number too large";
      return -1;
    }
    v = v * 10 + d;
    s++;
  }
  if (s < end && !isspace((unsigned char)*s)) {
    *why = "not a decimal number";
    return -1;
  }
  *out = v;
  *p = s;
  return 0;
}

int extent_list_parse(struct extent_list *l, const char *text, size_t len, uint64_t disk_size,
                      const char *name)
{
  const char *p = text, *end = text + len;
  unsigned long lineno = 0;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *le = nl ? nl : end;
    const char *why = NULL;
    uint64_t f[2];
    int nf = 0;
    lineno++;
    while (p < le) {
      while (p < le && isspace((unsigned char)*p))
        p++;
      if (p >= le)
        break;
      if (nf == 2) {
        why = "more than two fields (expected: offset length)";
        goto bad;
      }
      if (parse_field(&p, le, &f[nf], &why) == -1)
        goto bad;
      nf++;
    }
    if (nf == 1) {
      why = "one field (expected: offset length)";
      goto bad;
    }
    if (nf == 2) {
      if (f[1] > disk_size || f[0] > disk_size - f[1]) {
        set_error_code(
            ERANGE,
            "%s:%lu: extent %llu+%llu ends past the end of the disk (%llu bytes); is this "
            "the list for this disk?",
            name, lineno, (unsigned long long)f[0], (unsigned long long)f[1],
            (unsigned long long)disk_size);
        goto fail;
      }
      if (extent_list_add(l, f[0], f[1]) == -1)
        goto fail;
    }
    p = nl ? nl + 1 : end;
    continue;
  bad:
    set_error_code(EINVAL, "%s:%lu: %s; each line must be \"offset length\" in decimal bytes", name,
                   lineno, why);
    goto fail;
  }
  extent_list_normalize(l);
  return 0;
fail:
  extent_list_free(l);
  return -1;
}

#define MAX_LIST_BYTES (256u << 20)

int extent_list_load(struct extent_list *l, const char *file, uint64_t disk_size)
{
  int fd = strcmp(file, "-") == 0 ? STDIN_FILENO : open(file, O_RDONLY | O_CLOEXEC);
  const char *name = strcmp(file, "-") == 0 ? "<stdin>" : file;
  VEC(char) buf = {0};
  int ret = -1;
  if (fd == -1) {
    set_error(errno, "%s: cannot open the changed-extent list", file);
    return -1;
  }
  for (;;) {
    if (vec_reserve(&buf, 65536) == -1)
      goto out;
    size_t room = buf.cap - buf.len, got;
    if (read_all(fd, buf.v + buf.len, room, &got, name) == -1)
      goto out;
    buf.len += got;
    if (buf.len > MAX_LIST_BYTES) {
      set_error_code(EFBIG, "%s: changed-extent list larger than %u MiB", name,
                     MAX_LIST_BYTES >> 20);
      goto out;
    }
    if (got < room)
      break; /* the end of the stream */
  }
  ret = extent_list_parse(l, buf.v ? buf.v : "", buf.len, disk_size, name);
out:
  vec_free(&buf);
  if (fd != STDIN_FILENO)
    close(fd);
  return ret;
}
