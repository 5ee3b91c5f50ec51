/* The config file: libinih reads the INI syntax, a table per section says
 * which keys exist and what each value must be, and the checks after the
 * parse catch what no single line shows (a replica of an undeclared disk).
 * libinih's handler is not told the line, so the reader counts lines. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "metrics-http.h"
#include "util/error.h"
#include "util/parse.h"
#include "util/ratelimit.h"

enum value_type {
  V_LISTEN,
  V_RATE,
  V_STRING,
  V_SCHEDULE,
  V_DURATION,
  V_UINT,
  V_BOOL,
  V_PERCENT,
  V_FRACTION
};

struct key_def {
  const char *name;
  enum value_type type;
  size_t offset; /* in the section's struct */
};

#define CK(name, type, field)                                                                      \
  {                                                                                                \
    name, type, offsetof(struct ops_config, field)                                                 \
  }
#define DK(name, type, field)                                                                      \
  {                                                                                                \
    name, type, offsetof(struct ops_disk, field)                                                   \
  }
#define RK(name, type, field)                                                                      \
  {                                                                                                \
    name, type, offsetof(struct ops_replica, field)                                                \
  }

static const struct key_def repository_keys[] = {
    CK("location", V_STRING, location),
    CK("password-file", V_STRING, password_file),
    CK("password-command", V_STRING, password_command),
    CK("aws-profile", V_STRING, aws_profile),
    CK("aws-shared-credentials-file", V_STRING, aws_credentials_file),
    CK("aws-config-file", V_STRING, aws_config_file),
    CK("cache-dir", V_STRING, cache_dir),
    CK("limit-upload", V_RATE, limit_upload),
    CK("limit-download", V_RATE, limit_download),
    {NULL, 0, 0},
};
static const struct key_def daemon_keys[] = {
    CK("host", V_STRING, host),
    CK("state-dir", V_STRING, state_dir),
    CK("log-json", V_BOOL, log_json),
    CK("max-jobs", V_UINT, max_jobs),
    CK("retry-initial", V_DURATION, retry_initial),
    CK("stop-timeout", V_DURATION, stop_timeout),
    {NULL, 0, 0},
};
static const struct key_def metrics_keys[] = {
    CK("textfile", V_STRING, metrics_textfile),
    CK("listen", V_LISTEN, metrics_listen),
    {NULL, 0, 0},
};
static const struct key_def alerts_keys[] = {
    CK("command", V_STRING, alert_command),
    CK("webhook", V_STRING, alert_webhook),
    CK("timeout", V_DURATION, alert_timeout),
    {NULL, 0, 0},
};
static const struct key_def verify_keys[] = {
    CK("schedule", V_SCHEDULE, verify_every),
    CK("read-data", V_FRACTION, verify_read_data),
    {NULL, 0, 0},
};
static const struct key_def prune_keys[] = {
    CK("schedule", V_SCHEDULE, prune_every),
    CK("max-unused", V_PERCENT, prune_max_unused),
    CK("grace", V_DURATION, prune_grace),
    {NULL, 0, 0},
};
static const struct key_def disk_keys[] = {
    DK("source", V_STRING, source),
    DK("cbt", V_STRING, cbt),
    DK("cbt-next", V_STRING, cbt_next),
    DK("qcow2", V_STRING, qcow2),
    DK("qmp", V_STRING, qmp),
    DK("node", V_STRING, node),
    DK("changed-extents", V_STRING, changed_extents),
    DK("block-size", V_STRING, block_size),
    DK("schedule", V_SCHEDULE, every),
    DK("rpo", V_DURATION, rpo),
    DK("threads", V_UINT, threads),
    DK("keep-last", V_UINT, keep_last),
    DK("keep-hourly", V_UINT, keep_hourly),
    DK("keep-daily", V_UINT, keep_daily),
    DK("keep-weekly", V_UINT, keep_weekly),
    DK("keep-monthly", V_UINT, keep_monthly),
    DK("keep-yearly", V_UINT, keep_yearly),
    DK("keep-within", V_STRING, keep_within),
    DK("drill", V_SCHEDULE, drill_every),
    DK("drill-expect", V_STRING, drill_expect),
    DK("drill-port", V_UINT, drill_port),
    DK("drill-timeout", V_DURATION, drill_timeout),
    DK("drill-device", V_STRING, drill_device),
    DK("drill-nic", V_STRING, drill_nic),
    DK("drill-memory", V_UINT, drill_memory),
    {NULL, 0, 0},
};
static const struct key_def replica_keys[] = {
    RK("disk", V_STRING, disk),           RK("target", V_STRING, target),
    RK("state-dir", V_STRING, state_dir), RK("schedule", V_SCHEDULE, every),
    RK("rpo", V_DURATION, rpo),           RK("threads", V_UINT, threads),
    RK("verify", V_BOOL, verify),         {NULL, 0, 0},
};

