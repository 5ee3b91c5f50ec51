/* Unit tests for the pack writer: chunks added from several threads end up
 * in stored packs that the index points at, an upload failure reaches the
 * producers and finish, and freeing without finish stores nothing more. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "core/pack-writer.h"
#include "core/repo-internal.h"
#include "store/store.h"
#include "util/error.h"
#include "util/hash.h"

#define CHUNK_LEN (64u << 10)
#define NTHREADS 4
#define PER_THREAD 100 /* 4 x 100 x 64 KiB: 25 MiB, two packs */

/* A local store whose puts can be made to fail, and that counts them. */
struct test_store {
  struct store base;
  struct store *inner;
  int fail_puts;
  int puts;
};

static int t_put(struct store *s, const char *key, const void *buf, size_t len, unsigned flags)
{
  struct test_store *t = (struct test_store *)s;
  if (t->fail_puts) {
    set_error(EIO, "put %s: injected", key);
    return -1;
  }
  __atomic_add_fetch(&t->puts, 1, __ATOMIC_SEQ_CST);
  return store_put(t->inner, key, buf, len, flags);
}
static int t_get(struct store *s, const char *key, size_t max, void **buf, size_t *len)
{
  return store_get(((struct test_store *)s)->inner, key, max, buf, len);
}
static int t_get_range(struct store *s, const char *key, uint64_t off, size_t len, void *buf)
{
  return store_get_range(((struct test_store *)s)->inner, key, off, len, buf);
}
static int t_head(struct store *s, const char *key, uint64_t *size)
{
  return store_head(((struct test_store *)s)->inner, key, size);
}
static int t_del(struct store *s, const char *key)
{
  return store_del(((struct test_store *)s)->inner, key);
}
static int t_list(struct store *s, const char *prefix, store_list_cb cb, void *opaque)
{
  return store_list(((struct test_store *)s)->inner, prefix, cb, opaque);
}
static const struct store_ops test_ops = {.name = "test",
                                          .put = t_put,
                                          .get = t_get,
                                          .get_range = t_get_range,
                                          .head = t_head,
                                          .del = t_del,
                                          .list = t_list};

/* Chunk i's content: distinct per i, a little compressible. */
static void chunk_fill(uint8_t *buf, uint32_t i)
{
  for (uint32_t j = 0; j < CHUNK_LEN; j += 4) {
    uint32_t v = i * 2654435761u + (j / 64);
    memcpy(buf + j, &v, 4);
  }
}

struct producer {
  struct pack_writer *pw;
  struct chunk_index *ix;
  uint32_t first;
  int errors;
  char err[256];
};

static void *produce(void *arg)
{
  struct producer *p = arg;
  uint8_t *buf = malloc(CHUNK_LEN), h[HASH_LEN];
  for (uint32_t i = p->first; buf && i < p->first + PER_THREAD; i++) {
    int added;
    chunk_fill(buf, i);
    sha256(buf, CHUNK_LEN, h);
    pthread_mutex_lock(&p->ix->lock);
    struct index_slot *s = chunk_index_insert(p->ix, h, &added);
    pthread_mutex_unlock(&p->ix->lock);
    if (!s || pack_writer_add(p->pw, h, CHUNK_DATA, COMP_NONE, buf, CHUNK_LEN, CHUNK_LEN) == -1) {
      if (p->errors++ == 0)
        snprintf(p->err, sizeof p->err, "%s", get_error());
      break;
    }
  }
  free(buf);
  return NULL;
}

/* Add NTHREADS x PER_THREAD chunks concurrently; returns the number of
 * producers that saw an error, the first message in err. */
static int produce_all(struct pack_writer *pw, struct chunk_index *ix, char *err, size_t errlen)
{
  struct producer p[NTHREADS];
  pthread_t t[NTHREADS];
  int failed = 0;
  for (int i = 0; i < NTHREADS; i++) {
    p[i] = (struct producer){.pw = pw, .ix = ix, .first = (uint32_t)i * PER_THREAD};
    check_int(pthread_create(&t[i], NULL, produce, &p[i]), ==, 0);
  }
  for (int i = 0; i < NTHREADS; i++) {
    pthread_join(t[i], NULL);
    if (p[i].errors && failed++ == 0)
      snprintf(err, errlen, "%s", p[i].err);
  }
  return failed;
}

