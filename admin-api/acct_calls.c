/*
 * Accounts sent to Tencent 100 a call (acct_calls.h): the accounts read from lines, a chunk's
 * calls, their retries and backoff, and each account's outcome from Tencent's reply.
 */
#include "acct_calls.h"

#include <event2/event.h>
#include <jansson.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "utf8.h"

#define BACKOFF_MS 250 /* first retry, doubling up to BACKOFF_MAX_MS */
#define BACKOFF_MAX_MS 4000
#define MSG_BUF 512

/* 1..32 bytes, valid UTF-8, no control character: worth sending (Tencent decides the rest). */
static bool id_sendable(const char *s, size_t n)
{
    if (n == 0 || n > TIM_MAX_IDENTIFIER)
        return false;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return false;
        size_t k = utf8_seq_len((const unsigned char *)s + i, n - i);
        if (k == 0)
            return false;
        i += k;
    }
    return true;
}

void acct_fail(struct acct *a, const char *code, long long tcode, const char *msg)
{
    a->state = ACCT_FAILED;
    snprintf(a->code, sizeof a->code, "%s", code);
    a->tencent_code = tcode;
    utf8_clean(msg, a->msg, sizeof a->msg); /* Tencent's ErrorInfo may be any text */
}

void acct_set_id(struct acct *a, const char *s, size_t n)
{
    char raw[sizeof a->id];
    size_t k = n < sizeof raw - 1 ? n : sizeof raw - 1;
    memcpy(raw, s, k);
    raw[k] = '\0';
    for (size_t i = 0; i < k; i++)
        if (raw[i] == '\0')
            raw[i] = '?';
    utf8_clean(raw, a->id, sizeof a->id);
    a->sendable = id_sendable(s, n) && memchr(s, '\0', n) == NULL;
    if (!a->sendable)
        acct_fail(a, "bad_identifier", 0,
                  "a UserID is 1 to 32 bytes of UTF-8 without control characters");
}

void acct_from_line(struct acct *a, bool ndjson, const char *s, size_t n)
{
    memset(a, 0, sizeof *a);
    if (!ndjson) {
        acct_set_id(a, s, n);
        return;
    }
    json_error_t e;
    json_t *o = json_loadb(s, n, JSON_REJECT_DUPLICATES, &e);
    const char *k;
    json_t *v;
    if (!json_is_object(o)) {
        json_decref(o);
        acct_set_id(a, "", 0);
        acct_fail(a, "bad_json", 0, "the line is not a JSON object");
        return;
    }
    json_t *id = json_object_get(o, "identifier");
    if (!json_is_string(id)) {
        acct_set_id(a, "", 0);
        acct_fail(a, id == NULL ? "missing_field" : "invalid_field", 0,
                  "field \"identifier\" (a string) is required");
        json_decref(o);
        return;
    }
    acct_set_id(a, json_string_value(id), json_string_length(id));
    json_object_foreach(o, k, v)
    {
        if (a->state == ACCT_FAILED)
            break;
        if (strcmp(k, "identifier") == 0)
            continue;
        bool nick = strcmp(k, "nick") == 0, face = strcmp(k, "face_url") == 0;
        if (!nick && !face) {
            acct_fail(a, "unknown_field", 0, "a line takes identifier, nick and face_url only");
        } else if (!json_is_string(v) ||
                   json_string_length(v) > (nick ? ACCT_NICK_MAX : ACCT_FACE_MAX)) {
            acct_fail(a, "invalid_field", 0,
                      nick ? "nick must be a string of at most 256 bytes"
                           : "face_url must be a string of at most 1024 bytes");
        } else {
            char *c = strdup(json_string_value(v));
            if (c == NULL)
                acct_fail(a, "internal", 0, "out of memory");
            if (nick)
                a->nick = c;
            else
                a->face = c;
        }
    }
    json_decref(o);
}

void acct_chunk_free(struct acct_chunk *c)
{
    if (c->timer != NULL)
        event_free(c->timer);
    for (int i = 0; i < c->n; i++) {
        free(c->a[i].nick);
        free(c->a[i].face);
    }
    free(c);
}

static void progress(struct acct_run *run)
{
    run->progress(run->arg);
}

static int64_t backoff(int tries)
{
    int64_t d = BACKOFF_MS;
    for (int i = 1; i < tries && d < BACKOFF_MAX_MS; i++)
        d *= 2;
    if (d > BACKOFF_MAX_MS)
        d = BACKOFF_MAX_MS;
    unsigned char b[2];
    if (RAND_bytes(b, sizeof b) == 1)
        d = d / 2 + (int64_t)((b[0] << 8 | b[1]) % (d / 2 + 1));
    return d;
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    acct_dispatch(arg);
}

