/*
 * Unsigned decimal numbers in protocol text (notification payloads, sizes in settings, header
 * values, query parameters): the one parser the daemon's parts share. No sign, no space, no
 * locale; bounded; pure, no allocation.
 */
#ifndef DECIMAL_H
#define DECIMAL_H

#include <stddef.h>
#include <stdint.h>

#define DECIMAL_CANONICAL 1u /* no leading zero (but "0" itself) */

/* How many decimal digits ('0'-'9') s[0..n) starts with. */
size_t decimal_span(const char *s, size_t n);

/* The decimal number s[0..n) into *out: 0, or -1 when n is 0, a byte is not a digit, the value
 * is over max, or (flags DECIMAL_CANONICAL) it has a leading zero. *out is set only on 0. */
int decimal_parse(const char *s, size_t n, uint64_t max, unsigned flags, uint64_t *out);

#endif
