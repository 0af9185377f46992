/*
 * usersig batch and import: the server's answer to one request (usersig_batch_int.h). A 200's lines
 * go to stdout as they arrive, each checked against the identifier it answers (input order),
 * hashed, and counted; the closing summary must agree with the counts and the SHA-256 over the
 * lines. For usersig import (b->job) the lines are accounts ({"identifier","status"}) and the
 * summary the accounts endpoint's (job_id, state, imported, calls, not_imported for a check). Any
 * other status: its error body, made into the refusal shown to the user. Bytes in, from whatever
 * transport read them (so each part can be fed from a buffer: fuzzed, tested alone). Called by
 * usersig_batch.c; calls usersig_batch_tty.c and usersig_http.c's string helpers, never back up.
 */
#include "usersig_batch_int.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---- answer lines -------------------------------------------------------------------------- */

static const char *json_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
        p++;
    return p;
}

/* p at '"': the position after the closing quote, or NULL. A quote ends the string unless an
 * odd number of backslashes precedes it (tokens are long: memchr, not a loop over each byte). */
static const char *json_str_end(const char *p, const char *e)
{
    const char *start = ++p, *q;
    while ((q = memchr(p, '"', (size_t)(e - p))) != NULL) {
        const char *bs = q;
        while (bs > start && bs[-1] == '\\')
            bs--;
        if ((q - bs) % 2 == 0)
            return q + 1;
        p = q + 1;
    }
    return NULL;
}

static const char *json_skip_value(const char *p, const char *e)
{
    if (p >= e)
        return NULL;
    if (*p == '"')
        return json_str_end(p, e);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        while (p < e) {
            if (*p == '"') {
                if ((p = json_str_end(p, e)) == NULL)
                    return NULL;
                continue;
            }
            if (*p == '{' || *p == '[')
                depth++;
            else if ((*p == '}' || *p == ']') && --depth == 0)
                return p + 1;
            p++;
        }
        return NULL;
    }
    const char *s = p;
    while (p < e && strchr(",}] \t\r\n", *p) == NULL)
        p++;
    return p > s ? p : NULL;
}

struct json_scan {
    const char *id; /* the identifier's JSON string body, escapes intact */
    size_t id_len;
    const char *status; /* import, check: the status's JSON string body */
    size_t status_len;
    int has_id, has_usersig, has_error, has_summary, has_status;
};

/* Finds the top-level keys of an answer line without building a tree (a million lines). */
static int json_scan(const char *p, size_t n, struct json_scan *js)
{
    const char *e = p + n;
    memset(js, 0, sizeof *js);
    p = json_ws(p, e);
    if (p == e || *p != '{')
        return -1;
    p = json_ws(p + 1, e);
    if (p < e && *p == '}')
        return json_ws(p + 1, e) == e ? 0 : -1;
    for (;;) {
        if (p == e || *p != '"')
            return -1;
        const char *k = p + 1, *ke = json_str_end(p, e);
        if (ke == NULL)
            return -1;
        size_t klen = (size_t)(ke - 1 - k);
        p = json_ws(ke, e);
        if (p == e || *p != ':')
            return -1;
        const char *v = json_ws(p + 1, e);
        if ((p = json_skip_value(v, e)) == NULL)
            return -1;
#define KEY_IS(s) (klen == sizeof(s) - 1 && memcmp(k, s, klen) == 0)
        if (KEY_IS("identifier") && *v == '"') {
            js->has_id = 1;
            js->id = v + 1;
            js->id_len = (size_t)(p - 1 - js->id);
        } else if (KEY_IS("usersig") && *v == '"') {
            js->has_usersig = 1;
        } else if (KEY_IS("error") && *v == '{') {
            js->has_error = 1;
        } else if (KEY_IS("summary") && *v == '{') {
            js->has_summary = 1;
        } else if (KEY_IS("status") && *v == '"') {
            js->has_status = 1;
            js->status = v + 1;
            js->status_len = (size_t)(p - 1 - js->status);
        }
#undef KEY_IS
        p = json_ws(p, e);
        if (p < e && *p == ',') {
            p = json_ws(p + 1, e);
            continue;
        }
        if (p < e && *p == '}')
            return json_ws(p + 1, e) == e ? 0 : -1;
        return -1;
    }
}

static int hex4(const char *s, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v * 16 + (unsigned)d;
    }
    *out = v;
    return 0;
}

