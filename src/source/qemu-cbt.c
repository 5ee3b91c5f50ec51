/* Changed-block tracking from QEMU dirty bitmaps: the parent check, reading
 * qemu:dirty-bitmap:NAME over NBD, and the user-managed NBD and offline
 * qcow2 workflows (bitmap rotation with qemu-img, a private qemu-nbd). The
 * live QMP workflow is in cbt-live.c. */
#define _GNU_SOURCE
#include "qemu-cbt.h"

#include <dirent.h>
#include <errno.h>
#include <json-c/json.h>
#include <libnbd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../util/error.h"
#include "cbt-internal.h"
#include "cbt-run.h"
#include "nbd-source.h"

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

char *cbt_make_tmpdir(const char *base)
{
  const char *t = base ? base : getenv("TMPDIR");
  char path[4096];
  if (!t || !t[0])
    t = "/tmp";
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

/* ---- offline qcow2 ---- */

struct img_bitmap {
  char *name;
  int enabled; /* "auto": records writes */
  int in_use;  /* "in-use": not closed cleanly, so inconsistent */
};

struct img_info {
  uint64_t size;
  char format[32];
  VEC(struct img_bitmap) bitmaps;
};

static void img_info_free(struct img_info *ii)
{
  for (size_t i = 0; i < ii->bitmaps.len; i++)
    free(ii->bitmaps.v[i].name);
  vec_free(&ii->bitmaps);
}

static const struct img_bitmap *img_find_bitmap(const struct img_info *ii, const char *name)
{
  for (size_t i = 0; i < ii->bitmaps.len; i++)
    if (strcmp(ii->bitmaps.v[i].name, name) == 0)
      return &ii->bitmaps.v[i];
  return NULL;
}

static int parse_img_info(const char *text, const char *image, struct img_info *ii)
{
  struct json_object *root = json_tokener_parse(text), *o, *data, *bms;
  int ret = -1;
  if (!root || !json_object_is_type(root, json_type_object)) {
    set_error(EPROTO, "%s: qemu-img info printed something that is not JSON", image);
    goto out;
  }
  if (!json_object_object_get_ex(root, "virtual-size", &o) ||
      !json_object_is_type(o, json_type_int) || json_object_get_int64(o) < 0) {
    set_error(EPROTO, "%s: qemu-img info gave no virtual-size", image);
    goto out;
  }
  ii->size = (uint64_t)json_object_get_int64(o);
  if (json_object_object_get_ex(root, "format", &o) && json_object_is_type(o, json_type_string))
    snprintf(ii->format, sizeof ii->format, "%s", json_object_get_string(o));
  if (json_object_object_get_ex(root, "format-specific", &o) &&
      json_object_object_get_ex(o, "data", &data) &&
      json_object_object_get_ex(data, "bitmaps", &bms) &&
      json_object_is_type(bms, json_type_array)) {
    for (size_t i = 0; i < json_object_array_length(bms); i++) {
      struct json_object *b = json_object_array_get_idx(bms, i), *nm, *fl;
      struct img_bitmap bm = {0};
      if (!json_object_object_get_ex(b, "name", &nm) || !json_object_is_type(nm, json_type_string))
        continue;
      if (json_object_object_get_ex(b, "flags", &fl) && json_object_is_type(fl, json_type_array)) {
        for (size_t j = 0; j < json_object_array_length(fl); j++) {
          const char *f = json_object_get_string(json_object_array_get_idx(fl, j));
          if (f && strcmp(f, "auto") == 0)
            bm.enabled = 1;
          if (f && strcmp(f, "in-use") == 0)
            bm.in_use = 1;
        }
      }
      bm.name = strdup(json_object_get_string(nm));
      if (!bm.name || vec_push(&ii->bitmaps, bm) == -1) {
        set_error(ENOMEM, "bitmap list");
        free(bm.name);
        goto out;
      }
    }
  }
  ret = 0;
out:
  json_object_put(root);
  return ret;
}

/* Run a qemu-img command; a failure becomes one clear message that says
 * when another process holds the image. */
static int run_qemu_img(char *const argv[], const char *image, char **out)
{
  char *err = NULL, line[512];
  int rc = cbt_run(argv, out, &err);
  if (rc == -1)
    goto out;
  if (rc != 0) {
    if (err && strstr(err, "lock"))
      set_error(0,
                "%s is in use by another process (%s): --qcow2 works only on an image that "
                "nothing has open; for a running writer use --qmp",
                image, cbt_first_line(err, line, sizeof line));
    else
      set_error(0, "qemu-img %s %s failed: %s", argv[1], image,
                cbt_first_line(err, line, sizeof line));
    if (out) {
      free(*out);
      *out = NULL;
    }
    rc = -1;
  }
out:
  free(err);
  return rc;
}

static int qemu_img_info(const char *image, struct img_info *ii)
{
  char *argv[] = {"qemu-img", "info", "--output=json", (char *)image, NULL};
  char *out = NULL;
  int ret = -1;
  if (run_qemu_img(argv, image, &out) == -1)
    goto out;
  ret = parse_img_info(out, image, ii);
out:
  free(out);
  return ret;
}

static int qemu_img_bitmap(const char *image, const char *op, const char *arg, const char *bitmap)
{
  char *argv[8];
  int i = 0;
  argv[i++] = "qemu-img";
  argv[i++] = "bitmap";
  argv[i++] = (char *)op;
  if (arg)
    argv[i++] = (char *)arg;
  if (strcmp(op, "--merge") == 0)
    argv[i++] = "--enable";
  argv[i++] = (char *)image;
  argv[i++] = (char *)bitmap;
  argv[i] = NULL;
  if (run_qemu_img(argv, image, NULL) == -1) {
    prefix_error("bitmap %s", bitmap);
    return -1;
  }
  return 0;
}

/* The bitmap named by a cookie, or NULL. */
static const char *cookie_bitmap(const char *cookie)
{
  size_t plen = strlen(CBT_COOKIE_PREFIX);
  if (!cookie || strncmp(cookie, CBT_COOKIE_PREFIX, plen) != 0 || !cookie[plen])
    return NULL;
  return cookie + plen;
}

static int offline_start(struct cbt_session *s, const struct cbt_plan *p)
{
  struct img_info ii = {0};
  const struct img_bitmap *old = NULL;
  const char *oldname = p->has_parent ? cookie_bitmap(p->parent_cbt) : NULL;
  char newname[64], why[512], pidfile[4200], sock[4200], uri[4300], ctx[1100];
  int usable = 0, ret = -1;

  if (qemu_img_info(p->qcow2, &ii) == -1)
    goto out;
  if (strcmp(ii.format, "qcow2") != 0) {
    set_error(0,
              "%s is a %s image, not qcow2: persistent bitmaps need qcow2 (back it up "
              "through qemu-nbd as an NBD source instead)",
              p->qcow2, ii.format);
    goto out;
  }
  if (oldname)
    old = img_find_bitmap(&ii, oldname);
  if (old && !(s->old_bitmap = strdup(old->name))) {
    set_error(errno, "strdup");
    goto out;
  }
  if (p->has_parent && !p->full) {
    const char *r = cbt_parent_mismatch(p->parent_cbt, p->parent_size, oldname ? oldname : "",
                                        ii.size, why, sizeof why);
    if (r)
      cbt_fall_back(s, "%s", r);
    else if (!old)
      cbt_fall_back(s, "bitmap %s named by the parent snapshot is not in %s (renamed or removed)",
                    oldname, p->qcow2);
    else if (old->in_use)
      cbt_fall_back(s,
                    "bitmap %s in %s is marked in-use, so inconsistent: the process writing "
                    "the image did not close it cleanly (crash or kill -9)",
                    oldname, p->qcow2);
    else if (!old->enabled)
      cbt_fall_back(s,
                    "bitmap %s in %s is disabled, so it stopped recording (an earlier run "
                    "was interrupted after rotating it)",
                    oldname, p->qcow2);
    else
      usable = 1;
  }

  /* Rotate: the new bitmap records from this point in time on. */
  if (cbt_new_bitmap_name(newname, sizeof newname) == -1)
    goto out;
  if (qemu_img_bitmap(p->qcow2, "--add", NULL, newname) == -1)
    goto out;
  s->new_bitmap = strdup(newname);
  if (!s->new_bitmap) {
    set_error(errno, "strdup");
    goto out;
  }
  if (usable) {
    if (qemu_img_bitmap(p->qcow2, "--disable", NULL, oldname) == -1)
      goto out;
    s->old_disabled = 1;
  }

  s->tmpdir = cbt_make_tmpdir(NULL);
  if (!s->tmpdir)
    goto out;
  snprintf(pidfile, sizeof pidfile, "%s/qemu-nbd.pid", s->tmpdir);
  snprintf(sock, sizeof sock, "%s/nbd.sock", s->tmpdir);
  {
    char pidarg[4300];
    char *argv[16];
    int i = 0;
    char *err = NULL, line[512];
    snprintf(pidarg, sizeof pidarg, "--pid-file=%s", pidfile);
    argv[i++] = "qemu-nbd";
    argv[i++] = "--read-only";
    argv[i++] = "--format=qcow2";
    argv[i++] = "--shared=8";
    argv[i++] = "--fork";
    argv[i++] = pidarg;
    argv[i++] = "--socket";
    argv[i++] = sock;
    if (usable) {
      argv[i++] = "--bitmap";
      argv[i++] = (char *)oldname;
    }
    argv[i++] = (char *)p->qcow2;
    argv[i] = NULL;
    int rc = cbt_run(argv, NULL, &err);
    if (rc > 0) {
      if (err && strstr(err, "lock"))
        set_error(0, "%s is in use by another process (%s)", p->qcow2,
                  cbt_first_line(err, line, sizeof line));
      else
        set_error(0, "qemu-nbd %s failed: %s", p->qcow2, cbt_first_line(err, line, sizeof line));
    }
    free(err);
    if (rc != 0)
      goto out;
  }
  s->nbd_pid = (int)cbt_read_pidfile(pidfile);
  if (s->nbd_pid == -1) {
    s->nbd_pid = 0;
    goto out;
  }
  snprintf(uri, sizeof uri, "nbd+unix:///?socket=%s", sock);
  if (usable && cbt_bitmap_context(oldname, ctx, sizeof ctx) == -1)
    goto out;
  s->src = nbd_source_open_ctx(uri, usable ? ctx : NULL);
  if (!s->src)
    goto out;
  /* Name the disk by its image in messages and the snapshot record, not by
   * the private socket. */
  {
    char *nm = strdup(p->qcow2);
    if (!nm) {
      set_error(errno, "strdup");
      goto out;
    }
    free(s->src->name);
    s->src->name = nm;
  }
  if (cbt_use_bitmap(s, usable, oldname, newname) == -1)
    goto out;
  ret = 0;
out:
  img_info_free(&ii);
  return ret;
}

static int offline_finish(struct cbt_session *s, int committed)
{
  int ret = 0;
  char keep[1024];
  if (s->nbd_pid && cbt_stop_pid(s->nbd_pid, 30000) == -1)
    ret = -1;
  s->nbd_pid = 0;
  cbt_remove_tmpdir(s->tmpdir);
  if (committed) {
    /* The consumed bitmap (or a broken one the parent named) has served. */
    if (s->old_bitmap && qemu_img_bitmap(s->image, "--remove", NULL, s->old_bitmap) == -1)
      ret = -1;
    if (committed == 2 && s->new_bitmap &&
        qemu_img_bitmap(s->image, "--remove", NULL, s->new_bitmap) == -1)
      ret = -1;
    return ret;
  }
  /* Not committed: undo the rotation, so that the parent's bitmap again
   * records everything since the parent. */
  if (ret == 0) {
    if (s->old_disabled) {
      if (qemu_img_bitmap(s->image, "--merge", s->new_bitmap, s->old_bitmap) == -1) {
        snprintf(keep, sizeof keep, "%s", get_error());
        set_error(0, "%s (the next backup will fall back to hash-compare)", keep);
        ret = -1;
      }
    }
    if (s->new_bitmap && qemu_img_bitmap(s->image, "--remove", NULL, s->new_bitmap) == -1)
      ret = -1;
  }
  return ret;
}

/* ---- sessions ---- */

static int nbd_start(struct cbt_session *s, const struct cbt_plan *p)
{
  const char *next = p->next_bitmap ? p->next_bitmap : p->bitmap;
  char why[512];
  char ctx[1100];
  if (cbt_bitmap_context(p->bitmap, ctx, sizeof ctx) == -1)
    return -1;
  s->src = nbd_source_open_ctx(p->nbd_uri, ctx);
  if (!s->src)
    return -1;
  if (asprintf(&s->cookie, "%s%s", CBT_COOKIE_PREFIX, next) == -1) {
    s->cookie = NULL;
    set_error(ENOMEM, "cookie");
    return -1;
  }
  if (!p->has_parent || p->full)
    return 0;
  const char *r =
      cbt_parent_mismatch(p->parent_cbt, p->parent_size, p->bitmap, s->src->size, why, sizeof why);
  if (r) {
    cbt_fall_back(s, "%s", r);
    return 0;
  }
  int rc = cbt_read_bitmap(s->src, p->bitmap, &s->changes, why, sizeof why);
  if (rc == 1)
    cbt_fall_back(s, "%s", why);
  else if (rc == -1)
    cbt_fall_back(s, "reading bitmap %s failed: %s", p->bitmap, get_error());
  else {
    s->changed = &s->changes;
    s->mode = "cbt";
  }
  return 0;
}

struct cbt_session *cbt_session_start(const struct cbt_plan *p)
{
  struct cbt_session *s = calloc(1, sizeof *s);
  int rc;
  if (!s) {
    set_error(errno, "calloc");
    return NULL;
  }
  if (p->nbd_uri && p->bitmap) {
    s->kind = CBT_KIND_NBD;
    rc = nbd_start(s, p);
  } else if (p->qcow2) {
    s->kind = CBT_KIND_QCOW2;
    s->image = strdup(p->qcow2);
    rc = s->image ? offline_start(s, p) : -1;
  } else if (p->qmp && p->node) {
    s->kind = CBT_KIND_QMP;
    s->image = strdup(p->node);
    rc = s->image ? cbt_live_start(s, p) : -1;
  } else {
    set_error(0, "changed-block tracking needs an NBD URI and a bitmap, --qcow2 IMAGE, "
                 "or --qmp SOCKET --node NODE");
    rc = -1;
  }
  if (rc == -1) {
    /* Undo whatever was done, keeping the first error. */
    char msg[1024];
    int e = get_errno();
    snprintf(msg, sizeof msg, "%s", get_error());
    cbt_session_finish(s, 0);
    set_error(0, "%s", msg);
    errno = e;
    return NULL;
  }
  return s;
}

int cbt_session_finish(struct cbt_session *s, int committed)
{
  int ret = 0;
  if (!s)
    return 0;
  source_close(s->src);
  s->src = NULL;
  if (s->kind == CBT_KIND_QCOW2)
    ret = offline_finish(s, committed);
  else if (s->kind == CBT_KIND_QMP)
    ret = cbt_live_finish(s, committed);
  extent_list_free(&s->changes);
  free(s->cookie);
  free(s->image);
  free(s->old_bitmap);
  free(s->new_bitmap);
  free(s->tmpdir);
  free(s->fleece_node);
  free(s->job_id);
  free(s->export_id);
  free(s);
  return ret;
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
