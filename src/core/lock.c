/* Repository locks (docs/FORMAT.md, Locks): take one by writing a lock
 * object, then listing locks/; back off and retry on a conflict. A thread
 * rewrites the object every refresh period while it is held. */
#include "lock.h"

#include <errno.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../store/store.h"
#include "../util/compiler.h"
#include "../util/error.h"
#include "../util/hash.h"
#include "../util/vec.h"

struct repo_lock {
  struct store *store; /* borrowed */
  struct lock_info info;
  int refresh_seconds;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cond;
  int stop;
  int lost;        /* the object vanished: someone removed it */
  int64_t last_ok; /* CLOCK_BOOTTIME seconds of the last successful write */
  char last_error[256];
};

static int64_t boot_seconds(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return (int64_t)ts.tv_sec;
}

static int refresh_period(int configured)
{
  return configured > 0 ? configured : LOCK_REFRESH_SECONDS;
}

static int64_t stale_age(int refresh)
{
  return refresh == LOCK_REFRESH_SECONDS ? LOCK_STALE_SECONDS : 6 * (int64_t)refresh;
}

static int write_lock(struct repo_lock *l, unsigned flags)
{
  char *text = lock_encode(&l->info);
  if (!text)
    return -1;
  int rc = store_put(l->store, l->info.key, text, strlen(text), flags);
  free(text);
  return rc;
}

static void *refresher(void *arg)
{
  struct repo_lock *l = arg;
  pthread_mutex_lock(&l->mu);
  while (!l->stop) {
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += l->refresh_seconds;
    while (!l->stop && pthread_cond_timedwait(&l->cond, &l->mu, &until) != ETIMEDOUT)
      ;
    if (l->stop)
      break;
    pthread_mutex_unlock(&l->mu);
    /* A lock removed by pilotlight unlock is not silently taken again:
     * whoever removed it may be running prune now. */
    uint64_t size;
    int rc = store_head(l->store, l->info.key, &size);
    int gone = rc == -1 && get_errno() == ENOENT;
    if (rc == 0) {
      l->info.refreshed = (int64_t)time(NULL);
      rc = write_lock(l, 0);
    }
    pthread_mutex_lock(&l->mu);
    if (gone)
      l->lost = 1;
    else if (rc == 0)
      l->last_ok = boot_seconds();
    else
      snprintf(l->last_error, sizeof l->last_error, "%s", get_error());
  }
  pthread_mutex_unlock(&l->mu);
  return NULL;
}

static int pid_alive(int64_t pid)
{
  if (pid <= 0 || pid > INT32_MAX)
    return 0;
  return kill((pid_t)pid, 0) == 0 || errno == EPERM;
}

struct lister {
  struct store *s;
  int64_t stale_after;
  char host[256];
  VEC(struct lock_info) v;
};

static int list_one(void *opaque, const char *key, uint64_t size PL_UNUSED, int64_t mtime)
{
  struct lister *ls = opaque;
  struct lock_info li;
  void *buf = NULL;
  size_t len;
  int64_t now = (int64_t)time(NULL);
  if (strlen(key) >= sizeof li.key)
    return 0; /* not a lock object this version writes */
  if (store_get(ls->s, key, MAX_LOCK_BYTES, &buf, &len) == -1) {
    if (get_errno() == ENOENT)
      return 0; /* released while we listed */
    memset(&li, 0, sizeof li);
    snprintf(li.host, sizeof li.host, "?");
    li.refreshed = mtime;
  } else if (lock_decode(buf, len, &li) == -1) {
    memset(&li, 0, sizeof li);
    snprintf(li.host, sizeof li.host, "?");
    snprintf(li.command, sizeof li.command, "unreadable lock object");
    li.exclusive = 1; /* the safe reading of a lock we cannot read */
    li.refreshed = mtime;
  }
  free(buf);
  snprintf(li.key, sizeof li.key, "%s", key);
  if (strcmp(li.host, ls->host) == 0)
    li.stale = !pid_alive(li.pid);
  else
    li.stale = now - li.refreshed > ls->stale_after;
  if (vec_push(&ls->v, li) == -1) {
    set_error(ENOMEM, "listing locks");
    return -1;
  }
  return 0;
}

int lock_list(struct store *s, int refresh_seconds, struct lock_info **out, size_t *n)
{
  struct lister ls = {.s = s, .stale_after = stale_age(refresh_period(refresh_seconds))};
  if (gethostname(ls.host, sizeof ls.host - 1) == -1)
    snprintf(ls.host, sizeof ls.host, "unknown");
  if (store_list(s, "locks/", list_one, &ls) == -1) {
    vec_free(&ls.v);
    return -1;
  }
  *out = ls.v.v;
  *n = ls.v.len;
  return 0;
}

/* The first live lock in locks that conflicts with ours, or NULL. */
static const struct lock_info *conflict(const struct repo_lock *me, const struct lock_info *locks,
                                        size_t n)
{
  for (size_t i = 0; i < n; i++) {
    if (strcmp(locks[i].key, me->info.key) == 0 || locks[i].stale)
      continue;
    if (me->info.exclusive || locks[i].exclusive)
      return &locks[i];
  }
  return NULL;
}

static void describe(const struct lock_info *h, char *buf, size_t n)
{
  char when[32];
  time_t t = (time_t)h->created;
  struct tm tm;
  strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm));
  snprintf(buf, n, "%s (pid %lld on %s, %s lock since %s, %s)", h->command[0] ? h->command : "?",
           (long long)h->pid, h->host, h->exclusive ? "exclusive" : "shared", when, h->key);
}

