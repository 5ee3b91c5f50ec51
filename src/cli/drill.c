/* pilotlight drill: prove that a snapshot recovers. Serve it (writes go to
 * a throw-away overlay), boot it in an isolated QEMU (no network, or only a
 * forwarded port with --port), wait for a marker on the serial console or
 * for the port to answer, tear everything down, and record the result, the
 * time to first byte and the measured RTO in the repository as a drill
 * report (docs/FORMAT.md, Host status), which status and the metrics show. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <json-c/json.h>
#include <libnbd.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cbt/qmp.h"
#include "cli.h"
#include "core/host-status.h"
#include "util/error.h"
#include "vm.h"

/* Seconds from the drill's start to the export's first byte: one 4 KiB read
 * at offset 0 over a fresh connection. -1 if it fails. */
static double first_byte(const char *sock, double t0)
{
  struct nbd_handle *h = nbd_create();
  char buf[4096];
  double t = -1;
  if (h && nbd_connect_unix(h, sock) == 0 && nbd_pread(h, buf, sizeof buf, 0, 0) == 0)
    t = vm_now() - t0;
  if (h)
    nbd_close(h);
  return t;
}

/* Whether QEMU's user network lists a TCP connection to guest port port in
 * state ESTABLISHED. The lines of "info usernet" read
 *   TCP[ESTABLISHED]   21   127.0.0.1 18080   10.0.2.15  8080   0   0 */
static int usernet_established(struct qmp *q, int port)
{
  struct json_object *args = json_object_new_object(), *ret = NULL;
  json_object_object_add(args, "command-line", json_object_new_string("info usernet"));
  if (qmp_execute(q, "human-monitor-command", args, &ret) == -1 ||
      !json_object_is_type(ret, json_type_string)) {
    json_object_put(ret);
    return 0;
  }
  int found = 0;
  for (const char *l = json_object_get_string(ret); l && *l && !found;) {
    const char *nl = strchr(l, '\n');
    char line[256];
    size_t n = nl ? (size_t)(nl - l) : strlen(l);
    snprintf(line, sizeof line, "%.*s", (int)(n < sizeof line ? n : sizeof line - 1), l);
    char state[32], src[64], dst[64];
    int fd, sport, dport;
    found = sscanf(line, " TCP[%31[A-Z_]] %d %63s %d %63s %d", state, &fd, src, &sport, dst,
                   &dport) == 6 &&
            strcmp(state, "ESTABLISHED") == 0 && dport == port;
    l = nl ? nl + 1 : NULL;
  }
  json_object_put(ret);
  return found;
}

/* Whether the guest's TCP port answers through QEMU's user network. That
 * network accepts a connection to the forwarded host port at once and only
 * then tries the guest, so an open connection proves nothing: until the
 * guest's network is up it just waits (SYN_SENT). Up means the connection
 * brought data, or QEMU lists a connection to the guest port as ESTABLISHED
 * (the guest answered the SYN; "info usernet", asked over QMP). A refused
 * connection QEMU closes at once. */
static int port_answers(struct qmp *q, int hostport, int guestport)
{
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)hostport)};
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int up = 0;
  if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char b;
    int r = poll(&p, 1, 300);
    if (r == 1)
      up = recv(fd, &b, 1, MSG_PEEK) == 1;
    else if (r == 0)
      up = usernet_established(q, guestport);
  }
  if (fd >= 0)
    close(fd);
  return up;
}

static int free_port(void)
{
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in sa = {.sin_family = AF_INET};
  socklen_t len = sizeof sa;
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int port = -1;
  if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
      getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
    port = ntohs(sa.sin_port);
  if (fd >= 0)
    close(fd);
  return port;
}

