/* Helpers shared by the commands: errors, option values and output. */
#include <ctype.h>
#include <signal.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "env/settings.h"
#include "util/error.h"

int fail_lib(void)
{
  fprintf(stderr, "pilotlight: %s\n", get_error());
  return EXIT_FAIL;
}

_Atomic int cli_cancel;

static void on_cancel_signal(int sig)
{
  cli_cancel = sig;
}

void cli_catch_signals(void)
{
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_cancel_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
}

int fail_interrupted(const char *what, const char *how)
{
  int sig = cli_cancel;
  if (sig == 0)
    return fail_lib();
  fprintf(stderr, "pilotlight: %s interrupted by %s: %s\n", what,
          sig == SIGINT    ? "SIGINT"
          : sig == SIGTERM ? "SIGTERM"
                           : "a signal",
          how);
  return 128 + sig;
}

int fail_msg(const char *fmt, ...)
{
  va_list ap;
  fputs("pilotlight: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  return EXIT_FAIL;
}

int fail_usage(struct cli *c, const char *fmt, ...)
{
  va_list ap;
  fputs("pilotlight: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fprintf(stderr, " (see pilotlight %s --help)\n", c->prog ? c->prog : "");
  return EXIT_USAGE;
}

const char *cli_repo(struct cli *c)
{
  if (!c->repo || !*c->repo) {
    const char *env = getenv("PILOTLIGHT_REPOSITORY");
    if (env && *env)
      c->repo = env;
  }
  if (!c->repo || !*c->repo) {
    fail_usage(c, "no repository: give -r REPO or set PILOTLIGHT_REPOSITORY");
    return NULL;
  }
  return c->repo;
}

struct repo *cli_open_repo(struct cli *c)
{
  const char *loc = cli_repo(c);
  struct cli_settings settings;
  struct repo *r = NULL;
  if (!loc)
    return NULL;
  if (cli_settings_load(&settings, loc) == 0) {
    settings.repo.lock = c->lock;
    settings.repo.store_reads = c->store_reads;
    settings.repo.metadata_only = c->metadata_only;
    if (c->limit_upload_set)
      settings.repo.limit_upload = c->limit_upload;
    if (c->limit_download_set)
      settings.repo.limit_download = c->limit_download;
    settings.repo.cancel = &cli_cancel;
    settings.repo.lock_command = c->lock_command[0] ? c->lock_command : c->prog;
    settings.repo.lock_wait_ms = c->lock_wait_ms >= 0 ? c->lock_wait_ms : DEFAULT_LOCK_WAIT_MS;
    cli_password_settings(c, &settings.repo);
    c->kdf_n = settings.repo.kdf_n;
    r = repo_open(loc, &settings.repo);
  }
  cli_settings_free(&settings);
  if (!r)
    fail_lib();
  return r;
}

int parse_limit(struct cli *c, int upload, const char *arg)
{
  if (ratelimit_spec_parse(arg, upload ? &c->limit_upload : &c->limit_download) == -1) {
    fail_usage(c, "--limit-%s: %s", upload ? "upload" : "download", get_error());
    return -1;
  }
  *(upload ? &c->limit_upload_set : &c->limit_download_set) = 1;
  return 0;
}

void cli_password_settings(struct cli *c, struct repo_settings *st)
{
  st->password = cli_password_cb;
  st->password_opaque = &c->password;
}

int parse_threads(struct cli *c, const char *arg, int *out)
{
  uint64_t v;
  if (parse_size(arg, &v) == -1 || v == 0 || v > 256) {
    fail_usage(c, "--threads: '%s' is not a number from 1 to 256", arg);
    return -1;
  }
  *out = (int)v;
  return 0;
}

int cli_open_snapshot(struct cli *c, const char *spec, int threads, struct repo **r,
                      struct snapshot **s)
{
  const char *at = strchr(spec, '@');
  const char *snap = at && at[1] ? at + 1 : "latest";
  char *disk = strndup(spec, at ? (size_t)(at - spec) : strlen(spec));
  *s = NULL;
  *r = NULL;
  if (!disk)
    return fail_msg("out of memory"), -1;
  /* Readers hold a shared lock so that no prune deletes what they read; with
   * read-only credentials they cannot, and go on without. */
  c->lock = REPO_LOCK_SHARED_OPTIONAL;
  snprintf(c->lock_command, sizeof c->lock_command, "%s %s", c->prog, spec);
  *r = cli_open_repo(c);
  if (*r) {
    if (threads)
      repo_set_threads(*r, threads);
    *s = repo_find_snapshot(*r, disk, snap);
    if (!*s) {
      fail_lib();
      repo_free(*r);
      *r = NULL;
    }
  }
  free(disk);
  return *s ? 0 : -1;
}

void json_string(FILE *f, const char *s)
{
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
    if (*p == '"' || *p == '\\')
      fprintf(f, "\\%c", *p);
    else if (*p < 0x20)
      fprintf(f, "\\u%04x", *p);
    else
      fputc(*p, f);
  }
  fputc('"', f);
}

void format_time(int64_t t, char *buf, size_t n)
{
  time_t tt = (time_t)t;
  struct tm tm;
  gmtime_r(&tt, &tm);
  strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void format_bytes(uint64_t v, char *buf, size_t n)
{
  static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double d = (double)v;
  int u = 0;
  while (d >= 1024 && u < 5) {
    d /= 1024;
    u++;
  }
  if (u == 0)
    snprintf(buf, n, "%llu B", (unsigned long long)v);
  else
    snprintf(buf, n, "%.1f %s", d, units[u]);
}
