/* pilotlight replica sync: keep a warm replica (a raw file or a block
 * device) at the latest snapshot of a disk, or at a chosen one, writing only
 * what differs; with --watch, follow new snapshots as they appear. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "sink/replica.h"

/* Seconds from "30", "30s", "5m" or "1h". */
static int parse_interval(const char *s, unsigned *out)
{
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0 || end == s || *s == '-')
    return -1;
  unsigned long long mul = 1;
  if (strcmp(end, "m") == 0)
    mul = 60;
  else if (strcmp(end, "h") == 0)
    mul = 3600;
  else if (*end != '\0' && strcmp(end, "s") != 0)
    return -1;
  if (v == 0 || v > 86400 * 7 / mul)
    return -1;
  *out = (unsigned)(v * mul);
  return 0;
}

static void report(const struct replica_opts *o, const struct replica_result *res, double secs,
                   int json)
{
  if (json) {
    printf("{\"target\":");
    json_string(stdout, o->target);
    printf(",\"disk\":");
    json_string(stdout, o->disk);
    printf(",\"from\":");
    if (res->from[0])
      printf("\"%s\"", res->from);
    else
      printf("null");
    printf(",\"snapshot\":\"%s\",\"up_to_date\":%s,\"full\":%s,\"compared\":%s,\"resumed\":%s,"
           "\"blocks_changed\":%llu,\"bytes_written\":%llu,\"bytes_zeroed\":%llu,"
           "\"seconds\":%.3f,\"note\":",
           res->to, res->up_to_date ? "true" : "false", res->full ? "true" : "false",
           res->compared ? "true" : "false", res->resumed ? "true" : "false",
           (unsigned long long)res->blocks_changed, (unsigned long long)res->bytes_written,
           (unsigned long long)res->bytes_zeroed, secs);
    json_string(stdout, res->note);
    printf("}\n");
  } else if (res->up_to_date) {
    printf("%s is up to date with snapshot %.12s of disk %s\n", o->target, res->to, o->disk);
  } else {
    char w[32], z[32];
    format_bytes(res->bytes_written, w, sizeof w);
    format_bytes(res->bytes_zeroed, z, sizeof z);
    char from[40];
    snprintf(from, sizeof from, "%.12s", res->from[0] ? res->from : "nothing known");
    printf("%s now holds snapshot %.12s of disk %s (from %s%s%s): %llu blocks changed, %s "
           "written, %s zeroed in %.2f s\n",
           o->target, res->to, o->disk, res->from[0] ? from : "nothing known",
           res->note[0] ? "; " : "", res->note, (unsigned long long)res->blocks_changed, w, z,
           secs);
  }
  fflush(stdout);
}

