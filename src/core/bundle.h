/* Bundles: one local file holding many immutable repository objects by
 * name, so that a cache of 10,000 snapshot or index objects is one read,
 * not 10,000 (docs/FORMAT.md, Local cache). A bundle is a cache: a damaged
 * one is ignored and rebuilt, and every object taken from it is checked
 * against its name before use. */
#ifndef PL_BUNDLE_H
#define PL_BUNDLE_H

#include <stddef.h>
#include <stdint.h>

#include "../util/hash.h"
#include "../util/vec.h"

#define BUNDLE_MAGIC "PLBUNDLE1\n"
#define BUNDLE_MAGIC_LEN 10

struct bundle_entry {
  uint8_t name[HASH_LEN]; /* the SHA-256 of the object's bytes, as its key names it */
  const uint8_t *data;    /* in the decoded buffer, or owned (see bundle); NULL: dropped */
  uint32_t len;
};

struct bundle {
  uint8_t *buf;           /* the file's bytes, owned: malloc'd, or mapped */
  size_t mapped;          /* 0, or the length of buf's read-only mapping */
  struct bundle_entry *e; /* sorted by name, unique; data points into buf */
  size_t n;
  VEC(struct bundle_entry) added; /* objects read from the store this run; data owned */
};

/* Decode a bundle file (len bytes at buf, which b takes over and frees).
 * Checks the magic, the bounds of every entry, the order of the names and
 * the checksum of the whole; returns 0, or -1 with the error set (b is then
 * empty). Does not check objects against their names: bundle_find does. */
int bundle_decode(uint8_t *buf, size_t len, struct bundle *b);
/* The same for a read-only mapping (util/fileio.h, map_file_at), which b
 * takes over and unmaps. */
int bundle_decode_mapped(uint8_t *buf, size_t len, struct bundle *b);

/* The object named name, if the decoded file holds it and its bytes hash
 * to its name; else NULL. An entry that fails the check is dropped (its
 * data set to NULL). */
const struct bundle_entry *bundle_find(struct bundle *b, const uint8_t name[HASH_LEN]);

/* The entry named name, unchecked: for files of derived records (the
 * snapshot summaries), whose bytes are not what the name hashes. */
const struct bundle_entry *bundle_lookup(const struct bundle *b, const uint8_t name[HASH_LEN]);

/* Keep a copy of an object read from the store, for the next save. */
int bundle_add(struct bundle *b, const uint8_t name[HASH_LEN], const void *data, size_t len);

/* Encode the n objects e (any order; duplicates kept once) as a bundle
 * file. Returns a malloc'd buffer of *len bytes, or NULL with the error set. */
uint8_t *bundle_encode(struct bundle_entry *e, size_t n, size_t *len);

void bundle_free(struct bundle *b);

#endif
