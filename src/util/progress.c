/* The progress line: percentage, MiB done of total, rate. */
#include "progress.h"

#include <stdio.h>
#include <time.h>

static void *draw(void *arg)
{
  struct progress *p = arg;
  struct timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  while (!p->stop) {
    struct timespec ts = {0, 250 * 1000 * 1000};
    nanosleep(&ts, NULL);
    clock_gettime(CLOCK_MONOTONIC, &now);
    double secs = (double)(now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9;
    double done = (double)*p->done, total = (double)p->total;
    fprintf(stderr, "\r%s: %5.1f%%  %.0f/%.0f MiB  %.0f MiB/s", p->label,
            total > 0 ? 100.0 * done / total : 100.0, done / 1048576, total / 1048576,
            secs > 0 ? done / 1048576 / secs : 0.0);
    if (p->extra)
      fprintf(stderr, "  %s %.0f MiB", p->extra_label, (double)*p->extra / 1048576);
    fprintf(stderr, " ");
  }
  fprintf(stderr, "\r\033[K");
  return NULL;
}

void progress_start(struct progress *p, int enabled)
{
  p->stop = 0;
  p->running = enabled && pthread_create(&p->thread, NULL, draw, p) == 0;
}

void progress_stop(struct progress *p)
{
  if (!p->running)
    return;
  p->stop = 1;
  pthread_join(p->thread, NULL);
  p->running = 0;
}
