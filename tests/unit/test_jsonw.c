/*
 * The JSON writer (server/base/jsonw.h) against jansson's json_dumps, which it stands in for on
 * the sign path: the same bytes for generated strings (printable ASCII, every control byte,
 * quotes, backslashes, slashes, 0x7F, 2- to 4-byte UTF-8, NUL, invalid UTF-8 refused as
 * json_stringn refuses it), integers (the int64 extremes included), nesting and key order, with
 * and without JSON_ENSURE_ASCII; and the bounds: a text that fits exactly, one byte short. Then
 * a sign's audit details (sign_details_text) against the jansson object they were made from
 * before: the audit chain MACs that text, so old and new events must read alike.
 */
#include "jsonw.h"
#include "sign.h"
#include "testlib.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint32_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

/* Appends code point cp as UTF-8 to s at *n. */
static void put_utf8(char *s, size_t *n, uint32_t cp)
{
    if (cp < 0x80) {
        s[(*n)++] = (char)cp;
    } else if (cp < 0x800) {
        s[(*n)++] = (char)(0xc0 | (cp >> 6));
        s[(*n)++] = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        s[(*n)++] = (char)(0xe0 | (cp >> 12));
        s[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        s[(*n)++] = (char)(0x80 | (cp & 0x3f));
    } else {
        s[(*n)++] = (char)(0xf0 | (cp >> 18));
        s[(*n)++] = (char)(0x80 | ((cp >> 12) & 0x3f));
        s[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3f));
        s[(*n)++] = (char)(0x80 | (cp & 0x3f));
    }
}

/* A string of up to max characters drawn from the classes that escape differently. */
static size_t gen_string(char *s, size_t max, bool raw_bytes)
{
    size_t n = 0, chars = rnd() % (max + 1);
    for (size_t i = 0; i < chars; i++) {
        uint32_t cp;
        switch (rnd() % 10) {
        case 0:
            cp = rnd() % 0x20; /* control bytes, NUL included */
            break;
        case 1: {
            static const char special[] = "\"\\/\x7f'<>&";
            cp = (unsigned char)special[rnd() % (sizeof special - 1)];
            break;
        }
        case 2:
            cp = 0x80 + rnd() % (0x800 - 0x80);
            break;
        case 3:
            do
                cp = 0x800 + rnd() % (0x10000 - 0x800);
            while (cp >= 0xd800 && cp <= 0xdfff);
            break;
        case 4:
            cp = 0x10000 + rnd() % (0x110000 - 0x10000);
            break;
        case 5:
            if (raw_bytes) { /* any byte: often invalid UTF-8 */
                s[n++] = (char)(rnd() & 0xff);
                continue;
            }
            cp = 0x20 + rnd() % 0x5f;
            break;
        default:
            cp = 0x20 + rnd() % 0x5f; /* printable ASCII */
            break;
        }
        put_utf8(s, &n, cp);
    }
    return n;
}

/* Writes the same value with jsonw and through jansson; both texts must be equal, or both must
 * fail. */
static void check_string(const char *s, size_t len, size_t flags, const char *what)
{
    char buf[2048];
    struct jsonw w;
    unsigned wflags = (flags & JSON_ENSURE_ASCII) ? JSONW_ASCII : 0;
    json_t *js = json_stringn(s, len);
    json_t *o = js != NULL ? json_pack("{s:o}", "k", js) : NULL;
    char *want = o != NULL ? json_dumps(o, flags) : NULL;
    json_decref(o);

    jsonw_init(&w, buf, sizeof buf, wflags);
    jsonw_object_begin(&w);
    jsonw_key(&w, "k");
    jsonw_string(&w, s, len);
    jsonw_object_end(&w);
    size_t n = jsonw_finish(&w);
    if (want == NULL)
        CHECK(n == 0, "%s: jansson refuses the string, jsonw wrote %s", what, buf);
    else
        CHECK(n == strlen(want) && strcmp(buf, want) == 0, "%s: jsonw %s, jansson %s", what,
              n > 0 ? buf : "(failed)", want);
    free(want);
}

static void check_int(int64_t v)
{
    char buf[64];
    struct jsonw w;
    json_t *a = json_pack("[I]", (json_int_t)v);
    char *want = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    jsonw_init(&w, buf, sizeof buf, 0);
    jsonw_array_begin(&w);
    jsonw_int(&w, v);
    jsonw_array_end(&w);
    size_t n = jsonw_finish(&w);
    CHECK(want != NULL && n == strlen(want) && strcmp(buf, want) == 0,
          "int %" PRId64 ": jsonw %s, jansson %s", v, buf, want ? want : "?");
    free(want);
}

/* The audit details of a sign as they were made before the writer: a jansson object dumped with
 * the flags service_audit_event uses. The chain MACs this text, so it must not change. */
