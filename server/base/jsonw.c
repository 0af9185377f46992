/*
 * The JSON writer (jsonw.h): appends into a fixed buffer and fails as a whole when it runs out
 * of room, so a caller checks once, at jsonw_finish. Escaping follows jansson's dump_string.
 */
#include "jsonw.h"

#include <string.h>

#include "utf8.h"

void jsonw_init(struct jsonw *w, char *buf, size_t cap, unsigned flags)
{
    w->buf = buf;
    w->cap = cap;
    w->len = 0;
    w->flags = flags;
    w->depth = 0;
    w->failed = cap == 0;
    w->first[0] = true;
    w->after_key = false;
}

static void put(struct jsonw *w, const char *s, size_t n)
{
    if (w->failed)
        return;
    if (n >= w->cap - w->len) { /* one byte stays for the NUL */
        w->failed = true;
        return;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
}

static void put_char(struct jsonw *w, char c)
{
    if (w->failed)
        return;
    if (w->cap - w->len < 2) {
        w->failed = true;
        return;
    }
    w->buf[w->len++] = c;
}

/* Before a value (or a key): the comma that separates it from the one before. */
static void separate(struct jsonw *w)
{
    if (w->after_key) {
        w->after_key = false;
        return;
    }
    if (!w->first[w->depth])
        put_char(w, ',');
    w->first[w->depth] = false;
}

static void open_level(struct jsonw *w, char c)
{
    separate(w);
    put_char(w, c);
    if (w->depth + 1 >= JSONW_MAX_DEPTH) {
        w->failed = true;
        return;
    }
    w->depth++;
    w->first[w->depth] = true;
}

static void close_level(struct jsonw *w, char c)
{
    if (w->depth == 0 || w->after_key) {
        w->failed = true;
        return;
    }
    w->depth--;
    put_char(w, c);
}

void jsonw_object_begin(struct jsonw *w)
{
    open_level(w, '{');
}

void jsonw_object_end(struct jsonw *w)
{
    close_level(w, '}');
}

void jsonw_array_begin(struct jsonw *w)
{
    open_level(w, '[');
}

void jsonw_array_end(struct jsonw *w)
{
    close_level(w, ']');
}

static const char hex_upper[] = "0123456789ABCDEF";

static void put_u16_escape(struct jsonw *w, unsigned v)
{
    char e[6] = {'\\',
                 'u',
                 hex_upper[(v >> 12) & 15],
                 hex_upper[(v >> 8) & 15],
                 hex_upper[(v >> 4) & 15],
                 hex_upper[v & 15]};
    put(w, e, sizeof e);
}

/* 1 for the bytes a string keeps as they are: printable ASCII but the quote and the backslash
 * (0x7F included, as jansson leaves it). */
static const unsigned char plain_byte[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x10 */
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x20 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x30 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x40 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, /* 0x50 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x60 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x70 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x80 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0x90 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xA0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xB0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xC0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xD0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xE0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* 0xF0 */
};

/* The string's escaped body, as jansson's dump_string writes it. */
static void put_string(struct jsonw *w, const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t run = 0; /* start of the bytes not yet copied */
    size_t i = 0;

    put_char(w, '"');
    while (i < len) {
        while (i < len && plain_byte[s[i]])
            i++;
        if (i == len)
            break;
        unsigned c = s[i];
        if (c >= 0x80) {
            size_t n = utf8_seq_len(s + i, len - i);
            if (n == 0) {
                w->failed = true;
                return;
            }
            if (!(w->flags & JSONW_ASCII)) {
                i += n;
                continue;
            }
            put(w, str + run, i - run);
            unsigned cp = c & (0x3fu >> (n - 1));
            for (size_t k = 1; k < n; k++)
                cp = (cp << 6) | (s[i + k] & 0x3fu);
            if (cp < 0x10000) {
                put_u16_escape(w, cp);
            } else {
                cp -= 0x10000;
                put_u16_escape(w, 0xd800 | ((cp & 0xffc00) >> 10));
                put_u16_escape(w, 0xdc00 | (cp & 0x3ff));
            }
            i += n;
            run = i;
            continue;
        }
        put(w, str + run, i - run);
        switch (c) {
        case '"':
            put(w, "\\\"", 2);
            break;
        case '\\':
            put(w, "\\\\", 2);
            break;
        case '\b':
            put(w, "\\b", 2);
            break;
        case '\f':
            put(w, "\\f", 2);
            break;
        case '\n':
            put(w, "\\n", 2);
            break;
        case '\r':
            put(w, "\\r", 2);
            break;
        case '\t':
            put(w, "\\t", 2);
            break;
        default:
            put_u16_escape(w, c);
            break;
        }
        i++;
        run = i;
    }
    put(w, str + run, i - run);
    put_char(w, '"');
}

void jsonw_key(struct jsonw *w, const char *key)
{
    if (w->depth == 0 || w->after_key) {
        w->failed = true;
        return;
    }
    separate(w);
    put_string(w, key, strlen(key));
    put_char(w, ':');
    w->after_key = true;
}

void jsonw_string(struct jsonw *w, const char *s, size_t len)
{
    separate(w);
    if (s == NULL) {
        w->failed = true;
        return;
    }
    put_string(w, s, len);
}

size_t jsonw_int_text(char buf[JSONW_INT_MAX], int64_t v)
{
    char digits[JSONW_INT_MAX];
    size_t n = sizeof digits;
    /* The magnitude as unsigned: -INT64_MIN does not fit an int64_t. */
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

    do {
        digits[--n] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        digits[--n] = '-';
    memcpy(buf, digits + n, sizeof digits - n);
    return sizeof digits - n;
}

void jsonw_int(struct jsonw *w, int64_t v)
{
    char digits[JSONW_INT_MAX];
    size_t n = jsonw_int_text(digits, v);

    separate(w);
    put(w, digits, n);
}

void jsonw_bool(struct jsonw *w, bool v)
{
    separate(w);
    if (v)
        put(w, "true", 4);
    else
        put(w, "false", 5);
}

void jsonw_null(struct jsonw *w)
{
    separate(w);
    put(w, "null", 4);
}

void jsonw_raw(struct jsonw *w, const char *s, size_t len)
{
    put(w, s, len);
}

size_t jsonw_finish(struct jsonw *w)
{
    if (w->failed || w->depth != 0 || w->after_key) {
        if (w->cap > 0)
            w->buf[0] = '\0';
        return 0;
    }
    w->buf[w->len] = '\0';
    return w->len;
}
