/* The live changed-block tracking workflow: a running qemu-storage-daemon
 * or QEMU, driven over QMP. One transaction disables the old bitmap, adds
 * the new one and starts a copy-before-write fleece (blockdev-backup
 * sync:none into a temporary overlay backed by the live node); the fleece
 * is exported over NBD with the old bitmap, read, then torn down. */
#define _GNU_SOURCE
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../source/nbd-source.h"
#include "../util/error-slot.h"
#include "../util/error.h"
#include "cbt-internal.h"
#include "qmp.h"
#include "spawn.h"

struct live_session {
  struct cbt_session base;
  char *node;       /* the block node backed up */
  char *old_bitmap; /* bitmap consumed: removed once the snapshot commits */
  char *new_bitmap; /* bitmap created by this session, or NULL */
  int old_disabled; /* we disabled old_bitmap (roll back on failure) */
  char *tmpdir;     /* private folder for the fleece overlay and the socket */
  struct qmp *qmp;
  char *fleece_node, *job_id, *export_id; /* what we added to the daemon, or NULL */
  int nbd_server_started;                 /* we started the daemon's NBD server */
};

/* A string member of a JSON object, or "" when absent or not a string:
 * replies come from another process and are checked, not trusted. */
static const char *jstr(struct json_object *o, const char *key)
{
  struct json_object *v;
  if (!json_object_is_type(o, json_type_object) || !json_object_object_get_ex(o, key, &v) ||
      !json_object_is_type(v, json_type_string))
    return "";
  return json_object_get_string(v);
}

static int jbool(struct json_object *o, const char *key)
{
  struct json_object *v;
  return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, json_type_boolean) &&
         json_object_get_boolean(v);
}

static struct json_object *obj(void)
{
  return json_object_new_object();
}

static void put_str(struct json_object *o, const char *k, const char *v)
{
  json_object_object_add(o, k, json_object_new_string(v));
}

int cbt_node_from_reply(struct json_object *ret, const char *node, const char *bitmap,
                        uint64_t *size, struct node_bitmap *bm)
{
  memset(bm, 0, sizeof *bm);
  for (size_t i = 0; json_object_is_type(ret, json_type_array) && i < json_object_array_length(ret);
       i++) {
    struct json_object *n = json_object_array_get_idx(ret, i), *o, *img, *bms;
    if (strcmp(jstr(n, "node-name"), node) != 0)
      continue;
    if (!json_object_object_get_ex(n, "image", &img) ||
        !json_object_is_type(img, json_type_object) ||
        !json_object_object_get_ex(img, "virtual-size", &o) ||
        !json_object_is_type(o, json_type_int) || json_object_get_int64(o) < 0) {
      set_error(EPROTO, "QMP: node %s reports no virtual-size", node);
      return -1;
    }
    *size = (uint64_t)json_object_get_int64(o);
    if (bitmap && json_object_object_get_ex(n, "dirty-bitmaps", &bms) &&
        json_object_is_type(bms, json_type_array)) {
      for (size_t j = 0; j < json_object_array_length(bms); j++) {
        struct json_object *b = json_object_array_get_idx(bms, j);
        if (strcmp(jstr(b, "name"), bitmap) != 0)
          continue;
        bm->found = 1;
        bm->recording = jbool(b, "recording");
        bm->busy = jbool(b, "busy");
        bm->inconsistent = jbool(b, "inconsistent");
      }
    }
    return 0;
  }
  set_error(ENOENT, "QMP: no block node named %s (see query-named-block-nodes)", node);
  return -1;
}

/* The node's size and the state of one of its bitmaps. */
static int query_node(struct qmp *q, const char *node, const char *bitmap, uint64_t *size,
                      struct node_bitmap *bm)
{
  struct json_object *args = obj(), *ret = NULL;
  int rc;
  json_object_object_add(args, "flat", json_object_new_boolean(1));
  if (qmp_execute(q, "query-named-block-nodes", args, &ret) == -1)
    return -1;
  rc = cbt_node_from_reply(ret, node, bitmap, size, bm);
  json_object_put(ret);
  return rc;
}

static struct json_object *bitmap_args(const char *node, const char *name)
{
  struct json_object *a = obj();
  put_str(a, "node", node);
  put_str(a, "name", name);
  return a;
}

static struct json_object *action(const char *type, struct json_object *data)
{
  struct json_object *a = obj();
  put_str(a, "type", type);
  json_object_object_add(a, "data", data);
  return a;
}

