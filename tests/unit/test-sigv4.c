/* SigV4 against AWS's published test vectors: the generic suite
 * (aws-sig-v4-test-suite, service "service", 2015-08-30) and the S3
 * examples of the S3 API reference (examplebucket, 2013-05-24). */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "store/sigv4.h"

/* The vector tables read best as the suite lays them out. */
/* clang-format off */
#define SUITE_KEY "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define S3_KEY "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define EMPTY_HASH "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SUITE_HOST {"Host", "example.amazonaws.com"}
#define SUITE_DATE {"X-Amz-Date", "20150830T123600Z"}

struct vector {
  const char *name;
  const char *method, *path, *query;
  struct sigv4_header headers[6];
  const char *payload_hash;
  const char *canonical_request; /* NULL: not checked */
  const char *string_to_sign;    /* NULL: not checked */
  const char *signature;
};

static const struct vector suite[] = {
  {"get-vanilla", "GET", "/", "", {SUITE_HOST, SUITE_DATE}, EMPTY_HASH,
   "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\nhost;x-amz-date\n" EMPTY_HASH,
   "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
   "bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63",
   "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"},
  {"get-vanilla-empty-query-key", "GET", "/", "Param1=value1", {SUITE_HOST, SUITE_DATE},
   EMPTY_HASH, NULL, NULL, "a67d582fa61cc504c4bae71f336f98b97f1ea3c7a6bfe1b6e45aec72011b9aeb"},
  {"get-vanilla-query-order-key", "GET", "/", "Param1=value2&Param1=Value1",
   {SUITE_HOST, SUITE_DATE}, EMPTY_HASH,
   "GET\n/\nParam1=Value1&Param1=value2\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z"
   "\n\nhost;x-amz-date\n" EMPTY_HASH,
   NULL, "eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a15b2382bd1"},
  {"get-vanilla-query-order-key-case", "GET", "/", "Param2=value2&Param1=value1",
   {SUITE_HOST, SUITE_DATE}, EMPTY_HASH, NULL, NULL,
   "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500"},
  {"get-vanilla-query-order-value", "GET", "/", "Param1=value2&Param1=value1",
   {SUITE_HOST, SUITE_DATE}, EMPTY_HASH, NULL, NULL,
   "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694"},
  {"get-vanilla-query-unreserved", "GET", "/",
   "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz="
   "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
   {SUITE_HOST, SUITE_DATE}, EMPTY_HASH, NULL, NULL,
   "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197"},
  {"get-vanilla-utf8-query", "GET", "/", "\xe1\x88\xb4=bar", {SUITE_HOST, SUITE_DATE}, EMPTY_HASH,
   "GET\n/\n%E1%88%B4=bar\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
   "host;x-amz-date\n" EMPTY_HASH,
   NULL, "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04"},
  {"get-unreserved", "GET", "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
   "", {SUITE_HOST, SUITE_DATE}, EMPTY_HASH, NULL, NULL,
   "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f"},
  {"get-utf8", "GET", "/\xe1\x88\xb4", "", {SUITE_HOST, SUITE_DATE}, EMPTY_HASH, NULL,
   "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
   "2a0a97d02205e45ce2e994789806b19270cfbbb0921b278ccf58f5249ac42102",
   "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85"},
  {"get-header-key-duplicate", "GET", "/", "",
   {SUITE_HOST, {"My-Header1", "value2"}, {"My-Header1", "value2"}, {"My-Header1", "value1"},
    SUITE_DATE},
   EMPTY_HASH,
   "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value2,value2,value1\n"
   "x-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\n" EMPTY_HASH,
   NULL, "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea"},
  {"get-header-value-order", "GET", "/", "",
   {SUITE_HOST, {"My-Header1", "value4"}, {"My-Header1", "value1"}, {"My-Header1", "value3"},
    {"My-Header1", "value2"}, SUITE_DATE},
   EMPTY_HASH, NULL, NULL, "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01"},
  {"get-header-value-trim", "GET", "/", "",
   {SUITE_HOST, {"My-Header1", " value1"}, {"My-Header2", " \"a   b   c\""}, SUITE_DATE},
   EMPTY_HASH,
   "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\nmy-header2:\"a b c\"\n"
   "x-amz-date:20150830T123600Z\n\nhost;my-header1;my-header2;x-amz-date\n" EMPTY_HASH,
   NULL, "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736"},
  {"post-vanilla", "POST", "/", "", {SUITE_HOST, SUITE_DATE}, EMPTY_HASH, NULL, NULL,
   "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"},
  {"post-header-key-sort", "POST", "/", "", {SUITE_HOST, {"My-Header1", "value1"}, SUITE_DATE},
   EMPTY_HASH, NULL, NULL, "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c"},
  {"post-header-value-case", "POST", "/", "", {SUITE_HOST, {"My-Header1", "VALUE1"}, SUITE_DATE},
   EMPTY_HASH, NULL, NULL, "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d"},
  {"post-vanilla-query", "POST", "/", "Param1=value1", {SUITE_HOST, SUITE_DATE}, EMPTY_HASH, NULL,
   NULL, "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11"},
  {"post-x-www-form-urlencoded", "POST", "/", "",
   {{"Content-Type", "application/x-www-form-urlencoded"}, SUITE_HOST, SUITE_DATE},
   "9095672bbd1f56dfc5b65f3e153adc8731a4a654192329106275f4c7b24d0b6e", NULL,
   "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n"
   "42a5e5bb34198acb3e84da4f085bb7927f2bc277ca766e6d19c73c2154021281",
   "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a"},
};

