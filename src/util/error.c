/* Per-thread error message storage. */
#include "error.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char msg[1024];
static _Thread_local int msg_errno;

void set_error(int errnum, const char *fmt, ...)
{
  int saved = errno;
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (errnum != 0 && n >= 0 && (size_t)n < sizeof msg)
    snprintf(msg + n, sizeof msg - (size_t)n, ": %s", strerror(errnum));
  msg_errno = errnum;
  errno = saved;
}

void set_error_code(int errnum, const char *fmt, ...)
{
  int saved = errno;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  msg_errno = errnum;
  errno = saved;
}

void prefix_error(const char *fmt, ...)
{
  char old[sizeof msg];
  char pre[512];
  va_list ap;
  memcpy(old, msg, sizeof old);
  va_start(ap, fmt);
  vsnprintf(pre, sizeof pre, fmt, ap);
  va_end(ap);
  snprintf(msg, sizeof msg, "%s: %s", pre, old);
}

void set_error_msg(int errnum, const char *m)
{
  snprintf(msg, sizeof msg, "%s", m);
  msg_errno = errnum;
}

const char *get_error(void)
{
  return msg[0] ? msg : "unknown error";
}

int get_errno(void)
{
  return msg_errno;
}
