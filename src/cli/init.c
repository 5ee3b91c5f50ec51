/* pilotlight init: create an empty repository. */
#include <getopt.h>
#include <stdio.h>

#include "cli.h"
#include "settings.h"

int cmd_init(struct cli *c, int argc, char **argv)
{
  static const struct option opts[] = {
      {"repo", required_argument, NULL, 'r'},
      {"help", no_argument, NULL, 'h'},
      {"no-encryption", no_argument, NULL, 256},
      {NULL, 0, NULL, 0},
  };
  int ch, clear = 0;
  while ((ch = getopt_long(argc, argv, "r:h", opts, NULL)) != -1) {
    switch (ch) {
    case 'r':
      c->repo = optarg;
      break;
    case 'h':
      printf("usage: pilotlight -r REPO init [--no-encryption]\n\n"
             "Create an empty repository at REPO (a folder, created if missing, or an s3: URL).\n"
             "Refuses if REPO already holds a repository.\n\n"
             "The repository is encrypted (AES-256-GCM; chunk names are keyed MACs) under a\n"
             "master key that the password opens. The password comes from --password-file,\n"
             "--password-command, PILOTLIGHT_PASSWORD_FILE, PILOTLIGHT_PASSWORD_COMMAND,\n"
             "PILOTLIGHT_PASSWORD, or is asked twice on the terminal. Keep it off the\n"
             "protected site too: without it, nothing in the repository can be read.\n\n"
             "  --no-encryption  a clear repository (format version 1): data, disk names\n"
             "                   and hosts readable by anyone who can read the store\n");
      return 0;
    case 256:
      clear = 1;
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
  struct repo *r = NULL;
  if (cli_settings_load(&settings, loc) == 0) {
    settings.repo.clear = clear;
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
  repo_free(r);
  return 0;
}
