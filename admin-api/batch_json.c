/*
 * The application/json body of POST /v1/apps/{sdkappid}/usersigs/batch (batch_json.h): a
 * streaming scan that validates the whole body in the request's buffer, without a copy, and
 * finds its members (identifiers, expire); then the cutting of the identifiers array into the
 * pipeline's items, one element each.
 */
#include "batch_json.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

#define KEY_BUF 32 /* bytes of a top-level key of the JSON body looked at */

/* ---- the application/json body: a validating scan, without a copy of the body --------------- */

enum jstate {
    JS_VALUE,        /* a value is expected */
    JS_VALUE_OR_END, /* after '[' */
    JS_KEY_OR_END,   /* after '{' */
    JS_KEY,          /* after ',' in an object */
    JS_COLON,
    JS_AFTER, /* after a value: ',' or the end of its container */
    JS_STRING,
    JS_ESCAPE,
    JS_UNICODE,
    JS_NUMBER,
    JS_LITERAL,
    JS_END, /* the body's value is over: whitespace only */
};

enum member { M_NONE = 0, M_IDENTIFIERS, M_EXPIRE, M_OTHER };

/* Number states: after '-', after a leading 0, in the integer, after '.', in the fraction,
 * after 'e', after its sign, in the exponent. */
enum { N_MINUS, N_ZERO, N_INT, N_DOT, N_FRAC, N_E, N_ESIGN, N_EXP };

struct jscan {
    enum jstate st;
    int depth;
    bool in_array[API_JSON_MAX_DEPTH + 1];
    bool is_key;
    int left; /* hex digits of \u, or characters of a literal */
    const char *literal;
    int num;
    bool num_int;
    uint64_t off;
    const char *error; /* a syntax error: what was wrong at off */
    /* the body's object */
    char key[KEY_BUF];
    size_t key_len; /* KEY_BUF + 1: longer than any member this route takes */
    bool key_escaped;
    enum member member;
    char value_kind; /* first character of the member's value */
    bool has_identifiers, has_expire, identifiers_array, expire_int;
    uint64_t array_off; /* of the identifiers array's '[' */
    char expire[24];
    size_t expire_len;
    char unknown[KEY_BUF + 1];
};

static bool js_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Keeps a character of a member name of the body's object. */
static void js_key_char(struct jscan *j, char c)
{
    if (!j->is_key || j->depth != 1)
        return;
    if (j->key_len < KEY_BUF)
        j->key[j->key_len++] = c;
    else
        j->key_len = KEY_BUF + 1;
}

/* A value has ended (a container closed, or a scalar). */
static void js_value_end(struct jscan *j)
{
    if (j->depth == 1 && j->member == M_EXPIRE)
        j->expire_int = j->value_kind == 'n' && j->num_int && j->expire_len < sizeof j->expire;
    if (j->depth == 1 && j->member == M_IDENTIFIERS)
        j->identifiers_array = j->value_kind == '[';
    j->st = j->depth == 0 ? JS_END : JS_AFTER;
}

static void js_key_end(struct jscan *j)
{
    j->st = JS_COLON;
    if (j->depth != 1)
        return;
    j->member = M_OTHER;
    if (j->key_escaped) {
        /* taken as unknown, below */
    } else if (j->key_len == 11 && memcmp(j->key, "identifiers", 11) == 0) {
        if (j->has_identifiers)
            j->error = "the member \"identifiers\" is given twice";
        j->has_identifiers = true;
        j->member = M_IDENTIFIERS;
    } else if (j->key_len == 6 && memcmp(j->key, "expire", 6) == 0) {
        if (j->has_expire)
            j->error = "the member \"expire\" is given twice";
        j->has_expire = true;
        j->member = M_EXPIRE;
    }
    if (j->member == M_OTHER && j->unknown[0] == '\0') {
        /* Shown back in the error: printable ASCII only (the message must stay UTF-8). */
        size_t n = j->key_len < KEY_BUF ? j->key_len : KEY_BUF;
        if (api_printable_copy(j->unknown, sizeof j->unknown, j->key, n) == 0)
            snprintf(j->unknown, sizeof j->unknown, "%s", "(empty)");
    }
}

static void js_value_start(struct jscan *j, char c)
{
    if (j->depth == 0 && c != '{') {
        j->error = "the body must be a JSON object {\"identifiers\": [...]}";
        return;
    }
    if (j->depth == 1) {
        j->value_kind = c == '-' || (c >= '0' && c <= '9') ? 'n' : c;
        if (j->member == M_IDENTIFIERS)
            j->array_off = j->off;
    }
    if (c == '{' || c == '[') {
        if (j->depth == API_JSON_MAX_DEPTH) {
            j->error = "arrays and objects nest too deep";
            return;
        }
        j->in_array[++j->depth] = c == '[';
        j->st = c == '[' ? JS_VALUE_OR_END : JS_KEY_OR_END;
    } else if (c == '"') {
        j->st = JS_STRING;
        j->is_key = false;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        j->st = JS_NUMBER;
        j->num = c == '-' ? N_MINUS : c == '0' ? N_ZERO : N_INT;
        j->num_int = true;
        if (j->depth == 1 && j->member == M_EXPIRE) {
            j->expire[0] = c;
            j->expire_len = 1;
        }
    } else if (c == 't' || c == 'f' || c == 'n') {
        j->st = JS_LITERAL;
        j->literal = c == 't' ? "true" : c == 'f' ? "false" : "null";
        j->left = 1;
    } else {
        j->error = "a value was expected";
    }
}

