/* S3 settings: the environment pair, AWS_PROFILE in the shared credentials
 * and config files, region and endpoint sources and their order (built by
 * env/settings.c), the knobs, and the pure parsers of store/s3-config.c. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "env/settings.h"
#include "store/s3-config.h"
#include "util/error.h"

static char dir[] = "/tmp/test-s3-config.XXXXXX";
static char cred_path[256], conf_path[256];

static void write_file(const char *path, const char *text)
{
  FILE *f = fopen(path, "w");
  fputs(text, f);
  fclose(f);
}

static void clear_env(void)
{
  const char *vars[] = {
      "AWS_ACCESS_KEY_ID",     "AWS_SECRET_ACCESS_KEY",    "AWS_SESSION_TOKEN",
      "AWS_PROFILE",           "AWS_DEFAULT_PROFILE",      "AWS_REGION",
      "AWS_DEFAULT_REGION",    "AWS_ENDPOINT_URL",         "AWS_ENDPOINT_URL_S3",
      "AWS_CA_BUNDLE",         "PILOTLIGHT_S3_ADDRESSING", "PILOTLIGHT_S3_RETRIES",
      "PILOTLIGHT_S3_TIMEOUT", "PILOTLIGHT_S3_PART_SIZE"};
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
    unsetenv(vars[i]);
  setenv("AWS_SHARED_CREDENTIALS_FILE", cred_path, 1);
  setenv("AWS_CONFIG_FILE", conf_path, 1);
}

/* The environment as the store sees it: settings, then the credentials. */
static int load(struct s3_settings *c)
{
  if (settings_s3_from_env(c) == -1)
    return -1;
  if (s3_settings_check_credentials(c) == -1) {
    s3_settings_free(c);
    return -1;
  }
  return 0;
}

static void test_knobs(void)
{
  struct s3_settings c;
  struct cli_settings cs;
  uint64_t v;
  check_int(s3_parse_size("X", "16M", 0, &v), ==, 0);
  check(v == 16ull << 20);
  check_int(s3_parse_size("X", "3k", 0, &v), ==, 0);
  check(v == 3072);
  check_int(s3_parse_size("X", "-1", 0, &v), ==, -1);
  check_int(s3_parse_size("X", "1x", 0, &v), ==, -1);
  check_int(s3_parse_size("PILOTLIGHT_S3_PART_SIZE", "1M", S3_MIN_PART_SIZE, &v), ==, -1);
  check_int(get_errno(), ==, EINVAL);
  check(strstr(get_error(), "PILOTLIGHT_S3_PART_SIZE=1M: expected a number of at least 5242880") !=
        NULL);

  /* Defaults, then every knob from the environment. */
  clear_env();
  check_int(settings_s3_from_env(&c), ==, 0);
  check_int(c.retries, ==, 6);
  check_int(c.timeout, ==, 60);
  check(c.part_size == 16ull << 20);
  check_int(c.addressing, ==, S3_ADDRESSING_AUTO);
  s3_settings_free(&c);
  setenv("PILOTLIGHT_S3_RETRIES", "1000", 1);
  setenv("PILOTLIGHT_S3_TIMEOUT", "5", 1);
  setenv("PILOTLIGHT_S3_PART_SIZE", "8M", 1);
  setenv("PILOTLIGHT_S3_ADDRESSING", "virtual", 1);
  check_int(settings_s3_from_env(&c), ==, 0);
  check_int(c.retries, ==, 100);
  check_int(c.timeout, ==, 5);
  check(c.part_size == 8ull << 20);
  check_int(c.addressing, ==, S3_ADDRESSING_VIRTUAL);
  s3_settings_free(&c);
  setenv("PILOTLIGHT_S3_ADDRESSING", "sideways", 1);
  check_int(settings_s3_from_env(&c), ==, -1);
  check(strstr(get_error(), "PILOTLIGHT_S3_ADDRESSING=sideways: expected path or virtual") != NULL);
  unsetenv("PILOTLIGHT_S3_ADDRESSING");
  setenv("PILOTLIGHT_S3_TIMEOUT", "0", 1);
  check_int(settings_s3_from_env(&c), ==, -1);
  check(strstr(get_error(), "PILOTLIGHT_S3_TIMEOUT=0") != NULL);

  /* A folder repository reads no S3 setting: no credentials, a bad knob,
   * and still no error. */
  setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials", 1);
  setenv("AWS_CONFIG_FILE", "/nonexistent/config", 1);
  check_int(cli_settings_load(&cs, "/tmp/some-folder"), ==, 0);
  check(cs.repo.s3 == NULL);
  cli_settings_free(&cs);
  check_int(cli_settings_load(&cs, "s3://bucket/prefix"), ==, -1);
  unsetenv("PILOTLIGHT_S3_TIMEOUT");
  check_int(cli_settings_load(&cs, "s3://bucket/prefix"), ==, 0);
  check(cs.repo.s3 == &cs.s3);
  check(cs.s3.access_key == NULL);
  cli_settings_free(&cs);
  clear_env();
}