/* Keys seen so far, as "section\nkey", to refuse one set twice. */
struct seen {
  char *name;
  int line;
};

struct parse {
  struct ops_config *c;
  FILE *f;
  int line;
  int failed;
  char err[512];
  char section[128]; /* the current section, to know when a new one starts */
  VEC(struct seen) seen;
};

static void parse_fail(struct parse *p, const char *section, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void parse_fail(struct parse *p, const char *section, const char *key, const char *fmt, ...)
{
  if (p->failed)
    return;
  p->failed = 1;
  int n = snprintf(p->err, sizeof p->err, "%s:%d: [%s] %s: ", p->c->path, p->line, section, key);
  if (n < 0 || (size_t)n >= sizeof p->err)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(p->err + n, sizeof p->err - (size_t)n, fmt, ap);
  va_end(ap);
}

static void open_section(struct parse *p, const char *section);

/* fgets, counting lines; a line longer than libinih's buffer is an error
 * rather than two lines. */
static char *reader(char *str, int num, void *stream)
{
  struct parse *p = stream;
  if (p->failed || !fgets(str, num, p->f))
    return NULL;
  p->line++;
  size_t len = strlen(str);
  if (len + 1 == (size_t)num && str[len - 1] != '\n' && !feof(p->f)) {
    p->failed = 1;
    snprintf(p->err, sizeof p->err, "%s:%d: line longer than %d bytes: shorten it", p->c->path,
             p->line, num - 3);
    return NULL;
  }
  /* libinih calls the handler only for keys: see each header here. */
  const char *t = str + strspn(str, " \t");
  const char *end = *t == '[' ? strchr(t, ']') : NULL;
  if (end) {
    char section[128];
    snprintf(section, sizeof section, "%.*s", (int)(end - t - 1), t + 1);
    open_section(p, section);
    if (p->failed)
      return NULL;
  }
  return str;
}

static int name_ok(const char *s)
{
  if (!*s || strlen(s) > 64)
    return 0;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s) && *s != '.' && *s != '_' && *s != '-')
      return 0;
  return 1;
}

/* parse_duration with "m" for minutes too: nothing in this file is months
 * apart (keep-within, which forget reads, is passed on as written). */
static int config_duration(const char *s, int64_t *seconds)
{
  char buf[128];
  size_t o = 0;
  for (; *s && o + 4 < sizeof buf; s++) {
    buf[o++] = *s;
    if (*s == 'm' && s[1] != 'i')
      o += (size_t)snprintf(buf + o, sizeof buf - o, "in");
  }
  if (*s)
    return -1;
  buf[o] = 0;
  return parse_duration(buf, seconds);
}

int ops_parse_schedule(const char *s, int64_t *seconds)
{
  if (strncmp(s, "every ", 6) != 0)
    return -1;
  s += 6;
  while (*s == ' ')
    s++;
  return config_duration(s, seconds) == -1 || *seconds <= 0 ? -1 : 0;
}

