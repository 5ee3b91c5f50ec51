/* Unit tests of src/ops/: the config file's parser and checks, schedules,
 * the commands jobs run, metrics text and alert incidents. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "check.h"
#include "ops/alert.h"
#include "ops/config.h"
#include "ops/job.h"
#include "ops/metrics.h"
#include "util/error.h"

static char dir[] = "/tmp/pl-test-ops-XXXXXX";

/* Write text to a file in dir and load it; NULL with the error set. */
static struct ops_config *load(const char *text)
{
  char path[128];
  snprintf(path, sizeof path, "%s/pl.conf", dir);
  FILE *f = fopen(path, "w");
  fputs(text, f);
  fclose(f);
  return ops_config_load(path);
}

/* The load fails and its message contains want. */
static int fails_with(const char *text, const char *want)
{
  struct ops_config *c = load(text);
  if (c) {
    ops_config_free(c);
    fprintf(stderr, "accepted: %s\n", text);
    return 0;
  }
  if (!strstr(get_error(), want)) {
    fprintf(stderr, "error '%s' lacks '%s'\n", get_error(), want);
    return 0;
  }
  return 1;
}

static const char good[] = "# protected side\n"
                           "[repository]\n"
                           "location = s3://bucket/pl\n"
                           "password-file = /etc/pilotlight/password\n"
                           "limit-upload = 10M,2M@mon-fri 08:00-18:00\n"
                           "\n"
                           "[daemon]\n"
                           "host = web\n"
                           "state-dir = /tmp/x\n"
                           "retry-initial = 5s\n"
                           "\n"
                           "[disk web01]\n"
                           "  source = /dev/vg/web01\n"
                           "  schedule = every 15m\n"
                           "  rpo = 30min\n"
                           "  keep-daily = 7\n"
                           "  keep-within = 2d\n"
                           "\n"
                           "[disk db01]\n"
                           "source = nbd+unix:///db?socket=/run/db.sock\n"
                           "cbt = qemu-bitmap:b0\n"
                           "schedule = every 1h30m\n"
                           "\n"
                           "[replica web01]\n"
                           "target = /srv/replica/web01.raw\n"
                           "schedule = every 15m\n"
                           "\n"
                           "[verify]\n"
                           "schedule = every 1d\n"
                           "read-data = 1/7\n"
                           "\n"
                           "[prune]\n"
                           "schedule = every 1d\n"
                           "max-unused = 10%\n";

/* The config text has one job, "drill vm", every `every` seconds, whose one
 * step runs exactly want (n words). */
static void check_drill_job(const char *text, int64_t every, const char *const *want, size_t n)
{
  struct ops_config *dc = load(text);
  struct job_vec dj = {0};
  struct strings a = {0};
  check(dc != NULL);
  if (dc && jobs_from_config(dc, &dj) == 0 && dj.len == 1) {
    check(strcmp(dj.v[0].name, "drill vm") == 0 && dj.v[0].kind == JOB_DRILL);
    check_int(dj.v[0].every, ==, every);
    check_int(job_step_argv(&dj.v[0], dc, "/bin/pl", &a), ==, (int)n);
    for (size_t i = 0; i < n && i < a.len; i++)
      check(a.v[i] && strcmp(a.v[i], want[i]) == 0);
    strings_free(&a);
    dj.v[0].step = 1;
    check_int(job_step_argv(&dj.v[0], dc, "/bin/pl", &a), ==, 0);
  } else {
    check(0);
  }
  for (size_t i = 0; i < dj.len; i++)
    job_io_free(&dj.v[i]);
  vec_free(&dj);
  ops_config_free(dc);
}

