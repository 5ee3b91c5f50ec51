/* pilotlight: entry point. Parses the global options, picks the command
 * and hands it the rest of the arguments. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

struct command {
  const char *name;
  int (*run)(struct cli *c, int argc, char **argv);
  const char *summary;
};

static const struct command commands[] = {
    {"init", cmd_init, "create a new repository"},
    {"backup", cmd_backup, "back up a disk image or block device"},
    {"snapshots", cmd_snapshots, "list snapshots"},
    {"restore", cmd_restore, "restore a snapshot to a file or block device"},
    {"verify", cmd_verify, "check the repository's integrity"},
    {"repair", cmd_repair, "act on the damage verify recorded; --undelete: hidden objects"},
    {"export", cmd_export, "write a snapshot as a raw, VMDK or VHD image file"},
    {"replica", cmd_replica, "replica sync: keep a warm replica at the latest snapshot"},
    {"forget", cmd_forget, "remove snapshots by a retention policy or by id"},
    {"prune", cmd_prune, "delete what no snapshot references; compact packs and index"},
    {"unlock", cmd_unlock, "remove stale repository locks"},
    {"key", cmd_key, "list, add or remove the passwords of an encrypted repository"},
    {"run", cmd_run, "run the config file's jobs on their schedules (the daemon)"},
    {"status", cmd_status, "how fresh each disk and replica is, against its objective"},
    {"serve", cmd_serve, "export a snapshot over NBD (nbdkit), read-only or with an overlay"},
    {"drill", cmd_drill, "a recovery drill: boot a snapshot in an isolated VM, record the RTO"},
    {"recover", cmd_recover, "recover --live: boot a snapshot at once, copy it locally as it runs"},
};

static void usage(FILE *f)
{
  fprintf(f, "usage: pilotlight [-r REPO] COMMAND [OPTIONS] [ARGS]\n"
             "\n"
             "Keeps a pilot-light copy of disks in a repository and rebuilds them exactly.\n"
             "\n"
             "Commands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
    fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
  fprintf(f, "\n"
             "Global options (also accepted after the command name):\n"
             "  -r, --repo REPO   repository: a folder, s3://BUCKET/PREFIX or\n"
             "                    s3:http(s)://HOST[:PORT]/BUCKET/PREFIX\n"
             "                    (default: $PILOTLIGHT_REPOSITORY)\n"
             "      --lock-wait DURATION  wait this long for a repository lock that another\n"
             "                    command holds, e.g. 30s, 10min, 1h (default: 10min, or\n"
             "                    $PILOTLIGHT_LOCK_WAIT); 0 fails at once\n"
             "      --password-file FILE  the repository password is FILE's first line\n"
             "                    (default: $PILOTLIGHT_PASSWORD_FILE)\n"
             "      --password-command CMD  the password is the first line CMD prints\n"
             "                    (default: $PILOTLIGHT_PASSWORD_COMMAND); else\n"
             "                    $PILOTLIGHT_PASSWORD, else a prompt on the terminal\n"
             "  -h, --help        show this help; 'pilotlight COMMAND --help' for a command\n"
             "  -V, --version     show the version\n"
             "\n"
             "Exit status: 0 success, 1 failure, 2 usage error.\n");
}

/* Options that apply to every command, accepted before or after the command
 * name: take them out of argv here (before any "--"). */
static int take_globals(struct cli *c, int *argc, char **argv)
{
  static const char *const names[] = {"--lock-wait", "--password-file", "--password-command"};
  const char *vals[3] = {0};
  int o = 1;
  for (int i = 1; i < *argc; i++) {
    if (strcmp(argv[i], "--") == 0) {
      while (i < *argc)
        argv[o++] = argv[i++];
      break;
    }
    int taken = 0;
    for (size_t k = 0; k < 3 && !taken; k++) {
      size_t n = strlen(names[k]);
      if (strcmp(argv[i], names[k]) == 0 && i + 1 < *argc) {
        vals[k] = argv[++i];
        taken = 1;
      } else if (strncmp(argv[i], names[k], n) == 0 && argv[i][n] == '=') {
        vals[k] = argv[i] + n + 1;
        taken = 1;
      }
    }
    if (!taken)
      argv[o++] = argv[i];
  }
  *argc = o;
  argv[o] = NULL;
  c->password.file = vals[1];
  c->password.command = vals[2];
  const char *env = getenv("PILOTLIGHT_LOCK_WAIT");
  const char *val = vals[0] ? vals[0] : env && *env ? env : NULL;
  c->lock_wait_ms = -1;
  if (val) {
    int64_t sec;
    if (parse_duration(val, &sec) == -1 || sec > INT64_MAX / 1000) {
      fprintf(stderr,
              "pilotlight: %s '%s' is not a duration: give seconds or units, e.g. 30s, "
              "10min, 1h\n",
              vals[0] ? "--lock-wait" : "PILOTLIGHT_LOCK_WAIT", val);
      return -1;
    }
    c->lock_wait_ms = sec * 1000;
  }
  return 0;
}

int main(int argc, char **argv)
{
  static const struct option opts[] = {
      {"repo", required_argument, NULL, 'r'},
      {"help", no_argument, NULL, 'h'},
      {"version", no_argument, NULL, 'V'},
      {NULL, 0, NULL, 0},
  };
  struct cli c = {0};
  int ch;
  if (take_globals(&c, &argc, argv) == -1)
    return EXIT_USAGE;
  while ((ch = getopt_long(argc, argv, "+r:hV", opts, NULL)) != -1) {
    switch (ch) {
    case 'r':
      c.repo = optarg;
      break;
    case 'h':
      usage(stdout);
      return 0;
    case 'V':
      printf("pilotlight %s\n", PL_VERSION);
      return 0;
    default:
      usage(stderr);
      return EXIT_USAGE;
    }
  }
  if (optind >= argc) {
    usage(stderr);
    return EXIT_USAGE;
  }
  const char *name = argv[optind];
  for (size_t i = 0; i < sizeof commands / sizeof *commands; i++) {
    if (strcmp(commands[i].name, name) == 0) {
      int first = optind;
      c.prog = name;
      optind = 0; /* glibc: start a fresh scan for the command's own options */
      return commands[i].run(&c, argc - first, argv + first);
    }
  }
  fprintf(stderr, "pilotlight: unknown command '%s' (see pilotlight --help)\n", name);
  return EXIT_USAGE;
}
