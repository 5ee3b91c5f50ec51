/* Growth policy for VEC(). */
#include "vec.h"

#include <stdint.h>

void strings_free(struct strings *s)
{
  for (size_t i = 0; i < s->len; i++)
    free(s->v[i]);
  vec_free(s);
}

int vec_reserve_(void **v, size_t *cap, size_t len, size_t n, size_t elem)
{
  if (len + n <= *cap)
    return 0;
  size_t ncap = *cap ? *cap : 8;
  while (ncap < len + n) {
    if (ncap > SIZE_MAX / 2 / elem) {
      set_error(ENOMEM, "vector too large");
      return -1;
    }
    ncap *= 2;
  }
  void *p = realloc(*v, ncap * elem);
  if (!p) {
    set_error(errno, "realloc");
    return -1;
  }
  *v = p;
  *cap = ncap;
  return 0;
}
