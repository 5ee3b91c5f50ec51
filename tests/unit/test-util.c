/* Unit tests for the shared primitives in src/util/: the error slot, the
 * worker pool, whole reads, atomic file replacement, the string buffer and
 * the zero hash. */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "util/error-slot.h"
#include "util/error.h"
#include "util/fileio.h"
#include "util/hash.h"
#include "util/strbuf.h"
#include "util/workers.h"

static void test_error_slot(void)
{
  struct error_slot slot;
  error_slot_init(&slot);
  set_error(0, "untouched");
  check_int(error_slot_failed(&slot), ==, 0);
  check_int(error_slot_restore(&slot), ==, 0);
  check_str(get_error(), "untouched");

  /* The first failure wins, with its errno, and its strerror text is not
   * appended a second time on restore. */
  set_error(ENOENT, "first %d", 1);
  error_slot_set_from_current(&slot);
  set_error(EIO, "second");
  error_slot_set_from_current(&slot);
  check_int(error_slot_failed(&slot), ==, 1);
  set_error(0, "overwritten by a clean-up step");
  check_int(error_slot_restore(&slot), ==, -1);
  check_int(get_errno(), ==, ENOENT);
  char want[256];
  snprintf(want, sizeof want, "first 1: %s", strerror(ENOENT));
  check_str(get_error(), want);
  error_slot_destroy(&slot);

  struct error_slot s2 = ERROR_SLOT_INIT;
  check_int(error_slot_failed(&s2), ==, 0);
  error_slot_destroy(&s2);
}

struct job {
  struct error_slot slot;
  atomic_int ran, next, done;
  int fail_at; /* the work item that fails, or -1 */
};

static int job_worker(void *opaque, int index)
{
  struct job *j = opaque;
  atomic_fetch_add(&j->ran, 1);
  for (;;) {
    if (error_slot_failed(&j->slot))
      return 0;
    int item = atomic_fetch_add(&j->next, 1);
    if (item >= 1000)
      return 0;
    if (item == j->fail_at) {
      set_error(EIO, "item %d failed on worker %d", item, index);
      return -1;
    }
    atomic_fetch_add(&j->done, 1);
  }
}

static void test_workers(void)
{
  struct job j = {.fail_at = -1};
  error_slot_init(&j.slot);
  check_int(workers_run(4, job_worker, &j, &j.slot), ==, 0);
  check_int(j.ran, ==, 4);
  check_int(j.done, ==, 1000);
  error_slot_destroy(&j.slot);

  struct job k = {.fail_at = 10};
  error_slot_init(&k.slot);
  set_error(0, "before");
  check_int(workers_run(3, job_worker, &k, &k.slot), ==, -1);
  check_int(get_errno(), ==, EIO);
  check(strncmp(get_error(), "item 10 failed on worker ", 25) == 0);
  check_int(k.done, <, 1000);
  error_slot_destroy(&k.slot);

  struct job one = {.fail_at = -1};
  error_slot_init(&one.slot);
  check_int(workers_run(1, job_worker, &one, &one.slot), ==, 0);
  check_int(one.done, ==, 1000);
  error_slot_destroy(&one.slot);
}

