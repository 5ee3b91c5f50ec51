/* pilotlight status: how fresh every disk and replica is, from the
 * repository alone (the snapshots and each daemon's status object). */
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "ops/config.h"
#include "ops/daemon.h"
#include "ops/status.h"
#include "util/error.h"

#define EXIT_BREACHED 3

static void help(void)
{
  printf("usage: pilotlight [-r REPO] status [--config FILE] [--json]\n"
         "\n"
         "Show each disk's state (protected, lagging, failing, stalled, initial-sync,\n"
         "manual: backed up from the command line with no daemon, or never), the newest\n"
         "snapshot's time and age against the recovery point objective, the last cycle's\n"
         "bytes, CBT mode, last error and next run; and each replica's snapshot and how\n"
         "far it is behind the newest snapshot and the clock. It reads only the\n"
         "repository, so it works on the protected side, the recovery side, or anywhere.\n"
         "\n"
         "Options:\n"
         "  --config FILE   take the repository and the objectives from FILE (default:\n"
         "                  %s when it exists and no -r is given)\n"
         "  --json          print one JSON document\n"
         "\n"
         "Exit status: 0 every objective met, 1 error, 2 usage, 3 an objective is\n"
         "breached or a job is failing (so it can serve as a monitoring check).\n",
         OPS_CONFIG_DEFAULT);
}

static const char *str(struct json_object *o, const char *k)
{
  struct json_object *v;
  return json_object_object_get_ex(o, k, &v) && v ? json_object_get_string(v) : "";
}

static int64_t num(struct json_object *o, const char *k, int64_t none)
{
  struct json_object *v;
  return json_object_object_get_ex(o, k, &v) && v ? json_object_get_int64(v) : none;
}

static void age(char *buf, size_t n, int64_t s)
{
  if (s < 0)
    snprintf(buf, n, "-");
  else if (s < 120)
    snprintf(buf, n, "%llds", (long long)s);
  else if (s < 7200)
    snprintf(buf, n, "%lldmin", (long long)(s / 60));
  else if (s < 172800)
    snprintf(buf, n, "%lldh", (long long)(s / 3600));
  else
    snprintf(buf, n, "%lldd", (long long)(s / 86400));
}

static void print_text(struct json_object *st)
{
  struct json_object *disks = json_object_object_get(st, "disks");
  struct json_object *reps = json_object_object_get(st, "replicas");
  struct json_object *jobs = json_object_object_get(st, "jobs");
  int64_t now = num(st, "time", 0);
  printf("%-16s %-13s %-8s %-8s %-10s %-14s %s\n", "DISK", "STATE", "AGE", "RPO", "NEW", "MODE",
         "LAST ERROR / NEXT RUN");
  for (size_t i = 0; i < json_object_array_length(disks); i++) {
    struct json_object *d = json_object_array_get_idx(disks, i);
    char a[32], r[32], nw[32], next[64] = "";
    age(a, sizeof a, num(d, "age", -1));
    age(r, sizeof r, num(d, "rpo", -1));
    format_bytes((uint64_t)num(d, "bytes_new", 0), nw, sizeof nw);
    int64_t nr = num(d, "next_run", 0);
    if (nr) {
      char in[32];
      age(in, sizeof in, nr > now ? nr - now : 0);
      snprintf(next, sizeof next, "next in %s", in);
    }
    printf("%-16s %-13s %-8s %-8s %-10s %-14s %s\n", str(d, "disk"), str(d, "state"), a, r, nw,
           str(d, "mode")[0] ? str(d, "mode") : "-", str(d, "error")[0] ? str(d, "error") : next);
  }
  if (json_object_array_length(reps)) {
    printf("\n%-16s %-16s %-13s %-14s %-10s %-10s %s\n", "REPLICA", "DISK", "STATE", "SNAPSHOT",
           "BEHIND", "AGE", "LAST RESULT");
    for (size_t i = 0; i < json_object_array_length(reps); i++) {
      struct json_object *r = json_object_array_get_idx(reps, i);
      char b[32], a[32];
      age(b, sizeof b, num(r, "behind_latest", -1));
      age(a, sizeof a, num(r, "behind_clock", -1));
      printf("%-16s %-16s %-13s %-14.12s %-10s %-10s %s\n", str(r, "replica"), str(r, "disk"),
             str(r, "state"), str(r, "snapshot")[0] ? str(r, "snapshot") : "-", b, a,
             str(r, "error")[0] ? str(r, "error") : str(r, "result"));
    }
  }
  int drills = 0;
  for (size_t i = 0; i < json_object_array_length(disks); i++) {
    struct json_object *dr = json_object_object_get(json_object_array_get_idx(disks, i), "drill");
    if (!dr)
      continue;
    if (!drills++)
      printf("\n%-16s %-8s %-10s %-14s %-8s %-8s %s\n", "DRILL", "RESULT", "AGO", "SNAPSHOT", "RTO",
             "1ST BYTE", "ERROR");
    char ago[32], rto[32] = "-", fb[32] = "-";
    age(ago, sizeof ago, now - num(dr, "time", now));
    if (json_object_object_get(dr, "rto_seconds"))
      snprintf(rto, sizeof rto, "%.1fs",
               json_object_get_double(json_object_object_get(dr, "rto_seconds")));
    if (json_object_object_get(dr, "first_byte_seconds"))
      snprintf(fb, sizeof fb, "%.2fs",
               json_object_get_double(json_object_object_get(dr, "first_byte_seconds")));
    printf("%-16s %-8s %-10s %-14.12s %-8s %-8s %s\n", str(dr, "disk"), str(dr, "result"), ago,
           str(dr, "snapshot"), rto, fb, str(dr, "error"));
  }
  if (json_object_array_length(jobs)) {
    printf("\n%-16s %-8s %s\n", "JOB", "RESULT", "LAST ERROR");
    for (size_t i = 0; i < json_object_array_length(jobs); i++) {
      struct json_object *j = json_object_array_get_idx(jobs, i);
      printf("%-16s %-8s %s\n", str(j, "job"), str(j, "result"), str(j, "error"));
    }
  }
}