static void chunk_later(struct acct_chunk *c, int64_t ms)
{
    if (c->timer == NULL)
        c->timer = evtimer_new(gateway_base(c->run->svc->gateway), on_retry, c);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    if (c->timer == NULL || evtimer_add(c->timer, &tv) != 0) {
        for (int i = 0; i < c->n; i++)
            if (c->a[i].state == ACCT_PENDING)
                acct_fail(&c->a[i], "internal", 0, "no timer for a retry");
        c->done = true;
        progress(c->run);
    }
}

/* Every account still pending gets err (the chunk's last try failed). */
static void chunk_fail_pending(struct acct_chunk *c, const char *code, long long tcode,
                               const char *msg)
{
    for (int i = 0; i < c->n; i++)
        if (c->a[i].state == ACCT_PENDING)
            acct_fail(&c->a[i], code, tcode, msg);
    c->done = true;
}

static struct acct *find_pending(struct acct_chunk *c, const char *id)
{
    for (int i = 0; i < c->n; i++)
        if (c->a[i].state == ACCT_PENDING && strcmp(c->a[i].id, id) == 0)
            return &c->a[i];
    return NULL;
}

static void on_result(const struct tim_result *res, void *arg)
{
    struct acct_chunk *c = arg;
    struct acct_run *run = c->run;
    char msg[MSG_BUF] = "";

    c->in_call = false;
    run->in_flight--;
    if (res->rc == TIM_CANCELLED)
        run->stopped = true; /* the client is going away: no chunk is sent after this one */
    if (res->rc != TIM_OK || (!res->action_ok && tim_code_is_rate_limit(res->error_code))) {
        /* Our bucket, Tencent's limit past tim's retries, or the network: again, later. */
        enum api_error err = gateway_tim_error(res, msg, sizeof msg);
        if (res->rc == TIM_OK)
            snprintf(msg, sizeof msg, "Tencent rate-limited the calls (%lld)", res->error_code);
        bool again = res->rc == TIM_RATE_LIMITED || res->rc == TIM_TRANSPORT ||
                     res->rc == TIM_BAD_REPLY || res->rc == TIM_SIGN_FAILED || res->rc == TIM_OK;
        if (again && ++c->tries < ACCT_MAX_TRIES && !run->gone) {
            int64_t wait = backoff(c->tries);
            if (res->retry_after_ms > wait)
                wait = res->retry_after_ms;
            chunk_later(c, wait);
            return;
        }
        /* A 70050 hold (TIM_HELD) is not waited out: it ends the chunk with Tencent's code. */
        chunk_fail_pending(c, res->rc == TIM_OK ? "tencent_rate_limited" : api_error_code(err),
                           res->rc == TIM_OK     ? res->error_code
                           : res->rc == TIM_HELD ? 70050
                                                 : 0,
                           msg);
        progress(run);
        return;
    }
    if (!res->action_ok) {
        /* Tencent refused the whole call (a bad admin UserSig, 70402 ...): its code on each. */
        snprintf(msg, sizeof msg, "Tencent: %s", res->error_info != NULL ? res->error_info : "");
        chunk_fail_pending(c, "tencent_error", res->error_code, msg);
        progress(run);
        return;
    }
    c->rounds++;
    if (run->check) {
        json_t *items = json_object_get(res->reply, "ResultItem");
        size_t i;
        json_t *it;
        json_array_foreach(items, i, it)
        {
            struct acct *a =
                find_pending(c, json_string_value(json_object_get(it, "UserID")) != NULL
                                    ? json_string_value(json_object_get(it, "UserID"))
                                    : "");
            if (a == NULL)
                continue;
            json_int_t rc = json_integer_value(json_object_get(it, "ResultCode"));
            const char *st = json_string_value(json_object_get(it, "AccountStatus"));
            if (rc != 0)
                acct_fail(a, "tencent_error", rc, "Tencent's ResultCode for the account");
            else if (st != NULL && strcmp(st, "Imported") == 0)
                a->state = ACCT_IMPORTED;
            else
                a->state = ACCT_NOT_IMPORTED;
        }
        chunk_fail_pending(c, "tencent_bad_reply", 0, "Tencent's ResultItem left the account out");
        progress(run);
        return;
    }
    /* Import: the accounts not in FailAccounts are in; those are sent again, ACCT_FAIL_ROUNDS in
     * all. */
    json_t *failed = json_object_get(res->reply, "FailAccounts");
    bool *listed = calloc((size_t)c->n, sizeof *listed);
    if (listed == NULL) {
        chunk_fail_pending(c, "internal", 0, "out of memory");
        progress(run);
        return;
    }
    size_t i;
    json_t *f;
    json_array_foreach(failed, i, f)
    {
        const char *id = json_string_value(f);
        for (int k = 0; id != NULL && k < c->n; k++)
            if (c->a[k].state == ACCT_PENDING && strcmp(c->a[k].id, id) == 0)
                listed[k] = true;
    }
    int left = 0;
    for (int k = 0; k < c->n; k++) {
        if (c->a[k].state != ACCT_PENDING)
            continue;
        if (!listed[k])
            c->a[k].state = ACCT_IMPORTED;
        else
            left++;
    }
    free(listed);
    if (left > 0 && c->rounds < ACCT_FAIL_ROUNDS && !run->gone) {
        chunk_later(c, backoff(c->rounds));
        return;
    }
    snprintf(msg, sizeof msg, "Tencent listed the account in FailAccounts %d times", c->rounds);
    chunk_fail_pending(c, "fail_account", res->error_code, msg);
    progress(run);
}

