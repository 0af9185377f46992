/*
 * UserSig decoding: undo the URL-safe base64, inflate with a bounded output, parse the JSON
 * document with a small strict parser (the codec uses no JSON library) and fill the decoded
 * token's fields. Every input is bounded. The checks are usersig_verify.c's.
 */
#define OPENSSL_SUPPRESS_DEPRECATED
#include "usersig.h"
#include "usersig_int.h"

#include <stdbool.h>
#include <string.h>
#include <zlib.h>

#define JSON_MAX_DEPTH 16
#define JSON_MAX_STRING 1024

/* ---- a strict JSON reader for the token document ----------------------------------------- */

struct json_reader {
    const char *p, *end;
    int depth;
};

static void skip_ws(struct json_reader *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* Reads a string at r->p (which is at '"') into buf (cap bytes, NUL-terminated); -1 on error or
 * overflow. buf may be NULL to skip. */
static int read_string(struct json_reader *r, char *buf, size_t cap, size_t *len)
{
    size_t n = 0;
    if (r->p >= r->end || *r->p != '"')
        return -1;
    r->p++;
    for (;;) {
        if (r->p >= r->end)
            return -1;
        unsigned char c = (unsigned char)*r->p++;
        char tmp[4];
        size_t tn = 0;
        if (c == '"')
            break;
        if (c < 0x20)
            return -1;
        if (c != '\\') {
            tmp[tn++] = (char)c;
        } else {
            if (r->p >= r->end)
                return -1;
            char e = *r->p++;
            switch (e) {
            case '"':
            case '\\':
            case '/':
                tmp[tn++] = e;
                break;
            case 'b':
                tmp[tn++] = '\b';
                break;
            case 'f':
                tmp[tn++] = '\f';
                break;
            case 'n':
                tmp[tn++] = '\n';
                break;
            case 'r':
                tmp[tn++] = '\r';
                break;
            case 't':
                tmp[tn++] = '\t';
                break;
            case 'u': {
                unsigned cp, lo;
                if (r->end - r->p < 4 || hex4(r->p, &cp) != 0)
                    return -1;
                r->p += 4;
                if (cp >= 0xdc00 && cp <= 0xdfff)
                    return -1;
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    if (r->end - r->p < 6 || r->p[0] != '\\' || r->p[1] != 'u' ||
                        hex4(r->p + 2, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff)
                        return -1;
                    r->p += 6;
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                }
                if (cp < 0x80) {
                    tmp[tn++] = (char)cp;
                } else if (cp < 0x800) {
                    tmp[tn++] = (char)(0xc0 | cp >> 6);
                    tmp[tn++] = (char)(0x80 | (cp & 0x3f));
                } else if (cp < 0x10000) {
                    tmp[tn++] = (char)(0xe0 | cp >> 12);
                    tmp[tn++] = (char)(0x80 | ((cp >> 6) & 0x3f));
                    tmp[tn++] = (char)(0x80 | (cp & 0x3f));
                } else {
                    tmp[tn++] = (char)(0xf0 | cp >> 18);
                    tmp[tn++] = (char)(0x80 | ((cp >> 12) & 0x3f));
                    tmp[tn++] = (char)(0x80 | ((cp >> 6) & 0x3f));
                    tmp[tn++] = (char)(0x80 | (cp & 0x3f));
                }
                break;
            }
            default:
                return -1;
            }
        }
        if (buf != NULL) {
            if (n + tn + 1 > cap)
                return -1;
            memcpy(buf + n, tmp, tn);
        }
        n += tn;
    }
    if (buf != NULL)
        buf[n] = '\0';
    if (len != NULL)
        *len = n;
    return 0;
}

/* A JSON number that must be a non-negative integer up to max. Returns 0, -1 when not a number,
 * -2 when a number but not such an integer. */
static int read_uint(struct json_reader *r, uint64_t max, uint64_t *out)
{
    const char *s = r->p;
    uint64_t v = 0;
    int digits = 0, overflow = 0;
    if (s < r->end && *s == '-') {
        s++;
        if (s >= r->end || *s < '0' || *s > '9')
            return -1;
        overflow = 1; /* negative */
    }
    if (s >= r->end || *s < '0' || *s > '9')
        return -1;
    if (*s == '0' && s + 1 < r->end && s[1] >= '0' && s[1] <= '9')
        return -1; /* leading zero */
    while (s < r->end && *s >= '0' && *s <= '9') {
        if (v > (max - (uint64_t)(*s - '0')) / 10)
            overflow = 1;
        else
            v = v * 10 + (uint64_t)(*s - '0');
        s++;
        digits++;
    }
    int fraction = 0;
    if (s < r->end && *s == '.') {
        fraction = 1;
        s++;
        if (s >= r->end || *s < '0' || *s > '9')
            return -1;
        while (s < r->end && *s >= '0' && *s <= '9')
            s++;
    }
    if (s < r->end && (*s == 'e' || *s == 'E')) {
        fraction = 1;
        s++;
        if (s < r->end && (*s == '+' || *s == '-'))
            s++;
        if (s >= r->end || *s < '0' || *s > '9')
            return -1;
        while (s < r->end && *s >= '0' && *s <= '9')
            s++;
    }
    r->p = s;
    if (overflow || fraction || digits == 0)
        return -2;
    *out = v;
    return 0;
}

static int skip_value(struct json_reader *r);

static int skip_container(struct json_reader *r, char open, char close)
{
    if (++r->depth > JSON_MAX_DEPTH)
        return -1;
    r->p++; /* open */
    skip_ws(r);
    if (r->p < r->end && *r->p == close) {
        r->p++;
        r->depth--;
        return 0;
    }
    for (;;) {
        if (open == '{') {
            if (read_string(r, NULL, 0, NULL) != 0)
                return -1;
            skip_ws(r);
            if (r->p >= r->end || *r->p != ':')
                return -1;
            r->p++;
        }
        if (skip_value(r) != 0)
            return -1;
        skip_ws(r);
        if (r->p >= r->end)
            return -1;
        if (*r->p == ',') {
            r->p++;
            skip_ws(r);
            continue;
        }
        if (*r->p == close) {
            r->p++;
            r->depth--;
            return 0;
        }
        return -1;
    }
}

static int skip_literal(struct json_reader *r, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, lit, n) != 0)
        return -1;
    r->p += n;
    return 0;
}

