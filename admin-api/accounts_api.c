/*
 * Admin API bulk account import and check: POST /v1/apps/{sdkappid}/accounts/import and
 * /accounts/check. The body streams like the batch endpoint's (http.h api_request_stream):
 * text/plain, one UserID a line, or NDJSON, {"identifier", "nick"?, "face_url"?} a line. The
 * accounts go to Tencent 100 a call (im_open_login_svc/multiaccount_import, account_check)
 * through the core's gateway client (gateway.h: the app's gateway_identifier, its admin UserSig,
 * its token bucket), a few calls in flight; a call refused by the bucket, rate-limited by
 * Tencent past tim's own retries, or cut off by the network is tried again with backoff, and
 * the accounts Tencent lists in FailAccounts are sent again (twice more). The reply streams one
 * line per account, in input order, then a summary with the counts and the SHA-256 of the lines
 * before it. The job is one audited manifest: accounts.import (or accounts.check) when it starts,
 * before any call, and accounts.import.finish with its state and counts before the summary.
 * The loop never waits: the manifest's events are written on database threads, the calls are
 * tim's. Memory is bounded: the body is read only while fewer than MAX_CHUNKS chunks wait.
 */
#include "handlers.h"

#include <event2/buffer.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gateway.h"
#include "hex.h"
#include "http_frame.h"
#include "log.h"
#include "service.h"
#include "utf8.h"

#define CHUNK_MAX 100  /* accounts a call: Tencent's limit */
#define IN_FLIGHT 4    /* calls of one job at once */
#define MAX_CHUNKS 8   /* chunks held (in flight or waiting to be written out) */
#define MAX_TRIES 10   /* calls of one chunk refused, rate-limited or cut off */
#define FAIL_ROUNDS 3  /* calls an account listed in FailAccounts gets in all */
#define BACKOFF_MS 250 /* first retry, doubling up to BACKOFF_MAX_MS */
#define BACKOFF_MAX_MS 4000
#define ACCT_LINE_MAX 4096 /* bytes of an input line looked at */
#define NICK_MAX 256
#define FACE_MAX 1024
#define MSG_BUF 512

enum acct_state { A_PENDING = 0, A_IMPORTED, A_NOT_IMPORTED, A_FAILED };

struct acct {
    char id[TIM_MAX_IDENTIFIER * 4 + 1]; /* as received (cleaned for output) */
    bool sendable;
    char *nick, *face;
    enum acct_state state;
    char code[32]; /* A_FAILED: the error code */
    long long tencent_code;
    char msg[160];
};

struct imp;

struct chunk {
    struct imp *imp;
    struct acct a[CHUNK_MAX];
    int n;
    int tries, rounds;
    bool in_call, done;
    struct event *timer;
    struct chunk *next;
};

struct imp {
    struct service *svc;
    struct api_request *r;
    struct frame_stream *stream;
    bool ndjson, check;
    struct principal principal;
    char request_id[API_REQUEST_ID_LEN + 1];
    char job_id[33];
    uint32_t sdkappid;
    const struct cache_app *app;
    struct chunk *head, *tail, *filling;
    int n_chunks, in_flight;
    uint64_t count, imported, not_imported, failed, calls;
    EVP_MD_CTX *sha;
    struct evbuffer *out;
    bool skip_line, input_done, cut, gone, streaming, finishing, pumping, again;
    int unsent;         /* reply chunks handed over since the output was last all written */
    struct event *kick; /* pump() from the loop, not from inside the stream's filter */
    char sha_hex[65];
    /* the manifest's events */
    struct dbpool_job job;
    enum api_error err;
    char msg[MSG_BUF];
    bool audit_ok;
    int stage; /* 0 start, 1 finish */
};

static const char *action_of(const struct imp *m)
{
    return m->check ? "accounts.check" : "accounts.import";
}

/* ---- accounts from lines --------------------------------------------------------------------- */

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

static void acct_fail(struct acct *a, const char *code, long long tcode, const char *msg)
{
    a->state = A_FAILED;
    snprintf(a->code, sizeof a->code, "%s", code);
    a->tencent_code = tcode;
    utf8_clean(msg, a->msg, sizeof a->msg); /* Tencent's ErrorInfo may be any text */
}

