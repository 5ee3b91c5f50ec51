/* Repository locks: objects under locks/ that keep prune (exclusive) and
 * backups (shared) apart, on one host or many. A held lock is refreshed by
 * a thread; a lock is stale when its process is gone (same host) or it was
 * not refreshed for LOCK_STALE_SECONDS (another host). docs/FORMAT.md, Locks. */
#ifndef PL_LOCK_H
#define PL_LOCK_H

#include <stddef.h>
#include <stdint.h>

struct store;
struct repo_lock;

#define LOCK_REFRESH_SECONDS 300 /* a held lock is rewritten this often */
#define LOCK_STALE_SECONDS 1800  /* not refreshed for this long: stale (another host) */

/* A lock object, decoded (from untrusted bytes: format.c checks them). */
struct lock_info {
  char key[64];      /* "locks/<32 hex>" */
  int exclusive;     /* 1 for prune, forget, repair */
  char host[256];    /* the holder's host name */
  int64_t pid;       /* the holder's process id on that host */
  char command[256]; /* what holds it, e.g. "backup disk0" */
  int64_t created;   /* when it was taken (the holder's clock, seconds) */
  int64_t refreshed; /* when it was last refreshed (the holder's clock) */
  int stale;         /* set by lock_list: see the file comment */
};

struct lock_opts {
  int exclusive;
  const char *command; /* borrowed; recorded in the lock */
  int64_t wait_ms;     /* how long to wait for a conflicting lock; 0: fail at once */
  int optional;        /* a store that refuses writes (read-only credentials): go on
                          unlocked, silently */
  /* Called once when the lock must be waited for, with who holds it. */
  void (*waiting)(void *opaque, const struct lock_info *holder, int64_t wait_ms);
  void *opaque;
  int refresh_seconds; /* 0: LOCK_REFRESH_SECONDS; stale after 6 refreshes */
};

/* Lock objects (text, docs/FORMAT.md); decode checks untrusted bytes and
 * fills everything but key and stale. encode returns a malloc'd string. */
#define MAX_LOCK_BYTES 4096u
char *lock_encode(const struct lock_info *l);
int lock_decode(const char *buf, size_t len, struct lock_info *l);

/* Take a lock in s. On success *out is the held lock (NULL when optional and
 * the store refused the write). On a conflict that outlasts wait_ms: -1 with
 * EAGAIN and a message naming the holder and pilotlight unlock. The lock is
 * refreshed by a thread until lock_release. */
int lock_acquire(struct store *s, const struct lock_opts *o, struct repo_lock **out);

/* 0 if l is still held and was refreshed recently enough that no other
 * process can have judged it stale (NULL: 0); else -1 with a message
 * saying that nothing was committed. Call before committing or deleting. */
int lock_check(struct repo_lock *l);

/* Stop refreshing and delete the lock object. NULL is a no-op. */
void lock_release(struct repo_lock *l);

/* Every lock in s, with stale set as judged now from this host; refresh_seconds
 * as in lock_opts. Caller frees *out. Unreadable lock objects are reported
 * with host "?" and stale when older (by the store's clock) than the stale age. */
int lock_list(struct store *s, int refresh_seconds, struct lock_info **out, size_t *n);

#endif
