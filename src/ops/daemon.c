/* The daemon's loop: a self-pipe turns SIGCHLD, SIGHUP and SIGTERM into
 * events poll() sees next to the jobs' pipes; each turn reaps children,
 * starts the due jobs that may run, and sleeps until the next is due. */
#include "daemon.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "alert.h"
#include "core/host-status.h"
#include "core/repo.h"
#include "job.h"
#include "metrics-http.h"
#include "metrics.h"
#include "status.h"
#include "util/error.h"
#include "util/fileio.h"

static int sig_pipe[2] = {-1, -1};
static volatile sig_atomic_t got_term, got_hup;

static void on_signal(int sig)
{
  int saved = errno;
  if (sig == SIGTERM || sig == SIGINT)
    got_term = sig;
  else if (sig == SIGHUP)
    got_hup = 1;
  if (write(sig_pipe[1], "x", 1) == -1) {
    /* The pipe is full: a wake-up is already pending. */
  }
  errno = saved;
}

struct daemon {
  const struct ops_daemon_opts *o;
  struct ops_config *c;
  struct job_vec jobs;
  struct repo *repo;
  int log_json;
  char state_path[4096];
  struct alerts alerts;
  struct metrics_http *http; /* [metrics] listen */
  int64_t stop_deadline;     /* SIGTERM: SIGKILL what still runs after this */
};

static int64_t now_s(void)
{
  return (int64_t)time(NULL);
}

static void log_time(char *buf, size_t n)
{
  struct timespec ts;
  struct tm tm;
  clock_gettime(CLOCK_REALTIME, &ts);
  gmtime_r(&ts.tv_sec, &tm);
  size_t k = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf(buf + k, n - k, ".%03ldZ", ts.tv_nsec / 1000000);
}

/* One log line: event and job, then the fields (key, value pairs; a NULL
 * value is skipped). JSON with log-json, else key=value. */
