/* Progress of long work (backup, restore, replica sync, export), reported
 * by the library to its caller. The library prints nothing: it owns the
 * counters and tells the caller when the work begins and ends; cli/ draws
 * them (cli/progress.c). */
#ifndef PL_PROGRESS_H
#define PL_PROGRESS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct progress_info {
  const char *label;             /* what is worked on (a disk name) */
  uint64_t total;                /* bytes expected */
  const _Atomic uint64_t *done;  /* bytes done so far, updated by the workers */
  const _Atomic uint64_t *extra; /* optional second figure (e.g. new bytes), or NULL */
  const char *extra_label;       /* its name, with extra */
};

/* A caller's renderer. begin is called once when the work starts; info and
 * the counters it points to stay valid, and may be read from any thread,
 * until end is called. Either callback may be NULL. */
struct progress_ops {
  void (*begin)(void *opaque, const struct progress_info *info);
  void (*end)(void *opaque);
  void *opaque;
};

/* For the library: call p's callbacks; p may be NULL (no progress wanted). */
static inline void progress_begin(const struct progress_ops *p, const struct progress_info *info)
{
  if (p != NULL && p->begin != NULL)
    p->begin(p->opaque, info);
}

static inline void progress_end(const struct progress_ops *p)
{
  if (p != NULL && p->end != NULL)
    p->end(p->opaque);
}

#endif
