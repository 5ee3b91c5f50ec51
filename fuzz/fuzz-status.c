/* libFuzzer target for status objects (src/ops/status.c): host status
 * documents and drill reports, read from the repository, which anyone
 * with write access to it could have written. */
#include <assert.h>
#include <json-c/json.h>
#include <stdint.h>

#include "ops/status.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  if (size > (1u << 20))
    return 0; /* the reader refuses larger objects (HOST_STATUS_MAX) */
  struct json_object *jobs = json_object_new_array(), *drills = json_object_new_array();
  assert(ops_status_collect(jobs, drills, (const char *)data, size) == 0);
  for (size_t i = 0; i < json_object_array_length(jobs); i++)
    assert(json_object_is_type(json_object_array_get_idx(jobs, i), json_type_object));
  assert(json_object_array_length(drills) <= 1);
  json_object_put(jobs);
  json_object_put(drills);
  return 0;
}
