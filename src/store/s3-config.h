/* Where the S3 store gets its settings: the AWS environment variables and
 * the shared ~/.aws/credentials and ~/.aws/config files, following the
 * order the AWS CLI uses. */
#ifndef PL_S3_CONFIG_H
#define PL_S3_CONFIG_H

/* Every string is owned; free with s3_config_free (secrets are wiped). */
struct s3_config {
  char *access_key;
  char *secret_key;
  char *session_token; /* NULL if none */
  char *region;        /* never NULL after load: defaults to us-east-1 */
  char *endpoint;      /* AWS_ENDPOINT_URL(_S3) or endpoint_url; NULL for AWS */
  char *ca_bundle;     /* AWS_CA_BUNDLE or ca_bundle; NULL for the system's */
  char *profile;       /* the profile whose files were read */
};

/* Load credentials, region, endpoint and CA bundle. Missing credentials are
 * an error (EACCES) naming what to set. Returns 0 or -1 with the error set. */
int s3_config_load(struct s3_config *cfg);
void s3_config_free(struct s3_config *cfg);

#endif
