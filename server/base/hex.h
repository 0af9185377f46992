/*
 * Hexadecimal digits, both ways: the one decoder and the one lower-case encoder the daemon's
 * parts share (key files, percent-escapes, MACs and ids in replies). Pure; no allocation.
 */
#ifndef HEX_H
#define HEX_H

#include <stddef.h>
#include <stdint.h>

/* 0..15 for '0'-'9', 'a'-'f', 'A'-'F'; -1 for anything else. */
int hex_digit_value(char c);

/* Writes the 2 * n lower-case hex digits of b and a NUL into out (2 * n + 1 bytes). */
void hex_encode(const uint8_t *b, size_t n, char *out);

#endif
