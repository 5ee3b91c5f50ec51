/* The S3 XML reply parser: ListObjectsV2 pages, Error bodies and UploadId,
 * with entity decoding, and refusal of malformed or oversized input. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "store/s3-xml.h"
#include "util/error.h"

static int list_ok(const char *xml, struct s3_list_page *p)
{
  return s3_list_page_parse(xml, strlen(xml), p);
}

int main(void)
{
  struct s3_list_page p;

  const char *page1 =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
      "<Name>b</Name><Prefix>r/</Prefix><IsTruncated>true</IsTruncated>"
      "<NextContinuationToken>tok/en+=</NextContinuationToken>"
      "<Contents><Key>r/config</Key><LastModified>2026-12-02T06:40:01.123Z</LastModified>"
      "<ETag>&quot;abc&quot;</ETag><Size>6</Size></Contents>"
      "<Contents>\n  <Key>r/a&amp;b &lt;c&gt; &#x41;&#66;&apos;&quot;</Key>\n"
      "  <Size>18446744073709551615</Size>\n</Contents>"
      "<Contents><Key><![CDATA[r/x<y]]></Key><Size>0</Size></Contents>"
      "<!-- a comment --></ListBucketResult>\n";
  check_int(list_ok(page1, &p), ==, 0);
  check_int(p.nentries, ==, 3);
  check_int(p.is_truncated, ==, 1);
  check_str(p.next_token, "tok/en+=");
  if (p.nentries == 3) {
    check_str(p.entries[0].key, "r/config");
    check(p.entries[0].size == 6);
    check(p.entries[0].mtime == 1796193601); /* date -ud 2026-12-02T06:40:01 +%s */
    check(p.entries[1].mtime == 0);          /* absent */
    check_str(p.entries[1].key, "r/a&b <c> AB'\"");
    check(p.entries[1].size == UINT64_MAX);
    check_str(p.entries[2].key, "r/x<y");
    check(p.entries[2].size == 0);
  }
  s3_list_page_free(&p);

  /* A last page; a UTF-8 character reference. */
  check_int(list_ok("<ListBucketResult><IsTruncated>false</IsTruncated>"
                    "<Contents><Key>&#x1234;</Key><Size>1</Size></Contents></ListBucketResult>",
                    &p),
            ==, 0);
  check_int(p.is_truncated, ==, 0);
  check(p.next_token == NULL);
  check_int(p.nentries, ==, 1);
  if (p.nentries == 1)
    check_str(p.entries[0].key, "\xe1\x88\xb4");
  s3_list_page_free(&p);

  /* An empty result. */
  check_int(list_ok("<ListBucketResult><KeyCount>0</KeyCount></ListBucketResult>", &p), ==, 0);
  check_int(p.nentries, ==, 0);
  s3_list_page_free(&p);

  /* Refused: each with EBADMSG (or EFBIG for size). */
  const char *bad[] = {
      "",
      "not xml",
      "<ListBucketResult>",
      "<ListBucketResult></ListBucketResul>",
      "<ListBucketResult><Contents><Key>k</Key></Contents></ListBucketResult>",
      "<ListBucketResult><Contents><Size>1</Size></Contents></ListBucketResult>",
      "<ListBucketResult><Contents><Key>k</Key><Size>-1</Size></Contents></ListBucketResult>",
      "<ListBucketResult><Contents><Key>k</Key><Size>18446744073709551616</Size></Contents>"
      "</ListBucketResult>",
      "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>",
      "<ListBucketResult><Contents><Key>a&bogus;</Key><Size>1</Size></Contents></ListBucketResult>",
      "<ListBucketResult><Contents><Key>a&#0;</Key><Size>1</Size></Contents></ListBucketResult>",
      "<ListBucketResult><Contents><Key>&#xD800;</Key><Size>1</Size></Contents></ListBucketResult>",
      "<ListBucketResult></ListBucketResult><ListBucketResult></ListBucketResult>",
      "<ListBucketResult></ListBucketResult>trailing",
      "<Error><Code>x</Code></Error>",
      "<a><b><c><d><e><f><g><h><i><j><k><l><m><n><o><p><q></q></p></o></n></m></l></k></j></i>"
      "</h></g></f></e></d></c></b></a>",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    int r = list_ok(bad[i], &p);
    if (r != -1)
      fprintf(stderr, "accepted bad input %zu: %s\n", i, bad[i]);
    check_int(r, ==, -1);
    check_int(get_errno(), ==, EBADMSG);
    check(p.entries == NULL && p.next_token == NULL);
  }
  /* A key longer than the text cap is refused, not cut. */
  size_t biglen = S3_XML_MAX_TEXT + 100;
  char *big = malloc(biglen + 200);
  snprintf(big, biglen + 200,
           "<ListBucketResult><Contents><Key>%0*d</Key><Size>1</Size>"
           "</Contents></ListBucketResult>",
           (int)biglen, 7);
  check_int(s3_list_page_parse(big, strlen(big), &p), ==, -1);
  free(big);
  /* Over 1 MiB: refused before parsing. */
  char *huge = calloc(1, S3_XML_MAX_BODY + 2);
  memset(huge, ' ', S3_XML_MAX_BODY + 1);
  check_int(s3_list_page_parse(huge, S3_XML_MAX_BODY + 1, &p), ==, -1);
  check_int(get_errno(), ==, EFBIG);
  free(huge);

  /* Error bodies. */
  struct s3_error_info e;
  const char *err = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NoSuchKey</Code>"
                    "<Message>The specified key\ndoes not exist.</Message><Key>k</Key>"
                    "<RequestId>tx0001-abc</RequestId><HostId>h</HostId></Error>";
  check_int(s3_error_parse(err, strlen(err), &e), ==, 1);
  check_str(e.code, "NoSuchKey");
  check_str(e.message, "The specified key does not exist."); /* kept on one line */
  check_str(e.request_id, "tx0001-abc");
  check_int(s3_error_parse("<Error><Code>A</Code>", 21, &e), ==, 0);
  check_str(e.code, "");
  check_int(s3_error_parse("<ListBucketResult></ListBucketResult>", 37, &e), ==, 0);
  check_int(s3_error_parse(NULL, 0, &e), ==, 0);
  char longcode[400];
  snprintf(longcode, sizeof longcode, "<Error><Code>%0300d</Code></Error>", 1);
  check_int(s3_error_parse(longcode, strlen(longcode), &e), ==, 1);
  check_int(strlen(e.code), ==, sizeof e.code - 1);

  /* UploadId. */
  const char *up = "<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key>"
                   "<UploadId>2~abc.DEF_-</UploadId></InitiateMultipartUploadResult>";
  char *id = s3_upload_id_parse(up, strlen(up));
  check_str(id, "2~abc.DEF_-");
  free(id);
  check(s3_upload_id_parse("<InitiateMultipartUploadResult/>", 32) == NULL);
  check(s3_upload_id_parse("<InitiateMultipartUploadResult><UploadId></UploadId>"
                           "</InitiateMultipartUploadResult>",
                           83) == NULL);

  /* ListMultipartUploads pages. */
  struct s3_uploads_page u;
  const char *ul = "<ListMultipartUploadsResult><Bucket>b</Bucket><IsTruncated>true</IsTruncated>"
                   "<NextKeyMarker>p/k2</NextKeyMarker><NextUploadIdMarker>id2</NextUploadIdMarker>"
                   "<Upload><Key>p/k&amp;1</Key><UploadId>id1</UploadId>"
                   "<Initiated>2026-12-02T06:40:01.123Z</Initiated></Upload>"
                   "<Upload><Key>p/k2</Key><UploadId>id2</UploadId></Upload>"
                   "</ListMultipartUploadsResult>";
  check_int(s3_uploads_page_parse(ul, strlen(ul), &u), ==, 0);
  check_int(u.nentries, ==, 2);
  check_str(u.entries[0].key, "p/k&1");
  check_str(u.entries[0].upload_id, "id1");
  check_int(u.entries[0].initiated, ==, 1796193601);
  check_int(u.entries[1].initiated, ==, 0);
  check_int(u.is_truncated, ==, 1);
  check_str(u.next_key, "p/k2");
  check_str(u.next_upload, "id2");
  s3_uploads_page_free(&u);
  const char *ue = "<ListMultipartUploadsResult><IsTruncated>false</IsTruncated>"
                   "</ListMultipartUploadsResult>";
  check_int(s3_uploads_page_parse(ue, strlen(ue), &u), ==, 0);
  check_int(u.nentries, ==, 0);
  /* An upload without its id, a truncated page without a marker, another
   * document: refused. */
  const char *bad_uploads[] = {
      "<ListMultipartUploadsResult><Upload><Key>k</Key></Upload></ListMultipartUploadsResult>",
      "<ListMultipartUploadsResult><IsTruncated>true</IsTruncated></ListMultipartUploadsResult>",
      "<ListBucketResult></ListBucketResult>",
  };
  for (size_t i = 0; i < sizeof bad_uploads / sizeof *bad_uploads; i++) {
    check_int(s3_uploads_page_parse(bad_uploads[i], strlen(bad_uploads[i]), &u), ==, -1);
    check_int(get_errno(), ==, EBADMSG);
  }
  /* ListObjectVersions: versions and delete markers in order, newest first
   * per key, with the markers of the next page. */
  struct s3_versions_page vp;
  const char *vl = "<ListVersionsResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                   "<IsTruncated>true</IsTruncated><NextKeyMarker>p/b</NextKeyMarker>"
                   "<NextVersionIdMarker>v9</NextVersionIdMarker>"
                   "<DeleteMarker><Key>p/a</Key><VersionId>m1</VersionId>"
                   "<IsLatest>true</IsLatest>"
                   "<LastModified>2026-12-02T06:40:01.000Z</LastModified></DeleteMarker>"
                   "<Version><Key>p/a</Key><VersionId>v1</VersionId><IsLatest>false</IsLatest>"
                   "<Size>42</Size></Version>"
                   "<Version><Key>p/b</Key><VersionId>v2</VersionId><IsLatest>true</IsLatest>"
                   "<Size>7</Size></Version></ListVersionsResult>";
  check_int(s3_versions_page_parse(vl, strlen(vl), &vp), ==, 0);
  check_int(vp.nentries, ==, 3);
  check_str(vp.entries[0].key, "p/a");
  check_str(vp.entries[0].version_id, "m1");
  check_int(vp.entries[0].delete_marker, ==, 1);
  check_int(vp.entries[0].is_latest, ==, 1);
  check_int(vp.entries[0].mtime, ==, 1796193601);
  check_int(vp.entries[1].delete_marker, ==, 0);
  check_int(vp.entries[1].is_latest, ==, 0);
  check_int(vp.entries[1].size, ==, 42);
  check_str(vp.entries[2].version_id, "v2");
  check_int(vp.is_truncated, ==, 1);
  check_str(vp.next_key, "p/b");
  check_str(vp.next_version, "v9");
  s3_versions_page_free(&vp);
  const char *bad_versions[] = {
      "<ListVersionsResult><Version><Key>k</Key></Version></ListVersionsResult>",
      "<ListVersionsResult><Version><VersionId>v</VersionId></Version></ListVersionsResult>",
      "<ListVersionsResult><Version><Key>k</Key><VersionId>v</VersionId><Size>1x</Size>"
      "</Version></ListVersionsResult>",
      "<ListVersionsResult><IsTruncated>true</IsTruncated></ListVersionsResult>",
      "<ListBucketResult></ListBucketResult>",
  };
  for (size_t i = 0; i < sizeof bad_versions / sizeof *bad_versions; i++) {
    check_int(s3_versions_page_parse(bad_versions[i], strlen(bad_versions[i]), &vp), ==, -1);
    check_int(get_errno(), ==, EBADMSG);
  }
  /* ObjectLockConfiguration: Enabled, or not. */
  const char *on = "<ObjectLockConfiguration><ObjectLockEnabled>Enabled</ObjectLockEnabled>"
                   "</ObjectLockConfiguration>";
  const char *off = "<ObjectLockConfiguration></ObjectLockConfiguration>";
  check_int(s3_object_lock_parse(on, strlen(on)), ==, 1);
  check_int(s3_object_lock_parse(off, strlen(off)), ==, 0);
  check_int(s3_object_lock_parse("<a>", 3), ==, 0);
  check_int(s3_parse_time("2026-12-08T10:57:10.000000000Z", 30), ==, 1796727430);
  return check_summary();
}
