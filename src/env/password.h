/* Where the repository password comes from: --password-command,
 * --password-file, then PILOTLIGHT_PASSWORD_COMMAND, PILOTLIGHT_PASSWORD_FILE
 * and PILOTLIGHT_PASSWORD, else a prompt on the terminal (echo off). A file's
 * or a command's first line is the password. */
#ifndef PL_ENV_PASSWORD_H
#define PL_ENV_PASSWORD_H

#include <stddef.h>

#define PASSWORD_MAX 1024

struct cli_password {
  const char *file;    /* --password-file, or NULL */
  const char *command; /* --password-command, or NULL */
};

/* Fill buf (cap bytes, NUL-terminated) with the password and *len with its
 * length. is_new: for a new repository (a prompt asks twice). Returns 0, or
 * -1 with the error set and buf wiped. */
int cli_password_read(const struct cli_password *p, int is_new, char *buf, size_t cap, size_t *len);

/* cli_password_read as repo_settings.password; opaque is the cli_password. */
int cli_password_cb(void *opaque, int is_new, char *buf, size_t cap, size_t *len);

/* A new password for key add and key passwd: the first line of file, or
 * asked twice on the terminal (file NULL). Same returns. */
int cli_new_password(const char *file, char *buf, size_t cap, size_t *len);

#endif
