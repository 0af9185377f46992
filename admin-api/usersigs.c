/*
 * Admin API usersigs: sign one UserSig or PrivateMapKey (the core's sign.h: cached app and key,
 * checked against the database in the signing group's transaction, so a rotation made by any
 * process is used by the next token), and verify a token (the core's verify.h: every live key
 * version of its app, then the other apps' keys on a signature mismatch, the usual cause of
 * Tencent's 70009). The handlers parse and reply; the core does the rest.
 */
#include "handlers.h"
#include "jsonw.h"
#include "service.h"
#include "sign.h"
#include "verify.h"

#include <openssl/crypto.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MSG_BUF 512

/* ---- sign ------------------------------------------------------------------------------------ */

static const struct api_field sign_fields[] = {
    {"identifier", API_FIELD_STRING, API_FIELD_REQUIRED},
    {"expire", API_FIELD_INTEGER, 0},
    {"room_id", API_FIELD_INTEGER, 0},
    {"room_str", API_FIELD_STRING, 0},
    {"privilege_map", API_FIELD_INTEGER, 0},
    {NULL, 0, 0},
};

/* The checks that need no app: room and privilege_map. API_OK, or the error with msg filled. */
static enum api_error sign_parse(const json_t *body, struct sign_input *in, char *msg, size_t cap)
{
    const json_t *id = json_object_get(body, "identifier");
    const json_t *expire = json_object_get(body, "expire");
    const json_t *room_id = json_object_get(body, "room_id");
    const json_t *room_str = json_object_get(body, "room_str");
    const json_t *priv = json_object_get(body, "privilege_map");

    memset(in, 0, sizeof *in);
    in->identifier = json_string_value(id);
    in->identifier_len = json_string_length(id);
    if (expire != NULL) {
        in->has_expire = true;
        in->expire = json_integer_value(expire);
    }
    if (room_id != NULL && room_str != NULL) {
        snprintf(msg, cap, "give room_id or room_str, not both");
        return API_ERR_BAD_ROOM;
    }
    if (room_id != NULL) {
        json_int_t v = json_integer_value(room_id);
        if (v < 1 || v > (json_int_t)UINT32_MAX) {
            snprintf(msg, cap, "room_id must be an integer from 1 to 4294967295");
            return API_ERR_BAD_ROOM;
        }
        in->room.kind = USERSIG_ROOM_NUMERIC;
        in->room.room_id = (uint32_t)v;
    } else if (room_str != NULL) {
        size_t len = json_string_length(room_str);
        if (len < 1 || len > USERSIG_MAX_ROOM_STR) {
            snprintf(msg, cap, "room_str must be 1 to %d bytes", USERSIG_MAX_ROOM_STR);
            return API_ERR_BAD_ROOM;
        }
        in->room.kind = USERSIG_ROOM_STRING;
        in->room.room_str = json_string_value(room_str);
        in->room.room_str_len = len;
    }
    if (priv != NULL) {
        json_int_t v = json_integer_value(priv);
        if (v < 0 || v > 255) {
            snprintf(msg, cap, "privilege_map must be an integer from 0 to 255");
            return API_ERR_BAD_PRIVILEGE;
        }
        if (in->room.kind == USERSIG_ROOM_NONE) {
            snprintf(msg, cap, "privilege_map needs a room: give room_id or room_str with it");
            return API_ERR_BAD_PRIVILEGE;
        }
        in->room.privilege_map = (uint32_t)v;
    } else if (in->room.kind != USERSIG_ROOM_NONE) {
        in->room.privilege_map = 255;
    }
    return API_OK;
}

/* The reply's text with its final newline, written directly (jsonw.h: the bytes json_dumps
 * gave for the same object); 0 when it does not fit. */
#define SIGN_REPLY_BUF (USERSIG_TOKEN_BUF + 512)
static size_t sign_reply(char *buf, size_t cap, uint32_t sdkappid, const struct sign_input *in,
                         uint32_t version, const char *token, size_t token_len, int64_t issued_at)
{
    struct jsonw w;
    jsonw_init(&w, buf, cap, 0);
    jsonw_object_begin(&w);
    jsonw_key(&w, "usersig");
    jsonw_string(&w, token, token_len);
    jsonw_key(&w, "sdkappid");
    jsonw_int(&w, sdkappid);
    jsonw_key(&w, "identifier");
    jsonw_string(&w, in->identifier, in->identifier_len);
    jsonw_key(&w, "key_version");
    jsonw_int(&w, version);
    jsonw_key(&w, "issued_at");
    jsonw_int(&w, issued_at);
    jsonw_key(&w, "expire_at");
    jsonw_int(&w, issued_at + in->expire);
    jsonw_key(&w, "expire");
    jsonw_int(&w, in->expire);
    jsonw_object_end(&w);
    jsonw_raw(&w, "\n", 1);
    return jsonw_finish(&w);
}