/* Whether the JSON string body s (escapes intact) decodes to exactly the bytes raw. */
static int json_str_equals(const char *s, size_t n, const char *raw, size_t raw_n)
{
    size_t j = 0;
    if (memchr(s, '\\', n) == NULL)
        return n == raw_n && memcmp(s, raw, n) == 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char out[4];
        size_t k = 1;
        out[0] = (unsigned char)s[i];
        if (s[i] == '\\') {
            if (++i == n)
                return 0;
            if (s[i] != 'u') {
                switch (s[i]) {
                case '"':
                case '\\':
                case '/':
                    out[0] = (unsigned char)s[i];
                    break;
                case 'b':
                    out[0] = '\b';
                    break;
                case 'f':
                    out[0] = '\f';
                    break;
                case 'n':
                    out[0] = '\n';
                    break;
                case 'r':
                    out[0] = '\r';
                    break;
                case 't':
                    out[0] = '\t';
                    break;
                default:
                    return 0;
                }
            } else {
                unsigned cp, lo;
                if (i + 4 >= n || hex4(s + i + 1, &cp) != 0)
                    return 0;
                i += 4;
                if (cp >= 0xd800 && cp < 0xdc00) {
                    if (i + 6 >= n || s[i + 1] != '\\' || s[i + 2] != 'u' ||
                        hex4(s + i + 3, &lo) != 0 || lo < 0xdc00 || lo >= 0xe000)
                        return 0;
                    i += 6;
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                }
                if (cp < 0x80) {
                    out[0] = (unsigned char)cp;
                } else if (cp < 0x800) {
                    out[0] = (unsigned char)(0xc0 | cp >> 6);
                    out[1] = (unsigned char)(0x80 | (cp & 0x3f));
                    k = 2;
                } else if (cp < 0x10000) {
                    out[0] = (unsigned char)(0xe0 | cp >> 12);
                    out[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
                    out[2] = (unsigned char)(0x80 | (cp & 0x3f));
                    k = 3;
                } else {
                    out[0] = (unsigned char)(0xf0 | cp >> 18);
                    out[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
                    out[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
                    out[3] = (unsigned char)(0x80 | (cp & 0x3f));
                    k = 4;
                }
            }
        }
        if (j + k > raw_n)
            return 0;
        for (size_t t = 0; t < k; t++)
            if ((unsigned char)raw[j + t] != out[t])
                return 0;
        j += k;
    }
    return j == raw_n;
}

/* One RFC 4180 field at p: its value into out (NUL-terminated; *over set when it did not fit).
 * Returns the position after it (at ',' or the end), or NULL when the quoting is broken. */
static const char *csv_field(const char *p, const char *e, char *out, size_t cap, size_t *len,
                             int *over)
{
    size_t n = 0;
    *over = 0;
    if (p < e && *p == '"') {
        for (p++;; p++) {
            if (p == e)
                return NULL;
            if (*p == '"') {
                if (p + 1 < e && p[1] == '"')
                    p++;
                else
                    break;
            }
            if (n + 1 < cap)
                out[n++] = *p;
            else
                *over = 1;
        }
        p++;
        if (p < e && *p != ',')
            return NULL;
    } else {
        for (; p < e && *p != ','; p++) {
            if (n + 1 < cap)
                out[n++] = *p;
            else
                *over = 1;
        }
    }
    out[n] = '\0';
    *len = n;
    return p;
}

/* LINE_OK: signed (batch), imported (import, check); LINE_NOT_IMPORTED: check only. */
enum line_kind { LINE_OK, LINE_NOT_IMPORTED, LINE_FAILED, LINE_SUMMARY, LINE_STREAM_ERROR };

/* An account line's status (import, check), or -1 when it is none the job answers. */
static int account_kind(const struct batch *b, const struct json_scan *js)
{
#define STATUS_IS(s) (js->status_len == sizeof(s) - 1 && memcmp(js->status, s, js->status_len) == 0)
    if (STATUS_IS("imported"))
        return LINE_OK;
    if (STATUS_IS("not_imported") && b->job == USERSIG_JOB_CHECK)
        return LINE_NOT_IMPORTED;
    if (STATUS_IS("failed"))
        return LINE_FAILED;
    return -1;
#undef STATUS_IS
}

/* Whether an answer's identifier (a JSON string body, escapes intact, or a CSV field) is the
 * input line it answers: the line itself, or the "identifier" of an NDJSON line. */
static int answer_is_for(const struct batch *b, const char *id, size_t id_len, int id_json,
                         int over, const char *sent, size_t sent_len)
{
    if (!id_json)
        return !over && id_len == sent_len && memcmp(id, sent, id_len) == 0;
    if (!b->ndjson)
        return json_str_equals(id, id_len, sent, sent_len);
    json_error_t jerr;
    json_t *o = json_loadb(sent, sent_len, 0, &jerr);
    json_t *v = json_object_get(o, "identifier");
    int rc = json_is_string(v) &&
             json_str_equals(id, id_len, json_string_value(v), json_string_length(v));
    json_decref(o);
    return rc;
}

/* Reads {"error":{"code","message"}} (a refusal, or a batch stopped mid-way) into code/msg. */
static int error_json(const char *s, size_t n, char *code, size_t code_cap, char *msg,
                      size_t msg_cap)
{
    json_error_t jerr;
    json_t *root = json_loadb(s, n, 0, &jerr);
    json_t *err = json_object_get(root, "error");
    const char *c = json_string_value(json_object_get(err, "code"));
    const char *m = json_string_value(json_object_get(err, "message"));
    int rc = c != NULL ? 0 : -1;
    usersig_http_clean_copy(code, code_cap, c != NULL ? c : "?", strlen(c != NULL ? c : "?"));
    usersig_http_clean_copy(msg, msg_cap, m != NULL ? m : "", strlen(m != NULL ? m : ""));
    json_decref(root);
    return rc;
}

/* #error,code=...,message=... (the CSV form of a batch stopped mid-way: admin-api/batch.c; the
 * message runs to the end of the line, commas and all) into code/msg. */
static int error_csv(const char *s, size_t n, char *code, size_t code_cap, char *msg,
                     size_t msg_cap)
{
    const char *e = s + n, *p = s + strlen("#error,"), *c = NULL, *ce = NULL, *m = NULL;
    if ((size_t)(e - p) >= 5 && memcmp(p, "code=", 5) == 0) {
        c = p + 5;
        ce = memchr(c, ',', (size_t)(e - c));
        if (ce == NULL)
            ce = e;
        p = ce < e ? ce + 1 : e;
        if ((size_t)(e - p) >= 8 && memcmp(p, "message=", 8) == 0)
            m = p + 8;
    }
    usersig_http_clean_copy(code, code_cap, c != NULL ? c : "?", c != NULL ? (size_t)(ce - c) : 1);
    usersig_http_clean_copy(msg, msg_cap, m != NULL ? m : "", m != NULL ? (size_t)(e - m) : 0);
    return c != NULL && ce > c ? 0 : -1;
}

/* A count the summary must have (>= 0) into *out; 0, or -1 when it is missing or negative. */
static int summary_count(json_t *o, const char *name, uint64_t *out)
{
    json_t *v = json_object_get(o, name);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

/* The accounts summary: {job_id,state,count,imported,failed,calls,sha256[,not_imported]}. */
static int summary_accounts(const struct batch *b, json_t *o, struct summary *sum)
{
    const char *id = json_string_value(json_object_get(o, "job_id"));
    const char *sha = json_string_value(json_object_get(o, "sha256"));
    const char *st = json_string_value(json_object_get(o, "state"));
    if (sha == NULL || st == NULL || summary_count(o, "count", &sum->count) != 0 ||
        summary_count(o, "imported", &sum->signed_n) != 0 ||
        summary_count(o, "failed", &sum->failed) != 0 ||
        summary_count(o, "calls", &sum->calls) != 0 ||
        (b->job == USERSIG_JOB_CHECK && summary_count(o, "not_imported", &sum->not_imported) != 0))
        return -1;
    usersig_http_clean_copy(sum->sha256, sizeof sum->sha256, sha, strlen(sha));
    usersig_http_clean_copy(sum->state, sizeof sum->state, st, strlen(st));
    usersig_http_clean_copy(sum->batch_id, sizeof sum->batch_id, id != NULL ? id : "?",
                            strlen(id != NULL ? id : "?"));
    return 0;
}

static int summary_ndjson(const struct batch *b, const char *s, size_t n, struct summary *sum)
{
    json_error_t jerr;
    json_t *root = json_loadb(s, n, 0, &jerr);
    json_t *o = json_object_get(root, "summary");
    json_t *cnt = json_object_get(o, "count"), *sig = json_object_get(o, "signed"),
           *fai = json_object_get(o, "failed"), *kv = json_object_get(o, "key_version");
    const char *id = json_string_value(json_object_get(o, "batch_id"));
    const char *sha = json_string_value(json_object_get(o, "sha256"));
    int rc = -1;
    if (b->job != USERSIG_JOB_BATCH) {
        rc = summary_accounts(b, o, sum);
    } else if (json_is_integer(cnt) && json_is_integer(sig) && json_is_integer(fai) &&
               sha != NULL && json_integer_value(cnt) >= 0 && json_integer_value(sig) >= 0 &&
               json_integer_value(fai) >= 0) {
        sum->count = (uint64_t)json_integer_value(cnt);
        sum->signed_n = (uint64_t)json_integer_value(sig);
        sum->failed = (uint64_t)json_integer_value(fai);
        usersig_http_clean_copy(sum->sha256, sizeof sum->sha256, sha, strlen(sha));
        usersig_http_clean_copy(sum->batch_id, sizeof sum->batch_id, id != NULL ? id : "?",
                                strlen(id != NULL ? id : "?"));
        if (json_is_integer(kv))
            snprintf(sum->key_version, sizeof sum->key_version, "%" JSON_INTEGER_FORMAT,
                     json_integer_value(kv));
        else
            snprintf(sum->key_version, sizeof sum->key_version, "?");
        rc = 0;
    }
    json_decref(root);
    return rc;
}

/* #summary,batch_id=...,count=...,signed=...,failed=...,key_version=...,sha256=... */
static int summary_csv(const char *s, size_t n, struct summary *sum)
{
    const char *e = s + n, *p = s + strlen("#summary,");
    int have = 0;
    snprintf(sum->batch_id, sizeof sum->batch_id, "?");
    snprintf(sum->key_version, sizeof sum->key_version, "?");
    while (p < e) {
        const char *f = p, *fe = memchr(p, ',', (size_t)(e - p));
        if (fe == NULL)
            fe = e;
        const char *eq = memchr(f, '=', (size_t)(fe - f));
        p = fe < e ? fe + 1 : e;
        if (eq == NULL)
            continue;
        size_t klen = (size_t)(eq - f), vlen = (size_t)(fe - eq - 1);
        char v[72];
        usersig_http_clean_copy(v, sizeof v, eq + 1, vlen);
        uint64_t x;
#define FIELD_IS(name) (klen == sizeof(name) - 1 && memcmp(f, name, klen) == 0)
        if (FIELD_IS("batch_id"))
            memcpy(sum->batch_id, v, sizeof sum->batch_id);
        else if (FIELD_IS("key_version"))
            usersig_http_clean_copy(sum->key_version, sizeof sum->key_version, v, strlen(v));
        else if (FIELD_IS("sha256") && (have |= 1))
            memcpy(sum->sha256, v, sizeof sum->sha256);
        else if (FIELD_IS("count") && usersig_http_parse_u64(v, UINT64_MAX, &x) == 0 && (have |= 2))
            sum->count = x;
        else if (FIELD_IS("signed") && usersig_http_parse_u64(v, UINT64_MAX, &x) == 0 &&
                 (have |= 4))
            sum->signed_n = x;
        else if (FIELD_IS("failed") && usersig_http_parse_u64(v, UINT64_MAX, &x) == 0 &&
                 (have |= 8))
            sum->failed = x;
#undef FIELD_IS
    }
    return have == 15 ? 0 : -1;
}

static void note_failure(struct batch *b, uint64_t lineno, const char *line, size_t len,
                         const char *csv_code)
{
    b->failed++;
    if (b->failed > SHOW_FAILED)
        return;
    char *code = b->failed_codes[b->failed - 1], msg[8];
    b->failed_lines[b->failed - 1] = lineno;
    if (csv_code != NULL) /* named on stderr at the end: cleaned as the JSON ones are */
        usersig_http_clean_copy(code, sizeof b->failed_codes[0], csv_code, strlen(csv_code));
    else
        error_json(line, len, code, sizeof b->failed_codes[0], msg, sizeof msg);
}

/* One answer line (without its newline). Returns 0, or -1 on a protocol error (printed). */
static int answer_line(struct batch *b, struct span *s, const char *line, size_t len)
{
    size_t plen = len > 0 && line[len - 1] == '\r' ? len - 1 : len;
    const char *id = NULL;
    size_t id_len = 0;
    int id_json = 0, over = 0;
    char csv_id[80], csv_tok[8], csv_code[40];
    enum line_kind kind;
    char shown[120];

    if (s->sum.seen || s->stream_error) {
        usersig_batch_say(b, "the server sent a line after the %s line",
                          s->sum.seen ? "summary" : "error");
        return -1;
    }
    if (!b->csv) {
        struct json_scan js;
        if (json_scan(line, plen, &js) != 0)
            goto unexpected;
        int k = -1;
        if (js.has_summary)
            kind = LINE_SUMMARY;
        else if (b->job != USERSIG_JOB_BATCH && js.has_id) {
            if (!js.has_status || (k = account_kind(b, &js)) < 0)
                goto unexpected;
            kind = (enum line_kind)k;
        } else if (js.has_id && js.has_error)
            kind = LINE_FAILED;
        else if (js.has_id && js.has_usersig)
            kind = LINE_OK;
        else if (js.has_error)
            kind = LINE_STREAM_ERROR;
        else
            goto unexpected;
        id = js.id;
        id_len = js.id_len;
        id_json = 1;
    } else if (plen >= 9 && memcmp(line, "#summary,", 9) == 0) {
        kind = LINE_SUMMARY;
    } else if (plen >= 7 && memcmp(line, "#error,", 7) == 0) { /* a '#' id is always quoted */
        kind = LINE_STREAM_ERROR;
    } else if (plen > 1 && line[0] == '{' && line[1] == '"') { /* a '"' is always quoted */
        kind = LINE_STREAM_ERROR;
    } else {
        const char *e = line + plen, *p;
        size_t tok_len, code_len;
        int over2;
        p = csv_field(line, e, csv_id, sizeof csv_id, &id_len, &over);
        if (p == NULL || p == e)
            goto unexpected;
        p = csv_field(p + 1, e, csv_tok, sizeof csv_tok, &tok_len, &over2);
        if (p == NULL)
            goto unexpected;
        kind = tok_len > 0 ? LINE_OK : LINE_FAILED;
        csv_code[0] = '\0';
        if (kind == LINE_FAILED && p < e &&
            csv_field(p + 1, e, csv_code, sizeof csv_code, &code_len, &over2) == NULL)
            goto unexpected;
        if (csv_code[0] == '\0')
            snprintf(csv_code, sizeof csv_code, "?");
        id = csv_id;
    }

    if (kind == LINE_SUMMARY) {
        int rc = b->csv ? summary_csv(line, plen, &s->sum) : summary_ndjson(b, line, plen, &s->sum);
        if (rc != 0) {
            usersig_http_clean_copy(shown, sizeof shown, line, plen);
            usersig_batch_say(b, "the server's summary line lacks a field: %s", shown);
            return -1;
        }
        s->sum.seen = 1;
        return 0;
    }
    if (kind == LINE_STREAM_ERROR) {
        int rc = line[0] == '#' ? error_csv(line, plen, s->err_code, sizeof s->err_code, s->err_msg,
                                            sizeof s->err_msg)
                                : error_json(line, plen, s->err_code, sizeof s->err_code,
                                             s->err_msg, sizeof s->err_msg);
        if (rc != 0)
            goto unexpected;
        s->stream_error = 1;
        return 0;
    }
    const char *body, *sent, *nl;
    uint64_t lineno, in_end = 0;
    if (s->stream) { /* the oldest identifier sent and not answered */
        struct pending *q = &b->pend;
        if (q->head == q->tail) {
            usersig_batch_say(
                b, "the server answered more lines than the %" PRIu64 " identifiers sent so far",
                b->sent_items);
            return -1;
        }
        body = q->buf;
        memcpy(&lineno, body + q->head, 8);
        memcpy(&in_end, body + q->head + 8, 8);
        sent = body + q->head + PENDING_HDR;
        nl = memchr(sent, '\n', q->tail - q->head - PENDING_HDR);
    } else {
        if (s->received == s->nitems) {
            usersig_batch_say(
                b, "the server answered more lines than the %" PRIu64 " identifiers sent",
                s->nitems);
            return -1;
        }
        body = b->req.body;
        sent = body + s->next_id;
        nl = memchr(sent, '\n', s->off + s->len - s->next_id);
        uint64_t index = s->first_index + s->received;
        while (s->gap_cursor < b->req.ngaps && b->req.gaps[s->gap_cursor].index <= index)
            s->skipped += b->req.gaps[s->gap_cursor++].skipped;
        lineno = b->req.first_line + index + s->skipped;
    }
    size_t sent_len = (size_t)(nl - sent);
    /* The line numbers named at the end rest on the answer being in input order. Error lines may
     * show an identifier the server could not echo as it was; signed ones are compared. */
    if ((kind == LINE_OK || kind == LINE_NOT_IMPORTED) &&
        !answer_is_for(b, id, id_len, id_json, over, sent, sent_len)) {
        usersig_http_clean_copy(shown, sizeof shown, line, plen);
        usersig_batch_say(b,
                          "answer line %" PRIu64 " is not for input line %" PRIu64
                          " (the answer is out of order): %s",
                          s->received + 1, lineno, shown);
        return -1;
    }
    if (s->stream) {
        b->pend.head = (size_t)(nl + 1 - body);
        b->answered_in = in_end;
        if (b->pend.head == b->pend.tail)
            b->pend.head = b->pend.tail = b->pend.replay = 0;
    } else {
        s->next_id = (size_t)(nl + 1 - body);
    }
    EVP_DigestUpdate(s->sha, line, len);
    EVP_DigestUpdate(s->sha, "\n", 1);
    fwrite_unlocked(line, 1, len, stdout);
    putc_unlocked('\n', stdout);
    s->received++;
    b->done++;
    b->last_line = lineno;
    if (kind == LINE_OK) {
        s->ok++;
        b->signed_n++;
    } else if (kind == LINE_NOT_IMPORTED) {
        s->not_imported++;
        b->not_imported++;
    } else {
        s->failed++;
        note_failure(b, lineno, line, plen, b->csv ? csv_code : NULL);
    }
    if ((b->done & 1023) == 0)
        usersig_batch_progress(b, s->next_id, 0);
    return 0;
unexpected:
    usersig_http_clean_copy(shown, sizeof shown, line, plen);
    usersig_batch_say(b, "unexpected line in the server's answer: %s", shown);
    return -1;
}

/* After the last byte: the stream must end in a summary that agrees with what came. */
static int span_finish(struct batch *b, struct span *s)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    if (s->stream_error) {
        usersig_batch_say(b,
                          "the server stopped the %s after %" PRIu64 " of the %" PRIu64
                          " identifiers %s: %s: %s",
                          usersig_batch_job_name(b), s->received, s->nitems,
                          s->stream ? "sent" : "of a request", s->err_code, s->err_msg);
        return -1;
    }
    if (!s->sum.seen) {
        usersig_batch_say(b,
                          "the answer ended without its summary line, after %" PRIu64 " of %" PRIu64
                          " identifiers",
                          s->received, s->nitems);
        return -1;
    }
    EVP_DigestFinal_ex(s->sha, md, &mdlen);
    for (unsigned i = 0; i < mdlen; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    if (strcasecmp(hex, s->sum.sha256) != 0) {
        usersig_batch_say(b,
                          "SHA-256 MISMATCH in %s %s: the server's summary says %s, the %" PRIu64
                          " lines received hash to %s: the output is not what the server recorded",
                          usersig_batch_job_name(b), s->sum.batch_id, s->sum.sha256, s->received,
                          hex);
        b->untrusted = 1;
        return -1;
    }
    const char *job = usersig_batch_job_name(b);
    const char *ok = b->job == USERSIG_JOB_BATCH ? "signed" : "imported";
    char ni_sum[48] = "", ni_got[48] = "";
    if (b->job == USERSIG_JOB_CHECK) {
        snprintf(ni_sum, sizeof ni_sum, ", not_imported %" PRIu64, s->sum.not_imported);
        snprintf(ni_got, sizeof ni_got, ", %" PRIu64 " not_imported", s->not_imported);
    }
    if (s->sum.count != s->nitems || s->sum.count != s->received || s->sum.signed_n != s->ok ||
        s->sum.failed != s->failed || s->sum.not_imported != s->not_imported) {
        usersig_batch_say(b,
                          "%s %s: the summary (count %" PRIu64 ", %s %" PRIu64 ", failed %" PRIu64
                          "%s) does not match the %" PRIu64 " identifiers sent and the %" PRIu64
                          " lines received (%" PRIu64 " %s, %" PRIu64 " failed%s)",
                          job, s->sum.batch_id, s->sum.count, ok, s->sum.signed_n, s->sum.failed,
                          ni_sum, s->nitems, s->received, s->ok, ok, s->failed, ni_got);
        b->untrusted = 1;
        return -1;
    }
    if (b->job != USERSIG_JOB_BATCH && strcmp(s->sum.state, "complete") != 0) {
        usersig_batch_say(b, "%s %s: the server recorded the job as %s, not complete", job,
                          s->sum.batch_id, s->sum.state);
        return -1;
    }
    usersig_batch_progress_clear(b);
    if (b->job == USERSIG_JOB_BATCH)
        fprintf(stderr,
                "batch %s: %" PRIu64 " signed %" PRIu64 " failed %" PRIu64
                " key_version %s sha256 %s\n",
                s->sum.batch_id, s->sum.count, s->sum.signed_n, s->sum.failed, s->sum.key_version,
                s->sum.sha256);
    else if (b->job == USERSIG_JOB_IMPORT)
        fprintf(stderr,
                "import %s: %" PRIu64 " imported %" PRIu64 " failed %" PRIu64 " calls %" PRIu64
                " sha256 %s\n",
                s->sum.batch_id, s->sum.count, s->sum.signed_n, s->sum.failed, s->sum.calls,
                s->sum.sha256);
    else
        fprintf(stderr,
                "check %s: %" PRIu64 " imported %" PRIu64 " not_imported %" PRIu64
                " failed %" PRIu64 " calls %" PRIu64 " sha256 %s\n",
                s->sum.batch_id, s->sum.count, s->sum.signed_n, s->sum.not_imported, s->sum.failed,
                s->sum.calls, s->sum.sha256);
    return 0;
}

/* A 200 answer's next bytes: each whole line checked and written, a line cut by the piece's end
 * kept in b->line until the rest comes. */
int usersig_batch_feed(struct batch *b, struct span *s, const char *p, size_t n)
{
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl != NULL ? (size_t)(nl - p) : n;
        if (b->line_len + take > sizeof b->line) {
            usersig_batch_say(b, "the server sent a line longer than %zu bytes", sizeof b->line);
            return -1;
        }
        if (nl == NULL || b->line_len > 0) {
            memcpy(b->line + b->line_len, p, take);
            b->line_len += take;
        }
        if (nl == NULL)
            break;
        int rc =
            b->line_len > 0 ? answer_line(b, s, b->line, b->line_len) : answer_line(b, s, p, take);
        b->line_len = 0;
        if (rc != 0)
            return -1;
        p = nl + 1;
        n -= take + 1;
    }
    return 0;
}

/* The end of a 200 answer: a last line without its newline, then the summary check. */
int usersig_batch_stream_end(struct batch *b, struct span *s)
{
    if (s->stream)
        s->nitems = b->sent_items;
    if (b->line_len > 0 && answer_line(b, s, b->line, b->line_len) != 0)
        return -1;
    b->line_len = 0;
    return span_finish(b, s);
}

/* Any other status: the error body, bounded. Returns 1 for 413 (the caller splits), else -1. */
int usersig_batch_refused(struct batch *b, const struct usersig_http_answer *a, const char *body,
                          size_t len)
{
    if (len > MAX_ERROR_BODY)
        len = MAX_ERROR_BODY;
    /* The API's {"error":{code,message}}; a proxy's or the HTTP library's own page is named by
     * the status line, its body shown only when it is short plain text. */
    char code[64], msg[256], rid[80] = "";
    if (a->request_id[0] != '\0')
        snprintf(rid, sizeof rid, " (request id %s)", a->request_id);
    if (error_json(body, len, code, sizeof code, msg, sizeof msg) == 0) {
        snprintf(b->refusal, sizeof b->refusal, "HTTP %d: %s: %s%s", a->status, code, msg, rid);
    } else {
        while (len > 0 && (body[len - 1] == '\n' || body[len - 1] == '\r'))
            len--;
        int text = len > 0 && len <= 200 && body[0] != '<' && body[0] != '{';
        usersig_http_clean_copy(msg, sizeof msg, body, text ? len : 0);
        snprintf(b->refusal, sizeof b->refusal, "HTTP %d %s%s%s%s", a->status, a->reason,
                 text ? ": " : "", msg, rid);
    }
    if (a->status == 413)
        return 1;
    if (a->status == 429)
        return 2;
    usersig_batch_say(b, "the server answered %s", b->refusal);
    if (a->status == 401)
        usersig_batch_say(b, "check the token (--token-file or $USERSIGD_TOKEN)");
    return -1;
}