static int skip_value(struct json_reader *r)
{
    uint64_t ignored;
    skip_ws(r);
    if (r->p >= r->end)
        return -1;
    switch (*r->p) {
    case '"':
        return read_string(r, NULL, 0, NULL);
    case '{':
        return skip_container(r, '{', '}');
    case '[':
        return skip_container(r, '[', ']');
    case 't':
        return skip_literal(r, "true");
    case 'f':
        return skip_literal(r, "false");
    case 'n':
        return skip_literal(r, "null");
    default:
        return read_uint(r, UINT64_MAX, &ignored) == -1 ? -1 : 0;
    }
}

/* ---- the token's fields ------------------------------------------------------------------ */

enum field {
    F_VER,
    F_IDENTIFIER,
    F_SDKAPPID,
    F_TIME,
    F_EXPIRE,
    F_USERBUF,
    F_SIG,
    F_V1_ACCOUNT_TYPE,
    F_V1_APPID_AT_3RD,
    F_V1_SDK_APPID,
    F_V1_EXPIRE_AFTER,
    F_V1_VERSION,
    F_COUNT
};

static const char *const field_names[F_COUNT] = {
    [F_VER] = "TLS.ver",
    [F_IDENTIFIER] = "TLS.identifier",
    [F_SDKAPPID] = "TLS.sdkappid",
    [F_TIME] = "TLS.time",
    [F_EXPIRE] = "TLS.expire",
    [F_USERBUF] = "TLS.userbuf",
    [F_SIG] = "TLS.sig",
    [F_V1_ACCOUNT_TYPE] = "TLS.account_type",
    [F_V1_APPID_AT_3RD] = "TLS.appid_at_3rd",
    [F_V1_SDK_APPID] = "TLS.sdk_appid",
    [F_V1_EXPIRE_AFTER] = "TLS.expire_after",
    [F_V1_VERSION] = "TLS.version",
};

