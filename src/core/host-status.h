/* Host status objects: one small object per host that runs the daemon,
 * rewritten after every job, so that any host reading the repository sees
 * how fresh each protected disk and replica is (docs/FORMAT.md, Host
 * status). The document inside is opaque here: src/ops/ writes and reads it. */
#ifndef PL_HOST_STATUS_H
#define PL_HOST_STATUS_H

#include <stddef.h>

struct repo;

/* The largest status document accepted, sealed or not. */
#define HOST_STATUS_MAX (1u << 20)

/* Write doc (len bytes, at most HOST_STATUS_MAX - 64) as host's status
 * object, replacing the last one. Returns 0, or -1 with the error set. */
int repo_put_host_status(struct repo *r, const char *host, const void *doc, size_t len);

/* Called once per host status object with its document (borrowed for the
 * call); return 0 to go on, -1 to stop with the error set. */
typedef int (*host_status_cb)(void *opaque, const char *doc, size_t len);

/* Call cb for every host status object. One that fails authentication or
 * is too large is passed to the repository's warn callback and skipped: a
 * status object is advice, never a reason to fail. Returns 0, or -1 with the
 * error set (listing failed, or cb returned -1). */
int repo_list_host_status(struct repo *r, host_status_cb cb, void *opaque);

#endif
