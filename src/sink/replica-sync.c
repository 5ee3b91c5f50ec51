/* Warm replica sync. The state file beside the target (or in a state
 * folder) says which snapshot the target holds and carries a fingerprint of
 * the target taken right after our last fsync. A sync:
 *   1. checks the fingerprint (a mismatch means someone wrote to the target);
 *   2. replaces the state with "syncing from A to B" (write, fsync, rename,
 *      fsync the folder) before touching any data;
 *   3. writes the blocks whose hashes differ between A and B, punches holes
 *      for the ones that became zero, and fsyncs the target;
 *   4. replaces the state with "holds B" and the new fingerprint.
 * A run that finds "syncing from A to T" rewrites every block that differs
 * between A and T or between A and the new snapshot, which makes the target
 * exact whatever the killed run had written. When A (or T) is gone from the
 * repository (forgotten), its block map is too: then every block of the
 * target is read, hashed and compared with the new snapshot, and only the
 * blocks that differ are written. */
#define _GNU_SOURCE
#include "replica.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "../core/blockmap-compare.h"
#include "../util/error.h"
#include "../util/fileio.h"
#include "../util/hash.h"
#include "../util/progress.h"
#include "sink.h"

#define STATE_MAGIC "pilotlight-replica-state 1"
#define STATE_MAX 4096
#define DEVICE_STATE_DIR "/var/lib/pilotlight/replicas"
#define SAMPLE_BYTES (1u << 20)

/* ---- the state file ---- */

void replica_state_clear(struct replica_state *st)
{
  free(st->disk);
  memset(st, 0, sizeof *st);
}

static int is_hex_id(const char *s)
{
  size_t n = strlen(s);
  if (n != 2 * HASH_LEN)
    return 0;
  for (size_t i = 0; i < n; i++) {
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return 0;
  }
  return 1;
}

/* Copy a snapshot id or "-" (none) into out. */
static int parse_id(const char *v, char out[2 * HASH_LEN + 1])
{
  if (strcmp(v, "-") == 0) {
    out[0] = '\0';
    return 0;
  }
  if (!is_hex_id(v))
    return -1;
  memcpy(out, v, 2 * HASH_LEN + 1);
  return 0;
}

int replica_state_parse(const char *buf, size_t len, struct replica_state *st)
{
  char line[512];
  size_t pos = 0;
  int n = 0, have = 0;
  memset(st, 0, sizeof *st);
  if (len > STATE_MAX) {
    set_error(EINVAL, "replica state: too large");
    return -1;
  }
  while (pos < len) {
    const char *nl = memchr(buf + pos, '\n', len - pos);
    size_t l = nl ? (size_t)(nl - (buf + pos)) : len - pos;
    if (l >= sizeof line || memchr(buf + pos, '\0', l) != NULL)
      goto bad;
    memcpy(line, buf + pos, l);
    line[l] = '\0';
    pos += l + 1;
    if (n++ == 0) {
      if (strcmp(line, STATE_MAGIC) != 0)
        goto bad;
      continue;
    }
    if (l == 0)
      continue;
    char *sp = strchr(line, ' ');
    if (sp == NULL)
      goto bad;
    *sp = '\0';
    const char *k = line, *v = sp + 1;
    if (strcmp(k, "repository") == 0) {
      if (strlen(v) >= sizeof st->repo_id || !*v)
        goto bad;
      memcpy(st->repo_id, v, strlen(v) + 1);
      have |= 1;
    } else if (strcmp(k, "disk") == 0) {
      free(st->disk);
      st->disk = strdup(v);
      if (st->disk == NULL) {
        set_error(ENOMEM, "out of memory");
        replica_state_clear(st);
        return -1;
      }
      have |= 2;
    } else if (strcmp(k, "status") == 0) {
      if (strcmp(v, "clean") == 0)
        st->syncing = 0;
      else if (strcmp(v, "syncing") == 0)
        st->syncing = 1;
      else
        goto bad;
      have |= 4;
    } else if (strcmp(k, "applied") == 0) {
      if (parse_id(v, st->applied) == -1)
        goto bad;
    } else if (strcmp(k, "applying") == 0) {
      if (parse_id(v, st->applying) == -1)
        goto bad;
    } else if (strcmp(k, "size") == 0) {
      char *end;
      errno = 0;
      unsigned long long x = strtoull(v, &end, 10);
      if (errno != 0 || end == v || *end != '\0' || *v == '-')
        goto bad;
      st->size = x;
    } else if (strcmp(k, "fingerprint") == 0) {
      if (strlen(v) >= sizeof st->fingerprint)
        goto bad;
      memcpy(st->fingerprint, v, strlen(v) + 1);
    }
    /* Unknown keys are ignored, so later versions can add some. */
  }
  if (have != 7)
    goto bad;
  return 0;
bad:
  replica_state_clear(st);
  set_error(EINVAL, "replica state: malformed (line %d)", n);
  return -1;
}

