/* Reads AWS settings: environment first, then the profile's entries in the
 * shared credentials file, then in the shared config file. Only the flat
 * "key = value" lines of a profile section are read; nested blocks
 * ("s3 =" and the indented lines under it) are skipped. */
#define _GNU_SOURCE
#include "s3-config.h"

#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../util/error.h"

static void free_secret(char *s)
{
  if (s) {
    explicit_bzero(s, strlen(s));
    free(s);
  }
}

void s3_config_free(struct s3_config *cfg)
{
  if (!cfg)
    return;
  free_secret(cfg->access_key);
  free_secret(cfg->secret_key);
  free_secret(cfg->session_token);
  free(cfg->region);
  free(cfg->endpoint);
  free(cfg->ca_bundle);
  free(cfg->profile);
  memset(cfg, 0, sizeof *cfg);
}

static const char *env(const char *name)
{
  const char *v = getenv(name);
  return v && v[0] ? v : NULL;
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

static char *trim(char *s)
{
  while (*s == ' ' || *s == '\t')
    s++;
  size_t n = strlen(s);
  while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
    s[--n] = 0;
  return s;
}

/* Value of key in section of an INI file, or NULL (also when the file is
 * missing). is_config: sections are "[profile NAME]" except "[default]". */
static char *ini_get(const char *path, const char *profile, int is_config, const char *key)
{
  if (!path)
    return NULL;
  FILE *f = fopen(path, "re");
  if (!f)
    return NULL;
  char *line = NULL, *result = NULL;
  size_t cap = 0;
  int in_section = 0;
  int nested = 0; /* inside "s3 =" followed by indented sub-settings */
  while (getline(&line, &cap, f) != -1) {
    int indented = line[0] == ' ' || line[0] == '\t';
    char *s = trim(line);
    if (s[0] == 0 || s[0] == '#' || s[0] == ';')
      continue;
    if (s[0] == '[') {
      char *close = strchr(s, ']');
      if (!close)
        continue;
      *close = 0;
      char *name = trim(s + 1);
      /* The config file names profiles "[profile NAME]"; only the default
       * one may also be written "[default]". */
      if (is_config) {
        if (strncmp(name, "profile", 7) == 0 && (name[7] == ' ' || name[7] == '\t'))
          name = trim(name + 8);
        else if (strcmp(name, "default") != 0)
          name = "";
      }
      in_section = strcmp(name, profile) == 0;
      nested = 0;
      continue;
    }
    if (indented && nested)
      continue;
    nested = 0;
    if (!in_section)
      continue;
    char *eq = strchr(s, '=');
    if (!eq)
      continue;
    *eq = 0;
    char *v = trim(eq + 1);
    if (v[0] == 0)
      nested = 1;
    if (strcmp(trim(s), key) != 0)
      continue;
    if (v[0]) {
      free_secret(result);
      result = strdup(v);
    }
  }
  if (line) {
    explicit_bzero(line, cap);
    free(line);
  }
  fclose(f);
  return result;
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

int s3_config_load(struct s3_config *cfg)
{
  char *cred_path = NULL, *conf_path = NULL;
  int ret = -1;
  memset(cfg, 0, sizeof *cfg);

  const char *profile = env("AWS_PROFILE");
  if (!profile)
    profile = env("AWS_DEFAULT_PROFILE");
  if (dup_to(&cfg->profile, profile ? profile : "default") == -1)
    goto out;
  cred_path = shared_file("AWS_SHARED_CREDENTIALS_FILE", "credentials");
  conf_path = shared_file("AWS_CONFIG_FILE", "config");

  /* Credentials: the environment pair wins over any profile, as in the AWS
   * CLI; a profile named explicitly with AWS_PROFILE is read from the files. */
  if (env("AWS_ACCESS_KEY_ID") && env("AWS_SECRET_ACCESS_KEY")) {
    if (dup_to(&cfg->access_key, env("AWS_ACCESS_KEY_ID")) == -1 ||
        dup_to(&cfg->secret_key, env("AWS_SECRET_ACCESS_KEY")) == -1)
      goto out;
    if (env("AWS_SESSION_TOKEN") && dup_to(&cfg->session_token, env("AWS_SESSION_TOKEN")) == -1)
      goto out;
  } else {
    for (int is_config = 0; is_config <= 1 && !cfg->access_key; is_config++) {
      const char *path = is_config ? conf_path : cred_path;
      char *id = ini_get(path, cfg->profile, is_config, "aws_access_key_id");
      char *secret = ini_get(path, cfg->profile, is_config, "aws_secret_access_key");
      if (id && secret) {
        cfg->access_key = id;
        cfg->secret_key = secret;
        cfg->session_token = ini_get(path, cfg->profile, is_config, "aws_session_token");
      } else {
        free_secret(id);
        free_secret(secret);
      }
    }
  }
  if (!cfg->access_key) {
    set_error(EACCES,
              "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
              "AWS_PROFILE with a profile in %s",
              cred_path ? cred_path : "~/.aws/credentials");
    goto out;
  }

  const char *region = env("AWS_REGION");
  if (!region)
    region = env("AWS_DEFAULT_REGION");
  if (region) {
    if (dup_to(&cfg->region, region) == -1)
      goto out;
  } else {
    cfg->region = ini_get(conf_path, cfg->profile, 1, "region");
    if (!cfg->region && dup_to(&cfg->region, "us-east-1") == -1)
      goto out;
  }

  const char *endpoint = env("AWS_ENDPOINT_URL_S3");
  if (!endpoint)
    endpoint = env("AWS_ENDPOINT_URL");
  if (endpoint) {
    if (dup_to(&cfg->endpoint, endpoint) == -1)
      goto out;
  } else {
    cfg->endpoint = ini_get(conf_path, cfg->profile, 1, "endpoint_url");
  }

  const char *ca = env("AWS_CA_BUNDLE");
  if (ca) {
    if (dup_to(&cfg->ca_bundle, ca) == -1)
      goto out;
  } else {
    cfg->ca_bundle = ini_get(conf_path, cfg->profile, 1, "ca_bundle");
  }
  ret = 0;
out:
  free(cred_path);
  free(conf_path);
  if (ret == -1)
    s3_config_free(cfg);
  return ret;
}
