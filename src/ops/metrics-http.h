/* The daemon's metrics endpoint: GET /metrics over HTTP (libmicrohttpd,
 * one internal thread) serving the latest metrics text the daemon set. */
#ifndef PL_OPS_METRICS_HTTP_H
#define PL_OPS_METRICS_HTTP_H

struct metrics_http;

/* Listen on listen ("PORT" for 127.0.0.1, "ADDR:PORT", "[ADDR6]:PORT").
 * Returns the server (free with metrics_http_free), or NULL with the error
 * set. */
struct metrics_http *metrics_http_start(const char *listen);
/* Serve text from now on (copied). Returns 0 or -1. */
int metrics_http_set(struct metrics_http *m, const char *text);
void metrics_http_free(struct metrics_http *m); /* NULL: no-op */

/* Check a listen value without listening: 0, or -1 with the error set. */
int metrics_http_parse(const char *listen, void *sockaddr_storage, unsigned *len);

#endif