static void test_good(void)
{
  struct ops_config *c = load(good);
  check(c != NULL);
  if (!c) {
    fprintf(stderr, "%s\n", get_error());
    return;
  }
  check(strcmp(c->location, "s3://bucket/pl") == 0);
  check(strcmp(c->host, "web") == 0);
  check(strcmp(c->limit_upload, "10M,2M@mon-fri 08:00-18:00") == 0);
  check_int(c->retry_initial, ==, 5);
  check_int(c->max_jobs, ==, 2);
  check_int(c->disks.len, ==, 2);
  check(strcmp(c->disks.v[0].source, "/dev/vg/web01") == 0);
  check_int(c->disks.v[0].every, ==, 900);
  check_int(c->disks.v[0].rpo, ==, 1800);
  check_int(c->disks.v[0].keep_daily, ==, 7);
  check_int(c->disks.v[1].every, ==, 5400);
  check(strcmp(c->replicas.v[0].disk, "web01") == 0);
  check_int(c->verify_read_data, ==, 7);
  check_int(c->prune_every, ==, 86400);

  struct job_vec jobs = {0};
  check_int(jobs_from_config(c, &jobs), ==, 0);
  check_int(jobs.len, ==, 5);
  check(strcmp(jobs.v[0].name, "backup web01") == 0);
  check(strcmp(jobs.v[2].name, "replica web01") == 0);
  check(strcmp(jobs.v[4].name, "prune") == 0);

  struct strings a = {0};
  check_int(job_step_argv(&jobs.v[1], c, "/bin/pl", &a), ==, 9);
  const char *want[] = {"/bin/pl",        "backup", "--disk",
                        "db01",           "--json", "--cbt",
                        "qemu-bitmap:b0", "--",     "nbd+unix:///db?socket=/run/db.sock"};
  for (size_t i = 0; i < 9 && i < a.len; i++)
    check(a.v[i] && strcmp(a.v[i], want[i]) == 0);
  check(a.v[9] == NULL);
  strings_free(&a);

  /* prune: a forget step per disk with a policy, then prune. */
  struct job *p = &jobs.v[4];
  check(job_step_argv(p, c, "/bin/pl", &a) > 0);
  check(strcmp(a.v[1], "forget") == 0 && strcmp(a.v[3], "web01") == 0);
  strings_free(&a);
  p->step = 1;
  check(job_step_argv(p, c, "/bin/pl", &a) > 0);
  check(strcmp(a.v[1], "prune") == 0);
  check(strcmp(a.v[4], "10%") == 0);
  strings_free(&a);
  p->step = 2;
  check_int(job_step_argv(p, c, "/bin/pl", &a), ==, 0);

  /* verify reads the slice the rotation is at. */
  jobs.v[3].verify_slice = 3;
  check(job_step_argv(&jobs.v[3], c, "/bin/pl", &a) > 0);
  check(strcmp(a.v[3], "--read-data-subset") == 0 && strcmp(a.v[4], "3/7") == 0);
  strings_free(&a);

  /* A drill job: a disk with no source is drilled on its own schedule. */
  const char *dw[] = {"/bin/pl",  "drill",   "--disk",    "vm",   "--json",   "--boot",
                      "--expect", "BOOT OK", "--timeout", "120s", "--device", "ide-hd"};
  check_drill_job("[repository]\nlocation = /r\n[disk vm]\ndrill = every 7d\n"
                  "drill-expect = BOOT OK\ndrill-timeout = 2m\ndrill-device = ide-hd\n",
                  7 * 86400, dw, sizeof dw / sizeof *dw);
  /* A drill by port, with another NIC. */
  const char *pw[] = {"/bin/pl", "drill", "--disk", "vm",   "--json",
                      "--port",  "8080",  "--nic",  "e1000"};
  check_drill_job("[repository]\nlocation = /r\n[disk vm]\ndrill = every 1d\n"
                  "drill-port = 8080\ndrill-nic = e1000\n",
                  86400, pw, sizeof pw / sizeof *pw);

  /* Metrics: labels escaped, every family once. */
  snprintf(jobs.v[0].disk, sizeof jobs.v[0].disk, "we\"b");
  jobs.v[0].snap_time = 1000;
  jobs.v[0].failures_total = 4;
  char *m = metrics_text(c, &jobs, 1100);
  check(m && strstr(m, "pilotlight_rpo_lag_seconds{host=\"web\",disk=\"we\\\"b\"} 100\n"));
  check(m && strstr(m, "# TYPE pilotlight_job_failures_total counter\n"));
  check(m && strstr(m, "pilotlight_job_failures_total{host=\"web\",disk=\"we\\\"b\",job=\"backup "
                       "web01\"} 4\n"));
  free(m);

  /* Alerts: one incident per condition, resolved once. */
  struct alerts al = {0};
  jobs.v[0].failures = 1;
  snprintf(jobs.v[0].last.error, sizeof jobs.v[0].last.error, "S3 down");
  check_int(alerts_evaluate(&al, c, &jobs, 1100), ==, 1);
  jobs.v[0].failures = 2;
  check_int(alerts_evaluate(&al, c, &jobs, 1200), ==, 0);
  check_int(al.open.len, ==, 1);
  jobs.v[0].failures = 0;
  check_int(alerts_evaluate(&al, c, &jobs, 1300), ==, 1);
  check_int(al.open.len, ==, 0);
  /* The newest snapshot passes the objective: a breach, resolved by a new one. */
  check_int(alerts_evaluate(&al, c, &jobs, 1000 + 1801), ==, 1);
  check(al.open.len == 1 && strcmp(al.open.v[0].kind, "rpo-breach") == 0);
  jobs.v[0].snap_time = 2800;
  check_int(alerts_evaluate(&al, c, &jobs, 2801), ==, 1);
  check_int(al.open.len, ==, 0);
  /* At the last cycle's pace the next snapshot lands too late. */
  jobs.v[0].cycle.seconds = 2000;
  jobs.v[0].next_run = 2900;
  check_int(metrics_predicted_breach(&jobs.v[0], 2850), ==, 2800 + 1800);
  check_int(alerts_evaluate(&al, c, &jobs, 2850), ==, 1);
  check(al.open.len == 1 && strcmp(al.open.v[0].kind, "predicted-breach") == 0);
  jobs.v[0].cycle.seconds = 10;
  check_int(metrics_predicted_breach(&jobs.v[0], 2850), ==, 0);
  check_int(alerts_evaluate(&al, c, &jobs, 2850), ==, 1); /* resolved */
  check_int(al.open.len, ==, 0);
  /* A CBT fallback, verify damage and a replica failing: one each, and
   * the saved state brings them back without a second alert. */
  jobs.v[0].last.cbt_fallback = 1;
  jobs.v[3].last.damaged = 2;
  jobs.v[2].failures = 1;
  check_int(alerts_evaluate(&al, c, &jobs, 2860), ==, 3);
  check_int(al.open.len, ==, 3);
  int kinds = 0;
  for (size_t i = 0; i < al.open.len; i++)
    kinds |= (strcmp(al.open.v[i].kind, "cbt-fallback") == 0) |
             (strcmp(al.open.v[i].kind, "verify-damage") == 0) << 1 |
             (strcmp(al.open.v[i].kind, "replica-failure") == 0) << 2;
  check_int(kinds, ==, 7);
  struct json_object *st = json_object_new_object();
  alerts_save(&al, st);
  struct alerts again = {0};
  alerts_load(&again, st);
  json_object_put(st);
  check_int(again.open.len, ==, 3);
  check_int(alerts_evaluate(&again, c, &jobs, 2870), ==, 0);
  jobs.v[0].last.cbt_fallback = 0;
  jobs.v[3].last.damaged = 0;
  jobs.v[2].failures = 0;
  check_int(alerts_evaluate(&again, c, &jobs, 2880), ==, 3);
  check_int(again.open.len, ==, 0);
  alerts_free(&again);
  alerts_free(&al);

  for (size_t i = 0; i < jobs.len; i++)
    job_io_free(&jobs.v[i]);
  vec_free(&jobs);
  ops_config_free(c);
}

