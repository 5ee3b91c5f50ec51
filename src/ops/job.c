/* Jobs as child processes: the command line of each job kind, the pipes,
 * and the --json result each command prints (parsed with json-c). */
#include "job.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/error.h"

/* A command's stdout: a --json document is small; a cap keeps a runaway
 * child from eating the daemon's memory. */
#define JOB_OUT_MAX (4u << 20)

static int add_job(struct job_vec *out, enum job_kind kind, const char *disk, const char *target,
                   int64_t every, int64_t rpo)
{
  struct job j = {.kind = kind, .every = every, .rpo = rpo, .pid = 0, .out_fd = -1, .err_fd = -1};
  static const char *const kinds[] = {"backup", "replica", "verify", "prune", "drill"};
  snprintf(j.disk, sizeof j.disk, "%s", disk ? disk : "");
  snprintf(j.target, sizeof j.target, "%s", target ? target : "");
  if (kind == JOB_REPLICA)
    snprintf(j.name, sizeof j.name, "replica %s", target);
  else if (disk)
    snprintf(j.name, sizeof j.name, "%s %s", kinds[kind], disk);
  else
    snprintf(j.name, sizeof j.name, "%s", kinds[kind]);
  strbuf_init(&j.out, JOB_OUT_MAX, "a job's output");
  j.verify_slice = 1;
  return vec_push(out, j);
}

int jobs_from_config(const struct ops_config *c, struct job_vec *out)
{
  for (size_t i = 0; i < c->disks.len; i++) {
    const struct ops_disk *d = &c->disks.v[i];
    if (d->every && add_job(out, JOB_BACKUP, d->name, NULL, d->every, d->rpo) == -1)
      return -1;
  }
  for (size_t i = 0; i < c->replicas.len; i++) {
    const struct ops_replica *r = &c->replicas.v[i];
    if (add_job(out, JOB_REPLICA, r->disk, r->name, r->every, r->rpo) == -1)
      return -1;
  }
  for (size_t i = 0; i < c->disks.len; i++) {
    const struct ops_disk *d = &c->disks.v[i];
    if (d->drill_every && add_job(out, JOB_DRILL, d->name, NULL, d->drill_every, 0) == -1)
      return -1;
  }
  if (c->verify_every && add_job(out, JOB_VERIFY, NULL, NULL, c->verify_every, 0) == -1)
    return -1;
  if (c->prune_every && add_job(out, JOB_PRUNE, NULL, NULL, c->prune_every, 0) == -1)
    return -1;
  return 0;
}

static int push(struct strings *a, const char *s)
{
  if (vec_reserve(a, 1) == -1 || !(a->v[a->len] = strdup(s))) {
    set_error(ENOMEM, "building a job's command");
    return -1;
  }
  a->len++;
  return 0;
}

static int push_opt(struct strings *a, const char *opt, const char *val)
{
  return !val ? 0 : push(a, opt) == -1 ? -1 : push(a, val);
}

static int push_uint(struct strings *a, const char *opt, unsigned v)
{
  char buf[16];
  snprintf(buf, sizeof buf, "%u", v);
  return v ? push_opt(a, opt, buf) : 0;
}

static int has_retention(const struct ops_disk *d)
{
  return d->keep_last || d->keep_hourly || d->keep_daily || d->keep_weekly || d->keep_monthly ||
         d->keep_yearly || d->keep_within;
}

/* The disks with a retention policy, in config order: prune's steps. */
static const struct ops_disk *retention_disk(const struct ops_config *c, int n)
{
  for (size_t i = 0; i < c->disks.len; i++)
    if (has_retention(&c->disks.v[i]) && n-- == 0)
      return &c->disks.v[i];
  return NULL;
}

static int backup_argv(const struct ops_disk *d, struct strings *a)
{
  if (push(a, "backup") == -1 || push_opt(a, "--disk", d->name) == -1 || push(a, "--json") == -1 ||
      push_opt(a, "--cbt", d->cbt) == -1 || push_opt(a, "--cbt-next", d->cbt_next) == -1 ||
      push_opt(a, "--qcow2", d->qcow2) == -1 || push_opt(a, "--qmp", d->qmp) == -1 ||
      push_opt(a, "--node", d->node) == -1 ||
      push_opt(a, "--changed-extents", d->changed_extents) == -1 ||
      push_opt(a, "--block-size", d->block_size) == -1 ||
      push_uint(a, "--threads", d->threads) == -1)
    return -1;
  /* "--" so that a source named like an option stays a source. */
  return d->source ? (push(a, "--") == -1 ? -1 : push(a, d->source)) : 0;
}

