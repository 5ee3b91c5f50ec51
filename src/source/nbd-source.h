/* Helpers shared by the NBD source and the QEMU changed-block tracking code:
 * connecting a libnbd handle with meta contexts, and walking block status
 * (libnbd 1.14 has no 64-bit block status, so requests stay under 4 GiB). */
#ifndef PL_NBD_SOURCE_H
#define PL_NBD_SOURCE_H

#include <stdint.h>

#include "source.h"

struct nbd_handle;

/* Connect to uri read-only, asking for the meta contexts in the
 * NULL-terminated list contexts (may be NULL). Returns a handle the caller
 * closes with nbd_close, or NULL with the error set. */
struct nbd_handle *nbd_source_connect(const char *uri, const char *const *contexts);

/* The same, giving up after timeout_ms (ETIMEDOUT) when the server does not
 * complete the handshake; a negative timeout waits for ever. */
struct nbd_handle *nbd_source_connect_timeout(const char *uri, const char *const *contexts,
                                              int timeout_ms);

/* Report, in increasing order and merged when adjacent, the extents of
 * [off, off + len) whose flags in meta context ctx satisfy
 * (flags & mask) == want. name is used in messages. Returns 0 or -1. */
int nbd_source_walk(struct nbd_handle *h, const char *ctx, uint64_t off, uint64_t len,
                    uint32_t mask, uint32_t want, extent_cb cb, void *opaque, const char *name);

/* nbd_source_open, with every connection also asking for meta context
 * extra_ctx (may be NULL). One connection serves both the data and the
 * context, which matters with qemu-nbd's default of one client at a time. */
struct source *nbd_source_open_ctx(const char *uri, const char *extra_ctx);

/* Walk meta context ctx over the whole of s (an NBD source opened with it)
 * as nbd_source_walk does. Returns 0; 1 when the server does not offer ctx;
 * or -1 with the error set. */
int nbd_source_meta_extents(struct source *s, const char *ctx, uint32_t mask, uint32_t want,
                            extent_cb cb, void *opaque);

#endif
