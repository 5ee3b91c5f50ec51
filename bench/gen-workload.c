/* gen-workload: builds the benchmark workload of DESIGN section 5, deterministically.
 * "base" writes a sparse disk image (text, random, zero and duplicated data in runs);
 * "change" rewrites part of it in place and writes the changed-extent list (VMware format). */

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KIB 1024ULL
#define MIB (1024 * KIB)
#define GIB (1024 * MIB)

/* Allocation granule of the base image and of small change writes. */
#define GRANULE (64 * KIB)
#define PAGE (4 * KIB)
#define BUF_SIZE (4 * MIB)

struct params {
  double scale;
  uint64_t seed;
  uint64_t disk_size;
  uint64_t alloc_target;
  uint64_t change_small; /* bytes of small scattered writes */
  uint64_t change_run;   /* the one large run */
};

/* ---- PRNG: splitmix64 seeds xoshiro256** ---- */

struct rng {
  uint64_t s[4];
};

static uint64_t splitmix64(uint64_t *x)
{
  uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static void rng_init(struct rng *r, uint64_t seed)
{
  for (int i = 0; i < 4; i++)
    r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
  return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(struct rng *r)
{
  uint64_t *s = r->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

/* Uniform in [0, n); the modulo bias is negligible for the small n used here. */
static uint64_t rng_below(struct rng *r, uint64_t n)
{
  return n == 0 ? 0 : rng_next(r) % n;
}

static uint64_t rng_range(struct rng *r, uint64_t lo, uint64_t hi)
{
  return lo + rng_below(r, hi - lo + 1);
}

/* ---- extent lists ---- */

struct extent {
  uint64_t off, len;
};

struct extent_list {
  struct extent *v;
  size_t len, cap;
};

static int extent_list_push(struct extent_list *l, uint64_t off, uint64_t len)
{
  if (l->len == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 256;
    struct extent *v = realloc(l->v, cap * sizeof *v);
    if (!v) {
      perror("gen-workload: realloc");
      return -1;
    }
    l->v = v;
    l->cap = cap;
  }
  l->v[l->len].off = off;
  l->v[l->len].len = len;
  l->len++;
  return 0;
}

static void extent_list_free(struct extent_list *l)
{
  free(l->v);
  l->v = NULL;
  l->len = l->cap = 0;
}

static int extent_cmp(const void *a, const void *b)
{
  const struct extent *x = a, *y = b;
  if (x->off != y->off)
    return x->off < y->off ? -1 : 1;
  return 0;
}

/* Sort and merge overlapping or touching extents in place. */
static void extent_list_normalize(struct extent_list *l)
{
  if (l->len == 0)
    return;
  qsort(l->v, l->len, sizeof *l->v, extent_cmp);
  size_t out = 0;
  for (size_t i = 1; i < l->len; i++) {
    struct extent *cur = &l->v[out];
    if (l->v[i].off <= cur->off + cur->len) {
      uint64_t end = l->v[i].off + l->v[i].len;
      if (end > cur->off + cur->len)
        cur->len = end - cur->off;
    } else {
      l->v[++out] = l->v[i];
    }
  }
  l->len = out + 1;
}

static uint64_t extent_list_bytes(const struct extent_list *l)
{
  uint64_t sum = 0;
  for (size_t i = 0; i < l->len; i++)
    sum += l->v[i].len;
  return sum;
}

/* Write in VMware's changed-disk-areas text format: "offset length", decimal bytes. */
static int extent_list_write(const struct extent_list *l, FILE *f)
{
  for (size_t i = 0; i < l->len; i++) {
    if (fprintf(f, "%15" PRIu64 "%14" PRIu64 "\n", l->v[i].off, l->v[i].len) < 0)
      return -1;
  }
  return 0;
}

/* The allocated (data) extents of fd, from SEEK_DATA / SEEK_HOLE. */
static int read_map(int fd, uint64_t size, struct extent_list *map)
{
  off_t pos = 0;
  while ((uint64_t)pos < size) {
    off_t data = lseek(fd, pos, SEEK_DATA);
    if (data == -1) {
      if (errno == ENXIO)
        break;
      perror("gen-workload: lseek SEEK_DATA");
      return -1;
    }
    off_t hole = lseek(fd, data, SEEK_HOLE);
    if (hole == -1) {
      perror("gen-workload: lseek SEEK_HOLE");
      return -1;
    }
    if (extent_list_push(map, (uint64_t)data, (uint64_t)(hole - data)) == -1)
      return -1;
    pos = hole;
  }
  return 0;
}

/* ---- content ---- */

enum kind { K_TEXT, K_RANDOM, K_ZERO, K_DUP_ALIGNED, K_DUP_SHIFTED, K_NKINDS };

static const char *const kind_name[K_NKINDS] = {"text", "random", "zero", "dup-aligned",
                                                "dup-shifted"};

static const char *const words[] = {
    "the",
    "request",
    "completed",
    "connection",
    "from",
    "client",
    "server",
    "session",
    "opened",
    "closed",
    "user",
    "root",
    "admin",
    "failed",
    "accepted",
    "password",
    "publickey",
    "for",
    "port",
    "ssh2",
    "kernel",
    "device",
    "mounted",
    "filesystem",
    "ext4",
    "journal",
    "commit",
    "interval",
    "started",
    "stopped",
    "service",
    "unit",
    "timer",
    "job",
    "queue",
    "worker",
    "thread",
    "pool",
    "cache",
    "hit",
    "miss",
    "evicted",
    "block",
    "sector",
    "read",
    "write",
    "error",
    "warning",
    "info",
    "debug",
    "retry",
    "timeout",
    "after",
    "ms",
    "bytes",
    "sent",
    "received",
    "packet",
    "dropped",
    "interface",
    "eth0",
    "link",
    "up",
    "down",
    "carrier",
    "lost",
    "dhcp",
    "lease",
    "renewed",
    "address",
    "backup",
    "snapshot",
    "volume",
    "disk",
    "image",
    "extent",
    "changed",
    "query",
    "database",
    "table",
    "index",
    "row",
    "rows",
    "updated",
    "inserted",
    "deleted",
    "transaction",
    "rollback",
    "checkpoint",
    "vacuum",
    "analyze",
    "GET",
    "POST",
    "PUT",
    "HTTP/1.1",
    "200",
    "404",
    "500",
    "/api/v1/items",
    "/login",
    "/static/app.js",
    "/healthz",
    "Mozilla/5.0",
    "curl/7.88",
    "memory",
    "usage",
    "high",
    "low",
    "threshold",
    "exceeded",
    "ok",
    "config",
    "reloaded",
    "signal",
    "SIGHUP",
    "received",
    "pid",
    "exit",
    "status",
    "code",
    "0",
    "1",
    "scheduled",
    "cron",
    "daily",
    "rotate",
    "log",
    "compressed",
    "archive",
    "upload",
    "download",
    "complete",
};

#define NWORDS (sizeof words / sizeof words[0])

static const char *const services[] = {"sshd", "kernel",   "systemd", "nginx", "postgres",
                                       "cron", "dhclient", "backupd", "app",   "redis"};

#define NSERVICES (sizeof services / sizeof services[0])

struct text_state {
  uint64_t clock_ms; /* a log timestamp that only moves forward */
  char line[512];
  size_t line_len, line_pos;
};

static void text_next_line(struct text_state *t, struct rng *r)
{
  t->clock_ms += rng_below(r, 2000);
  uint64_t s = t->clock_ms / 1000;
  unsigned ms = (unsigned)(t->clock_ms % 1000);
  unsigned svc = (unsigned)rng_below(r, NSERVICES);
  int n = snprintf(t->line, sizeof t->line, "2026-%02u-%02u %02u:%02u:%02u.%03u host%02u %s[%u]:",
                   (unsigned)(s / 2592000 % 12 + 1), (unsigned)(s / 86400 % 28 + 1),
                   (unsigned)(s / 3600 % 24), (unsigned)(s / 60 % 60), (unsigned)(s % 60), ms,
                   (unsigned)rng_below(r, 4), services[svc], 1000 + svc * 37);
  size_t len = (size_t)n;
  unsigned nw = (unsigned)rng_range(r, 4, 14);
  for (unsigned i = 0; i < nw && len + 40 < sizeof t->line; i++) {
    uint64_t pick = rng_below(r, NWORDS + 6);
    if (pick < NWORDS) {
      n = snprintf(t->line + len, sizeof t->line - len, " %s", words[pick]);
    } else if (pick < NWORDS + 3) {
      n = snprintf(t->line + len, sizeof t->line - len, " %u", (unsigned)rng_below(r, 100000));
    } else {
      n = snprintf(t->line + len, sizeof t->line - len, " id=%08x", (unsigned)rng_next(r));
    }
    len += (size_t)n;
  }
  t->line[len++] = '\n';
  t->line_len = len;
  t->line_pos = 0;
}

static void fill_text(struct text_state *t, struct rng *r, unsigned char *buf, size_t len)
{
  size_t done = 0;
  while (done < len) {
    if (t->line_pos == t->line_len)
      text_next_line(t, r);
    size_t n = t->line_len - t->line_pos;
    if (n > len - done)
      n = len - done;
    memcpy(buf + done, t->line + t->line_pos, n);
    t->line_pos += n;
    done += n;
  }
}

static void fill_random(struct rng *r, unsigned char *buf, size_t len)
{
  size_t i = 0;
  for (; i + 8 <= len; i += 8) {
    uint64_t x = rng_next(r);
    memcpy(buf + i, &x, 8);
  }
  if (i < len) {
    uint64_t x = rng_next(r);
    memcpy(buf + i, &x, len - i);
  }
}

static int pwrite_all(int fd, const unsigned char *buf, size_t len, uint64_t off)
{
  while (len > 0) {
    ssize_t n = pwrite(fd, buf, len, (off_t)off);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      perror("gen-workload: pwrite");
      return -1;
    }
    buf += n;
    len -= (size_t)n;
    off += (uint64_t)n;
  }
  return 0;
}

static int pread_all(int fd, unsigned char *buf, size_t len, uint64_t off)
{
  while (len > 0) {
    ssize_t n = pread(fd, buf, len, (off_t)off);
    if (n < 0) {
      if (errno == EINTR)
        continue;
      perror("gen-workload: pread");
      return -1;
    }
    if (n == 0) {
      memset(buf, 0, len);
      return 0;
    }
    buf += n;
    len -= (size_t)n;
    off += (uint64_t)n;
  }
  return 0;
}

struct writer {
  int fd;
  unsigned char *buf;
  struct rng content;
  struct text_state text;
};

/* Write len bytes of generated content of kind k (text, random or zero) at off. */
static int writer_fill(struct writer *w, enum kind k, uint64_t off, uint64_t len)
{
  while (len > 0) {
    size_t n = len > BUF_SIZE ? BUF_SIZE : (size_t)len;
    if (k == K_TEXT)
      fill_text(&w->text, &w->content, w->buf, n);
    else if (k == K_RANDOM)
      fill_random(&w->content, w->buf, n);
    else
      memset(w->buf, 0, n);
    if (pwrite_all(w->fd, w->buf, n, off) == -1)
      return -1;
    off += n;
    len -= n;
  }
  return 0;
}

/* Copy len bytes already in the image from src to dst. */
static int writer_copy(struct writer *w, uint64_t src, uint64_t dst, uint64_t len)
{
  while (len > 0) {
    size_t n = len > BUF_SIZE ? BUF_SIZE : (size_t)len;
    if (pread_all(w->fd, w->buf, n, src) == -1 || pwrite_all(w->fd, w->buf, n, dst) == -1)
      return -1;
    src += n;
    dst += n;
    len -= n;
  }
  return 0;
}

/* Find an earlier written range of len bytes whose start is a multiple of align; data holds
 * the runs written so far (each contiguous). Returns 0 and sets *src, or -1 if none fits. */
static int pick_source(struct rng *r, const struct extent_list *data, uint64_t len, uint64_t align,
                       uint64_t *src)
{
  for (int attempt = 0; attempt < 32 && data->len > 0; attempt++) {
    const struct extent *e = &data->v[rng_below(r, data->len)];
    uint64_t first = (e->off + align - 1) / align * align;
    if (first + len > e->off + e->len)
      continue;
    uint64_t slots = (e->off + e->len - len - first) / align + 1;
    *src = first + rng_below(r, slots) * align;
    return 0;
  }
  return -1;
}

static enum kind pick_kind(struct rng *r)
{
  /* Weights by count; segment sizes are similar, so roughly by bytes too. */
  uint64_t x = rng_below(r, 100);
  if (x < 40)
    return K_TEXT;
  if (x < 68)
    return K_RANDOM;
  if (x < 80)
    return K_ZERO;
  if (x < 94)
    return K_DUP_ALIGNED;
  return K_DUP_SHIFTED;
}

/* Run lengths of the base image, in bytes (multiples of GRANULE). */
static uint64_t pick_run_len(struct rng *r, double scale)
{
  uint64_t x = rng_below(r, 100);
  uint64_t hi_large = (uint64_t)(64.0 * scale * MIB);
  if (hi_large < 16 * MIB)
    hi_large = 16 * MIB;
  if (x < 45)
    return rng_range(r, 1, 16) * GRANULE; /* 64 KiB - 1 MiB: metadata, small files */
  if (x < 85)
    return rng_range(r, 16, 128) * GRANULE; /* 1 - 8 MiB */
  return rng_range(r, 128, hi_large / GRANULE) * GRANULE;
}

static int gen_base(const struct params *p, const char *path)
{
  int ret = -1;
  struct extent_list runs = {0}, data = {0};
  uint64_t by_kind[K_NKINDS] = {0};
  struct writer w = {.fd = -1};
  struct rng layout;
  rng_init(&layout, p->seed ^ 0x6c61796f7574ULL);
  rng_init(&w.content, p->seed ^ 0x636f6e74656e74ULL);

  w.buf = malloc(BUF_SIZE);
  if (!w.buf) {
    perror("gen-workload: malloc");
    goto out;
  }
  w.fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (w.fd == -1) {
    fprintf(stderr, "gen-workload: open %s: %s\n", path, strerror(errno));
    goto out;
  }
  if (ftruncate(w.fd, (off_t)p->disk_size) == -1) {
    perror("gen-workload: ftruncate");
    goto out;
  }

  /* Choose run lengths until the allocation target is met, then spread the holes between them
   * with random weights so the runs cover the whole disk. The first run sits at offset 0, like a
   * partition table, and the last ends before the end of the disk. */
  uint64_t total = 0;
  while (total < p->alloc_target) {
    uint64_t len = pick_run_len(&layout, p->scale);
    if (len > p->alloc_target - total)
      len = (p->alloc_target - total + GRANULE - 1) / GRANULE * GRANULE;
    if (extent_list_push(&runs, 0, len) == -1)
      goto out;
    total += len;
  }
  if (total >= p->disk_size) {
    fprintf(stderr, "gen-workload: allocation does not fit the disk\n");
    goto out;
  }
  uint64_t hole_granules = (p->disk_size - total) / GRANULE;
  uint64_t *weights = calloc(runs.len, sizeof *weights);
  if (!weights) {
    perror("gen-workload: calloc");
    goto out;
  }
  uint64_t wsum = 0;
  for (size_t i = 0; i < runs.len; i++) {
    weights[i] = i == 0 ? 0 : rng_range(&layout, 1, 1000);
    wsum += weights[i];
  }
  uint64_t pos = 0, acc = 0;
  for (size_t i = 0; i < runs.len; i++) {
    /* gap before run i, as a share of all hole granules (the rest stays at the end) */
    uint64_t before = acc * hole_granules / (wsum + 1);
    acc += weights[i];
    uint64_t upto = acc * hole_granules / (wsum + 1);
    pos += (upto - before) * GRANULE;
    runs.v[i].off = pos;
    pos += runs.v[i].len;
  }
  free(weights);

  for (size_t i = 0; i < runs.len; i++) {
    uint64_t cur = runs.v[i].off, end = runs.v[i].off + runs.v[i].len;
    while (cur < end) {
      enum kind k = pick_kind(&layout);
      uint64_t len = rng_range(&layout, 1, 64) * GRANULE; /* 64 KiB - 4 MiB */
      if (len > end - cur)
        len = end - cur;
      if (k == K_DUP_ALIGNED) {
        /* A copy of an earlier 1 MiB or 4 MiB aligned region, placed at the same alignment so
         * fixed-size blocks of that size (or smaller) can find it. */
        uint64_t dlen = rng_below(&layout, 3) == 0 ? 4 * MIB : 1 * MIB;
        uint64_t dst = (cur + dlen - 1) / dlen * dlen;
        uint64_t src;
        if (dst + dlen <= end && pick_source(&layout, &data, dlen, dlen, &src) == 0) {
          if (dst > cur) {
            if (writer_fill(&w, K_TEXT, cur, dst - cur) == -1)
              goto out;
            by_kind[K_TEXT] += dst - cur;
          }
          if (writer_copy(&w, src, dst, dlen) == -1)
            goto out;
          by_kind[K_DUP_ALIGNED] += dlen;
          len = dst + dlen - cur;
        } else {
          k = K_TEXT;
        }
      } else if (k == K_DUP_SHIFTED) {
        /* A copy of earlier data from a 512-byte-aligned (not block-aligned) offset: only
         * content-defined chunking can find it. */
        uint64_t src;
        if (pick_source(&layout, &data, len + GRANULE, 512, &src) == 0) {
          if (src % GRANULE == 0)
            src += 512 * rng_range(&layout, 1, GRANULE / 512 - 1);
          if (writer_copy(&w, src, cur, len) == -1)
            goto out;
          by_kind[K_DUP_SHIFTED] += len;
        } else {
          k = K_TEXT;
        }
      }
      if (k == K_TEXT || k == K_RANDOM || k == K_ZERO) {
        if (writer_fill(&w, k, cur, len) == -1)
          goto out;
        by_kind[k] += len;
      }
      cur += len;
    }
    /* Only whole runs serve as dedup sources: everything in them is written now. */
    if (extent_list_push(&data, runs.v[i].off, runs.v[i].len) == -1)
      goto out;
  }
  if (fsync(w.fd) == -1) {
    perror("gen-workload: fsync");
    goto out;
  }

  struct extent_list map = {0};
  if (read_map(w.fd, p->disk_size, &map) == -1) {
    extent_list_free(&map);
    goto out;
  }
  printf("base: disk %" PRIu64 " bytes, %zu runs, allocated %" PRIu64 " bytes (%zu extents by "
         "SEEK_DATA)\n",
         p->disk_size, runs.len, total, map.len);
  if (extent_list_bytes(&map) != total)
    printf("base: note: SEEK_DATA reports %" PRIu64 " allocated bytes\n", extent_list_bytes(&map));
  for (int k = 0; k < K_NKINDS; k++)
    printf("  %-12s %12" PRIu64 " bytes (%4.1f%%)\n", kind_name[k], by_kind[k],
           100.0 * (double)by_kind[k] / (double)total);
  extent_list_free(&map);
  ret = 0;
out:
  if (w.fd != -1 && close(w.fd) == -1 && ret == 0) {
    perror("gen-workload: close");
    ret = -1;
  }
  free(w.buf);
  extent_list_free(&runs);
  extent_list_free(&data);
  return ret;
}

/* A random PAGE-aligned offset for a write of len bytes inside one allocated extent, chosen with
 * probability proportional to the extent's length. */
static int pick_in_data(struct rng *r, const struct extent_list *map, uint64_t total, uint64_t len,
                        uint64_t *off)
{
  for (int attempt = 0; attempt < 64; attempt++) {
    uint64_t x = rng_below(r, total);
    size_t i = 0;
    while (x >= map->v[i].len) {
      x -= map->v[i].len;
      i++;
    }
    const struct extent *e = &map->v[i];
    uint64_t first = (e->off + PAGE - 1) / PAGE * PAGE;
    if (first + len > e->off + e->len)
      continue;
    *off = first + rng_below(r, (e->off + e->len - len - first) / PAGE + 1) * PAGE;
    return 0;
  }
  return -1;
}

static bool overlaps_data(const struct extent_list *map, uint64_t off, uint64_t len)
{
  for (size_t i = 0; i < map->len; i++) {
    if (map->v[i].off < off + len && off < map->v[i].off + map->v[i].len)
      return true;
  }
  return false;
}

static int gen_change(const struct params *p, const char *path, const char *list_path)
{
  int ret = -1;
  struct extent_list map = {0}, changed = {0};
  struct writer w = {.fd = -1};
  FILE *f = NULL;
  struct rng layout;
  rng_init(&layout, p->seed ^ 0x6368616e6765ULL);
  rng_init(&w.content, p->seed ^ 0x6368616e676564ULL);
  w.text.clock_ms = 86400ULL * 1000 * 200;

  w.buf = malloc(BUF_SIZE);
  if (!w.buf) {
    perror("gen-workload: malloc");
    goto out;
  }
  w.fd = open(path, O_RDWR | O_CLOEXEC);
  if (w.fd == -1) {
    fprintf(stderr, "gen-workload: open %s: %s\n", path, strerror(errno));
    goto out;
  }
  struct stat st;
  if (fstat(w.fd, &st) == -1) {
    perror("gen-workload: fstat");
    goto out;
  }
  uint64_t size = (uint64_t)st.st_size;
  if (read_map(w.fd, size, &map) == -1)
    goto out;
  uint64_t alloc = extent_list_bytes(&map);
  if (alloc == 0 || size < 2 * p->change_run) {
    fprintf(stderr, "gen-workload: %s has no data or is too small\n", path);
    goto out;
  }

  /* Small scattered writes, 4 KiB - 64 KiB: most inside allocated data, some into holes. */
  uint64_t small = 0, nsmall = 0, nhole = 0;
  while (small < p->change_small) {
    uint64_t len = rng_range(&layout, 1, 16) * PAGE;
    uint64_t off;
    bool in_hole = rng_below(&layout, 100) < 15;
    if (in_hole) {
      off = rng_below(&layout, (size - len) / PAGE + 1) * PAGE;
      if (overlaps_data(&map, off, len))
        continue;
      nhole++;
    } else if (pick_in_data(&layout, &map, alloc, len, &off) == -1) {
      continue;
    }
    enum kind k = rng_below(&layout, 2) ? K_TEXT : K_RANDOM;
    if (writer_fill(&w, k, off, len) == -1 || extent_list_push(&changed, off, len) == -1)
      goto out;
    small += len;
    nsmall++;
  }

  /* One large run (a file rewritten): starts page-aligned but not block-aligned, inside data. */
  uint64_t run_off = 0;
  if (pick_in_data(&layout, &map, alloc, PAGE, &run_off) == -1) {
    fprintf(stderr, "gen-workload: no place for the large run\n");
    goto out;
  }
  if (run_off % (64 * KIB) == 0)
    run_off += 3 * PAGE;
  if (run_off + p->change_run > size)
    run_off = (size - p->change_run) / PAGE * PAGE - 3 * PAGE;
  for (uint64_t done = 0; done < p->change_run;) {
    uint64_t n = p->change_run - done > MIB ? MIB : p->change_run - done;
    enum kind k = rng_below(&layout, 3) == 0 ? K_RANDOM : K_TEXT;
    if (writer_fill(&w, k, run_off + done, n) == -1)
      goto out;
    done += n;
  }
  if (extent_list_push(&changed, run_off, p->change_run) == -1)
    goto out;
  if (fsync(w.fd) == -1) {
    perror("gen-workload: fsync");
    goto out;
  }

  extent_list_normalize(&changed);
  f = fopen(list_path, "w");
  if (!f) {
    fprintf(stderr, "gen-workload: open %s: %s\n", list_path, strerror(errno));
    goto out;
  }
  if (extent_list_write(&changed, f) == -1) {
    perror("gen-workload: write extents");
    goto out;
  }
  uint64_t bytes = extent_list_bytes(&changed);
  printf("change: %" PRIu64 " small writes (%" PRIu64 " into holes, %" PRIu64 " bytes) + a %" PRIu64
         "-byte run at %" PRIu64 "\n",
         nsmall, nhole, small, p->change_run, run_off);
  printf("change: %zu extents, %" PRIu64 " changed bytes = %.2f%% of the %" PRIu64
         " allocated bytes before\n",
         changed.len, bytes, 100.0 * (double)bytes / (double)alloc, alloc);
  ret = 0;
out:
  if (f && fclose(f) == EOF && ret == 0) {
    perror("gen-workload: close extents");
    ret = -1;
  }
  if (w.fd != -1)
    close(w.fd);
  free(w.buf);
  extent_list_free(&map);
  extent_list_free(&changed);
  return ret;
}

/* Print the allocated extents of a file, in the same format as the change list. */
static int print_map(const char *path)
{
  int ret = -1;
  struct extent_list map = {0};
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd == -1) {
    fprintf(stderr, "gen-workload: open %s: %s\n", path, strerror(errno));
    goto out;
  }
  struct stat st;
  if (fstat(fd, &st) == -1) {
    perror("gen-workload: fstat");
    goto out;
  }
  if (read_map(fd, (uint64_t)st.st_size, &map) == -1)
    goto out;
  if (extent_list_write(&map, stdout) == -1)
    goto out;
  ret = 0;
out:
  if (fd != -1)
    close(fd);
  extent_list_free(&map);
  return ret;
}

/* Copy src to dst writing exactly the allocated extents of src, so allocated zero blocks stay
 * allocated and holes stay holes (cp --sparse would turn zero blocks into holes). */
static int copy_image(const char *src, const char *dst)
{
  int ret = -1, in = -1, out = -1;
  struct extent_list map = {0};
  in = open(src, O_RDONLY | O_CLOEXEC);
  if (in == -1) {
    fprintf(stderr, "gen-workload: open %s: %s\n", src, strerror(errno));
    goto out;
  }
  struct stat st;
  if (fstat(in, &st) == -1) {
    perror("gen-workload: fstat");
    goto out;
  }
  out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out == -1) {
    fprintf(stderr, "gen-workload: open %s: %s\n", dst, strerror(errno));
    goto out;
  }
  if (ftruncate(out, st.st_size) == -1) {
    perror("gen-workload: ftruncate");
    goto out;
  }
  if (read_map(in, (uint64_t)st.st_size, &map) == -1)
    goto out;
  for (size_t i = 0; i < map.len; i++) {
    off_t ioff = (off_t)map.v[i].off, ooff = (off_t)map.v[i].off;
    uint64_t left = map.v[i].len;
    while (left > 0) {
      ssize_t n = copy_file_range(in, &ioff, out, &ooff, left, 0);
      if (n <= 0) {
        perror("gen-workload: copy_file_range");
        goto out;
      }
      left -= (uint64_t)n;
    }
  }
  if (fsync(out) == -1) {
    perror("gen-workload: fsync");
    goto out;
  }
  ret = 0;
out:
  if (in != -1)
    close(in);
  if (out != -1 && close(out) == -1 && ret == 0) {
    perror("gen-workload: close");
    ret = -1;
  }
  extent_list_free(&map);
  return ret;
}

