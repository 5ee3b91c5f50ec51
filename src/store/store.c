/* Chooses a store backend from a repository location. */
#include "store.h"

#include <stdlib.h>
#include <string.h>

struct store *store_open(const char *location, int create, const struct s3_settings *s3)
{
  if (strncmp(location, "s3:", 3) == 0)
    return s3_store_open(location, create, s3);
  return local_store_open(location, create);
}

void store_free(struct store *s)
{
  if (s)
    s->ops->free(s);
}
