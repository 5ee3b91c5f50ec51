/* The repository password, from where restic users expect it: a command, a
 * file, the environment, or a prompt on the terminal with echo off. The
 * password is never printed and never passed to a child in its argv. */
#include "password.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "util/error.h"

static const char *env(const char *name)
{
  const char *v = getenv(name);
  return v && v[0] ? v : NULL;
}

/* Keep the first line of buf (n bytes) only: drop "\n" or "\r\n" and what
 * follows, as restic does with a password file. */
static size_t first_line(char *buf, size_t n)
{
  char *nl = memchr(buf, '\n', n);
  if (nl)
    n = (size_t)(nl - buf);
  if (n && buf[n - 1] == '\r')
    n--;
  buf[n] = 0;
  return n;
}

/* Read at most cap - 1 bytes from fd into buf; -1 if more would follow. */
static ssize_t read_capped(int fd, char *buf, size_t cap)
{
  size_t n = 0;
  for (;;) {
    ssize_t k = read(fd, buf + n, cap - 1 - n);
    if (k < 0 && errno == EINTR)
      continue;
    if (k < 0)
      return -1;
    if (k == 0)
      return (ssize_t)n;
    n += (size_t)k;
    if (n == cap - 1) {
      char c;
      if (read(fd, &c, 1) == 1) {
        errno = EFBIG;
        return -1;
      }
      return (ssize_t)n;
    }
  }
}

static int from_file(const char *path, const char *what, char *buf, size_t cap, size_t *len)
{
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd == -1) {
    set_error(errno, "%s %s: cannot read the password file", what, path);
    return -1;
  }
  ssize_t n = read_capped(fd, buf, cap);
  int e = errno;
  close(fd);
  if (n < 0) {
    set_error(e, "%s %s: cannot read the password file", what, path);
    return -1;
  }
  *len = first_line(buf, (size_t)n);
  return 0;
}

static int from_command(const char *cmd, const char *what, char *buf, size_t cap, size_t *len)
{
  /* /bin/sh -c runs the command as given; its output comes back on a pipe. */
  FILE *f = popen(cmd, "re");
  if (!f) {
    set_error(errno, "%s: cannot run the password command", what);
    return -1;
  }
  ssize_t n = read_capped(fileno(f), buf, cap);
  int e = errno, status = pclose(f);
  if (n < 0) {
    explicit_bzero(buf, cap);
    set_error(e, "%s: cannot read the password command's output", what);
    return -1;
  }
  if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    explicit_bzero(buf, cap);
    set_error_code(EACCES,
                   "%s: the password command failed (exit status %d): run it by hand to "
                   "see why",
                   what, status == -1 || !WIFEXITED(status) ? -1 : WEXITSTATUS(status));
    return -1;
  }
  *len = first_line(buf, (size_t)n);
  return 0;
}

/* One line from the terminal with echo off. */
static int prompt_once(int tty, const char *prompt, char *buf, size_t cap, size_t *len)
{
  struct termios old, quiet;
  int restore = tcgetattr(tty, &old) == 0;
  if (restore) {
    quiet = old;
    quiet.c_lflag &= ~(tcflag_t)ECHO;
    quiet.c_lflag |= ECHONL;
    tcsetattr(tty, TCSAFLUSH, &quiet);
  }
  ssize_t w = write(tty, prompt, strlen(prompt));
  (void)w;
  size_t n = 0;
  int ret = -1;
  for (;;) {
    char c;
    ssize_t k = read(tty, &c, 1);
    if (k < 0 && errno == EINTR)
      continue;
    if (k <= 0 || c == '\n')
      break;
    if (n + 1 >= cap) {
      set_error_code(EFBIG, "the password is too long (at most %zu bytes)", cap - 1);
      goto out;
    }
    buf[n++] = c;
  }
  buf[n] = 0;
  *len = n;
  ret = 0;
out:
  if (restore)
    tcsetattr(tty, TCSAFLUSH, &old);
  return ret;
}

static int from_terminal(int is_new, char *buf, size_t cap, size_t *len)
{
  int tty = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
  int ret = -1;
  if (tty == -1 || !isatty(tty)) {
    set_error_code(EACCES, "the repository is encrypted and no password was given: set "
                           "PILOTLIGHT_PASSWORD_FILE (or --password-file FILE), "
                           "PILOTLIGHT_PASSWORD_COMMAND or PILOTLIGHT_PASSWORD");
    goto out;
  }
  if (prompt_once(tty, is_new ? "new repository password: " : "repository password: ", buf, cap,
                  len) == -1)
    goto out;
  if (is_new) {
    char again[PASSWORD_MAX];
    size_t alen;
    int same = prompt_once(tty, "enter it again: ", again, sizeof again, &alen) == 0 &&
               alen == *len && memcmp(again, buf, alen) == 0;
    explicit_bzero(again, sizeof again);
    if (!same) {
      set_error_code(EINVAL, "the two passwords differ: nothing was written");
      goto out;
    }
  }
  ret = 0;
out:
  if (tty != -1)
    close(tty);
  return ret;
}

int cli_password_read(const struct cli_password *p, int is_new, char *buf, size_t cap, size_t *len)
{
  const char *v;
  int rc;
  *len = 0;
  if (p && p->command)
    rc = from_command(p->command, "--password-command", buf, cap, len);
  else if (p && p->file)
    rc = from_file(p->file, "--password-file", buf, cap, len);
  else if ((v = env("PILOTLIGHT_PASSWORD_COMMAND")))
    rc = from_command(v, "PILOTLIGHT_PASSWORD_COMMAND", buf, cap, len);
  else if ((v = env("PILOTLIGHT_PASSWORD_FILE")))
    rc = from_file(v, "PILOTLIGHT_PASSWORD_FILE", buf, cap, len);
  else if ((v = env("PILOTLIGHT_PASSWORD"))) {
    *len = strlen(v);
    rc = *len < cap ? 0 : -1;
    if (rc == 0)
      memcpy(buf, v, *len + 1);
    else
      set_error_code(EFBIG, "PILOTLIGHT_PASSWORD is too long (at most %zu bytes)", cap - 1);
  } else
    rc = from_terminal(is_new, buf, cap, len);
  if (rc == 0 && *len == 0) {
    set_error_code(EINVAL, "the password is empty: give a non-empty one");
    rc = -1;
  }
  if (rc == -1)
    explicit_bzero(buf, cap);
  return rc;
}

int cli_password_cb(void *opaque, int is_new, char *buf, size_t cap, size_t *len)
{
  return cli_password_read(opaque, is_new, buf, cap, len);
}

int cli_new_password(const char *file, char *buf, size_t cap, size_t *len)
{
  int rc;
  if (file) {
    rc = from_file(file, "--new-password-file", buf, cap, len);
  } else {
    rc = from_terminal(1, buf, cap, len);
    if (rc == -1 && get_errno() == EACCES)
      set_error_code(EACCES, "no new password: give --new-password-file FILE, or run on a "
                             "terminal to be asked");
  }
  if (rc == 0 && *len == 0) {
    set_error_code(EINVAL, "the new password is empty: give a non-empty one");
    rc = -1;
  }
  if (rc == -1)
    explicit_bzero(buf, cap);
  return rc;
}