/* A raw field value as found: a string (decoded) or an unsigned integer. */
struct field_value {
    int present;
    int is_string;
    int is_uint; /* a number that is a non-negative integer */
    char str[JSON_MAX_STRING];
    size_t str_len;
    uint64_t num;
};

static int parse_document(const char *doc, size_t n, struct field_value *f)
{
    struct json_reader r = {doc, doc + n, 0};
    char key[64];
    size_t key_len;

    skip_ws(&r);
    if (r.p >= r.end || *r.p != '{')
        return -1;
    r.p++;
    skip_ws(&r);
    if (r.p < r.end && *r.p == '}') {
        r.p++;
        goto tail;
    }
    for (;;) {
        int idx = -1;
        skip_ws(&r);
        if (r.p >= r.end || *r.p != '"')
            return -1;
        /* Keys longer than any field name are read by skipping. */
        const char *key_start = r.p;
        if (read_string(&r, key, sizeof key, &key_len) != 0) {
            r.p = key_start;
            if (read_string(&r, NULL, 0, NULL) != 0)
                return -1;
        } else {
            for (int i = 0; i < F_COUNT; i++)
                if (strlen(field_names[i]) == key_len && memcmp(key, field_names[i], key_len) == 0)
                    idx = i;
        }
        skip_ws(&r);
        if (r.p >= r.end || *r.p != ':')
            return -1;
        r.p++;
        skip_ws(&r);
        if (idx < 0) {
            if (skip_value(&r) != 0)
                return -1;
        } else {
            struct field_value *v = &f[idx];
            if (v->present)
                return -1; /* a duplicate field is ambiguous: refuse it */
            v->present = 1;
            if (r.p < r.end && *r.p == '"') {
                if (read_string(&r, v->str, sizeof v->str, &v->str_len) != 0)
                    return -1;
                v->is_string = 1;
            } else if (r.p < r.end && (*r.p == '-' || (*r.p >= '0' && *r.p <= '9'))) {
                int rc = read_uint(&r, UINT64_MAX >> 1, &v->num);
                if (rc == -1)
                    return -1;
                v->is_uint = rc == 0;
            } else if (skip_value(&r) != 0) {
                return -1;
            }
        }
        skip_ws(&r);
        if (r.p >= r.end)
            return -1;
        if (*r.p == ',') {
            r.p++;
            continue;
        }
        if (*r.p == '}') {
            r.p++;
            break;
        }
        return -1;
    }
tail:
    skip_ws(&r);
    return r.p == r.end ? 0 : -1;
}

/* Decimal digits only, no sign, no leading zero (but "0"), into *out. */
static int parse_decimal(const char *s, size_t n, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0 || n > 20 || (n > 1 && s[0] == '0'))
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        if (v > (max - (uint64_t)(s[i] - '0')) / 10)
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return 0;
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Parses d->userbuf as a PrivateMapKey; sets has_room only when it is one, exactly. */
static void parse_room(struct usersig_decoded *d)
{
    const uint8_t *p = d->userbuf, *end = d->userbuf + d->userbuf_len;
    if (end - p < 3 || p[0] > 1)
        return;
    int version = p[0];
    size_t alen = (size_t)p[1] << 8 | p[2];
    p += 3;
    if (alen > USERSIG_MAX_IDENTIFIER * 4 || (size_t)(end - p) < alen + 20)
        return;
    memcpy(d->room.account, p, alen);
    d->room.account[alen] = '\0';
    p += alen;
    d->room.sdkappid = get_be32(p);
    d->room.room_id = get_be32(p + 4);
    d->room.expire_at = get_be32(p + 8);
    d->room.privilege_map = get_be32(p + 12);
    d->room.account_type = get_be32(p + 16);
    p += 20;
    d->room.room_str_len = 0;
    if (version == 1) {
        if (end - p < 2)
            return;
        size_t rlen = (size_t)p[0] << 8 | p[1];
        p += 2;
        if (rlen > USERSIG_MAX_ROOM_STR || (size_t)(end - p) < rlen)
            return;
        memcpy(d->room.room_str, p, rlen);
        d->room.room_str[rlen] = '\0';
        d->room.room_str_len = rlen;
        p += rlen;
    }
    if (p != end)
        return;
    d->room.version = version;
    d->has_room = 1;
}

