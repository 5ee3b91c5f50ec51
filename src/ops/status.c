/* Host status documents and the states built from them. A disk's state
 * follows AWS Elastic Disaster Recovery's replication states: never (no
 * snapshot, no daemon), initial-sync (a daemon is taking the first
 * snapshot), protected, lagging (the newest snapshot is older than the
 * objective), failing (the last backup failed), stalled (the daemon that
 * backs it up stopped reporting), manual (backed up from the command line,
 * no daemon reports it). */
#include "status.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>

#include "core/host-status.h"
#include "core/repo.h"
#include "util/error.h"

static const char *const kind_names[] = {"backup", "replica", "verify", "prune", "drill"};

#define ADD(o, k, v) json_object_object_add(o, k, v)
#define I64(v) json_object_new_int64((int64_t)(v))
#define STR(v) json_object_new_string(v)

char *host_status_doc(const struct ops_config *c, const struct job_vec *jobs, int64_t now)
{
  struct json_object *root = json_object_new_object(), *arr = json_object_new_array();
  ADD(root, "format", I64(1));
  ADD(root, "host", STR(c->host));
  ADD(root, "time", I64(now));
  for (size_t i = 0; i < jobs->len; i++) {
    const struct job *j = &jobs->v[i];
    if (j->retired)
      continue;
    struct json_object *o = json_object_new_object();
    ADD(o, "job", STR(j->name));
    ADD(o, "kind", STR(kind_names[j->kind]));
    ADD(o, "disk", STR(j->disk));
    ADD(o, "replica", STR(j->target));
    ADD(o, "every", I64(j->every));
    ADD(o, "rpo", I64(j->rpo));
    ADD(o, "running", json_object_new_boolean(j->pid != 0));
    ADD(o, "last_start", I64(j->last_start));
    ADD(o, "last_end", I64(j->last_end));
    ADD(o, "last_success", I64(j->last_success));
    ADD(o, "next_run", I64(j->next_run));
    ADD(o, "failures", I64(j->failures));
    ADD(o, "error", STR(j->last.error));
    ADD(o, "snapshot", STR(j->snapshot));
    ADD(o, "snapshot_time", I64(j->snap_time));
    ADD(o, "mode", STR(j->cycle.mode));
    ADD(o, "note", STR(j->cycle.note));
    ADD(o, "bytes_read", I64(j->cycle.bytes_read));
    ADD(o, "bytes_new", I64(j->cycle.bytes_new));
    ADD(o, "bytes_uploaded", I64(j->cycle.bytes_stored));
    ADD(o, "bytes_written", I64(j->cycle.bytes_written));
    ADD(o, "seconds", json_object_new_double(j->cycle.seconds));
    ADD(o, "cbt_fallbacks_total", I64(j->cbt_fallbacks_total));
    ADD(o, "damaged", I64(j->last.damaged));
    json_object_array_add(arr, o);
  }
  ADD(root, "jobs", arr);
  const char *text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN);
  char *out = text ? strdup(text) : NULL;
  json_object_put(root);
  return out;
}

static int64_t geti(struct json_object *o, const char *k)
{
  struct json_object *v;
  return json_object_object_get_ex(o, k, &v) ? json_object_get_int64(v) : 0;
}

static const char *gets(struct json_object *o, const char *k)
{
  struct json_object *v;
  return json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string)
             ? json_object_get_string(v)
             : "";
}

struct collected {
  struct json_object *jobs;   /* every host's jobs */
  struct json_object *drills; /* the drill reports, one per disk */
};

static int collect(void *opaque, const char *doc, size_t len)
{
  struct collected *col = opaque;
  return ops_status_collect(col->jobs, col->drills, doc, len);
}

int ops_status_collect(struct json_object *jobs, struct json_object *drills, const char *doc,
                       size_t len)
{
  struct json_object *root, *arr;
  struct json_tokener *tok = json_tokener_new();
  root = tok ? json_tokener_parse_ex(tok, doc, (int)len) : NULL;
  json_tokener_free(tok);
  if (!root)
    return 0; /* not a document we can read: skipped */
  if (!json_object_is_type(root, json_type_object)) {
    json_object_put(root);
    return 0;
  }
  if (strcmp(gets(root, "kind"), "drill") == 0) {
    json_object_array_add(drills, root);
    return 0;
  }
  if (json_object_object_get_ex(root, "jobs", &arr) && json_object_is_type(arr, json_type_array))
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
      struct json_object *j = json_object_array_get_idx(arr, i);
      if (!json_object_is_type(j, json_type_object))
        continue;
      ADD(j, "host", STR(gets(root, "host")));
      ADD(j, "reported", I64(geti(root, "time")));
      json_object_array_add(jobs, json_object_get(j));
    }
  json_object_put(root);
  return 0;
}

