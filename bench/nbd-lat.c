/* nbd-lat: latency probes of an NBD export for bench/serve.sh.
 *   nbd-lat first-byte SOCKET TIMEOUT   seconds from this program's start
 *                                       until a 4 KiB read at offset 0 returns
 *                                       (connecting again until it answers)
 *   nbd-lat random SOCKET N SEED        N 4 KiB reads at random offsets in
 *                                       the export's data extents (not holes):
 *                                       prints "median_ms p99_ms"
 */
#include <inttypes.h>
#include <libnbd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

struct extents {
  uint64_t *off, *len;
  size_t n, cap;
  uint64_t pos;
};

static int extent_cb(void *opaque, const char *meta, uint64_t offset, uint32_t *entries, size_t nr,
                     int *error)
{
  struct extents *e = opaque;
  (void)meta;
  (void)error;
  for (size_t i = 0; i + 1 < nr; i += 2) {
    if (!(entries[i + 1] & LIBNBD_STATE_HOLE)) {
      if (e->n == e->cap) {
        e->cap = e->cap ? 2 * e->cap : 64;
        e->off = realloc(e->off, e->cap * sizeof *e->off);
        e->len = realloc(e->len, e->cap * sizeof *e->len);
      }
      e->off[e->n] = offset;
      e->len[e->n++] = entries[i];
    }
    offset += entries[i];
  }
  e->pos = offset;
  return 0;
}

static int cmp_double(const void *a, const void *b)
{
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
  double t0 = now();
  char buf[4096];
  if (argc == 4 && strcmp(argv[1], "first-byte") == 0) {
    double end = t0 + atof(argv[3]);
    while (now() < end) {
      struct nbd_handle *h = nbd_create();
      if (nbd_connect_unix(h, argv[2]) == 0 && nbd_pread(h, buf, sizeof buf, 0, 0) == 0) {
        printf("%.3f\n", now() - t0);
        nbd_close(h);
        return 0;
      }
      nbd_close(h);
      usleep(2000);
    }
    fprintf(stderr, "nbd-lat: no answer at %s\n", argv[2]);
    return 1;
  }
  if (argc == 5 && strcmp(argv[1], "random") == 0) {
    int n = atoi(argv[3]);
    srand((unsigned)atoi(argv[4]));
    struct nbd_handle *h = nbd_create();
    struct extents e = {0};
    if (!h || nbd_add_meta_context(h, LIBNBD_CONTEXT_BASE_ALLOCATION) == -1 ||
        nbd_connect_unix(h, argv[2]) == -1) {
      fprintf(stderr, "nbd-lat: %s\n", nbd_get_error());
      return 1;
    }
    int64_t size = nbd_get_size(h);
    while (e.pos < (uint64_t)size) {
      uint64_t want = (uint64_t)size - e.pos > (1u << 30) ? (1u << 30) : (uint64_t)size - e.pos;
      if (nbd_block_status(h, want, e.pos,
                           (nbd_extent_callback){.callback = extent_cb, .user_data = &e},
                           0) == -1) {
        fprintf(stderr, "nbd-lat: %s\n", nbd_get_error());
        return 1;
      }
    }
    uint64_t total = 0;
    for (size_t i = 0; i < e.n; i++)
      total += e.len[i];
    if (total < sizeof buf || n < 1) {
      fprintf(stderr, "nbd-lat: no data to read\n");
      return 1;
    }
    double *lat = malloc((size_t)n * sizeof *lat);
    for (int k = 0; k < n; k++) {
      uint64_t r = (((uint64_t)rand() << 31) ^ (uint64_t)rand()) % (total - sizeof buf);
      size_t i = 0;
      while (r >= e.len[i]) {
        r -= e.len[i];
        i++;
      }
      uint64_t off = (e.off[i] + r) / 4096 * 4096;
      double a = now();
      if (nbd_pread(h, buf, sizeof buf, off, 0) == -1) {
        fprintf(stderr, "nbd-lat: read at %" PRIu64 ": %s\n", off, nbd_get_error());
        return 1;
      }
      lat[k] = (now() - a) * 1000;
    }
    qsort(lat, (size_t)n, sizeof *lat, cmp_double);
    printf("%.3f %.3f\n", lat[n / 2],
           lat[(size_t)(n * 99) / 100 < (size_t)n ? (size_t)(n * 99) / 100 : (size_t)n - 1]);
    nbd_shutdown(h, 0);
    nbd_close(h);
    return 0;
  }
  fprintf(stderr, "usage: nbd-lat first-byte SOCKET TIMEOUT | random SOCKET N SEED\n");
  return 2;
}