/* The state file's path: beside a file target, or in the state folder. */
static char *state_path(const struct replica_opts *o, int is_dev)
{
  const char *dir = o->state_dir ? o->state_dir : is_dev ? DEVICE_STATE_DIR : NULL;
  char *p = NULL;
  if (dir == NULL) {
    if (asprintf(&p, "%s.pilotlight-state", o->target) == -1)
      p = NULL;
  } else {
    /* Named after the absolute path as given, symlinks kept: /dev/vg/lv
     * stays the same name across reboots, /dev/dm-N need not. */
    char abs[PATH_MAX], cwd[PATH_MAX], name[PATH_MAX];
    const char *t = o->target;
    if (t[0] != '/' && getcwd(cwd, sizeof cwd) != NULL) {
      int n = snprintf(abs, sizeof abs, "%s/%s", cwd, t);
      if (n > 0 && (size_t)n < sizeof abs)
        t = abs;
    }
    /* Path components joined by '_', leaving out empty and "." ones. */
    size_t j = 0;
    for (const char *c = t; *c;) {
      size_t len = strcspn(c, "/");
      if (len > 0 && !(len == 1 && c[0] == '.') && j + len + 2 < sizeof name) {
        if (j > 0)
          name[j++] = '_';
        memcpy(name + j, c, len);
        j += len;
      }
      c += len;
      while (*c == '/')
        c++;
    }
    name[j] = '\0';
    if (asprintf(&p, "%s/%s.pilotlight-state", dir, name) == -1)
      p = NULL;
  }
  if (p == NULL)
    set_error(ENOMEM, "out of memory");
  return p;
}

/* Create the state folder (and its parents) when one is used. */
static int make_state_dir(const struct replica_opts *o, int is_dev)
{
  const char *dir = o->state_dir ? o->state_dir : is_dev ? DEVICE_STATE_DIR : NULL;
  char buf[PATH_MAX];
  if (dir == NULL)
    return 0;
  int n = snprintf(buf, sizeof buf, "%s/", dir);
  if (n < 0 || (size_t)n >= sizeof buf) {
    set_error(ENAMETOOLONG, "%s", dir);
    return -1;
  }
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/')
      continue;
    *p = '\0';
    if (mkdir(buf, 0755) == -1 && errno != EEXIST) {
      set_error(errno, "cannot create the state folder %s", buf);
      return -1;
    }
    *p = '/';
  }
  return 0;
}

/* Read the state; *found is 0 when there is none. */
static int state_read(const char *path, struct replica_state *st, int *found)
{
  char buf[STATE_MAX + 1];
  size_t len = 0;
  *found = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd == -1) {
    if (errno == ENOENT)
      return 0;
    set_error(errno, "%s", path);
    return -1;
  }
  if (read_all(fd, buf, sizeof buf, &len, path) == -1) {
    close(fd);
    return -1;
  }
  close(fd);
  if (replica_state_parse(buf, len, st) == -1) {
    prefix_error("%s", path);
    return -1;
  }
  *found = 1;
  return 0;
}

/* Replace the state atomically (write_file_atomic: a temporary file beside
 * it, fsynced, renamed over the old one, the folder fsynced). */
static int state_write(const char *path, const struct replica_state *st)
{
  char buf[STATE_MAX];
  int n = snprintf(buf, sizeof buf,
                   STATE_MAGIC "\n"
                               "repository %s\n"
                               "disk %s\n"
                               "status %s\n"
                               "applied %s\n"
                               "applying %s\n"
                               "size %" PRIu64 "\n"
                               "fingerprint %s\n",
                   st->repo_id, st->disk, st->syncing ? "syncing" : "clean",
                   st->applied[0] ? st->applied : "-", st->applying[0] ? st->applying : "-",
                   st->size, st->fingerprint[0] ? st->fingerprint : "-");
  if (n < 0 || (size_t)n >= sizeof buf) {
    set_error(EOVERFLOW, "%s: state too long", path);
    return -1;
  }
  return write_file_atomic(AT_FDCWD, NULL, path, buf, (size_t)n, 0644, 0);
}