static void lock_destroy(struct repo_lock *l)
{
  pthread_mutex_destroy(&l->mu);
  pthread_cond_destroy(&l->cond);
  free(l);
}

static int start_refresher(struct repo_lock *l)
{
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&l->cond, &ca);
  pthread_condattr_destroy(&ca);
  int rc = pthread_create(&l->thread, NULL, refresher, l);
  if (rc != 0) {
    set_error(rc, "lock refresh thread");
    return -1;
  }
  return 0;
}

int lock_acquire(struct store *s, const struct lock_opts *o, struct repo_lock **out)
{
  struct repo_lock *l = calloc(1, sizeof *l);
  uint8_t rnd[16];
  char hex[33];
  int64_t waited_ms = 0, delay_ms = 500;
  int told = 0;
  *out = NULL;
  if (!l) {
    set_error(errno, "calloc");
    return -1;
  }
  pthread_mutex_init(&l->mu, NULL);
  pthread_cond_init(&l->cond, NULL);
  l->store = s;
  l->refresh_seconds = refresh_period(o->refresh_seconds);
  if (RAND_bytes(rnd, sizeof rnd) != 1) {
    set_error_code(EIO, "no random bytes for a lock name");
    goto fail;
  }
  hex_encode(rnd, sizeof rnd, hex);
  snprintf(l->info.key, sizeof l->info.key, "locks/%s", hex);
  if (gethostname(l->info.host, sizeof l->info.host - 1) == -1)
    snprintf(l->info.host, sizeof l->info.host, "unknown");
  l->info.pid = (int64_t)getpid();
  l->info.exclusive = o->exclusive;
  snprintf(l->info.command, sizeof l->info.command, "%s", o->command ? o->command : "");
  for (;;) {
    struct lock_info *locks = NULL;
    size_t n = 0;
    l->info.created = l->info.refreshed = (int64_t)time(NULL);
    if (write_lock(l, STORE_PUT_EXCL) == -1) {
      if (o->optional && get_errno() == EACCES) {
        lock_destroy(l); /* read-only credentials: readers go on unlocked */
        return 0;
      }
      prefix_error("taking the repository lock");
      goto fail;
    }
    if (lock_list(s, o->refresh_seconds, &locks, &n) == -1) {
      prefix_error("taking the repository lock");
      store_del(s, l->info.key);
      goto fail;
    }
    const struct lock_info *h = conflict(l, locks, n);
    if (!h) {
      free(locks);
      break;
    }
    /* Step back so that two processes taking locks at once cannot both
     * wait on each other, then try again after a jittered delay. */
    store_del(s, l->info.key);
    char who[700];
    describe(h, who, sizeof who);
    if (waited_ms >= o->wait_ms) {
      set_error_code(EAGAIN,
                     "the repository is locked by %s: wait for it (--lock-wait DURATION), or if "
                     "that process is gone for good, run pilotlight unlock",
                     who);
      free(locks);
      goto fail;
    }
    if (!told && o->waiting)
      o->waiting(o->opaque, h, o->wait_ms - waited_ms);
    told = 1;
    free(locks);
    uint8_t j;
    RAND_bytes(&j, 1);
    int64_t d = delay_ms / 2 + (delay_ms * j) / 512;
    if (d > o->wait_ms - waited_ms)
      d = o->wait_ms - waited_ms;
    struct timespec ts = {(time_t)(d / 1000), (long)(d % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
      ;
    waited_ms += d;
    if (delay_ms < 8000)
      delay_ms *= 2;
  }
  l->last_ok = boot_seconds();
  if (start_refresher(l) == -1) {
    store_del(s, l->info.key);
    goto fail;
  }
  *out = l;
  return 0;
fail:
  lock_destroy(l);
  return -1;
}

int lock_check(struct repo_lock *l)
{
  uint64_t size;
  if (!l)
    return 0;
  pthread_mutex_lock(&l->mu);
  int lost = l->lost;
  int64_t since = boot_seconds() - l->last_ok;
  char last_error[256];
  snprintf(last_error, sizeof last_error, "%s", l->last_error);
  pthread_mutex_unlock(&l->mu);
  /* Another host judges the lock stale after stale_age by its own clock;
   * half of it leaves room for clocks that differ by minutes. */
  if (!lost && since > stale_age(l->refresh_seconds) / 2) {
    set_error_code(EAGAIN,
                   "the repository lock %s was not refreshed for %lld s (%s), so a prune may "
                   "have started: nothing was committed; run the command again",
                   l->info.key, (long long)since, last_error[0] ? last_error : "no error seen");
    return -1;
  }
  if (!lost && store_head(l->store, l->info.key, &size) == -1 && get_errno() == ENOENT)
    lost = 1;
  if (lost) {
    set_error_code(EAGAIN,
                   "the repository lock %s was removed (pilotlight unlock?) while this command "
                   "held it: nothing was committed; run the command again",
                   l->info.key);
    return -1;
  }
  return 0;
}

void lock_release(struct repo_lock *l)
{
  if (!l)
    return;
  pthread_mutex_lock(&l->mu);
  l->stop = 1;
  pthread_cond_signal(&l->cond);
  pthread_mutex_unlock(&l->mu);
  pthread_join(l->thread, NULL);
  store_del(l->store, l->info.key);
  lock_destroy(l);
}
