/* libFuzzer target: the replica state file parser (src/sink/replica-sync.c).
 * Whatever it accepts must carry the fields a sync relies on. */
#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "sink/replica.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct replica_state st;
  if (replica_state_parse((const char *)data, size, &st) == 0) {
    assert(st.disk != NULL && st.repo_id[0] != '\0');
    assert(strlen(st.applied) == 0 || strlen(st.applied) == 64);
    assert(strlen(st.applying) == 0 || strlen(st.applying) == 64);
    replica_state_clear(&st);
  }
  return 0;
}
