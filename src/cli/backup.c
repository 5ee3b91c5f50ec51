/* pilotlight backup: read a disk and commit a snapshot. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backup-cbt.h"
#include "cli.h"
#include "source/extent-list.h"
#include "source/source.h"

static void help(void)
{
  printf("usage: pilotlight -r REPO backup --disk NAME SOURCE [OPTIONS]\n"
         "\n"
         "Back up SOURCE (a raw image file or a block device) as disk NAME and commit a\n"
         "snapshot. The first backup of a disk reads every allocated extent; later ones\n"
         "read only the changed extents when given a list, or else read everything and\n"
         "store only the blocks whose content is new (hash-compare).\n"
         "\n"
         "Options:\n"
         "  --disk NAME                 disk name: letters, digits, '.', '_', '-' (required)\n"
         "  --changed-extents FILE|-    changed-area list since the previous snapshot: one\n"
         "                              \"offset length\" pair of decimal bytes per line (VMware\n"
         "                              QueryChangedDiskAreas format)\n"
         "  --full                      ignore the previous snapshot and read everything\n"
         "  --block-size BYTES          block size for the disk's first backup (or with --full):\n"
         "                              a power of two from 4K to 64M (default 512K; with\n"
         "                              --cbt, --qcow2 or --qmp 64K, doubling past 256 GiB)\n"
         "  --threads N                 worker threads (default: the number of CPUs, twice that\n"
         "                              for an NBD source)\n"
         "  --json                      print the committed snapshot as JSON\n"
         "  --limit-upload RATE         send at most RATE bytes per second to the repository,\n"
         "                              all threads together: e.g. 10M, or 10M,2M@mon-fri\n"
         "                              08:00-18:00 (local time); default\n"
         "                              $PILOTLIGHT_LIMIT_UPLOAD, else unlimited (README,\n"
         "                              Bandwidth limits)\n"
         "\n"
         "Changed-block tracking with QEMU dirty bitmaps (see docs/CBT.md):\n"
         "  --cbt qemu-bitmap:BITMAP    SOURCE is an NBD URI offering qemu:dirty-bitmap:BITMAP,\n"
         "                              the changes since the previous snapshot\n"
         "  --cbt-next BITMAP           with --cbt: the bitmap recording from now on, named in\n"
         "                              the snapshot for the next run (default: BITMAP)\n"
         "  --qcow2 IMAGE               back up an offline qcow2 image (no SOURCE); pilotlight\n"
         "                              rotates its bitmaps and serves it with qemu-nbd\n"
         "  --qmp SOCKET --node NODE    back up node NODE of a running qemu-storage-daemon or\n"
         "                              QEMU (no SOURCE) at one point in time, via a fleece\n"
         "  --nbd-socket PATH           with --qmp: the daemon's running NBD server, if any\n"
         "  --fleece-dir DIR            with --qmp: where the fleece overlay goes (/var/tmp)\n"
         "  --verify-cbt                read everything and check the snapshot equals the disk\n");
}

/* What the command line asked for. */
struct backup_args {
  struct backup_opts bo;
  const char *extents;
  const char *source; /* NULL with --qcow2 / --qmp */
  int json, threads;
  struct cbt_cli cbo;
};

/* Parse argv into *a. Returns -1 to go on, or the exit status (help, usage). */
static int parse_args(struct cli *c, int argc, char **argv, struct backup_args *a)
{
  enum {
    O_EXTENTS = 256,
    O_FULL,
    O_BS,
    O_JSON,
    O_THREADS,
    O_DISK,
    O_CBT,
    O_CBT_NEXT,
    O_QCOW2,
    O_QMP,
    O_NODE,
    O_NBD_SOCKET,
    O_FLEECE_DIR,
    O_VERIFY_CBT,
    O_LIMIT_UPLOAD
  };
  static const struct option opts[] = {
      {"repo", required_argument, NULL, 'r'},
      {"help", no_argument, NULL, 'h'},
      {"disk", required_argument, NULL, O_DISK},
      {"changed-extents", required_argument, NULL, O_EXTENTS},
      {"full", no_argument, NULL, O_FULL},
      {"block-size", required_argument, NULL, O_BS},
      {"threads", required_argument, NULL, O_THREADS},
      {"json", no_argument, NULL, O_JSON},
      {"cbt", required_argument, NULL, O_CBT},
      {"cbt-next", required_argument, NULL, O_CBT_NEXT},
      {"qcow2", required_argument, NULL, O_QCOW2},
      {"qmp", required_argument, NULL, O_QMP},
      {"node", required_argument, NULL, O_NODE},
      {"nbd-socket", required_argument, NULL, O_NBD_SOCKET},
      {"fleece-dir", required_argument, NULL, O_FLEECE_DIR},
      {"verify-cbt", no_argument, NULL, O_VERIFY_CBT},
      {"limit-upload", required_argument, NULL, O_LIMIT_UPLOAD},
      {NULL, 0, NULL, 0},
  };
  struct backup_opts *bo = &a->bo;
  struct cbt_cli *cbo = &a->cbo;
  uint64_t v;
  int ch;
  const char *msg;

  while ((ch = getopt_long(argc, argv, "r:h", opts, NULL)) != -1) {
    switch (ch) {
    case 'r':
      c->repo = optarg;
      break;
    case 'h':
      help();
      return 0;
    case O_DISK:
      bo->disk = optarg;
      break;
    case O_EXTENTS:
      a->extents = optarg;
      break;
    case O_FULL:
      bo->full = 1;
      break;
    case O_JSON:
      a->json = 1;
      break;
    case O_CBT:
      cbo->cbt = optarg;
      break;
    case O_CBT_NEXT:
      cbo->cbt_next = optarg;
      break;
    case O_QCOW2:
      cbo->qcow2 = optarg;
      break;
    case O_QMP:
      cbo->qmp = optarg;
      break;
    case O_NODE:
      cbo->node = optarg;
      break;
    case O_NBD_SOCKET:
      cbo->nbd_socket = optarg;
      break;
    case O_FLEECE_DIR:
      cbo->tmpdir = optarg;
      break;
    case O_VERIFY_CBT:
      cbo->verify = 1;
      break;
    case O_BS:
      if (parse_size(optarg, &v) == -1 || v > UINT32_MAX)
        return fail_usage(c, "--block-size: '%s' is not a size", optarg);
      bo->block_size = (uint32_t)v;
      break;
    case O_THREADS:
      if (parse_threads(c, optarg, &a->threads) == -1)
        return EXIT_USAGE;
      break;
    case O_LIMIT_UPLOAD:
      if (parse_limit(c, 1, optarg) == -1)
        return EXIT_USAGE;
      break;
    default:
      return fail_usage(c, "unknown option");
    }
  }
  if (!bo->disk)
    return fail_usage(c, "--disk NAME is required");
  msg = cbt_cli_check(cbo, argc - optind, a->extents != NULL);
  if (msg)
    return fail_usage(c, "%s", msg);
  if (optind + 1 != argc && !cbo->qcow2 && !cbo->qmp)
    return fail_usage(c, optind >= argc ? "SOURCE is required" : "only one SOURCE is allowed");
  if (a->extents && bo->full)
    return fail_usage(c, "--changed-extents and --full exclude each other");
  if (!cli_repo(c))
    return EXIT_USAGE;
  a->source = optind < argc ? argv[optind] : NULL;
  return -1;
}

