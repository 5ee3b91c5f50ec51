/* Metrics in the Prometheus text format (version 0.0.4): one HELP and TYPE
 * per family, base units (seconds, bytes), counters ending in _total,
 * labels disk, host and job. */
#include "metrics.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "util/error.h"
#include "util/fileio.h"
#include "util/strbuf.h"

/* A label value with \, " and newline escaped. */
static void label(struct strbuf *sb, const char *name, const char *v, int first)
{
  strbuf_appendf(sb, "%s%s=\"", first ? "" : ",", name);
  for (; *v; v++) {
    if (*v == '\\' || *v == '"')
      strbuf_appendf(sb, "\\%c", *v);
    else if (*v == '\n')
      strbuf_appends(sb, "\\n");
    else
      strbuf_append(sb, v, 1);
  }
  strbuf_appends(sb, "\"");
}

static void labels(struct strbuf *sb, const struct ops_config *c, const struct job *j, int with_job)
{
  strbuf_appends(sb, "{");
  label(sb, "host", c->host, 1);
  if (j->disk[0])
    label(sb, "disk", j->disk, 0);
  if (with_job)
    label(sb, "job", j->name, 0);
  strbuf_appends(sb, "}");
}

int64_t metrics_predicted_breach(const struct job *j, int64_t now)
{
  if (j->kind != JOB_BACKUP || !j->rpo || !j->snap_time)
    return 0;
  /* Backlog / throughput: the last cycle's bytes at the last cycle's rate,
   * i.e. its duration, at least a second. */
  int64_t took = (int64_t)j->cycle.seconds;
  if (took < 1)
    took = 1;
  int64_t start = j->pid ? j->last_start : j->next_run > now ? j->next_run : now;
  int64_t deadline = j->snap_time + j->rpo;
  return start + took > deadline ? deadline : 0;
}

enum family_kind { GAUGE, COUNTER };

struct family {
  const char *name, *help;
  enum family_kind kind;
  int with_job;                                              /* label job too */
  enum job_kind only;                                        /* the kind of job it describes */
  int any_kind;                                              /* every kind */
  int (*value)(const struct job *j, int64_t now, double *v); /* 0: no sample */
};

#define V(fn, expr)                                                                                \
  static int fn(const struct job *j, int64_t now, double *v)                                       \
  {                                                                                                \
    (void)now;                                                                                     \
    *v = (double)(expr);                                                                           \
    return 1;                                                                                      \
  }

static int rpo_lag(const struct job *j, int64_t now, double *v)
{
  *v = (double)(now - j->snap_time);
  return j->snap_time != 0;
}
static int objective(const struct job *j, int64_t now, double *v)
{
  (void)now;
  *v = (double)j->rpo;
  return j->rpo != 0;
}
static int last_success(const struct job *j, int64_t now, double *v)
{
  (void)now;
  *v = (double)j->last_success;
  return j->last_success != 0;
}
static int duration(const struct job *j, int64_t now, double *v)
{
  (void)now;
  *v = j->last.seconds;
  return j->last_end != 0;
}
static int predicted(const struct job *j, int64_t now, double *v)
{
  *v = (double)metrics_predicted_breach(j, now);
  return j->rpo != 0;
}
V(runs, j->runs_total)
V(failures, j->failures_total)
V(running, j->pid != 0)
V(next_run, j->next_run)
V(bytes_read, j->bytes_read_total)
V(bytes_new, j->bytes_new_total)
V(bytes_uploaded, j->bytes_stored_total)
V(fallbacks, j->cbt_fallbacks_total)
V(verify_errors, j->last.damaged)
static int drill_rto(const struct job *j, int64_t now, double *v)
{
  (void)now;
  *v = j->cycle.rto;
  return j->cycle.rto > 0;
}
static int drill_passed(const struct job *j, int64_t now, double *v)
{
  (void)now;
  *v = j->last.ok;
  return j->last_end != 0;
}

