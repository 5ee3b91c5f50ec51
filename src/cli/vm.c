/* Child processes of recover --live and drill: serve, QEMU, the KVM probe. */
#include "vm.h"

#include <errno.h>
#include <fcntl.h>
#include <libnbd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cbt/qmp.h"
#include "util/fileio.h"

double vm_now(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_ms(int ms)
{
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
  nanosleep(&ts, NULL);
}

pid_t vm_spawn(char **argv, const char *log)
{
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    fail_msg("cannot start %s: %s", argv[0], strerror(errno));
    return -1;
  }
  if (pid == 0) {
    /* Never outlive us: a drill or recovery that dies takes its VM and
     * server with it. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
      _exit(127);
    int in = open("/dev/null", O_RDONLY);
    int out = log ? open(log, O_WRONLY | O_CREAT | O_APPEND, 0600) : -1;
    if (in >= 0)
      dup2(in, 0);
    if (out >= 0) {
      dup2(out, 1);
      dup2(out, 2);
    }
    execvp(argv[0], argv);
    fprintf(stderr, "pilotlight: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  return pid;
}

void vm_kill(pid_t pid, int timeout_ms)
{
  int status;
  if (pid <= 0)
    return;
  kill(pid, SIGTERM);
  for (int waited = 0; waited < timeout_ms; waited += 20) {
    if (waitpid(pid, &status, WNOHANG) != 0)
      return;
    sleep_ms(20);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
}

/* The last line of a log file, for a message. */
static void last_line(const char *file, char *buf, size_t cap)
{
  buf[0] = 0;
  FILE *f = fopen(file, "r");
  if (!f)
    return;
  char line[1024];
  while (fgets(line, sizeof line, f))
    if (line[0] != '\n')
      snprintf(buf, cap, "%s", line);
  fclose(f);
  buf[strcspn(buf, "\n")] = 0;
}

/* 0 if the export at sock answers (its size in *size), else -1. */
static int nbd_probe(const char *sock, int64_t *size)
{
  struct nbd_handle *h = nbd_create();
  int ret = -1;
  if (h && nbd_connect_unix(h, sock) == 0 && (*size = nbd_get_size(h)) >= 0)
    ret = 0;
  if (h) {
    if (ret == 0)
      nbd_shutdown(h, 0);
    nbd_close(h);
  }
  return ret;
}

int vm_serve_start(struct cli *c, const char *spec, const char *dir, const char *overlay,
                   int timeout_ms, struct vm_serve *s)
{
  char *argv[24];
  int n = 0;
  snprintf(s->sock, sizeof s->sock, "%s/nbd.sock", dir);
  snprintf(s->stats, sizeof s->stats, "%s/serve.json", dir);
  snprintf(s->log, sizeof s->log, "%s/serve.log", dir);
  argv[n++] = "/proc/self/exe";
  argv[n++] = "-r";
  argv[n++] = (char *)c->repo;
  if (c->password.file) {
    argv[n++] = "--password-file";
    argv[n++] = (char *)c->password.file;
  }
  if (c->password.command) {
    argv[n++] = "--password-command";
    argv[n++] = (char *)c->password.command;
  }
  argv[n++] = "serve";
  argv[n++] = (char *)spec;
  argv[n++] = "--socket";
  argv[n++] = s->sock;
  argv[n++] = "--stats";
  argv[n++] = s->stats;
  if (overlay) {
    argv[n++] = "--writable";
    argv[n++] = (char *)overlay;
  }
  argv[n] = NULL;
  unlink(s->stats);
  if ((s->pid = vm_spawn(argv, s->log)) < 0)
    return -1;
  int64_t size;
  for (int waited = 0; waited < timeout_ms; waited += 20) {
    if (nbd_probe(s->sock, &size) == 0)
      return 0;
    int status;
    if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
      char why[1024];
      last_line(s->log, why, sizeof why);
      s->pid = 0;
      fail_msg("serve %s stopped: %s", spec, why[0] ? why : "no message");
      return -1;
    }
    sleep_ms(20);
  }
  vm_serve_stop(s);
  fail_msg("serve %s did not answer within %d s (see %s)", spec, timeout_ms / 1000, s->log);
  return -1;
}

void vm_serve_stop(struct vm_serve *s)
{
  vm_kill(s->pid, 10000);
  s->pid = 0;
}

int64_t vm_serve_size(const struct vm_serve *s)
{
  int64_t size;
  if (nbd_probe(s->sock, &size) == -1) {
    fail_msg("the export at %s: %s", s->sock, nbd_get_error());
    return -1;
  }
  return size;
}

static int file_contains(const char *file, const char *needle)
{
  FILE *f = fopen(file, "r");
  if (!f)
    return 0;
  size_t nl = strlen(needle), have = 0;
  char buf[65536 + 256];
  int found = 0;
  for (;;) {
    size_t got = fread(buf + have, 1, sizeof buf - 1 - have, f);
    if (!got)
      break;
    have += got;
    buf[have] = 0;
    if (memmem(buf, have, needle, nl)) {
      found = 1;
      break;
    }
    /* Keep the tail, in case the marker straddles two reads. */
    if (have > nl) {
      memmove(buf, buf + have - nl, nl);
      have = nl;
    }
  }
  fclose(f);
  return found;
}

struct qmp *vm_qmp_wait(const char *path, pid_t qemu, int timeout_ms)
{
  for (int waited = 0; waited < timeout_ms; waited += 50) {
    struct qmp *q = qmp_connect(path);
    if (q)
      return q;
    int status;
    if (waitpid(qemu, &status, WNOHANG) == qemu)
      break;
    sleep_ms(50);
  }
  fail_msg("QEMU did not open its QMP socket %s (see its messages above)", path);
  return NULL;
}

int vm_wait_marker(const char *file, const char *marker, pid_t pid, int timeout_ms, int *status)
{
  double end = vm_now() + timeout_ms / 1000.0;
  while (vm_now() < end) {
    if (file_contains(file, marker))
      return 1;
    if (pid > 0 && waitpid(pid, status, WNOHANG) == pid)
      return file_contains(file, marker) ? 1 : 0;
    sleep_ms(50);
  }
  return -1;
}

const char *vm_probe_accel(void)
{
  static const char *accel;
  if (accel)
    return accel;
  accel = "tcg";
  if (access("/dev/kvm", R_OK | W_OK) != 0)
    return accel;
  char log[] = "/tmp/pilotlight-kvm-probe.XXXXXX";
  int fd = mkstemp(log);
  if (fd < 0)
    return accel;
  close(fd);
  char chardev[128];
  snprintf(chardev, sizeof chardev, "file,id=dbg,path=%s", log);
  char *argv[] = {"qemu-system-x86_64",
                  "-accel",
                  "kvm",
                  "-nodefaults",
                  "-display",
                  "none",
                  "-no-reboot",
                  "-chardev",
                  chardev,
                  "-device",
                  "isa-debugcon,iobase=0x402,chardev=dbg",
                  NULL};
  pid_t pid = vm_spawn(argv, "/dev/null");
  int status;
  /* SeaBIOS reaches its boot attempts in well under a second; a host whose
   * KVM cannot run real-mode code stops before. */
  if (pid > 0 && vm_wait_marker(log, "Booting from", pid, 5000, &status) == 1)
    accel = "kvm";
  vm_kill(pid, 1000);
  unlink(log);
  return accel;
}

char **vm_qemu_argv(const char *accel, unsigned memory_mib, const char *device, const char *sock,
                    const char *serial_log, const char *qmp, int no_network, char *const *extra)
{
  size_t nextra = 0;
  while (extra && extra[nextra])
    nextra++;
  char **v = calloc(32 + nextra, sizeof *v);
  int n = 0;
  if (!v)
    return NULL;
  char buf[8800];
#define ADD(...)                                                                                   \
  do {                                                                                             \
    snprintf(buf, sizeof buf, __VA_ARGS__);                                                        \
    if (!(v[n++] = strdup(buf)))                                                                   \
      goto oom;                                                                                    \
  } while (0)
  ADD("qemu-system-x86_64");
  ADD("-accel");
  ADD("%s", accel);
  ADD("-m");
  ADD("%u", memory_mib);
  ADD("-display");
  ADD("none");
  ADD("-serial");
  ADD("file:%s", serial_log);
  if (no_network) {
    ADD("-nic");
    ADD("none");
  }
  if (qmp) {
    ADD("-qmp");
    ADD("unix:%s,server=on,wait=off", qmp);
  }
  ADD("-blockdev");
  ADD("{\"driver\":\"nbd\",\"node-name\":\"pl-disk\",\"server\":{\"type\":\"unix\",\"path\":\"%s\"}"
      "}",
      sock);
  ADD("-device");
  ADD("%s,drive=pl-disk,bootindex=1", device);
  for (size_t i = 0; i < nextra; i++)
    ADD("%s", extra[i]);
#undef ADD
  return v;
oom:
  vm_free_argv(v);
  fail_msg("out of memory");
  return NULL;
}

int vm_parse_opt(struct cli *c, int ch, const char *arg, struct vm_opts *o)
{
  uint64_t v;
  switch (ch) {
  case VM_O_DEVICE:
    o->device = arg;
    return 0;
  case VM_O_ACCEL:
    if (strcmp(arg, "kvm") != 0 && strcmp(arg, "tcg") != 0)
      return fail_usage(c, "--accel: '%s' is not kvm or tcg", arg), -1;
    o->accel = arg;
    return 0;
  default:
    if (parse_size(arg, &v) == -1 || v < 16 || v > (1u << 20))
      return fail_usage(c, "--memory: '%s' is not a number of MiB from 16", arg), -1;
    o->memory = (unsigned)v;
    return 0;
  }
}

void vm_free_argv(char **argv)
{
  for (size_t i = 0; argv && argv[i]; i++)
    free(argv[i]);
  free(argv);
}
