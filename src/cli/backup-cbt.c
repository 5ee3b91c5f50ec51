/* `pilotlight backup` with QEMU changed-block tracking: looks up the parent
 * snapshot, runs a CBT session (src/source/qemu-cbt.h) around repo_backup,
 * and with --verify-cbt proves the committed snapshot equals the disk. */
#include "backup-cbt.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/blockmap-compare.h"
#include "util/error.h"

int cbt_cli_wanted(const struct cbt_cli *o)
{
  return o->cbt || o->qcow2 || o->qmp;
}

const char *cbt_cli_check(const struct cbt_cli *o, int nsources, int has_extents)
{
  int n = !!o->cbt + !!o->qcow2 + !!o->qmp;
  if (!n) {
    if (o->cbt_next || o->node || o->nbd_socket || o->tmpdir || o->verify)
      return "--cbt-next, --node, --nbd-socket, --fleece-dir and --verify-cbt need --cbt, "
             "--qcow2 or --qmp";
    return NULL;
  }
  if (n > 1)
    return "--cbt, --qcow2 and --qmp exclude each other";
  if (has_extents)
    return "--changed-extents and changed-block tracking exclude each other";
  if (o->cbt) {
    if (strncmp(o->cbt, CBT_COOKIE_PREFIX, strlen(CBT_COOKIE_PREFIX)) != 0 ||
        !o->cbt[strlen(CBT_COOKIE_PREFIX)])
      return "--cbt: only qemu-bitmap:BITMAP is supported";
    if (nsources != 1)
      return "--cbt qemu-bitmap:BITMAP needs one SOURCE, an NBD URI that offers the bitmap";
    if (o->node || o->nbd_socket || o->tmpdir)
      return "--node, --nbd-socket and --fleece-dir go with --qmp";
    return NULL;
  }
  if (o->cbt_next)
    return "--cbt-next goes with --cbt (pilotlight names its own bitmaps with --qcow2 and --qmp)";
  if (nsources != 0)
    return "--qcow2 and --qmp name the disk themselves: give no SOURCE";
  if (o->qcow2 && (o->node || o->nbd_socket || o->tmpdir))
    return "--node, --nbd-socket and --fleece-dir go with --qmp";
  if (o->qmp && !o->node)
    return "--qmp needs --node NODE (the node-name of the disk's format node)";
  return NULL;
}

struct cbt_session *cbt_cli_start(struct repo *r, const struct cbt_cli *o, const char *source,
                                  struct backup_opts *bo)
{
  struct cbt_plan p = {0};
  struct snapshot *parent = repo_find_snapshot(r, bo->disk, "latest");
  struct cbt_session *s = NULL;
  if (!parent && get_errno() != ENOENT) {
    fail_lib();
    return NULL;
  }
  if (o->cbt) {
    p.nbd_uri = source;
    p.bitmap = o->cbt + strlen(CBT_COOKIE_PREFIX);
    p.next_bitmap = o->cbt_next;
  }
  p.qcow2 = o->qcow2;
  p.qmp = o->qmp;
  p.node = o->node;
  p.nbd_socket = o->nbd_socket;
  p.tmpdir = o->tmpdir;
  p.full = bo->full;
  if (parent) {
    p.has_parent = 1;
    p.parent_cbt = parent->cbt;
    p.parent_size = parent->size;
  }
  s = cbt_session_start(&p);
  snapshot_free(parent);
  if (!s) {
    fail_lib();
    return NULL;
  }
  /* A disk's first backup fixes its block size: unless told otherwise,
   * match QEMU's default bitmap granularity (see repo.h). */
  if (!p.has_parent && !bo->block_size)
    bo->block_size = repo_cbt_block_size(s->src->size);
  bo->src = s->src;
  bo->changed = s->changed;
  bo->cbt = s->cookie;
  bo->mode = s->mode;
  if (s->fell_back) {
    fprintf(stderr,
            "pilotlight: warning: changed-block tracking not used: %s; reading every "
            "allocated block instead (hash-compare)\n",
            s->note);
    bo->note = s->note;
  }
  return s;
}

static int read_source(void *opaque, void *buf, size_t len, uint64_t off)
{
  return source_pread(opaque, buf, len, off);
}

/* Read the whole disk and compare it with the committed snapshot. Returns 0
 * when equal, 1 after printing a mismatch or an error. */
static int verify(struct repo *r, struct cbt_session *s, const struct snapshot *snap)
{
  struct blockmap m = {0};
  uint64_t bad = 0, first = 0;
  int ret = 1;
  if (repo_load_blockmap(r, snap, &m) == -1) {
    fail_lib();
    goto out;
  }
  struct blockmap_compare_opts co = {
      .limit = s->src->size, .threads = repo_threads(r), .read = read_source, .opaque = s->src};
  struct blockmap_compare_result cr;
  if (m.block_size == 0 || m.nblocks != (s->src->size + m.block_size - 1) / m.block_size) {
    fail_msg("--verify-cbt: the snapshot covers %llu blocks of %u bytes, but the disk has %llu "
             "bytes",
             (unsigned long long)m.nblocks, m.block_size, (unsigned long long)s->src->size);
    goto out;
  }
  if (blockmap_compare(&m, &co, &cr) == -1) {
    prefix_error("--verify-cbt");
    fail_lib();
    goto out;
  }
  bad = cr.mismatches;
  first = cr.first;
  if (bad) {
    fprintf(stderr,
            "pilotlight: CBT MISMATCH: snapshot %s differs from disk %s in %llu of %llu blocks "
            "(first: block %llu at offset %llu). Changed-block tracking missed writes. With "
            "--qcow2 and --qmp the new bitmap is dropped, so the next backup reads everything; "
            "with --cbt, run the next backup with --full.\n",
            snap->id, snap->disk, (unsigned long long)bad, (unsigned long long)m.nblocks,
            (unsigned long long)first, (unsigned long long)first * m.block_size);
    goto out;
  }
  fprintf(stderr, "pilotlight: verify-cbt: snapshot %s equals the disk, all %llu blocks\n",
          snap->id, (unsigned long long)m.nblocks);
  ret = 0;
out:
  blockmap_free(&m);
  return ret;
}

int cbt_cli_end(struct repo *r, struct cbt_session *s, const struct cbt_cli *o,
                const struct snapshot *snap)
{
  int ret = 0, committed = snap ? 1 : 0;
  if (!s)
    return 0;
  if (snap && o->verify && verify(r, s, snap) != 0) {
    ret = 1;
    committed = 2; /* drop the new bitmap too, so that the next run reads everything */
  }
  if (cbt_session_finish(s, committed) == -1) {
    fail_lib();
    ret = 1;
  }
  return ret;
}