static void log_line(struct daemon *d, const char *event, const struct job *j, ...)
{
  char t[40];
  va_list ap;
  log_time(t, sizeof t);
  struct json_object *o = json_object_new_object();
  json_object_object_add(o, "time", json_object_new_string(t));
  json_object_object_add(o, "event", json_object_new_string(event));
  if (j)
    json_object_object_add(o, "job", json_object_new_string(j->name));
  va_start(ap, j);
  for (const char *k; (k = va_arg(ap, const char *));) {
    const char *v = va_arg(ap, const char *);
    if (v)
      json_object_object_add(o, k, json_object_new_string(v));
  }
  va_end(ap);
  if (d->log_json) {
    fprintf(stderr, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
  } else {
    fprintf(stderr, "%s %s", t, event);
    json_object_object_foreach(o, key, val)
    {
      if (strcmp(key, "time") == 0 || strcmp(key, "event") == 0)
        continue;
      const char *s = json_object_get_string(val);
      fprintf(stderr, " %s=%s", key,
              strpbrk(s, " \"=\\") || !*s
                  ? json_object_to_json_string_ext(val, JSON_C_TO_STRING_PLAIN)
                  : s);
    }
    fputc('\n', stderr);
  }
  json_object_put(o);
}

static void child_line(void *opaque, const struct job *j, const char *text)
{
  log_line(opaque, "output", j, "line", text, (char *)NULL);
}

/* ---- state across restarts ---------------------------------------------- */

static void state_load(struct daemon *d)
{
  struct json_object *root = json_object_from_file(d->state_path), *jobs;
  if (!root)
    return; /* none yet (or unreadable: every job is due) */
  if (json_object_object_get_ex(root, "jobs", &jobs))
    for (size_t i = 0; i < d->jobs.len; i++) {
      struct job *j = &d->jobs.v[i];
      struct json_object *s, *v;
      if (!json_object_object_get_ex(jobs, j->name, &s))
        continue;
#define GET(field)                                                                                 \
  if (json_object_object_get_ex(s, #field, &v))                                                    \
  j->field = json_object_get_int64(v)
      GET(last_start);
      GET(last_end);
      GET(last_success);
      GET(failures);
      GET(runs_total);
      GET(failures_total);
      GET(cbt_fallbacks_total);
      GET(bytes_read_total);
      GET(bytes_new_total);
      GET(bytes_stored_total);
      GET(verify_slice);
      GET(next_run);
      GET(snap_time);
#undef GET
      if (json_object_object_get_ex(s, "error", &v))
        snprintf(j->last.error, sizeof j->last.error, "%s", json_object_get_string(v));
      if (json_object_object_get_ex(s, "snapshot", &v))
        snprintf(j->snapshot, sizeof j->snapshot, "%s", json_object_get_string(v));
      j->last.ok = j->last_end && j->last_success == j->last_end;
    }
  alerts_load(&d->alerts, root);
  json_object_put(root);
}

static void state_save(struct daemon *d)
{
  struct json_object *root = json_object_new_object(), *jobs = json_object_new_object();
  for (size_t i = 0; i < d->jobs.len; i++) {
    const struct job *j = &d->jobs.v[i];
    struct json_object *s = json_object_new_object();
#define PUT(field) json_object_object_add(s, #field, json_object_new_int64((int64_t)j->field))
    PUT(last_start);
    PUT(last_end);
    PUT(last_success);
    PUT(failures);
    PUT(runs_total);
    PUT(failures_total);
    PUT(cbt_fallbacks_total);
    PUT(bytes_read_total);
    PUT(bytes_new_total);
    PUT(bytes_stored_total);
    PUT(verify_slice);
    PUT(next_run);
    PUT(snap_time);
#undef PUT
    json_object_object_add(s, "error", json_object_new_string(j->last.error));
    json_object_object_add(s, "snapshot", json_object_new_string(j->snapshot));
    json_object_object_add(jobs, j->name, s);
  }
  json_object_object_add(root, "jobs", jobs);
  alerts_save(&d->alerts, root);
  const char *text = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY);
  if (write_file_atomic(AT_FDCWD, NULL, d->state_path, text, strlen(text), 0600, 0) == -1)
    log_line(d, "warning", NULL, "error", get_error(), (char *)NULL);
  json_object_put(root);
}

/* ---- reporting ------------------------------------------------------------ */

/* The daemon's open repository, opened on first use and again after a
 * failure or a reload; NULL with the error set while it cannot be opened. */
static struct repo *daemon_repo(struct daemon *d)
{
  if (!d->repo)
    d->repo = d->o->open_repo(d->o->opaque, d->c);
  return d->repo;
}

/* The text the metrics endpoint serves. */
static void publish_metrics(struct daemon *d, int64_t now)
{
  if (!d->http)
    return;
  char *text = metrics_text(d->c, &d->jobs, now);
  if (!text || metrics_http_set(d->http, text) == -1)
    log_line(d, "warning", NULL, "error", get_error(), (char *)NULL);
  free(text);
}

/* After every job: this host's status object, the metrics textfile, the
 * alerts. A failure of any of them is logged and never stops the jobs. */
static void report(struct daemon *d)
{
  int64_t now = now_s();
  alerts_evaluate(&d->alerts, d->c, &d->jobs, now);
  state_save(d);
  char *doc = host_status_doc(d->c, &d->jobs, now);
  if (!daemon_repo(d) || !doc ||
      repo_put_host_status(d->repo, d->c->host, doc, strlen(doc)) == -1) {
    log_line(d, "warning", NULL, "error", get_error(), "what", "status object not written",
             (char *)NULL);
    repo_free(d->repo); /* reopened next time: the repository may be back */
    d->repo = NULL;
  }
  free(doc);
  if (d->c->metrics_textfile && metrics_write_textfile(d->c, &d->jobs, now) == -1)
    log_line(d, "warning", NULL, "error", get_error(), (char *)NULL);
  publish_metrics(d, now);
}

/* ---- scheduling ----------------------------------------------------------- */

/* Two jobs on one disk never overlap; prune runs alone. */
static int may_start(const struct daemon *d, const struct job *j)
{
  unsigned busy = 0;
  for (size_t i = 0; i < d->jobs.len; i++) {
    const struct job *o = &d->jobs.v[i];
    if (!o->pid)
      continue;
    busy++;
    if (o->kind == JOB_PRUNE || j->kind == JOB_PRUNE)
      return 0;
    if (j->disk[0] && strcmp(o->disk, j->disk) == 0)
      return 0;
  }
  return busy < (d->c->max_jobs ? d->c->max_jobs : 1);
}

static void start_step(struct daemon *d, struct job *j)
{
  struct strings argv = {0};
  int n = job_step_argv(j, d->c, d->o->exe, &argv);
  if (n <= 0 || job_spawn(j, &argv) == -1) {
    snprintf(j->last.error, sizeof j->last.error, "%s", n == 0 ? "nothing to run" : get_error());
    j->last.ok = 0;
    j->pid = 0;
  }
  strings_free(&argv);
}

static void start_job(struct daemon *d, struct job *j, int64_t now)
{
  j->step = 0;
  j->last_start = now;
  clock_gettime(CLOCK_MONOTONIC, &j->started);
  memset(&j->last, 0, sizeof j->last);
  log_line(d, "start", j, (char *)NULL);
  start_step(d, j);
  if (!j->pid) {
    /* Could not even start: count it as a failed run. */
    j->last_end = now;
    j->failures++;
    j->failures_total++;
    j->runs_total++;
    j->next_run = now + d->c->retry_initial;
    log_line(d, "end", j, "result", "failed", "error", j->last.error, (char *)NULL);
    report(d);
  }
}

static int64_t retry_delay(const struct daemon *d, const struct job *j)
{
  int64_t delay = d->c->retry_initial;
  for (unsigned i = 1; i < j->failures && delay < j->every; i++)
    delay *= 2;
  return delay < j->every ? delay : j->every;
}

/* The time of the snapshot a replica holds now, from the repository. */
static int64_t held_time(struct daemon *d, const struct job *j)
{
  struct snapshot *s =
      daemon_repo(d) ? repo_find_snapshot(d->repo, j->disk, j->last.snapshot) : NULL;
  int64_t t = s ? s->time : j->snap_time;
  snapshot_free(s);
  return t;
}

static void finish_job(struct daemon *d, struct job *j, int status)
{
  int64_t now = now_s();
  int more = job_step_done(j, d->c, status);
  job_io_free(j);
  j->pid = 0;
  if (more && !got_term) {
    start_step(d, j);
    if (j->pid)
      return;
  }
  j->last_end = now;
  j->runs_total++;
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  j->last.seconds =
      (double)(t.tv_sec - j->started.tv_sec) + (double)(t.tv_nsec - j->started.tv_nsec) / 1e9;
  if (j->last.ok && j->last.snapshot[0])
    snprintf(j->snapshot, sizeof j->snapshot, "%s", j->last.snapshot);
  if (j->last.ok && j->kind == JOB_BACKUP)
    j->snap_time = j->last.snap_time;
  if (j->last.ok && j->kind == JOB_REPLICA)
    j->snap_time = held_time(d, j);
  const char *result = j->last.ok ? "ok" : "failed";
  if ((!j->last.ok && j->stop_signal) || (more && got_term)) {
    /* Stopped by our own SIGTERM: not a failure; due again at start. */
    j->last.ok = 0;
    result = "interrupted";
    j->last.error[0] = 0;
    snprintf(j->last.note, sizeof j->last.note, "interrupted: the daemon stopped");
    j->next_run = now;
  } else if (j->last.ok) {
    j->cycle = j->last;
    j->last_success = now;
    j->failures = 0;
    j->last.error[0] = 0;
    j->bytes_read_total += j->last.bytes_read;
    j->bytes_new_total += j->last.bytes_new;
    j->bytes_stored_total += j->last.bytes_stored;
    j->cbt_fallbacks_total += (uint64_t)j->last.cbt_fallback;
    if (j->kind == JOB_VERIFY && d->c->verify_read_data > 1)
      j->verify_slice = j->verify_slice % d->c->verify_read_data + 1;
    /* Missed runs run once: the next is a whole interval from this start. */
    j->next_run = j->last_start + j->every;
    if (j->next_run < now)
      j->next_run = now;
  } else {
    j->failures++;
    j->failures_total++;
    j->next_run = now + retry_delay(d, j);
  }
  char secs[32], rd[24], nw[24], st[24], wr[24], next[24];
  snprintf(secs, sizeof secs, "%.3f", j->last.seconds);
  snprintf(rd, sizeof rd, "%llu", (unsigned long long)j->last.bytes_read);
  snprintf(nw, sizeof nw, "%llu", (unsigned long long)j->last.bytes_new);
  snprintf(st, sizeof st, "%llu", (unsigned long long)j->last.bytes_stored);
  snprintf(wr, sizeof wr, "%llu", (unsigned long long)j->last.bytes_written);
  snprintf(next, sizeof next, "%lld", (long long)(j->next_run - now));
  int backup = j->kind == JOB_BACKUP, replica = j->kind == JOB_REPLICA;
  j->stop_signal = 0;
  log_line(d, "end", j, "result", result, "seconds", secs, "snapshot",
           j->last.snapshot[0] ? j->last.snapshot : NULL, "mode",
           backup && j->last.mode[0] ? j->last.mode : NULL, "bytes_read", backup ? rd : NULL,
           "bytes_new", backup ? nw : NULL, "bytes_uploaded", backup ? st : NULL, "bytes_written",
           replica ? wr : NULL, "note", j->last.note[0] ? j->last.note : NULL, "error",
           j->last.ok ? NULL : j->last.error, "next_in", next, (char *)NULL);
  report(d);
}

static void reap(struct daemon *d)
{
  int status;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
    for (size_t i = 0; i < d->jobs.len; i++) {
      struct job *j = &d->jobs.v[i];
      if (j->pid != pid)
        continue;
      job_read_output(j, child_line, d);
      finish_job(d, j, status);
      break;
    }
  }
  /* Drop the jobs a reload retired, once they have ended. */
  for (size_t i = 0; i < d->jobs.len;) {
    if (d->jobs.v[i].retired && !d->jobs.v[i].pid) {
      job_io_free(&d->jobs.v[i]);
      d->jobs.v[i] = d->jobs.v[--d->jobs.len];
    } else {
      i++;
    }
  }
}

/* ---- config and reload ---------------------------------------------------- */

int ops_config_export_env(const struct ops_config *c)
{
  struct {
    const char *name, *value;
  } vars[] = {
      {"PILOTLIGHT_REPOSITORY", c->location},
      {"PILOTLIGHT_PASSWORD_FILE", c->password_file},
      {"PILOTLIGHT_PASSWORD_COMMAND", c->password_command},
      {"AWS_PROFILE", c->aws_profile},
      {"AWS_SHARED_CREDENTIALS_FILE", c->aws_credentials_file},
      {"AWS_CONFIG_FILE", c->aws_config_file},
      {"PILOTLIGHT_CACHE_DIR", c->cache_dir},
      {"PILOTLIGHT_LIMIT_UPLOAD", c->limit_upload},
      {"PILOTLIGHT_LIMIT_DOWNLOAD", c->limit_download},
  };
  for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
    /* The config's value wins; without one the daemon's own environment
     * (say, a systemd EnvironmentFile) stays as it is. */
    if (vars[i].value && setenv(vars[i].name, vars[i].value, 1) == -1) {
      set_error(errno, "setenv %s", vars[i].name);
      return -1;
    }
  }
  /* A password given in the file wins over one in the environment. */
  if (c->password_file)
    unsetenv("PILOTLIGHT_PASSWORD_COMMAND");
  if (c->password_command)
    unsetenv("PILOTLIGHT_PASSWORD_FILE");
  return 0;
}