/* ---- the fingerprint ---- */

/* Files: inode, size, mtime and ctime after our fsync. Any write through
 * the file system (a booted VM, dd, an editor) moves mtime and ctime, and
 * nobody can set ctime back. Block devices have no such clock: we record
 * the kernel's count of sectors written to the device with the boot id
 * (any write on this host since our sync, including by a VM, moves it),
 * plus a SHA-256 of the first and last MiB (partition tables, boot
 * sectors, GPT backup) for writes from elsewhere or before a reboot. */
static int fingerprint(struct sink *t, char *out, size_t n)
{
  struct stat st;
  if (fstat(t->fd, &st) == -1) {
    set_error(errno, "%s: stat", t->path);
    return -1;
  }
  if (!t->is_dev) {
    snprintf(out, n, "file:%llu:%llu:%lld.%09ld:%lld.%09ld", (unsigned long long)st.st_ino,
             (unsigned long long)st.st_size, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
             (long long)st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
    return 0;
  }
  char boot[64] = "-", path[96], line[512];
  unsigned long long written = 0;
  FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");
  if (f != NULL) {
    if (fgets(boot, sizeof boot, f) != NULL)
      boot[strcspn(boot, "\n")] = '\0';
    fclose(f);
  }
  snprintf(path, sizeof path, "/sys/dev/block/%u:%u/stat", major(st.st_rdev), minor(st.st_rdev));
  f = fopen(path, "re");
  if (f != NULL) {
    unsigned long long x[7];
    if (fgets(line, sizeof line, f) != NULL &&
        sscanf(line, "%llu %llu %llu %llu %llu %llu %llu", &x[0], &x[1], &x[2], &x[3], &x[4], &x[5],
               &x[6]) == 7)
      written = x[6];
    fclose(f);
  }
  uint8_t *buf = malloc(2 * SAMPLE_BYTES);
  uint8_t h[HASH_LEN];
  char hex[2 * HASH_LEN + 1];
  if (buf == NULL) {
    set_error(ENOMEM, "out of memory");
    return -1;
  }
  size_t a = t->size < SAMPLE_BYTES ? (size_t)t->size : SAMPLE_BYTES;
  uint64_t tail = t->size - a;
  ssize_t r1 = pread(t->fd, buf, a, 0);
  ssize_t r2 = pread(t->fd, buf + a, a, (off_t)tail);
  if (r1 != (ssize_t)a || r2 != (ssize_t)a) {
    set_error(r1 == -1 || r2 == -1 ? errno : EIO, "%s: read", t->path);
    free(buf);
    return -1;
  }
  sha256(buf, 2 * a, h);
  free(buf);
  hex_encode(h, HASH_LEN, hex);
  snprintf(out, n, "blockdev:%s:%llu:%s", boot, written, hex);
  return 0;
}

/* 1 if the target still matches the recorded fingerprint. */
static int fingerprint_matches(struct sink *t, const char *recorded, const char *now)
{
  if (!t->is_dev)
    return strcmp(recorded, now) == 0;
  /* blockdev:BOOT:WRITTEN:SAMPLE. After a reboot the counter restarts, so
   * only the sample is compared then. */
  const char *r1 = strchr(recorded + 9, ':'), *n1 = strchr(now + 9, ':');
  if (strncmp(recorded, "blockdev:", 9) != 0 || r1 == NULL || n1 == NULL)
    return 0;
  const char *rs = strrchr(recorded, ':'), *ns = strrchr(now, ':');
  if (strcmp(rs, ns) != 0)
    return 0;
  int same_boot = r1 - recorded == n1 - now && strncmp(recorded, now, (size_t)(r1 - recorded)) == 0;
  return !same_boot || strcmp(recorded, now) == 0;
}

/* ---- writing ---- */

struct apply {
  struct sink *t;
  const _Atomic int *cancel;
  const struct blockmap *m;
  int fresh; /* the target reads as zeros where we do not write */
  pthread_mutex_t mu;
  uint64_t written;
  uint64_t zeroed;
  uint64_t blocks_done;
  _Atomic uint64_t done; /* bytes of new data handled, for the progress line */
#ifdef PL_TEST_HOOKS
  uint64_t kill_after; /* SIGKILL ourselves after this many blocks (0: never) */
#endif
};

/* How a 4 KiB page of a block is handled. */
enum { PAGE_SAME, PAGE_ZERO, PAGE_DATA };

static int page_kind(const uint8_t *p, const uint8_t *old, size_t n)
{
  if (old != NULL && memcmp(p, old, n) == 0)
    return PAGE_SAME;
  return is_zero(p, n) ? PAGE_ZERO : PAGE_DATA;
}

/* Write one changed block. Unless the target is known to be all holes, the
 * old content is read first and only the 4 KiB pages that differ are
 * written: a few scattered writes in a block cost a few pages, not the
 * block. Pages that became zero become holes (files) or are zeroed. */
static int apply_block(void *opaque, uint64_t block, const void *data, size_t len)
{
  enum { PAGE = 4096 };
  struct apply *a = opaque;
  uint64_t off = block * a->m->block_size;
  const uint8_t *p = data;
  uint8_t *old = NULL;
  uint64_t wrote = 0, zeroed = 0;
  int ret = -1;
  if (a->cancel != NULL && *a->cancel) {
    set_error_code(ECANCELED, "%s: replica sync interrupted", a->t->path);
    return -1;
  }
  if (!a->fresh) {
    old = malloc(len);
    if (old != NULL && pread_all(a->t->fd, old, len, off, a->t->path) == -1) {
      free(old); /* unreadable or short: write the whole block */
      old = NULL;
    }
  }
  for (size_t i = 0; i < len;) {
    size_t n = len - i < PAGE ? len - i : PAGE;
    int kind = page_kind(p + i, old ? old + i : NULL, n);
    size_t j = i + n;
    while (j < len) {
      size_t k = len - j < PAGE ? len - j : PAGE;
      if (page_kind(p + j, old ? old + j : NULL, k) != kind)
        break;
      j += k;
    }
    if (kind == PAGE_ZERO && !a->fresh) {
      if (sink_zero(a->t, off + i, j - i) == -1)
        goto out;
      zeroed += j - i;
    } else if (kind == PAGE_DATA) {
      if (sink_pwrite(a->t, p + i, j - i, off + i) == -1)
        goto out;
      wrote += j - i;
    }
    i = j;
  }
  a->done += len;
  pthread_mutex_lock(&a->mu);
  a->written += wrote;
  a->zeroed += zeroed;
  a->blocks_done++;
#ifdef PL_TEST_HOOKS
  int die = a->kill_after && a->blocks_done >= a->kill_after;
#endif
  pthread_mutex_unlock(&a->mu);
#ifdef PL_TEST_HOOKS
  if (die)
    raise(SIGKILL);
#endif
  ret = 0;
out:
  free(old);
  return ret;
}

/* ---- the sync ---- */

/* Load the map of snapshot id (of disk) into m; 0 when it is gone (*gone set). */
static int load_map(struct repo *r, const char *disk, const char *id, struct blockmap *m, int *gone)
{
  *gone = 0;
  struct snapshot *s = repo_find_snapshot(r, disk, id);
  if (s == NULL) {
    if (get_errno() != ENOENT)
      return -1; /* not gone: unreadable */
    *gone = 1;
    return 0;
  }
  int ret = repo_load_blockmap(r, s, m);
  snapshot_free(s);
  return ret;
}

/* The hash of block b in m, or the zero hash past its end. */
static const uint8_t *hash_at(const struct blockmap *m, uint64_t b)
{
  return m != NULL && b < m->nblocks ? m->h[b] : zero_hash;
}

/* One sync's working state, shared by its steps. */
struct sync {
  struct repo *r;
  const struct replica_opts *o;
  struct replica_result *res;
  struct sink *t;
  struct snapshot *s;       /* the snapshot to apply */
  char *spath;              /* the state file */
  struct replica_state old; /* what the state file said */
  struct replica_state st;  /* what we write */
  struct blockmap mnew;     /* s's map */
  struct blockmap mfrom;    /* the applied snapshot's, when have_from */
  struct blockmap mtmp;     /* an interrupted sync's target snapshot's, when have_tmp */
  int found, full, have_from, have_tmp;
  int compare;      /* what the target holds is gone: compare every block */
  uint8_t *differs; /* with compare: 1 for each block of mnew the target does not hold */
  uint64_t *list;   /* the changed non-zero blocks */
  size_t n;
};

/* Open the target, check that it can hold the snapshot, read its state. */
static int sync_open(struct sync *y)
{
  const struct replica_opts *o = y->o;
  y->s = repo_find_snapshot(y->r, o->disk, o->snapshot ? o->snapshot : "latest");
  if (y->s == NULL)
    return -1;
  memcpy(y->res->to, y->s->id, sizeof y->res->to);
  y->t = sink_open(o->target,
                   SINK_EXISTING | SINK_IN_PLACE | SINK_READ | (o->force ? SINK_IGNORE_MARK : 0));
  if (y->t == NULL)
    return -1;
  if (y->t->is_dev && y->t->size < y->s->size && y->s->used_end > y->t->size) {
    set_error_code(ENOSPC,
                   "%s holds %llu bytes, too small for snapshot %.12s of disk %s: its "
                   "highest used offset is %llu",
                   o->target, (unsigned long long)y->t->size, y->s->id, y->s->disk,
                   (unsigned long long)y->s->used_end);
    return -1;
  }
  y->spath = state_path(o, y->t->is_dev);
  if (y->spath == NULL || make_state_dir(o, y->t->is_dev) == -1)
    return -1;
  if (!y->t->created && state_read(y->spath, &y->old, &y->found) == -1) {
    if (!o->force)
      return -1;
    y->found = 0; /* a damaged state is as good as none with --force */
  }
  return 0;
}

/* Step 1: decide from the state and the fingerprint what the target holds:
 * sets full, resumed or up_to_date, or refuses without force. */
static int sync_decide(struct sync *y)
{
  const struct replica_opts *o = y->o;
  struct replica_result *res = y->res;
  char fp[256];
  if (y->t->created) {
    y->full = 1;
    snprintf(res->note, sizeof res->note, "new replica");
  } else if (!y->found) {
    if (!o->force) {
      set_error_code(EEXIST,
                     "%s exists but has no replica state (%s): add --force to overwrite "
                     "it with a full sync",
                     o->target, y->spath);
      return -1;
    }
    y->full = 1;
    snprintf(res->note, sizeof res->note, "no replica state: full sync (--force)");
  } else if (strcmp(y->old.repo_id, repo_id(y->r)) != 0 || strcmp(y->old.disk, o->disk) != 0) {
    if (!o->force) {
      set_error_code(EINVAL,
                     "%s holds disk %s of repository %s, not disk %s of this repository: "
                     "add --force to overwrite it with a full sync",
                     o->target, y->old.disk, y->old.repo_id, o->disk);
      return -1;
    }
    y->full = 1;
    snprintf(res->note, sizeof res->note, "another disk or repository: full sync (--force)");
  } else if (y->old.syncing) {
    res->resumed = 1;
    snprintf(res->note, sizeof res->note, "finishing an interrupted sync");
  } else {
    if (fingerprint(y->t, fp, sizeof fp) == -1)
      return -1;
    if (!fingerprint_matches(y->t, y->old.fingerprint, fp)) {
      if (!o->force) {
        set_error_code(EBUSY,
                       "%s was modified since pilotlight synced it to snapshot %.12s (was "
                       "it booted?); refusing to mix states: add --force for a full resync",
                       o->target, y->old.applied);
        return -1;
      }
      y->full = 1;
      snprintf(res->note, sizeof res->note,
               "target modified behind our back: full resync (--force)");
    } else if (strcmp(y->old.applied, y->s->id) == 0) {
      res->up_to_date = 1;
    }
  }
  if (y->found && !y->full && y->old.applied[0])
    memcpy(res->from, y->old.applied, sizeof res->from);
  return 0;
}

/* Load the new map, and for an incremental sync the maps it starts from;
 * falls back to a full sync when they are gone or their block size differs. */
static int sync_load_maps(struct sync *y)
{
  struct replica_result *res = y->res;
  int gone;
  if (repo_load_blockmap(y->r, y->s, &y->mnew) == -1)
    return -1;
  if (!y->full && y->old.applied[0] == '\0')
    y->full = 1;
  if (!y->full) {
    if (load_map(y->r, y->o->disk, y->old.applied, &y->mfrom, &gone) == -1)
      return -1;
    y->have_from = !gone;
    if (gone) {
      y->compare = 1;
      snprintf(res->note, sizeof res->note,
               "the snapshot this replica held (%.12s) is no longer in the repository: "
               "compared every block of %s with %.12s",
               y->old.applied, y->o->target, y->s->id);
    }
  }
  if (!y->full && !y->compare && y->old.syncing && y->old.applying[0]) {
    if (load_map(y->r, y->o->disk, y->old.applying, &y->mtmp, &gone) == -1)
      return -1;
    y->have_tmp = !gone;
    if (gone) {
      y->compare = 1;
      snprintf(res->note, sizeof res->note,
               "the snapshot an interrupted sync was applying (%.12s) is no longer in the "
               "repository: compared every block of %s with %.12s",
               y->old.applying, y->o->target, y->s->id);
    }
  }
  if (!y->full && !y->compare &&
      (y->mfrom.block_size != y->mnew.block_size ||
       (y->have_tmp && y->mtmp.block_size != y->mnew.block_size))) {
    y->full = 1;
    snprintf(res->note, sizeof res->note, "block size changed: full sync");
  }
  res->full = y->full;
  res->compared = y->compare;
  if (y->full)
    res->from[0] = '\0';
  return 0;
}

/* Step 2: say what we are about to do, durably, before touching data. */
static int sync_begin(struct sync *y)
{
  struct replica_state *st = &y->st;
  memcpy(st->repo_id, repo_id(y->r), strlen(repo_id(y->r)) + 1);
  st->disk = (char *)y->o->disk;
  st->syncing = 1;
  /* When finishing an interrupted sync towards another snapshot than the
   * one it was applying, the target will hold neither A nor the new
   * snapshot if we are killed again: record it as unknown (a full sync). */
  int known = !y->full && !y->compare && !(y->have_tmp && strcmp(y->old.applying, y->s->id) != 0);
  memcpy(st->applied, known ? y->old.applied : "", known ? sizeof st->applied : 1);
  memcpy(st->applying, y->s->id, sizeof st->applying);
  st->size = y->s->size;
  return state_write(y->spath, st);
}

/* 1 if block b must be written: it differs between what the target may
 * hold (the applied snapshot, or an interrupted sync's target) and s. */
static int block_changed(const struct sync *y, uint64_t b, const uint8_t *hn)
{
  if (y->full)
    return 1;
  if (y->compare)
    return y->differs[b];
  if (memcmp(hash_at(y->have_from ? &y->mfrom : NULL, b), hn, HASH_LEN) != 0)
    return 1;
  return y->have_tmp && memcmp(hash_at(&y->mfrom, b), hash_at(&y->mtmp, b), HASH_LEN) != 0;
}

/* blockmap_compare's callbacks; opaque is the sync. */
static int read_target(void *opaque, void *buf, size_t len, uint64_t off)
{
  struct sync *y = opaque;
  return pread_all(y->t->fd, buf, len, off, y->t->path);
}

static void mark_differs(void *opaque, uint64_t block)
{
  struct sync *y = opaque;
  y->differs[block] = 1;
}

/* Compare every block of the target (as far as it reaches) with the new
 * snapshot's map and mark the ones that differ. */
static int sync_compare(struct sync *y)
{
  struct blockmap_compare_opts co = {.limit = y->t->size,
                                     .threads = repo_threads(y->r),
                                     .read = read_target,
                                     .opaque = y,
                                     .differs = mark_differs};
  struct blockmap_compare_result cr;
  y->differs = calloc(y->mnew.nblocks ? y->mnew.nblocks : 1, 1);
  if (y->differs == NULL) {
    set_error(ENOMEM, "out of memory");
    return -1;
  }
  return blockmap_compare(&y->mnew, &co, &cr);
}

/* Step 3a: size the target and list the changed blocks; runs that became
 * zero are zeroed (holes in a file) right away. */
static int sync_changed_blocks(struct sync *y, int *fresh)
{
  const struct blockmap *m = &y->mnew;
  struct replica_result *res = y->res;
  *fresh = 0;
  if (!y->t->is_dev) {
    /* A full sync of a file starts from all holes. */
    if (y->full && sink_set_size(y->t, y->s->size, 1) == -1)
      return -1;
    if (!y->full && y->t->size != y->s->size && sink_set_size(y->t, y->s->size, 0) == -1)
      return -1;
    *fresh = y->full;
  }
  if (y->compare && sync_compare(y) == -1)
    return -1;
  y->list = malloc((m->nblocks ? m->nblocks : 1) * sizeof *y->list);
  if (y->list == NULL) {
    set_error(ENOMEM, "out of memory");
    return -1;
  }
  for (uint64_t b = 0; b < m->nblocks; b++) {
    if (!block_changed(y, b, m->h[b]))
      continue;
    res->blocks_changed++;
    if (!blockmap_is_zero(m, b)) {
      y->list[y->n++] = b;
      continue;
    }
    if (*fresh)
      continue; /* already a hole */
    /* A run of blocks that became zero: one hole, clipped to a shrunk device. */
    uint64_t e = b;
    while (e + 1 < m->nblocks && blockmap_is_zero(m, e + 1) && block_changed(y, e + 1, zero_hash)) {
      e++;
      res->blocks_changed++;
    }
    uint64_t off = b * m->block_size;
    uint64_t end = e * m->block_size + blockmap_block_len(m, e);
    if (y->t->is_dev && end > y->t->size)
      end = y->t->size;
    if (off < end) {
      if (sink_zero(y->t, off, end - off) == -1)
        return -1;
      res->bytes_zeroed += end - off;
    }
    b = e;
  }
  return 0;
}

/* Step 3b: read the changed blocks from the repository and write what
 * differs, then fsync the target. */
static int sync_apply(struct sync *y, int fresh)
{
  struct apply ap = {.t = y->t, .m = &y->mnew, .fresh = fresh, .cancel = y->o->cancel};
#ifdef PL_TEST_HOOKS
  const char *k = getenv("PILOTLIGHT_TEST_KILL_AFTER_BLOCKS");
  if (k != NULL)
    ap.kill_after = strtoull(k, NULL, 10);
#endif
  struct progress_info prog = {.label = y->o->disk, .done = &ap.done};
  for (size_t i = 0; i < y->n; i++)
    prog.total += blockmap_block_len(&y->mnew, y->list[i]);
  pthread_mutex_init(&ap.mu, NULL);
  progress_begin(y->o->progress, &prog);
  int rc = repo_read_blocks(y->r, &y->mnew, y->list, y->n, apply_block, &ap);
  progress_end(y->o->progress);
  pthread_mutex_destroy(&ap.mu);
  if (rc == -1)
    return -1;
  y->res->bytes_written = ap.written;
  y->res->bytes_zeroed += ap.zeroed;
  return sink_commit(y->t);
}

/* Step 4: verify if asked, and record what the target now holds. */
static int sync_record(struct sync *y)
{
  if (y->o->verify && target_verify(y->r, y->s, y->o->target) == -1)
    return -1;
  if (!y->t->is_dev)
    y->t->size = y->s->size;
  if (fingerprint(y->t, y->st.fingerprint, sizeof y->st.fingerprint) == -1)
    return -1;
  y->st.syncing = 0;
  memcpy(y->st.applied, y->s->id, sizeof y->st.applied);
  y->st.applying[0] = '\0';
  return state_write(y->spath, &y->st);
}

int replica_sync(struct repo *r, const struct replica_opts *o, struct replica_result *res)
{
  struct replica_result dummy = {0};
  struct sync y = {.r = r, .o = o, .res = res ? res : &dummy};
  int ret = -1, fresh, drop;

  memset(y.res, 0, sizeof *y.res);
  if (sync_open(&y) == -1 || sync_decide(&y) == -1)
    goto out;
  if (y.res->up_to_date) {
    ret = o->verify ? target_verify(r, y.s, o->target) : 0;
    goto out;
  }
  if (sync_load_maps(&y) == -1 || sync_begin(&y) == -1 || sync_changed_blocks(&y, &fresh) == -1 ||
      sync_apply(&y, fresh) == -1 || sync_record(&y) == -1)
    goto out;
  ret = 0;
out:
  /* A new replica whose sync was never announced holds nothing promised. */
  drop = ret == -1 && y.t != NULL && y.t->created && !y.st.syncing;
  sink_free(y.t);
  if (drop)
    unlink(o->target);
  free(y.list);
  free(y.differs);
  free(y.spath);
  blockmap_free(&y.mnew);
  blockmap_free(&y.mfrom);
  blockmap_free(&y.mtmp);
  replica_state_clear(&y.old);
  snapshot_free(y.s);
  return ret;
}