static int copy_field(char *dst, size_t cap, const struct field_value *v)
{
    if (!v->present || !v->is_string || v->str_len + 1 > cap)
        return -1;
    memcpy(dst, v->str, v->str_len + 1);
    return 0;
}

static enum usersig_verdict fill_v2(struct usersig_decoded *d, const struct field_value *f)
{
    if (!f[F_IDENTIFIER].is_string || !f[F_SDKAPPID].is_uint || !f[F_TIME].is_uint ||
        !f[F_EXPIRE].is_uint || !f[F_SIG].is_string)
        return USERSIG_MALFORMED;
    if (f[F_SDKAPPID].num > UINT32_MAX || f[F_TIME].num > (uint64_t)INT64_MAX / 4 ||
        f[F_EXPIRE].num > (uint64_t)INT64_MAX / 4)
        return USERSIG_MALFORMED;
    d->version = 2;
    d->sdkappid = (uint32_t)f[F_SDKAPPID].num;
    d->time = (int64_t)f[F_TIME].num;
    d->expire = (int64_t)f[F_EXPIRE].num;
    if (f[F_USERBUF].present) {
        if (copy_field(d->userbuf_b64, sizeof d->userbuf_b64, &f[F_USERBUF]) != 0)
            return USERSIG_MALFORMED;
        d->userbuf_b64_len = f[F_USERBUF].str_len;
    }
    return USERSIG_VALID;
}

static enum usersig_verdict fill_v1(struct usersig_decoded *d, const struct field_value *f)
{
    uint64_t v;
    if (!f[F_IDENTIFIER].is_string || !f[F_SIG].is_string ||
        copy_field(d->v1_appid_at_3rd, sizeof d->v1_appid_at_3rd, &f[F_V1_APPID_AT_3RD]) != 0 ||
        copy_field(d->v1_account_type, sizeof d->v1_account_type, &f[F_V1_ACCOUNT_TYPE]) != 0 ||
        copy_field(d->v1_sdk_appid, sizeof d->v1_sdk_appid, &f[F_V1_SDK_APPID]) != 0 ||
        copy_field(d->v1_time, sizeof d->v1_time, &f[F_TIME]) != 0 ||
        copy_field(d->v1_expire_after, sizeof d->v1_expire_after, &f[F_V1_EXPIRE_AFTER]) != 0)
        return USERSIG_MALFORMED;
    if (f[F_V1_VERSION].present &&
        copy_field(d->v1_version, sizeof d->v1_version, &f[F_V1_VERSION]) != 0)
        return USERSIG_MALFORMED;
    d->version = 1;
    if (parse_decimal(f[F_V1_SDK_APPID].str, f[F_V1_SDK_APPID].str_len, UINT32_MAX, &v) != 0)
        return USERSIG_MALFORMED;
    d->sdkappid = (uint32_t)v;
    if (parse_decimal(f[F_TIME].str, f[F_TIME].str_len, (uint64_t)INT64_MAX / 4, &v) != 0)
        return USERSIG_MALFORMED;
    d->time = (int64_t)v;
    if (parse_decimal(f[F_V1_EXPIRE_AFTER].str, f[F_V1_EXPIRE_AFTER].str_len,
                      (uint64_t)INT64_MAX / 4, &v) != 0)
        return USERSIG_MALFORMED;
    d->expire = (int64_t)v;
    if (f[F_USERBUF].present) {
        if (copy_field(d->userbuf_b64, sizeof d->userbuf_b64, &f[F_USERBUF]) != 0)
            return USERSIG_MALFORMED;
        d->userbuf_b64_len = f[F_USERBUF].str_len;
    }
    return USERSIG_VALID;
}

