/* Chooses a store backend from a repository location. */
#include "store.h"

#include <stdlib.h>
#include <string.h>

#include "../util/compiler.h"
#include "../util/error.h"

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

static int push_key(void *opaque, const char *key, uint64_t size PL_UNUSED, int64_t mtime PL_UNUSED)
{
  struct strings *out = opaque;
  if (vec_reserve(out, 1) == -1)
    return -1;
  out->v[out->len] = strdup(key);
  if (!out->v[out->len]) {
    set_error(ENOMEM, "listing");
    return -1;
  }
  out->len++;
  return 0;
}

int store_list_keys(struct store *s, const char *prefix, struct strings *out)
{
  return store_list_names(s, prefix, push_key, out);
}