static int set_config(struct daemon *d, struct ops_config *c)
{
  struct job_vec jobs = {0};
  if (jobs_from_config(c, &jobs) == -1 || ops_config_export_env(c) == -1) {
    for (size_t i = 0; i < jobs.len; i++)
      job_io_free(&jobs.v[i]);
    vec_free(&jobs);
    return -1;
  }
  /* Jobs that stay keep their state and their running child. */
  for (size_t i = 0; i < jobs.len; i++)
    for (size_t k = 0; k < d->jobs.len; k++) {
      struct job *old = &d->jobs.v[k];
      if (old->retired || strcmp(old->name, jobs.v[i].name) != 0)
        continue;
      int64_t every = jobs.v[i].every, rpo = jobs.v[i].rpo;
      job_io_free(&jobs.v[i]);
      jobs.v[i] = *old;
      if (every != old->every && !old->pid && old->last_end)
        jobs.v[i].next_run = old->last_start + every;
      jobs.v[i].every = every;
      jobs.v[i].rpo = rpo;
      old->name[0] = 0; /* moved */
      break;
    }
  for (size_t k = 0; k < d->jobs.len; k++) {
    struct job *old = &d->jobs.v[k];
    if (!old->name[0])
      continue;
    if (old->pid) {
      old->retired = 1;
      if (vec_push(&jobs, *old) == -1)
        return -1;
    } else {
      job_io_free(old);
    }
  }
  vec_free(&d->jobs);
  d->jobs = jobs;
  ops_config_free(d->c);
  d->c = c;
  /* The repository may have moved: open it again from the new config. */
  repo_free(d->repo);
  d->repo = NULL;
  d->log_json = d->o->log_json || c->log_json;
  snprintf(d->state_path, sizeof d->state_path, "%s/state-%s.json", c->state_dir, c->host);
  return 0;
}