/* Whether c continues the number; updates the number state. */
static bool js_number(struct jscan *j, char c)
{
    bool digit = c >= '0' && c <= '9';
    switch (j->num) {
    case N_MINUS:
        if (!digit)
            return false;
        j->num = c == '0' ? N_ZERO : N_INT;
        return true;
    case N_ZERO:
    case N_INT:
        if (digit && j->num == N_INT)
            return true;
        if (c == '.')
            j->num = N_DOT;
        else if (c == 'e' || c == 'E')
            j->num = N_E;
        else
            return false;
        j->num_int = false;
        return true;
    case N_DOT:
    case N_FRAC:
        if (digit)
            j->num = N_FRAC;
        else if (j->num == N_FRAC && (c == 'e' || c == 'E'))
            j->num = N_E;
        else
            return false;
        return true;
    case N_E:
        if (c == '+' || c == '-' || digit) {
            j->num = digit ? N_EXP : N_ESIGN;
            return true;
        }
        return false;
    default: /* N_ESIGN, N_EXP */
        if (!digit)
            return false;
        j->num = N_EXP;
        return true;
    }
}

/* Scans n bytes of the body. Stops at the first error (j->error). */
static void js_feed(struct jscan *j, const char *s, size_t n)
{
    for (size_t i = 0; i < n && j->error == NULL; i++, j->off++) {
        char c = s[i];
        switch (j->st) {
        case JS_STRING:
            /* The bulk of a body: run through plain characters. */
            while (c != '"' && c != '\\' && (unsigned char)c >= 0x20) {
                js_key_char(j, c);
                if (++i == n) {
                    j->off++;
                    return;
                }
                j->off++;
                c = s[i];
            }
            if (c == '"') {
                if (j->is_key)
                    js_key_end(j);
                else
                    js_value_end(j);
            } else if (c == '\\') {
                j->st = JS_ESCAPE;
            } else {
                j->error = "a control character inside a string";
            }
            break;
        case JS_ESCAPE:
            /* A key with an escape is taken as unknown (named by its raw text). */
            j->key_escaped = j->key_escaped || j->is_key;
            js_key_char(j, '\\');
            js_key_char(j, c);
            if (c == 'u') {
                j->st = JS_UNICODE;
                j->left = 4;
            } else if (c != '\0' && strchr("\"\\/bfnrt", c) != NULL) {
                j->st = JS_STRING;
            } else {
                j->error = "a bad escape in a string";
            }
            break;
        case JS_UNICODE:
            js_key_char(j, c);
            if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
                j->error = "a bad \\u escape in a string";
            else if (--j->left == 0)
                j->st = JS_STRING;
            break;
        case JS_LITERAL:
            if (c != j->literal[j->left])
                j->error = "a misspelt true, false or null";
            else if (j->literal[++j->left] == '\0')
                js_value_end(j);
            break;
        case JS_NUMBER:
            if (js_number(j, c)) {
                if (j->depth == 1 && j->member == M_EXPIRE && j->expire_len < sizeof j->expire)
                    j->expire[j->expire_len++] = c;
                break;
            }
            if (j->num == N_MINUS || j->num == N_DOT || j->num == N_E || j->num == N_ESIGN) {
                j->error = "a malformed number";
                break;
            }
            js_value_end(j);
            i--; /* c is the character after the number: read it again */
            j->off--;
            break;
        default:
            if (js_ws(c))
                break;
            if (j->st == JS_END) {
                j->error = "text after the JSON object";
            } else if (j->st == JS_VALUE || j->st == JS_VALUE_OR_END) {
                if (j->st == JS_VALUE_OR_END && c == ']') {
                    j->depth--;
                    js_value_end(j);
                } else {
                    js_value_start(j, c);
                }
            } else if (j->st == JS_KEY_OR_END && c == '}') {
                j->depth--;
                js_value_end(j);
            } else if (j->st == JS_KEY_OR_END || j->st == JS_KEY) {
                if (c != '"')
                    j->error = "a member name in quotes was expected";
                j->st = JS_STRING;
                j->is_key = true;
                j->key_len = 0;
                j->key_escaped = false;
            } else if (j->st == JS_COLON) {
                if (c != ':')
                    j->error = "':' was expected";
                j->st = JS_VALUE;
            } else if (c == ',') {
                j->st = j->in_array[j->depth] ? JS_VALUE : JS_KEY;
            } else if (c == (j->in_array[j->depth] ? ']' : '}')) {
                j->depth--;
                js_value_end(j);
            } else {
                j->error = "',' or the end of the array or object was expected";
            }
            break;
        }
    }
}

