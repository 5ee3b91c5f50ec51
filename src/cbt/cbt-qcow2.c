/* The offline qcow2 workflow: an image that nothing has open. pilotlight
 * rotates its persistent bitmaps with qemu-img, serves it through a private
 * read-only qemu-nbd and reads the consumed bitmap from there. */
#define _GNU_SOURCE
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../source/nbd-source.h"
#include "../util/error.h"
#include "../util/vec.h"
#include "cbt-internal.h"
#include "spawn.h"

struct qcow2_session {
  struct cbt_session base;
  char *image;      /* the qcow2 image */
  char *old_bitmap; /* bitmap consumed: removed once the snapshot commits */
  char *new_bitmap; /* bitmap created by this session, or NULL */
  int old_disabled; /* we disabled old_bitmap (roll back on failure) */
  char *tmpdir;     /* private folder for the socket and the pid file */
  int nbd_pid;      /* qemu-nbd we started */
};

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
  int rc = spawn_run(argv, out, &err);
  if (rc == -1)
    goto out;
  if (rc != 0) {
    if (err && strstr(err, "lock"))
      set_error(0,
                "%s is in use by another process (%s): --qcow2 works only on an image that "
                "nothing has open; for a running writer use --qmp",
                image, spawn_first_line(err, line, sizeof line));
    else
      set_error(0, "qemu-img %s %s failed: %s", argv[1], image,
                spawn_first_line(err, line, sizeof line));
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

/* Whether the parent's bitmap oldname (NULL if the parent names none) in
 * the image described by ii may stand for the changes since the parent;
 * when not, the session falls back and says why. Returns 1 when usable. */
static int qcow2_judge(struct cbt_session *s, const struct cbt_plan *p, const struct img_info *ii,
                       const char *oldname)
{
  const struct img_bitmap *old = oldname ? img_find_bitmap(ii, oldname) : NULL;
  char why[512];
  const char *r;
  if (!p->has_parent || p->full)
    return 0;
  r = cbt_parent_mismatch(p->parent_cbt, p->parent_size, oldname ? oldname : "", ii->size, why,
                          sizeof why);
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
    return 1;
  return 0;
}

/* Rotate: a new bitmap, newname, records from this point in time on; the
 * old one, when usable, stops recording. */
static int qcow2_rotate(struct qcow2_session *q, int usable, const char *oldname,
                        const char *newname)
{
  if (qemu_img_bitmap(q->image, "--add", NULL, newname) == -1)
    return -1;
  q->new_bitmap = strdup(newname);
  if (!q->new_bitmap) {
    set_error(errno, "strdup");
    return -1;
  }
  if (usable) {
    if (qemu_img_bitmap(q->image, "--disable", NULL, oldname) == -1)
      return -1;
    q->old_disabled = 1;
  }
  return 0;
}

/* Serve the image read-only through a private qemu-nbd on sock, with the
 * bitmap when given; the daemon's pid goes to q->nbd_pid. */
static int qcow2_serve(struct qcow2_session *q, const char *bitmap, const char *sock)
{
  char pidfile[4200], pidarg[4300], line[512];
  char *argv[16], *err = NULL;
  int i = 0, rc;
  snprintf(pidfile, sizeof pidfile, "%s/qemu-nbd.pid", q->tmpdir);
  snprintf(pidarg, sizeof pidarg, "--pid-file=%s", pidfile);
  argv[i++] = "qemu-nbd";
  argv[i++] = "--read-only";
  argv[i++] = "--format=qcow2";
  argv[i++] = "--shared=8";
  argv[i++] = "--fork";
  argv[i++] = pidarg;
  argv[i++] = "--socket";
  argv[i++] = (char *)sock;
  if (bitmap) {
    argv[i++] = "--bitmap";
    argv[i++] = (char *)bitmap;
  }
  argv[i++] = q->image;
  argv[i] = NULL;
  rc = spawn_run(argv, NULL, &err);
  if (rc > 0) {
    if (err && strstr(err, "lock"))
      set_error(0, "%s is in use by another process (%s)", q->image,
                spawn_first_line(err, line, sizeof line));
    else
      set_error(0, "qemu-nbd %s failed: %s", q->image, spawn_first_line(err, line, sizeof line));
  }
  free(err);
  if (rc != 0)
    return -1;
  q->nbd_pid = (int)spawn_read_pidfile(pidfile);
  if (q->nbd_pid == -1) {
    q->nbd_pid = 0;
    return -1;
  }
  return 0;
}

/* Open the private export as the session's source, with bitmap's context
 * when given, and name the disk by its image in messages and the snapshot
 * record, not by the private socket. */
static int qcow2_open(struct qcow2_session *q, const char *bitmap, const char *sock)
{
  char uri[4300], ctx[1100];
  char *nm;
  snprintf(uri, sizeof uri, "nbd+unix:///?socket=%s", sock);
  if (bitmap && cbt_bitmap_context(bitmap, ctx, sizeof ctx) == -1)
    return -1;
  q->base.src = nbd_source_open_ctx(uri, bitmap ? ctx : NULL);
  if (!q->base.src)
    return -1;
  nm = strdup(q->image);
  if (!nm) {
    set_error(errno, "strdup");
    return -1;
  }
  free(q->base.src->name);
  q->base.src->name = nm;
  return 0;
}

static int qcow2_start(struct cbt_session *s, const struct cbt_plan *p)
{
  struct qcow2_session *q = (struct qcow2_session *)s;
  struct img_info ii = {0};
  const char *oldname = p->has_parent ? cbt_cookie_bitmap(p->parent_cbt) : NULL;
  char newname[64], sock[4200];
  int usable, ret = -1;

  if (!p->qcow2) {
    set_error(EINVAL, "changed-block tracking of an offline image needs --qcow2 IMAGE");
    goto out;
  }
  q->image = strdup(p->qcow2);
  if (!q->image) {
    set_error(errno, "strdup");
    goto out;
  }
  if (qemu_img_info(q->image, &ii) == -1)
    goto out;
  if (strcmp(ii.format, "qcow2") != 0) {
    set_error(0,
              "%s is a %s image, not qcow2: persistent bitmaps need qcow2 (back it up "
              "through qemu-nbd as an NBD source instead)",
              q->image, ii.format);
    goto out;
  }
  if (oldname && img_find_bitmap(&ii, oldname) && !(q->old_bitmap = strdup(oldname))) {
    set_error(errno, "strdup");
    goto out;
  }
  usable = qcow2_judge(s, p, &ii, oldname);
  if (cbt_new_bitmap_name(newname, sizeof newname) == -1 ||
      qcow2_rotate(q, usable, oldname, newname) == -1)
    goto out;
  q->tmpdir = cbt_make_tmpdir(p->tmpdir, "/tmp");
  if (!q->tmpdir)
    goto out;
  snprintf(sock, sizeof sock, "%s/nbd.sock", q->tmpdir);
  if (qcow2_serve(q, usable ? oldname : NULL, sock) == -1 ||
      qcow2_open(q, usable ? oldname : NULL, sock) == -1)
    goto out;
  if (cbt_use_bitmap(s, usable, oldname, newname) == -1)
    goto out;
  ret = 0;
out:
  img_info_free(&ii);
  return ret;
}

static int qcow2_finish(struct cbt_session *s, enum cbt_outcome outcome)
{
  struct qcow2_session *q = (struct qcow2_session *)s;
  int ret = 0;
  char keep[1024];
  if (q->nbd_pid && spawn_stop_pid(q->nbd_pid, 30000) == -1)
    ret = -1;
  q->nbd_pid = 0;
  cbt_remove_tmpdir(q->tmpdir);
  if (outcome != CBT_ROLLBACK) {
    /* The consumed bitmap (or a broken one the parent named) has served. */
    if (q->old_bitmap && qemu_img_bitmap(q->image, "--remove", NULL, q->old_bitmap) == -1)
      ret = -1;
    if (outcome == CBT_COMMITTED_UNTRUSTED && q->new_bitmap &&
        qemu_img_bitmap(q->image, "--remove", NULL, q->new_bitmap) == -1)
      ret = -1;
  } else if (ret == 0) {
    /* Not committed: undo the rotation, so that the parent's bitmap again
     * records everything since the parent. */
    if (q->old_disabled &&
        qemu_img_bitmap(q->image, "--merge", q->new_bitmap, q->old_bitmap) == -1) {
      snprintf(keep, sizeof keep, "%s", get_error());
      set_error(0, "%s (the next backup will fall back to hash-compare)", keep);
      ret = -1;
    }
    if (q->new_bitmap && qemu_img_bitmap(q->image, "--remove", NULL, q->new_bitmap) == -1)
      ret = -1;
  }
  free(q->image);
  free(q->old_bitmap);
  free(q->new_bitmap);
  free(q->tmpdir);
  return ret;
}

const struct cbt_workflow_ops cbt_qcow2_ops = {
    .name = "qcow2",
    .size = sizeof(struct qcow2_session),
    .start = qcow2_start,
    .finish = qcow2_finish,
};