static void reload(struct daemon *d)
{
  struct ops_config *c = ops_config_load(d->o->config_path);
  if (!c) {
    log_line(d, "reload", NULL, "result", "failed", "error", get_error(), "what",
             "kept the running config", (char *)NULL);
    return;
  }
  if (set_config(d, c) == -1) {
    log_line(d, "reload", NULL, "result", "failed", "error", get_error(), (char *)NULL);
    ops_config_free(c);
    return;
  }
  log_line(d, "reload", NULL, "result", "ok", "config", d->c->path, (char *)NULL);
  report(d);
}

/* ---- the loop ------------------------------------------------------------- */

static int install_signals(void)
{
  if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) == -1) {
    set_error(errno, "pipe");
    return -1;
  }
  struct sigaction sa = {.sa_handler = on_signal};
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGCHLD};
  for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++)
    if (sigaction(sigs[i], &sa, NULL) == -1) {
      set_error(errno, "sigaction");
      return -1;
    }
  signal(SIGPIPE, SIG_IGN);
  return 0;
}

static int running(const struct daemon *d)
{
  int n = 0;
  for (size_t i = 0; i < d->jobs.len; i++)
    n += d->jobs.v[i].pid != 0;
  return n;
}

static void stop_jobs(struct daemon *d, int sig)
{
  for (size_t i = 0; i < d->jobs.len; i++)
    if (d->jobs.v[i].pid && d->jobs.v[i].stop_signal != sig) {
      kill(-d->jobs.v[i].pid, sig);
      d->jobs.v[i].stop_signal = sig;
    }
}