/* Store value at field per type. */
static void set_value(struct parse *p, const char *section, const struct key_def *k, void *base,
                      const char *value)
{
  char *field = (char *)base + k->offset;
  uint64_t u;
  int64_t d;
  unsigned pct;
  struct ratelimit_spec spec;
  struct sockaddr_storage ss;
  unsigned sslen;
  switch (k->type) {
  case V_LISTEN:
    if (metrics_http_parse(value, &ss, &sslen) == -1) {
      parse_fail(p, section, k->name, "%s", get_error());
      return;
    }
    *(char **)field = strdup(value);
    if (!*(char **)field)
      parse_fail(p, section, k->name, "out of memory");
    return;
  case V_RATE:
    /* Checked here, kept as written for the jobs' environment. */
    if (ratelimit_spec_parse(value, &spec) == -1) {
      parse_fail(p, section, k->name, "%s", get_error());
      return;
    }
    /* fall through */
  case V_STRING:
    if (!*value) {
      parse_fail(p, section, k->name, "empty value: give one, or remove the line");
      return;
    }
    *(char **)field = strdup(value);
    if (!*(char **)field)
      parse_fail(p, section, k->name, "out of memory");
    return;
  case V_SCHEDULE:
    if (ops_parse_schedule(value, &d) == -1) {
      parse_fail(p, section, k->name,
                 "'%s' is not a schedule: write \"every\" and a duration, e.g. every 15m, "
                 "every 1h, every 1d",
                 value);
      return;
    }
    *(int64_t *)field = d;
    return;
  case V_DURATION:
    if (config_duration(value, &d) == -1) {
      parse_fail(p, section, k->name,
                 "'%s' is not a duration: give seconds or units, e.g. 90s, 30m, 1h, 7d", value);
      return;
    }
    *(int64_t *)field = d;
    return;
  case V_UINT:
    if (parse_size(value, &u) == -1 || u > 1000000 || strpbrk(value, "kKmMgGtT")) {
      parse_fail(p, section, k->name, "'%s' is not a whole number from 0 to 1000000", value);
      return;
    }
    *(unsigned *)field = (unsigned)u;
    return;
  case V_BOOL:
    if (strcmp(value, "yes") == 0 || strcmp(value, "true") == 0 || strcmp(value, "1") == 0)
      *(int *)field = 1;
    else if (strcmp(value, "no") == 0 || strcmp(value, "false") == 0 || strcmp(value, "0") == 0)
      *(int *)field = 0;
    else
      parse_fail(p, section, k->name, "'%s' is not yes or no", value);
    return;
  case V_PERCENT:
    if (parse_percent(value, &pct) == -1) {
      parse_fail(p, section, k->name, "'%s' is not a percentage from 0 to 100", value);
      return;
    }
    *(char **)field = strdup(value);
    if (!*(char **)field)
      parse_fail(p, section, k->name, "out of memory");
    return;
  case V_FRACTION:
    /* "no", "all" or "1/N": read one N-th of the packs per run. */
    if (strcmp(value, "no") == 0) {
      *(unsigned *)field = 0;
    } else if (strcmp(value, "all") == 0 || strcmp(value, "yes") == 0) {
      *(unsigned *)field = 1;
    } else if (strncmp(value, "1/", 2) == 0 && parse_size(value + 2, &u) == 0 && u >= 1 &&
               u <= 256 && !strpbrk(value + 2, "kKmMgGtT")) {
      *(unsigned *)field = (unsigned)u;
    } else {
      parse_fail(p, section, k->name,
                 "'%s' is not no, all or 1/N (N from 1 to 256): e.g. read-data = 1/7 reads "
                 "every pack once a week at one run a day",
                 value);
    }
    return;
  }
}

static const struct {
  const char *name;
  const struct key_def *keys;
} fixed_sections[] = {{"repository", repository_keys}, {"daemon", daemon_keys},
                      {"metrics", metrics_keys},       {"alerts", alerts_keys},
                      {"verify", verify_keys},         {"prune", prune_keys}};