int cmd_drill(struct cli *c, int argc, char **argv)
{
  enum {
    O_DISK = 256,
    O_SNAPSHOT,
    O_BOOT,
    O_EXPECT,
    O_PORT,
    O_TIMEOUT,
    O_NIC,
    O_JSON,
    O_NO_REPORT
  };
  static const struct option opts[] = {
      {"repo", required_argument, NULL, 'r'},
      {"help", no_argument, NULL, 'h'},
      {"disk", required_argument, NULL, O_DISK},
      {"snapshot", required_argument, NULL, O_SNAPSHOT},
      {"boot", no_argument, NULL, O_BOOT},
      {"expect", required_argument, NULL, O_EXPECT},
      {"port", required_argument, NULL, O_PORT},
      {"timeout", required_argument, NULL, O_TIMEOUT},
      {"nic", required_argument, NULL, O_NIC},
      {"json", no_argument, NULL, O_JSON},
      {"no-report", no_argument, NULL, O_NO_REPORT},
      VM_OPTIONS,
      {NULL, 0, NULL, 0},
  };
  struct vm_opts vo = {.device = "virtio-blk-pci", .memory = 512};
  const char *disk = NULL, *snap = NULL, *marker = NULL, *nic = NULL; /* NULL: virtio-net-pci */
  int boot = 0, port = 0, json = 0, report = 1, ch;
  int64_t timeout = 300;
  uint64_t v;
  while ((ch = getopt_long(argc, argv, "r:h", opts, NULL)) != -1) {
    switch (ch) {
    case 'r':
      c->repo = optarg;
      break;
    case 'h':
      printf("usage: pilotlight -r REPO drill --disk NAME [--snapshot ID]\n"
             "                  (--boot --expect MARKER | --port N) [OPTIONS]\n\n"
             "A recovery drill: serve the snapshot (the VM's writes go to a throw-away\n"
             "overlay), boot it in QEMU with no network (with --port, only that port\n"
             "forwarded from 127.0.0.1), wait until MARKER appears on its serial console or\n"
             "port N answers, then tear it all down. It measures the time to the export's\n"
             "first byte and the RTO (from the drill's start to the marker or port), checks\n"
             "that every chunk the VM read was verified, and writes a drill report into the\n"
             "repository, which pilotlight status and the metrics show. Exit status 0 when\n"
             "the drill passed, 1 when it failed.\n\n"
             "Options:\n"
             "  --snapshot ID      an id, a unique prefix or latest (default)\n"
             "  --boot --expect MARKER\n"
             "                     pass when the serial console prints MARKER\n"
             "  --port N           pass when the guest's TCP port N accepts a connection\n"
             "                     (its network is QEMU's user network: address 10.0.2.15,\n"
             "                     gateway 10.0.2.2, DHCP; nothing else is reachable)\n"
             "  --nic MODEL        with --port, the NIC's QEMU device (default\n"
             "                     virtio-net-pci; e1000 for guests without virtio)\n"
             "  --timeout DUR      give up after DUR (default 5m)\n"
             "  --memory MIB       the VM's memory (default 512)\n"
             "  --device TYPE      the disk's QEMU device (default virtio-blk-pci; ide-hd)\n"
             "  --accel kvm|tcg    default: kvm when a probe boot with it works, else tcg\n"
             "  --json             print the report as one JSON document\n"
             "  --no-report        do not write the report into the repository\n");
      return 0;
    case O_DISK:
      disk = optarg;
      break;
    case O_SNAPSHOT:
      snap = optarg;
      break;
    case O_BOOT:
      boot = 1;
      break;
    case O_EXPECT:
      marker = optarg;
      break;
    case O_PORT:
      if (parse_size(optarg, &v) == -1 || v == 0 || v > 65535)
        return fail_usage(c, "--port: '%s' is not a TCP port", optarg);
      port = (int)v;
      break;
    case O_NIC:
      if (!*optarg || strchr(optarg, ','))
        return fail_usage(c, "--nic: '%s' is not a QEMU device name, e.g. e1000", optarg);
      nic = optarg;
      break;
    case O_TIMEOUT:
      if (parse_duration(optarg, &timeout) == -1 || timeout <= 0)
        return fail_usage(c, "--timeout: '%s' is not a duration, e.g. 5m", optarg);
      break;
    case VM_O_DEVICE:
    case VM_O_ACCEL:
    case VM_O_MEMORY:
      if (vm_parse_opt(c, ch, optarg, &vo) == -1)
        return EXIT_USAGE;
      break;
    case O_JSON:
      json = 1;
      break;
    case O_NO_REPORT:
      report = 0;
      break;
    default:
      return fail_usage(c, "unknown option");
    }
  }
  if (optind != argc)
    return fail_usage(c, "unexpected argument '%s'", argv[optind]);
  if (!disk)
    return fail_usage(c, "--disk NAME is required");
  if (boot == !!port || (boot && !marker) || (port && marker))
    return fail_usage(c, "give --boot --expect MARKER, or --port N");
  if (nic && !port)
    return fail_usage(c, "--nic goes with --port (without it the VM has no network)");

  c->metadata_only = 1;
  struct repo *r = cli_open_repo(c);
  if (!r)
    return EXIT_FAIL;
  struct snapshot *s = repo_find_snapshot(r, disk, snap);
  if (!s) {
    repo_free(r);
    return fail_lib();
  }
  char dir[] = "/tmp/pilotlight-drill.XXXXXX", spec[400], overlay[PATH_MAX], serial[PATH_MAX],
       qlog[PATH_MAX], qmp_path[PATH_MAX];
  if (!mkdtemp(dir)) {
    snapshot_free(s);
    repo_free(r);
    return fail_msg("cannot create a folder under /tmp: %s", strerror(errno));
  }
  snprintf(spec, sizeof spec, "%s@%s", s->disk, s->id);
  snprintf(overlay, sizeof overlay, "%s/overlay", dir);
  snprintf(serial, sizeof serial, "%s/serial.log", dir);
  snprintf(qlog, sizeof qlog, "%s/qemu.log", dir);
  snprintf(qmp_path, sizeof qmp_path, "%s/qmp.sock", dir);

  char why[600] = "";
  double t0, t_first = -1, t_qemu = 0, t_up = 0;
  struct vm_serve sv = {0};
  pid_t qemu = -1;
  struct qmp *q = NULL;
  char **qargv = NULL;
  int passed = 0, hostport = 0;
  const char *accel = vo.accel ? vo.accel : vm_probe_accel();
  t0 = vm_now(); /* the RTO starts when the recovery does, after the probe */
  if (vm_serve_start(c, spec, dir, overlay, (int)(timeout * 1000), &sv) == -1) {
    snprintf(why, sizeof why, "serve did not start: %s",
             get_error()[0] ? get_error() : "see above");
    goto teardown;
  }
  if ((t_first = first_byte(sv.sock, t0)) < 0) {
    snprintf(why, sizeof why, "the export's first read failed: %s", nbd_get_error());
    goto teardown;
  }
  char fwd[128];
  char *extra[3] = {NULL};
  if (port) {
    hostport = free_port();
    snprintf(fwd, sizeof fwd, "user,restrict=on,model=%s,hostfwd=tcp:127.0.0.1:%d-:%d",
             nic ? nic : "virtio-net-pci", hostport, port);
    extra[0] = "-nic";
    extra[1] = fwd;
  }
  t_qemu = vm_now();
  if (!(qargv = vm_qemu_argv(accel, vo.memory, vo.device, sv.sock, serial, port ? qmp_path : NULL,
                             !port, extra)) ||
      (qemu = vm_spawn(qargv, qlog)) < 0) {
    snprintf(why, sizeof why, "QEMU did not start");
    goto teardown;
  }
  if (port && !(q = vm_qmp_wait(qmp_path, qemu, 30000))) {
    snprintf(why, sizeof why, "QEMU did not open its QMP socket");
    goto teardown;
  }
  int status = 0, w;
  double end = t0 + (double)timeout;
  if (boot) {
    w = vm_wait_marker(serial, marker, qemu, (int)((end - vm_now()) * 1000), &status);
    if (w == 1)
      passed = 1;
    else if (w == 0) {
      qemu = -1;
      snprintf(why, sizeof why, "the VM stopped without printing %s", marker);
    } else
      snprintf(why, sizeof why, "no %s on the serial console within %lld s", marker,
               (long long)timeout);
  } else {
    while (!passed && vm_now() < end) {
      if (waitpid(qemu, &status, WNOHANG) == qemu) {
        qemu = -1;
        snprintf(why, sizeof why, "the VM stopped before port %d answered", port);
        break;
      }
      passed = port_answers(q, hostport, port);
      if (!passed)
        usleep(200000);
    }
    if (!passed && !why[0])
      snprintf(why, sizeof why, "port %d did not answer within %lld s", port, (long long)timeout);
  }
  t_up = vm_now();
teardown:;
  if (q)
    qmp_free(q);
  if (qemu > 0)
    vm_kill(qemu, 5000);
  vm_free_argv(qargv);
  if (sv.pid)
    vm_serve_stop(&sv);
  struct json_object *stats = sv.stats[0] ? json_object_from_file(sv.stats) : NULL, *f;
  int64_t chunks = 0, failed = 0, chunk_bytes = 0;
  if (stats) {
    if (json_object_object_get_ex(stats, "chunks", &f))
      chunks = json_object_get_int64(f);
    if (json_object_object_get_ex(stats, "failed", &f))
      failed = json_object_get_int64(f);
    if (json_object_object_get_ex(stats, "chunk_bytes", &f))
      chunk_bytes = json_object_get_int64(f);
    json_object_put(stats);
  } else if (passed) {
    passed = 0;
    snprintf(why, sizeof why,
             "serve wrote no read statistics: the chunks read are not accounted for");
  }
  if (passed && failed) {
    passed = 0;
    snprintf(why, sizeof why, "%lld chunks failed verification", (long long)failed);
  }
  unlink(sv.stats);
  unlink(sv.log);
  unlink(sv.sock);
  unlink(overlay);
  unlink(serial);
  unlink(qlog);
  unlink(qmp_path);
  rmdir(dir);

  char host[256] = "";
  gethostname(host, sizeof host - 1);
  struct json_object *o = json_object_new_object();
  json_object_object_add(o, "format", json_object_new_int(1));
  json_object_object_add(o, "kind", json_object_new_string("drill"));
  json_object_object_add(o, "disk", json_object_new_string(s->disk));
  json_object_object_add(o, "snapshot", json_object_new_string(s->id));
  json_object_object_add(o, "snapshot_time", json_object_new_int64(s->time));
  json_object_object_add(o, "host", json_object_new_string(host));
  json_object_object_add(o, "time", json_object_new_int64((int64_t)time(NULL)));
  json_object_object_add(o, "result", json_object_new_string(passed ? "pass" : "fail"));
  json_object_object_add(o, "error", json_object_new_string(why));
  json_object_object_add(o, "check", json_object_new_string(boot ? "boot" : "port"));
  if (boot)
    json_object_object_add(o, "marker", json_object_new_string(marker));
  else
    json_object_object_add(o, "port", json_object_new_int(port));
  json_object_object_add(o, "accel", json_object_new_string(accel));
  json_object_object_add(o, "first_byte_seconds",
                         t_first >= 0 ? json_object_new_double(t_first) : NULL);
  json_object_object_add(o, "boot_seconds", passed ? json_object_new_double(t_up - t_qemu) : NULL);
  json_object_object_add(o, "rto_seconds", passed ? json_object_new_double(t_up - t0) : NULL);
  json_object_object_add(o, "chunks_read", json_object_new_int64(chunks));
  json_object_object_add(o, "chunks_verified", json_object_new_int64(chunks));
  json_object_object_add(o, "chunk_bytes", json_object_new_int64(chunk_bytes));
  json_object_object_add(o, "chunks_failed", json_object_new_int64(failed));
  const char *doc = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
  int recorded = 0;
  if (report) {
    char key[300];
    snprintf(key, sizeof key, "drill %s", s->disk);
    if (repo_put_host_status(r, key, doc, strlen(doc)) == 0)
      recorded = 1;
    else
      fprintf(stderr, "pilotlight: warning: the drill report was not recorded: %s\n", get_error());
  }
  if (json) {
    json_object_object_add(o, "recorded", json_object_new_boolean(recorded));
    printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
  } else if (passed) {
    printf("drill of %s@%.12s passed: first byte after %.2f s, %s after %.1f s (RTO %.1f s, %s); "
           "%lld chunks read, all verified%s\n",
           s->disk, s->id, t_first, boot ? "marker" : "port", t_up - t_qemu, t_up - t0, accel,
           (long long)chunks, recorded ? "; report recorded" : "");
  }
  if (!passed)
    fprintf(stderr, "pilotlight: drill of %s@%.12s failed: %s\n", s->disk, s->id, why);
  json_object_put(o);
  snapshot_free(s);
  repo_free(r);
  return passed ? 0 : EXIT_FAIL;
}
