/* Running the QEMU tools (qemu-img, qemu-nbd) for changed-block tracking:
 * spawn, capture what they print, wait; and wait for a daemon to exit.
 * No shared state: every function may be called from any thread. */
#ifndef PL_SPAWN_H
#define PL_SPAWN_H

#include <stddef.h>
#include <sys/types.h>

/* Run argv (argv[0] found on PATH) with standard input from /dev/null and
 * wait for it. What it prints (at most 1 MiB of each stream) goes to *out
 * and *err when those are not NULL; the caller frees them. Output goes to
 * temporary files, not pipes, so a daemon that keeps them open cannot hang
 * the caller. Returns the exit status (0-255), or -1 with the error set if
 * it could not run or was killed by a signal. */
int spawn_run(char *const argv[], char **out, char **err);

/* The first line of text, for messages: copied into buf (size n). */
const char *spawn_first_line(const char *text, char *buf, size_t n);

/* Send SIGTERM to pid (not a child of ours) and wait up to timeout_ms for it
 * to disappear, then SIGKILL it. Returns 0, or -1 with the error set. */
int spawn_stop_pid(pid_t pid, int timeout_ms);

/* Read a decimal PID from file. Returns it, or -1 with the error set. */
pid_t spawn_read_pidfile(const char *file);

#endif
