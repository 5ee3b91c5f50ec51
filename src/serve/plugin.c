/* nbdkit-pilotlight-plugin: a pilotlight snapshot as an NBD export.
 *
 *   nbdkit pilotlight repository=REPO disk=NAME [snapshot=ID] [overlay=FILE]
 *          [cache=SIZE] [readahead=SIZE] [stats=FILE]
 *          [password-file=FILE] [password-command=CMD]
 *
 * pilotlight serve starts nbdkit with it (docs/SERVE.md). The repository's
 * credentials and password come from the environment, as for the command
 * line (README.md, Configuration), never from the command line. */
#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "env/password.h"
#include "env/settings.h"
#include "served.h"
#include "util/error.h"
#include "util/fileio.h"

static const char *repository, *disk, *snapshot, *overlay, *stats_file;
static struct cli_password password;
static int64_t cache_bytes, readahead_bytes;
static struct served *served;
static int64_t start_ns;

static void pl_load(void)
{
  start_ns = served_now_ns();
}

/* Report the library's last error to the client as errno and to the log. */
static void lib_error(void)
{
  nbdkit_error("%s", get_error());
  nbdkit_set_error(get_errno() ? get_errno() : EIO);
}

static int pl_config(const char *key, const char *value)
{
  if (strcmp(key, "repository") == 0)
    repository = value;
  else if (strcmp(key, "disk") == 0)
    disk = value;
  else if (strcmp(key, "snapshot") == 0)
    snapshot = value;
  else if (strcmp(key, "overlay") == 0)
    overlay = value;
  else if (strcmp(key, "stats") == 0)
    stats_file = value;
  else if (strcmp(key, "password-file") == 0)
    password.file = value;
  else if (strcmp(key, "password-command") == 0)
    password.command = value;
  else if (strcmp(key, "cache") == 0 || strcmp(key, "readahead") == 0) {
    int64_t v = nbdkit_parse_size(value);
    if (v == -1)
      return -1;
    *(strcmp(key, "cache") == 0 ? &cache_bytes : &readahead_bytes) = v;
  } else {
    nbdkit_error("unknown parameter %s (see nbdkit pilotlight --help)", key);
    return -1;
  }
  return 0;
}

static int pl_config_complete(void)
{
  if (!repository)
    repository = getenv("PILOTLIGHT_REPOSITORY");
  if (!repository || !disk) {
    nbdkit_error("repository=REPO and disk=NAME are required");
    return -1;
  }
  return 0;
}

/* After nbdkit has forked into the background (if it does), so that the
 * repository's threads (lock refresh, readahead) run in the server. */
static int pl_after_fork(void)
{
  struct cli_settings settings;
  if (cli_settings_load(&settings, repository) == -1) {
    lib_error();
    return -1;
  }
  char lock_command[300];
  snprintf(lock_command, sizeof lock_command, "serve %s", disk);
  settings.repo.lock = REPO_LOCK_SHARED_OPTIONAL;
  settings.repo.lock_command = lock_command;
  settings.repo.lock_wait_ms = 60 * 1000;
  settings.repo.password = cli_password_cb;
  settings.repo.password_opaque = &password;
  struct served_opts o = {
      .location = repository,
      .settings = &settings.repo,
      .disk = disk,
      .snapshot = snapshot,
      .overlay = overlay,
      .cache_bytes = (uint64_t)cache_bytes,
      .readahead = (uint64_t)readahead_bytes,
  };
  served = served_open(&o);
  cli_settings_free(&settings);
  if (!served) {
    lib_error();
    return -1;
  }
  const struct snapshot *sn = served_snapshot(served);
  fprintf(stderr, "pilotlight: %s@%.12s ready (%llu bytes, %s)\n", sn->disk, sn->id,
          (unsigned long long)sn->size, overlay ? "writable" : "read-only");
  nbdkit_debug("serving %s@%.8s (%llu bytes, %s), opened in %.3f s", sn->disk, sn->id,
               (unsigned long long)sn->size, overlay ? "writable" : "read-only",
               (double)(served_now_ns() - start_ns) / 1e9);
  return 0;
}

