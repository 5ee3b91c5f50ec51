/* forget: the retention policy engine (pure: calendar arithmetic in UTC,
 * without the C library's time zone code), plans of what to remove, the
 * forget records written before anything is deleted, and the deletion
 * check verify runs. */
#include "forget.h"

#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../util/compiler.h"
#include "../util/error-slot.h"
#include "../util/error.h"
#include "../util/hash.h"
#include "../util/workers.h"
#include "repo-internal.h"

/* ---- calendar ------------------------------------------------------------ */

static int64_t floor_div(int64_t a, int64_t b)
{
  return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

/* Days since 1970-01-01 of a proleptic Gregorian date (month 1 to 12; day
 * may be out of range, it rolls over). */
static int64_t days_from_civil(int64_t y, int64_t m, int64_t d)
{
  y -= m <= 2;
  int64_t era = floor_div(y, 400);
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

struct civil {
  int64_t year, month, day;
};

static struct civil civil_from_days(int64_t z)
{
  z += 719468;
  int64_t era = floor_div(z, 146097);
  int64_t doe = z - era * 146097;
  int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  int64_t mp = (5 * doy + 2) / 153;
  struct civil c;
  c.day = doy - (153 * mp + 2) / 5 + 1;
  c.month = mp < 10 ? mp + 3 : mp - 9;
  c.year = yoe + era * 400 + (c.month <= 2);
  return c;
}

int64_t forget_duration_before(int64_t t, const struct forget_duration *d)
{
  int64_t days = floor_div(t, 86400), sod = t - days * 86400;
  struct civil c = civil_from_days(days);
  int64_t months = (c.year - d->years) * 12 + (c.month - 1) - d->months;
  int64_t y = floor_div(months, 12), m = months - y * 12 + 1;
  return (days_from_civil(y, m, 1) + c.day - 1 - d->days) * 86400 + sod - d->seconds;
}

/* The period keys of the bucket rules for a time, as restic forms them. */
enum { K_HOUR, K_DAY, K_WEEK, K_MONTH, K_YEAR, K_COUNT };

static void period_keys(int64_t t, int64_t key[K_COUNT])
{
  int64_t days = floor_div(t, 86400), hour = (t - days * 86400) / 3600;
  struct civil c = civil_from_days(days);
  /* ISO 8601: a week runs Monday to Sunday and belongs to the year of its
   * Thursday. 1970-01-01 was a Thursday. */
  int64_t weekday = days + 3 - floor_div(days + 3, 7) * 7; /* Monday 0 */
  int64_t thursday = days - weekday + 3;
  int64_t iso_year = civil_from_days(thursday).year;
  int64_t week = (thursday - days_from_civil(iso_year, 1, 1)) / 7 + 1;
  key[K_HOUR] = c.year * 1000000 + c.month * 10000 + c.day * 100 + hour;
  key[K_DAY] = c.year * 10000 + c.month * 100 + c.day;
  key[K_WEEK] = iso_year * 100 + week;
  key[K_MONTH] = c.year * 100 + c.month;
  key[K_YEAR] = c.year;
}

/* ---- durations and policies ---------------------------------------------- */

int forget_duration_parse(const char *s, struct forget_duration *d)
{
  static const struct {
    const char *unit;
    int field; /* 0 years, 1 months, 2 days, 3 seconds */
    int64_t mul;
  } units[] = {
      {"y", 0, 1}, {"mo", 1, 1},   {"m", 1, 1},    {"w", 2, 7},
      {"d", 2, 1}, {"h", 3, 3600}, {"min", 3, 60}, {"s", 3, 1},
  };
  const char *p = s;
  memset(d, 0, sizeof *d);
  if (!*p)
    goto bad;
  while (*p) {
    int64_t v = 0;
    const char *u;
    size_t ul, i;
    if (*p < '0' || *p > '9')
      goto bad;
    for (; *p >= '0' && *p <= '9'; p++) {
      v = v * 10 + (*p - '0');
      if (v > 1000000)
        goto bad;
    }
    for (u = p; *p >= 'a' && *p <= 'z'; p++)
      ;
    ul = (size_t)(p - u);
    for (i = 0; i < sizeof units / sizeof *units; i++)
      if (strlen(units[i].unit) == ul && memcmp(units[i].unit, u, ul) == 0)
        break;
    if (i == sizeof units / sizeof *units)
      goto bad;
    int64_t *f[] = {&d->years, &d->months, &d->days, &d->seconds};
    *f[units[i].field] += v * units[i].mul;
  }
  if (d->years == 0 && d->months == 0 && d->days == 0 && d->seconds == 0) {
    set_error_code(EINVAL, "duration \"%s\" is zero", s);
    return -1;
  }
  return 0;
bad:
  set_error_code(EINVAL,
                 "\"%s\" is not a duration: use NUMBER UNIT pairs such as 2y5m7d3h or 90min "
                 "(units y, m or mo = months, w, d, h, min, s)",
                 s);
  return -1;
}

const char *forget_rule_name(unsigned i)
{
  static const char *const names[FORGET_RULES] = {"latest", "last",   "within",  "hourly",
                                                  "daily",  "weekly", "monthly", "yearly"};
  return i < FORGET_RULES ? names[i] : NULL;
}

static int duration_is_zero(const struct forget_duration *d)
{
  return d->years == 0 && d->months == 0 && d->days == 0 && d->seconds == 0;
}

int forget_policy_empty(const struct forget_policy *p)
{
  return !p->last && !p->hourly && !p->daily && !p->weekly && !p->monthly && !p->yearly &&
         duration_is_zero(&p->within);
}

/* Newest first by (time, time_ns, id): the reverse of the listing order. */
static int cmp_newest_first(const void *a, const void *b)
{
  const struct snapshot *x = *(struct snapshot *const *)a, *y = *(struct snapshot *const *)b;
  if (x->time != y->time)
    return x->time > y->time ? -1 : 1;
  if (x->time_ns != y->time_ns)
    return x->time_ns > y->time_ns ? -1 : 1;
  return -strcmp(x->id, y->id);
}

/* A snapshot and its place in the caller's array; s comes first, so the
 * comparison above applies. */
struct ranked {
  const struct snapshot *s;
  size_t at;
};

int forget_policy_apply(const struct forget_policy *p, struct snapshot *const *snaps, size_t n,
                        unsigned *keep)
{
  struct {
    unsigned left;
    unsigned bit;
    int key; /* K_*, or -1: every snapshot is its own period (keep-last) */
    int seen;
    int64_t last;
  } rule[] = {
      {p->last, FORGET_LAST, -1, 0, 0},
      {p->hourly, FORGET_HOURLY, K_HOUR, 0, 0},
      {p->daily, FORGET_DAILY, K_DAY, 0, 0},
      {p->weekly, FORGET_WEEKLY, K_WEEK, 0, 0},
      {p->monthly, FORGET_MONTHLY, K_MONTH, 0, 0},
      {p->yearly, FORGET_YEARLY, K_YEAR, 0, 0},
  };
  struct ranked *order;
  int within = !duration_is_zero(&p->within);
  int64_t cut = 0;
  if (forget_policy_empty(p)) {
    set_error_code(EINVAL, "the retention policy has no rule: it would remove every snapshot "
                           "but the latest");
    return -1;
  }
  if (n == 0)
    return 0;
  order = malloc(n * sizeof *order);
  if (!order) {
    set_error(errno, "malloc");
    return -1;
  }
  for (size_t i = 0; i < n; i++) {
    order[i].s = snaps[i];
    order[i].at = i;
  }
  qsort(order, n, sizeof *order, cmp_newest_first);
  if (within)
    cut = forget_duration_before(order[0].s->time, &p->within);
  for (size_t k = 0; k < n; k++) {
    const struct snapshot *s = order[k].s;
    unsigned bits = k == 0 ? FORGET_LATEST : 0;
    int64_t key[K_COUNT];
    /* Strictly newer than the cut, nanoseconds compared as restic does. */
    if (within && (s->time > cut || (s->time == cut && s->time_ns > order[0].s->time_ns)))
      bits |= FORGET_WITHIN;
    period_keys(s->time, key);
    for (size_t i = 0; i < sizeof rule / sizeof *rule; i++) {
      int64_t v = rule[i].key < 0 ? (int64_t)k : key[rule[i].key];
      if (rule[i].left == 0 || (rule[i].seen && rule[i].last == v))
        continue;
      rule[i].seen = 1;
      rule[i].last = v;
      rule[i].left--;
      bits |= rule[i].bit;
    }
    keep[order[k].at] = bits;
  }
  free(order);
  return 0;
}

/* ---- plans --------------------------------------------------------------- */

static int cmp_by_disk(const void *a, const void *b)
{
  const struct snapshot *x = *(struct snapshot *const *)a, *y = *(struct snapshot *const *)b;
  int c = strcmp(x->disk, y->disk);
  return c ? c : -cmp_newest_first(a, b);
}

void forget_plan_free(struct forget_plan *plan)
{
  if (!plan)
    return;
  for (size_t i = 0; i < plan->e.len; i++)
    snapshot_free(plan->e.v[i].s);
  vec_free(&plan->e);
  free(plan);
}

struct forget_plan *forget_plan_new(struct repo *r, const char *disk)
{
  struct forget_plan *plan = calloc(1, sizeof *plan);
  struct snapshot **all = NULL;
  size_t n = 0, i;
  if (!plan) {
    set_error(errno, "calloc");
    return NULL;
  }
  if (repo_list_snapshots(r, disk, &all, &n) == -1) {
    free(plan);
    return NULL;
  }
  if (n)
    qsort(all, n, sizeof *all, cmp_by_disk);
  if (vec_reserve(&plan->e, n ? n : 1) == -1) {
    for (i = 0; i < n; i++)
      snapshot_free(all[i]);
    free(all);
    free(plan);
    return NULL;
  }
  for (i = 0; i < n; i++) {
    int last_of_disk = i + 1 == n || strcmp(all[i]->disk, all[i + 1]->disk) != 0;
    struct forget_entry e = {.s = all[i], .latest = last_of_disk};
    plan->e.v[plan->e.len++] = e;
    plan->disks += last_of_disk;
  }
  free(all);
  return plan;
}

int forget_plan_policy(struct forget_plan *plan, const struct forget_policy *p)
{
  struct snapshot **group = NULL;
  unsigned *keep = NULL;
  int ret = -1;
  size_t n = plan->e.len;
  if (forget_policy_empty(p))
    return forget_policy_apply(p, NULL, 0, NULL);
  group = malloc((n ? n : 1) * sizeof *group);
  keep = malloc((n ? n : 1) * sizeof *keep);
  if (!group || !keep) {
    set_error(errno, "malloc");
    goto out;
  }
  for (size_t a = 0, b; a < n; a = b) {
    for (b = a; b < n && strcmp(plan->e.v[a].s->disk, plan->e.v[b].s->disk) == 0; b++)
      group[b - a] = plan->e.v[b].s;
    if (forget_policy_apply(p, group, b - a, keep) == -1)
      goto out;
    for (size_t i = a; i < b; i++) {
      struct forget_entry *e = &plan->e.v[i];
      e->keep = keep[i - a];
      e->remove = e->keep == 0;
      assert(!e->latest || e->keep & FORGET_LATEST);
    }
  }
  ret = 0;
out:
  free(group);
  free(keep);
  return ret;
}

struct forget_entry *forget_plan_name(struct forget_plan *plan, const char *disk, const char *spec)
{
  struct forget_entry *found = NULL;
  size_t matches = 0, sl = strlen(spec), have_disk = 0;
  if (sl == 0 || strcmp(spec, "latest") == 0) {
    set_error_code(EINVAL,
                   "forget removes a snapshot only by its id (or a unique prefix), not \"%s\": "
                   "list them with pilotlight snapshots --disk %s",
                   spec, disk);
    return NULL;
  }
  for (size_t i = 0; i < plan->e.len; i++) {
    struct forget_entry *e = &plan->e.v[i];
    if (strcmp(e->s->disk, disk) != 0)
      continue;
    have_disk = 1;
    if (strncmp(e->s->id, spec, sl) == 0) {
      matches++;
      found = e;
    }
  }
  if (matches == 0 && have_disk) {
    set_error_code(ENOENT,
                   "disk %s has no snapshot %s: list them with pilotlight snapshots --disk %s",
                   disk, spec, disk);
    return NULL;
  }
  if (matches == 0) {
    set_error_code(ENOENT,
                   "disk %s has no snapshots in this repository: list them with pilotlight "
                   "snapshots",
                   disk);
    return NULL;
  }
  if (matches > 1) {
    set_error_code(EINVAL, "snapshot prefix %s matches %zu snapshots of %s: give more digits", spec,
                   matches, disk);
    return NULL;
  }
  found->remove = 1;
  found->named = 1;
  return found;
}

/* The deletions of a commit, shared by its threads. */
struct deleter {
  struct repo *r;
  const struct forget_record *rec;
  const char *record; /* its name, for messages */
  atomic_size_t next;
  struct error_slot failed;
};

static int delete_worker(void *opaque, int index PL_UNUSED)
{
  struct deleter *d = opaque;
  char key[128];
  for (;;) {
    size_t i = atomic_fetch_add(&d->next, 1);
    if (i >= d->rec->e.len || error_slot_failed(&d->failed))
      return 0;
    snprintf(key, sizeof key, "snapshots/%s", d->rec->e.v[i].id);
    if (store_del(d->r->store, key) == -1) {
      prefix_error("removing %s (forgotten/%s lists it: rerun forget to finish)", key, d->record);
      return -1;
    }
  }
}

int forget_plan_commit(struct repo *r, const struct forget_plan *plan,
                       char record[2 * HASH_LEN + 1])
{
  struct forget_record rec = {0};
  struct deleter d = {.r = r, .rec = &rec};
  struct timespec now;
  char host[256] = "", name[2 * HASH_LEN + 1] = "";
  char *text = NULL;
  int ret = -1;
  error_slot_init(&d.failed);
  /* The exclusive lock (if any) must still be held: see docs/FORMAT.md, Locks. */
  if (repo_check_lock(r) == -1)
    return -1;
  for (size_t i = 0; i < plan->e.len; i++) {
    const struct forget_entry *e = &plan->e.v[i];
    struct forget_record_entry re = {.disk = e->s->disk, .time = e->s->time};
    if (!e->remove)
      continue;
    memcpy(re.id, e->s->id, sizeof re.id);
    if (vec_push(&rec.e, re) == -1)
      goto out;
  }
  if (rec.e.len == 0) {
    ret = 0;
    goto out;
  }
  clock_gettime(CLOCK_REALTIME, &now);
  gethostname(host, sizeof host - 1);
  rec.time = now.tv_sec;
  rec.host = host;
  /* The record first, durably: a snapshot never vanishes unrecorded. */
  text = forget_record_encode(&rec);
  if (!text || repo_put_hashed(r, "forgotten", text, strlen(text), 0, name) == -1) {
    prefix_error("writing the forget record (nothing was removed)");
    name[0] = 0;
    goto out;
  }
  /* Then the deletions, several in flight on a remote store. */
  d.record = name;
  int threads = repo_io_threads(r, 1, 8);
  if ((size_t)threads > rec.e.len)
    threads = (int)rec.e.len;
  if (workers_run(threads, delete_worker, &d, &d.failed) == -1)
    goto out;
  ret = 0;
out:
  if (record)
    memcpy(record, name, sizeof name);
  error_slot_destroy(&d.failed);
  free(text);
  vec_free(&rec.e); /* the entries borrow the plan's strings */
  return ret;
}

/* ---- forget records and the deletion check ------------------------------- */

static int cmp_id(const void *a, const void *b)
{
  return memcmp(a, b, HASH_LEN);
}

static int cmp_str(const void *a, const void *b)
{
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Pass msg to report, or else to the repository's warning callback. */
static void pass_on(struct repo *r, void (*report)(void *, const char *), void *opaque,
                    const char *msg)
{
  if (report)
    report(opaque, msg);
  else
    repo_warn(r, "%s", msg);
}

void forgotten_set_free(struct forgotten_set *set)
{
  if (set) {
    free(set->id);
    free(set);
  }
}

int forgotten_set_has(const struct forgotten_set *set, const char *hexid)
{
  uint8_t h[HASH_LEN];
  if (strlen(hexid) != 2 * HASH_LEN || hex_decode(hexid, h, HASH_LEN) == -1)
    return 0;
  return set->n && bsearch(h, set->id, set->n, HASH_LEN, cmp_id) != NULL;
}

struct forgotten_set *forgotten_set_load(struct repo *r,
                                         void (*report)(void *opaque, const char *msg),
                                         void *opaque, size_t *damaged)
{
  struct forgotten_set *set = calloc(1, sizeof *set);
  struct strings keys = {0};
  VEC(uint8_t) ids = {0}; /* HASH_LEN bytes each */
  char msg[600];
  int ok = 0;
  if (!set) {
    set_error(errno, "calloc");
    return NULL;
  }
  if (store_list_keys(r->store, "forgotten/", &keys) == -1)
    goto out;
  for (size_t i = 0; i < keys.len; i++) {
    struct forget_record rec;
    void *buf;
    size_t len;
    int rc = repo_get_hashed(r, keys.v[i], keys.v[i] + strlen("forgotten/"),
                             MAX_FORGET_RECORD_BYTES, &buf, &len);
    if (rc == 0) {
      rc = forget_record_decode(buf, len, &rec);
      free(buf);
      if (rc == -1)
        prefix_error("%s", keys.v[i]);
    }
    if (rc == -1) {
      snprintf(msg, sizeof msg, "%s", get_error());
      pass_on(r, report, opaque, msg);
      if (damaged)
        ++*damaged;
      continue;
    }
    if (vec_reserve(&ids, rec.e.len * HASH_LEN) == -1) {
      forget_record_clear(&rec);
      goto out;
    }
    for (size_t k = 0; k < rec.e.len; k++, ids.len += HASH_LEN)
      hex_decode(rec.e.v[k].id, ids.v + ids.len, HASH_LEN);
    forget_record_clear(&rec);
  }
  set->n = ids.len / HASH_LEN;
  if (set->n)
    qsort(ids.v, set->n, HASH_LEN, cmp_id);
  set->id = (uint8_t(*)[HASH_LEN])ids.v;
  ids.v = NULL;
  ok = 1;
out:
  strings_free(&keys);
  vec_free(&ids);
  if (!ok) {
    forgotten_set_free(set);
    return NULL;
  }
  return set;
}

int repo_verify_deletions(struct repo *r, void (*report)(void *opaque, const char *msg),
                          void *opaque, size_t *problems)
{
  struct strings keys = {0}, qkeys = {0};
  VEC(const char *) names = {0};
  struct forgotten_set *gone = NULL;
  char msg[600];
  int ret = -1;
  /* Snapshots first, records after: forget writes its record before it
   * deletes, so any snapshot missing from this listing is recorded by
   * the time the records are read. */
  if (store_list_keys(r->store, "snapshots/", &keys) == -1)
    goto out;
  if (vec_reserve(&names, keys.len ? keys.len : 1) == -1)
    goto out;
  for (size_t i = 0; i < keys.len; i++)
    names.v[names.len++] = keys.v[i] + strlen("snapshots/");
  if (names.len)
    qsort(names.v, names.len, sizeof *names.v, cmp_str);
  gone = forgotten_set_load(r, report, opaque, problems);
  if (!gone)
    goto out;
  /* A snapshot object repair moved aside (damaged) is accounted for too. */
  if (store_list_keys(r->store, "quarantine/snapshots/", &qkeys) == -1)
    goto out;
  for (size_t i = 0; i < qkeys.len; i++)
    memmove(qkeys.v[i], qkeys.v[i] + strlen("quarantine/snapshots/"),
            strlen(qkeys.v[i]) - strlen("quarantine/snapshots/") + 1);
  if (qkeys.len)
    qsort(qkeys.v, qkeys.len, sizeof *qkeys.v, cmp_str);
  for (size_t i = 0; i < names.len; i++) {
    struct snapshot s;
    void *buf;
    size_t len;
    char key[128];
    snprintf(key, sizeof key, "snapshots/%s", names.v[i]);
    if (repo_get_hashed(r, key, names.v[i], MAX_SNAPSHOT_BYTES, &buf, &len) == -1)
      continue; /* the rest of verify reports it */
    int rc = snapshot_decode(buf, len, &s);
    free(buf);
    if (rc == -1)
      continue;
    /* forget writes its record before it deletes: a snapshot a record lists
     * is either left by an interrupted forget or was put back. */
    if (forgotten_set_has(gone, names.v[i])) {
      snprintf(msg, sizeof msg,
               "snapshot %.12s of disk %s is listed by a forget record but present: a forget "
               "that was interrupted, or an old snapshot object put back (replayed); remove it "
               "with pilotlight forget %s@%.12s",
               names.v[i], s.disk, s.disk, names.v[i]);
      report(opaque, msg);
      ++*problems;
    }
    const char *parent = s.parent;
    if (s.parent[0] && !bsearch(&parent, names.v, names.len, sizeof *names.v, cmp_str) &&
        !forgotten_set_has(gone, s.parent) &&
        !bsearch(&parent, qkeys.v, qkeys.len, sizeof *qkeys.v, cmp_str)) {
      snprintf(msg, sizeof msg,
               "snapshot %.12s of disk %s names parent %.12s, which is gone without a forget "
               "record",
               names.v[i], s.disk, s.parent);
      report(opaque, msg);
      ++*problems;
    }
    snapshot_clear(&s);
  }
  ret = 0;
out:
  forgotten_set_free(gone);
  strings_free(&qkeys);
  strings_free(&keys);
  vec_free(&names);
  return ret;
}
