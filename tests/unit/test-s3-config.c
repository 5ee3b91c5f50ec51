/* S3 settings: the environment pair, AWS_PROFILE in the shared credentials
 * and config files, region and endpoint sources and their order. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
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
  const char *vars[] = {"AWS_ACCESS_KEY_ID",  "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                        "AWS_PROFILE",        "AWS_DEFAULT_PROFILE",   "AWS_REGION",
                        "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL",      "AWS_ENDPOINT_URL_S3",
                        "AWS_CA_BUNDLE"};
  for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
    unsetenv(vars[i]);
  setenv("AWS_SHARED_CREDENTIALS_FILE", cred_path, 1);
  setenv("AWS_CONFIG_FILE", conf_path, 1);
}

int main(void)
{
  struct s3_config c;
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
  check_int(s3_config_load(&c), ==, 0);
  check_str(c.access_key, "DEFAULTID");
  check_str(c.secret_key, "defaultsecret");
  check(c.session_token == NULL);
  check_str(c.region, "eu-west-3");
  check(c.endpoint == NULL);
  s3_config_free(&c);

  /* A named profile: credentials file, then region and endpoint from
   * "[profile work]" (not "[work]"), nested settings ignored. */
  clear_env();
  setenv("AWS_PROFILE", "work", 1);
  check_int(s3_config_load(&c), ==, 0);
  check_str(c.access_key, "WORKID");
  check_str(c.secret_key, "work/secret+x");
  check_str(c.session_token, "worktoken");
  check_str(c.region, "ap-south-1");
  check_str(c.endpoint, "http://127.0.0.1:9000");
  s3_config_free(&c);

  /* Credentials from the config file; CA bundle from the profile. */
  clear_env();
  setenv("AWS_PROFILE", "cfgonly", 1);
  check_int(s3_config_load(&c), ==, 0);
  check_str(c.access_key, "CFGID");
  check_str(c.ca_bundle, "/etc/ca.pem");
  check_str(c.region, "us-east-1");
  s3_config_free(&c);

  /* The environment pair wins; region and endpoint from the environment. */
  clear_env();
  setenv("AWS_PROFILE", "work", 1);
  setenv("AWS_ACCESS_KEY_ID", "ENVID", 1);
  setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
  setenv("AWS_DEFAULT_REGION", "us-west-2", 1);
  setenv("AWS_ENDPOINT_URL", "http://generic", 1);
  setenv("AWS_ENDPOINT_URL_S3", "http://s3specific", 1);
  setenv("AWS_CA_BUNDLE", "/ca", 1);
  check_int(s3_config_load(&c), ==, 0);
  check_str(c.access_key, "ENVID");
  check(c.session_token == NULL);
  check_str(c.region, "us-west-2");
  check_str(c.endpoint, "http://s3specific");
  check_str(c.ca_bundle, "/ca");
  s3_config_free(&c);
  setenv("AWS_REGION", "eu-central-1", 1);
  unsetenv("AWS_ENDPOINT_URL_S3");
  check_int(s3_config_load(&c), ==, 0);
  check_str(c.region, "eu-central-1");
  check_str(c.endpoint, "http://generic");
  s3_config_free(&c);

  /* Half a key pair in the environment falls back to the profile. */
  clear_env();
  setenv("AWS_ACCESS_KEY_ID", "ENVID", 1);
  check_int(s3_config_load(&c), ==, 0);
  check_str(c.access_key, "DEFAULTID");
  s3_config_free(&c);

  /* Missing credentials: EACCES, naming what to set, no secret. */
  clear_env();
  setenv("AWS_PROFILE", "halfonly", 1);
  check_int(s3_config_load(&c), ==, -1);
  check_int(get_errno(), ==, EACCES);
  check(strstr(get_error(), "AWS_ACCESS_KEY_ID") != NULL);
  clear_env();
  setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials", 1);
  setenv("AWS_CONFIG_FILE", "/nonexistent/config", 1);
  check_int(s3_config_load(&c), ==, -1);
  check(strstr(get_error(), "/nonexistent/credentials") != NULL);
  s3_config_free(&c); /* a failed load leaves nothing to free */

  unlink(cred_path);
  unlink(conf_path);
  rmdir(dir);
  return check_summary();
}