/* Wait until a list query no longer shows an item whose key is value. */
static int wait_gone(struct qmp *q, const char *query, const char *key, const char *value)
{
  struct timespec ts = {0, 20 * 1000 * 1000};
  for (int i = 0; i < 1500; i++) {
    struct json_object *ret = NULL;
    int present = 0;
    if (qmp_execute(q, query, NULL, &ret) == -1)
      return -1;
    for (size_t j = 0;
         json_object_is_type(ret, json_type_array) && j < json_object_array_length(ret); j++) {
      if (strcmp(jstr(json_object_array_get_idx(ret, j), key), value) == 0)
        present = 1;
    }
    json_object_put(ret);
    if (!present)
      return 0;
    nanosleep(&ts, NULL);
  }
  set_error(ETIMEDOUT, "QMP: %s %s did not go away", key, value);
  return -1;
}

/* 1 if a list query shows an item whose key is value. */
static int listed(struct json_object *list, const char *key, const char *value)
{
  for (size_t i = 0;
       json_object_is_type(list, json_type_array) && i < json_object_array_length(list); i++)
    if (strcmp(jstr(json_object_array_get_idx(list, i), key), value) == 0)
      return 1;
  return 0;
}

/* A pilotlight run killed during a live backup leaves its export, job and
 * fleece node in the daemon, named after the bitmap it created on this node;
 * they would keep the old bitmap busy. Remove them, best effort: whatever
 * stays makes the checks fall back, never trust. One backup of a node runs
 * at a time. */
static void remove_leftovers(struct qmp *q, const char *node)
{
  struct json_object *args = obj(), *nodes = NULL, *exports = NULL, *jobs = NULL;
  json_object_object_add(args, "flat", json_object_new_boolean(1));
  if (qmp_execute(q, "query-named-block-nodes", args, &nodes) == -1 ||
      qmp_execute(q, "query-block-exports", NULL, &exports) == -1 ||
      qmp_execute(q, "query-block-jobs", NULL, &jobs) == -1 ||
      !json_object_is_type(nodes, json_type_array))
    goto out;
  for (size_t i = 0; i < json_object_array_length(nodes); i++) {
    struct json_object *n = json_object_array_get_idx(nodes, i), *bms;
    if (strcmp(jstr(n, "node-name"), node) != 0 ||
        !json_object_object_get_ex(n, "dirty-bitmaps", &bms) ||
        !json_object_is_type(bms, json_type_array))
      continue;
    for (size_t j = 0; j < json_object_array_length(bms); j++) {
      const char *name = jstr(json_object_array_get_idx(bms, j), "name");
      char id[64];
      if (strncmp(name, "pilotlight-", 11) != 0 || strlen(name + 11) != 16)
        continue;
      snprintf(id, sizeof id, "plexport-%s", name + 11);
      if (listed(exports, "id", id)) {
        struct json_object *a = obj();
        put_str(a, "id", id);
        put_str(a, "mode", "hard");
        if (qmp_execute(q, "block-export-del", a, NULL) == 0)
          wait_gone(q, "query-block-exports", "id", id);
      }
      snprintf(id, sizeof id, "pljob-%s", name + 11);
      if (listed(jobs, "device", id)) {
        struct json_object *a = obj();
        put_str(a, "device", id);
        json_object_object_add(a, "force", json_object_new_boolean(1));
        if (qmp_execute(q, "block-job-cancel", a, NULL) == 0)
          wait_gone(q, "query-block-jobs", "device", id);
      }
      snprintf(id, sizeof id, "plfleece-%s", name + 11);
      if (listed(nodes, "node-name", id)) {
        struct json_object *a = obj();
        put_str(a, "node-name", id);
        qmp_execute(q, "blockdev-del", a, NULL);
      }
    }
  }
out:
  json_object_put(nodes);
  json_object_put(exports);
  json_object_put(jobs);
}

#ifdef PL_TEST_HOOKS
/* Test builds only: run $PILOTLIGHT_TEST_FLEECE_HOOK (a shell command) once
 * the fleece is exported, so that tests can write to the disk or kill us
 * at that very point. */