/* A section header: a disk or a replica starts here. */
static void open_section(struct parse *p, const char *section)
{
  struct ops_config *c = p->c;
  snprintf(p->section, sizeof p->section, "%s", section);
  for (size_t i = 0; i < sizeof fixed_sections / sizeof *fixed_sections; i++)
    if (strcmp(section, fixed_sections[i].name) == 0)
      return;
  int is_disk = strncmp(section, "disk ", 5) == 0;
  if (!is_disk && strncmp(section, "replica ", 8) != 0) {
    parse_fail(p, section, "(section)",
               "unknown section: use [repository], [daemon], [metrics], [alerts], [verify], "
               "[prune], [disk NAME] or [replica NAME]");
    return;
  }
  const char *name = section + (is_disk ? 5 : 8);
  if (!name_ok(name)) {
    parse_fail(p, section, "(section)",
               "'%s' is not a name: use letters, digits, '.', '_' and '-' (at most 64)", name);
    return;
  }
  if (is_disk) {
    for (size_t i = 0; i < c->disks.len; i++)
      if (strcmp(c->disks.v[i].name, name) == 0) {
        parse_fail(p, section, "(section)", "disk %s is declared twice, first on line %d", name,
                   c->disks.v[i].line);
        return;
      }
    struct ops_disk d = {.name = strdup(name), .line = p->line};
    if (!d.name || vec_push(&c->disks, d) == -1) {
      free(d.name);
      parse_fail(p, section, "(section)", "out of memory");
    }
    return;
  }
  for (size_t i = 0; i < c->replicas.len; i++)
    if (strcmp(c->replicas.v[i].name, name) == 0) {
      parse_fail(p, section, "(section)", "replica %s is declared twice, first on line %d", name,
                 c->replicas.v[i].line);
      return;
    }
  struct ops_replica rp = {.name = strdup(name), .line = p->line};
  if (!rp.name || vec_push(&c->replicas, rp) == -1) {
    free(rp.name);
    parse_fail(p, section, "(section)", "out of memory");
  }
}

/* The table and struct for the current section (open_section saw its
 * header). */
static const struct key_def *section_for(struct parse *p, const char *section, void **base)
{
  struct ops_config *c = p->c;
  for (size_t i = 0; i < sizeof fixed_sections / sizeof *fixed_sections; i++)
    if (strcmp(section, fixed_sections[i].name) == 0) {
      *base = c;
      return fixed_sections[i].keys;
    }
  if (strncmp(section, "disk ", 5) == 0 && c->disks.len) {
    *base = &c->disks.v[c->disks.len - 1];
    return disk_keys;
  }
  if (strncmp(section, "replica ", 8) == 0 && c->replicas.len) {
    *base = &c->replicas.v[c->replicas.len - 1];
    return replica_keys;
  }
  return NULL;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
  struct parse *p = user;
  void *base = NULL;
  if (p->failed)
    return 0;
  if (!*section) {
    parse_fail(p, "", name, "a key before any section: start with a section such as [repository]");
    return 0;
  }
  const struct key_def *keys = section_for(p, section, &base);
  if (!keys) {
    parse_fail(p, section, name, "no section header for this key");
    return 0;
  }
  const struct key_def *k = keys;
  while (k->name && strcmp(k->name, name) != 0)
    k++;
  if (!k->name) {
    char known[512];
    size_t o = 0;
    for (const struct key_def *j = keys; j->name && o < sizeof known; j++)
      o += (size_t)snprintf(known + o, sizeof known - o, "%s%s", o ? ", " : "", j->name);
    parse_fail(p, section, name, "unknown key: this section takes %s", known);
    return 0;
  }
  char *id = NULL;
  if (asprintf(&id, "%s\n%s", section, name) == -1) {
    parse_fail(p, section, name, "out of memory");
    return 0;
  }
  for (size_t i = 0; i < p->seen.len; i++)
    if (strcmp(p->seen.v[i].name, id) == 0) {
      parse_fail(p, section, name, "set twice, first on line %d: keep one", p->seen.v[i].line);
      free(id);
      return 0;
    }
  struct seen s = {id, p->line};
  if (vec_push(&p->seen, s) == -1) {
    free(id);
    parse_fail(p, section, name, "out of memory");
    return 0;
  }
  set_value(p, section, k, base, value);
  return !p->failed;
}

