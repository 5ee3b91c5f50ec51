/* Changed-block tracking sessions: dispatch to the workflow a plan names,
 * through a table of ops, and the helpers the workflows share (the parent
 * check, reading a bitmap over NBD, bitmap names, private folders). */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "../source/nbd-source.h"
#include "../util/error-slot.h"
#include "../util/error.h"
#include "cbt-internal.h"

static const struct cbt_workflow_ops *const workflows[CBT_WORKFLOWS] = {
    [CBT_NBD] = &cbt_nbd_ops,
    [CBT_QCOW2] = &cbt_qcow2_ops,
    [CBT_QMP] = &cbt_live_ops,
};

struct cbt_session *cbt_session_start(const struct cbt_plan *p)
{
  const struct cbt_workflow_ops *ops =
      (unsigned)p->workflow < CBT_WORKFLOWS ? workflows[p->workflow] : NULL;
  struct cbt_session *s;
  if (!ops) {
    set_error(EINVAL, "changed-block tracking: unknown workflow %d", (int)p->workflow);
    return NULL;
  }
  s = calloc(1, ops->size);
  if (!s) {
    set_error(errno, "calloc");
    return NULL;
  }
  s->ops = ops;
  if (ops->start(s, p) == -1) {
    /* Undo whatever was done, keeping the first error. */
    struct error_slot kept = ERROR_SLOT_INIT;
    error_slot_set_from_current(&kept);
    cbt_session_finish(s, CBT_ROLLBACK);
    error_slot_restore(&kept);
    error_slot_destroy(&kept);
    return NULL;
  }
  return s;
}

int cbt_session_finish(struct cbt_session *s, enum cbt_outcome outcome)
{
  int ret = 0;
  if (!s)
    return 0;
  source_close(s->src);
  s->src = NULL;
  if (s->ops->finish)
    ret = s->ops->finish(s, outcome);
  extent_list_free(&s->changes);
  free(s->cookie);
  free(s);
  return ret;
}

const char *cbt_parent_mismatch(const char *parent_cbt, uint64_t parent_size, const char *bitmap,
                                uint64_t size, char *buf, size_t n)
{
  size_t plen = strlen(CBT_COOKIE_PREFIX);
  if (!parent_cbt || !parent_cbt[0]) {
    snprintf(buf, n, "the parent snapshot recorded no CBT cookie");
    return buf;
  }
  if (strncmp(parent_cbt, CBT_COOKIE_PREFIX, plen) != 0 || !parent_cbt[plen]) {
    snprintf(buf, n, "the parent snapshot's CBT cookie \"%s\" is not a QEMU bitmap", parent_cbt);
    return buf;
  }
  if (strcmp(parent_cbt + plen, bitmap) != 0) {
    snprintf(buf, n, "bitmap %s does not match the parent snapshot, which continues from bitmap %s",
             bitmap, parent_cbt + plen);
    return buf;
  }
  if (parent_size != size) {
    snprintf(buf, n, "the disk size changed from %llu to %llu bytes since the parent snapshot",
             (unsigned long long)parent_size, (unsigned long long)size);
    return buf;
  }
  return NULL;
}

const char *cbt_cookie_bitmap(const char *cookie)
{
  size_t plen = strlen(CBT_COOKIE_PREFIX);
  if (!cookie || strncmp(cookie, CBT_COOKIE_PREFIX, plen) != 0 || !cookie[plen])
    return NULL;
  return cookie + plen;
}

void cbt_fall_back(struct cbt_session *s, const char *fmt, ...)
{
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(s->note, sizeof s->note, fmt, ap);
  va_end(ap);
  s->fell_back = 1;
  s->changed = NULL;
  s->mode = NULL;
  extent_list_free(&s->changes);
}

static int add_extent(void *opaque, uint64_t off, uint64_t len)
{
  return extent_list_add(opaque, off, len);
}

int cbt_bitmap_context(const char *bitmap, char *ctx, size_t n)
{
  if (snprintf(ctx, n, "qemu:dirty-bitmap:%s", bitmap) >= (int)n) {
    set_error(EINVAL, "bitmap name %s is too long", bitmap);
    return -1;
  }
  return 0;
}

int cbt_read_bitmap(struct source *src, const char *bitmap, struct extent_list *out, char *buf,
                    size_t n)
{
  char ctx[1100];
  int rc;
  if (cbt_bitmap_context(bitmap, ctx, sizeof ctx) == -1)
    return -1;
  rc = nbd_source_meta_extents(src, ctx, 1, 1, add_extent, out);
  if (rc == 1)
    snprintf(buf, n,
             "the NBD server does not offer %s (the bitmap is missing, or the export was "
             "started without it, e.g. qemu-nbd without -B %s)",
             ctx, bitmap);
  if (rc == 0)
    extent_list_normalize(out);
  return rc;
}

int cbt_use_bitmap(struct cbt_session *s, int usable, const char *oldname, const char *newname)
{
  char why[512];
  if (usable) {
    int r = cbt_read_bitmap(s->src, oldname, &s->changes, why, sizeof why);
    if (r == 1)
      cbt_fall_back(s, "%s", why);
    else if (r == -1)
      cbt_fall_back(s, "reading bitmap %s failed: %s", oldname, get_error());
    else {
      s->changed = &s->changes;
      s->mode = "cbt";
    }
  }
  if (asprintf(&s->cookie, "%s%s", CBT_COOKIE_PREFIX, newname) == -1) {
    s->cookie = NULL;
    set_error(ENOMEM, "cookie");
    return -1;
  }
  return 0;
}

int cbt_new_bitmap_name(char *buf, size_t n)
{
  uint8_t r[8];
  if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) {
    set_error(errno, "getrandom");
    return -1;
  }
  snprintf(buf, n, "pilotlight-%02x%02x%02x%02x%02x%02x%02x%02x", r[0], r[1], r[2], r[3], r[4],
           r[5], r[6], r[7]);
  return 0;
}

char *cbt_make_tmpdir(const char *base, const char *dflt)
{
  const char *t = base && base[0] ? base : dflt;
  char path[4096];
  if (snprintf(path, sizeof path, "%s/pilotlight-cbt.XXXXXX", t) >= (int)sizeof path) {
    set_error(ENAMETOOLONG, "temporary folder under %s", t);
    return NULL;
  }
  if (!mkdtemp(path)) {
    set_error(errno, "cannot make a private folder %s", path);
    return NULL;
  }
  char *d = strdup(path);
  if (!d) {
    set_error(errno, "strdup");
    rmdir(path);
  }
  return d;
}

void cbt_remove_tmpdir(const char *dir)
{
  DIR *d;
  struct dirent *e;
  if (!dir)
    return;
  d = opendir(dir);
  if (d) {
    for (e = readdir(d); e; e = readdir(d)) {
      char p[4400];
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
        continue;
      snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
      unlink(p);
    }
    closedir(d);
  }
  rmdir(dir);
}
