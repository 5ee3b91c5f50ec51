/* The S3 store's settings: defaults, copies, and the parsers for the AWS
 * shared files and for sizes. The caller reads the environment
 * (env/settings.c); this file only reads the files it is given. */
#define _GNU_SOURCE
#include "s3-config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/error.h"

static void free_secret(char *s)
{
  if (s) {
    explicit_bzero(s, strlen(s));
    free(s);
  }
}

void s3_settings_free(struct s3_settings *cfg)
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
  free(cfg->credentials_file);
  memset(cfg, 0, sizeof *cfg);
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

char *s3_config_file_get(const char *path, const char *profile, int is_config, const char *key)
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

void s3_settings_default(struct s3_settings *s)
{
  memset(s, 0, sizeof *s);
  s->addressing = S3_ADDRESSING_AUTO;
  s->retries = 6;
  s->timeout = 60;
  s->backoff_ms = 100;
  s->part_size = 16ull << 20;
  s->multipart_threshold = 64ull << 20;
  s->list_max_keys = 0;
}

static int dup_opt(char **dst, const char *v)
{
  *dst = NULL;
  if (!v)
    return 0;
  *dst = strdup(v);
  if (!*dst) {
    set_error(errno, "strdup");
    return -1;
  }
  return 0;
}

int s3_settings_copy(struct s3_settings *dst, const struct s3_settings *src)
{
  *dst = *src;
  if (dup_opt(&dst->access_key, src->access_key) == -1 ||
      dup_opt(&dst->secret_key, src->secret_key) == -1 ||
      dup_opt(&dst->session_token, src->session_token) == -1 ||
      dup_opt(&dst->region, src->region ? src->region : "us-east-1") == -1 ||
      dup_opt(&dst->endpoint, src->endpoint) == -1 ||
      dup_opt(&dst->ca_bundle, src->ca_bundle) == -1 ||
      dup_opt(&dst->profile, src->profile) == -1 ||
      dup_opt(&dst->credentials_file, src->credentials_file) == -1) {
    s3_settings_free(dst);
    return -1;
  }
  return 0;
}

int s3_settings_check_credentials(const struct s3_settings *s)
{
  if (s->access_key && s->secret_key)
    return 0;
  set_error(EACCES,
            "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or "
            "AWS_PROFILE with a profile in %s",
            s->credentials_file ? s->credentials_file : "~/.aws/credentials");
  return -1;
}

int s3_parse_size(const char *name, const char *v, uint64_t min, uint64_t *out)
{
  char *end;
  errno = 0;
  unsigned long long n = strtoull(v, &end, 10);
  uint64_t mul = 1;
  if (*end == 'k' || *end == 'K')
    mul = 1ull << 10;
  else if (*end == 'm' || *end == 'M')
    mul = 1ull << 20;
  else if (*end == 'g' || *end == 'G')
    mul = 1ull << 30;
  if (mul != 1)
    end++;
  if (errno || end == v || *end || v[0] == '-' || n > UINT64_MAX / mul || n * mul < min) {
    set_error(EINVAL, "%s=%s: expected a number of at least %" PRIu64, name, v, min);
    return -1;
  }
  *out = n * mul;
  return 0;
}
