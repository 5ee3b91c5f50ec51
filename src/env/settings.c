/* Builds the library's settings structs from the environment: the AWS
 * credential chain (environment, then the profile in the shared credentials
 * file, then in the shared config file) and the PILOTLIGHT_* knobs. */
#define _GNU_SOURCE
#include "settings.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/error.h"

static const char *env(const char *name)
{
  const char *v = getenv(name);
  return v && v[0] ? v : NULL;
}

static void free_secret(char *s)
{
  if (s) {
    explicit_bzero(s, strlen(s));
    free(s);
  }
}

static int dup_to(char **dst, const char *v)
{
  *dst = strdup(v);
  if (!*dst) {
    set_error(errno, "strdup");
    return -1;
  }
  return 0;
}

/* Path of a shared file: $ENVVAR, else ~/.aws/NAME. Caller frees. */
static char *shared_file(const char *envvar, const char *name)
{
  const char *v = env(envvar);
  if (v)
    return strdup(v);
  const char *home = env("HOME");
  if (!home) {
    struct passwd *pw = getpwuid(getuid());
    home = pw ? pw->pw_dir : NULL;
  }
  if (!home)
    return NULL;
  char *p = NULL;
  if (asprintf(&p, "%s/.aws/%s", home, name) == -1)
    return NULL;
  return p;
}

/* Credentials: the environment pair wins over any profile, as in the AWS
 * CLI; a profile named explicitly with AWS_PROFILE is read from the files. */
static int load_credentials(struct s3_settings *s, const char *conf_path)
{
  if (env("AWS_ACCESS_KEY_ID") && env("AWS_SECRET_ACCESS_KEY")) {
    if (dup_to(&s->access_key, env("AWS_ACCESS_KEY_ID")) == -1 ||
        dup_to(&s->secret_key, env("AWS_SECRET_ACCESS_KEY")) == -1)
      return -1;
    if (env("AWS_SESSION_TOKEN") && dup_to(&s->session_token, env("AWS_SESSION_TOKEN")) == -1)
      return -1;
    return 0;
  }
  for (int is_config = 0; is_config <= 1 && !s->access_key; is_config++) {
    const char *path = is_config ? conf_path : s->credentials_file;
    char *id = s3_config_file_get(path, s->profile, is_config, "aws_access_key_id");
    char *secret = s3_config_file_get(path, s->profile, is_config, "aws_secret_access_key");
    if (id && secret) {
      s->access_key = id;
      s->secret_key = secret;
      s->session_token = s3_config_file_get(path, s->profile, is_config, "aws_session_token");
    } else {
      free_secret(id);
      free_secret(secret);
    }
  }
  return 0;
}

/* *dst = the first set variable of a and b, else key in the config file. */
static int env_or_config(char **dst, const char *a, const char *b, const char *conf_path,
                         const char *profile, const char *key)
{
  const char *v = env(a);
  if (!v && b)
    v = env(b);
  if (v)
    return dup_to(dst, v);
  *dst = s3_config_file_get(conf_path, profile, 1, key);
  return 0;
}

static int load_knobs(struct s3_settings *s)
{
  static const struct {
    const char *name;
    uint64_t min;
  } knobs[] = {
      {"PILOTLIGHT_S3_RETRIES", 0},
      {"PILOTLIGHT_S3_TIMEOUT", 1},
      {"PILOTLIGHT_S3_BACKOFF_MS", 0},
      {"PILOTLIGHT_S3_PART_SIZE", S3_MIN_PART_SIZE},
      {"PILOTLIGHT_S3_MULTIPART_THRESHOLD", S3_MIN_PART_SIZE},
      {"PILOTLIGHT_S3_LIST_MAX_KEYS", 0},
  };
  uint64_t v[6] = {s->retries,   (uint64_t)s->timeout,   (uint64_t)s->backoff_ms,
                   s->part_size, s->multipart_threshold, s->list_max_keys};
  const char *addressing = env("PILOTLIGHT_S3_ADDRESSING");
  if (addressing) {
    if (strcmp(addressing, "path") == 0) {
      s->addressing = S3_ADDRESSING_PATH;
    } else if (strcmp(addressing, "virtual") == 0) {
      s->addressing = S3_ADDRESSING_VIRTUAL;
    } else {
      set_error(EINVAL, "PILOTLIGHT_S3_ADDRESSING=%s: expected path or virtual", addressing);
      return -1;
    }
  }
  for (size_t i = 0; i < sizeof knobs / sizeof knobs[0]; i++) {
    const char *val = env(knobs[i].name);
    if (val && s3_parse_size(knobs[i].name, val, knobs[i].min, &v[i]) == -1)
      return -1;
  }
  /* Clamped here to the ranges the store also enforces, so that no value
   * overflows its field. */
  s->retries = v[0] > 100 ? 100 : (unsigned)v[0];
  s->timeout = v[1] > 86400 ? 86400 : (long)v[1];
  s->backoff_ms = v[2] > 60000 ? 60000 : (long)v[2];
  s->part_size = v[3];
  s->multipart_threshold = v[4];
  s->list_max_keys = v[5] > 1000 ? 1000 : (unsigned)v[5];
  return 0;
}

