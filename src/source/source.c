/* Chooses a source backend from the name the user gave. */
#include "source.h"

#include <string.h>

struct source *source_open(const char *name)
{
  if (strncmp(name, "nbd:", 4) == 0 || strncmp(name, "nbd+", 4) == 0 ||
      strncmp(name, "nbds:", 5) == 0 || strncmp(name, "nbds+", 5) == 0)
    return nbd_source_open(name);
  return file_source_open(name);
}

void source_close(struct source *s)
{
  if (s)
    s->ops->close(s);
}
