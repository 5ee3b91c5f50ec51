/* The bounded string buffer: doubles its allocation, refuses to pass the
 * cap, and remembers its first failure until strbuf_take reports it. */
#include "strbuf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

void strbuf_init(struct strbuf *sb, size_t max, const char *what)
{
  *sb = (struct strbuf)STRBUF_INIT(max, what);
}

static int fail(struct strbuf *sb, int errnum)
{
  sb->err = errnum;
  if (errnum == EFBIG)
    set_error_code(EFBIG, "%s: longer than the limit of %zu bytes", sb->what ? sb->what : "text",
                   sb->max);
  else
    set_error(errnum, "%s: out of memory", sb->what ? sb->what : "text");
  return -1;
}

/* Make room for n more bytes and the NUL. */
static int reserve(struct strbuf *sb, size_t n)
{
  if (sb->err)
    return -1;
  if (n > sb->max || sb->len > sb->max - n)
    return fail(sb, EFBIG);
  if (sb->len + n < sb->cap)
    return 0;
  size_t cap = sb->cap ? sb->cap : 64;
  while (cap <= sb->len + n) {
    if (cap > SIZE_MAX / 2)
      return fail(sb, ENOMEM);
    cap *= 2;
  }
  char *p = realloc(sb->buf, cap);
  if (!p)
    return fail(sb, ENOMEM);
  sb->buf = p;
  sb->cap = cap;
  return 0;
}

int strbuf_append(struct strbuf *sb, const void *data, size_t len)
{
  if (reserve(sb, len) == -1)
    return -1;
  if (len)
    memcpy(sb->buf + sb->len, data, len);
  sb->len += len;
  sb->buf[sb->len] = 0;
  return 0;
}

int strbuf_appends(struct strbuf *sb, const char *s)
{
  return strbuf_append(sb, s, strlen(s));
}

int strbuf_appendf(struct strbuf *sb, const char *fmt, ...)
{
  va_list ap;
  if (sb->err)
    return -1;
  va_start(ap, fmt);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n < 0)
    return fail(sb, errno ? errno : EINVAL);
  if (reserve(sb, (size_t)n) == -1)
    return -1;
  va_start(ap, fmt);
  vsnprintf(sb->buf + sb->len, sb->cap - sb->len, fmt, ap);
  va_end(ap);
  sb->len += (size_t)n;
  return 0;
}

char *strbuf_take(struct strbuf *sb, size_t *len)
{
  if (sb->err) {
    int errnum = sb->err;
    strbuf_free(sb);
    fail(sb, errnum);
    sb->err = 0;
    return NULL;
  }
  if (reserve(sb, 0) == -1)
    return NULL;
  sb->buf[sb->len] = 0;
  char *s = sb->buf;
  if (len)
    *len = sb->len;
  sb->buf = NULL;
  sb->len = sb->cap = 0;
  return s;
}

void strbuf_free(struct strbuf *sb)
{
  free(sb->buf);
  sb->buf = NULL;
  sb->len = sb->cap = 0;
  sb->err = 0;
}