/* Byte comparison of two images. Where both files have a hole, both read as zeros by definition,
 * so only the union of their allocated extents is read (plain cmp reads 8 GiB of holes). */
static int compare_images(const char *a, const char *b)
{
  int ret = -1, fa = -1, fb = -1;
  struct extent_list map = {0};
  unsigned char *ba = malloc(BUF_SIZE), *bb = malloc(BUF_SIZE);
  if (!ba || !bb) {
    perror("gen-workload: malloc");
    goto out;
  }
  fa = open(a, O_RDONLY | O_CLOEXEC);
  fb = open(b, O_RDONLY | O_CLOEXEC);
  if (fa == -1 || fb == -1) {
    fprintf(stderr, "gen-workload: open %s: %s\n", fa == -1 ? a : b, strerror(errno));
    goto out;
  }
  struct stat sa, sb;
  if (fstat(fa, &sa) == -1 || fstat(fb, &sb) == -1) {
    perror("gen-workload: fstat");
    goto out;
  }
  if (sa.st_size != sb.st_size) {
    fprintf(stderr, "gen-workload: %s and %s differ in size: %lld != %lld\n", a, b,
            (long long)sa.st_size, (long long)sb.st_size);
    ret = 1;
    goto out;
  }
  if (read_map(fa, (uint64_t)sa.st_size, &map) == -1 ||
      read_map(fb, (uint64_t)sb.st_size, &map) == -1)
    goto out;
  extent_list_normalize(&map);
  uint64_t compared = 0;
  for (size_t i = 0; i < map.len; i++) {
    uint64_t off = map.v[i].off, left = map.v[i].len;
    while (left > 0) {
      size_t n = left > BUF_SIZE ? BUF_SIZE : (size_t)left;
      if (pread_all(fa, ba, n, off) == -1 || pread_all(fb, bb, n, off) == -1)
        goto out;
      if (memcmp(ba, bb, n) != 0) {
        size_t j = 0;
        while (ba[j] == bb[j])
          j++;
        fprintf(stderr, "gen-workload: %s %s differ: byte %" PRIu64 "\n", a, b, off + j + 1);
        ret = 1;
        goto out;
      }
      off += n;
      left -= n;
      compared += n;
    }
  }
  printf("identical: %lld bytes (%" PRIu64 " read, the rest holes in both)\n",
         (long long)sa.st_size, compared);
  ret = 0;
out:
  if (fa != -1)
    close(fa);
  if (fb != -1)
    close(fb);
  free(ba);
  free(bb);
  extent_list_free(&map);
  return ret;
}

