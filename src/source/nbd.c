/* NBD source: not built yet (issue #4). */
#include "source.h"

#include <errno.h>

#include "../util/error.h"

struct source *nbd_source_open(const char *uri)
{
  set_error(ENOTSUP, "%s: NBD sources are not supported by this build", uri);
  return NULL;
}