enum api_error batch_json_check(struct evbuffer *in, struct batch_json_cut *cut, bool *has_expire,
                                int64_t *expire, char *msg, size_t cap)
{
    struct jscan j;
    struct evbuffer_ptr ptr;
    struct evbuffer_iovec v;

    memset(&j, 0, sizeof j);
    *has_expire = false;
    evbuffer_ptr_set(in, &ptr, 0, EVBUFFER_PTR_SET);
    while (j.error == NULL && evbuffer_peek(in, -1, &ptr, &v, 1) > 0 && v.iov_len > 0) {
        js_feed(&j, v.iov_base, v.iov_len);
        if (evbuffer_ptr_set(in, &ptr, v.iov_len, EVBUFFER_PTR_ADD) != 0)
            break;
    }
    if (j.error == NULL && j.st != JS_END)
        j.error = j.off == 0 ? "the body is empty" : "the JSON ends early";
    if (j.error != NULL) {
        snprintf(msg, cap, "invalid JSON at byte %" PRIu64 ": %s", j.off, j.error);
        return API_ERR_BAD_JSON;
    }
    if (j.unknown[0] != '\0') {
        snprintf(msg, cap, "unknown field \"%s\" (this body takes: identifiers, expire)",
                 j.unknown);
        return API_ERR_UNKNOWN_FIELD;
    }
    if (j.has_identifiers && !j.identifiers_array) {
        snprintf(msg, cap, "field \"identifiers\" must be an array of strings");
        return API_ERR_INVALID_FIELD;
    }
    if (j.has_expire) {
        long long x = 0;
        if (j.expire_int) {
            j.expire[j.expire_len] = '\0';
            x = strtoll(j.expire, NULL, 10);
        }
        if (!j.expire_int || x < INT32_MIN || x > INT32_MAX) {
            snprintf(msg, cap, "field \"expire\" must be an integer");
            return API_ERR_INVALID_FIELD;
        }
        *has_expire = true;
        *expire = x;
    }
    if (!j.has_identifiers) {
        snprintf(msg, cap, "field \"identifiers\" is required");
        return API_ERR_MISSING_FIELD;
    }
    cut->skip = j.array_off + 1;
    return API_OK;
}

/* ---- cutting the identifiers array into items (pipeline fill callback) ---------------------- */

/* One item an element of the identifiers array (the body was checked). */
enum pipeline_fill batch_json_fill(struct batch_json_cut *cut, struct evbuffer *in,
                                   struct pipeline_items *it)
{
    struct evbuffer_iovec v;
    if (cut->skip > 0) {
        evbuffer_drain(in, cut->skip);
        cut->skip = 0;
    }
    while (!cut->array_done && evbuffer_peek(in, -1, NULL, &v, 1) > 0 && v.iov_len > 0) {
        const char *s = v.iov_base;
        size_t n = v.iov_len, i = 0, seg = 0;
        bool stop = false;
        for (; i < n && !stop; i++) {
            char c = s[i];
            if (!cut->item_open) {
                if (js_ws(c) || c == ',')
                    continue;
                if (c == ']') {
                    cut->array_done = true;
                    stop = true;
                    continue;
                }
                if (pipeline_items_full(it)) {
                    stop = true;
                    i--; /* not consumed */
                    continue;
                }
                pipeline_items_begin(it);
                cut->item_open = true;
                cut->depth = 0;
                cut->in_string = cut->escaped = false;
                seg = i;
            }
            if (cut->in_string) {
                if (cut->escaped)
                    cut->escaped = false;
                else if (c == '\\')
                    cut->escaped = true;
                else if (c == '"')
                    cut->in_string = false;
            } else if (c == '"') {
                cut->in_string = true;
            } else if (c == '[' || c == '{') {
                cut->depth++;
            } else if ((c == ']' || c == '}') && cut->depth > 0) {
                cut->depth--;
            } else if ((c == ',' || c == ']') && cut->depth == 0) {
                if (pipeline_items_append(it, s + seg, i - seg) != 0)
                    return PIPELINE_FILL_ERROR;
                pipeline_items_end(it);
                cut->item_open = false;
                if (c == ']')
                    i--; /* the array's end: read it again, between items */
            }
        }
        if (cut->item_open && pipeline_items_append(it, s + seg, i - seg) != 0)
            return PIPELINE_FILL_ERROR;
        evbuffer_drain(in, i);
        if (stop && !cut->array_done)
            return PIPELINE_FILL_MORE;
    }
    if (cut->item_open) { /* cannot happen after the check; do not lose the item */
        pipeline_items_end(it);
        cut->item_open = false;
    }
    return PIPELINE_FILL_END;
}