static void test_errors(void)
{
  check(fails_with("[repository]\nlocation = /r\n[disk a]\nsource = /x\n",
                   ":3: [disk a] schedule: missing"));
  check(fails_with("[repository]\nlocation = /r\n[disk a]\nsource = /x\nschedule = 15m\n",
                   "pl.conf:5: [disk a] schedule: '15m' is not a schedule"));
  check(fails_with("[repository]\nlocation = /r\n[disk a]\nsorce = /x\n",
                   ":4: [disk a] sorce: unknown key"));
  check(fails_with("[repository]\nlocation = /r\n[disks a]\nsource = /x\n", "unknown section"));
  check(fails_with("[repository]\nlocation = /r\nlocation = /s\n", ":3: [repository] location: set "
                                                                   "twice, first on line 2"));
  check(fails_with("[daemon]\nhost = x\n", "[repository] location: missing"));
  check(fails_with("location = /r\n", "a key before any section"));
  check(fails_with("[repository]\nlocation = /r\njust words\n", "pl.conf:3: not a key = value"));
  check(fails_with("[repository]\nlocation = /r\n[replica r]\ndisk = a\nschedule = every 1m\n",
                   "[replica r] target: missing"));
  check(fails_with("[repository]\nlocation = /r\n[disk a/b]\n", "is not a name"));
  check(fails_with("[repository]\nlocation = /r\n[disk a]\n[disk a]\n",
                   ":4: [disk a] (section): disk a is declared twice, first on line 3"));
  check(
      fails_with("[repository]\nlocation = /r\n[verify]\nread-data = 2/7\n", "not no, all or 1/N"));
  check(fails_with("[repository]\nlocation = /r\n[prune]\nmax-unused = 120\n", "percentage"));
  check(fails_with("[repository]\nlocation = /r\n[daemon]\nlog-json = maybe\n", "not yes or no"));
  check(fails_with("[repository]\nlocation = /r\nlimit-upload = 10Q\n",
                   "pl.conf:3: [repository] limit-upload: "));
  char longline[600];
  memset(longline, 'x', sizeof longline);
  memcpy(longline, "[repository]\nlocation = ", 24);
  longline[sizeof longline - 2] = '\n';
  longline[sizeof longline - 1] = 0;
  check(fails_with(longline, ":2: line longer than"));
  check(fails_with("[repository]\nlocation = /r\n[disk a]\ndrill = every 1d\n",
                   ":3: [disk a] drill: say what proves the boot"));
  check(fails_with("[repository]\nlocation = /r\n[disk a]\ndrill-expect = OK\n",
                   "[disk a] drill: missing: say how often to drill"));
  check(fails_with("[repository]\nlocation = /r\n[disk a]\ndrill = every 1d\ndrill-port = 70000\n",
                   "70000 is not a TCP port"));
  check(fails_with("[repository]\nlocation = /r\n[disk a]\ndrill = every 1d\n"
                   "drill-expect = OK\ndrill-nic = e1000\n",
                   "drill-nic: only drill-port gives the drill VM a network"));
  check(ops_config_load("/nonexistent/pl.conf") == NULL);
  check(strstr(get_error(), "/nonexistent/pl.conf") != NULL);
}

static void test_schedule(void)
{
  int64_t s;
  check(ops_parse_schedule("every 15m", &s) == 0 && s == 900);
  check(ops_parse_schedule("every 1h30m", &s) == 0 && s == 5400);
  check(ops_parse_schedule("every 10min", &s) == 0 && s == 600);
  check(ops_parse_schedule("every 45s", &s) == 0 && s == 45);
  check(ops_parse_schedule("every 2d", &s) == 0 && s == 172800);
  check(ops_parse_schedule("every 0s", &s) == -1);
  check(ops_parse_schedule("15m", &s) == -1);
  check(ops_parse_schedule("every", &s) == -1);
  check(ops_parse_schedule("every 5x", &s) == -1);
}

int main(void)
{
  if (!mkdtemp(dir))
    return 1;
  test_schedule();
  test_good();
  test_errors();
  char path[128];
  snprintf(path, sizeof path, "%s/pl.conf", dir);
  unlink(path);
  rmdir(dir);
  return check_summary();
}
