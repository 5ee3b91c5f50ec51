/* Incidents and their delivery. A condition is judged from the jobs' state
 * each time the daemon reports; an incident opens when its condition first
 * holds and resolves when it no longer does, so a job failing ten times in
 * a row is one alert, and its recovery one more. */
#include "alert.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "metrics.h"
#include "util/error.h"

static struct incident *find(struct alerts *a, const char *kind, const char *job)
{
  for (size_t i = 0; i < a->open.len; i++)
    if (strcmp(a->open.v[i].kind, kind) == 0 && strcmp(a->open.v[i].job, job) == 0)
      return &a->open.v[i];
  return NULL;
}

static char *alert_doc(const struct ops_config *c, const struct incident *in, const char *state,
                       int64_t now)
{
  struct json_object *o = json_object_new_object();
  json_object_object_add(o, "state", json_object_new_string(state));
  json_object_object_add(o, "kind", json_object_new_string(in->kind));
  json_object_object_add(o, "job", json_object_new_string(in->job));
  json_object_object_add(o, "disk", json_object_new_string(in->disk));
  json_object_object_add(o, "host", json_object_new_string(c->host));
  json_object_object_add(o, "repository", json_object_new_string(c->location));
  json_object_object_add(o, "since", json_object_new_int64(in->since));
  json_object_object_add(o, "time", json_object_new_int64(now));
  json_object_object_add(o, "message", json_object_new_string(in->message));
  char *out = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
  json_object_put(o);
  return out;
}

/* Run the hook with doc on stdin; kill it (its whole process group) after
 * the timeout. */
static void run_hook(const struct ops_config *c, const struct incident *in, const char *state,
                     const char *doc)
{
  int in_pipe[2];
  if (pipe2(in_pipe, O_CLOEXEC) == -1) {
    fprintf(stderr, "pilotlight: alert hook: pipe: %s\n", strerror(errno));
    return;
  }
  pid_t pid = fork();
  if (pid == 0) {
    job_child_setup();
    dup2(in_pipe[0], 0);
    setenv("PILOTLIGHT_ALERT_STATE", state, 1);
    setenv("PILOTLIGHT_ALERT_KIND", in->kind, 1);
    setenv("PILOTLIGHT_ALERT_JOB", in->job, 1);
    setenv("PILOTLIGHT_ALERT_DISK", in->disk, 1);
    setenv("PILOTLIGHT_ALERT_HOST", c->host, 1);
    execl("/bin/sh", "sh", "-c", c->alert_command, (char *)NULL);
    _exit(127);
  }
  close(in_pipe[0]);
  if (pid == -1) {
    close(in_pipe[1]);
    fprintf(stderr, "pilotlight: alert hook: fork: %s\n", strerror(errno));
    return;
  }
  setpgid(pid, pid);
  /* The document is small: one write fits a pipe's buffer. A hook that
   * does not read it gets EOF-free stdin closed under it, harmlessly. */
  if (write(in_pipe[1], doc, strlen(doc)) < 0 || write(in_pipe[1], "\n", 1) < 0) {
    /* The hook exited without reading: its exit status says the rest. */
  }
  close(in_pipe[1]);
  struct timespec t0, t;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  int status = 0;
  for (;;) {
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid)
      break;
    clock_gettime(CLOCK_MONOTONIC, &t);
    if (t.tv_sec - t0.tv_sec >= c->alert_timeout) {
      kill(-pid, SIGKILL);
      waitpid(pid, &status, 0);
      fprintf(stderr, "pilotlight: alert hook '%s' ran longer than %llds and was killed\n",
              c->alert_command, (long long)c->alert_timeout);
      return;
    }
    poll(NULL, 0, 50);
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    fprintf(stderr, "pilotlight: alert hook '%s' failed (status %d)\n", c->alert_command,
            WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}

static size_t discard(char *p, size_t size, size_t n, void *opaque)
{
  (void)p;
  (void)opaque;
  return size * n;
}

/* POST doc, retried twice with back-off; TLS is verified (libcurl's
 * default, never turned off). */
static void post_webhook(const struct ops_config *c, const char *doc)
{
  CURL *h = curl_easy_init();
  struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
  long code = 0;
  CURLcode rc = CURLE_FAILED_INIT;
  for (int attempt = 0; h && hdr && attempt < 3; attempt++) {
    if (attempt)
      sleep((unsigned)attempt);
    curl_easy_setopt(h, CURLOPT_URL, c->alert_webhook);
    curl_easy_setopt(h, CURLOPT_POSTFIELDS, doc);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)c->alert_timeout);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    rc = curl_easy_perform(h);
    code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    if (rc == CURLE_OK && code >= 200 && code < 300)
      break;
  }
  if (rc != CURLE_OK || code < 200 || code >= 300)
    fprintf(stderr, "pilotlight: alert webhook %s failed after 3 attempts: %s\n", c->alert_webhook,
            rc != CURLE_OK ? curl_easy_strerror(rc)
            : code         ? "HTTP error status"
                           : "no reply");
  curl_slist_free_all(hdr);
  curl_easy_cleanup(h);
}

static void send_alert(const struct ops_config *c, const struct incident *in, const char *state,
                       int64_t now)
{
  char *doc = alert_doc(c, in, state, now);
  if (!doc)
    return;
  fprintf(stderr, "pilotlight: alert %s: %s %s: %s\n", state, in->kind, in->job, in->message);
  if (c->alert_command)
    run_hook(c, in, state, doc);
  if (c->alert_webhook)
    post_webhook(c, doc);
  free(doc);
}

/* The condition of kind on j, with its message in msg; 0 if it does not
 * hold. */