static void acct_set_id(struct acct *a, const char *s, size_t n)
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

static void acct_from_line(struct imp *m, struct acct *a, const char *s, size_t n)
{
    memset(a, 0, sizeof *a);
    if (!m->ndjson) {
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
        if (a->state == A_FAILED)
            break;
        if (strcmp(k, "identifier") == 0)
            continue;
        bool nick = strcmp(k, "nick") == 0, face = strcmp(k, "face_url") == 0;
        if (!nick && !face) {
            acct_fail(a, "unknown_field", 0, "a line takes identifier, nick and face_url only");
        } else if (!json_is_string(v) || json_string_length(v) > (nick ? NICK_MAX : FACE_MAX)) {
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

/* ---- the chunks, the calls ------------------------------------------------------------------- */

static void chunk_free(struct chunk *c)
{
    if (c->timer != NULL)
        event_free(c->timer);
    for (int i = 0; i < c->n; i++) {
        free(c->a[i].nick);
        free(c->a[i].face);
    }
    free(c);
}

static void pump(struct imp *m);
static void dispatch(struct chunk *c);

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
    dispatch(arg);
}

static void chunk_later(struct chunk *c, int64_t ms)
{
    if (c->timer == NULL)
        c->timer = evtimer_new(gateway_base(c->imp->svc->gateway), on_retry, c);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    if (c->timer == NULL || evtimer_add(c->timer, &tv) != 0) {
        for (int i = 0; i < c->n; i++)
            if (c->a[i].state == A_PENDING)
                acct_fail(&c->a[i], "internal", 0, "no timer for a retry");
        c->done = true;
        pump(c->imp);
    }
}

/* Every account still pending gets err (the chunk's last try failed). */
static void chunk_fail_pending(struct chunk *c, const char *code, long long tcode, const char *msg)
{
    for (int i = 0; i < c->n; i++)
        if (c->a[i].state == A_PENDING)
            acct_fail(&c->a[i], code, tcode, msg);
    c->done = true;
}

static struct acct *find_pending(struct chunk *c, const char *id)
{
    for (int i = 0; i < c->n; i++)
        if (c->a[i].state == A_PENDING && strcmp(c->a[i].id, id) == 0)
            return &c->a[i];
    return NULL;
}

static void on_result(const struct tim_result *res, void *arg)
{
    struct chunk *c = arg;
    struct imp *m = c->imp;
    char msg[MSG_BUF] = "";

    c->in_call = false;
    m->in_flight--;
    if (res->rc != TIM_OK || (!res->action_ok && tim_code_is_rate_limit(res->error_code))) {
        /* Our bucket, Tencent's limit past tim's retries, or the network: again, later. */
        enum api_error err = gateway_tim_error(res, msg, sizeof msg);
        if (res->rc == TIM_OK)
            snprintf(msg, sizeof msg, "Tencent rate-limited the calls (%lld)", res->error_code);
        bool again = res->rc == TIM_RATE_LIMITED || res->rc == TIM_TRANSPORT ||
                     res->rc == TIM_BAD_REPLY || res->rc == TIM_SIGN_FAILED || res->rc == TIM_OK;
        if (again && ++c->tries < MAX_TRIES && !m->gone) {
            int64_t wait = backoff(c->tries);
            if (res->retry_after_ms > wait)
                wait = res->retry_after_ms;
            chunk_later(c, wait);
            return;
        }
        chunk_fail_pending(c, res->rc == TIM_OK ? "tencent_rate_limited" : api_error_code(err),
                           res->rc == TIM_OK ? res->error_code : 0, msg);
        pump(m);
        return;
    }
    if (!res->action_ok) {
        /* Tencent refused the whole call (a bad admin UserSig, 70402 ...): its code on each. */
        snprintf(msg, sizeof msg, "Tencent: %s", res->error_info != NULL ? res->error_info : "");
        chunk_fail_pending(c, "tencent_error", res->error_code, msg);
        pump(m);
        return;
    }
    c->rounds++;
    if (m->check) {
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
                a->state = A_IMPORTED;
            else
                a->state = A_NOT_IMPORTED;
        }
        chunk_fail_pending(c, "tencent_bad_reply", 0, "Tencent's ResultItem left the account out");
        pump(m);
        return;
    }
    /* Import: the accounts not in FailAccounts are in; those are sent again, FAIL_ROUNDS in all. */
    json_t *failed = json_object_get(res->reply, "FailAccounts");
    bool *listed = calloc((size_t)c->n, sizeof *listed);
    if (listed == NULL) {
        chunk_fail_pending(c, "internal", 0, "out of memory");
        pump(m);
        return;
    }
    size_t i;
    json_t *f;
    json_array_foreach(failed, i, f)
    {
        const char *id = json_string_value(f);
        for (int k = 0; id != NULL && k < c->n; k++)
            if (c->a[k].state == A_PENDING && strcmp(c->a[k].id, id) == 0)
                listed[k] = true;
    }
    int left = 0;
    for (int k = 0; k < c->n; k++) {
        if (c->a[k].state != A_PENDING)
            continue;
        if (!listed[k])
            c->a[k].state = A_IMPORTED;
        else
            left++;
    }
    free(listed);
    if (left > 0 && c->rounds < FAIL_ROUNDS && !m->gone) {
        chunk_later(c, backoff(c->rounds));
        return;
    }
    snprintf(msg, sizeof msg, "Tencent listed the account in FailAccounts %d times", c->rounds);
    chunk_fail_pending(c, "fail_account", res->error_code, msg);
    pump(m);
}

/* The body of a call: the chunk's pending accounts. */
static char *call_body(const struct imp *m, const struct chunk *c)
{
    json_t *list = json_array();
    for (int i = 0; list != NULL && i < c->n; i++) {
        const struct acct *a = &c->a[i];
        if (a->state != A_PENDING)
            continue;
        json_t *o = json_pack("{s:s}", "UserID", a->id);
        if (o != NULL && !m->check && a->nick != NULL)
            json_object_set_new(o, "Nick", json_string(a->nick));
        if (o != NULL && !m->check && a->face != NULL)
            json_object_set_new(o, "FaceUrl", json_string(a->face));
        if (o == NULL || json_array_append_new(list, o) != 0) {
            json_decref(list);
            return NULL;
        }
    }
    json_t *body =
        list != NULL ? json_pack("{s:o}", m->check ? "CheckItem" : "AccountList", list) : NULL;
    char *text = body != NULL ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    return text;
}

static void dispatch(struct chunk *c)
{
    struct imp *m = c->imp;
    char msg[MSG_BUF];
    struct tim_call tc;

    if (m->gone) {
        chunk_fail_pending(c, "client_gone", 0, "the client went away");
        pump(m);
        return;
    }
    bool any = false;
    for (int i = 0; i < c->n; i++)
        any |= c->a[i].state == A_PENDING;
    if (!any) {
        c->done = true;
        pump(m);
        return;
    }
    enum api_error err = gateway_app_call(m->svc->gateway, m->app, &tc, msg, sizeof msg);
    char *body = err == API_OK ? call_body(m, c) : NULL;
    if (err != API_OK || body == NULL) {
        chunk_fail_pending(c, err != API_OK ? api_error_code(err) : "internal", 0,
                           err != API_OK ? msg : "out of memory");
        free(body);
        pump(m);
        return;
    }
    tc.service = "im_open_login_svc";
    tc.command = m->check ? "account_check" : "multiaccount_import";
    tc.body = body;
    tc.body_len = strlen(body);
    int64_t retry = 0;
    enum tim_rc rc = tim_call(gateway_tim(m->svc->gateway), &tc, on_result, c, &retry);
    free(body);
    m->calls++;
    c->in_call = true;
    m->in_flight++;
    if (rc != TIM_OK) {
        struct tim_result res = {.rc = rc, .retry_after_ms = retry};
        on_result(&res, c); /* not from inside tim_call's done: ours to call */
    }
}

/* ---- output ---------------------------------------------------------------------------------- */

static void emit(struct imp *m, const char *line, size_t len)
{
    EVP_DigestUpdate(m->sha, line, len);
    evbuffer_add(m->out, line, len);
}

static void emit_acct(struct imp *m, const struct acct *a)
{
    json_t *o;
    m->count++;
    if (a->state == A_IMPORTED) {
        m->imported++;
        o = json_pack("{s:s, s:s}", "identifier", a->id, "status", "imported");
    } else if (a->state == A_NOT_IMPORTED) {
        m->not_imported++;
        o = json_pack("{s:s, s:s}", "identifier", a->id, "status", "not_imported");
    } else {
        m->failed++;
        o = json_pack("{s:s, s:s, s:{s:s, s:s}}", "identifier", a->id, "status", "failed", "error",
                      "code", a->code, "message", a->msg);
        if (o != NULL && a->tencent_code != 0)
            json_object_set_new(json_object_get(o, "error"), "tencent_code",
                                json_integer(a->tencent_code));
    }
    char *t = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (t == NULL) {
        emit(m, "{\"identifier\":\"\",\"status\":\"failed\"}\n", 36);
        return;
    }
    emit(m, t, strlen(t));
    emit(m, "\n", 1);
    free(t);
}

static void finish(struct imp *m);

static void on_sent(struct api_request *r, void *arg)
{
    struct imp *m = arg;
    (void)r;
    m->unsent = 0; /* the framework calls it once what was handed over is all written out */
    if (!m->finishing)
        event_active(m->kick, 0, 0);
}

static void flush_out(struct imp *m)
{
    if (evbuffer_get_length(m->out) == 0 || m->r == NULL)
        return;
    if (!m->gone)
        m->unsent++;
    if (m->gone || api_reply_chunk(m->r, m->out, on_sent, m) != 0) {
        if (!m->gone)
            m->unsent--;
        evbuffer_drain(m->out, evbuffer_get_length(m->out));
        m->gone = true;
    }
}

/* ---- reading the body ------------------------------------------------------------------------ */

static struct chunk *chunk_new(struct imp *m)
{
    struct chunk *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->imp = m;
    return c;
}

static void enqueue(struct imp *m)
{
    struct chunk *c = m->filling;
    m->filling = NULL;
    if (c == NULL || c->n == 0) {
        free(c);
        return;
    }
    if (m->tail != NULL)
        m->tail->next = c;
    else
        m->head = c;
    m->tail = c;
    m->n_chunks++;
}

/* Whole lines into chunks while fewer than MAX_CHUNKS are held. */
static void read_lines(struct imp *m)
{
    if (m->stream == NULL) {
        m->input_done = true;
        return;
    }
    struct evbuffer *in = frame_stream_buffer(m->stream);
    enum frame_stream_state st = frame_stream_state(m->stream);
    size_t before = evbuffer_get_length(in);
    while (m->n_chunks < MAX_CHUNKS && !m->input_done) {
        struct evbuffer_ptr lf = evbuffer_search(in, "\n", 1, NULL);
        size_t len;
        bool too_long = false;
        if (m->skip_line) {
            evbuffer_drain(in, lf.pos >= 0 ? (size_t)lf.pos + 1 : evbuffer_get_length(in));
            m->skip_line = lf.pos < 0;
            if (m->skip_line)
                break;
            continue;
        }
        if (lf.pos >= 0) {
            len = (size_t)lf.pos;
        } else if (st == FRAME_STREAM_END && evbuffer_get_length(in) > 0) {
            len = evbuffer_get_length(in);
        } else if (st == FRAME_STREAM_OPEN && evbuffer_get_length(in) > ACCT_LINE_MAX) {
            len = ACCT_LINE_MAX; /* too long for any account: its start is its line */
            m->skip_line = true;
            too_long = true;
        } else {
            if (st != FRAME_STREAM_OPEN) {
                m->cut = st == FRAME_STREAM_CUT;
                evbuffer_drain(in, evbuffer_get_length(in));
                m->input_done = true;
                enqueue(m);
            }
            break;
        }
        size_t take = len < ACCT_LINE_MAX ? len : ACCT_LINE_MAX;
        unsigned char *p = evbuffer_pullup(in, (ssize_t)take);
        if (m->filling == NULL && (m->filling = chunk_new(m)) == NULL) {
            m->input_done = true;
            m->cut = true;
            break;
        }
        struct acct *a = &m->filling->a[m->filling->n++];
        size_t n = take;
        if (n > 0 && p[n - 1] == '\r')
            n--;
        acct_from_line(m, a, (const char *)p, n);
        if (too_long || len > ACCT_LINE_MAX)
            acct_fail(a, "bad_identifier", 0, "the line is too long");
        evbuffer_drain(in, len + (lf.pos >= 0 && !m->skip_line ? 1 : 0));
        if (m->filling->n == CHUNK_MAX)
            enqueue(m);
    }
    if (st == FRAME_STREAM_OPEN && m->filling != NULL && m->filling->n > 0 &&
        evbuffer_get_length(in) == 0)
        enqueue(m); /* a slow client: what came goes now, not when 100 are here */
    if (evbuffer_get_length(in) < before)
        frame_stream_drained(m->stream);
}

/* Writes out the chunks done at the head, reads more, starts calls; ends the job at the end.
 * Re-entered (a call that fails at once comes back here): the outer run goes round again. */
static void pump(struct imp *m)
{
    if (m->finishing)
        return;
    if (m->pumping) {
        m->again = true;
        return;
    }
    m->pumping = true;
    do {
        m->again = false;
        while (m->head != NULL && m->head->done) {
            struct chunk *c = m->head;
            m->head = c->next;
            if (m->head == NULL)
                m->tail = NULL;
            m->n_chunks--;
            for (int i = 0; i < c->n; i++)
                emit_acct(m, &c->a[i]);
            chunk_free(c);
        }
        flush_out(m);
        if (m->gone && !m->input_done) {
            m->input_done = true;
            m->cut = true;
            if (m->filling != NULL)
                chunk_free(m->filling);
            m->filling = NULL;
        } else if (!m->gone && m->unsent < 4) {
            read_lines(m);
        }
        for (struct chunk *c = m->head; c != NULL && m->in_flight < IN_FLIGHT; c = c->next)
            if (!c->in_call && !c->done && c->tries == 0 && c->rounds == 0) {
                dispatch(c);
                m->again = true; /* c may be gone: scan again */
                break;
            }
        if (m->input_done && m->head == NULL && !m->finishing) {
            m->pumping = false;
            finish(m);
            return;
        }
    } while (m->again && !m->finishing);
    m->pumping = false;
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pump(arg);
}

static void on_input(void *arg)
{
    struct imp *m = arg;
    event_active(m->kick, 0, 0);
}

/* ---- the manifest ---------------------------------------------------------------------------- */

static void imp_free(struct imp *m)
{
    while (m->head != NULL) {
        struct chunk *c = m->head;
        m->head = c->next;
        chunk_free(c);
    }
    if (m->filling != NULL)
        chunk_free(m->filling);
    frame_stream_release(m->stream);
    if (m->app != NULL)
        cache_app_release(m->app);
    if (m->out != NULL)
        evbuffer_free(m->out);
    if (m->kick != NULL)
        event_free(m->kick);
    EVP_MD_CTX_free(m->sha);
    explicit_bzero(&m->principal, sizeof m->principal);
    free(m);
}

static json_t *finish_details(struct imp *m, const char *sha)
{
    json_t *d = json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:s}", "job_id", m->job_id, "state",
                          m->cut || m->gone ? "aborted" : "complete", "count", (json_int_t)m->count,
                          "imported", (json_int_t)m->imported, "failed", (json_int_t)m->failed,
                          "calls", (json_int_t)m->calls, "sha256", sha);
    if (d != NULL && m->check)
        json_object_set_new(d, "not_imported", json_integer((json_int_t)m->not_imported));
    return d;
}

