/* Lists of byte extents on a disk: parsed from a changed-area list, or
 * produced by changed-block tracking. */
#ifndef PL_EXTENT_LIST_H
#define PL_EXTENT_LIST_H

#include <stddef.h>
#include <stdint.h>

#include "../util/vec.h"

struct extent {
  uint64_t off, len;
};

struct extent_list {
  VEC(struct extent) e; /* after extent_list_normalize: sorted, disjoint, non-adjacent */
};

/* Append [off, off + len); len 0 is ignored. Returns 0 or -1. */
int extent_list_add(struct extent_list *l, uint64_t off, uint64_t len);

/* Sort and merge overlapping or adjacent extents. */
void extent_list_normalize(struct extent_list *l);

/* Parse the text VMware's QueryChangedDiskAreas | Format-Table
 * -HideTableHeaders prints: one "offset length" pair of decimal byte counts
 * per line, surrounded by any blanks, in any order, possibly overlapping;
 * blank lines and CRLF allowed. Every extent must end within disk_size.
 * name is used in messages ("NAME:LINE: ..."). The result is normalized.
 * Returns 0, or -1 with the error set and l left empty. */
int extent_list_parse(struct extent_list *l, const char *text, size_t len, uint64_t disk_size,
                      const char *name);

/* Read FILE ("-" for standard input, at most 256 MiB) and parse it. */
int extent_list_load(struct extent_list *l, const char *file, uint64_t disk_size);

void extent_list_free(struct extent_list *l);

#endif
