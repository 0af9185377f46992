/*
 * UTF-8 checks for text that came from a client and goes back out in JSON: jansson refuses
 * invalid UTF-8, so such text is cleaned first rather than turning a 400 into a 500.
 */
#ifndef UTF8_H
#define UTF8_H

#include <stddef.h>

/* Length of the valid UTF-8 sequence at s (1..4), or 0 when it is not one (overlong forms,
 * surrogates and code points past U+10FFFF are not). n > 0 is the bytes available. */
size_t utf8_seq_len(const unsigned char *s, size_t n);

/* Copies the NUL-terminated in to out (cap >= 4 bytes), each invalid byte replaced with U+FFFD,
 * truncated on a character boundary to fit; always NUL-terminates. Returns the length. */
size_t utf8_clean(const char *in, char *out, size_t cap);

#endif
