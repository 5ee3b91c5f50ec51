/* Shared pieces of the command line: the command table, option helpers and
 * output helpers. Only cli/ prints and exits. */
#ifndef PL_CLI_H
#define PL_CLI_H

#include <stdint.h>
#include <stdio.h>

#include "core/repo.h"
#include "env/password.h"
#include "util/parse.h"
#include "util/progress.h"

#define EXIT_FAIL 1
#define EXIT_USAGE 2

/* Options every command accepts. */
struct cli {
  const char *repo;             /* -r REPO or PILOTLIGHT_REPOSITORY */
  const char *prog;             /* the command name, for messages */
  int lock;                     /* REPO_LOCK_* that cli_open_repo takes; set by the command */
  char lock_command[256];       /* recorded in the lock; "" = the command's name */
  int64_t lock_wait_ms;         /* --lock-wait, or PILOTLIGHT_LOCK_WAIT; -1: the default */
  int store_reads;              /* repo_settings.store_reads; set by verify and repair */
  int metadata_only;            /* repo_settings.metadata_only; set by status */
  struct cli_password password; /* --password-file, --password-command */
  uint64_t kdf_n;               /* the cost of a new key; set by cli_open_repo */
  /* --limit-upload / --limit-download when given (the *_set flags), which
   * then replace PILOTLIGHT_LIMIT_UPLOAD / PILOTLIGHT_LIMIT_DOWNLOAD. */
  struct ratelimit_spec limit_upload, limit_download;
  int limit_upload_set, limit_download_set;
};

/* How long a command waits for a conflicting lock unless told otherwise. */
#define DEFAULT_LOCK_WAIT_MS (10 * 60 * 1000)

/* Commands: return the process exit status. argv[0] is the command name. */
int cmd_init(struct cli *c, int argc, char **argv);
int cmd_backup(struct cli *c, int argc, char **argv);
int cmd_snapshots(struct cli *c, int argc, char **argv);
int cmd_restore(struct cli *c, int argc, char **argv);
int cmd_verify(struct cli *c, int argc, char **argv);
int cmd_repair(struct cli *c, int argc, char **argv);
int cmd_export(struct cli *c, int argc, char **argv);
int cmd_replica(struct cli *c, int argc, char **argv);
int cmd_unlock(struct cli *c, int argc, char **argv);
int cmd_forget(struct cli *c, int argc, char **argv);
int cmd_prune(struct cli *c, int argc, char **argv);
int cmd_key(struct cli *c, int argc, char **argv);
int cmd_run(struct cli *c, int argc, char **argv);
int cmd_status(struct cli *c, int argc, char **argv);
int cmd_serve(struct cli *c, int argc, char **argv);
int cmd_recover(struct cli *c, int argc, char **argv);
int cmd_drill(struct cli *c, int argc, char **argv);

/* Run prune on r (opened with an exclusive lock) and print its report, as
 * plain lines or, with json, one JSON document. Returns the exit status. */
struct prune_opts;
int cli_prune_run(struct repo *r, const struct prune_opts *po, int json, int verbose);

/* Print "pilotlight: <message>" for the library's last error; returns 1. */
int fail_lib(void);
/* Print "pilotlight: <message>" and a hint to --help; returns 2. */
int fail_usage(struct cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print "pilotlight: <message>"; returns 1. */
int fail_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The repository location, or NULL after printing a usage error. */
const char *cli_repo(struct cli *c);
/* Open the repository; NULL after printing the error. */
struct repo *cli_open_repo(struct cli *c);

/* Ask for the password where c says (--password-file, ...) when st's
 * repository needs one. */
void cli_password_settings(struct cli *c, struct repo_settings *st);

/* Parse the value of --threads (1 to 256). Returns 0, or -1 after printing
 * a usage error. */
int parse_threads(struct cli *c, const char *arg, int *out);

/* Parse the value of --limit-upload (upload 1) or --limit-download (0)
 * into c's limits. Returns 0, or -1 after printing a usage error. */
int parse_limit(struct cli *c, int upload, const char *arg);

/* Open the repository, apply threads (0 = default) and resolve
 * NAME[@SNAPSHOT] (an id, a unique prefix or latest). Returns 0 with *r and
 * *s set (caller frees both), or -1 after printing the error. */
int cli_open_snapshot(struct cli *c, const char *spec, int threads, struct repo **r,
                      struct snapshot **s);

/* SIGINT and SIGTERM during a restore, replica sync or export: the handler
 * stores the signal's number here; the library sees it through its
 * options' cancel pointer and stops with ECANCELED. */
extern _Atomic int cli_cancel;
/* Install that handler (without SA_RESTART: sleeps end early). */
void cli_catch_signals(void);
/* After a library failure: when a signal stopped it, print
 * "pilotlight: WHAT interrupted by SIGNAME: HOW" and return 128 + the signal;
 * else print the library's error and return 1. */
int fail_interrupted(const char *what, const char *how);

/* Write s as a JSON string (with quotes). */
void json_string(FILE *f, const char *s);
/* Format a time as ISO 8601 UTC into buf. */
void format_time(int64_t t, char *buf, size_t n);
/* Format bytes for humans ("1.5 GiB") into buf. */
void format_bytes(uint64_t v, char *buf, size_t n);
/* The progress renderer for the library's options: a line redrawn on
 * stderr when it is a terminal, else NULL (no progress). */
const struct progress_ops *cli_progress(void);

#endif