/* The body of a call: the chunk's pending accounts. */
static char *call_body(const struct acct_run *run, const struct acct_chunk *c)
{
    json_t *list = json_array();
    for (int i = 0; list != NULL && i < c->n; i++) {
        const struct acct *a = &c->a[i];
        if (a->state != ACCT_PENDING)
            continue;
        json_t *o = json_pack("{s:s}", "UserID", a->id);
        if (o != NULL && !run->check && a->nick != NULL)
            json_object_set_new(o, "Nick", json_string(a->nick));
        if (o != NULL && !run->check && a->face != NULL)
            json_object_set_new(o, "FaceUrl", json_string(a->face));
        if (o == NULL || json_array_append_new(list, o) != 0) {
            json_decref(list);
            return NULL;
        }
    }
    json_t *body =
        list != NULL ? json_pack("{s:o}", run->check ? "CheckItem" : "AccountList", list) : NULL;
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    return text;
}

void acct_dispatch(struct acct_chunk *c)
{
    struct acct_run *run = c->run;
    char msg[MSG_BUF];
    struct tim_call tc;

    if (run->gone) {
        chunk_fail_pending(c, "client_gone", 0, "the client went away");
        progress(run);
        return;
    }
    if (gateway_tim(run->svc->gateway) == NULL) { /* stopped: nothing is sent any more */
        run->stopped = true;
        chunk_fail_pending(c, api_error_code(API_ERR_UNAVAILABLE), 0,
                           "the server is stopping: not sent to Tencent");
        progress(run);
        return;
    }
    bool any = false;
    for (int i = 0; i < c->n; i++)
        any |= c->a[i].state == ACCT_PENDING;
    if (!any) {
        c->done = true;
        progress(run);
        return;
    }
    enum api_error err = gateway_app_call(run->svc->gateway, run->app, &tc, msg, sizeof msg);
    char *body = err == API_OK ? call_body(run, c) : NULL;
    if (err != API_OK || body == NULL) {
        chunk_fail_pending(c, err != API_OK ? api_error_code(err) : "internal", 0,
                           err != API_OK ? msg : "out of memory");
        free(body);
        progress(run);
        return;
    }
    tc.service = "im_open_login_svc";
    tc.command = run->check ? "account_check" : "multiaccount_import";
    tc.body = body;
    tc.body_len = strlen(body);
    int64_t retry = 0;
    enum tim_rc rc = tim_call(gateway_tim(run->svc->gateway), &tc, on_result, c, &retry);
    free(body);
    run->calls++;
    c->in_call = true;
    run->in_flight++;
    if (rc != TIM_OK) {
        struct tim_result res = {.rc = rc, .retry_after_ms = retry};
        on_result(&res, c); /* not from inside tim_call's done: ours to call */
    }
}

struct acct_chunk *acct_chunk_new(struct acct_run *run)
{
    struct acct_chunk *c = calloc(1, sizeof *c);
    if (c != NULL)
        c->run = run;
    return c;
}

bool acct_chunk_unsent(const struct acct_chunk *c)
{
    return !c->in_call && !c->done && c->tries == 0 && c->rounds == 0;
}

void acct_chunk_drop(struct acct_chunk *c)
{
    if (!c->in_call && (c->timer == NULL || !evtimer_pending(c->timer, NULL)))
        return;
    if (c->in_call) {
        struct tim *t = gateway_tim(c->run->svc->gateway);
        if (t != NULL) /* NULL: stopped, the call ended with it */
            tim_cancel(t, c);
        c->in_call = false;
        c->run->in_flight--;
    }
    if (c->timer != NULL)
        evtimer_del(c->timer);
    chunk_fail_pending(c, "client_gone", 0, "the client went away");
}
