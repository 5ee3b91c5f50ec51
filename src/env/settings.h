/* Settings from the environment: the only place that reads the variables
 * the library's settings structs come from (PILOTLIGHT_*, the AWS credential
 * chain, XDG_CACHE_HOME and HOME). Their meaning: docs/S3.md, README.md. */
#ifndef PL_ENV_SETTINGS_H
#define PL_ENV_SETTINGS_H

#include <limits.h>

#include "core/repo.h"
#include "store/s3-config.h"

/* Everything needed to open a repository; repo.s3 and repo.cache_dir point
 * into the struct itself. Free with cli_settings_free. */
struct cli_settings {
  struct repo_settings repo;
  struct s3_settings s3;
  char cache_dir[PATH_MAX];
};

/* Fill out from the environment for the repository at location. The S3
 * settings are read only for s3: locations, so that a folder repository does
 * not depend on them. Missing credentials are not an error here: opening
 * the store reports them. Returns 0, or -1 with the error set (a malformed
 * PILOTLIGHT_S3_* value names the variable). */
int cli_settings_load(struct cli_settings *out, const char *location);
void cli_settings_free(struct cli_settings *s);

/* Fill s from the AWS environment variables and the shared ~/.aws files, in
 * the order the AWS CLI uses, and the PILOTLIGHT_S3_* knobs. Returns 0, or
 * -1 with the error set and s empty. Free s with s3_settings_free. */
int settings_s3_from_env(struct s3_settings *s);

/* The default bandwidth limits, PILOTLIGHT_LIMIT_UPLOAD and
 * PILOTLIGHT_LIMIT_DOWNLOAD (the grammar of util/ratelimit.h), into *up and
 * *down; an unset variable is unlimited. Returns 0, or -1 with the error
 * set to a message naming the variable. */
int settings_limits_from_env(struct ratelimit_spec *up, struct ratelimit_spec *down);

#endif
