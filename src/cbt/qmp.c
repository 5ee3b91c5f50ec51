/* QMP client: one Unix socket, one command at a time, replies matched by
 * id. Messages end with a newline; each is capped so that a misbehaving
 * peer cannot make us allocate without bound. */
#define _GNU_SOURCE
#include "qmp.h"

#include <errno.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../util/error.h"

#define QMP_MAX_MESSAGE (16u << 20)
#define QMP_TIMEOUT_MS 120000

struct qmp {
  int fd;
  char *path;
  char *buf; /* received, not yet consumed */
  size_t len, cap;
  long long next_id;
};

int qmp_parse_message(const char *buf, size_t len, long long id, const char *cmd,
                      struct json_object **ret)
{
  struct json_tokener *tok = json_tokener_new_ex(64);
  struct json_object *root = NULL, *o;
  int rc = -1;
  *ret = NULL;
  if (!tok) {
    set_error(ENOMEM, "json_tokener_new");
    return -1;
  }
  if (len > QMP_MAX_MESSAGE) {
    set_error(EPROTO, "QMP %s: reply too large", cmd);
    goto out;
  }
  root = json_tokener_parse_ex(tok, buf, (int)len);
  if (!root || json_tokener_get_error(tok) != json_tokener_success ||
      !json_object_is_type(root, json_type_object)) {
    set_error(EPROTO, "QMP %s: the server sent something that is not a JSON object", cmd);
    goto out;
  }
  for (size_t i = json_tokener_get_parse_end(tok); i < len; i++) {
    if (buf[i] != ' ' && buf[i] != '\t' && buf[i] != '\r' && buf[i] != '\n') {
      set_error(EPROTO, "QMP %s: the server sent more than one JSON value in a message", cmd);
      goto out;
    }
  }
  if (json_object_object_get_ex(root, "QMP", NULL) ||
      json_object_object_get_ex(root, "event", NULL)) {
    rc = 1;
    goto out;
  }
  if (!json_object_object_get_ex(root, "id", &o) || !json_object_is_type(o, json_type_int) ||
      json_object_get_int64(o) != id) {
    rc = 1; /* a reply to something else */
    goto out;
  }
  if (json_object_object_get_ex(root, "return", &o)) {
    *ret = json_object_get(o);
    rc = 0;
    goto out;
  }
  if (json_object_object_get_ex(root, "error", &o) && json_object_is_type(o, json_type_object)) {
    struct json_object *d = NULL;
    const char *desc = "(no description)";
    if (json_object_object_get_ex(o, "desc", &d) && json_object_is_type(d, json_type_string))
      desc = json_object_get_string(d);
    set_error(0, "QMP %s: %s", cmd, desc);
    goto out;
  }
  set_error(EPROTO, "QMP %s: a reply with neither return nor error", cmd);
out:
  json_object_put(root);
  json_tokener_free(tok);
  return rc;
}

static int qmp_send(struct qmp *q, const char *text)
{
  size_t len = strlen(text), off = 0;
  while (off < len) {
    ssize_t n = send(q->fd, text + off, len - off, MSG_NOSIGNAL);
    if (n == -1 && errno == EINTR)
      continue;
    if (n == -1) {
      set_error(errno, "QMP %s: send", q->path);
      return -1;
    }
    off += (size_t)n;
  }
  return 0;
}

/* Take the next complete message (up to a newline) out of the buffer, reading
 * more as needed. *msg points into q->buf and is valid until the next call. */
