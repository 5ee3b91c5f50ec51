/* The worker pool: plain pthreads, one per worker, joined before return.
 * No queue: workers take their own work from the opaque state. */
#include "workers.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#include "error.h"

struct worker {
  worker_fn fn;
  void *opaque;
  int index;
  struct error_slot *slot;
  pthread_t thread;
};

static void *worker_main(void *arg)
{
  struct worker *w = arg;
  if (w->fn(w->opaque, w->index) == -1)
    error_slot_set_from_current(w->slot);
  return NULL;
}

int workers_run(int n, worker_fn fn, void *opaque, struct error_slot *slot)
{
  assert(n >= 1);
  struct worker *w = calloc((size_t)n, sizeof *w);
  int started = 0;
  if (!w) {
    set_error(errno, "out of memory for %d worker threads", n);
    error_slot_set_from_current(slot);
    return error_slot_restore(slot);
  }
  for (; started < n; started++) {
    w[started] = (struct worker){.fn = fn, .opaque = opaque, .index = started, .slot = slot};
    int rc = pthread_create(&w[started].thread, NULL, worker_main, &w[started]);
    if (rc != 0) {
      set_error(rc, "cannot start worker thread %d of %d", started + 1, n);
      error_slot_set_from_current(slot);
      break;
    }
  }
  for (int i = 0; i < started; i++)
    pthread_join(w[i].thread, NULL);
  free(w);
  return error_slot_restore(slot);
}