int ops_daemon_run(const struct ops_daemon_opts *o)
{
  struct daemon d = {.o = o};
  int ret = 1, any_failed = 0;
  struct ops_config *c = ops_config_load(o->config_path);
  if (!c) {
    fprintf(stderr, "pilotlight: %s\n", get_error());
    return 1;
  }
  if (set_config(&d, c) == -1) {
    fprintf(stderr, "pilotlight: %s\n", get_error());
    ops_config_free(c);
    return 1;
  }
  if (o->check) {
    printf("%s: OK, host %s, repository %s\n", d.c->path, d.c->host, d.c->location);
    for (size_t i = 0; i < d.jobs.len; i++)
      printf("  %-24s every %llds%s\n", d.jobs.v[i].name, (long long)d.jobs.v[i].every,
             d.jobs.v[i].rpo ? " (objective set)" : "");
    ret = 0;
    goto out;
  }
  if (mkdir(d.c->state_dir, 0700) == -1 && errno != EEXIST) {
    fprintf(stderr,
            "pilotlight: cannot create the state folder %s: %s (set state-dir in [daemon])\n",
            d.c->state_dir, strerror(errno));
    goto out;
  }
  if (install_signals() == -1) {
    fprintf(stderr, "pilotlight: %s\n", get_error());
    goto out;
  }
  if (d.c->metrics_listen && !o->once && !(d.http = metrics_http_start(d.c->metrics_listen))) {
    fprintf(stderr, "pilotlight: %s\n", get_error());
    goto out;
  }
  state_load(&d);
  publish_metrics(&d, now_s());
  if (!daemon_repo(&d))
    log_line(&d, "warning", NULL, "error", get_error(), "what",
             "repository not reachable; jobs will retry", (char *)NULL);
  char njobs[16];
  snprintf(njobs, sizeof njobs, "%zu", d.jobs.len);
  log_line(&d, "ready", NULL, "config", d.c->path, "host", d.c->host, "jobs", njobs, "mode",
           o->once ? "once" : "daemon", (char *)NULL);
  uint64_t watchdog_us = 0;
  if (!o->once) {
    sd_notify(0, "READY=1\nSTATUS=running");
    if (sd_watchdog_enabled(0, &watchdog_us) <= 0)
      watchdog_us = 0;
  }
  /* With once: every job due now runs once; none is started twice. */
  int64_t once_cutoff = now_s(), last_eval = once_cutoff;
  for (;;) {
    int64_t now = now_s();
    if (got_hup) {
      got_hup = 0;
      if (!o->once)
        reload(&d);
    }
    if (got_term && !d.stop_deadline) {
      log_line(&d, "stopping", NULL, "signal", got_term == SIGINT ? "SIGINT" : "SIGTERM",
               (char *)NULL);
      sd_notify(0, "STOPPING=1");
      d.stop_deadline = now + d.c->stop_timeout;
      stop_jobs(&d, SIGTERM);
    }
    if (d.stop_deadline && now >= d.stop_deadline)
      stop_jobs(&d, SIGKILL);
    reap(&d);
    /* Objectives breach with time alone, between jobs too. */
    if (now - last_eval >= 10) {
      if (alerts_evaluate(&d.alerts, d.c, &d.jobs, now))
        state_save(&d);
      last_eval = now;
    }
    int64_t wake = now + 10;
    int pending = 0;
    for (size_t i = 0; i < d.jobs.len && !got_term; i++) {
      struct job *j = &d.jobs.v[i];
      if (j->pid || j->retired)
        continue;
      if (o->once && j->last_start >= once_cutoff)
        continue; /* ran in this pass */
      if (j->next_run <= now) {
        if (may_start(&d, j))
          start_job(&d, j, now);
        if (!j->pid && j->last_start < once_cutoff)
          pending = 1; /* waits for a slot */
      } else if (j->next_run < wake) {
        wake = j->next_run;
      }
    }
    if (o->once && !pending && !running(&d))
      break;
    if (got_term && !running(&d))
      break;
    /* Sleep until a job is due, a child writes or ends, or a signal. */
    struct pollfd fds[1 + 2 * 64];
    struct job *owner[1 + 2 * 64];
    nfds_t n = 0;
    fds[n++] = (struct pollfd){.fd = sig_pipe[0], .events = POLLIN};
    for (size_t i = 0; i < d.jobs.len && n + 2 <= sizeof fds / sizeof *fds; i++) {
      struct job *j = &d.jobs.v[i];
      if (j->out_fd != -1) {
        owner[n] = j;
        fds[n++] = (struct pollfd){.fd = j->out_fd, .events = POLLIN};
      }
      if (j->err_fd != -1) {
        owner[n] = j;
        fds[n++] = (struct pollfd){.fd = j->err_fd, .events = POLLIN};
      }
    }
    int64_t ms = (wake - now_s()) * 1000;
    if (pending || ms < 0)
      ms = 1000;
    if (d.stop_deadline)
      ms = 500;
    if (watchdog_us && ms > (int64_t)(watchdog_us / 2000))
      ms = (int64_t)(watchdog_us / 2000);
    if (ms > 60000)
      ms = 60000;
    int rc = poll(fds, n, (int)ms);
    if (watchdog_us)
      sd_notify(0, "WATCHDOG=1");
    if (rc > 0) {
      char buf[64];
      if (fds[0].revents && read(sig_pipe[0], buf, sizeof buf) < 0 && errno != EAGAIN)
        break;
      for (nfds_t i = 1; i < n; i++)
        if (fds[i].revents)
          job_read_output(owner[i], child_line, &d);
    }
  }
  for (size_t i = 0; i < d.jobs.len; i++)
    if (o->once && d.jobs.v[i].last_start >= once_cutoff && !d.jobs.v[i].last.ok)
      any_failed = 1;
  log_line(&d, "stopped", NULL, (char *)NULL);
  ret = o->once && any_failed ? 1 : 0;
out:
  for (size_t i = 0; i < d.jobs.len; i++)
    job_io_free(&d.jobs.v[i]);
  vec_free(&d.jobs);
  alerts_free(&d.alerts);
  metrics_http_free(d.http);
  repo_free(d.repo);
  ops_config_free(d.c);
  return ret;
}