static int run_hook(void)
{
  const char *hook = getenv("PILOTLIGHT_TEST_FLEECE_HOOK");
  if (!hook || !hook[0])
    return 0;
  char *argv[] = {"/bin/sh", "-c", (char *)hook, NULL};
  int rc = spawn_run(argv, NULL, NULL);
  if (rc != 0) {
    if (rc > 0)
      set_error(0, "PILOTLIGHT_TEST_FLEECE_HOOK exited with status %d", rc);
    return -1;
  }
  return 0;
}
#endif

/* Whether the parent's bitmap oldname (NULL if the parent names none), in
 * state bm on a node of size bytes, may stand for the changes since the
 * parent; when not, the session falls back and says why. Returns 1 when
 * usable. */
static int live_judge(struct cbt_session *s, const struct cbt_plan *p, const char *oldname,
                      const struct node_bitmap *bm, uint64_t size)
{
  char why[512];
  const char *r;
  if (!p->has_parent || p->full)
    return 0;
  r = cbt_parent_mismatch(p->parent_cbt, p->parent_size, oldname ? oldname : "", size, why,
                          sizeof why);
  if (r)
    cbt_fall_back(s, "%s", r);
  else if (!bm->found)
    cbt_fall_back(s,
                  "bitmap %s named by the parent snapshot is not on node %s (renamed or "
                  "removed)",
                  oldname, p->node);
  else if (bm->inconsistent)
    cbt_fall_back(s,
                  "bitmap %s on node %s is inconsistent: the process writing the image did "
                  "not close it cleanly (crash or kill -9)",
                  oldname, p->node);
  else if (!bm->recording)
    cbt_fall_back(s,
                  "bitmap %s on node %s is disabled, so it stopped recording (an earlier "
                  "run was interrupted after rotating it)",
                  oldname, p->node);
  else if (bm->busy)
    cbt_fall_back(s, "bitmap %s on node %s is busy (used by another job or export)", oldname,
                  p->node);
  else
    return 1;
  return 0;
}

/* The names of what this session adds to the daemon, after the random part
 * of newname: node names are limited to 31 characters. */
static int live_names(struct live_session *l, const char *newname)
{
  const char *token = newname + strlen("pilotlight-");
  if (asprintf(&l->fleece_node, "plfleece-%s", token) == -1 ||
      asprintf(&l->job_id, "pljob-%s", token) == -1 ||
      asprintf(&l->export_id, "plexport-%s", token) == -1) {
    set_error(ENOMEM, "names");
    return -1;
  }
  return 0;
}

/* Create the fleece overlay (size bytes) in the private folder, which
 * receives the old content of every block the writer changes while we
 * read, and add it to the daemon as a node backed by the live node. */
static int live_add_fleece(struct live_session *l, uint64_t size)
{
  char fleece[4200], sizearg[32], line[512];
  char *err = NULL;
  snprintf(fleece, sizeof fleece, "%s/fleece.qcow2", l->tmpdir);
  snprintf(sizearg, sizeof sizearg, "%llu", (unsigned long long)size);
  {
    char *argv[] = {"qemu-img", "create", "-q", "-f", "qcow2", fleece, sizearg, NULL};
    int rc = spawn_run(argv, NULL, &err);
    if (rc > 0)
      set_error(0, "qemu-img create %s failed: %s", fleece,
                spawn_first_line(err, line, sizeof line));
    free(err);
    if (rc != 0)
      return -1;
  }
  struct json_object *a = obj(), *file = obj();
  put_str(file, "driver", "file");
  put_str(file, "filename", fleece);
  put_str(a, "driver", "qcow2");
  put_str(a, "node-name", l->fleece_node);
  json_object_object_add(a, "file", file);
  put_str(a, "backing", l->node);
  if (qmp_execute(l->qmp, "blockdev-add", a, NULL) == -1) {
    free(l->fleece_node);
    l->fleece_node = NULL;
    return -1;
  }
  return 0;
}

/* The point in time, all three at once: disable the old bitmap (when
 * usable), add the new one and start the copy-before-write fleece job. */
static int live_rotate(struct live_session *l, int usable, const char *oldname, const char *newname)
{
  struct json_object *acts = json_object_new_array(), *a = obj(), *bk = obj(), *nb;
  if (usable)
    json_object_array_add(acts,
                          action("block-dirty-bitmap-disable", bitmap_args(l->node, oldname)));
  nb = bitmap_args(l->node, newname);
  json_object_object_add(nb, "persistent", json_object_new_boolean(1));
  json_object_array_add(acts, action("block-dirty-bitmap-add", nb));
  put_str(bk, "device", l->node);
  put_str(bk, "target", l->fleece_node);
  put_str(bk, "sync", "none");
  put_str(bk, "job-id", l->job_id);
  json_object_array_add(acts, action("blockdev-backup", bk));
  json_object_object_add(a, "actions", acts);
  if (qmp_execute(l->qmp, "transaction", a, NULL) == -1) {
    free(l->job_id);
    l->job_id = NULL;
    return -1;
  }
  l->new_bitmap = strdup(newname);
  l->old_disabled = usable;
  if (!l->new_bitmap) {
    set_error(errno, "strdup");
    return -1;
  }
  return 0;
}

