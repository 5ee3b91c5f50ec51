/* A small tool that drives any store (local folder or S3) through the store
 * interface, for integration tests and debugging:
 *   s3-tool LOCATION init|put|excl|get|range|head|del|list|temp|parallel ...
 * Exit status: 0 ok, 2 usage, 3 ENOENT, 4 EEXIST, 5 EACCES, 6 EIO, 7 EFBIG,
 * 1 any other error; the message goes to stderr as "s3-tool: ...". */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "env/settings.h"
#include "store/store.h"
#include "util/error.h"

static int usage(void)
{
  fprintf(stderr, "usage: s3-tool LOCATION init\n"
                  "       s3-tool LOCATION put|excl KEY FILE   (FILE - for stdin)\n"
                  "       s3-tool LOCATION get KEY [MAX]\n"
                  "       s3-tool LOCATION range KEY OFFSET LENGTH\n"
                  "       s3-tool LOCATION head|del KEY\n"
                  "       s3-tool LOCATION list [PREFIX]\n"
                  "       s3-tool LOCATION temp   (temporary leftovers: NAME SIZE MTIME)\n"
                  "       s3-tool LOCATION parallel KEYPREFIX OBJECTS THREADS MAXSIZE\n");
  return 2;
}

static int fail(void)
{
  fprintf(stderr, "s3-tool: %s\n", get_error());
  switch (get_errno()) {
  case ENOENT:
    return 3;
  case EEXIST:
    return 4;
  case EACCES:
    return 5;
  case EIO:
    return 6;
  case EFBIG:
    return 7;
  default:
    return 1;
  }
}

static int number(const char *s, uint64_t *out)
{
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || end == s || *end || s[0] == '-')
    return -1;
  *out = v;
  return 0;
}

static int read_input(const char *path, char **buf, size_t *len)
{
  FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
  if (!f) {
    set_error(errno, "%s", path);
    return -1;
  }
  size_t cap = 1 << 16, n = 0;
  char *b = malloc(cap);
  while (b) {
    size_t r = fread(b + n, 1, cap - n, f);
    n += r;
    if (n < cap)
      break;
    cap *= 2;
    char *nb = realloc(b, cap);
    if (!nb) {
      free(b);
      b = NULL;
    }
    b = nb;
  }
  int err = ferror(f);
  if (f != stdin)
    fclose(f);
  if (!b || err) {
    free(b);
    set_error(EIO, "%s: read", path);
    return -1;
  }
  *buf = b;
  *len = n;
  return 0;
}

static int print_key(void *opaque, const char *key, uint64_t size, int64_t mtime)
{
  (void)opaque;
  (void)mtime;
  printf("%s %" PRIu64 "\n", key, size);
  return 0;
}

static int print_temp(void *opaque, const char *name, uint64_t size, int64_t mtime)
{
  (void)opaque;
  printf("%s %" PRIu64 " %" PRId64 "\n", name, size, mtime);
  return 0;
}

/* parallel: THREADS threads each put, read back (whole and a range), compare
 * and delete their share of OBJECTS objects of pseudo-random sizes. */
struct par {
  struct store *st;
  const char *prefix;
  unsigned id, nthreads, nobjects;
  uint64_t maxsize;
  int failed;
  char msg[1100];
};

static void *par_run(void *opaque)
{
  struct par *p = opaque;
  uint64_t seed = 0x9e3779b97f4a7c15ull * (p->id + 1);
  for (unsigned i = p->id; i < p->nobjects; i += p->nthreads) {
    char key[512];
    snprintf(key, sizeof key, "%s/%u", p->prefix, i);
    seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
    size_t len = (size_t)(seed % (p->maxsize + 1));
    char *buf = malloc(len ? len : 1);
    void *back = NULL;
    size_t backlen = 0;
    for (size_t j = 0; j < len; j++)
      buf[j] = (char)(i * 31 + j * 7 + (j >> 9));
    int ok = store_put(p->st, key, buf, len, STORE_PUT_EXCL) == 0 &&
             store_get(p->st, key, p->maxsize, &back, &backlen) == 0;
    if (ok && (backlen != len || memcmp(back, buf, len) != 0)) {
      set_error(EIO, "%s: read back differs", key);
      ok = 0;
    }
    if (ok && len > 2) {
      char r[64];
      size_t rl = len / 2 < sizeof r ? len / 2 : sizeof r;
      ok = store_get_range(p->st, key, len / 3, rl, r) == 0;
      if (ok && memcmp(r, buf + len / 3, rl) != 0) {
        set_error(EIO, "%s: range differs", key);
        ok = 0;
      }
    }
    if (ok)
      ok = store_del(p->st, key) == 0;
    free(buf);
    free(back);
    if (!ok) {
      p->failed = 1;
      snprintf(p->msg, sizeof p->msg, "%s", get_error());
      return NULL;
    }
  }
  return NULL;
}