int job_step_argv(const struct job *j, const struct ops_config *c, const char *exe,
                  struct strings *out)
{
  struct strings a = {0};
  if (push(&a, exe) == -1)
    goto fail;
  switch (j->kind) {
  case JOB_BACKUP: {
    const struct ops_disk *d = j->step ? NULL : ops_config_disk(c, j->disk);
    if (!d)
      goto none;
    if (backup_argv(d, &a) == -1)
      goto fail;
    break;
  }
  case JOB_REPLICA: {
    const struct ops_replica *r = NULL;
    for (size_t i = 0; i < c->replicas.len && !j->step; i++)
      if (strcmp(c->replicas.v[i].name, j->target) == 0)
        r = &c->replicas.v[i];
    if (!r)
      goto none;
    if (push(&a, "replica") == -1 || push(&a, "sync") == -1 ||
        push_opt(&a, "--disk", r->disk) == -1 || push(&a, "--json") == -1 ||
        push_opt(&a, "--state-dir", r->state_dir) == -1 ||
        push_uint(&a, "--threads", r->threads) == -1 || (r->verify && push(&a, "--verify") == -1) ||
        push(&a, "--") == -1 || push(&a, r->target) == -1)
      goto fail;
    break;
  }
  case JOB_VERIFY: {
    if (j->step)
      goto none;
    char subset[32];
    snprintf(subset, sizeof subset, "%u/%u", j->verify_slice, c->verify_read_data);
    if (push(&a, "verify") == -1 || push(&a, "--json") == -1 ||
        (c->verify_read_data == 1 && push(&a, "--read-data") == -1) ||
        (c->verify_read_data > 1 && push_opt(&a, "--read-data-subset", subset) == -1))
      goto fail;
    break;
  }
  case JOB_DRILL: {
    const struct ops_disk *d = j->step ? NULL : ops_config_disk(c, j->disk);
    if (!d || !d->drill_every)
      goto none;
    char timeout[32];
    snprintf(timeout, sizeof timeout, "%llds", (long long)d->drill_timeout);
    if (push(&a, "drill") == -1 || push_opt(&a, "--disk", d->name) == -1 ||
        push(&a, "--json") == -1 ||
        (d->drill_expect &&
         (push(&a, "--boot") == -1 || push_opt(&a, "--expect", d->drill_expect) == -1)) ||
        push_uint(&a, "--port", d->drill_port) == -1 ||
        (d->drill_timeout && push_opt(&a, "--timeout", timeout) == -1) ||
        push_opt(&a, "--device", d->drill_device) == -1 ||
        push_opt(&a, "--nic", d->drill_nic) == -1 ||
        push_uint(&a, "--memory", d->drill_memory) == -1)
      goto fail;
    break;
  }
  case JOB_PRUNE: {
    const struct ops_disk *d = retention_disk(c, j->step);
    if (d) {
      if (push(&a, "forget") == -1 || push_opt(&a, "--disk", d->name) == -1 ||
          push(&a, "--json") == -1 || push_uint(&a, "--keep-last", d->keep_last) == -1 ||
          push_uint(&a, "--keep-hourly", d->keep_hourly) == -1 ||
          push_uint(&a, "--keep-daily", d->keep_daily) == -1 ||
          push_uint(&a, "--keep-weekly", d->keep_weekly) == -1 ||
          push_uint(&a, "--keep-monthly", d->keep_monthly) == -1 ||
          push_uint(&a, "--keep-yearly", d->keep_yearly) == -1 ||
          push_opt(&a, "--keep-within", d->keep_within) == -1)
        goto fail;
      break;
    }
    int forgets = 0;
    while (retention_disk(c, forgets))
      forgets++;
    if (j->step > forgets)
      goto none;
    char grace[32];
    snprintf(grace, sizeof grace, "%llds", (long long)c->prune_grace);
    if (push(&a, "prune") == -1 || push(&a, "--json") == -1 ||
        push_opt(&a, "--max-unused", c->prune_max_unused) == -1 ||
        (c->prune_grace >= 0 && push_opt(&a, "--grace", grace) == -1))
      goto fail;
    break;
  }
  }
  if (vec_push(&a, NULL) == -1) {
    set_error(ENOMEM, "building a job's command");
    goto fail;
  }
  *out = a;
  return (int)a.len - 1;
none:
  strings_free(&a);
  return 0;
fail:
  strings_free(&a);
  return -1;
}

