/* The changed-block tracking options of `pilotlight backup`: their checks,
 * the plan they make for the library (src/cbt/cbt.h) and the messages. */
#ifndef PL_BACKUP_CBT_H
#define PL_BACKUP_CBT_H

#include "cli.h"
#include "cbt/cbt.h"

/* The CBT options as given; strings borrowed from argv. */
struct cbt_cli {
  const char *cbt;        /* --cbt qemu-bitmap:BITMAP */
  const char *cbt_next;   /* --cbt-next BITMAP */
  const char *qcow2;      /* --qcow2 IMAGE */
  const char *qmp;        /* --qmp SOCKET */
  const char *node;       /* --node NODE */
  const char *nbd_socket; /* --nbd-socket PATH */
  const char *tmpdir;     /* --fleece-dir DIR */
  int verify;             /* --verify-cbt */
};

/* 1 when any CBT workflow was asked for. */
int cbt_cli_wanted(const struct cbt_cli *o);

/* A usage error message for bad combinations, or NULL. nsources is the
 * number of SOURCE arguments; has_extents tells --changed-extents. */
const char *cbt_cli_check(const struct cbt_cli *o, int nsources, int has_extents);

/* Start the session (cbt_backup_start) and fill bo's src, changed, cbt,
 * mode and note. The private folder is --fleece-dir, else $TMPDIR. Prints a
 * warning when CBT falls back. Returns the session (the caller ends it with
 * cbt_cli_end), or NULL after printing the error. */
struct cbt_session *cbt_cli_start(struct repo *r, const struct cbt_cli *o, const char *source,
                                  struct backup_opts *bo);

/* After repo_backup (snap is NULL when it failed): run --verify-cbt if asked,
 * with the backup's worker count, and end the session. Returns the exit
 * status: 0, or 1 after printing. */
int cbt_cli_end(struct repo *r, struct cbt_session *s, const struct cbt_cli *o,
                const struct snapshot *snap);

#endif