static char *details_by_jansson(const struct sign_input *in, int64_t expire_at)
{
    json_t *d = json_object();
    if (in->identifier != NULL && in->identifier_len <= USERSIG_MAX_IDENTIFIER)
        json_object_set_new(d, "identifier", json_stringn(in->identifier, in->identifier_len));
    if (in->has_expire)
        json_object_set_new(d, "expire", json_integer(in->expire));
    if (expire_at != 0)
        json_object_set_new(d, "expire_at", json_integer(expire_at));
    if (in->room.kind == USERSIG_ROOM_NUMERIC)
        json_object_set_new(d, "room_id", json_integer(in->room.room_id));
    if (in->room.kind == USERSIG_ROOM_STRING)
        json_object_set_new(d, "room_str", json_stringn(in->room.room_str, in->room.room_str_len));
    if (in->room.kind != USERSIG_ROOM_NONE)
        json_object_set_new(d, "privilege_map", json_integer(in->room.privilege_map));
    char *text = json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    json_decref(d);
    return text;
}

static void check_details(void)
{
    char id[256], room[256], buf[SIGN_DETAILS_BUF];
    for (int i = 0; i < 20000; i++) {
        struct sign_input in = {0};
        size_t id_len = gen_string(id, i % 3 == 0 ? 40 : 10, false);
        size_t room_len = gen_string(room, 16, false);
        if (room_len > USERSIG_MAX_ROOM_STR)
            room_len = USERSIG_MAX_ROOM_STR;
        while (room_len > 0 && (room[room_len - 1] & 0xc0) == 0x80) /* whole characters */
            room_len--;
        if (room_len > 0 && (unsigned char)room[room_len - 1] >= 0xc0)
            room_len--;
        in.identifier = i % 17 == 0 ? NULL : id;
        in.identifier_len = id_len;
        in.has_expire = i % 5 != 0;
        in.expire = (json_int_t)(((uint64_t)rnd() << 32) | rnd()) >> (rnd() % 64);
        switch (i % 3) {
        case 1:
            in.room.kind = USERSIG_ROOM_NUMERIC;
            in.room.room_id = rnd();
            in.room.privilege_map = rnd() % 256;
            break;
        case 2:
            in.room.kind = USERSIG_ROOM_STRING;
            in.room.room_str = room;
            in.room.room_str_len = room_len;
            in.room.privilege_map = rnd() % 256;
            break;
        }
        int64_t expire_at = i % 4 == 0 ? 0 : (int64_t)(((uint64_t)rnd() << 32) | rnd());
        if (i == 1)
            expire_at = INT64_MIN, in.expire = INT64_MAX;
        char *want = details_by_jansson(&in, expire_at);
        size_t n = sign_details_text(&in, expire_at, buf, sizeof buf);
        CHECK(want != NULL && n == strlen(want) && strcmp(buf, want) == 0,
              "sign details %d: %s, jansson %s", i, n > 0 ? buf : "(failed)", want ? want : "?");
        free(want);
    }
    /* The largest details: every byte of the identifier and room_str a control byte. */
    struct sign_input in = {.identifier = id,
                            .identifier_len = USERSIG_MAX_IDENTIFIER,
                            .has_expire = true,
                            .expire = INT64_MIN};
    memset(id, 1, USERSIG_MAX_IDENTIFIER);
    memset(room, 1, USERSIG_MAX_ROOM_STR);
    in.room = (struct usersig_room){.kind = USERSIG_ROOM_STRING,
                                    .room_str = room,
                                    .room_str_len = USERSIG_MAX_ROOM_STR,
                                    .privilege_map = 255};
    CHECK(sign_details_text(&in, INT64_MIN, buf, sizeof buf) > 0, "the largest details fit");
}