static void test_fileio(const char *dir)
{
  char path[512];
  int dfd = open(dir, O_RDONLY | O_DIRECTORY);
  check(dfd != -1);

  check_int(write_file_atomic(dfd, dir, "f", "hello world", 11, 0600, 0), ==, 0);
  snprintf(path, sizeof path, "%s/f", dir);
  struct stat st;
  check_int(stat(path, &st), ==, 0);
  check_int(st.st_size, ==, 11);
  check_int(st.st_mode & 0777, ==, 0600);
  /* Replacing keeps one whole file; EXCL refuses an existing name. */
  check_int(write_file_atomic(dfd, dir, "f", "bye", 3, 0644, 0), ==, 0);
  check_int(write_file_atomic(dfd, dir, "f", "no", 2, 0644, WRITE_ATOMIC_EXCL), ==, -1);
  check_int(get_errno(), ==, EEXIST);
  check(strstr(get_error(), "/f: already exists") != NULL);
  check_int(write_file_atomic(dfd, NULL, "nodir/f", "x", 1, 0644, 0), ==, -1);
  check_int(get_errno(), ==, ENOENT);
  check(strstr(get_error(), "nodir/f.tmp.") != NULL);
  check_int(mkdirat(dfd, "sub", 0755), ==, 0);
  check_int(write_file_atomic(dfd, NULL, "sub/g", "", 0, 0644, WRITE_ATOMIC_EXCL), ==, 0);
  snprintf(path, sizeof path, "%s/sub/g", dir);
  check_int(write_file_atomic(AT_FDCWD, NULL, path, "abc", 3, 0644, 0), ==, 0);

  /* Only the final names remain: no temporaries. */
  char cmd[600];
  snprintf(cmd, sizeof cmd, "test \"$(find %s -name '*.tmp.*' | wc -l)\" = 0", dir);
  check_int(system(cmd), ==, 0);

  int fd = open(path, O_RDONLY);
  char buf[16];
  size_t n = 99;
  check(fd != -1);
  check_int(pread_all(fd, buf, 3, 0, "g"), ==, 0);
  check(memcmp(buf, "abc", 3) == 0);
  check_int(pread_all(fd, buf, 2, 1, "g"), ==, 0);
  check(memcmp(buf, "bc", 2) == 0);
  check_int(pread_all(fd, buf, 0, 3, "g"), ==, 0);
  check_int(pread_all(fd, buf, 3, 1, "g"), ==, -1);
  check_int(get_errno(), ==, EIO);
  check(strstr(get_error(), "g: truncated") != NULL);
  check_int(read_all(fd, buf, sizeof buf, &n, "g"), ==, 0);
  check_int(n, ==, 3);
  check_int(lseek(fd, 0, SEEK_SET), ==, 0);
  check_int(read_all(fd, buf, 2, &n, "g"), ==, 0);
  check_int(n, ==, 2);
  close(fd);
  check_int(pread_all(fd, buf, 1, 0, "closed"), ==, -1);
  check_int(get_errno(), ==, EBADF);
  check_int(read_all(fd, buf, 1, &n, "closed"), ==, -1);
  check(strncmp(get_error(), "closed: read", 12) == 0);

  /* A pipe delivers in pieces: read_all gathers them. */
  int p[2];
  check_int(pipe(p), ==, 0);
  check_int(write(p[1], "ab", 2), ==, 2);
  check_int(write(p[1], "cd", 2), ==, 2);
  close(p[1]);
  check_int(read_all(p[0], buf, sizeof buf, &n, "pipe"), ==, 0);
  check_int(n, ==, 4);
  check(memcmp(buf, "abcd", 4) == 0);
  close(p[0]);

  /* write_all: every byte reaches the reader; a closed reader is an error
   * naming the stream (EPIPE, with SIGPIPE ignored). */
  check_int(pipe(p), ==, 0);
  check_int(write_all(p[1], "wxyz", 4, "out"), ==, 0);
  close(p[1]);
  check_int(read_all(p[0], buf, sizeof buf, &n, "pipe"), ==, 0);
  check_int(n, ==, 4);
  check(memcmp(buf, "wxyz", 4) == 0);
  close(p[0]);
  check_int(pipe(p), ==, 0);
  close(p[0]);
  signal(SIGPIPE, SIG_IGN);
  check_int(write_all(p[1], "w", 1, "out"), ==, -1);
  check(strncmp(get_error(), "out: write", 10) == 0);
  close(p[1]);
  close(dfd);
}

static void test_strbuf(void)
{
  struct strbuf sb = STRBUF_INIT(16, "test text");
  size_t len = 99;
  char *s = strbuf_take(&sb, &len);
  check_str(s, "");
  check_int(len, ==, 0);
  free(s);

  check_int(strbuf_appends(&sb, "ab"), ==, 0);
  check_int(strbuf_append(&sb, "cdef", 2), ==, 0);
  check_int(strbuf_appendf(&sb, "-%d-%s", 42, "x"), ==, 0);
  check_str(sb.buf, "abcd-42-x");
  /* Exactly at the cap is fine; one byte more fails and sticks. */
  check_int(strbuf_appends(&sb, "1234567"), ==, 0);
  check_int(sb.len, ==, 16);
  check_int(strbuf_appends(&sb, "z"), ==, -1);
  check_int(get_errno(), ==, EFBIG);
  check(strstr(get_error(), "test text: longer than the limit of 16 bytes") != NULL);
  set_error(0, "something else");
  check_int(strbuf_appends(&sb, ""), ==, -1);
  check(strbuf_take(&sb, NULL) == NULL);
  check_int(get_errno(), ==, EFBIG);
  check(strstr(get_error(), "test text") != NULL);
  /* Reusable after a failed take. */
  check_int(strbuf_appendf(&sb, "%s", "ok"), ==, 0);
  s = strbuf_take(&sb, &len);
  check_str(s, "ok");
  check_int(len, ==, 2);
  free(s);
  check_int(strbuf_appendf(&sb, "%20s", "too long"), ==, -1);
  strbuf_free(&sb);
  strbuf_free(&sb);

  /* Growth across many appends. */
  struct strbuf big;
  strbuf_init(&big, 1 << 20, "big");
  for (int i = 0; i < 10000; i++)
    strbuf_appendf(&big, "%04d", i % 10000);
  s = strbuf_take(&big, &len);
  check(s != NULL);
  check_int(len, ==, 40000);
  check(s && strncmp(s + 39996, "9999", 4) == 0);
  free(s);
}

static void test_hash(void)
{
  uint8_t h[HASH_LEN] = {0};
  check_int(HASH_LEN, ==, 32);
  check_int(HASH_LEN, ==, HASH_LEN);
  check_int(hash_is_zero(h), ==, 1);
  check_int(hash_is_zero(zero_hash), ==, 1);
  h[31] = 1;
  check_int(hash_is_zero(h), ==, 0);
  sha256("", 0, h);
  char hex[2 * HASH_LEN + 1];
  hex_encode(h, HASH_LEN, hex);
  check_str(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

int main(void)
{
  char dir[] = "/tmp/pl-unit-util.XXXXXX";
  check(mkdtemp(dir) != NULL);
  test_error_slot();
  test_workers();
  test_fileio(dir);
  test_strbuf();
  test_hash();
  char cmd[100];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  check_int(system(cmd), ==, 0);
  return check_summary();
}