int main(void)
{
  struct s3_settings c;
  if (!mkdtemp(dir))
    return 1;
  snprintf(cred_path, sizeof cred_path, "%s/credentials", dir);
  snprintf(conf_path, sizeof conf_path, "%s/config", dir);
  write_file(cred_path, "# comment\n"
                        "[default]\n"
                        "aws_access_key_id = DEFAULTID\n"
                        "aws_secret_access_key=defaultsecret\n"
                        "\n"
                        "[work]\n"
                        "  aws_access_key_id   =   WORKID  \n"
                        "aws_secret_access_key = work/secret+x\n"
                        "aws_session_token = worktoken\n"
                        "[halfonly]\n"
                        "aws_access_key_id = HALF\n");
  write_file(conf_path, "[default]\n"
                        "region = eu-west-3\n"
                        "[profile work]\n"
                        "region = ap-south-1\n"
                        "endpoint_url = http://127.0.0.1:9000\n"
                        "s3 =\n"
                        "  endpoint_url = http://nested.example\n"
                        "[work]\n"
                        "region = wrong-section\n"
                        "[profile cfgonly]\n"
                        "aws_access_key_id = CFGID\n"
                        "aws_secret_access_key = cfgsecret\n"
                        "ca_bundle = /etc/ca.pem\n");

  /* The default profile from the files. */
  clear_env();
  check_int(load(&c), ==, 0);
  check_str(c.access_key, "DEFAULTID");
  check_str(c.secret_key, "defaultsecret");
  check(c.session_token == NULL);
  check_str(c.region, "eu-west-3");
  check(c.endpoint == NULL);
  s3_settings_free(&c);

  /* A named profile: credentials file, then region and endpoint from
   * "[profile work]" (not "[work]"), nested settings ignored. */
  clear_env();
  setenv("AWS_PROFILE", "work", 1);
  check_int(load(&c), ==, 0);
  check_str(c.access_key, "WORKID");
  check_str(c.secret_key, "work/secret+x");
  check_str(c.session_token, "worktoken");
  check_str(c.region, "ap-south-1");
  check_str(c.endpoint, "http://127.0.0.1:9000");
  s3_settings_free(&c);

  /* Credentials from the config file; CA bundle from the profile. */
  clear_env();
  setenv("AWS_PROFILE", "cfgonly", 1);
  check_int(load(&c), ==, 0);
  check_str(c.access_key, "CFGID");
  check_str(c.ca_bundle, "/etc/ca.pem");
  check_str(c.region, "us-east-1");
  s3_settings_free(&c);

  /* The environment pair wins; region and endpoint from the environment. */
  clear_env();
  setenv("AWS_PROFILE", "work", 1);
  setenv("AWS_ACCESS_KEY_ID", "ENVID", 1);
  setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
  setenv("AWS_DEFAULT_REGION", "us-west-2", 1);
  setenv("AWS_ENDPOINT_URL", "http://generic", 1);
  setenv("AWS_ENDPOINT_URL_S3", "http://s3specific", 1);
  setenv("AWS_CA_BUNDLE", "/ca", 1);
  check_int(load(&c), ==, 0);
  check_str(c.access_key, "ENVID");
  check(c.session_token == NULL);
  check_str(c.region, "us-west-2");
  check_str(c.endpoint, "http://s3specific");
  check_str(c.ca_bundle, "/ca");
  s3_settings_free(&c);
  setenv("AWS_REGION", "eu-central-1", 1);
  unsetenv("AWS_ENDPOINT_URL_S3");
  check_int(load(&c), ==, 0);
  check_str(c.region, "eu-central-1");
  check_str(c.endpoint, "http://generic");
  s3_settings_free(&c);

  /* Half a key pair in the environment falls back to the profile. */
  clear_env();
  setenv("AWS_ACCESS_KEY_ID", "ENVID", 1);
  check_int(load(&c), ==, 0);
  check_str(c.access_key, "DEFAULTID");
  s3_settings_free(&c);

  /* Missing credentials: EACCES, naming what to set, no secret. */
  clear_env();
  setenv("AWS_PROFILE", "halfonly", 1);
  check_int(load(&c), ==, -1);
  check_int(get_errno(), ==, EACCES);
  check(strstr(get_error(), "AWS_ACCESS_KEY_ID") != NULL);
  clear_env();
  setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials", 1);
  setenv("AWS_CONFIG_FILE", "/nonexistent/config", 1);
  check_int(load(&c), ==, -1);
  check(strstr(get_error(), "/nonexistent/credentials") != NULL);
  s3_settings_free(&c); /* a failed load leaves nothing to free */

  /* The file parser on its own. */
  char *v = s3_config_file_get(conf_path, "work", 1, "region");
  check_str(v, "ap-south-1");
  free(v);
  check(s3_config_file_get(conf_path, "work", 1, "s3") == NULL);
  check(s3_config_file_get(cred_path, "work", 1, "aws_access_key_id") == NULL);
  v = s3_config_file_get(cred_path, "work", 0, "aws_access_key_id");
  check_str(v, "WORKID");
  free(v);
  check(s3_config_file_get("/nonexistent/config", "default", 1, "region") == NULL);
  check(s3_config_file_get(NULL, "default", 1, "region") == NULL);

  test_knobs();

  unlink(cred_path);
  unlink(conf_path);
  rmdir(dir);
  return check_summary();
}
