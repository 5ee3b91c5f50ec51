/* A small generic growable array. Declare with VEC(type) name = {0};
 * free with vec_free(&name). */
#ifndef PL_VEC_H
#define PL_VEC_H

#include <stddef.h>
#include <stdlib.h>
#include <errno.h>
#include "error.h"

#define VEC(T)                                                                                     \
  struct {                                                                                         \
    T *v;                                                                                          \
    size_t len, cap;                                                                               \
  }

/* Make room for n more elements. Returns 0, or -1 with the error set. */
int vec_reserve_(void **v, size_t *cap, size_t len, size_t n, size_t elem);

#define vec_reserve(vp, n)                                                                         \
  vec_reserve_((void **)&(vp)->v, &(vp)->cap, (vp)->len, (n), sizeof *(vp)->v)

/* Append one element (an expression of the element type). Returns 0 or -1. */
#define vec_push(vp, x) (vec_reserve(vp, 1) == -1 ? -1 : ((vp)->v[(vp)->len++] = (x), 0))

#define vec_free(vp)                                                                               \
  do {                                                                                             \
    free((vp)->v);                                                                                 \
    (vp)->v = NULL;                                                                                \
    (vp)->len = (vp)->cap = 0;                                                                     \
  } while (0)

/* Owned strings: each element is malloc'd (or NULL). */
struct strings {
  char **v;
  size_t len, cap;
};

/* Free every element and the array. */
void strings_free(struct strings *s);

#endif
