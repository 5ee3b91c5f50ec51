/* The pack writer: gathers chunks into packs of about 16 MiB, seals each
 * with its trailer and stores it from uploader threads, then points the
 * chunks' index entries at it. Memory is bounded: one pack being filled,
 * one waiting, one per uploader. */
#ifndef PL_PACK_WRITER_H
#define PL_PACK_WRITER_H

#include <stdint.h>

#include "chunk-index.h"

struct store;
struct pack_writer;

/* Most uploader threads pack_writer_new accepts. */
#define PACK_WRITER_MAX_UPLOADERS 16

/* Start nuploaders (1 to PACK_WRITER_MAX_UPLOADERS) uploader threads that
 * store packs in s and record them in ix (under ix->lock); keys (NULL in a
 * clear repository) seal each pack's trailer; chunks come sealed. s, ix and
 * keys are borrowed until pack_writer_free. Returns NULL with the error set; else
 * the caller frees with pack_writer_free. */
struct repo_keys;
struct pack_writer *pack_writer_new(struct store *s, struct chunk_index *ix,
                                    const struct repo_keys *keys, int nuploaders);

/* Append one chunk (stored_len bytes at data, copied; raw_len before
 * compression) to the open pack; a full pack is queued for upload, waiting
 * while the queue is full. Thread-safe. The chunk's index slot must exist:
 * the uploader fills it in once its pack is stored. Returns -1 with this
 * thread's error set, which is the first upload's error if one failed. */
int pack_writer_add(struct pack_writer *pw, const uint8_t h[HASH_LEN], uint8_t type, uint8_t comp,
                    const void *data, uint32_t stored_len, uint32_t raw_len);

/* Queue the open pack, if any, for upload. Thread-safe; same errors. */
int pack_writer_flush(struct pack_writer *pw);

/* Nonzero once an upload has failed: callers producing chunks may stop. */
int pack_writer_failed(const struct pack_writer *pw);

/* Flush, then wait for every upload. Returns 0 when every pack is stored
 * and indexed, else -1 with the first failure's error set on this thread.
 * Call once, from the thread that owns pw, after the last add. */
int pack_writer_finish(struct pack_writer *pw);

/* Stop the uploaders and free pw. Without pack_writer_finish, packs not
 * yet stored are dropped (an upload in flight completes). NULL is a no-op. */
void pack_writer_free(struct pack_writer *pw);

#endif
