/* libFuzzer target for the S3 XML reply parser (src/store/s3-xml.c): feeds
 * the same bytes to the ListObjectsV2, Error, UploadId, ListMultipartUploads,
 * ListObjectVersions, ObjectLockConfiguration and time readers and checks
 * the invariants each promises. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/s3-xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  const char *buf = (const char *)data;
  struct s3_list_page page;
  if (s3_list_page_parse(buf, size, &page) == 0) {
    for (size_t i = 0; i < page.nentries; i++)
      assert(page.entries[i].key && strlen(page.entries[i].key) <= S3_XML_MAX_TEXT);
    assert(!page.is_truncated || page.next_token);
    s3_list_page_free(&page);
  }
  struct s3_error_info e;
  if (s3_error_parse(buf, size, &e)) {
    assert(strlen(e.code) < sizeof e.code);
    assert(strlen(e.message) < sizeof e.message);
    assert(strlen(e.request_id) < sizeof e.request_id);
  }
  char *id = s3_upload_id_parse(buf, size);
  assert(!id || id[0]);
  free(id);
  struct s3_uploads_page up;
  if (s3_uploads_page_parse(buf, size, &up) == 0) {
    for (size_t i = 0; i < up.nentries; i++)
      assert(up.entries[i].key[0] && up.entries[i].upload_id[0]);
    assert(!up.is_truncated || up.next_key);
    s3_uploads_page_free(&up);
  }
  struct s3_versions_page vp;
  if (s3_versions_page_parse(buf, size, &vp) == 0) {
    for (size_t i = 0; i < vp.nentries; i++)
      assert(vp.entries[i].key[0] && vp.entries[i].version_id[0]);
    assert(!vp.is_truncated || vp.next_key);
    s3_versions_page_free(&vp);
  }
  int lock = s3_object_lock_parse(buf, size);
  assert(lock == 0 || lock == 1);
  (void)s3_parse_time(buf, size);
  return 0;
}
