/* A tiny worker pool: run one function on N threads and join them, keeping
 * the first failure. For the parallel read, hash and compare loops. */
#ifndef PL_WORKERS_H
#define PL_WORKERS_H

#include "error-slot.h"

/* One worker's body: index is 0 .. n-1. Returns 0, or -1 with the thread's
 * error set (workers_run records it in the slot). A worker that shares work
 * with others polls error_slot_failed() to stop early. */
typedef int (*worker_fn)(void *opaque, int index);

/* Run fn(opaque, i) for i in 0 .. n-1 on n threads (n >= 1) and wait for all
 * of them. slot (borrowed, initialised by the caller, usually the one the
 * workers poll) collects the first failure, including a thread that could
 * not start; the threads already started still run to the end. Returns 0,
 * or -1 with that first failure set as the calling thread's error. */
int workers_run(int n, worker_fn fn, void *opaque, struct error_slot *slot);

#endif
