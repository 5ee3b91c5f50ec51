/* How fresh the pilot light is: the host status document each daemon
 * writes (its jobs' state), and the repository-wide status built from every
 * host's document and the snapshots themselves (docs/OPERATIONS.md). */
#ifndef PL_OPS_STATUS_H
#define PL_OPS_STATUS_H

#include <stdint.h>

#include "config.h"
#include "job.h"

struct repo;
struct json_object;

/* This host's status document (JSON text) for its jobs at now. Caller
 * frees; NULL on allocation failure. */
char *host_status_doc(const struct ops_config *c, const struct job_vec *jobs, int64_t now);

/* The status of every disk and replica in the repository at now, as a JSON
 * object (caller frees with json_object_put): "disks", "replicas", "jobs"
 * and "breached" (true when any objective is breached or a job is
 * failing). c (may be NULL) supplies objectives for disks that no daemon
 * reports. Returns NULL with the error set. */
struct json_object *ops_status_build(struct repo *r, const struct ops_config *c, int64_t now);

/* Read one status object's document (len bytes, untrusted): a host's jobs
 * are appended to the JSON array jobs (each with "host" and "reported"
 * added), a drill report to the array drills; anything else is skipped.
 * Always returns 0 (a status object is advice). */
int ops_status_collect(struct json_object *jobs, struct json_object *drills, const char *doc,
                       size_t len);

#endif
