/* The daemon: runs the config's jobs on their schedules as child
 * processes, keeps their state across restarts, writes this host's status
 * object into the repository and the metrics textfile after every job, and
 * reloads on SIGHUP and stops cleanly on SIGTERM. */
#ifndef PL_OPS_DAEMON_H
#define PL_OPS_DAEMON_H

#include "config.h"

struct repo;

struct ops_daemon_opts {
  const char *config_path;
  int once;        /* run every due job once, then exit */
  int log_json;    /* log lines as JSON (also set by the config) */
  int check;       /* load and check the config, print the jobs, run nothing */
  const char *exe; /* the pilotlight binary the jobs run */
  /* Open the repository c names for listing snapshots and writing status
   * objects (metadata only), or NULL with the error set. */
  struct repo *(*open_repo)(void *opaque, const struct ops_config *c);
  void *opaque;
};

/* Apply c's repository settings to the environment the jobs inherit
 * (PILOTLIGHT_REPOSITORY, the password file or command, the AWS profile
 * and files, the cache folder). Returns 0 or -1. */
int ops_config_export_env(const struct ops_config *c);

/* Run until SIGTERM or SIGINT (or, with once, until every due job ran).
 * Returns the process exit status: 0, or 1 if the config cannot be loaded
 * or (with once) a job failed. Prints its log on stderr. */
int ops_daemon_run(const struct ops_daemon_opts *o);

#endif
