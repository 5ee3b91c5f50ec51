/* Parsers of the numbers people type: durations, byte counts and
 * percentages, shared by the command line and the config file. */
#ifndef PL_PARSE_H
#define PL_PARSE_H

#include <stdint.h>

/* Parse an elapsed-time duration (--lock-wait, --grace): a number of
 * seconds, or numbers with units s, min, h, d and w, e.g. "90", "15min",
 * "1h30min", "7d". A bare "m" is refused: forget's --keep-within reads it as
 * months, as restic does. Returns 0, or -1. */
int parse_duration(const char *s, int64_t *seconds);

/* Parse a percentage, 0 to 100, with an optional '%'. Returns 0, or -1. */
int parse_percent(const char *s, unsigned *out);

/* Parse a byte count with an optional K/M/G/T (binary) suffix, optionally
 * followed by "i" and "B" ("16M", "16MiB"). Returns 0, or -1. */
int parse_size(const char *s, uint64_t *out);

#endif