/* On a database thread: the start (the app, its checks, the started event) or the finish. */
static void manifest_run(struct store *st, void *ctx, struct dbpool_job *jobs)
{
    struct service *svc = ctx;
    struct imp *m = jobs->arg;
    char action[64];
    bool refused = false;
    (void)st;
    m->audit_ok = false;
    if (m->stage == 0) {
        m->err = service_app_entry(svc, m->sdkappid, &m->app, m->msg, sizeof m->msg, &refused);
        struct tim_call tc;
        if (m->err == API_OK)
            m->err = gateway_app_call(m->svc->gateway, m->app, &tc, m->msg, sizeof m->msg);
        if (m->err != API_OK) {
            if (refused || m->err == API_ERR_INVALID_STATE)
                service_audit_refusal(svc, &m->principal, action_of(m), m->sdkappid, 0,
                                      api_error_code(m->err),
                                      json_pack("{s:s}", "job_id", m->job_id));
            return;
        }
        json_t *d = json_pack("{s:s, s:s, s:s}", "job_id", m->job_id, "format",
                              m->ndjson ? "ndjson" : "text", "request_id", m->request_id);
        bool ok = d != NULL && store_begin(svc->st) == STORE_OK &&
                  service_audit(svc, &m->principal, action_of(m), m->sdkappid,
                                m->app->active != NULL ? m->app->active->version : 0, "started",
                                d) == STORE_OK &&
                  store_commit(svc->st) == STORE_OK;
        if (!ok) {
            store_rollback(svc->st);
            m->err = API_ERR_UNAVAILABLE;
            snprintf(m->msg, sizeof m->msg,
                     "the job could not be recorded in the audit log; nothing was sent to "
                     "Tencent");
        }
        return;
    }
    snprintf(action, sizeof action, "%s.finish", action_of(m));
    json_t *d = finish_details(m, m->sha_hex);
    m->audit_ok = d != NULL && store_begin(svc->st) == STORE_OK &&
                  service_audit(svc, &m->principal, action, m->sdkappid, 0,
                                m->cut || m->gone ? "aborted" : "complete", d) == STORE_OK &&
                  store_commit(svc->st) == STORE_OK;
    if (!m->audit_ok)
        store_rollback(svc->st);
}

