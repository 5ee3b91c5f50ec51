/* pilotlight unlock: remove stale repository locks (all of them with
 * --remove-all), saying which were removed and which are still held. */
#include <getopt.h>
#include <stdio.h>
#include <time.h>

#include "cli.h"
#include "core/lock.h"
#include "env/settings.h"

struct unlock_out {
  size_t removed, kept;
};

static void report(void *opaque, const struct lock_info *l, int removed)
{
  struct unlock_out *o = opaque;
  char when[40];
  format_time(l->refreshed, when, sizeof when);
  printf("%s %s: %s lock of %s, pid %lld on %s, refreshed %s%s\n", removed ? "removed" : "kept",
         l->key, l->exclusive ? "exclusive" : "shared", l->command[0] ? l->command : "?",
         (long long)l->pid, l->host, when, l->stale ? " (stale)" : " (held)");
  if (removed)
    o->removed++;
  else
    o->kept++;
}

int cmd_unlock(struct cli *c, int argc, char **argv)
{
  enum { O_ALL = 256 };
  static const struct option opts[] = {
      {"repo", required_argument, NULL, 'r'},
      {"help", no_argument, NULL, 'h'},
      {"remove-all", no_argument, NULL, O_ALL},
      {NULL, 0, NULL, 0},
  };
  int all = 0, ch;
  while ((ch = getopt_long(argc, argv, "r:h", opts, NULL)) != -1) {
    switch (ch) {
    case 'r':
      c->repo = optarg;
      break;
    case 'h':
      printf("usage: pilotlight -r REPO unlock [--remove-all]\n\n"
             "Remove stale locks: those of a process that is gone (on this host), or not\n"
             "refreshed for %d minutes (on another host). Held locks are listed and kept.\n"
             "With --remove-all, remove every lock: only when you know that no pilotlight\n"
             "command runs against the repository anywhere (a command whose lock is removed\n"
             "stops before it commits or deletes anything more).\n",
             LOCK_STALE_SECONDS / 60);
      return 0;
    case O_ALL:
      all = 1;
      break;
    default:
      return fail_usage(c, "unknown option");
    }
  }
  if (optind != argc)
    return fail_usage(c, "unexpected argument '%s'", argv[optind]);
  const char *loc = cli_repo(c);
  if (!loc)
    return EXIT_USAGE;
  struct cli_settings settings;
  struct unlock_out o = {0};
  int rc = cli_settings_load(&settings, loc);
  if (rc == 0)
    rc = repo_clean_locks(loc, &settings.repo, all, report, &o);
  cli_settings_free(&settings);
  if (rc == -1)
    return fail_lib();
  printf("%zu lock(s) removed, %zu kept\n", o.removed, o.kept);
  return 0;
}