/* Export the fleece over NBD (read-only, with the old bitmap when usable)
 * on the daemon's server at nbd_socket, or on one we start with its socket
 * in the private folder; the socket's path goes to sock (size n). */
static int live_export(struct live_session *l, const char *nbd_socket, int usable,
                       const char *oldname, char *sock, size_t n)
{
  if (nbd_socket) {
    snprintf(sock, n, "%s", nbd_socket);
  } else {
    struct json_object *a = obj(), *addr = obj(), *data = obj();
    snprintf(sock, n, "%s/nbd.sock", l->tmpdir);
    put_str(data, "path", sock);
    put_str(addr, "type", "unix");
    json_object_object_add(addr, "data", data);
    json_object_object_add(a, "addr", addr);
    if (qmp_execute(l->qmp, "nbd-server-start", a, NULL) == -1) {
      prefix_error("(if the daemon already runs an NBD server, name its socket with --nbd-socket)");
      return -1;
    }
    l->nbd_server_started = 1;
  }
  struct json_object *a = obj();
  put_str(a, "type", "nbd");
  put_str(a, "id", l->export_id);
  put_str(a, "node-name", l->fleece_node);
  put_str(a, "name", l->export_id);
  json_object_object_add(a, "writable", json_object_new_boolean(0));
  if (usable) {
    struct json_object *list = json_object_new_array();
    json_object_array_add(list, bitmap_args(l->node, oldname));
    json_object_object_add(a, "bitmaps", list);
  }
  if (qmp_execute(l->qmp, "block-export-add", a, NULL) == -1) {
    free(l->export_id);
    l->export_id = NULL;
    return -1;
  }
  return 0;
}

/* Open the fleece export on sock as the session's source, with bitmap's
 * context when given; check it has the node's size and name the disk
 * after the QMP socket and node. */
static int live_open(struct live_session *l, const struct cbt_plan *p, const char *bitmap,
                     const char *sock, uint64_t size)
{
  char uri[4400], ctx[1100];
  char *nm = NULL;
  snprintf(uri, sizeof uri, "nbd+unix:///%s?socket=%s", l->export_id, sock);
  if (bitmap && cbt_bitmap_context(bitmap, ctx, sizeof ctx) == -1)
    return -1;
  l->base.src = nbd_source_open_ctx(uri, bitmap ? ctx : NULL);
  if (!l->base.src)
    return -1;
  if (l->base.src->size != size) {
    set_error(0, "the fleece export has %llu bytes, node %s %llu",
              (unsigned long long)l->base.src->size, p->node, (unsigned long long)size);
    return -1;
  }
  if (asprintf(&nm, "qmp:%s?node=%s", p->qmp, p->node) == -1) {
    set_error(ENOMEM, "name");
    return -1;
  }
  free(l->base.src->name);
  l->base.src->name = nm;
  return 0;
}

static int live_start(struct cbt_session *s, const struct cbt_plan *p)
{
  struct live_session *l = (struct live_session *)s;
  const char *oldname = p->has_parent ? cbt_cookie_bitmap(p->parent_cbt) : NULL;
  struct node_bitmap bm;
  uint64_t size = 0;
  char newname[64], sock[4200];
  int usable;

  if (!p->qmp || !p->node) {
    set_error(EINVAL, "live changed-block tracking needs --qmp SOCKET --node NODE");
    return -1;
  }
  l->node = strdup(p->node);
  if (!l->node) {
    set_error(errno, "strdup");
    return -1;
  }
  l->qmp = qmp_connect(p->qmp);
  if (!l->qmp)
    return -1;
  remove_leftovers(l->qmp, p->node);
  if (query_node(l->qmp, p->node, oldname, &size, &bm) == -1)
    return -1;
  if (oldname && bm.found && !(l->old_bitmap = strdup(oldname))) {
    set_error(errno, "strdup");
    return -1;
  }
  usable = live_judge(s, p, oldname, &bm, size);
  l->tmpdir = cbt_make_tmpdir(p->tmpdir, "/var/tmp");
  if (!l->tmpdir)
    return -1;
  if (cbt_new_bitmap_name(newname, sizeof newname) == -1 || live_names(l, newname) == -1 ||
      live_add_fleece(l, size) == -1 || live_rotate(l, usable, oldname, newname) == -1 ||
      live_export(l, p->nbd_socket, usable, oldname, sock, sizeof sock) == -1)
    return -1;
#ifdef PL_TEST_HOOKS
  if (run_hook() == -1)
    return -1;
#endif
  if (live_open(l, p, usable ? oldname : NULL, sock, size) == -1)
    return -1;
  return cbt_use_bitmap(s, usable, oldname, newname);
}

