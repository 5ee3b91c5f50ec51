/* Per-thread error message, set once at the point of failure and read by the
 * command line (libnbd's set_error / nbd_get_error idiom). */
#ifndef PL_ERROR_H
#define PL_ERROR_H

/* Record errnum (0 for none) and a formatted message for this thread. When
 * errnum is non-zero, ": strerror(errnum)" is appended. Preserves errno. */
void set_error(int errnum, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Like set_error, but the message says it all: errnum is recorded for
 * callers that test get_errno() and no strerror text is appended. */
void set_error_code(int errnum, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prepend "prefix: " to this thread's message, keeping its errno. For callers
 * that add context (a file name, a snapshot id) to a lower layer's failure. */
void prefix_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Set this thread's message and errno verbatim, e.g. to carry a worker
 * thread's failure to the thread that reports it. */
void set_error_msg(int errnum, const char *msg);

/* The last message set on this thread; borrowed until the next set_error. */
const char *get_error(void);

/* The errno recorded with the last message (0 if none). */
int get_errno(void);

#endif
