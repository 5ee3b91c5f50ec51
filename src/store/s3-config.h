/* The S3 store's settings, filled by the caller (env/settings.c builds them
 * from the AWS environment variables and shared files), and the pure parsers
 * that building them needs: a profile's entry in an AWS shared file and a
 * size with a k/M/G suffix. Nothing here reads the environment. */
#ifndef PL_S3_CONFIG_H
#define PL_S3_CONFIG_H

#include <stdint.h>

#define S3_MIN_PART_SIZE (5ull << 20) /* S3's smallest multipart part */

enum s3_addressing {
  S3_ADDRESSING_AUTO,    /* path style for custom endpoints and dotted buckets, else virtual */
  S3_ADDRESSING_PATH,    /* http://HOST/BUCKET/KEY */
  S3_ADDRESSING_VIRTUAL, /* http://BUCKET.HOST/KEY */
};

/* Every string is owned (NULL when unset); free with s3_settings_free
 * (secrets are wiped). The store copies what it needs at open, so the
 * struct may be freed once the store is open. */
struct s3_settings {
  char *access_key; /* NULL: none; opening an s3: store then fails naming what to set */
  char *secret_key;
  char *session_token;           /* NULL if none */
  char *region;                  /* NULL: us-east-1 */
  char *endpoint;                /* "http(s)://HOST[:PORT]"; NULL for AWS */
  char *ca_bundle;               /* CA certificates file; NULL for the system's */
  char *profile;                 /* the profile whose files were read, for messages */
  char *credentials_file;        /* the shared credentials file read, for messages */
  enum s3_addressing addressing; /* default S3_ADDRESSING_AUTO */
  unsigned retries;              /* retries of a transient failure; default 6, at most 100 */
  long timeout;                  /* seconds without progress; default 60, 1 to 86400 */
  long backoff_ms;               /* first retry delay; default 100, at most 60000 */
  uint64_t part_size;            /* multipart part; default 16 MiB, >= S3_MIN_PART_SIZE */
  uint64_t multipart_threshold;  /* larger objects go multipart; default 64 MiB, >= the min */
  unsigned list_max_keys;        /* LIST page size; 0 (default): the server's, at most 1000 */
};

/* Set every knob to its default and every string to NULL (no credentials). */
void s3_settings_default(struct s3_settings *s);
void s3_settings_free(struct s3_settings *s);

/* Deep copy of src into dst (region NULL becomes "us-east-1"). Returns 0 or
 * -1 with the error set; dst is then empty. Free dst with s3_settings_free. */
int s3_settings_copy(struct s3_settings *dst, const struct s3_settings *src);

/* 0 if s has credentials, else -1 with an EACCES error naming what to set. */
int s3_settings_check_credentials(const struct s3_settings *s);

/* Value of key in profile's section of the AWS shared file at path (NULL
 * when the file or the key is missing). is_config: the config file, whose
 * sections are "[profile NAME]" except "[default]"; else the credentials
 * file. Only the flat "key = value" lines of a section are read; nested
 * blocks ("s3 =" and the indented lines under it) are skipped. The file is
 * untrusted input. Caller frees (the value may be a secret: wipe it). */
char *s3_config_file_get(const char *path, const char *profile, int is_config, const char *key);

/* Parse value, a decimal number with an optional k, M or G suffix (powers of
 * 1024), of at least min. A bad value is EINVAL, "NAME=VALUE: expected a
 * number of at least MIN", where name says where value came from. */
int s3_parse_size(const char *name, const char *value, uint64_t min, uint64_t *out);

#endif
