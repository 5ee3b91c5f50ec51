/* Jobs: what the daemon runs. Each job is a pilotlight command run as a
 * child process (so a crash or a hang stays in it, and SIGTERM reaches a
 * command that already knows how to stop cleanly); this module builds the
 * commands from the config, runs them, and reads their --json results. */
#ifndef PL_OPS_JOB_H
#define PL_OPS_JOB_H

#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "config.h"
#include "util/strbuf.h"
#include "util/vec.h"

enum job_kind { JOB_BACKUP, JOB_REPLICA, JOB_VERIFY, JOB_PRUNE, JOB_DRILL };

/* The outcome of a job's last run. */
struct job_outcome {
  int ok;
  int exit_status;   /* the command's, or 128 + the signal that ended it */
  char error[512];   /* the command's last error line ("" on success) */
  char snapshot[65]; /* backup: committed; replica: held */
  char mode[24];     /* backup: "cbt", "hash-compare", ... */
  char note[256];    /* backup: why CBT was not used, etc. */
  int cbt_fallback;  /* backup: CBT was asked for and not used */
  int64_t snap_time; /* backup: the snapshot's time */
  uint64_t bytes_read, bytes_new, bytes_stored, bytes_written;
  unsigned damaged;       /* verify: problems found */
  double rto, first_byte; /* drill: seconds to the marker or port, and to the first byte */
  double seconds;
};

struct job {
  char name[96]; /* "backup web01", "replica web01", "verify", "prune", "drill web01" */
  enum job_kind kind;
  char disk[72];   /* backup, replica and drill: the disk; "" for repository jobs */
  char target[80]; /* replica: its section name */
  int64_t every, rpo;
  /* Scheduling state, kept across restarts in the state file. */
  int64_t next_run, last_start, last_end, last_success;
  unsigned failures; /* in a row */
  uint64_t runs_total, failures_total, cbt_fallbacks_total;
  uint64_t bytes_read_total, bytes_new_total, bytes_stored_total;
  unsigned verify_slice; /* the next verify read-data slice, 1-based */
  int64_t snap_time;     /* backup: the newest snapshot's time; replica: the held one's */
  char snapshot[65];     /* and its id, kept across failed and interrupted runs */
  struct job_outcome last;
  struct job_outcome cycle; /* the last successful run's: what status shows of a cycle */
  /* The running child, if any. */
  pid_t pid;
  int out_fd, err_fd; /* -1 once closed */
  struct strbuf out;  /* its stdout: the --json result */
  char errline[1024]; /* the stderr line being read */
  size_t errlen;
  char lasterr[512];       /* the last "pilotlight: " line it printed */
  int step;                /* prune: the forget steps come first */
  struct timespec started; /* CLOCK_MONOTONIC, for the duration */
  int retired;             /* gone from the config; dropped when it ends */
  int stop_signal;         /* SIGTERM sent by a stopping daemon */
};

struct job_vec {
  struct job *v;
  size_t len, cap;
};

/* The jobs config declares, in a stable order. Returns 0 or -1. */
int jobs_from_config(const struct ops_config *c, struct job_vec *out);

/* The command of j's current step as argv (exe first), or 0 steps left.
 * Returns the number of arguments (argv NULL-terminated, strings owned by
 * out), 0 when no step is left, -1 on error. */
int job_step_argv(const struct job *j, const struct ops_config *c, const char *exe,
                  struct strings *out);

/* In a child the daemon forked, before exec: its own process group, no
 * blocked signals, SIGPIPE back to its default. */
void job_child_setup(void);

/* Start argv as a child with stdout and stderr on pipes (j->out_fd,
 * j->err_fd) in its own process group. Returns 0 or -1. */
int job_spawn(struct job *j, struct strings *argv);
/* Read what the child wrote so far (non-blocking); each complete stderr
 * line goes to line(opaque, j, text) for the daemon's log. */
void job_read_output(struct job *j,
                     void (*line)(void *opaque, const struct job *j, const char *text),
                     void *opaque);
/* The child exited with status (waitpid's): fill j->last for this step.
 * Returns 1 if the job has another step to run, 0 when done. */
int job_step_done(struct job *j, const struct ops_config *c, int status);
/* Release the pipes and buffers of a finished child. */
void job_io_free(struct job *j);

#endif
