/* Unit tests for the QMP reply parser, the node/bitmap lookup in
 * query-named-block-nodes replies, and the CBT parent check. */
#include <json-c/json.h>
#include <string.h>

#include "check.h"
#include "cbt/cbt-internal.h"
#include "cbt/cbt.h"
#include "cbt/qmp.h"
#include "util/error.h"

static int parse(const char *text, long long id, struct json_object **ret)
{
  return qmp_parse_message(text, strlen(text), id, "cmd", ret);
}

static const char *nodes =
    "[{\"node-name\":\"file0\",\"image\":{\"virtual-size\":1}},"
    "{\"node-name\":\"disk0\",\"image\":{\"virtual-size\":134217728},\"dirty-bitmaps\":["
    "{\"name\":\"a\",\"recording\":true,\"busy\":false,\"persistent\":true},"
    "{\"name\":\"b\",\"recording\":false,\"busy\":true,\"inconsistent\":true}]},"
    "{\"node-name\":7},{\"node-name\":null},3,null]";

int main(void)
{
  struct json_object *r = NULL;
  char buf[512];

  /* Greeting and events are skipped; replies are matched by id. */
  check_int(parse("{\"QMP\":{\"version\":{}}}", 1, &r), ==, 1);
  check(r == NULL);
  check_int(parse("{\"event\":\"JOB_STATUS_CHANGE\",\"data\":{}}", 1, &r), ==, 1);
  check_int(parse("{\"return\":{},\"id\":2}", 1, &r), ==, 1);
  check_int(parse("{\"return\":{\"a\":5},\"id\":1}", 1, &r), ==, 0);
  check(json_object_is_type(r, json_type_object));
  json_object_put(r);
  r = NULL;
  check_int(parse("{\"return\":[],\"id\":1}\r", 1, &r), ==, 0);
  check(json_object_is_type(r, json_type_array));
  json_object_put(r);
  r = NULL;

  /* Errors carry the server's description. */
  check_int(parse("{\"error\":{\"class\":\"GenericError\",\"desc\":\"Node name too long\"},"
                  "\"id\":4}",
                  4, &r),
            ==, -1);
  check(r == NULL);
  check_str(get_error(), "QMP cmd: Node name too long");
  check_int(parse("{\"error\":7,\"id\":4}", 4, &r), ==, -1);

  /* Malformed input. */
  check_int(parse("", 1, &r), ==, -1);
  check_int(parse("{\"return\":", 1, &r), ==, -1);
  check_int(parse("[1,2]", 1, &r), ==, -1);
  check_int(parse("{\"return\":1,\"id\":1} trailing", 1, &r), ==, -1);
  check_int(qmp_parse_message("{\"return\":1,\"id\":1}", 5, 1, "cmd", &r), ==, -1);
  check_int(parse("{\"id\":1}", 1, &r), ==, -1);

  /* Node lookup. */
  struct json_object *n = json_tokener_parse(nodes);
  struct node_bitmap bm;
  uint64_t size = 0;
  check(n != NULL);
  check_int(cbt_node_from_reply(n, "disk0", "a", &size, &bm), ==, 0);
  check_int(size, ==, 134217728);
  check(bm.found && bm.recording && !bm.busy && !bm.inconsistent);
  check_int(cbt_node_from_reply(n, "disk0", "b", &size, &bm), ==, 0);
  check(bm.found && !bm.recording && bm.busy && bm.inconsistent);
  check_int(cbt_node_from_reply(n, "disk0", "c", &size, &bm), ==, 0);
  check(!bm.found);
  check_int(cbt_node_from_reply(n, "nope", NULL, &size, &bm), ==, -1);
  check(strstr(get_error(), "no block node named nope") != NULL);
  json_object_put(n);
  n = json_tokener_parse("[{\"node-name\":\"disk0\",\"image\":{\"virtual-size\":\"big\"}}]");
  check_int(cbt_node_from_reply(n, "disk0", NULL, &size, &bm), ==, -1);
  json_object_put(n);
  n = json_tokener_parse("{\"node-name\":\"disk0\"}");
  check_int(cbt_node_from_reply(n, "disk0", NULL, &size, &bm), ==, -1);
  json_object_put(n);

  /* The parent check. */
  check(cbt_parent_mismatch("qemu-bitmap:b1", 100, "b1", 100, buf, sizeof buf) == NULL);
  check(cbt_parent_mismatch("", 100, "b1", 100, buf, sizeof buf) != NULL);
  check(strstr(buf, "recorded no CBT cookie") != NULL);
  check(cbt_parent_mismatch("vmware:52 aa", 100, "b1", 100, buf, sizeof buf) != NULL);
  check(strstr(buf, "is not a QEMU bitmap") != NULL);
  check(cbt_parent_mismatch("qemu-bitmap:", 100, "", 100, buf, sizeof buf) != NULL);
  check(cbt_parent_mismatch("qemu-bitmap:b1", 100, "b2", 100, buf, sizeof buf) != NULL);
  check(strstr(buf, "continues from bitmap b1") != NULL);
  check(cbt_parent_mismatch("qemu-bitmap:b1", 100, "b1x", 100, buf, sizeof buf) != NULL);
  check(cbt_parent_mismatch("qemu-bitmap:b1", 100, "b1", 200, buf, sizeof buf) != NULL);
  check(strstr(buf, "size changed from 100 to 200") != NULL);

  /* Bitmap names: random, and within QEMU's node-name limits once prefixed. */
  char a[64], b[64];
  check_int(cbt_new_bitmap_name(a, sizeof a), ==, 0);
  check_int(cbt_new_bitmap_name(b, sizeof b), ==, 0);
  check_int(strlen(a), ==, strlen("pilotlight-") + 16);
  check(strcmp(a, b) != 0);
  check_int(cbt_bitmap_context("b1", buf, sizeof buf), ==, 0);
  check_str(buf, "qemu:dirty-bitmap:b1");
  return check_summary();
}