static void manifest_done(struct dbpool_job *job);

static void manifest_submit(struct imp *m, int stage)
{
    m->stage = stage;
    memset(&m->job, 0, sizeof m->job);
    m->job.run = manifest_run;
    m->job.done = manifest_done;
    m->job.arg = m;
    service_run(m->svc, &m->job);
}

static void finish(struct imp *m)
{
    unsigned char md[32];
    unsigned int mdlen = 0;
    m->finishing = true;
    flush_out(m);
    EVP_DigestFinal_ex(m->sha, md, &mdlen);
    hex_encode(md, sizeof md, m->sha_hex);
    manifest_submit(m, 1);
}

static void on_closed(struct api_request *r, void *arg)
{
    struct imp *m = arg;
    (void)r;
    m->gone = true;
    /* The calls waiting or in flight are dropped (their chunks fail as client_gone). */
    for (struct chunk *c = m->head; c != NULL; c = c->next)
        if (c->in_call || (c->timer != NULL && evtimer_pending(c->timer, NULL))) {
            if (c->in_call) {
                tim_cancel(gateway_tim(m->svc->gateway), c);
                c->in_call = false;
                m->in_flight--;
            }
            if (c->timer != NULL)
                evtimer_del(c->timer);
            chunk_fail_pending(c, "client_gone", 0, "the client went away");
        }
    pump(m);
}

