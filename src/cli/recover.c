/* pilotlight recover --live: boot a VM on the served snapshot at once and
 * copy its disk to local storage while it runs (QEMU's blockdev-mirror from
 * the NBD node to the local image, then a pivot), as Proxmox's live-restore
 * does. The VM's writes before the pivot go to serve's overlay, which the
 * mirror copies too; after the pivot they go to the local disk. */
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cbt/qmp.h"
#include "cbt/spawn.h"
#include "cli.h"
#include "util/error.h"
#include "vm.h"

/* Run a QMP command whose arguments are JSON text; -1 after printing. */
static int qmp_run(struct qmp *q, const char *cmd, const char *json, struct json_object **ret)
{
  struct json_object *args = json ? json_tokener_parse(json) : NULL;
  if (json && !args)
    return fail_msg("internal: bad QMP arguments for %s", cmd), -1;
  if (qmp_execute(q, cmd, args, ret) == -1)
    return fail_lib(), -1;
  return 0;
}

static const char *jstr(struct json_object *o, const char *key)
{
  struct json_object *v;
  return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

/* The state of job id: its status into st (cap bytes), its error (or "")
 * into err; 0, or -1 when QEMU no longer lists it. */
static int job_state(struct qmp *q, const char *id, char *st, size_t cap, char *err, size_t ecap,
                     double *done)
{
  struct json_object *jobs = NULL;
  int ret = -1;
  if (qmp_execute(q, "query-jobs", NULL, &jobs) == -1)
    return -1;
  if (!json_object_is_type(jobs, json_type_array)) {
    json_object_put(jobs);
    return -1;
  }
  for (size_t i = 0; i < json_object_array_length(jobs); i++) {
    struct json_object *j = json_object_array_get_idx(jobs, i);
    if (!json_object_is_type(j, json_type_object))
      continue;
    const char *jid = jstr(j, "id");
    if (!jid || strcmp(jid, id) != 0)
      continue;
    snprintf(st, cap, "%s", jstr(j, "status") ? jstr(j, "status") : "?");
    snprintf(err, ecap, "%s", jstr(j, "error") ? jstr(j, "error") : "");
    struct json_object *cur, *tot;
    if (json_object_object_get_ex(j, "current-progress", &cur) &&
        json_object_object_get_ex(j, "total-progress", &tot) && json_object_get_int64(tot) > 0)
      *done = (double)json_object_get_int64(cur) / (double)json_object_get_int64(tot);
    ret = 0;
  }
  json_object_put(jobs);
  return ret;
}

int cmd_recover(struct cli *c, int argc, char **argv)
{
  enum { O_LIVE = 256, O_FORMAT, O_OVERLAY, O_SERIAL, O_FORCE };
  static const struct option opts[] = {
      {"repo", required_argument, NULL, 'r'},
      {"help", no_argument, NULL, 'h'},
      {"live", no_argument, NULL, O_LIVE},
      {"format", required_argument, NULL, O_FORMAT},
      {"overlay", required_argument, NULL, O_OVERLAY},
      {"serial", required_argument, NULL, O_SERIAL},
      {"force", no_argument, NULL, O_FORCE},
      VM_OPTIONS,
      {NULL, 0, NULL, 0},
  };
  struct vm_opts vo = {.device = "virtio-blk-pci", .memory = 1024};
  const char *format = "raw", *overlay = NULL;
  const char *serial = NULL;
  int live = 0, force = 0, ch, ret = EXIT_FAIL;
  while ((ch = getopt_long(argc, argv, "r:h", opts, NULL)) != -1) {
    switch (ch) {
    case 'r':
      c->repo = optarg;
      break;
    case 'h':
      printf(
          "usage: pilotlight -r REPO recover --live NAME[@SNAPSHOT] TARGET [OPTIONS] [-- "
          "QEMU_ARGS]\n\n"
          "Boot a VM straight from the snapshot (served by pilotlight serve on a private\n"
          "socket) and, while it runs, copy its disk to TARGET with QEMU's blockdev-mirror;\n"
          "when the copy is complete the VM switches to TARGET without stopping. TARGET\n"
          "ends equal to the snapshot plus everything the VM wrote. Until the switch, the\n"
          "VM's writes are kept in the overlay file; if the copy fails the VM keeps running\n"
          "on the served disk, nothing it wrote is lost, and once it is shut down\n"
          "recover --live with the same --overlay and a new TARGET carries on. Runs until\n"
          "the VM exits.\n\n"
          "Options:\n"
          "  --format raw|qcow2  TARGET's format (default raw); TARGET must not exist\n"
          "  --force             overwrite an existing TARGET file\n"
          "  --overlay FILE      the VM's writes until the switch (default\n"
          "                      TARGET.pilotlight-overlay; removed after the switch)\n"
          "  --device TYPE       the disk's QEMU device (default virtio-blk-pci; ide-hd, scsi-hd)\n"
          "  --accel kvm|tcg     default: kvm when a probe boot with it works, else tcg\n"
          "  --memory MIB        the VM's memory (default 1024)\n"
          "  --serial FILE       the serial console's log (default TARGET.serial.log)\n"
          "  -- QEMU_ARGS        further qemu-system-x86_64 arguments (network, CPUs, ...)\n");
      return 0;
    case O_LIVE:
      live = 1;
      break;
    case O_FORMAT:
      if (strcmp(optarg, "raw") != 0 && strcmp(optarg, "qcow2") != 0)
        return fail_usage(c, "--format: '%s' is not raw or qcow2", optarg);
      format = optarg;
      break;
    case O_OVERLAY:
      overlay = optarg;
      break;
    case VM_O_DEVICE:
    case VM_O_ACCEL:
    case VM_O_MEMORY:
      if (vm_parse_opt(c, ch, optarg, &vo) == -1)
        return EXIT_USAGE;
      break;
    case O_SERIAL:
      serial = optarg;
      break;
    case O_FORCE:
      force = 1;
      break;
    default:
      return fail_usage(c, "unknown option");
    }
  }
  if (!live)
    return fail_usage(c, "only recover --live is implemented: for a plain copy use restore");
  if (optind + 2 > argc)
    return fail_usage(c, "expected NAME[@SNAPSHOT] TARGET");
  if (!cli_repo(c))
    return EXIT_USAGE;
  const char *spec = argv[optind], *target = argv[optind + 1];
  char *const *extra = argv + optind + 2; /* getopt left what follows "--" */
  struct stat st;
  if (stat(target, &st) == 0 && !force)
    return fail_msg("%s exists: name a new file, or give --force to overwrite it", target);
  char ovbuf[PATH_MAX], serialbuf[PATH_MAX], dir[] = "/tmp/pilotlight-recover.XXXXXX";
  if (!overlay) {
    snprintf(ovbuf, sizeof ovbuf, "%s.pilotlight-overlay", target);
    overlay = ovbuf;
  }
  if (!serial) {
    snprintf(serialbuf, sizeof serialbuf, "%s.serial.log", target);
    serial = serialbuf;
  }
  if (!mkdtemp(dir))
    return fail_msg("cannot create a folder under /tmp: %s", strerror(errno));
  char qmp_path[PATH_MAX];
  snprintf(qmp_path, sizeof qmp_path, "%s/qmp.sock", dir);

  struct stat ost;
  int ov_existed = stat(overlay, &ost) == 0, created = 0, vm_ran = 0;
  struct vm_serve sv = {0};
  pid_t qemu = -1;
  struct qmp *q = NULL;
  char **qargv = NULL;
  int copied = 0, status = 0;
  char state[64], jerr[1024] = "";
  double t0 = vm_now();
  if (vm_serve_start(c, spec, dir, overlay, 120000, &sv) == -1)
    goto out;
  int64_t size = vm_serve_size(&sv);
  if (size < 0)
    goto out;
  char sizearg[32];
  snprintf(sizearg, sizeof sizearg, "%lld", (long long)size);
  char *create[] = {"qemu-img",     "create",       "-q",    "-f",
                    (char *)format, (char *)target, sizearg, NULL};
  char *err = NULL;
  int rc = spawn_run(create, NULL, &err);
  if (rc != 0) {
    char line[512];
    fail_msg("qemu-img create %s: %s", target,
             rc < 0 ? get_error() : spawn_first_line(err ? err : "", line, sizeof line));
    free(err);
    goto out;
  }
  free(err);
  created = 1;
  const char *accel = vo.accel ? vo.accel : vm_probe_accel();
  unlink(serial);
  if (!(qargv = vm_qemu_argv(accel, vo.memory, vo.device, sv.sock, serial, qmp_path, 0, extra)) ||
      (qemu = vm_spawn(qargv, NULL)) < 0 || !(q = vm_qmp_wait(qmp_path, qemu, 30000)))
    goto out;
  vm_ran = 1;
  fprintf(stderr, "pilotlight: the VM runs on %s (%s, started in %.1f s); copying it to %s\n", spec,
          accel, vm_now() - t0, target);

  char json[4 * PATH_MAX], file[2 * PATH_MAX];
  snprintf(file, sizeof file, "{\"driver\":\"file\",\"filename\":\"%s\"}", target);
#ifdef PL_TEST_HOOKS
  /* Test hook: the target's writes fail with EIO, as on a dying disk. */
  if (getenv("PL_TEST_MIRROR_EIO")) {
    char faulty[sizeof file + 128];
    snprintf(faulty, sizeof faulty,
             "{\"driver\":\"blkdebug\",\"image\":%s,\"inject-error\":[{\"event\":\"write_aio\","
             "\"errno\":5}]}",
             file);
    snprintf(file, sizeof file, "%.*s", (int)sizeof file - 1, faulty);
  }
#endif
  snprintf(json, sizeof json, "{\"driver\":\"%s\",\"node-name\":\"pl-target\",\"file\":%s}", format,
           file);
  if (qmp_run(q, "blockdev-add", json, NULL) == -1 ||
      qmp_run(q, "blockdev-mirror",
              "{\"job-id\":\"pl-copy\",\"device\":\"pl-disk\",\"target\":\"pl-target\","
              "\"sync\":\"full\",\"auto-dismiss\":false}",
              NULL) == -1)
    goto failed_copy;
  double done = 0, last_print = vm_now();
  for (;;) {
    if (waitpid(qemu, &status, WNOHANG) == qemu) {
      qemu = -1;
      fprintf(stderr,
              "pilotlight: the VM stopped before the copy to %s was complete; its writes are "
              "in %s: recover --live %s again with --overlay %s\n",
              target, overlay, spec, overlay);
      goto out;
    }
    if (job_state(q, "pl-copy", state, sizeof state, jerr, sizeof jerr, &done) == -1) {
      snprintf(jerr, sizeof jerr, "QEMU no longer lists the copy job");
      break;
    }
    if (strcmp(state, "ready") == 0) {
      if (qmp_run(q, "job-complete", "{\"id\":\"pl-copy\"}", NULL) == -1)
        break;
    } else if (strcmp(state, "concluded") == 0) {
      copied = !jerr[0];
      break;
    }
    if (isatty(2) && vm_now() - last_print > 1) {
      fprintf(stderr, "\rrecover --live: %5.1f%% copied", done * 100);
      last_print = vm_now();
    }
    usleep(100000);
  }
  if (isatty(2))
    fprintf(stderr, "\r\033[K");
  qmp_run(q, "job-dismiss", "{\"id\":\"pl-copy\"}", NULL);
  if (copied) {
    /* The VM no longer reads the export: let it go, and the overlay whose
     * writes TARGET now holds. */
    qmp_run(q, "blockdev-del", "{\"node-name\":\"pl-disk\"}", NULL);
    vm_serve_stop(&sv);
    unlink(overlay);
    fprintf(stderr,
            "pilotlight: copy complete in %.1f s; the VM now runs on %s (serve stopped, %s "
            "removed)\n",
            vm_now() - t0, target, overlay);
  } else {
  failed_copy:
    fprintf(stderr,
            "pilotlight: the copy to %s failed (%s); the VM keeps running on the served disk and "
            "its writes are kept in %s: when it is shut down, recover --live %s again with "
            "--overlay %s and a new TARGET\n",
            target, jerr[0] ? jerr : get_error(), overlay, spec, overlay);
  }
  /* The VM's life: until it exits. */
  if (qemu > 0 && waitpid(qemu, &status, 0) == qemu)
    qemu = -1;
  ret = copied && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : EXIT_FAIL;
  if (copied && ret)
    fprintf(stderr, "pilotlight: QEMU exited with status %d\n",
            WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
out:
  if (q)
    qmp_free(q);
  if (qemu > 0)
    vm_kill(qemu, 10000);
  vm_free_argv(qargv);
  if (sv.pid)
    vm_serve_stop(&sv);
  if (!vm_ran) {
    /* Nothing ran: leave nothing behind. */
    if (created)
      unlink(target);
    if (!ov_existed)
      unlink(overlay);
  }
  unlink(qmp_path);
  unlink(sv.sock);
  unlink(sv.stats);
  unlink(sv.log);
  rmdir(dir);
  return ret;
}
