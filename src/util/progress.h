/* A progress line on stderr, redrawn four times a second by its own thread
 * while long work runs. Used only when stderr is a terminal. */
#ifndef PL_PROGRESS_H
#define PL_PROGRESS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

struct progress {
  const char *label;             /* borrowed until progress_stop */
  uint64_t total;                /* bytes expected */
  const _Atomic uint64_t *done;  /* bytes done so far, updated by the workers */
  const _Atomic uint64_t *extra; /* optional second figure (e.g. new bytes), or NULL */
  const char *extra_label;
  pthread_t thread;
  atomic_int stop;
  int running;
};

/* Start drawing if enabled; p's fields above must be set. */
void progress_start(struct progress *p, int enabled);
/* Stop drawing and clear the line. A no-op if it never started. */
void progress_stop(struct progress *p);

#endif