static void manifest_done(struct dbpool_job *job)
{
    struct imp *m = job->arg;
    if (m->stage == 0) {
        if (job->cancelled) {
            m->err = API_ERR_UNAVAILABLE;
            snprintf(m->msg, sizeof m->msg, "the server is stopping; retry");
        }
        if (m->err != API_OK) {
            api_reply_error(m->r, m->err, "%s",
                            m->msg[0] != '\0' ? m->msg : api_error_info(m->err)->message);
            m->r = NULL;
            imp_free(m);
            return;
        }
        if (api_reply_start(m->r, 200, "application/x-ndjson") != 0) {
            m->r = NULL;
            m->gone = true;
            m->input_done = true;
            m->cut = true;
            finish(m);
            return;
        }
        m->streaming = true;
        api_request_on_close(m->r, on_closed, m);
        log_msg(LOG_INFO, m->request_id, "%s %s: app %u", action_of(m), m->job_id, m->sdkappid);
        if (m->stream != NULL)
            frame_stream_on_data(m->stream, on_input, m);
        pump(m);
        return;
    }
    if (job->cancelled || !m->audit_ok)
        log_error("%s %s: the finish could not be recorded in the audit log", action_of(m),
                  m->job_id);
    if (m->r != NULL) {
        json_t *o;
        if (job->cancelled || !m->audit_ok) {
            char msg[128];
            snprintf(msg, sizeof msg,
                     "the job's end could not be recorded in the audit log (job %s)", m->job_id);
            o = api_error_body(API_ERR_UNAVAILABLE, msg);
        } else {
            json_t *d = finish_details(m, m->sha_hex);
            o = d != NULL ? json_pack("{s:o}", "summary", d) : NULL;
        }
        char *t = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        if (t != NULL) {
            evbuffer_add(m->out, t, strlen(t));
            evbuffer_add(m->out, "\n", 1);
        }
        free(t);

        flush_out(m);
        api_reply_end(m->r);
        m->r = NULL;
    }
    imp_free(m);
}

