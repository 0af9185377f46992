/*
 * Admin API audit: read the audit log (filtered, paged by sequence) and verify its chain, alone
 * or up to a signed checkpoint; list the checkpoints and publish their public key. The handlers
 * parse the query, call one operation of the core (op_audit.h, which keeps a token scoped to
 * some apps to the events of those apps; checkpoint.h) and build the one reply.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "checkpoint.h"
#include "decimal.h"
#include "handlers.h"
#include "hex.h"
#include "log.h"
#include "op_audit.h"

#define AUDIT_DEFAULT_LIMIT 100
#define AUDIT_QUERY_TEXT_MAX 256
#define MAX_UNIX_SECONDS INT64_C(253402300799) /* 9999-12-31T23:59:59Z */

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* Unix seconds (decimal digits) or RFC 3339 ("2026-11-26T07:40:59Z", "...59.5+08:00") into
 * Unix microseconds. -1 when s is neither. */
static int parse_time(const char *s, int64_t *out_us)
{
    int year, mon, day, hour, min, sec, off_h = 0, off_m = 0, sign = 0;
    int64_t frac_us = 0, scale = 100000;
    size_t len = strlen(s);
    struct tm tm = {0};
    const char *p;
    time_t t;

    if (len > 0 && decimal_span(s, len) == len) {
        uint64_t v;
        if (decimal_parse(s, len, MAX_UNIX_SECONDS, 0, &v) != 0)
            return -1;
        *out_us = (int64_t)v * 1000000;
        return 0;
    }
    if (len < 20 || digits(s, 4, &year) || s[4] != '-' || digits(s + 5, 2, &mon) || s[7] != '-' ||
        digits(s + 8, 2, &day) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        digits(s + 11, 2, &hour) || s[13] != ':' || digits(s + 14, 2, &min) || s[16] != ':' ||
        digits(s + 17, 2, &sec))
        return -1;
    p = s + 19;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return -1;
        for (; *p >= '0' && *p <= '9'; p++) {
            frac_us += (*p - '0') * scale;
            scale /= 10;
        }
    }
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p == '-' ? -1 : 1;
        if (digits(p + 1, 2, &off_h) || p[3] != ':' || digits(p + 4, 2, &off_m) || off_h > 23 ||
            off_m > 59)
            return -1;
        p += 6;
    } else {
        return -1;
    }
    if (*p != '\0' || mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 ||
        sec > 59)
        return -1;
    tm.tm_year = year - 1900;
    tm.tm_mon = mon - 1;
    tm.tm_mday = day;
    tm.tm_hour = hour;
    tm.tm_min = min;
    tm.tm_sec = sec;
    t = timegm(&tm);
    if (tm.tm_mday != day || tm.tm_mon != mon - 1) /* normalized: Feb 30 and the like */
        return -1;
    t -= (time_t)sign * (off_h * 3600 + off_m * 60);
    *out_us = (int64_t)t * 1000000 + frac_us;
    return 0;
}

static json_t *int_or_null(int64_t v)
{
    return v != 0 ? json_integer(v) : json_null();
}

