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
      {NULL, 0, NULL, 0},
  };
  int ch;
  while ((ch = getopt_long(argc, argv, "r:h", opts, NULL)) != -1) {
    switch (ch) {
    case 'r':
      c->repo = optarg;
      break;
    case 'h':
      printf("usage: pilotlight -r REPO init\n\n"
             "Create an empty repository at REPO (a folder, created if missing, or an s3: URL).\n"
             "Refuses if REPO already holds a repository.\n");
      return 0;
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
  if (cli_settings_load(&settings, loc) == 0)
    r = repo_create(loc, &settings.repo);
  cli_settings_free(&settings);
  if (!r)
    return fail_lib();
  printf("created repository %s at %s\n", repo_id(r), loc);
  repo_free(r);
  return 0;
}