/* A daemon that has not reported for two intervals (and five minutes) has
 * stopped. */
static int stale(struct json_object *j, int64_t now)
{
  int64_t every = geti(j, "every"), reported = geti(j, "reported");
  int64_t grace = every + (every > 300 ? every : 300);
  return !json_object_get_boolean(json_object_object_get(j, "running")) && now - reported > grace;
}

/* The job of kind for disk (backup) or replica name reported last. */
static struct json_object *find_job(struct json_object *jobs, const char *kind, const char *key,
                                    const char *value)
{
  struct json_object *best = NULL;
  for (size_t i = 0; i < json_object_array_length(jobs); i++) {
    struct json_object *j = json_object_array_get_idx(jobs, i);
    if (strcmp(gets(j, "kind"), kind) == 0 && (!key || strcmp(gets(j, key), value) == 0) &&
        (!best || geti(j, "reported") > geti(best, "reported")))
      best = j;
  }
  return best;
}

/* Add a copy of s to v unless it is there. */
static void strings_add_unique(struct strings *v, const char *s)
{
  for (size_t i = 0; i < v->len; i++)
    if (strcmp(v->v[i], s) == 0)
      return;
  char *d = strdup(s);
  if (d && vec_push(v, d) == -1)
    free(d);
}

struct latest {
  const struct snapshot *s;
  size_t count;
};

static void copy_job_fields(struct json_object *out, struct json_object *j)
{
  static const char *const fields[] = {"host",
                                       "every",
                                       "last_success",
                                       "next_run",
                                       "failures",
                                       "error",
                                       "running",
                                       "mode",
                                       "note",
                                       "bytes_read",
                                       "bytes_new",
                                       "bytes_uploaded",
                                       "cbt_fallbacks_total",
                                       "reported"};
  for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
    struct json_object *v;
    if (json_object_object_get_ex(j, fields[i], &v))
      ADD(out, fields[i], json_object_get(v));
  }
}