/* One sign in flight: the core's request and the HTTP request it answers. */
struct sign_call {
    struct sign_request req;
    struct api_request *r;
};

/* A sign over a rate limit says when to come back: Retry-After in whole seconds, rounded up.
 * 0, or -1 when the header could not be added (a 500 replied instead). */
static int reply_retry_after(struct api_request *r, const struct sign_request *req)
{
    char v[24];
    if (req->err != API_ERR_TOKEN_SIGNS_PER_SECOND && req->err != API_ERR_APP_SIGNS_PER_SECOND)
        return 0;
    snprintf(v, sizeof v, "%lld", (long long)((req->retry_after_ms + 999) / 1000));
    if (api_reply_header(r, "Retry-After", v) != 0) {
        api_reply_error(r, API_ERR_INTERNAL, "out of memory");
        return -1;
    }
    return 0;
}

/* On the loop thread, once the group the sign joined has committed (or failed). */
static void sign_done(struct sign_request *req)
{
    struct sign_call *c = req->arg;
    if (req->err == API_OK) {
        char text[SIGN_REPLY_BUF];
        size_t n = sign_reply(text, sizeof text, req->sdkappid, &req->in, req->key_version,
                              req->token, req->token_len, req->issued_at);
        if (n > 0)
            api_reply_text(c->r, 200, "application/json", text, n);
        else
            api_reply_error(c->r, API_ERR_INTERNAL, "the reply could not be written");
        OPENSSL_cleanse(text, n > 0 ? n : sizeof text);
    } else if (reply_retry_after(c->r, req) == 0)
        api_reply_error(c->r, req->err, "%s",
                        req->msg[0] != '\0' ? req->msg : api_error_info(req->err)->message);
    OPENSSL_cleanse(req->token, sizeof req->token);
    free(c);
}

/* Parses, then hands the sign to the core (sign.h), which signs and records it together with
 * the other signs waiting, off the loop thread; the reply leaves from sign_done. A request that
 * parsing refuses goes the same way, so that its refusal is audited in that transaction too. */
void handle_usersig_sign(struct api_request *r)
{
    struct service *svc = r->ctx;
    struct sign_call *c;

    if (api_require_fields(r, sign_fields) != 0)
        return;
    c = calloc(1, sizeof *c);
    if (c == NULL) {
        api_reply_error(r, API_ERR_INTERNAL, "out of memory");
        return;
    }
    c->r = r;
    c->req.principal = r->principal;
    c->req.sdkappid = r->sdkappid;
    c->req.refused_err = sign_parse(r->body, &c->req.in, c->req.msg, sizeof c->req.msg);
    c->req.done = sign_done;
    c->req.arg = c;
    api_request_defer(r);
    sign_submit(svc, &c->req);
}

/* ---- verify ---------------------------------------------------------------------------------- */

static const struct api_field verify_fields[] = {
    {"usersig", API_FIELD_STRING, API_FIELD_REQUIRED},
    {"sdkappid", API_FIELD_INTEGER, 0},
    {"identifier", API_FIELD_STRING, 0},
    {NULL, 0, 0},
};