static int qmp_next_message(struct qmp *q, char **msg, size_t *mlen, size_t *consumed)
{
  for (;;) {
    char *nl = q->len ? memchr(q->buf, '\n', q->len) : NULL;
    if (nl) {
      *msg = q->buf;
      *mlen = (size_t)(nl - q->buf);
      *consumed = *mlen + 1;
      return 0;
    }
    if (q->len >= QMP_MAX_MESSAGE) {
      set_error(EPROTO, "QMP %s: a message longer than %u bytes", q->path, QMP_MAX_MESSAGE);
      return -1;
    }
    if (q->cap - q->len < 65536) {
      size_t ncap = q->cap ? q->cap * 2 : 65536 * 2;
      char *nb = realloc(q->buf, ncap);
      if (!nb) {
        set_error(errno, "realloc");
        return -1;
      }
      q->buf = nb;
      q->cap = ncap;
    }
    struct pollfd pfd = {.fd = q->fd, .events = POLLIN};
    int pr = poll(&pfd, 1, QMP_TIMEOUT_MS);
    if (pr == -1 && errno == EINTR)
      continue;
    if (pr == -1) {
      set_error(errno, "QMP %s: poll", q->path);
      return -1;
    }
    if (pr == 0) {
      set_error(ETIMEDOUT, "QMP %s: no reply within %d s", q->path, QMP_TIMEOUT_MS / 1000);
      return -1;
    }
    ssize_t n = recv(q->fd, q->buf + q->len, q->cap - q->len, 0);
    if (n == -1 && errno == EINTR)
      continue;
    if (n == -1) {
      set_error(errno, "QMP %s: recv", q->path);
      return -1;
    }
    if (n == 0) {
      set_error(ECONNRESET, "QMP %s: the server closed the connection", q->path);
      return -1;
    }
    q->len += (size_t)n;
  }
}

static void qmp_consume(struct qmp *q, size_t n)
{
  memmove(q->buf, q->buf + n, q->len - n);
  q->len -= n;
}

int qmp_execute(struct qmp *q, const char *cmd, struct json_object *args, struct json_object **ret)
{
  struct json_object *req = json_object_new_object(), *r = NULL;
  long long id = ++q->next_id;
  int rc = -1;
  if (ret)
    *ret = NULL;
  if (!req) {
    set_error(ENOMEM, "json");
    json_object_put(args);
    return -1;
  }
  json_object_object_add(req, "execute", json_object_new_string(cmd));
  if (args)
    json_object_object_add(req, "arguments", args);
  json_object_object_add(req, "id", json_object_new_int64(id));
  {
    const char *text = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN);
    char *line = NULL;
    if (!text || asprintf(&line, "%s\n", text) == -1) {
      set_error(ENOMEM, "json");
      goto out;
    }
    rc = qmp_send(q, line);
    free(line);
    if (rc == -1)
      goto out;
    rc = -1;
  }
  for (;;) {
    char *msg;
    size_t mlen, used;
    if (qmp_next_message(q, &msg, &mlen, &used) == -1)
      goto out;
    int pr = qmp_parse_message(msg, mlen, id, cmd, &r);
    qmp_consume(q, used);
    if (pr == 1)
      continue;
    if (pr == -1)
      goto out;
    break;
  }
  if (ret)
    *ret = r;
  else
    json_object_put(r);
  rc = 0;
out:
  json_object_put(req);
  return rc;
}

struct qmp *qmp_connect(const char *path)
{
  struct qmp *q = calloc(1, sizeof *q);
  struct sockaddr_un sa = {.sun_family = AF_UNIX};
  if (!q) {
    set_error(errno, "calloc");
    return NULL;
  }
  q->fd = -1;
  q->path = strdup(path);
  if (!q->path) {
    set_error(errno, "strdup");
    goto fail;
  }
  if (strlen(path) >= sizeof sa.sun_path) {
    set_error(ENAMETOOLONG, "QMP socket path %s", path);
    goto fail;
  }
  memcpy(sa.sun_path, path, strlen(path) + 1);
  q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (q->fd == -1) {
    set_error(errno, "socket");
    goto fail;
  }
  if (connect(q->fd, (struct sockaddr *)&sa, sizeof sa) == -1) {
    set_error(errno,
              "QMP %s: cannot connect (is qemu-storage-daemon or QEMU running with "
              "--chardev socket,path=%s,server=on?)",
              path, path);
    goto fail;
  }
  /* The greeting is skipped by qmp_execute like any other message. */
  if (qmp_execute(q, "qmp_capabilities", NULL, NULL) == -1)
    goto fail;
  return q;
fail:
  qmp_free(q);
  return NULL;
}

void qmp_free(struct qmp *q)
{
  if (!q)
    return;
  if (q->fd != -1)
    close(q->fd);
  free(q->path);
  free(q->buf);
  free(q);
}
