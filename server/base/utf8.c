/*
 * UTF-8 validation and cleaning of client text that is echoed in JSON replies.
 */
#include "utf8.h"

#include <string.h>

size_t utf8_seq_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned min;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    unsigned cp = c & (0x3fu >> (len - 1));
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3fu);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

size_t utf8_clean(const char *in, char *out, size_t cap)
{
    static const char replacement[] = "\xef\xbf\xbd";
    const unsigned char *s = (const unsigned char *)in;
    size_t n = strlen(in), o = 0;

    for (size_t i = 0; i < n;) {
        size_t l = utf8_seq_len(s + i, n - i);
        const char *piece = l > 0 ? in + i : replacement;
        size_t piece_len = l > 0 ? l : 3;
        if (o + piece_len + 1 > cap)
            break;
        memcpy(out + o, piece, piece_len);
        o += piece_len;
        i += l > 0 ? l : 1;
    }
    out[o] = '\0';
    return o;
}