/* ---- the handler ----------------------------------------------------------------------------- */

static void accounts(struct api_request *r, bool check)
{
    struct service *svc = r->ctx;
    const char *ct = api_request_header(r, "Content-Type");
    struct imp *m;

    if (svc->gateway == NULL) {
        api_reply_error(r, API_ERR_UNAVAILABLE, "the server is not calling Tencent now; retry");
        return;
    }
    bool ndjson = ct != NULL && strncasecmp(ct, "application/x-ndjson", 20) == 0;
    if (ct == NULL || (!ndjson && strncasecmp(ct, "text/plain", 10) != 0)) {
        api_reply_error(r, API_ERR_UNSUPPORTED_MEDIA_TYPE,
                        "send text/plain (one UserID a line) or application/x-ndjson "
                        "({\"identifier\", \"nick\", \"face_url\"} a line)");
        return;
    }
    const char *cmd = check ? "account_check" : "multiaccount_import";
    if (r->principal->role == ROLE_REST_CALLER &&
        !principal_rest_allows(r->principal, "im_open_login_svc", cmd)) {
        api_reply_error(r, API_ERR_REST_NOT_ALLOWED,
                        "this token's rest_allow does not cover im_open_login_svc/%s", cmd);
        return;
    }
    m = calloc(1, sizeof *m);
    if (m == NULL || (m->sha = EVP_MD_CTX_new()) == NULL || (m->out = evbuffer_new()) == NULL ||
        EVP_DigestInit_ex(m->sha, EVP_sha256(), NULL) != 1) {
        if (m != NULL)
            imp_free(m);
        api_reply_error(r, API_ERR_INTERNAL, "out of memory");
        return;
    }
    unsigned char id[16];
    if (RAND_bytes(id, sizeof id) != 1) {
        imp_free(m);
        api_reply_error(r, API_ERR_INTERNAL, "the random number generator failed");
        return;
    }
    hex_encode(id, sizeof id, m->job_id);
    m->kick = event_new(gateway_base(svc->gateway), -1, 0, on_kick, m);
    if (m->kick == NULL) {
        imp_free(m);
        api_reply_error(r, API_ERR_INTERNAL, "out of memory");
        return;
    }
    m->svc = svc;
    m->r = r;
    m->ndjson = ndjson;
    m->check = check;
    m->principal = *r->principal;
    m->sdkappid = r->sdkappid;
    snprintf(m->request_id, sizeof m->request_id, "%s", r->request_id);
    m->stream = api_request_stream(r);
    if (m->stream == NULL) {
        /* A body that did not stream (empty): nothing to read. */
        m->input_done = true;
    }
    api_request_defer(r);
    manifest_submit(m, 0);
}

void handle_accounts_import(struct api_request *r)
{
    accounts(r, false);
}

void handle_accounts_check(struct api_request *r)
{
    accounts(r, true);
}
