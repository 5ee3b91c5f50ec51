/* The first failure of a group of threads, kept so that the thread that
 * started them can report it: one slot per parallel job, shared by its
 * workers. Also keeps an error across a clean-up step that may overwrite it. */
#ifndef PL_ERROR_SLOT_H
#define PL_ERROR_SLOT_H

#include <pthread.h>
#include <stdatomic.h>

struct error_slot {
  pthread_mutex_t lock;
  atomic_int failed; /* read without the lock by workers that stop early */
  int errnum;
  char msg[1024];
};

/* A slot with no failure; error_slot_init does the same at run time. */
#define ERROR_SLOT_INIT                                                                            \
  {                                                                                                \
    .lock = PTHREAD_MUTEX_INITIALIZER                                                              \
  }

void error_slot_init(struct error_slot *slot);
void error_slot_destroy(struct error_slot *slot);

/* Record the calling thread's error (message and errno, as set_error left
 * them) unless the slot already holds one: the first failure wins. Any
 * thread may call it. */
void error_slot_set_from_current(struct error_slot *slot);

/* 1 once a failure is recorded. Lock-free, for workers that stop early. */
int error_slot_failed(struct error_slot *slot);

/* When a failure is recorded, make it the calling thread's error verbatim
 * (set_error_msg: no strerror text is added twice) and return -1; else
 * return 0 and leave the thread's error alone. Call after the workers are
 * joined. */
int error_slot_restore(struct error_slot *slot);

#endif
