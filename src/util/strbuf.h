/* A growable string with a size cap, for building text objects, requests
 * and messages without asprintf chains. Not thread-safe: one owner. */
#ifndef PL_STRBUF_H
#define PL_STRBUF_H

#include <stddef.h>

struct strbuf {
  char *buf; /* NUL-terminated once anything is appended; owned */
  size_t len, cap;
  size_t max;       /* appends that would make len exceed max fail */
  const char *what; /* names the text in messages; borrowed */
  int err;          /* the errno of the first failed append, 0 if none */
};

/* An empty buffer of at most max bytes (not counting the NUL). */
#define STRBUF_INIT(max_, what_)                                                                   \
  {                                                                                                \
    .max = (max_), .what = (what_)                                                                 \
  }

void strbuf_init(struct strbuf *sb, size_t max, const char *what);

/* Append len bytes of data / a printf-formatted text. Return 0, or -1 with
 * the error set (EFBIG beyond the cap, naming what and the cap; ENOMEM).
 * A failure is sticky: later appends do nothing and return -1, so a caller
 * may append many times and check once, at strbuf_take. */
int strbuf_append(struct strbuf *sb, const void *data, size_t len);
int strbuf_appends(struct strbuf *sb, const char *s);
int strbuf_appendf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Take the text (never NULL when it succeeds, "" if nothing was appended);
 * *len (if not NULL) receives its length. Caller frees with free(). The
 * buffer is left empty and reusable. After a failed append, frees the text,
 * sets the error again and returns NULL. */
char *strbuf_take(struct strbuf *sb, size_t *len);

/* Free the text and reset to empty (keeping max and what). */
void strbuf_free(struct strbuf *sb);

#endif