int settings_s3_from_env(struct s3_settings *s)
{
  char *conf_path = NULL;
  int ret = -1;
  s3_settings_default(s);

  const char *profile = env("AWS_PROFILE");
  if (!profile)
    profile = env("AWS_DEFAULT_PROFILE");
  if (dup_to(&s->profile, profile ? profile : "default") == -1)
    goto out;
  s->credentials_file = shared_file("AWS_SHARED_CREDENTIALS_FILE", "credentials");
  conf_path = shared_file("AWS_CONFIG_FILE", "config");
  if (load_credentials(s, conf_path) == -1)
    goto out;
  if (env_or_config(&s->region, "AWS_REGION", "AWS_DEFAULT_REGION", conf_path, s->profile,
                    "region") == -1)
    goto out;
  if (!s->region && dup_to(&s->region, "us-east-1") == -1)
    goto out;
  if (env_or_config(&s->endpoint, "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", conf_path, s->profile,
                    "endpoint_url") == -1 ||
      env_or_config(&s->ca_bundle, "AWS_CA_BUNDLE", NULL, conf_path, s->profile, "ca_bundle") == -1)
    goto out;
  if (load_knobs(s) == -1)
    goto out;
  ret = 0;
out:
  free(conf_path);
  if (ret == -1)
    s3_settings_free(s);
  return ret;
}

/* The default cache folder: $PILOTLIGHT_CACHE_DIR, else
 * $XDG_CACHE_HOME/pilotlight, else ~/.cache/pilotlight; "" for none. */
static void cache_dir(char *path, size_t cap)
{
  const char *base = env("PILOTLIGHT_CACHE_DIR");
  const char *xdg = env("XDG_CACHE_HOME");
  const char *home = env("HOME");
  path[0] = 0;
  if (base)
    snprintf(path, cap, "%s", base);
  else if (xdg)
    snprintf(path, cap, "%s/pilotlight", xdg);
  else if (home)
    snprintf(path, cap, "%s/.cache/pilotlight", home);
}

/* An integer variable in [min, max], else def (a bad value is ignored). */
static int env_int(const char *name, int min, int max, int def)
{
  const char *v = env(name);
  if (!v)
    return def;
  char *end;
  long n = strtol(v, &end, 10);
  return *end == 0 && n >= min && n <= max ? (int)n : def;
}

/* The library's warnings: one line each on standard error. */
static void print_warning(void *opaque, const char *msg)
{
  (void)opaque;
  fprintf(stderr, "pilotlight: warning: %s\n", msg);
}

/* A bandwidth limit from variable name into *out (left unlimited when the
 * variable is unset). */
static int env_limit(const char *name, struct ratelimit_spec *out)
{
  const char *v = env(name);
  if (!v)
    return 0;
  if (ratelimit_spec_parse(v, out) == -1) {
    prefix_error("%s='%s'", name, v);
    return -1;
  }
  return 0;
}

int settings_limits_from_env(struct ratelimit_spec *up, struct ratelimit_spec *down)
{
  return env_limit("PILOTLIGHT_LIMIT_UPLOAD", up) == -1 ||
                 env_limit("PILOTLIGHT_LIMIT_DOWNLOAD", down) == -1
             ? -1
             : 0;
}

int cli_settings_load(struct cli_settings *out, const char *location)
{
  memset(out, 0, sizeof *out);
  s3_settings_default(&out->s3);
  repo_settings_default(&out->repo);
  out->repo.io_threads = env_int("PILOTLIGHT_IO_THREADS", 1, 16, 0);
  out->repo.zstd_level = env_int("PILOTLIGHT_ZSTD_LEVEL", -7, 19, 3);
  out->repo.warn = print_warning;
#ifdef PL_TEST_HOOKS
  /* Tests shorten the lock refresh period (and so the stale age, 6x). */
  out->repo.lock_refresh_seconds = env_int("PILOTLIGHT_TEST_LOCK_REFRESH", 1, 3600, 0);
  /* Tests make new keys cheap to open: the suite opens thousands. */
  out->repo.kdf_n = (uint64_t)1 << env_int("PILOTLIGHT_TEST_KDF_LOG2N", 10, 20, 0);
  if (out->repo.kdf_n == 1)
    out->repo.kdf_n = 0;
#endif
  if (settings_limits_from_env(&out->repo.limit_upload, &out->repo.limit_download) == -1)
    return -1;
  cache_dir(out->cache_dir, sizeof out->cache_dir);
  out->repo.cache_dir = out->cache_dir[0] ? out->cache_dir : NULL;
  if (location && strncmp(location, "s3:", 3) == 0) {
    if (settings_s3_from_env(&out->s3) == -1)
      return -1;
    out->repo.s3 = &out->s3;
  }
  return 0;
}

void cli_settings_free(struct cli_settings *s)
{
  if (s)
    s3_settings_free(&s->s3);
}