/* What no single line shows. */
static int check(struct parse *p)
{
  struct ops_config *c = p->c;
  if (!c->location) {
    p->line = 0;
    parse_fail(p, "repository", "location",
               "missing: every config names its repository (a folder or an s3: URL)");
    return -1;
  }
  if (c->password_file && c->password_command) {
    parse_fail(p, "repository", "password-command",
               "give password-file or password-command, not both");
    return -1;
  }
  for (size_t i = 0; i < c->disks.len; i++) {
    struct ops_disk *d = &c->disks.v[i];
    char sec[80];
    snprintf(sec, sizeof sec, "disk %s", d->name);
    p->line = d->line;
    int inputs = !!d->source + !!d->qcow2 + !!d->qmp;
    if (inputs > 1)
      parse_fail(p, sec, "source", "give one of source, qcow2 and qmp");
    else if (d->every && !inputs)
      parse_fail(p, sec, "schedule",
                 "a schedule needs something to back up: add source (or qcow2, or qmp)");
    else if (inputs && !d->every)
      parse_fail(p, sec, "schedule", "missing: say how often to back up, e.g. every 15m");
    else if (!!d->qmp != !!d->node)
      parse_fail(p, sec, d->qmp ? "node" : "qmp", "qmp and node go together");
    else if (d->cbt && !d->source)
      parse_fail(p, sec, "cbt", "cbt needs a source: the NBD URI that offers the bitmap");
    else if (d->changed_extents && (d->cbt || d->qcow2 || d->qmp))
      parse_fail(p, sec, "changed-extents", "give changed-extents or CBT, not both");
    else if (d->drill_every && !!d->drill_expect == !!d->drill_port)
      parse_fail(p, sec, "drill",
                 "say what proves the boot: drill-expect = MARKER (serial console) or "
                 "drill-port = N");
    else if (!d->drill_every && (d->drill_expect || d->drill_port || d->drill_timeout ||
                                 d->drill_device || d->drill_nic || d->drill_memory))
      parse_fail(p, sec, "drill", "missing: say how often to drill, e.g. drill = every 7d");
    else if (d->drill_port > 65535)
      parse_fail(p, sec, "drill-port", "%u is not a TCP port", d->drill_port);
    else if (d->drill_nic && !d->drill_port)
      parse_fail(p, sec, "drill-nic", "only drill-port gives the drill VM a network");
    if (p->failed)
      return -1;
  }
  for (size_t i = 0; i < c->replicas.len; i++) {
    struct ops_replica *r = &c->replicas.v[i];
    char sec[80];
    snprintf(sec, sizeof sec, "replica %s", r->name);
    p->line = r->line;
    if (!r->disk) {
      r->disk = strdup(r->name);
      if (!r->disk) {
        parse_fail(p, sec, "disk", "out of memory");
        return -1;
      }
    }
    if (!name_ok(r->disk))
      parse_fail(p, sec, "disk", "'%s' is not a disk name", r->disk);
    else if (!r->target)
      parse_fail(p, sec, "target", "missing: the file or device the replica is kept in");
    else if (!r->every)
      parse_fail(p, sec, "schedule", "missing: say how often to sync, e.g. every 15m");
    for (size_t j = 0; j < i && !p->failed; j++)
      if (strcmp(c->replicas.v[j].target, r->target) == 0)
        parse_fail(p, sec, "target", "replica %s keeps the same target", c->replicas.v[j].name);
    if (p->failed)
      return -1;
  }
  if (c->verify_read_data && !c->verify_every) {
    parse_fail(p, "verify", "schedule", "missing: read-data needs a schedule");
    return -1;
  }
  return 0;
}

