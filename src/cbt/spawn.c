/* Spawns the QEMU tools for changed-block tracking and collects what they
 * print; stops the qemu-nbd daemons that the offline workflow starts. */
#define _GNU_SOURCE
#include "spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../util/error.h"
#include "../util/fileio.h"

#define OUTPUT_CAP (1u << 20)

static int tmp_fd(void)
{
  char path[] = "/tmp/pilotlight-run.XXXXXX";
  int fd = mkostemp(path, O_CLOEXEC);
  if (fd == -1) {
    set_error(errno, "mkstemp %s", path);
    return -1;
  }
  unlink(path);
  return fd;
}

static int slurp(int fd, char **text)
{
  char *buf;
  size_t got = 0;
  if (!text)
    return 0;
  *text = NULL;
  buf = malloc(OUTPUT_CAP + 1);
  if (!buf) {
    set_error(errno, "malloc");
    return -1;
  }
  if (lseek(fd, 0, SEEK_SET) == -1) {
    set_error(errno, "lseek");
    free(buf);
    return -1;
  }
  if (read_all(fd, buf, OUTPUT_CAP, &got, "command output") == -1) {
    free(buf);
    return -1;
  }
  buf[got] = '\0';
  *text = buf;
  return 0;
}

int spawn_run(char *const argv[], char **out, char **err)
{
  int ofd = -1, efd = -1, status, ret = -1;
  pid_t pid;
  if (out)
    *out = NULL;
  if (err)
    *err = NULL;
  ofd = tmp_fd();
  if (ofd == -1)
    goto out;
  efd = tmp_fd();
  if (efd == -1)
    goto out;
  pid = fork();
  if (pid == -1) {
    set_error(errno, "fork for %s", argv[0]);
    goto out;
  }
  if (pid == 0) {
    int nul = open("/dev/null", O_RDONLY);
    if (nul == -1 || dup2(nul, 0) == -1 || dup2(ofd, 1) == -1 || dup2(efd, 2) == -1)
      _exit(126);
    execvp(argv[0], argv);
    dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  while (waitpid(pid, &status, 0) == -1) {
    if (errno != EINTR) {
      set_error(errno, "waitpid %s", argv[0]);
      goto out;
    }
  }
  if (slurp(ofd, out) == -1 || slurp(efd, err) == -1)
    goto out;
  if (WIFSIGNALED(status)) {
    set_error(EINTR, "%s was killed by signal %d", argv[0], WTERMSIG(status));
    goto out;
  }
  ret = WEXITSTATUS(status);
  if (ret == 127 && err && *err && strncmp(*err, "cannot run ", 11) == 0) {
    char line[256];
    set_error(ENOENT, "%s (install qemu-utils)", spawn_first_line(*err, line, sizeof line));
    ret = -1;
  }
out:
  if (ret == -1) {
    if (out) {
      free(*out);
      *out = NULL;
    }
    if (err) {
      free(*err);
      *err = NULL;
    }
  }
  if (ofd != -1)
    close(ofd);
  if (efd != -1)
    close(efd);
  return ret;
}

const char *spawn_first_line(const char *text, char *buf, size_t n)
{
  size_t i = 0;
  if (!text)
    text = "";
  while (text[0] == '\n' || text[0] == ' ')
    text++;
  while (text[i] && text[i] != '\n' && i + 1 < n) {
    buf[i] = text[i];
    i++;
  }
  buf[i] = '\0';
  return buf;
}

/* Gone, or a zombie waiting for init to reap it: either way it has closed
 * its files, so the image lock is free. */
static int pid_gone(pid_t pid)
{
  char path[64], buf[512];
  ssize_t n;
  int fd;
  if (kill(pid, 0) == -1 && errno == ESRCH)
    return 1;
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd == -1)
    return errno == ENOENT;
  n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    return 0;
  buf[n] = '\0';
  const char *p = strrchr(buf, ')');
  return p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
}

int spawn_stop_pid(pid_t pid, int timeout_ms)
{
  struct timespec ts = {0, 10 * 1000 * 1000};
  if (pid <= 1) {
    set_error(EINVAL, "refusing to signal pid %d", (int)pid);
    return -1;
  }
  if (kill(pid, SIGTERM) == -1)
    return errno == ESRCH ? 0 : (set_error(errno, "kill %d", (int)pid), -1);
  for (int waited = 0; waited < timeout_ms; waited += 10) {
    if (pid_gone(pid))
      return 0;
    nanosleep(&ts, NULL);
  }
  kill(pid, SIGKILL);
  for (int waited = 0; waited < 5000; waited += 10) {
    if (pid_gone(pid))
      return 0;
    nanosleep(&ts, NULL);
  }
  set_error(ETIMEDOUT, "process %d did not exit", (int)pid);
  return -1;
}

pid_t spawn_read_pidfile(const char *file)
{
  char buf[32];
  char *end;
  unsigned long long v;
  ssize_t n;
  int fd = open(file, O_RDONLY | O_CLOEXEC);
  if (fd == -1) {
    set_error(errno, "%s", file);
    return -1;
  }
  n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) {
    set_error(EINVAL, "%s: empty pid file", file);
    return -1;
  }
  buf[n] = '\0';
  errno = 0;
  v = strtoull(buf, &end, 10);
  if (errno || end == buf || v <= 1 || v > 0x7fffffff || (*end && *end != '\n')) {
    set_error(EINVAL, "%s: not a pid", file);
    return -1;
  }
  return (pid_t)v;
}
