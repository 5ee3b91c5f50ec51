/* pilotlight init: create an empty repository. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../core/format.h"

#include "cli.h"
#include "env/settings.h"

int cmd_init(struct cli *c, int argc, char **argv)
{
  static const struct option opts[] = {
      {"repo", required_argument, NULL, 'r'},
      {"help", no_argument, NULL, 'h'},
      {"no-encryption", no_argument, NULL, 256},
      {"object-lock", required_argument, NULL, 257},
      {"object-lock-mode", required_argument, NULL, 258},
      {NULL, 0, NULL, 0},
  };
  int ch, clear = 0, lock_mode = 0;
  unsigned long lock_days = 0;
  char *end;
  while ((ch = getopt_long(argc, argv, "r:h", opts, NULL)) != -1) {
    switch (ch) {
    case 'r':
      c->repo = optarg;
      break;
    case 'h':
      printf("usage: pilotlight -r REPO init [--no-encryption] [--object-lock DAYS\n"
             "                                [--object-lock-mode governance|compliance]]\n\n"
             "Create an empty repository at REPO (a folder, created if missing, or an s3: URL).\n"
             "Refuses if REPO already holds a repository.\n\n"
             "The repository is encrypted (AES-256-GCM; chunk names are keyed MACs) under a\n"
             "master key that the password opens. The password comes from --password-file,\n"
             "--password-command, PILOTLIGHT_PASSWORD_FILE, PILOTLIGHT_PASSWORD_COMMAND,\n"
             "PILOTLIGHT_PASSWORD, or is asked twice on the terminal. Keep it off the\n"
             "protected site too: without it, nothing in the repository can be read.\n\n"
             "  --no-encryption  a clear repository (format version 1): data, disk names\n"
             "                   and hosts readable by anyone who can read the store\n"
             "  --object-lock DAYS\n"
             "                   (S3, a bucket created with Object Lock) write every pack,\n"
             "                   index, snapshot and key object retained for DAYS days:\n"
             "                   nobody can delete or overwrite them before that, and\n"
             "                   prune renews the retention of what kept snapshots need.\n"
             "                   Forget and prune then hide objects at once and delete\n"
             "                   them when their retention ends.\n"
             "  --object-lock-mode governance|compliance\n"
             "                   governance (default): a user granted\n"
             "                   s3:BypassGovernanceRetention can still delete;\n"
             "                   compliance: nobody can, not even the bucket's owner\n");
      return 0;
    case 256:
      clear = 1;
      break;
    case 257:
      errno = 0;
      lock_days = strtoul(optarg, &end, 10);
      if (errno || end == optarg || *end || optarg[0] == '-' || lock_days == 0 ||
          lock_days > MAX_LOCK_DAYS)
        return fail_usage(c, "--object-lock '%s': give a number of days from 1 to %u", optarg,
                          MAX_LOCK_DAYS);
      break;
    case 258:
      if (strcmp(optarg, "governance") == 0)
        lock_mode = LOCK_MODE_GOVERNANCE;
      else if (strcmp(optarg, "compliance") == 0)
        lock_mode = LOCK_MODE_COMPLIANCE;
      else
        return fail_usage(c, "--object-lock-mode '%s': give governance or compliance", optarg);
      break;
    default:
      return fail_usage(c, "unknown option");
    }
  }
  if (optind != argc)
    return fail_usage(c, "unexpected argument '%s'", argv[optind]);
  if (lock_mode && !lock_days)
    return fail_usage(c, "--object-lock-mode needs --object-lock DAYS");
  const char *loc = cli_repo(c);
  if (!loc)
    return EXIT_USAGE;
  struct cli_settings settings;
  struct repo *r = NULL;
  if (cli_settings_load(&settings, loc) == 0) {
    settings.repo.clear = clear;
    settings.repo.lock_days = (uint32_t)lock_days;
    settings.repo.lock_mode = lock_days ? (lock_mode ? lock_mode : LOCK_MODE_GOVERNANCE) : 0;
    cli_password_settings(c, &settings.repo);
    r = repo_create(loc, &settings.repo);
  }
  cli_settings_free(&settings);
  if (!r)
    return fail_lib();
  if (repo_encrypted(r))
    printf("created encrypted repository %s at %s (key %.16s)\n", repo_id(r), loc, repo_key_id(r));
  else
    printf("created repository %s at %s, NOT encrypted (--no-encryption): anyone who can "
           "read it can read its data\n",
           repo_id(r), loc);
  if (lock_days)
    printf("every object is written with an Object Lock retention of %lu days (%s mode)\n",
           lock_days, lock_mode == LOCK_MODE_COMPLIANCE ? "compliance" : "governance");
  repo_free(r);
  return 0;
}
