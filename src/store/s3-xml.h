/* A small, bounded parser for the few S3 XML replies the S3 store reads:
 * ListObjectsV2 pages, Error bodies, the UploadId of a new multipart upload,
 * ListMultipartUploads and ListObjectVersions pages, and a bucket's
 * ObjectLockConfiguration. Input is untrusted; nothing is expanded
 * but the five predefined entities and numeric character references. */
#ifndef PL_S3_XML_H
#define PL_S3_XML_H

#include <stddef.h>
#include <stdint.h>

#define S3_XML_MAX_BODY (1u << 20) /* larger replies are refused */
#define S3_XML_MAX_DEPTH 16
#define S3_XML_MAX_TEXT 4096 /* longest element text kept (keys are <= 1024) */

struct s3_list_entry {
  char *key; /* owned */
  uint64_t size;
  int64_t mtime; /* LastModified, seconds since the epoch; 0 if absent or unparsed */
};

/* One ListObjectsV2 page. Free with s3_list_page_free. */
struct s3_list_page {
  struct s3_list_entry *entries; /* owned */
  size_t nentries;
  int is_truncated;
  char *next_token; /* NextContinuationToken, owned, or NULL */
};

/* Parse a ListObjectsV2 reply. Returns 0, or -1 with the error set (EBADMSG
 * for malformed XML, EFBIG for too large). page is zeroed first. */
int s3_list_page_parse(const char *buf, size_t len, struct s3_list_page *page);
void s3_list_page_free(struct s3_list_page *page);

/* The fields of an S3 <Error> reply; empty strings when absent. */
struct s3_error_info {
  char code[64];
  char message[256];
  char request_id[128];
};

/* Parse an <Error> body. Returns 1 if buf is an <Error> document (fields
 * filled, truncated to fit), 0 if not. Never fails. */
int s3_error_parse(const char *buf, size_t len, struct s3_error_info *info);

/* Extract <UploadId> from an InitiateMultipartUploadResult. Returns a string
 * the caller frees with free(), or NULL with the error set. */
char *s3_upload_id_parse(const char *buf, size_t len);

/* One ListMultipartUploads page: the incomplete uploads, with the markers
 * the next page starts from. Free with s3_uploads_page_free. */
struct s3_upload_entry {
  char *key;         /* owned */
  char *upload_id;   /* owned */
  int64_t initiated; /* seconds since the epoch; 0 if absent or unparsed */
};
struct s3_uploads_page {
  struct s3_upload_entry *entries; /* owned */
  size_t nentries;
  int is_truncated;
  char *next_key;    /* NextKeyMarker, owned, or NULL */
  char *next_upload; /* NextUploadIdMarker, owned, or NULL */
};

/* Parse a ListMultipartUploads reply. Returns 0, or -1 with the error set
 * (EBADMSG for malformed XML or a truncated page without a NextKeyMarker,
 * EFBIG for too large). page is zeroed first. */
int s3_uploads_page_parse(const char *buf, size_t len, struct s3_uploads_page *page);
void s3_uploads_page_free(struct s3_uploads_page *page);

/* One ListObjectVersions page: every version and delete marker, newest first
 * per key, with the markers the next page starts from. Free with
 * s3_versions_page_free. */
struct s3_version_entry {
  char *key;        /* owned */
  char *version_id; /* owned */
  uint64_t size;    /* 0 for a delete marker */
  int64_t mtime;    /* LastModified; 0 if absent or unparsed */
  int is_latest;
  int delete_marker;
};
struct s3_versions_page {
  struct s3_version_entry *entries; /* owned */
  size_t nentries;
  int is_truncated;
  char *next_key;     /* NextKeyMarker, owned, or NULL */
  char *next_version; /* NextVersionIdMarker, owned, or NULL */
};

/* Parse a ListObjectVersions reply. Returns 0, or -1 with the error set
 * (EBADMSG for malformed XML, an entry without a key or version id, or a
 * truncated page without a NextKeyMarker; EFBIG for too large). page is
 * zeroed first. */
int s3_versions_page_parse(const char *buf, size_t len, struct s3_versions_page *page);
void s3_versions_page_free(struct s3_versions_page *page);

/* An ISO 8601 UTC time as S3 writes it ("2026-12-02T06:40:01.123Z") in
 * seconds since the epoch; 0 if it does not parse. */
int64_t s3_parse_time(const char *text, size_t len);

/* 1 if buf is an ObjectLockConfiguration saying ObjectLockEnabled=Enabled,
 * else 0. Never fails. */
int s3_object_lock_parse(const char *buf, size_t len);

#endif