struct ops_config *ops_config_load(const char *path)
{
  struct ops_config *c = calloc(1, sizeof *c);
  struct parse p = {.c = c};
  if (!c || !(c->path = strdup(path))) {
    set_error(ENOMEM, "loading %s", path);
    ops_config_free(c);
    return NULL;
  }
  c->max_jobs = 2;
  c->retry_initial = 30;
  c->stop_timeout = 60;
  c->alert_timeout = 30;
  c->prune_grace = -1;
  p.f = fopen(path, "r");
  if (!p.f) {
    set_error_code(errno, "cannot read the config file %s: %s%s", path, strerror(errno),
                   errno == ENOENT ? " (give --config FILE, or see contrib/ for examples)" : "");
    ops_config_free(c);
    return NULL;
  }
  /* An indented line is a key of its own, not the continuation of the
   * line before it (libinih's default would glue the two together). */
  ini_allow_multiline = false;
  int rc = ini_parse_stream(reader, &p, handler, &p);
  if (rc != 0 && !p.failed)
    snprintf(p.err, sizeof p.err, "%s:%d: not a key = value line nor a [section] header", c->path,
             rc > 0 ? rc : p.line);
  if (rc != 0 || p.failed || check(&p) == -1) {
    set_error_code(EINVAL, "%s", p.err);
    ops_config_free(c);
    c = NULL;
  } else if (!c->host) {
    char h[256] = "";
    if (gethostname(h, sizeof h - 1) == -1 || !(c->host = strdup(h))) {
      set_error(errno, "gethostname");
      ops_config_free(c);
      c = NULL;
    }
  }
  if (c && !c->state_dir && !(c->state_dir = strdup("/var/lib/pilotlight"))) {
    set_error(ENOMEM, "loading %s", path);
    ops_config_free(c);
    c = NULL;
  }
  fclose(p.f);
  for (size_t i = 0; i < p.seen.len; i++)
    free(p.seen.v[i].name);
  vec_free(&p.seen);
  return c;
}

const struct ops_disk *ops_config_disk(const struct ops_config *c, const char *name)
{
  for (size_t i = 0; i < c->disks.len; i++)
    if (strcmp(c->disks.v[i].name, name) == 0)
      return &c->disks.v[i];
  return NULL;
}

void ops_config_free(struct ops_config *c)
{
  if (!c)
    return;
  free(c->path);
  free(c->location);
  free(c->password_file);
  free(c->password_command);
  free(c->aws_profile);
  free(c->aws_credentials_file);
  free(c->aws_config_file);
  free(c->cache_dir);
  free(c->limit_upload);
  free(c->limit_download);
  free(c->host);
  free(c->state_dir);
  free(c->metrics_textfile);
  free(c->metrics_listen);
  free(c->alert_command);
  free(c->alert_webhook);
  free(c->prune_max_unused);
  for (size_t i = 0; i < c->disks.len; i++) {
    struct ops_disk *d = &c->disks.v[i];
    char *ds[] = {d->name,       d->source,      d->cbt,          d->cbt_next,
                  d->qcow2,      d->qmp,         d->node,         d->changed_extents,
                  d->block_size, d->keep_within, d->drill_expect, d->drill_device,
                  d->drill_nic};
    for (size_t j = 0; j < sizeof ds / sizeof *ds; j++)
      free(ds[j]);
  }
  vec_free(&c->disks);
  for (size_t i = 0; i < c->replicas.len; i++) {
    free(c->replicas.v[i].name);
    free(c->replicas.v[i].disk);
    free(c->replicas.v[i].target);
    free(c->replicas.v[i].state_dir);
  }
  vec_free(&c->replicas);
  free(c);
}
