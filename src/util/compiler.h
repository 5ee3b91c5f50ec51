/* Compiler annotations used across the tree, behind one name each so that a
 * site says what it means. Header only; depends on nothing. */
#ifndef PL_COMPILER_H
#define PL_COMPILER_H

/* Marks a parameter a function must accept but does not use (a callback or
 * ops-table signature): `static int f(void *opaque PL_UNUSED, int x)`. The
 * build warns about every other unused parameter. */
#define PL_UNUSED __attribute__((unused))

#endif