static const struct family families[] = {
    {"pilotlight_rpo_lag_seconds", "Age of the newest snapshot this host made of the disk.", GAUGE,
     0, JOB_BACKUP, 0, rpo_lag},
    {"pilotlight_rpo_objective_seconds", "The recovery point objective of the disk.", GAUGE, 0,
     JOB_BACKUP, 0, objective},
    {"pilotlight_predicted_breach_timestamp_seconds",
     "When the objective will be breached before the next snapshot lands (0: not predicted).",
     GAUGE, 0, JOB_BACKUP, 0, predicted},
    {"pilotlight_replica_lag_seconds", "Age of the snapshot the replica holds.", GAUGE, 1,
     JOB_REPLICA, 0, rpo_lag},
    {"pilotlight_last_success_timestamp_seconds", "When the job last succeeded.", GAUGE, 1, 0, 1,
     last_success},
    {"pilotlight_job_duration_seconds", "How long the job's last run took.", GAUGE, 1, 0, 1,
     duration},
    {"pilotlight_job_running", "1 while the job runs.", GAUGE, 1, 0, 1, running},
    {"pilotlight_job_next_run_timestamp_seconds", "When the job runs next.", GAUGE, 1, 0, 1,
     next_run},
    {"pilotlight_job_runs_total", "Runs of the job.", COUNTER, 1, 0, 1, runs},
    {"pilotlight_job_failures_total", "Failed runs of the job.", COUNTER, 1, 0, 1, failures},
    {"pilotlight_bytes_read_total", "Bytes read from the disk by backups.", COUNTER, 0, JOB_BACKUP,
     0, bytes_read},
    {"pilotlight_bytes_new_total", "Bytes of chunks new to the repository.", COUNTER, 0, JOB_BACKUP,
     0, bytes_new},
    {"pilotlight_bytes_uploaded_total", "Bytes written to the repository (compressed).", COUNTER, 0,
     JOB_BACKUP, 0, bytes_uploaded},
    {"pilotlight_cbt_fallbacks_total",
     "Backups that were to use changed-block tracking and read the whole disk instead.", COUNTER, 0,
     JOB_BACKUP, 0, fallbacks},
    {"pilotlight_verify_errors", "Problems the last verify found.", GAUGE, 1, JOB_VERIFY, 0,
     verify_errors},
    {"pilotlight_drill_rto_seconds",
     "The recovery time the last passed drill measured: from its start to the boot marker or port.",
     GAUGE, 0, JOB_DRILL, 0, drill_rto},
    {"pilotlight_drill_passed", "1 if the disk's last drill passed, 0 if it failed.", GAUGE, 0,
     JOB_DRILL, 0, drill_passed},
};

char *metrics_text(const struct ops_config *c, const struct job_vec *jobs, int64_t now)
{
  struct strbuf sb = STRBUF_INIT(16u << 20, "the metrics");
  for (size_t f = 0; f < sizeof families / sizeof *families; f++) {
    const struct family *fam = &families[f];
    strbuf_appendf(&sb, "# HELP %s %s\n# TYPE %s %s\n", fam->name, fam->help, fam->name,
                   fam->kind == COUNTER ? "counter" : "gauge");
    for (size_t i = 0; i < jobs->len; i++) {
      const struct job *j = &jobs->v[i];
      double v;
      if (j->retired || (!fam->any_kind && j->kind != fam->only) || !fam->value(j, now, &v))
        continue;
      strbuf_appends(&sb, fam->name);
      labels(&sb, c, j, fam->with_job);
      strbuf_appendf(&sb, " %.17g\n", v);
    }
  }
  return strbuf_take(&sb, NULL);
}

int metrics_write_textfile(const struct ops_config *c, const struct job_vec *jobs, int64_t now)
{
  char *text = metrics_text(c, jobs, now);
  if (!text)
    return -1;
  int ret = write_file_atomic(AT_FDCWD, NULL, c->metrics_textfile, text, strlen(text), 0644, 0);
  if (ret == -1)
    prefix_error("metrics textfile");
  free(text);
  return ret;
}