static void usage(FILE *f)
{
  fprintf(f, "usage: gen-workload [--scale X] [--seed N] base IMAGE\n"
             "       gen-workload [--scale X] [--seed N] change IMAGE EXTENTS_FILE\n"
             "       gen-workload map IMAGE\n"
             "       gen-workload copy SRC DST\n"
             "       gen-workload cmp A B\n"
             "base: an 8 GiB sparse image with about 1.6 GiB allocated (times X).\n"
             "change: small scattered writes of about 1.5%% of the allocated bytes plus one\n"
             "64 MiB run (times X), in place; writes the changed-extent list.\n"
             "The environment variable GEN_WORKLOAD_SCALE sets the default scale.\n");
}

static int parse_u64(const char *s, uint64_t *v)
{
  char *end;
  errno = 0;
  unsigned long long x = strtoull(s, &end, 0);
  if (errno != 0 || end == s || *end != '\0' || s[0] == '-')
    return -1;
  *v = x;
  return 0;
}

static int parse_scale(const char *s, double *v)
{
  char *end;
  errno = 0;
  double x = strtod(s, &end);
  if (errno != 0 || end == s || *end != '\0' || !(x > 0.0) || x > 64.0)
    return -1;
  *v = x;
  return 0;
}

int main(int argc, char **argv)
{
  struct params p = {.scale = 1.0, .seed = 20261122};
  const char *env = getenv("GEN_WORKLOAD_SCALE");
  if (env && *env && parse_scale(env, &p.scale) == -1) {
    fprintf(stderr, "gen-workload: bad GEN_WORKLOAD_SCALE: %s\n", env);
    return 2;
  }
  int i = 1;
  for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
    if (strcmp(argv[i], "--scale") == 0 && i + 1 < argc) {
      if (parse_scale(argv[++i], &p.scale) == -1) {
        fprintf(stderr, "gen-workload: bad scale: %s\n", argv[i]);
        return 2;
      }
    } else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
      if (parse_u64(argv[++i], &p.seed) == -1) {
        fprintf(stderr, "gen-workload: bad seed: %s\n", argv[i]);
        return 2;
      }
    } else if (strcmp(argv[i], "--help") == 0) {
      usage(stdout);
      return 0;
    } else {
      usage(stderr);
      return 2;
    }
  }
  p.disk_size = (uint64_t)(8.0 * p.scale * (double)GIB) / MIB * MIB;
  p.alloc_target = (uint64_t)(1.6 * p.scale * (double)GIB) / GRANULE * GRANULE;
  p.change_small = (uint64_t)((double)p.alloc_target * 0.015);
  p.change_run = (uint64_t)(64.0 * p.scale * (double)MIB) / MIB * MIB;
  if (p.change_run < MIB)
    p.change_run = MIB;
  if (p.disk_size < 64 * MIB) {
    fprintf(stderr, "gen-workload: scale too small\n");
    return 2;
  }

  int left = argc - i;
  char **a = argv + i;
  int rc;
  if (left == 2 && strcmp(a[0], "base") == 0)
    rc = gen_base(&p, a[1]);
  else if (left == 3 && strcmp(a[0], "change") == 0)
    rc = gen_change(&p, a[1], a[2]);
  else if (left == 2 && strcmp(a[0], "map") == 0)
    rc = print_map(a[1]);
  else if (left == 3 && strcmp(a[0], "copy") == 0)
    rc = copy_image(a[1], a[2]);
  else if (left == 3 && strcmp(a[0], "cmp") == 0) {
    rc = compare_images(a[1], a[2]);
    if (rc == 1)
      return 1;
  } else {
    usage(stderr);
    return 2;
  }
  if (fflush(stdout) == EOF)
    rc = -1;
  return rc == 0 ? 0 : 2;
}