#define S3_HOST {"Host", "examplebucket.s3.amazonaws.com"}
#define S3_DATE {"x-amz-date", "20130524T000000Z"}
#define S3_EMPTY {"x-amz-content-sha256", EMPTY_HASH}

static const struct vector s3[] = {
  {"s3-get-object-range", "GET", "/test.txt", "",
   {S3_HOST, {"Range", "bytes=0-9"}, S3_EMPTY, S3_DATE}, EMPTY_HASH,
   "GET\n/test.txt\n\nhost:examplebucket.s3.amazonaws.com\nrange:bytes=0-9\n"
   "x-amz-content-sha256:" EMPTY_HASH "\nx-amz-date:20130524T000000Z\n\n"
   "host;range;x-amz-content-sha256;x-amz-date\n" EMPTY_HASH,
   "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n"
   "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972",
   "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"},
  {"s3-put-object", "PUT", "/test$file.text", "",
   {{"Date", "Fri, 24 May 2013 00:00:00 GMT"}, S3_HOST, {"x-amz-storage-class", "REDUCED_REDUNDANCY"},
    {"x-amz-content-sha256", "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"},
    S3_DATE},
   "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
   "PUT\n/test%24file.text\n\ndate:Fri, 24 May 2013 00:00:00 GMT\n"
   "host:examplebucket.s3.amazonaws.com\n"
   "x-amz-content-sha256:44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072\n"
   "x-amz-date:20130524T000000Z\nx-amz-storage-class:REDUCED_REDUNDANCY\n\n"
   "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class\n"
   "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072",
   NULL, "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"},
  {"s3-get-bucket-lifecycle", "GET", "/", "lifecycle", {S3_HOST, S3_EMPTY, S3_DATE}, EMPTY_HASH,
   "GET\n/\nlifecycle=\nhost:examplebucket.s3.amazonaws.com\nx-amz-content-sha256:" EMPTY_HASH
   "\nx-amz-date:20130524T000000Z\n\nhost;x-amz-content-sha256;x-amz-date\n" EMPTY_HASH,
   NULL, "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"},
  {"s3-list-objects", "GET", "/", "max-keys=2&prefix=J", {S3_HOST, S3_EMPTY, S3_DATE}, EMPTY_HASH,
   "GET\n/\nmax-keys=2&prefix=J\nhost:examplebucket.s3.amazonaws.com\nx-amz-content-sha256:"
   EMPTY_HASH "\nx-amz-date:20130524T000000Z\n\nhost;x-amz-content-sha256;x-amz-date\n"
   EMPTY_HASH,
   NULL, "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"},
};

/* clang-format on */

static void run(const struct vector *v, const char *service, const char *date, const char *key)
{
  size_t n = 0;
  while (n < 6 && v->headers[n].name)
    n++;
  struct sigv4_request req = {
      .method = v->method,
      .path = v->path,
      .query = v->query,
      .headers = v->headers,
      .nheaders = n,
      .payload_hash = v->payload_hash,
      .amz_date = date,
      .region = "us-east-1",
      .service = service,
      .access_key = "AKIAIOSFODNN7EXAMPLE",
      .secret_key = key,
  };
  struct sigv4_signature sig;
  int r = sigv4_sign(&req, &sig);
  check_int(r, ==, 0);
  if (r != 0)
    return;
  if (v->canonical_request)
    check_str(sig.canonical_request, v->canonical_request);
  if (v->string_to_sign)
    check_str(sig.string_to_sign, v->string_to_sign);
  if (strcmp(sig.signature, v->signature) != 0)
    fprintf(stderr, "vector %s: signature mismatch\n", v->name);
  check_str(sig.signature, v->signature);
  sigv4_signature_free(&sig);
}

int main(void)
{
  for (size_t i = 0; i < sizeof suite / sizeof suite[0]; i++)
    run(&suite[i], "service", "20150830T123600Z", SUITE_KEY);
  for (size_t i = 0; i < sizeof s3 / sizeof s3[0]; i++)
    run(&s3[i], "s3", "20130524T000000Z", S3_KEY);

  /* The Authorization header carries the scope and signed headers. */
  struct sigv4_header h[] = {SUITE_HOST, SUITE_DATE};
  struct sigv4_request req = {
      "GET",     "/",           "",       h, 2, EMPTY_HASH, "20150830T123600Z", "us-east-1",
      "service", "AKIDEXAMPLE", SUITE_KEY};
  struct sigv4_signature sig;
  check_int(sigv4_sign(&req, &sig), ==, 0);
  check_str(sig.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
            "SignedHeaders=host;x-amz-date, "
            "Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
  check(strstr(sig.authorization, SUITE_KEY) == NULL);
  sigv4_signature_free(&sig);

  /* Encoding helpers. */
  char *e = sigv4_uri_encode("a b/c+d~", 8, 1);
  check_str(e, "a%20b/c%2Bd~");
  free(e);
  e = sigv4_uri_encode("dir/x", 5, 0);
  check_str(e, "dir%2Fx");
  free(e);
  char hex[65], d[17];
  sigv4_sha256_hex("", 0, hex);
  check_str(hex, EMPTY_HASH);
  sigv4_amz_date(1440938160, d);
  check_str(d, "20150830T123600Z");
  /* An already encoded query is not encoded twice. */
  struct sigv4_request q = req;
  q.query = "prefix=a%2Fb&list-type=2";
  check_int(sigv4_sign(&q, &sig), ==, 0);
  check(strstr(sig.canonical_request, "\nlist-type=2&prefix=a%2Fb\n") != NULL);
  sigv4_signature_free(&sig);
  return check_summary();
}