int cmd_status(struct cli *c, int argc, char **argv)
{
  enum { O_CONFIG = 256, O_JSON };
  static const struct option opts[] = {
      {"repo", required_argument, NULL, 'r'},
      {"help", no_argument, NULL, 'h'},
      {"config", required_argument, NULL, O_CONFIG},
      {"json", no_argument, NULL, O_JSON},
      {NULL, 0, NULL, 0},
  };
  const char *config = NULL;
  int json = 0, ch;
  while ((ch = getopt_long(argc, argv, "r:h", opts, NULL)) != -1) {
    switch (ch) {
    case 'r':
      c->repo = optarg;
      break;
    case 'h':
      help();
      return 0;
    case O_CONFIG:
      config = optarg;
      break;
    case O_JSON:
      json = 1;
      break;
    default:
      return fail_usage(c, "unknown option");
    }
  }
  if (optind != argc)
    return fail_usage(c, "unexpected argument '%s'", argv[optind]);
  if (!config && !c->repo && !getenv("PILOTLIGHT_REPOSITORY") &&
      access(OPS_CONFIG_DEFAULT, R_OK) == 0)
    config = OPS_CONFIG_DEFAULT;
  struct ops_config *oc = NULL;
  if (config) {
    oc = ops_config_load(config);
    if (!oc)
      return fail_lib();
    if (ops_config_export_env(oc) == -1) {
      ops_config_free(oc);
      return fail_lib();
    }
    if (!c->repo)
      c->repo = oc->location;
  }
  c->metadata_only = 1;
  struct repo *r = cli_open_repo(c);
  if (!r) {
    ops_config_free(oc);
    return c->repo ? EXIT_FAIL : EXIT_USAGE;
  }
  struct json_object *st = ops_status_build(r, oc, (int64_t)time(NULL));
  repo_free(r);
  ops_config_free(oc);
  if (!st)
    return fail_lib();
  if (json)
    printf("%s\n", json_object_to_json_string_ext(st, JSON_C_TO_STRING_PRETTY));
  else
    print_text(st);
  int breached = json_object_get_boolean(json_object_object_get(st, "breached"));
  json_object_put(st);
  return breached ? EXIT_BREACHED : 0;
}
