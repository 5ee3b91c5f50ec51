/* A small QMP client (the QEMU Machine Protocol, JSON over a Unix socket)
 * for qemu-storage-daemon and QEMU: capability negotiation and synchronous
 * commands; events are skipped. Replies are parsed with json-c and are
 * untrusted. A connection is used by one thread at a time. */
#ifndef PL_QMP_H
#define PL_QMP_H

#include <stddef.h>

struct json_object;
struct qmp;

/* Connect to the QMP socket at path and negotiate capabilities. Returns
 * NULL with the error set. Caller frees with qmp_free. */
struct qmp *qmp_connect(const char *path);
void qmp_free(struct qmp *q);

/* Run cmd with args (a JSON object; takes ownership; may be NULL) and wait
 * for its reply. On success *ret (when not NULL) receives the "return"
 * value, which the caller releases with json_object_put. An error reply
 * sets the error "QMP cmd: description" and returns -1. */
int qmp_execute(struct qmp *q, const char *cmd, struct json_object *args, struct json_object **ret);

/* Parse one QMP message of len bytes (untrusted). Returns 0 for a reply with
 * id (its "return" value, or NULL for an error reply, goes to *ret; the
 * caller releases it), 1 for a message to skip (greeting, event, a reply to
 * another id), or -1 with the error set when it is malformed or an error
 * reply for id. cmd names the command in messages. */
int qmp_parse_message(const char *buf, size_t len, long long id, const char *cmd,
                      struct json_object **ret);

#endif
