/* The progress line on a terminal: percentage, MiB done of total, rate and
 * time left, redrawn four times a second by its own thread while the
 * library works. */
#include <pthread.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

struct line {
  struct progress_info info;
  pthread_t thread;
  atomic_int stop;
  int running;
};

static void *draw(void *arg)
{
  struct line *l = arg;
  const struct progress_info *p = &l->info;
  struct timespec start, now;
  clock_gettime(CLOCK_MONOTONIC, &start);
  while (!l->stop) {
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
    /* Time left at the average rate so far, once there is one. */
    if (secs >= 1 && done > 0 && total > done) {
      long left = (long)((total - done) * secs / done);
      fprintf(stderr, "  ETA %ld:%02ld:%02ld", left / 3600, left / 60 % 60, left % 60);
    }
    fprintf(stderr, "\033[K");
  }
  fprintf(stderr, "\r\033[K");
  return NULL;
}

static void begin(void *opaque, const struct progress_info *info)
{
  struct line *l = opaque;
  l->info = *info;
  l->stop = 0;
  l->running = pthread_create(&l->thread, NULL, draw, l) == 0;
}

static void end(void *opaque)
{
  struct line *l = opaque;
  if (!l->running)
    return;
  l->stop = 1;
  pthread_join(l->thread, NULL);
  l->running = 0;
}

const struct progress_ops *cli_progress(void)
{
  static struct line line;
  static const struct progress_ops ops = {.begin = begin, .end = end, .opaque = &line};
  return isatty(STDERR_FILENO) ? &ops : NULL;
}
