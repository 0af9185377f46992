/*
 * A small JSON writer into the caller's buffer, for the hot replies and audit texts that would
 * otherwise build a jansson tree only to dump it. Its output is byte for byte what json_dumps
 * gives for the same values with JSON_COMPACT (keys in the order written; write them sorted
 * where JSON_SORT_KEYS was used), and with JSON_ENSURE_ASCII when the writer is made with
 * JSONW_ASCII: strings must be valid UTF-8 (NUL allowed with a length), escaped as jansson does.
 */
#ifndef JSONW_H
#define JSONW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSONW_ASCII 1u      /* every code point past 0x7F as \uXXXX (JSON_ENSURE_ASCII) */
#define JSONW_MAX_DEPTH 16u /* nested objects and arrays */

struct jsonw {
    char *buf;
    size_t cap;
    size_t len;
    unsigned flags;
    unsigned depth;
    bool failed;                 /* out of room, invalid UTF-8 or bad nesting */
    bool first[JSONW_MAX_DEPTH]; /* no member written yet at this depth */
    bool after_key;              /* a key was written: its value comes next, no comma */
};

/* Starts writing into buf (cap bytes, room for the terminating NUL included). */
void jsonw_init(struct jsonw *w, char *buf, size_t cap, unsigned flags);

void jsonw_object_begin(struct jsonw *w);
void jsonw_object_end(struct jsonw *w);
void jsonw_array_begin(struct jsonw *w);
void jsonw_array_end(struct jsonw *w);
/* An object member's key (NUL-terminated); its value is the next thing written. */
void jsonw_key(struct jsonw *w, const char *key);
void jsonw_string(struct jsonw *w, const char *s, size_t len);
void jsonw_int(struct jsonw *w, int64_t v);
/* The decimal text of v into buf (no NUL): its length, at most JSONW_INT_MAX (20 digits and a
 * sign). */
#define JSONW_INT_MAX 21
size_t jsonw_int_text(char buf[JSONW_INT_MAX], int64_t v);
void jsonw_bool(struct jsonw *w, bool v);
void jsonw_null(struct jsonw *w);
/* Raw bytes appended as they are (a separator the caller needs, such as a final newline). */
void jsonw_raw(struct jsonw *w, const char *s, size_t len);

/* The text's length, NUL-terminated in buf; 0 when anything failed (buf then holds no text),
 * or when objects or arrays are left open. */
size_t jsonw_finish(struct jsonw *w);

#endif