struct json_object *ops_status_build(struct repo *r, const struct ops_config *c, int64_t now)
{
  struct snapshot **snaps = NULL;
  size_t n = 0;
  struct json_object *jobs = json_object_new_array(), *root = NULL;
  struct collected col = {jobs, json_object_new_array()};
  int breached = 0;
  if (repo_list_snapshots(r, NULL, &snaps, &n) == -1 ||
      repo_list_host_status(r, collect, &col) == -1)
    goto out;
  root = json_object_new_object();
  struct json_object *disks = json_object_new_array(), *replicas = json_object_new_array(),
                     *others = json_object_new_array();
  /* Disk names: from the snapshots, the daemons' backup jobs and the config. */
  struct strings names = {0};
  for (size_t i = 0; i < n; i++)
    strings_add_unique(&names, snaps[i]->disk);
  for (size_t i = 0; i < json_object_array_length(jobs); i++) {
    struct json_object *j = json_object_array_get_idx(jobs, i);
    if (strcmp(gets(j, "kind"), "backup") == 0)
      strings_add_unique(&names, gets(j, "disk"));
  }
  for (size_t i = 0; c && i < c->disks.len; i++)
    if (c->disks.v[i].every || c->disks.v[i].rpo)
      strings_add_unique(&names, c->disks.v[i].name);
  for (size_t k = 0; k < names.len; k++) {
    const char *disk = names.v[k];
    struct latest l = {0};
    for (size_t i = 0; i < n; i++)
      if (strcmp(snaps[i]->disk, disk) == 0) {
        l.count++;
        if (!l.s || snaps[i]->time > l.s->time)
          l.s = snaps[i];
      }
    struct json_object *j = find_job(jobs, "backup", "disk", disk), *o = json_object_new_object();
    const struct ops_disk *cd = c ? ops_config_disk(c, disk) : NULL;
    int64_t rpo = j ? geti(j, "rpo") : 0;
    if (!rpo && cd)
      rpo = cd->rpo;
    int64_t age = l.s ? now - l.s->time : -1;
    const char *state;
    if (!j)
      state = l.s ? "manual" : "never";
    else if (stale(j, now))
      state = "stalled";
    else if (geti(j, "failures") > 0)
      state = "failing";
    else if (!l.s)
      state = "initial-sync";
    else if (rpo && age > rpo)
      state = "lagging";
    else
      state = "protected";
    int bad = strcmp(state, "stalled") == 0 || strcmp(state, "failing") == 0 ||
              strcmp(state, "lagging") == 0 || (rpo && (age < 0 || age > rpo));
    breached |= bad;
    ADD(o, "disk", STR(disk));
    ADD(o, "state", STR(state));
    ADD(o, "breached", json_object_new_boolean(bad));
    ADD(o, "snapshots", I64(l.count));
    ADD(o, "latest", l.s ? STR(l.s->id) : NULL);
    ADD(o, "latest_time", l.s ? I64(l.s->time) : NULL);
    ADD(o, "age", l.s ? I64(age) : NULL);
    ADD(o, "rpo", rpo ? I64(rpo) : NULL);
    ADD(o, "lag", l.s ? I64(age) : NULL);
    if (l.s && !j) {
      ADD(o, "mode", STR(l.s->mode));
      ADD(o, "bytes_new", I64(l.s->bytes_new));
      ADD(o, "host", STR(l.s->host));
    }
    if (j)
      copy_job_fields(o, j);
    struct json_object *drill = NULL;
    for (size_t i = 0; i < json_object_array_length(col.drills); i++) {
      struct json_object *d = json_object_array_get_idx(col.drills, i);
      if (strcmp(gets(d, "disk"), disk) == 0 && (!drill || geti(d, "time") > geti(drill, "time")))
        drill = d;
    }
    ADD(o, "drill", drill ? json_object_get(drill) : NULL);
    /* A recovery that the last drill could not prove is a breach too. */
    if (drill && strcmp(gets(drill, "result"), "pass") != 0) {
      breached = 1;
      json_object_object_add(o, "breached", json_object_new_boolean(1));
    }
    json_object_array_add(disks, o);
  }
  for (size_t i = 0; i < json_object_array_length(jobs); i++) {
    struct json_object *j = json_object_array_get_idx(jobs, i), *o = json_object_new_object();
    const char *kind = gets(j, "kind");
    if (strcmp(kind, "backup") == 0) {
      json_object_put(o);
      continue;
    }
    if (strcmp(kind, "replica") != 0) {
      ADD(o, "job", STR(gets(j, "job")));
      ADD(o, "result", STR(geti(j, "failures") ? "failed" : geti(j, "last_end") ? "ok" : "never"));
      ADD(o, "last_end", I64(geti(j, "last_end")));
      ADD(o, "damaged", I64(geti(j, "damaged")));
      copy_job_fields(o, j);
      breached |= geti(j, "failures") > 0;
      json_object_array_add(others, o);
      continue;
    }
    const char *disk = gets(j, "disk");
    const struct snapshot *latest = NULL;
    for (size_t k = 0; k < n; k++)
      if (strcmp(snaps[k]->disk, disk) == 0 && (!latest || snaps[k]->time > latest->time))
        latest = snaps[k];
    int64_t held = geti(j, "snapshot_time"), rpo = geti(j, "rpo");
    int failing = geti(j, "failures") > 0, stalled = stale(j, now);
    int bad = failing || stalled || (rpo && (!held || now - held > rpo));
    breached |= bad;
    ADD(o, "replica", STR(gets(j, "replica")));
    ADD(o, "disk", STR(disk));
    ADD(o, "state",
        STR(stalled                   ? "stalled"
            : failing                 ? "failing"
            : !held                   ? "initial-sync"
            : rpo && now - held > rpo ? "lagging"
                                      : "protected"));
    ADD(o, "breached", json_object_new_boolean(bad));
    ADD(o, "snapshot", gets(j, "snapshot")[0] ? STR(gets(j, "snapshot")) : NULL);
    ADD(o, "snapshot_time", held ? I64(held) : NULL);
    ADD(o, "behind_latest", held && latest ? I64(latest->time - held) : NULL);
    ADD(o, "behind_clock", held ? I64(now - held) : NULL);
    ADD(o, "rpo", rpo ? I64(rpo) : NULL);
    ADD(o, "result", STR(failing ? "failed" : geti(j, "last_end") ? "ok" : "never"));
    copy_job_fields(o, j);
    json_object_array_add(replicas, o);
  }
  strings_free(&names);
  ADD(root, "time", I64(now));
  ADD(root, "breached", json_object_new_boolean(breached));
  ADD(root, "disks", disks);
  ADD(root, "replicas", replicas);
  ADD(root, "jobs", others);
out:
  for (size_t i = 0; i < n; i++)
    snapshot_free(snaps[i]);
  free(snaps);
  json_object_put(jobs);
  json_object_put(col.drills);
  return root;
}
