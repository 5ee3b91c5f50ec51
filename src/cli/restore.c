/* pilotlight restore: write a snapshot to a file or block device. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "sink/replica.h"
#include "sink/restore.h"

int cmd_restore(struct cli *c, int argc, char **argv)
{
  enum { O_FORCE = 256, O_THREADS, O_VERIFY, O_LIMIT };
  static const struct option opts[] = {
      {"repo", required_argument, NULL, 'r'},
      {"help", no_argument, NULL, 'h'},
      {"force", no_argument, NULL, O_FORCE},
      {"threads", required_argument, NULL, O_THREADS},
      {"verify", no_argument, NULL, O_VERIFY},
      {"limit-download", required_argument, NULL, O_LIMIT},
      {NULL, 0, NULL, 0},
  };
  struct restore_opts ro = {0};
  int threads = 0, ch, ret = EXIT_FAIL, verify = 0;
  struct repo *r = NULL;
  struct snapshot *s = NULL;
  struct timespec t0, t1;
  while ((ch = getopt_long(argc, argv, "r:h", opts, NULL)) != -1) {
    switch (ch) {
    case 'r':
      c->repo = optarg;
      break;
    case 'h':
      printf("usage: pilotlight -r REPO restore NAME[@SNAPSHOT] TARGET [--force] [OPTIONS]\n\n"
             "Restore disk NAME at SNAPSHOT (an id, a unique id prefix, or latest, the\n"
             "default) to TARGET. A new TARGET file is created sparse, as\n"
             "TARGET.pilotlight-part.PID until it is complete. An existing file or block\n"
             "device is overwritten only with --force, and never while another process\n"
             "holds it; until the restore ends, TARGET.pilotlight-incomplete says so (for a\n"
             "device, in /var/lib/pilotlight/incomplete). TARGET - writes the raw disk to\n"
             "standard output. Every chunk is checked against its hash as it is written.\n\n"
             "Options:\n"
             "  --force       overwrite an existing file or block device\n"
             "  --threads N   reader threads (default: the number of CPUs)\n"
             "  --verify      re-read the whole target afterwards and compare it\n"
             "  --limit-download RATE\n"
             "                read at most RATE bytes per second from the repository, all\n"
             "                threads together: e.g. 10M, or 10M,2M@mon-fri 08:00-18:00\n"
             "                (local time); default $PILOTLIGHT_LIMIT_DOWNLOAD, else\n"
             "                unlimited (README, Bandwidth limits)\n");
      return 0;
    case O_FORCE:
      ro.force = 1;
      break;
    case O_VERIFY:
      verify = 1;
      break;
    case O_THREADS:
      if (parse_threads(c, optarg, &threads) == -1)
        return EXIT_USAGE;
      break;
    case O_LIMIT:
      if (parse_limit(c, 0, optarg) == -1)
        return EXIT_USAGE;
      break;
    default:
      return fail_usage(c, "unknown option");
    }
  }
  if (optind + 2 != argc)
    return fail_usage(c, "expected NAME[@SNAPSHOT] TARGET");
  if (!cli_repo(c))
    return EXIT_USAGE;
  ro.target = argv[optind + 1];
  ro.progress = cli_progress();
  ro.cancel = &cli_cancel;
  int to_stdout = strcmp(ro.target, "-") == 0;
  if (to_stdout && verify)
    return fail_usage(c, "--verify needs a file or device, not standard output");
  struct stat st;
  int existed = !to_stdout && stat(ro.target, &st) == 0;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  if (cli_open_snapshot(c, argv[optind], threads, &r, &s) == -1)
    goto out;
  cli_catch_signals();
  if (repo_restore(r, s, &ro) == -1) {
    char what[600], how[600];
    snprintf(what, sizeof what, "restore of %s@%.12s to %s", s->disk, s->id,
             to_stdout ? "standard output" : ro.target);
    if (to_stdout)
      snprintf(how, sizeof how, "the output is incomplete; rerun the restore");
    else if (existed)
      snprintf(how, sizeof how, "%s is marked incomplete; rerun restore --force", ro.target);
    else
      snprintf(how, sizeof how, "nothing was left under %s; rerun the restore", ro.target);
    ret = fail_interrupted(what, how);
    goto out;
  }
  if (verify && target_verify(r, s, ro.target) == -1) {
    fail_lib();
    goto out;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  if (!to_stdout)
    printf("restored snapshot %.12s of disk %s to %s (%llu bytes%s) in %.2f s\n", s->id, s->disk,
           ro.target, (unsigned long long)s->size, verify ? ", verified" : "",
           (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
  ret = 0;
out:
  snapshot_free(s);
  repo_free(r);
  return ret;
}