int main(void)
{
    static const size_t modes[] = {JSON_COMPACT, JSON_COMPACT | JSON_ENSURE_ASCII};
    char s[1024];
    char what[64];

    /* Each byte alone, and each code point class at its edges. */
    for (unsigned b = 0; b < 256; b++) {
        char one = (char)b;
        snprintf(what, sizeof what, "byte 0x%02x", b);
        for (size_t m = 0; m < 2; m++)
            check_string(&one, 1, modes[m], what);
    }
    static const uint32_t edges[] = {0x7f,   0x80,   0x7ff,   0x800,   0xd7ff,  0xe000,
                                     0xfffd, 0xffff, 0x10000, 0x1f600, 0xfffff, 0x10ffff};
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
        size_t n = 0;
        put_utf8(s, &n, edges[i]);
        snprintf(what, sizeof what, "U+%04" PRIX32, edges[i]);
        for (size_t m = 0; m < 2; m++)
            check_string(s, n, modes[m], what);
    }
    /* Invalid forms: overlong, surrogate, past U+10FFFF, truncated. */
    static const char *const invalid[] = {"\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                                          "a\xc3",    "\xe2\x82",     "\x80"};
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++)
        for (size_t m = 0; m < 2; m++)
            check_string(invalid[i], strlen(invalid[i]), modes[m], "invalid UTF-8");

    /* Generated strings: valid UTF-8 mixes, then any bytes. */
    for (int i = 0; i < 20000; i++) {
        bool raw = i >= 15000;
        size_t n = gen_string(s, 64, raw);
        snprintf(what, sizeof what, "generated string %d", i);
        check_string(s, n, modes[i % 2], what);
    }

    /* Integers: the extremes, powers of ten and their neighbours, random ones. */
    static const int64_t ints[] = {0,
                                   1,
                                   -1,
                                   9,
                                   10,
                                   -10,
                                   INT64_MAX,
                                   INT64_MIN,
                                   INT64_MAX - 1,
                                   INT64_MIN + 1,
                                   INT32_MAX,
                                   INT32_MIN,
                                   UINT32_MAX};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        check_int(ints[i]);
    for (int64_t p = 1, k = 0; k < 19; k++, p = k < 19 ? p * 10 : p) {
        check_int(p);
        check_int(p - 1);
        check_int(-p);
        check_int(-p + 1);
    }
    for (int i = 0; i < 5000; i++)
        check_int((int64_t)(((uint64_t)rnd() << 32) | rnd()) >> (rnd() % 64));

    /* A document as the sign reply writes it: member order kept, nesting, every kind. */
    {
        char buf[512];
        struct jsonw w;
        jsonw_init(&w, buf, sizeof buf, 0);
        jsonw_object_begin(&w);
        jsonw_key(&w, "usersig");
        jsonw_string(&w, "eJw*", 4);
        jsonw_key(&w, "n");
        jsonw_int(&w, -5);
        jsonw_key(&w, "empty");
        jsonw_object_begin(&w);
        jsonw_object_end(&w);
        jsonw_key(&w, "list");
        jsonw_array_begin(&w);
        jsonw_null(&w);
        jsonw_bool(&w, true);
        jsonw_bool(&w, false);
        jsonw_array_begin(&w);
        jsonw_array_end(&w);
        jsonw_object_begin(&w);
        jsonw_key(&w, "a\"b");
        jsonw_string(&w, "", 0);
        jsonw_object_end(&w);
        jsonw_array_end(&w);
        jsonw_object_end(&w);
        size_t n = jsonw_finish(&w);
        json_t *o = json_pack("{s:s, s:i, s:{}, s:[n, b, b, [], {s:s}]}", "usersig", "eJw*", "n",
                              -5, "empty", "list", 1, 0, "a\"b", "");
        char *want = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        CHECK(want != NULL && n == strlen(want) && strcmp(buf, want) == 0,
              "document: jsonw %s, jansson %s", buf, want ? want : "?");

        /* The same text in a buffer of exactly its size (with the NUL), then one byte less. */
        char *exact = malloc(n + 1);
        for (size_t cap = n + 1; exact != NULL && cap >= n; cap--) {
            jsonw_init(&w, exact, cap, 0);
            jsonw_object_begin(&w);
            jsonw_key(&w, "usersig");
            jsonw_string(&w, "eJw*", 4);
            jsonw_key(&w, "n");
            jsonw_int(&w, -5);
            jsonw_key(&w, "empty");
            jsonw_object_begin(&w);
            jsonw_object_end(&w);
            jsonw_key(&w, "list");
            jsonw_array_begin(&w);
            jsonw_null(&w);
            jsonw_bool(&w, true);
            jsonw_bool(&w, false);
            jsonw_array_begin(&w);
            jsonw_array_end(&w);
            jsonw_object_begin(&w);
            jsonw_key(&w, "a\"b");
            jsonw_string(&w, "", 0);
            jsonw_object_end(&w);
            jsonw_array_end(&w);
            jsonw_object_end(&w);
            size_t got = jsonw_finish(&w);
            if (cap == n + 1)
                CHECK(got == n && strcmp(exact, want) == 0, "exact fit");
            else
                CHECK(got == 0 && exact[0] == '\0', "one byte short fails");
        }
        free(exact);
        free(want);
    }

    /* Misuse fails instead of writing bad JSON. */
    {
        char buf[64];
        struct jsonw w;
        jsonw_init(&w, buf, sizeof buf, 0);
        jsonw_object_begin(&w);
        jsonw_key(&w, "a");
        jsonw_object_end(&w); /* a key without a value */
        CHECK(jsonw_finish(&w) == 0, "a key without its value");
        jsonw_init(&w, buf, sizeof buf, 0);
        jsonw_object_begin(&w);
        CHECK(jsonw_finish(&w) == 0, "an object left open");
        jsonw_init(&w, buf, sizeof buf, 0);
        jsonw_array_end(&w);
        CHECK(jsonw_finish(&w) == 0, "a close without an open");
        jsonw_init(&w, buf, sizeof buf, 0);
        jsonw_key(&w, "a");
        CHECK(jsonw_finish(&w) == 0, "a key outside an object");
        jsonw_init(&w, buf, sizeof buf, 0);
        for (unsigned i = 0; i < JSONW_MAX_DEPTH; i++)
            jsonw_array_begin(&w);
        CHECK(w.failed, "nesting past JSONW_MAX_DEPTH");
    }
    check_details();
    return test_done("jsonw");
}
