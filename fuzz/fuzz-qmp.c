/* libFuzzer target for QMP replies (src/cbt/qmp.c) and the
 * query-named-block-nodes lookup of the live CBT workflow
 * (src/cbt/cbt-live.c): both read bytes another process sent. */
#include <assert.h>
#include <json-c/json.h>
#include <stdint.h>
#include <string.h>

#include "cbt/cbt-internal.h"
#include "cbt/qmp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct json_object *ret = NULL;
  int rc = qmp_parse_message((const char *)data, size, 1, "fuzz", &ret);
  assert(rc == -1 || rc == 0 || rc == 1);
  assert(rc == 0 || ret == NULL);
  if (rc == 0) {
    struct node_bitmap bm;
    uint64_t node_size = 0;
    if (cbt_node_from_reply(ret, "disk0", "b1", &node_size, &bm) == 0)
      assert(node_size <= INT64_MAX);
    else
      assert(!bm.found);
    json_object_put(ret);
  }
  return 0;
}
