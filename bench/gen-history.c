/* gen-history: write a long history of one small disk into a repository,
 * fast, for bench/history.sh (issue: 10,000 snapshots). It writes exactly
 * what `pilotlight backup --changed` would, because it is that code: one
 * process opens the repository once and calls repo_backup for each
 * snapshot, passing the previous snapshot as the parent instead of listing
 * every snapshot again (the cost the benchmark measures). Each step
 * rewrites one block of the disk with new random bytes and backs up that
 * block as the changed extent: a pack, an index object and a snapshot
 * object per step, as a real incremental backup stores.
 *
 * usage: gen-history REPO DISK COUNT [--size BYTES] [--block-size BYTES] [--seed N]
 * The repository is opened with the settings the command line uses
 * (PILOTLIGHT_*, AWS_*); create it first with pilotlight init. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "env/password.h"
#include "env/settings.h"
#include "core/repo.h"
#include "source/extent-list.h"
#include "source/source.h"
#include "util/error.h"

static uint64_t rng_state;

static uint64_t next_random(void)
{
  /* splitmix64: deterministic for a seed, good enough for test data. */
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static void fill_random(uint8_t *buf, size_t len)
{
  for (size_t i = 0; i < len; i += 8) {
    uint64_t v = next_random();
    memcpy(buf + i, &v, len - i < 8 ? len - i : 8);
  }
}

static void warn_cb(void *opaque, const char *msg)
{
  (void)opaque;
  fprintf(stderr, "gen-history: warning: %s\n", msg);
}

static int die(const char *what)
{
  fprintf(stderr, "gen-history: %s: %s\n", what, get_error());
  return 1;
}

int main(int argc, char **argv)
{
  uint64_t size = 1u << 20, bs = 64u << 10, seed = 1;
  if (argc < 4) {
    fprintf(stderr, "usage: gen-history REPO DISK COUNT [--size BYTES] [--block-size BYTES] "
                    "[--seed N]\n");
    return 2;
  }
  const char *location = argv[1], *disk = argv[2];
  long count = strtol(argv[3], NULL, 10);
  for (int i = 4; i + 1 < argc; i += 2) {
    uint64_t v = strtoull(argv[i + 1], NULL, 10);
    if (strcmp(argv[i], "--size") == 0)
      size = v;
    else if (strcmp(argv[i], "--block-size") == 0)
      bs = v;
    else if (strcmp(argv[i], "--seed") == 0)
      seed = v;
    else {
      fprintf(stderr, "gen-history: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (count < 1 || size < bs || bs < 4096 || (bs & (bs - 1))) {
    fprintf(stderr, "gen-history: COUNT must be positive and BYTES a power of two <= --size\n");
    return 2;
  }
  rng_state = seed;

  char img[] = "/tmp/gen-history-XXXXXX";
  int fd = mkstemp(img);
  uint8_t *block = malloc(bs);
  if (fd == -1 || !block) {
    perror("gen-history: scratch image");
    return 1;
  }
  for (uint64_t off = 0; off < size; off += bs) {
    fill_random(block, bs);
    if (pwrite(fd, block, bs, (off_t)off) != (ssize_t)bs) {
      perror("gen-history: scratch image");
      return 1;
    }
  }

  struct cli_settings cs;
  if (cli_settings_load(&cs, location) == -1)
    return die(location);
  cs.repo.warn = warn_cb;
  cs.repo.lock = REPO_LOCK_SHARED;
  cs.repo.lock_command = "gen-history";
  /* The password from where the command line would take it (environment
   * or terminal): an encrypted repository is init's default. */
  struct cli_password pw = {0};
  cs.repo.password = cli_password_cb;
  cs.repo.password_opaque = &pw;
  struct repo *r = repo_open(location, &cs.repo);
  if (!r)
    return die(location);
  struct snapshot *parent = repo_find_snapshot(r, disk, "latest");
  if (!parent && get_errno() != ENOENT)
    return die(disk);

  for (long i = 0; i < count; i++) {
    struct extent_list changed = {0};
    uint64_t at = (next_random() % (size / bs)) * bs;
    fill_random(block, bs);
    if (pwrite(fd, block, bs, (off_t)at) != (ssize_t)bs) {
      perror("gen-history: scratch image");
      return 1;
    }
    struct source *src = source_open(img);
    if (!src || extent_list_add(&changed, at, bs) == -1)
      return die(img);
    struct backup_opts o = {.disk = disk,
                            .src = src,
                            .changed = &changed,
                            .block_size = (uint32_t)bs,
                            .parent = parent};
    struct snapshot *snap = NULL;
    if (repo_backup(r, &o, &snap) == -1)
      return die("backup");
    source_close(src);
    extent_list_free(&changed);
    snapshot_free(parent);
    parent = snap;
    if ((i + 1) % 1000 == 0 || i + 1 == count)
      fprintf(stderr, "gen-history: %ld of %ld snapshots\n", i + 1, count);
  }
  printf("%s\n", parent->id);
  snapshot_free(parent);
  repo_free(r);
  cli_settings_free(&cs);
  free(block);
  close(fd);
  unlink(img);
  return 0;
}
