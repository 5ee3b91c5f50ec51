/* GET /metrics with libmicrohttpd. The daemon's loop sets the text after
 * every report; the server's thread copies it under a mutex per request. */
#include "metrics-http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "util/error.h"
#include "util/parse.h"

struct metrics_http {
  struct MHD_Daemon *d;
  pthread_mutex_t lock;
  char *text;
};

int metrics_http_parse(const char *listen, void *ss, unsigned *len)
{
  char host[128] = "127.0.0.1";
  const char *port = listen;
  const char *colon = strrchr(listen, ':');
  if (colon) {
    size_t n = (size_t)(colon - listen);
    if (listen[0] == '[' && n >= 2 && listen[n - 1] == ']')
      snprintf(host, sizeof host, "%.*s", (int)(n - 2), listen + 1);
    else
      snprintf(host, sizeof host, "%.*s", (int)n, listen);
    port = colon + 1;
  }
  uint64_t p;
  if (parse_size(port, &p) == -1 || p == 0 || p > 65535 || strpbrk(port, "kKmMgGtT")) {
    set_error_code(EINVAL, "'%s' is not a listen address: give PORT, ADDR:PORT or [ADDR6]:PORT",
                   listen);
    return -1;
  }
  memset(ss, 0, sizeof(struct sockaddr_storage));
  struct sockaddr_in *a4 = ss;
  struct sockaddr_in6 *a6 = ss;
  if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)p);
    *len = sizeof *a4;
  } else if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)p);
    *len = sizeof *a6;
  } else {
    set_error_code(EINVAL, "'%s' in '%s' is not an IP address", host, listen);
    return -1;
  }
  return 0;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_len, void **con_cls)
{
  struct metrics_http *m = cls;
  (void)version;
  (void)upload;
  (void)upload_len;
  (void)con_cls;
  struct MHD_Response *resp;
  unsigned status = MHD_HTTP_OK;
  if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
    status = MHD_HTTP_METHOD_NOT_ALLOWED;
    resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
  } else if (strcmp(url, "/metrics") != 0) {
    static const char msg[] = "pilotlight serves /metrics\n";
    status = MHD_HTTP_NOT_FOUND;
    resp = MHD_create_response_from_buffer(sizeof msg - 1, (void *)msg, MHD_RESPMEM_PERSISTENT);
  } else {
    pthread_mutex_lock(&m->lock);
    const char *t = m->text ? m->text : "";
    resp = MHD_create_response_from_buffer(strlen(t), (void *)t, MHD_RESPMEM_MUST_COPY);
    pthread_mutex_unlock(&m->lock);
    if (resp)
      MHD_add_response_header(resp, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
  }
  if (!resp)
    return MHD_NO;
  enum MHD_Result r = MHD_queue_response(conn, status, resp);
  MHD_destroy_response(resp);
  return r;
}

struct metrics_http *metrics_http_start(const char *listen)
{
  struct sockaddr_storage ss;
  unsigned len;
  if (metrics_http_parse(listen, &ss, &len) == -1)
    return NULL;
  struct metrics_http *m = calloc(1, sizeof *m);
  if (!m) {
    set_error(ENOMEM, "metrics endpoint");
    return NULL;
  }
  pthread_mutex_init(&m->lock, NULL);
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
  if (ss.ss_family == AF_INET6)
    flags |= MHD_USE_IPv6;
  uint16_t port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                 : ((struct sockaddr_in *)&ss)->sin_port);
  m->d = MHD_start_daemon(flags, port, NULL, NULL, answer, m, MHD_OPTION_SOCK_ADDR,
                          (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT, 16U,
                          MHD_OPTION_CONNECTION_TIMEOUT, 10U, MHD_OPTION_END);
  if (!m->d) {
    set_error_code(EADDRINUSE,
                   "cannot listen on %s for metrics (in use, or not an address of "
                   "this host): change [metrics] listen",
                   listen);
    metrics_http_free(m);
    return NULL;
  }
  return m;
}

int metrics_http_set(struct metrics_http *m, const char *text)
{
  char *copy = strdup(text);
  if (!copy) {
    set_error(ENOMEM, "metrics endpoint");
    return -1;
  }
  pthread_mutex_lock(&m->lock);
  free(m->text);
  m->text = copy;
  pthread_mutex_unlock(&m->lock);
  return 0;
}

void metrics_http_free(struct metrics_http *m)
{
  if (!m)
    return;
  if (m->d)
    MHD_stop_daemon(m->d);
  pthread_mutex_destroy(&m->lock);
  free(m->text);
  free(m);
}