static int condition(const char *kind, const struct job *j, int64_t now, char *msg, size_t n)
{
  if (strcmp(kind, "job-failure") == 0 || strcmp(kind, "replica-failure") == 0 ||
      strcmp(kind, "drill-failure") == 0) {
    enum job_kind want = strcmp(kind, "replica-failure") == 0 ? JOB_REPLICA
                         : strcmp(kind, "drill-failure") == 0 ? JOB_DRILL
                                                              : JOB_BACKUP;
    int mine =
        want == JOB_BACKUP ? j->kind != JOB_REPLICA && j->kind != JOB_DRILL : j->kind == want;
    if (!mine || !j->failures)
      return 0;
    snprintf(msg, n, "%s failed %u time(s) in a row: %.300s", j->name, j->failures, j->last.error);
    return 1;
  }
  if (strcmp(kind, "rpo-breach") == 0) {
    if (!j->rpo || (j->kind != JOB_BACKUP && j->kind != JOB_REPLICA) || !j->snap_time ||
        now - j->snap_time <= j->rpo)
      return 0;
    snprintf(msg, n, "%s: the %s snapshot is %llds old, past the %llds objective", j->name,
             j->kind == JOB_BACKUP ? "newest" : "replicated", (long long)(now - j->snap_time),
             (long long)j->rpo);
    return 1;
  }
  if (strcmp(kind, "predicted-breach") == 0) {
    int64_t at = metrics_predicted_breach(j, now);
    if (!at || now - j->snap_time > j->rpo)
      return 0; /* none, or already breached */
    snprintf(msg, n,
             "%s: at the last cycle's pace the next snapshot lands after %lld, when the "
             "objective is breached",
             j->name, (long long)at);
    return 1;
  }
  if (strcmp(kind, "cbt-fallback") == 0) {
    if (j->kind != JOB_BACKUP || !j->last.cbt_fallback || j->failures)
      return 0;
    snprintf(msg, n, "%s read the whole disk instead of using changed-block tracking: %.200s",
             j->name, j->last.note);
    return 1;
  }
  if (strcmp(kind, "verify-damage") == 0) {
    if (j->kind != JOB_VERIFY || !j->last.damaged)
      return 0;
    snprintf(msg, n, "verify found %u problem(s): run pilotlight verify, then repair",
             j->last.damaged);
    return 1;
  }
  return 0;
}

int alerts_evaluate(struct alerts *a, const struct ops_config *c, const struct job_vec *jobs,
                    int64_t now)
{
  static const char *const kinds[] = {"job-failure",  "replica-failure",  "drill-failure",
                                      "rpo-breach",   "predicted-breach", "cbt-fallback",
                                      "verify-damage"};
  int sent = 0;
  for (size_t i = 0; i < jobs->len; i++) {
    const struct job *j = &jobs->v[i];
    if (j->retired)
      continue;
    for (size_t k = 0; k < sizeof kinds / sizeof *kinds; k++) {
      struct incident in = {0};
      int holds = condition(kinds[k], j, now, in.message, sizeof in.message);
      struct incident *open = find(a, kinds[k], j->name);
      if (holds && !open) {
        snprintf(in.kind, sizeof in.kind, "%s", kinds[k]);
        snprintf(in.job, sizeof in.job, "%s", j->name);
        snprintf(in.disk, sizeof in.disk, "%s", j->disk);
        in.since = now;
        if (vec_push(&a->open, in) == -1)
          continue;
        send_alert(c, &in, "firing", now);
        sent++;
      } else if (!holds && open) {
        snprintf(open->message, sizeof open->message, "resolved after %llds",
                 (long long)(now - open->since));
        send_alert(c, open, "resolved", now);
        *open = a->open.v[--a->open.len];
        sent++;
      }
    }
  }
  return sent;
}

void alerts_save(const struct alerts *a, struct json_object *state)
{
  struct json_object *arr = json_object_new_array();
  for (size_t i = 0; i < a->open.len; i++) {
    const struct incident *in = &a->open.v[i];
    struct json_object *o = json_object_new_object();
    json_object_object_add(o, "kind", json_object_new_string(in->kind));
    json_object_object_add(o, "job", json_object_new_string(in->job));
    json_object_object_add(o, "disk", json_object_new_string(in->disk));
    json_object_object_add(o, "since", json_object_new_int64(in->since));
    json_object_object_add(o, "message", json_object_new_string(in->message));
    json_object_array_add(arr, o);
  }
  json_object_object_add(state, "incidents", arr);
}

void alerts_load(struct alerts *a, struct json_object *state)
{
  struct json_object *arr, *v;
  if (!json_object_object_get_ex(state, "incidents", &arr) ||
      !json_object_is_type(arr, json_type_array))
    return;
  for (size_t i = 0; i < json_object_array_length(arr); i++) {
    struct json_object *o = json_object_array_get_idx(arr, i);
    struct incident in = {0};
    if (json_object_object_get_ex(o, "kind", &v))
      snprintf(in.kind, sizeof in.kind, "%s", json_object_get_string(v));
    if (json_object_object_get_ex(o, "job", &v))
      snprintf(in.job, sizeof in.job, "%s", json_object_get_string(v));
    if (json_object_object_get_ex(o, "disk", &v))
      snprintf(in.disk, sizeof in.disk, "%s", json_object_get_string(v));
    if (json_object_object_get_ex(o, "message", &v))
      snprintf(in.message, sizeof in.message, "%s", json_object_get_string(v));
    if (json_object_object_get_ex(o, "since", &v))
      in.since = json_object_get_int64(v);
    if (in.kind[0] && in.job[0] && !find(a, in.kind, in.job))
      vec_push(&a->open, in);
  }
}

void alerts_free(struct alerts *a)
{
  vec_free(&a->open);
}