void job_child_setup(void)
{
  /* Its own process group: a terminal's ^C goes to the daemon, which
   * decides how the child stops. exec resets the daemon's handlers, not
   * what it ignores or blocks. */
  setpgid(0, 0);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  signal(SIGPIPE, SIG_DFL);
}

int job_spawn(struct job *j, struct strings *argv)
{
  int out[2] = {-1, -1}, err[2] = {-1, -1};
  if (pipe2(out, O_CLOEXEC) == -1 || pipe2(err, O_CLOEXEC) == -1) {
    set_error(errno, "%s: pipe", j->name);
    goto fail;
  }
  pid_t pid = fork();
  if (pid == -1) {
    set_error(errno, "%s: fork", j->name);
    goto fail;
  }
  if (pid == 0) {
    job_child_setup();
    int devnull = open("/dev/null", O_RDONLY);
    if (devnull == -1 || dup2(devnull, 0) == -1 || dup2(out[1], 1) == -1 || dup2(err[1], 2) == -1)
      _exit(127);
    execv(argv->v[0], argv->v);
    dprintf(2, "pilotlight: cannot run %s: %s\n", argv->v[0], strerror(errno));
    _exit(127);
  }
  setpgid(pid, pid); /* both sides, so no signal comes before it is set */
  close(out[1]);
  close(err[1]);
  fcntl(out[0], F_SETFL, O_NONBLOCK);
  fcntl(err[0], F_SETFL, O_NONBLOCK);
  j->pid = pid;
  j->out_fd = out[0];
  j->err_fd = err[0];
  j->errlen = 0;
  j->lasterr[0] = 0;
  strbuf_free(&j->out);
  return 0;
fail:
  for (int i = 0; i < 2; i++) {
    if (out[i] != -1)
      close(out[i]);
    if (err[i] != -1)
      close(err[i]);
  }
  return -1;
}

static void err_line(struct job *j, void (*line)(void *, const struct job *, const char *),
                     void *opaque)
{
  j->errline[j->errlen] = 0;
  if (j->errlen) {
    if (strncmp(j->errline, "pilotlight: ", 12) == 0)
      snprintf(j->lasterr, sizeof j->lasterr, "%s", j->errline + 12);
    line(opaque, j, j->errline);
  }
  j->errlen = 0;
}

void job_read_output(struct job *j,
                     void (*line)(void *opaque, const struct job *j, const char *text),
                     void *opaque)
{
  char buf[8192];
  ssize_t n;
  while (j->out_fd != -1 && (n = read(j->out_fd, buf, sizeof buf)) != 0) {
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno != EAGAIN)
        n = 0;
      else
        break;
    }
    if (n == 0) {
      close(j->out_fd);
      j->out_fd = -1;
      break;
    }
    strbuf_append(&j->out, buf, (size_t)n); /* past the cap: reported at the end */
  }
  while (j->err_fd != -1 && (n = read(j->err_fd, buf, sizeof buf)) != 0) {
    if (n < 0) {
      if (errno == EINTR)
        continue;
      if (errno == EAGAIN)
        break;
      n = 0;
    }
    if (n == 0) {
      err_line(j, line, opaque);
      close(j->err_fd);
      j->err_fd = -1;
      break;
    }
    for (ssize_t i = 0; i < n; i++) {
      /* A progress line redrawn with \r is one line per redraw. */
      if (buf[i] == '\n' || buf[i] == '\r' || j->errlen + 1 >= sizeof j->errline)
        err_line(j, line, opaque);
      if (buf[i] != '\n' && buf[i] != '\r')
        j->errline[j->errlen++] = buf[i];
    }
  }
}

static const char *jstr(struct json_object *o, const char *key)
{
  struct json_object *v;
  if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
    return "";
  return json_object_get_string(v);
}

