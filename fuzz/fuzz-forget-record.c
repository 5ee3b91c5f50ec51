/* libFuzzer target: the forget record decoder; whatever it accepts must
 * re-encode to an object that decodes to the same time, host and
 * entries. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
  struct forget_record rec, back;
  if (forget_record_decode((const char *)data, size, &rec) == 0) {
    char *t = forget_record_encode(&rec);
    assert(t && forget_record_decode(t, strlen(t), &back) == 0);
    assert(back.time == rec.time && strcmp(back.host, rec.host) == 0);
    assert(back.e.len == rec.e.len);
    for (size_t i = 0; i < rec.e.len; i++)
      assert(strcmp(back.e.v[i].id, rec.e.v[i].id) == 0 &&
             strcmp(back.e.v[i].disk, rec.e.v[i].disk) == 0 && back.e.v[i].time == rec.e.v[i].time);
    forget_record_clear(&back);
    forget_record_clear(&rec);
    free(t);
  }
  return 0;
}
