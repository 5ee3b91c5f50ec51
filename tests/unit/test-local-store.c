/* Unit tests for the local folder store. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "store/store.h"
#include "util/error.h"
#include "util/compiler.h"

static int count;
static int on_key(void *o PL_UNUSED, const char *key, uint64_t size PL_UNUSED, int64_t mtime)
{
  count++;
  check(strncmp(key, "packs/", 6) == 0);
  check(mtime > 1600000000); /* a real modification time */
  return 0;
}

int main(void)
{
  char dir[] = "/tmp/pl-unit-store.XXXXXX";
  check(mkdtemp(dir) != NULL);
  struct store *s = store_open(dir, 0, NULL);
  void *buf;
  size_t len;
  uint64_t size;
  char range[3];
  check(s != NULL);
  check_int(store_put(s, "packs/ab/abc", "hello", 5, 0), ==, 0);
  check_int(store_put(s, "packs/cd/cde", "x", 1, 0), ==, 0);
  check_int(store_put(s, "config", "c", 1, STORE_PUT_EXCL), ==, 0);
  check_int(store_put(s, "config", "d", 1, STORE_PUT_EXCL), ==, -1);
  check_int(get_errno(), ==, EEXIST);
  check_int(store_get(s, "packs/ab/abc", 100, &buf, &len), ==, 0);
  check_int(len, ==, 5);
  check(memcmp(buf, "hello", 5) == 0);
  free(buf);
  check_int(store_get(s, "packs/ab/abc", 4, &buf, &len), ==, -1);
  check_int(get_errno(), ==, EFBIG);
  check_int(store_get(s, "nope", 100, &buf, &len), ==, -1);
  check_int(get_errno(), ==, ENOENT);
  check_int(store_get_range(s, "packs/ab/abc", 1, 3, range), ==, 0);
  check(memcmp(range, "ell", 3) == 0);
  check_int(store_get_range(s, "packs/ab/abc", 3, 3, range), ==, -1);
  check(strstr(get_error(), "truncated") != NULL);
  check_int(store_head(s, "packs/cd/cde", &size), ==, 0);
  check_int(size, ==, 1);
  check_int(store_list(s, "packs/", on_key, NULL), ==, 0);
  check_int(count, ==, 2);
  check_int(store_del(s, "packs/cd/cde"), ==, 0);
  check_int(store_del(s, "packs/cd/cde"), ==, 0);
  count = 0;
  check_int(store_list(s, "packs/", on_key, NULL), ==, 0);
  check_int(count, ==, 1);
  store_free(s);
  store_free(NULL);
  char cmd[100];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  check_int(system(cmd), ==, 0);
  return check_summary();
}