static uint64_t juint(struct json_object *o, const char *key)
{
  struct json_object *v;
  if (!json_object_object_get_ex(o, key, &v))
    return 0;
  int64_t x = json_object_get_int64(v);
  return x < 0 ? 0 : (uint64_t)x;
}

static double jdouble(struct json_object *o, const char *key)
{
  struct json_object *v;
  return json_object_object_get_ex(o, key, &v) ? json_object_get_double(v) : 0;
}

/* The last JSON document on the child's stdout (replica prints one per
 * sync; forget prints one over several lines). */
static struct json_object *last_json(struct job *j)
{
  size_t len;
  char *text = strbuf_take(&j->out, &len);
  struct json_object *last = NULL;
  struct json_tokener *tok = json_tokener_new();
  size_t off = 0;
  while (text && tok && off < len) {
    while (off < len && (text[off] == '\n' || text[off] == ' ' || text[off] == '\r'))
      off++;
    if (off == len)
      break;
    json_tokener_reset(tok);
    struct json_object *o = json_tokener_parse_ex(tok, text + off, (int)(len - off));
    if (!o)
      break; /* not JSON (or cut short): keep what was read before */
    json_object_put(last);
    last = o;
    off += json_tokener_get_parse_end(tok);
  }
  json_tokener_free(tok);
  free(text);
  return last;
}

int job_step_done(struct job *j, const struct ops_config *c, int status)
{
  struct job_outcome *out = &j->last;
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  struct json_object *o = last_json(j);
  out->exit_status = code;
  if (code == 0 && !o) {
    code = -1;
    snprintf(out->error, sizeof out->error, "%s printed no JSON result", j->name);
  } else if (code != 0) {
    if (j->lasterr[0])
      snprintf(out->error, sizeof out->error, "%s", j->lasterr);
    else if (WIFSIGNALED(status))
      snprintf(out->error, sizeof out->error, "killed by signal %d", WTERMSIG(status));
    else
      snprintf(out->error, sizeof out->error, "exit status %d", code);
  }
  if (o && j->kind == JOB_BACKUP) {
    const struct ops_disk *d = ops_config_disk(c, j->disk);
    snprintf(out->snapshot, sizeof out->snapshot, "%s", jstr(o, "id"));
    snprintf(out->mode, sizeof out->mode, "%s", jstr(o, "mode"));
    snprintf(out->note, sizeof out->note, "%s", jstr(o, "note"));
    out->snap_time = (int64_t)juint(o, "time");
    out->bytes_read = juint(o, "bytes_read");
    out->bytes_new = juint(o, "bytes_new");
    out->bytes_stored = juint(o, "bytes_stored");
    /* CBT asked for, a parent to continue from, and still not used. */
    int tracked = d && (d->cbt || d->qcow2 || d->qmp || d->changed_extents);
    out->cbt_fallback = tracked && jstr(o, "parent")[0] && strcmp(out->mode, "cbt") != 0 &&
                        strcmp(out->mode, "changed-extents") != 0;
  } else if (o && j->kind == JOB_REPLICA) {
    snprintf(out->snapshot, sizeof out->snapshot, "%s", jstr(o, "snapshot"));
    out->bytes_written = juint(o, "bytes_written");
  } else if (o && j->kind == JOB_VERIFY) {
    out->damaged = (unsigned)juint(o, "damaged");
  } else if (o && j->kind == JOB_DRILL) {
    snprintf(out->snapshot, sizeof out->snapshot, "%s", jstr(o, "snapshot"));
    out->rto = jdouble(o, "rto_seconds");
    out->first_byte = jdouble(o, "first_byte_seconds");
    if (code != 0 && jstr(o, "error")[0])
      snprintf(out->error, sizeof out->error, "%s", jstr(o, "error"));
  }
  json_object_put(o);
  out->ok = code == 0;
  if (code != 0)
    return 0;
  j->step++;
  struct strings next = {0};
  int more = job_step_argv(j, c, "x", &next);
  strings_free(&next);
  return more > 0;
}

void job_io_free(struct job *j)
{
  if (j->out_fd != -1)
    close(j->out_fd);
  if (j->err_fd != -1)
    close(j->err_fd);
  j->out_fd = j->err_fd = -1;
  strbuf_free(&j->out);
}