int main(int argc, char **argv)
{
  if (argc < 3)
    return usage();
  const char *loc = argv[1], *cmd = argv[2];
  int create = strcmp(cmd, "init") == 0;
  struct s3_settings s3;
  s3_settings_default(&s3);
  if (strncmp(loc, "s3:", 3) == 0 && settings_s3_from_env(&s3) == -1)
    return fail();
  struct store *st = store_open(loc, create, &s3);
  s3_settings_free(&s3);
  int rc = 0;
  uint64_t a, b, c, d;
  if (!st)
    return fail();
  if (create) {
    rc = 0;
  } else if ((strcmp(cmd, "put") == 0 || strcmp(cmd, "excl") == 0) && argc == 5) {
    char *buf = NULL;
    size_t len;
    if (read_input(argv[4], &buf, &len) == -1 ||
        store_put(st, argv[3], buf, len, cmd[0] == 'e' ? STORE_PUT_EXCL : 0) == -1)
      rc = fail();
    free(buf);
  } else if (strcmp(cmd, "get") == 0 && (argc == 4 || argc == 5)) {
    void *buf;
    size_t len;
    a = 1ull << 30;
    if (argc == 5 && number(argv[4], &a) == -1)
      rc = usage();
    else if (store_get(st, argv[3], (size_t)a, &buf, &len) == -1)
      rc = fail();
    else {
      fwrite(buf, 1, len, stdout);
      free(buf);
    }
  } else if (strcmp(cmd, "range") == 0 && argc == 6) {
    if (number(argv[4], &a) == -1 || number(argv[5], &b) == -1 || b > (1ull << 30)) {
      rc = usage();
    } else {
      char *buf = malloc(b ? b : 1);
      if (store_get_range(st, argv[3], a, (size_t)b, buf) == -1)
        rc = fail();
      else
        fwrite(buf, 1, b, stdout);
      free(buf);
    }
  } else if (strcmp(cmd, "head") == 0 && argc == 4) {
    if (store_head(st, argv[3], &a) == -1)
      rc = fail();
    else
      printf("%" PRIu64 "\n", a);
  } else if (strcmp(cmd, "del") == 0 && argc == 4) {
    if (store_del(st, argv[3]) == -1)
      rc = fail();
  } else if (strcmp(cmd, "list") == 0 && (argc == 3 || argc == 4)) {
    if (store_list(st, argc == 4 ? argv[3] : "", print_key, NULL) == -1)
      rc = fail();
  } else if (strcmp(cmd, "temp") == 0 && argc == 3) {
    if (store_list_temp(st, print_temp, NULL) == -1)
      rc = fail();
  } else if (strcmp(cmd, "parallel") == 0 && argc == 7 && number(argv[4], &a) == 0 &&
             number(argv[5], &b) == 0 && number(argv[6], &c) == 0 && b > 0 && b <= 64) {
    struct par ps[64];
    pthread_t th[64];
    for (d = 0; d < b; d++) {
      ps[d] = (struct par){st, argv[3], (unsigned)d, (unsigned)b, (unsigned)a, c, 0, ""};
      pthread_create(&th[d], NULL, par_run, &ps[d]);
    }
    for (d = 0; d < b; d++) {
      pthread_join(th[d], NULL);
      if (ps[d].failed) {
        fprintf(stderr, "s3-tool: thread %u: %s\n", (unsigned)d, ps[d].msg);
        rc = 1;
      }
    }
  } else {
    rc = usage();
  }
  if (fflush(stdout) != 0)
    rc = 1;
  store_free(st);
  return rc;
}
