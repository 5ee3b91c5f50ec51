/* pilotlight run: the daemon, in the foreground, from the config file. */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "ops/daemon.h"
#include "env/settings.h"
#include "util/error.h"

static void help(void)
{
  printf("usage: pilotlight run [--config FILE] [--once | --check] [--log-json]\n"
         "\n"
         "Run the jobs the config file declares (backups, replica syncs, verify, prune) on\n"
         "their schedules, in the foreground, until SIGTERM or SIGINT. Each job is a\n"
         "pilotlight command run as a child process; two jobs on one disk never overlap,\n"
         "prune runs alone, a failed job is retried with back-off (from [daemon]\n"
         "retry-initial, doubling, at most its interval), and runs missed while the\n"
         "daemon was down run once. After every job the daemon writes this host's status\n"
         "into the repository (read by pilotlight status anywhere), the metrics textfile\n"
         "and the alerts. SIGHUP reloads the config (a bad file is refused and the running\n"
         "one kept); SIGTERM stops the running jobs cleanly ([daemon] stop-timeout, then\n"
         "SIGKILL). Under systemd it notifies readiness and the watchdog (Type=notify).\n"
         "\n"
         "Options:\n"
         "  --config FILE   the config file (default %s); see docs/CONFIG.md\n"
         "  --once          run every job that is due once, then exit: for a timer or\n"
         "                  cron; the exit status is 1 if any of them failed\n"
         "  --check         check the config file and list its jobs; run nothing\n"
         "  --log-json      log one JSON object per line instead of key=value\n",
         OPS_CONFIG_DEFAULT);
}

/* The daemon's own view of the repository: metadata only, no lock. */
static struct repo *open_repo(void *opaque, const struct ops_config *c)
{
  struct cli *cl = opaque;
  struct cli_settings settings;
  struct repo *r = NULL;
  if (cli_settings_load(&settings, c->location) == 0) {
    settings.repo.metadata_only = 1;
    cli_password_settings(cl, &settings.repo);
    r = repo_open(c->location, &settings.repo);
  }
  cli_settings_free(&settings);
  return r;
}

int cmd_run(struct cli *c, int argc, char **argv)
{
  enum { O_CONFIG = 256, O_ONCE, O_LOG_JSON, O_CHECK };
  static const struct option opts[] = {
      {"help", no_argument, NULL, 'h'},      {"config", required_argument, NULL, O_CONFIG},
      {"once", no_argument, NULL, O_ONCE},   {"log-json", no_argument, NULL, O_LOG_JSON},
      {"check", no_argument, NULL, O_CHECK}, {NULL, 0, NULL, 0},
  };
  struct ops_daemon_opts o = {
      .config_path = OPS_CONFIG_DEFAULT, .open_repo = open_repo, .opaque = c};
  int ch;
  while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
    switch (ch) {
    case 'h':
      help();
      return 0;
    case O_CONFIG:
      o.config_path = optarg;
      break;
    case O_ONCE:
      o.once = 1;
      break;
    case O_LOG_JSON:
      o.log_json = 1;
      break;
    case O_CHECK:
      o.check = 1;
      break;
    default:
      return fail_usage(c, "unknown option");
    }
  }
  if (optind != argc)
    return fail_usage(c, "unexpected argument '%s'", argv[optind]);
  if (c->repo)
    return fail_usage(c, "-r: the repository comes from the config file's [repository] location");
  /* The jobs inherit a password source given on this command line. */
  if ((c->password.file && setenv("PILOTLIGHT_PASSWORD_FILE", c->password.file, 1) == -1) ||
      (c->password.command && setenv("PILOTLIGHT_PASSWORD_COMMAND", c->password.command, 1) == -1))
    return fail_msg("setenv: out of memory");
  static char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0)
    return fail_msg("cannot find the pilotlight binary (/proc/self/exe): is /proc mounted?");
  exe[n] = 0;
  o.exe = exe;
  return ops_daemon_run(&o);
}