/* The figures drill reads, as one JSON object. */
static void write_stats(void)
{
  struct served_stats st;
  char buf[512];
  served_get_stats(served, &st);
  int n = snprintf(buf, sizeof buf,
                   "{\"reads\":%llu,\"chunks\":%llu,\"chunk_bytes\":%llu,\"failed\":%llu,"
                   "\"cache_hits\":%llu,\"overlay_bytes\":%llu,\"first_read_seconds\":%.6f}\n",
                   (unsigned long long)st.reads, (unsigned long long)st.chunks,
                   (unsigned long long)st.chunk_bytes, (unsigned long long)st.failed,
                   (unsigned long long)st.cache_hits, (unsigned long long)st.overlay_bytes,
                   st.first_read_ns ? (double)(st.first_read_ns - start_ns) / 1e9 : -1.0);
  if (write_file_atomic(AT_FDCWD, NULL, stats_file, buf, (size_t)n, 0644, 0) == -1)
    nbdkit_error("%s", get_error());
}

static void pl_unload(void)
{
  if (!served)
    return;
  if (stats_file)
    write_stats();
  served_free(served);
  served = NULL;
}

static void *pl_open(int readonly)
{
  (void)readonly;
  return served;
}

static int64_t pl_get_size(void *h)
{
  return (int64_t)served_size(h);
}

static int pl_can_write(void *h)
{
  return served_writable(h);
}

static int pl_can_flush(void *h)
{
  (void)h;
  return 1;
}

static int pl_can_fua(void *h)
{
  return served_writable(h) ? NBDKIT_FUA_NATIVE : NBDKIT_FUA_NONE;
}

/* Every connection sees one state and a flush makes all writes durable. */
static int pl_can_multi_conn(void *h)
{
  (void)h;
  return 1;
}

static int pl_can_extents(void *h)
{
  (void)h;
  return 1;
}

static int pl_pread(void *h, void *buf, uint32_t count, uint64_t offset, uint32_t flags)
{
  (void)flags;
  if (served_pread(h, buf, count, offset) == -1) {
    lib_error();
    return -1;
  }
  return 0;
}

static int pl_pwrite(void *h, const void *buf, uint32_t count, uint64_t offset, uint32_t flags)
{
  if (served_pwrite(h, buf, count, offset, (flags & NBDKIT_FLAG_FUA) != 0) == -1) {
    lib_error();
    return -1;
  }
  return 0;
}

static int pl_flush(void *h, uint32_t flags)
{
  (void)flags;
  if (served_flush(h) == -1) {
    lib_error();
    return -1;
  }
  return 0;
}

static int add_extent(void *opaque, uint64_t off, uint64_t len, int zero)
{
  return nbdkit_add_extent(opaque, off, len, zero ? NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO : 0);
}

static int pl_extents(void *h, uint32_t count, uint64_t offset, uint32_t flags,
                      struct nbdkit_extents *extents)
{
  (void)flags;
  int ret = served_extents(h, offset, count, add_extent, extents);
  if (ret == -1 && get_error()[0])
    lib_error();
  return ret ? -1 : 0;
}

#define pl_config_help                                                                             \
  "repository=REPO      the repository (default: $PILOTLIGHT_REPOSITORY)\n"                        \
  "disk=NAME            the disk (required)\n"                                                     \
  "snapshot=ID          a snapshot id or unique prefix (default: latest)\n"                        \
  "overlay=FILE         keep writes in FILE (default: read-only)\n"                                \
  "cache=SIZE           chunk cache (default: 256M)\n"                                             \
  "readahead=SIZE       read this far ahead of a sequential reader (default: 16M)\n"               \
  "stats=FILE           write read statistics to FILE at exit\n"                                   \
  "password-file=FILE   the repository password's file\n"                                          \
  "password-command=CMD a command that prints the repository password"

static struct nbdkit_plugin plugin = {
    .name = "pilotlight",
    .longname = "pilotlight snapshot export",
    .version = PL_VERSION,
    .description = "Serves a snapshot of a pilotlight repository.",
    .load = pl_load,
    .unload = pl_unload,
    .config = pl_config,
    .config_complete = pl_config_complete,
    .config_help = pl_config_help,
    .magic_config_key = "disk",
    .after_fork = pl_after_fork,
    .open = pl_open,
    .get_size = pl_get_size,
    .can_write = pl_can_write,
    .can_flush = pl_can_flush,
    .can_fua = pl_can_fua,
    .can_multi_conn = pl_can_multi_conn,
    .can_extents = pl_can_extents,
    .pread = pl_pread,
    .pwrite = pl_pwrite,
    .flush = pl_flush,
    .extents = pl_extents,
    .errno_is_preserved = 0,
};

/* Requests run in parallel: served.c locks what it shares. */
#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL
NBDKIT_REGISTER_PLUGIN(plugin)
