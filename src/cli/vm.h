/* Running a recovered VM for recover --live and drill: pilotlight serve as a
 * child on a private Unix socket, QEMU as a child with the served disk, the
 * accelerator probe, and waiting for a marker on the serial console. Every
 * child gets SIGKILL if this process dies (PR_SET_PDEATHSIG). */
#ifndef PL_CLI_VM_H
#define PL_CLI_VM_H

#include <stdint.h>
#include <sys/types.h>

#include "cli.h"

struct qmp;

struct vm_serve {
  pid_t pid;
  char sock[4200], stats[4200], log[4200];
};

/* Start `pilotlight serve SPEC --socket DIR/nbd.sock --stats DIR/serve.json`
 * (and --writable overlay when not NULL), its stderr in DIR/serve.log, and
 * wait up to timeout_ms until it answers. On failure, prints the reason
 * (serve's own message when it exited) and returns -1. */
int vm_serve_start(struct cli *c, const char *spec, const char *dir, const char *overlay,
                   int timeout_ms, struct vm_serve *s);
/* SIGTERM, then SIGKILL after 10 s; waits for it. */
void vm_serve_stop(struct vm_serve *s);
/* The export's size, or -1 after printing the reason. */
int64_t vm_serve_size(const struct vm_serve *s);

/* "kvm" when a probe boot of the firmware under KVM gets as far as SeaBIOS'
 * first debug line within a few seconds, else "tcg" (docs/SERVE.md). */
const char *vm_probe_accel(void);

/* QEMU's command line for a VM whose boot disk is the export at sock: the
 * qemu-system-x86_64 binary, -accel, -m, no display, the serial console to
 * serial_log, a QMP socket at qmp (when not NULL), the disk as node
 * "pl-disk" on device (ide-hd, virtio-blk-pci, ...), then extra (NULL
 * terminated; may be NULL). Returns a NULL-terminated malloc'd array of
 * malloc'd strings (free with vm_free_argv), or NULL. */
char **vm_qemu_argv(const char *accel, unsigned memory_mib, const char *device, const char *sock,
                    const char *serial_log, const char *qmp, int no_network, char *const *extra);
void vm_free_argv(char **argv);

/* Start argv[0] (found on PATH); -1 after printing the reason. */
pid_t vm_spawn(char **argv, const char *log);

/* Wait until file contains marker (1), the process pid exits (0; *status
 * receives its wait status), or timeout_ms passes (-1). */
int vm_wait_marker(const char *file, const char *marker, pid_t pid, int timeout_ms, int *status);

/* Connect to QEMU's QMP socket at path, retrying until it opens, QEMU (pid
 * qemu) exits or timeout_ms passes; NULL after printing the reason. */
struct qmp *vm_qmp_wait(const char *path, pid_t qemu, int timeout_ms);

/* SIGTERM pid, SIGKILL after timeout_ms, and reap it. */
void vm_kill(pid_t pid, int timeout_ms);

/* The VM options recover --live and drill share: --device, --accel and
 * --memory, as getopt_long entries (VM_OPTIONS) and their parser. */
struct vm_opts {
  const char *device; /* default virtio-blk-pci */
  const char *accel;  /* NULL: vm_probe_accel() */
  unsigned memory;    /* MiB */
};
enum { VM_O_DEVICE = 400, VM_O_ACCEL, VM_O_MEMORY };
#define VM_OPTIONS                                                                                 \
  {"device", required_argument, NULL, VM_O_DEVICE},                                                \
      {"accel", required_argument, NULL, VM_O_ACCEL},                                              \
  {                                                                                                \
    "memory", required_argument, NULL, VM_O_MEMORY                                                 \
  }
/* Parse option ch (one of VM_O_*) into o: 0, or -1 after a usage error. */
int vm_parse_opt(struct cli *c, int ch, const char *arg, struct vm_opts *o);

/* Seconds on the monotonic clock. */
double vm_now(void);

#endif