/* The AuditEvent of openapi.yaml, as reader p may see it; NULL when out of memory. */
static json_t *event_json(const struct principal *p, const struct audit_event *ev)
{
    char mac[2 * AUDIT_MAC_LEN + 1];
    json_error_t jerr;
    json_t *details = json_loads(ev->details, JSON_DECODE_ANY, &jerr);
    json_t *o;

    if (details == NULL) {
        /* Stored verbatim and MACed: show it as it is rather than hide the event. */
        log_warn("audit event %lld: details are not JSON", (long long)ev->seq);
        details = json_pack("{s:s}", "unparsed", ev->details);
        if (details == NULL)
            return NULL;
    }
    op_audit_details_for(p, details);
    hex_encode(ev->mac, sizeof ev->mac, mac);
    o = json_object();
    if (o == NULL) {
        json_decref(details);
        return NULL;
    }
    if (json_object_set_new(o, "seq", json_integer(ev->seq)) != 0 ||
        json_object_set_new(o, "at", service_time_json(ev->at_us)) != 0 ||
        json_object_set_new(o, "actor_id", int_or_null(ev->actor_id)) != 0 ||
        json_object_set_new(o, "actor_name", json_string(ev->actor_name)) != 0 ||
        json_object_set_new(o, "action", json_string(ev->action)) != 0 ||
        json_object_set_new(o, "sdkappid", int_or_null(ev->sdkappid)) != 0 ||
        json_object_set_new(o, "key_version", int_or_null(ev->key_version)) != 0 ||
        json_object_set_new(o, "outcome", json_string(ev->outcome)) != 0 ||
        json_object_set_new(o, "details", details) != 0 ||
        json_object_set_new(o, "mac", json_string(mac)) != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* Reads the query into f; replies 400 and returns -1 when a parameter is wrong. */
static int parse_filter(struct api_request *r, struct store_audit_filter *f)
{
    static const char *const texts[] = {"action", "actor"};
    static const char *const times[] = {"since", "until"};
    int64_t v;

    memset(f, 0, sizeof *f);
    f->limit = AUDIT_DEFAULT_LIMIT;
    switch (api_query_int64(r, "sdkappid", 1, UINT32_MAX, &v)) {
    case API_QUERY_OK:
        f->sdkappid = (uint32_t)v;
        break;
    case API_QUERY_ABSENT:
        break;
    case API_QUERY_INVALID:
        api_reply_error(r, API_ERR_INVALID_PARAM, "sdkappid: an integer from 1 to 4294967295");
        return -1;
    }
    switch (api_query_int64(r, "after", 0, INT64_MAX, &v)) {
    case API_QUERY_OK:
        f->after_seq = v;
        break;
    case API_QUERY_ABSENT:
        break;
    case API_QUERY_INVALID:
        api_reply_error(r, API_ERR_INVALID_PARAM, "after: an integer from 0 (a seq)");
        return -1;
    }
    if (api_query_limit(r, STORE_AUDIT_PAGE_MAX, &f->limit) != 0)
        return -1;
    for (int i = 0; i < 2; i++) {
        const char *s = api_query(r, texts[i]);
        if (s != NULL && (s[0] == '\0' || strlen(s) > AUDIT_QUERY_TEXT_MAX)) {
            api_reply_error(r, API_ERR_INVALID_PARAM, "%s: 1 to %d bytes", texts[i],
                            AUDIT_QUERY_TEXT_MAX);
            return -1;
        }
    }
    f->action = api_query(r, "action");
    f->actor = api_query(r, "actor");
    for (int i = 0; i < 2; i++) {
        const char *s = api_query(r, times[i]);
        if (s != NULL && parse_time(s, &v) != 0) {
            api_reply_error(r, API_ERR_INVALID_PARAM,
                            "%s: an RFC 3339 time (2026-11-26T07:40:59Z) or Unix seconds",
                            times[i]);
            return -1;
        }
        if (s != NULL && i == 0)
            f->since_us = v;
        /* 0 means "unbounded" to the store: "before the epoch" is one microsecond earlier. */
        if (s != NULL && i == 1)
            f->until_us = v != 0 ? v : -1;
    }
    return 0;
}

/* The one error reply of an operation: its message, or the table's default. */
static void reply_op_error(struct api_request *r, enum api_error err, const char *msg)
{
    if (msg[0] != '\0')
        api_reply_error(r, err, "%s", msg);
    else
        api_reply_error(r, err, NULL);
}

void handle_audit_list(struct api_request *r)
{
    struct op_audit_query_in in;
    struct op_audit_query_out out;
    json_t *list = NULL, *body = NULL;
    char msg[OP_MSG_BUF];
    enum api_error err;

    if (parse_filter(r, &in.filter) != 0)
        return;
    err = op_audit_query(r->ctx, r->principal, &in, &out, msg, sizeof msg);
    if (err != API_OK) {
        reply_op_error(r, err, msg);
        return;
    }
    list = json_array();
    for (size_t i = 0; list != NULL && i < out.n; i++) {
        if (json_array_append_new(list, event_json(r->principal, out.events[i])) != 0) {
            json_decref(list);
            list = NULL;
        }
    }
    body = list != NULL ? json_object() : NULL;
    if (body == NULL) {
        json_decref(list);
    } else if (json_object_set_new(body, "events", list) != 0 ||
               json_object_set_new(body, "next_after",
                                   out.next_after != 0 ? json_integer(out.next_after)
                                                       : json_null()) != 0) {
        json_decref(body);
        body = NULL;
    }
    op_audit_query_free(&out);
    api_reply_json(r, 200, body); /* NULL: 500 */
}

/* The chain's fields of the verify replies (AuditVerification); -1 when out of memory. */
static int chain_fields(json_t *body, const struct audit_verify_result *res)
{
    char mac[2 * AUDIT_MAC_LEN + 1];
    hex_encode(res->last_mac, sizeof res->last_mac, mac);
    return json_object_set_new(body, "checked", json_integer(res->checked)) != 0 ||
                   json_object_set_new(body, "last_seq", json_integer(res->last_seq)) != 0 ||
                   json_object_set_new(body, "last_mac", json_string(mac)) != 0 ||
                   json_object_set_new(body, "problem",
                                       json_string(audit_problem_name(res->problem))) != 0 ||
                   json_object_set_new(body, "bad_seq", int_or_null(res->bad_seq)) != 0 ||
                   json_object_set_new(body, "found_seq", int_or_null(res->found_seq)) != 0
               ? -1
               : 0;
}

/* A checkpoint and what checking it found (CheckedCheckpoint); NULL when out of memory. */
static json_t *checked_json(const struct store_ckpt *c, const struct ckpt_check *chk,
                            const char *key)
{
    json_t *o = ckpt_json(c);
    if (o != NULL &&
        (json_object_set_new(o, "ok", json_boolean(chk->problem == CKPT_OK)) != 0 ||
         json_object_set_new(o, "problem", json_string(ckpt_problem_name(chk->problem))) != 0 ||
         json_object_set_new(o, "signature_ok", json_boolean(chk->signature_ok)) != 0 ||
         json_object_set_new(o, "key", json_string(key)) != 0)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

void handle_audit_verify(struct api_request *r)
{
    struct audit_verify_result res;
    struct store_ckpt latest;
    struct ckpt_check chk;
    bool has_latest = false;
    char msg[OP_MSG_BUF];
    json_t *body;
    enum api_error err = op_audit_verify_status(r->ctx, r->principal, &res, &latest, &has_latest,
                                                &chk, msg, sizeof msg);

    if (err != API_OK) {
        reply_op_error(r, err, msg);
        return;
    }
    bool ok = res.ok && (!has_latest || chk.problem == CKPT_OK);
    body = json_object();
    if (body != NULL &&
        (json_object_set_new(body, "ok", json_boolean(ok)) != 0 || chain_fields(body, &res) != 0 ||
         json_object_set_new(body, "checkpoint",
                             has_latest ? checked_json(&latest, &chk, "stored") : json_null()) !=
             0)) {
        json_decref(body);
        body = NULL;
    }
    api_reply_json(r, 200, body); /* NULL: 500 */
}

static const struct api_field verify_checkpoint_fields[] = {
    {"checkpoint", API_FIELD_OBJECT, API_FIELD_REQUIRED},
    {"public_key", API_FIELD_STRING, 0},
    {NULL, 0, 0},
};

void handle_audit_verify_checkpoint(struct api_request *r)
{
    const json_t *j_pub = json_object_get(r->body, "public_key");
    uint8_t pub[KEYRING_CKPT_KEY_BYTES];
    struct store_ckpt c;
    struct ckpt_check chk;
    char msg[OP_MSG_BUF];
    json_t *body;
    enum api_error err;

    if (api_require_fields(r, verify_checkpoint_fields) != 0)
        return;
    if (ckpt_from_json(json_object_get(r->body, "checkpoint"), &c, msg, sizeof msg) != 0) {
        api_reply_error(r, API_ERR_INVALID_FIELD, "%s", msg);
        return;
    }
    if (j_pub != NULL && keyring_ckpt_public_parse(json_string_value(j_pub),
                                                   json_string_length(j_pub), pub) != KEYRING_OK) {
        api_reply_error(r, API_ERR_INVALID_FIELD,
                        "public_key: an Ed25519 public key, as PEM or as the base64 of its 32 "
                        "bytes (GET /v1/audit/checkpoints/key)");
        return;
    }
    err = op_audit_verify_checkpoint(r->ctx, r->principal, &c, j_pub != NULL ? pub : NULL, &chk,
                                     msg, sizeof msg);
    if (err != API_OK) {
        reply_op_error(r, err, msg);
        return;
    }
    body = json_object();
    if (body != NULL &&
        (json_object_set_new(body, "ok", json_boolean(chk.problem == CKPT_OK)) != 0 ||
         chain_fields(body, &chk.chain) != 0 ||
         json_object_set_new(body, "checkpoint",
                             checked_json(&c, &chk, j_pub != NULL ? "given" : "stored")) != 0)) {
        json_decref(body);
        body = NULL;
    }
    api_reply_json(r, 200, body); /* NULL: 500 */
}

void handle_audit_checkpoint_list(struct api_request *r)
{
    struct store_ckpt *rows = NULL;
    size_t n = 0, limit = AUDIT_DEFAULT_LIMIT;
    int64_t after = 0;
    bool more = false;
    char msg[OP_MSG_BUF];
    json_t *list = NULL, *body = NULL;

    if (api_query_int64(r, "after", 0, INT64_MAX, &after) == API_QUERY_INVALID) {
        api_reply_error(r, API_ERR_INVALID_PARAM, "after: an integer from 0 (a seq)");
        return;
    }
    if (api_query_limit(r, 1000, &limit) != 0)
        return;
    enum api_error err =
        op_audit_checkpoints(r->ctx, r->principal, after, limit, &rows, &n, &more, msg, sizeof msg);
    if (err != API_OK) {
        reply_op_error(r, err, msg);
        return;
    }
    list = json_array();
    for (size_t i = 0; list != NULL && i < n; i++) {
        if (json_array_append_new(list, ckpt_json(&rows[i])) != 0) {
            json_decref(list);
            list = NULL;
        }
    }
    body = list != NULL ? json_object() : NULL;
    if (body == NULL) {
        json_decref(list);
    } else if (json_object_set_new(body, "checkpoints", list) != 0 ||
               json_object_set_new(body, "next_after",
                                   more && n > 0 ? json_integer(rows[n - 1].seq) : json_null()) !=
                   0) {
        json_decref(body);
        body = NULL;
    }
    free(rows);
    api_reply_json(r, 200, body); /* NULL: 500 */
}

void handle_audit_checkpoint_key(struct api_request *r)
{
    struct store_ckpt_key k;
    char msg[OP_MSG_BUF];
    enum api_error err = op_audit_checkpoint_key(r->ctx, r->principal, &k, msg, sizeof msg);

    if (err != API_OK) {
        reply_op_error(r, err, msg);
        return;
    }
    api_reply_json(r, 200, ckpt_key_json(&k)); /* NULL: 500 */
}
