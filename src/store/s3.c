/* S3 store: not built yet (issue #3). */
#include "store.h"

#include <errno.h>

#include "../util/error.h"

struct store *s3_store_open(const char *location, int create)
{
  (void)create;
  set_error(ENOTSUP, "%s: S3 repositories are not supported by this build", location);
  return NULL;
}