/* Inflates a zlib stream into out (cap bytes); the stream must end exactly at the input's end
 * and within cap. */
static long inflate_bounded(const uint8_t *in, size_t n, char *out, size_t cap)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit(&zs) != Z_OK)
        return -1;
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)n;
    zs.next_out = (Bytef *)out;
    zs.avail_out = (uInt)cap;
    int rc = inflate(&zs, Z_FINISH);
    long produced = (long)(cap - zs.avail_out);
    int complete = rc == Z_STREAM_END && zs.avail_in == 0;
    inflateEnd(&zs);
    return complete ? produced : -1;
}

enum usersig_verdict usersig_decode(const char *token, size_t len, struct usersig_decoded *d)
{
    char clean[USERSIG_MAX_TOKEN_INPUT];
    uint8_t raw[USERSIG_MAX_TOKEN_INPUT];
    struct field_value f[F_COUNT];
    size_t n = 0;

    memset(d, 0, sizeof *d);
    if (token == NULL)
        return USERSIG_EMPTY;
    if (len > USERSIG_MAX_TOKEN_INPUT)
        return USERSIG_MALFORMED;
    for (size_t i = 0; i < len; i++) {
        char c = token[i];
        switch (c) {
        case ' ':
        case '\t':
        case '\r':
        case '\n':
            continue;
        case '*':
            c = '+';
            break;
        case '-':
            c = '/';
            break;
        case '_':
            c = '=';
            break;
        default:
            break;
        }
        clean[n++] = c;
    }
    if (n == 0)
        return USERSIG_EMPTY;
    long raw_len = usersig_b64_decode(clean, n, raw, sizeof raw);
    if (raw_len <= 0)
        return USERSIG_MALFORMED;
    long doc_len = inflate_bounded(raw, (size_t)raw_len, d->document, USERSIG_MAX_DOCUMENT);
    if (doc_len < 0)
        return USERSIG_MALFORMED;
    d->document[doc_len] = '\0';
    d->document_len = (size_t)doc_len;

    memset(f, 0, sizeof f);
    if (parse_document(d->document, d->document_len, f) != 0)
        return USERSIG_MALFORMED;

    if (copy_field(d->identifier, sizeof d->identifier, &f[F_IDENTIFIER]) != 0)
        return USERSIG_MALFORMED;
    d->identifier_len = f[F_IDENTIFIER].str_len;
    if (copy_field(d->sig, sizeof d->sig, &f[F_SIG]) != 0)
        return USERSIG_MALFORMED;
    d->sig_len = f[F_SIG].str_len;

    enum usersig_verdict v;
    if (f[F_VER].present) {
        if (!f[F_VER].is_string)
            return USERSIG_MALFORMED;
        if (f[F_VER].str_len != 3 || memcmp(f[F_VER].str, "2.0", 3) != 0)
            return USERSIG_UNSUPPORTED_VERSION;
        v = fill_v2(d, f);
    } else if (f[F_V1_SDK_APPID].present) {
        v = fill_v1(d, f);
    } else {
        return USERSIG_MALFORMED;
    }
    if (v != USERSIG_VALID)
        return v;
    if (d->userbuf_b64_len > 0) {
        long ub =
            usersig_b64_decode(d->userbuf_b64, d->userbuf_b64_len, d->userbuf, sizeof d->userbuf);
        if (ub < 0)
            return USERSIG_MALFORMED;
        d->userbuf_len = (size_t)ub;
        parse_room(d);
    }
    return USERSIG_VALID;
}
