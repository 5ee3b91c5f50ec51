/* The daemon's config file (docs/CONFIG.md): one INI file, parsed with
 * libinih, that declares the repository, the protected disks, the replicas,
 * the verify and prune jobs, metrics and alerts. Loading checks every value
 * and every cross reference, so nothing starts on a bad file. */
#ifndef PL_OPS_CONFIG_H
#define PL_OPS_CONFIG_H

#include <stdint.h>

#include "util/vec.h"

/* The default path of the config file. */
#define OPS_CONFIG_DEFAULT "/etc/pilotlight/pilotlight.conf"

/* A protected disk: [disk NAME]. Without a source it has no backup job here
 * (a maintenance or recovery host declares it for retention and objectives). */
struct ops_disk {
  char *name;
  char *source;             /* a file, a block device or an NBD URI; NULL: none */
  char *cbt, *cbt_next;     /* backup --cbt qemu-bitmap:B, --cbt-next */
  char *qcow2, *qmp, *node; /* backup --qcow2 IMAGE, --qmp SOCKET --node NODE */
  char *changed_extents;    /* backup --changed-extents FILE */
  char *block_size;         /* backup --block-size */
  int64_t every;            /* seconds between backups; 0: none */
  int64_t rpo;              /* objective for the newest snapshot's age; 0: none */
  unsigned threads;         /* 0: the default */
  /* Retention (forget before each prune): 0 / NULL = rule not set. */
  unsigned keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, keep_yearly;
  char *keep_within;
  /* Recovery drills (pilotlight drill --disk NAME): 0 / NULL = not set. */
  int64_t drill_every;   /* seconds between drills; 0: none */
  char *drill_expect;    /* --boot --expect MARKER */
  unsigned drill_port;   /* --port N */
  int64_t drill_timeout; /* --timeout */
  char *drill_device;    /* --device */
  char *drill_nic;       /* --nic */
  unsigned drill_memory; /* --memory MiB */
  int line;              /* of the section header, for messages */
};

/* A warm replica: [replica NAME]. */
struct ops_replica {
  char *name;
  char *disk;   /* default: the section's name */
  char *target; /* a raw file or a block device */
  char *state_dir;
  int64_t every;
  int64_t rpo; /* objective for the age of the snapshot it holds; 0: none */
  unsigned threads;
  int verify; /* replica sync --verify */
  int line;
};

struct ops_config {
  char *path;
  /* [repository] */
  char *location, *password_file, *password_command;
  char *aws_profile, *aws_credentials_file, *aws_config_file, *cache_dir;
  char *limit_upload, *limit_download; /* bandwidth limits (README, Bandwidth limits) */
  /* [daemon] */
  char *host;      /* default: the host name */
  char *state_dir; /* default /var/lib/pilotlight */
  int log_json;
  unsigned max_jobs;     /* jobs at once; default 2 */
  int64_t retry_initial; /* first retry after a failure; default 30 s, doubling */
  int64_t stop_timeout;  /* SIGTERM: how long jobs get to stop; default 60 s */
  /* [metrics] */
  char *metrics_textfile;
  char *metrics_listen; /* the HTTP endpoint: PORT (loopback) or ADDR:PORT */
  /* [alerts] */
  char *alert_command, *alert_webhook;
  int64_t alert_timeout; /* default 30 s */
  /* [verify] */
  int64_t verify_every;
  unsigned verify_read_data; /* 0: structure only; N: read one N-th of the packs per run */
  /* [prune] */
  int64_t prune_every;
  char *prune_max_unused; /* NULL: prune's default */
  int64_t prune_grace;    /* -1: prune's default */
  VEC(struct ops_disk) disks;
  VEC(struct ops_replica) replicas;
};

/* Parse the file at path. Returns the config (caller frees with
 * ops_config_free), or NULL with the error set: "FILE:LINE: [SECTION] KEY:
 * what is wrong and how to fix it". */
struct ops_config *ops_config_load(const char *path);
void ops_config_free(struct ops_config *c);

/* The disk named name, or NULL. */
const struct ops_disk *ops_config_disk(const struct ops_config *c, const char *name);

/* Parse a schedule: "every DURATION", DURATION as parse_duration's with "m"
 * for minutes too ("every 15m", "every 1h30m"), as every duration in the
 * file. Returns 0 or -1. */
int ops_parse_schedule(const char *s, int64_t *seconds);

#endif
