/* `pilotlight backup` with QEMU changed-block tracking: checks the options,
 * turns them into a plan for a CBT session (src/cbt/cbt.h) around
 * repo_backup, and prints what --verify-cbt found. */
#include "backup-cbt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
  struct cbt_session *s;
  if (o->cbt) {
    p.workflow = CBT_NBD;
    p.nbd_uri = source;
    p.bitmap = o->cbt + strlen(CBT_COOKIE_PREFIX);
    p.next_bitmap = o->cbt_next;
  } else if (o->qcow2) {
    p.workflow = CBT_QCOW2;
    p.qcow2 = o->qcow2;
  } else {
    p.workflow = CBT_QMP;
    p.qmp = o->qmp;
    p.node = o->node;
    p.nbd_socket = o->nbd_socket;
  }
  p.tmpdir = o->tmpdir ? o->tmpdir : getenv("TMPDIR");
  s = cbt_backup_start(r, &p, bo);
  if (!s) {
    fail_lib();
    return NULL;
  }
  if (s->fell_back)
    fprintf(stderr,
            "pilotlight: warning: changed-block tracking not used: %s; reading every "
            "allocated block instead (hash-compare)\n",
            s->note);
  return s;
}

/* Read the whole disk and compare it with the committed snapshot. Returns 0
 * when equal, 1 after printing a mismatch or an error. */
static int verify(struct repo *r, struct cbt_session *s, const struct snapshot *snap)
{
  struct cbt_check c;
  if (cbt_backup_verify(r, s, snap, &c) == -1)
    return fail_lib();
  if (c.mismatches) {
    fprintf(stderr,
            "pilotlight: CBT MISMATCH: snapshot %s differs from disk %s in %llu of %llu blocks "
            "(first: block %llu at offset %llu). Changed-block tracking missed writes. With "
            "--qcow2 and --qmp the new bitmap is dropped, so the next backup reads everything; "
            "with --cbt, run the next backup with --full.\n",
            snap->id, snap->disk, (unsigned long long)c.mismatches, (unsigned long long)c.nblocks,
            (unsigned long long)c.first, (unsigned long long)c.first * c.block_size);
    return 1;
  }
  fprintf(stderr, "pilotlight: verify-cbt: snapshot %s equals the disk, all %llu blocks\n",
          snap->id, (unsigned long long)c.nblocks);
  return 0;
}

int cbt_cli_end(struct repo *r, struct cbt_session *s, const struct cbt_cli *o,
                const struct snapshot *snap)
{
  enum cbt_outcome outcome = snap ? CBT_COMMITTED : CBT_ROLLBACK;
  int ret = 0;
  if (!s)
    return 0;
  if (snap && o->verify && verify(r, s, snap) != 0) {
    ret = 1;
    outcome = CBT_COMMITTED_UNTRUSTED;
  }
  if (cbt_session_finish(s, outcome) == -1) {
    fail_lib();
    ret = 1;
  }
  return ret;
}