static void print_result(const struct snapshot *snap, int json, double secs)
{
  if (snap->note[0])
    fprintf(stderr, "pilotlight: note: %s\n", snap->note);
  if (json) {
    printf("{\"id\":\"%s\",\"disk\":", snap->id);
    json_string(stdout, snap->disk);
    printf(",\"mode\":");
    json_string(stdout, snap->mode);
    printf(",\"note\":");
    json_string(stdout, snap->note);
    if (snap->parent[0])
      printf(",\"parent\":\"%s\"", snap->parent);
    else
      printf(",\"parent\":null");
    printf(",\"time\":%lld,\"size\":%llu,\"bytes_read\":%llu,\"bytes_new\":%llu,"
           "\"bytes_stored\":%llu,\"seconds\":%.3f}\n",
           (long long)snap->time, (unsigned long long)snap->size,
           (unsigned long long)snap->bytes_read, (unsigned long long)snap->bytes_new,
           (unsigned long long)snap->bytes_stored, secs);
  } else {
    char rd[32], nw[32], st[32];
    format_bytes(snap->bytes_read, rd, sizeof rd);
    format_bytes(snap->bytes_new, nw, sizeof nw);
    format_bytes(snap->bytes_stored, st, sizeof st);
    printf("snapshot %s of disk %s committed (%s): read %s, new %s, stored %s in %.2f s\n",
           snap->id, snap->disk, snap->mode, rd, nw, st, secs);
  }
}

int cmd_backup(struct cli *c, int argc, char **argv)
{
  struct backup_args a = {0};
  struct backup_opts *bo = &a.bo;
  int ret = EXIT_FAIL;
  struct repo *r = NULL;
  struct source *src = NULL;
  struct extent_list changed = {0};
  struct snapshot *snap = NULL;
  struct timespec t0, t1;
  struct cbt_session *cbt = NULL;

  int rc = parse_args(c, argc, argv, &a);
  if (rc != -1)
    return rc;
  c->lock = REPO_LOCK_SHARED;
  snprintf(c->lock_command, sizeof c->lock_command, "backup %s", bo->disk);
  clock_gettime(CLOCK_MONOTONIC, &t0);
  if (cbt_cli_wanted(&a.cbo)) {
    r = cli_open_repo(c);
    if (!r)
      goto out;
    cbt = cbt_cli_start(r, &a.cbo, a.source, bo);
    if (!cbt)
      goto out;
  } else {
    src = source_open(a.source);
  }
  if (!src && !cbt) {
    fail_lib();
    goto out;
  }
  if (a.extents) {
    if (extent_list_load(&changed, a.extents, src->size) == -1) {
      fail_lib();
      goto out;
    }
    bo->changed = &changed;
  }
  if (!r)
    r = cli_open_repo(c);
  if (!r)
    goto out;
  if (src)
    bo->src = src;
  if (a.threads) {
    repo_set_threads(r, a.threads);
  } else if (bo->src->remote) {
    /* Twice the workers keep the CPUs busy while half of them wait for a read. */
    repo_set_threads(r, 2 * repo_threads(r));
  }
  bo->progress = a.json ? NULL : cli_progress();
  if (repo_backup(r, bo, &snap) == -1) {
    fail_lib();
    goto out;
  }
  if (cbt) {
    int vrc = cbt_cli_end(r, cbt, &a.cbo, snap);
    cbt = NULL;
    if (vrc != 0)
      goto out;
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  print_result(snap, a.json, (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
  ret = 0;
out:
  cbt_cli_end(r, cbt, &a.cbo, NULL);
  snapshot_free(snap);
  extent_list_free(&changed);
  repo_free(r);
  source_close(src);
  return ret;
}