/* Record the current error in kept unless it holds one; returns -1. */
static int keep_first(struct error_slot *kept)
{
  error_slot_set_from_current(kept);
  return -1;
}

static int live_finish(struct cbt_session *s, enum cbt_outcome outcome)
{
  struct live_session *l = (struct live_session *)s;
  struct qmp *q = l->qmp;
  const char *node = l->node;
  /* The first error of the teardown is the one reported, but it goes on. */
  struct error_slot kept = ERROR_SLOT_INIT;
  int ret = 0;
  if (!q)
    goto out;
  if (l->export_id) {
    struct json_object *a = obj();
    put_str(a, "id", l->export_id);
    if (qmp_execute(q, "block-export-del", a, NULL) == -1 ||
        wait_gone(q, "query-block-exports", "id", l->export_id) == -1)
      ret = keep_first(&kept);
  }
  if (l->nbd_server_started && qmp_execute(q, "nbd-server-stop", NULL, NULL) == -1)
    ret = keep_first(&kept);
  if (l->job_id) {
    struct json_object *a = obj();
    put_str(a, "device", l->job_id);
    json_object_object_add(a, "force", json_object_new_boolean(1));
    if (qmp_execute(q, "block-job-cancel", a, NULL) == -1 ||
        wait_gone(q, "query-block-jobs", "device", l->job_id) == -1)
      ret = keep_first(&kept);
  }
  if (l->fleece_node) {
    struct json_object *a = obj();
    put_str(a, "node-name", l->fleece_node);
    if (qmp_execute(q, "blockdev-del", a, NULL) == -1)
      ret = keep_first(&kept);
  }
  if (outcome != CBT_ROLLBACK) {
    if (l->old_bitmap &&
        qmp_execute(q, "block-dirty-bitmap-remove", bitmap_args(node, l->old_bitmap), NULL) == -1)
      ret = keep_first(&kept);
    if (outcome == CBT_COMMITTED_UNTRUSTED && l->new_bitmap &&
        qmp_execute(q, "block-dirty-bitmap-remove", bitmap_args(node, l->new_bitmap), NULL) == -1)
      ret = keep_first(&kept);
  } else if (l->new_bitmap) {
    /* Undo the rotation: the old bitmap takes back what the new one saw. */
    if (l->old_disabled) {
      struct json_object *a = obj(), *list = json_object_new_array();
      put_str(a, "node", node);
      put_str(a, "target", l->old_bitmap);
      json_object_array_add(list, json_object_new_string(l->new_bitmap));
      json_object_object_add(a, "bitmaps", list);
      if (qmp_execute(q, "block-dirty-bitmap-merge", a, NULL) == -1 ||
          qmp_execute(q, "block-dirty-bitmap-enable", bitmap_args(node, l->old_bitmap), NULL) == -1)
        ret = keep_first(&kept);
    }
    if (qmp_execute(q, "block-dirty-bitmap-remove", bitmap_args(node, l->new_bitmap), NULL) == -1)
      ret = keep_first(&kept);
  }
out:
  cbt_remove_tmpdir(l->tmpdir);
  qmp_free(q);
  free(l->node);
  free(l->old_bitmap);
  free(l->new_bitmap);
  free(l->tmpdir);
  free(l->fleece_node);
  free(l->job_id);
  free(l->export_id);
  error_slot_restore(&kept);
  error_slot_destroy(&kept);
  return ret;
}

const struct cbt_workflow_ops cbt_live_ops = {
    .name = "qmp",
    .size = sizeof(struct live_session),
    .start = live_start,
    .finish = live_finish,
};