static json_t *verify_reply(const struct verify_result *res, const struct usersig_decoded *d)
{
    json_t *o =
        json_pack("{s:b, s:s, s:i, s:s}", "valid", strcmp(res->verdict, "ok") == 0, "verdict",
                  res->verdict, "tencent_code", res->tencent_code, "message", res->message);
    if (o == NULL)
        return NULL;
    int64_t expire_at = 0;
    /* The token's numbers are the caller's: expire_at only when the sum is a number. */
    bool has_expire_at = res->decoded && !__builtin_add_overflow(d->time, d->expire, &expire_at);
    int bad = 0;
    bad |=
        json_object_set_new(o, "sdkappid", res->decoded ? json_integer(d->sdkappid) : json_null());
    bad |= json_object_set_new(o, "identifier",
                               res->decoded ? json_stringn(d->identifier, d->identifier_len)
                                            : json_null());
    bad |= json_object_set_new(
        o, "key_version", res->key_version != 0 ? json_integer(res->key_version) : json_null());
    bad |= json_object_set_new(o, "issued_at", res->decoded ? json_integer(d->time) : json_null());
    bad |=
        json_object_set_new(o, "expire_at", has_expire_at ? json_integer(expire_at) : json_null());
    bad |= json_object_set_new(o, "expire", res->decoded ? json_integer(d->expire) : json_null());
    if (res->signed_by_app != 0)
        bad |=
            json_object_set_new(o, "signed_by",
                                json_pack("{s:I, s:I}", "sdkappid", (json_int_t)res->signed_by_app,
                                          "key_version", (json_int_t)res->signed_by_version));
    if (bad != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* A verify in flight on a database thread: what it needs, and what it found. */
struct verify_call {
    struct dbpool_job job;
    struct api_request *r;
    uint32_t app;
    struct usersig_decoded *d;
    struct usersig_expect expect;
    struct verify_result res;
    enum api_error err;
    char msg[VERIFY_MSG_BUF];
};

/* On a database thread (ctx: its struct service): the app read into the cache, and the other
 * apps' keys searched on a signature mismatch. */
static void verify_job(struct store *st, void *ctx, struct dbpool_job *jobs)
{
    (void)st;
    for (struct dbpool_job *j = jobs; j != NULL; j = j->next) {
        struct verify_call *c = j->arg;
        c->err = verify_run(ctx, c->r->principal, c->app, c->d, &c->expect, &c->res, c->msg,
                            sizeof c->msg);
    }
}

static void verify_finish(struct api_request *r, enum api_error err, const char *msg,
                          const struct verify_result *res, const struct usersig_decoded *d)
{
    if (err != API_OK)
        api_reply_error(r, err, "%s", msg[0] != '\0' ? msg : api_error_info(err)->message);
    else
        api_reply_json(r, 200, verify_reply(res, d));
}

static void verify_done(struct dbpool_job *job)
{
    struct verify_call *c = job->arg;
    if (job->cancelled) {
        c->err = API_ERR_UNAVAILABLE;
        snprintf(c->msg, sizeof c->msg, "the server is stopping; retry");
    }
    verify_finish(c->r, c->err, c->msg, &c->res, c->d);
    free(c->d);
    free(c);
}

/* Decodes and checks the scope on the loop thread; the key lookups run on a database thread
 * (verify_run) and the reply leaves from verify_done. */
void handle_usersig_verify(struct api_request *r)
{
    struct service *svc = r->ctx;
    const json_t *j_token = json_object_get(r->body, "usersig");
    const json_t *j_app = json_object_get(r->body, "sdkappid");
    const json_t *j_id = json_object_get(r->body, "identifier");
    struct usersig_decoded *d = NULL;
    struct verify_call *c = NULL;
    struct usersig_expect expect;
    struct verify_result res;
    char msg[MSG_BUF] = "";
    enum api_error err = API_OK;
    uint32_t app = 0;

    memset(&res, 0, sizeof res);
    memset(&expect, 0, sizeof expect);
    if (api_require_fields(r, verify_fields) != 0)
        return;
    if (j_app != NULL) {
        json_int_t v = json_integer_value(j_app);
        if (v < 1 || v > (json_int_t)UINT32_MAX) {
            err = API_ERR_INVALID_FIELD;
            snprintf(msg, sizeof msg, "sdkappid must be an integer from 1 to 4294967295");
            goto out;
        }
        app = (uint32_t)v;
        expect.sdkappid = app;
    }
    if (j_id != NULL) {
        expect.identifier = json_string_value(j_id);
        expect.identifier_len = json_string_length(j_id);
    }
    /* Given sdkappid: the scope decides before anything about the token is said. */
    if (app != 0 && !principal_has_app(r->principal, app)) {
        err = API_ERR_FORBIDDEN;
        snprintf(msg, sizeof msg, "the token's app scope does not include app %u", app);
        goto out;
    }
    d = malloc(sizeof *d); /* large (the inflated document): not on the stack */
    if (d == NULL) {
        err = API_ERR_INTERNAL;
        goto out;
    }
    enum usersig_verdict v =
        usersig_decode(json_string_value(j_token), json_string_length(j_token), d);
    if (v != USERSIG_VALID) {
        verify_verdict_set(&res, v);
        goto out;
    }
    res.decoded = true;
    if (app == 0)
        app = d->sdkappid;
    if (app == 0) {
        err = API_ERR_APP_NOT_FOUND;
        snprintf(msg, sizeof msg, "the UserSig carries SDKAppID 0, which no app has");
        goto out;
    }
    if (!principal_has_app(r->principal, app)) {
        err = API_ERR_FORBIDDEN;
        snprintf(msg, sizeof msg,
                 "the token's app scope does not include app %u, the UserSig's SDKAppID", app);
        goto out;
    }
    /* The common case answers here, on the loop thread: the app is cached and one of its
     * versions signed the token (or none did, and no other app's key is to be looked for). */
    if (verify_cached(svc, app, d, &expect, &res, &err, msg, sizeof msg) == VERIFY_DONE)
        goto out;
    memset(&res, 0, sizeof res);
    res.decoded = true;
    c = calloc(1, sizeof *c);
    if (c == NULL) {
        err = API_ERR_INTERNAL;
        goto out;
    }
    c->r = r;
    c->app = app;
    c->d = d;
    c->expect = expect; /* its identifier is borrowed from the body, valid until the reply */
    c->res = res;
    c->job.run = verify_job;
    c->job.done = verify_done;
    c->job.arg = c;
    c->job.batch = 16;
    api_request_defer(r);
    service_run(svc, &c->job);
    return;

out:
    verify_finish(r, err, msg, &res, d);
    free(d);
}
