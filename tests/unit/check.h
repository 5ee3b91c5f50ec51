/* A tiny check helper for unit tests: each test executable calls check()
 * and friends, then returns check_summary() from main. */
#ifndef PL_CHECK_H
#define PL_CHECK_H

#include <inttypes.h>
#include <stdio.h>

static int check_passed, check_failed;

#define check(cond)                                                                                \
  do {                                                                                             \
    if (cond) {                                                                                    \
      check_passed++;                                                                              \
    } else {                                                                                       \
      check_failed++;                                                                              \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);                     \
    }                                                                                              \
  } while (0)

#define check_int(a, op, b)                                                                        \
  do {                                                                                             \
    long long a_ = (long long)(a), b_ = (long long)(b);                                            \
    if (a_ op b_) {                                                                                \
      check_passed++;                                                                              \
    } else {                                                                                       \
      check_failed++;                                                                              \
      fprintf(stderr, "%s:%d: check failed: %s %s %s (%lld vs %lld)\n", __FILE__, __LINE__, #a,    \
              #op, #b, a_, b_);                                                                    \
    }                                                                                              \
  } while (0)

#define check_str(a, b)                                                                            \
  do {                                                                                             \
    const char *a_ = (a), *b_ = (b);                                                               \
    if (a_ && b_ && strcmp(a_, b_) == 0) {                                                         \
      check_passed++;                                                                              \
    } else {                                                                                       \
      check_failed++;                                                                              \
      fprintf(stderr, "%s:%d: check failed: %s == %s (\"%s\" vs \"%s\")\n", __FILE__, __LINE__,    \
              #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)");                                     \
    }                                                                                              \
  } while (0)

/* Prints "CHECKS passed=N failed=N" for the runner and returns the exit code. */
static inline int check_summary(void)
{
  printf("CHECKS passed=%d failed=%d\n", check_passed, check_failed);
  return check_failed ? 1 : 0;
}

#endif