static int sync_once(struct cli *c, const struct replica_opts *o, int threads, int json)
{
  struct replica_result res;
  struct timespec t0, t1;
  int ret = EXIT_FAIL;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  c->lock = REPO_LOCK_SHARED_OPTIONAL;
  struct repo *r = cli_open_repo(c);
  if (!r)
    return EXIT_FAIL;
  if (threads)
    repo_set_threads(r, threads);
  if (replica_sync(r, o, &res) == -1) {
    char what[600];
    snprintf(what, sizeof what, "replica sync of disk %s to %s", o->disk, o->target);
    ret = fail_interrupted(what, "rerun replica sync to finish it");
    goto out;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  report(o, &res, (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9, json);
  ret = 0;
out:
  repo_free(r);
  return ret;
}

static int replica_usage(FILE *f)
{
  fprintf(f,
          "usage: pilotlight -r REPO replica sync --disk NAME TARGET [--snapshot S]\n"
          "                  [--watch INTERVAL] [--force] [--verify] [--state-dir DIR] [--json]\n"
          "                  [--limit-download RATE]\n\n"
          "Bring TARGET (a raw file, created sparse if missing, or a block device) to the\n"
          "latest snapshot of disk NAME, or to S (an id, a unique id prefix or latest). Only\n"
          "the blocks that differ from the snapshot last applied are written; blocks that\n"
          "became zero become holes. Going back to an older snapshot works the same way.\n"
          "The state (repository, disk, snapshot applied, a fingerprint of the target) is\n"
          "kept in TARGET.pilotlight-state, or in DIR (devices: %s by default).\n"
          "An interrupted sync is finished by the next run. A target written behind\n"
          "pilotlight's back (say, booted for a test) is refused; --force resyncs it fully.\n\n"
          "Options:\n"
          "  --disk NAME        the disk to replicate (required)\n"
          "  --snapshot S       apply snapshot S instead of the latest\n"
          "  --watch INTERVAL   keep going: apply each new snapshot, polling every INTERVAL\n"
          "                     (seconds, or with an s, m or h suffix) until interrupted\n"
          "  --force            overwrite a modified or unknown target with a full sync\n"
          "  --verify           re-read the whole target afterwards and check every block\n"
          "  --state-dir DIR    keep the state file in DIR\n"
          "  --threads N        reader threads (default: the number of CPUs)\n"
          "  --json             print each result as a JSON object\n"
          "  --limit-download RATE\n"
          "                     read at most RATE bytes per second from the repository, all\n"
          "                     threads together: e.g. 10M, or 10M,2M@mon-fri 08:00-18:00\n"
          "                     (local time; with --watch the rate follows the clock);\n"
          "                     default $PILOTLIGHT_LIMIT_DOWNLOAD, else unlimited (README,\n"
          "                     Bandwidth limits)\n",
          "/var/lib/pilotlight/replicas");
  return f == stdout ? 0 : EXIT_USAGE;
}

int cmd_replica(struct cli *c, int argc, char **argv)
{
  enum {
    O_DISK = 256,
    O_SNAPSHOT,
    O_WATCH,
    O_FORCE,
    O_VERIFY,
    O_STATE_DIR,
    O_THREADS,
    O_JSON,
    O_LIMIT
  };
  static const struct option opts[] = {
      {"repo", required_argument, NULL, 'r'},
      {"help", no_argument, NULL, 'h'},
      {"disk", required_argument, NULL, O_DISK},
      {"snapshot", required_argument, NULL, O_SNAPSHOT},
      {"watch", required_argument, NULL, O_WATCH},
      {"force", no_argument, NULL, O_FORCE},
      {"verify", no_argument, NULL, O_VERIFY},
      {"state-dir", required_argument, NULL, O_STATE_DIR},
      {"threads", required_argument, NULL, O_THREADS},
      {"json", no_argument, NULL, O_JSON},
      {"limit-download", required_argument, NULL, O_LIMIT},
      {NULL, 0, NULL, 0},
  };
  struct replica_opts o = {0};
  unsigned interval = 0;
  int threads = 0;
  int json = 0, ch;
  if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))
    return replica_usage(stdout);
  if (argc < 2 || strcmp(argv[1], "sync") != 0) {
    fprintf(stderr, "pilotlight: replica: expected the subcommand 'sync' (see pilotlight replica "
                    "--help)\n");
    return EXIT_USAGE;
  }
  argc--;
  argv++;
  while ((ch = getopt_long(argc, argv, "r:h", opts, NULL)) != -1) {
    switch (ch) {
    case 'r':
      c->repo = optarg;
      break;
    case 'h':
      return replica_usage(stdout);
    case O_DISK:
      o.disk = optarg;
      break;
    case O_SNAPSHOT:
      o.snapshot = optarg;
      break;
    case O_WATCH:
      if (parse_interval(optarg, &interval) == -1)
        return fail_usage(c, "--watch: '%s' is not an interval such as 30, 30s, 5m or 1h", optarg);
      break;
    case O_FORCE:
      o.force = 1;
      break;
    case O_VERIFY:
      o.verify = 1;
      break;
    case O_STATE_DIR:
      o.state_dir = optarg;
      break;
    case O_THREADS:
      if (parse_threads(c, optarg, &threads) == -1)
        return EXIT_USAGE;
      break;
    case O_JSON:
      json = 1;
      break;
    case O_LIMIT:
      if (parse_limit(c, 0, optarg) == -1)
        return EXIT_USAGE;
      break;
    default:
      return fail_usage(c, "unknown option");
    }
  }
  if (optind + 1 != argc)
    return fail_usage(c, "expected one TARGET");
  if (o.disk == NULL)
    return fail_usage(c, "--disk NAME is required");
  if (interval && o.snapshot)
    return fail_usage(c, "--watch follows the latest snapshot; it cannot be used with --snapshot");
  o.target = argv[optind];
  o.progress = cli_progress();
  if (!cli_repo(c))
    return EXIT_USAGE;
  o.cancel = &cli_cancel;
  cli_catch_signals();
  if (!interval)
    return sync_once(c, &o, threads, json);

  int last = 0;
  while (!cli_cancel) {
    /* Each round opens the repository afresh, so new snapshots and index
     * objects are seen. A failure is reported and retried next round. */
    last = sync_once(c, &o, threads, json);
    if (last > EXIT_USAGE)
      return last; /* interrupted in the middle of a sync */
    o.force = 0;   /* --force applies to the first round only */
    struct timespec ts = {.tv_sec = interval, .tv_nsec = 0};
    while (!cli_cancel && nanosleep(&ts, &ts) == -1 && errno == EINTR)
      ;
  }
  return last; /* stopped between syncs: the replica is whole */
}