static int count_keys(void *opaque, const char *key, uint64_t size, int64_t mtime)
{
  (void)key;
  (void)size;
  (void)mtime;
  (*(int *)opaque)++;
  return 0;
}

/* Every chunk is in a stored pack at the offset the index gives. */
static void check_stored(struct test_store *ts, struct chunk_index *ix)
{
  uint8_t *want = malloc(CHUNK_LEN), *got = malloc(CHUNK_LEN), h[HASH_LEN];
  char key[PACK_KEY_LEN];
  int bad = 0;
  for (uint32_t i = 0; i < NTHREADS * PER_THREAD; i++) {
    chunk_fill(want, i);
    sha256(want, CHUNK_LEN, h);
    struct index_slot *s = chunk_index_find(ix, h);
    if (!s || s->pack == PACK_PENDING || s->raw_len != CHUNK_LEN || s->indexed) {
      bad++;
      continue;
    }
    pack_key(ix->packs.v[s->pack], key);
    if (store_get_range(&ts->base, key, s->offset, s->stored_len, got) == -1 ||
        memcmp(got, want, CHUNK_LEN) != 0)
      bad++;
  }
  check_int(bad, ==, 0);
  free(want);
  free(got);
}

int main(void)
{
  char dir[] = "/tmp/pl-unit-packw.XXXXXX", err[256] = "";
  check(mkdtemp(dir) != NULL);
  struct test_store ts = {.base = {.ops = &test_ops, .location = dir}};
  ts.inner = store_open(dir, 0, NULL);
  check(ts.inner != NULL);

  /* Concurrent adds: two packs, every chunk where the index says. */
  struct chunk_index *ix = chunk_index_new();
  struct pack_writer *pw = pack_writer_new(&ts.base, ix, NULL, 2);
  check(pw != NULL);
  check_int(produce_all(pw, ix, err, sizeof err), ==, 0);
  check_int(pack_writer_finish(pw), ==, 0);
  check_int(pack_writer_failed(pw), ==, 0);
  pack_writer_free(pw);
  check_int(ts.puts, ==, 2);
  check_int(ix->packs.len, ==, 2);
  int npacks = 0;
  check_int(store_list(&ts.base, "packs/", count_keys, &npacks), ==, 0);
  check_int(npacks, ==, 2);
  check_stored(&ts, ix);
  chunk_index_free(ix);

  /* A failing upload: producers and finish report its message. */
  ix = chunk_index_new();
  ts.fail_puts = 1;
  pw = pack_writer_new(&ts.base, ix, NULL, 3);
  check(pw != NULL);
  /* The first round seals one pack, whose upload fails; once the writer
   * has noticed, the next sealed pack's add reports the failure. */
  check_int(produce_all(pw, ix, err, sizeof err), ==, 0);
  for (int i = 0; i < 1000 && !pack_writer_failed(pw); i++)
    usleep(10000);
  check_int(produce_all(pw, ix, err, sizeof err), >=, 1);
  check(strstr(err, "injected") != NULL);
  check(pack_writer_failed(pw) != 0);
  set_error(0, "something else");
  check_int(pack_writer_finish(pw), ==, -1);
  check(strstr(get_error(), "put packs/") != NULL);
  check_int(get_errno(), ==, EIO);
  pack_writer_free(pw);
  chunk_index_free(ix);

  /* Free without finish: the open pack is dropped, nothing is stored. */
  ix = chunk_index_new();
  ts.fail_puts = 0;
  ts.puts = 0;
  pw = pack_writer_new(&ts.base, ix, NULL, 1);
  uint8_t h[HASH_LEN] = {1};
  check_int(pack_writer_add(pw, h, CHUNK_DATA, COMP_NONE, "abc", 3, 3), ==, 0);
  pack_writer_free(pw);
  check_int(ts.puts, ==, 0);
  chunk_index_free(ix);
  pack_writer_free(NULL);

  store_free(ts.inner);
  char cmd[100];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  check_int(system(cmd), ==, 0);
  return check_summary();
}
