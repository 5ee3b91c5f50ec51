/* Prometheus text exposition of the daemon's jobs (docs/OPERATIONS.md,
 * Metrics): written as a textfile for node_exporter's textfile collector. */
#ifndef PL_OPS_METRICS_H
#define PL_OPS_METRICS_H

#include <stdint.h>

#include "config.h"
#include "job.h"

/* The metrics of jobs at now, as text (caller frees), or NULL with the
 * error set. */
char *metrics_text(const struct ops_config *c, const struct job_vec *jobs, int64_t now);

/* Write metrics_text to c->metrics_textfile through a temporary name and a
 * rename, so a reader never sees half a file. Returns 0 or -1. */
int metrics_write_textfile(const struct ops_config *c, const struct job_vec *jobs, int64_t now);

/* When the newest snapshot of backup job j will be older than its
 * objective before the next one lands, judged from the last cycle's bytes
 * and throughput: that time (seconds since the epoch), or 0 when no breach
 * is predicted or j has no objective. */
int64_t metrics_predicted_breach(const struct job *j, int64_t now);

#endif
