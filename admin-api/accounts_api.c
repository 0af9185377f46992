/*
 * Admin API bulk account import and check: POST /v1/apps/{sdkappid}/accounts/import and
 * /accounts/check. The body streams like the batch endpoint's (http.h api_request_stream):
 * text/plain, one UserID a line, or NDJSON, {"identifier", "nick"?, "face_url"?} a line. The
 * accounts go to Tencent 100 a call (im_open_login_svc/multiaccount_import, account_check), a
 * few calls in flight, with acct_calls.h's retries (the bucket, Tencent's rate limit, the
 * network) and FailAccounts sent again (twice more). The reply streams one
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

#include "acct_calls.h"
#include "gateway.h"
#include "hex.h"
#include "http_frame.h"
#include "log.h"
#include "service.h"
#include "utf8.h"

#define IN_FLIGHT 4        /* calls of one job at once */
#define MAX_CHUNKS 8       /* chunks held (in flight or waiting to be written out) */
#define ACCT_LINE_MAX 4096 /* bytes of an input line looked at */
#define MSG_BUF 512

struct imp {
    struct service *svc;
    struct acct_run run; /* the chunks' calls (acct_calls.h) */
    struct api_request *r;
    struct frame_stream *stream;
    bool ndjson;
    struct principal principal;
    char request_id[API_REQUEST_ID_LEN + 1];
    char job_id[33];
    uint32_t sdkappid;
    struct acct_chunk *head, *tail, *filling;
    int n_chunks;
    uint64_t count, imported, not_imported, failed;
    EVP_MD_CTX *sha;
    struct evbuffer *out;
    bool skip_line, input_done, cut, streaming, finishing, pumping, again;
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
    return m->run.check ? "accounts.check" : "accounts.import";
}

/* ---- accounts from lines --------------------------------------------------------------------- */

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
    if (a->state == ACCT_IMPORTED) {
        m->imported++;
        o = json_pack("{s:s, s:s}", "identifier", a->id, "status", "imported");
    } else if (a->state == ACCT_NOT_IMPORTED) {
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
    if (!m->run.gone)
        m->unsent++;
    if (m->run.gone || api_reply_chunk(m->r, m->out, on_sent, m) != 0) {
        if (!m->run.gone)
            m->unsent--;
        evbuffer_drain(m->out, evbuffer_get_length(m->out));
        m->run.gone = true;
    }
}

/* ---- reading the body ------------------------------------------------------------------------ */

static void enqueue(struct imp *m)
{
    struct acct_chunk *c = m->filling;
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
        if (m->filling == NULL && (m->filling = acct_chunk_new(&m->run)) == NULL) {
            m->input_done = true;
            m->cut = true;
            break;
        }
        struct acct *a = &m->filling->a[m->filling->n++];
        size_t n = take;
        if (n > 0 && p[n - 1] == '\r')
            n--;
        acct_from_line(a, m->ndjson, (const char *)p, n);
        if (too_long || len > ACCT_LINE_MAX)
            acct_fail(a, "bad_identifier", 0, "the line is too long");
        evbuffer_drain(in, len + (lf.pos >= 0 && !m->skip_line ? 1 : 0));
        if (m->filling->n == ACCT_CHUNK_MAX)
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
            struct acct_chunk *c = m->head;
            m->head = c->next;
            if (m->head == NULL)
                m->tail = NULL;
            m->n_chunks--;
            for (int i = 0; i < c->n; i++)
                emit_acct(m, &c->a[i]);
            acct_chunk_free(c);
        }
        flush_out(m);
        if (m->run.gone && !m->input_done) {
            m->input_done = true;
            m->cut = true;
            if (m->filling != NULL)
                acct_chunk_free(m->filling);
            m->filling = NULL;
        } else if (!m->run.gone && m->unsent < 4) {
            read_lines(m);
        }
        for (struct acct_chunk *c = m->head; c != NULL && m->run.in_flight < IN_FLIGHT; c = c->next)
            if (acct_chunk_unsent(c)) {
                acct_dispatch(c);
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

static void pump_cb(void *arg)
{
    pump(arg);
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
        struct acct_chunk *c = m->head;
        m->head = c->next;
        acct_chunk_free(c);
    }
    if (m->filling != NULL)
        acct_chunk_free(m->filling);
    frame_stream_release(m->stream);
    if (m->run.app != NULL)
        cache_app_release(m->run.app);
    if (m->out != NULL)
        evbuffer_free(m->out);
    if (m->kick != NULL)
        event_free(m->kick);
    EVP_MD_CTX_free(m->sha);
    explicit_bzero(&m->principal, sizeof m->principal);
    free(m);
}

/* The job's end: aborted when its input was cut, its client left or the server stopped. */
static const char *job_state(const struct imp *m)
{
    return m->cut || m->run.gone || m->run.stopped ? "aborted" : "complete";
}

static json_t *finish_details(struct imp *m, const char *sha)
{
    json_t *d =
        json_pack("{s:s, s:s, s:I, s:I, s:I, s:I, s:s}", "job_id", m->job_id, "state", job_state(m),
                  "count", (json_int_t)m->count, "imported", (json_int_t)m->imported, "failed",
                  (json_int_t)m->failed, "calls", (json_int_t)m->run.calls, "sha256", sha);
    if (d != NULL && m->run.check)
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
        m->err = service_app_entry(svc, m->sdkappid, &m->run.app, m->msg, sizeof m->msg, &refused);
        struct tim_call tc;
        if (m->err == API_OK)
            m->err = gateway_app_check(svc->cfg, m->run.app, &tc, m->msg, sizeof m->msg);
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
                                m->run.app->active != NULL ? m->run.app->active->version : 0,
                                "started", d) == STORE_OK &&
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
    m->audit_ok =
        d != NULL && store_begin(svc->st) == STORE_OK &&
        service_audit(svc, &m->principal, action, m->sdkappid, 0, job_state(m), d) == STORE_OK &&
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
    m->run.gone = true;
    /* The calls waiting or in flight are dropped (their chunks fail as client_gone). */
    for (struct acct_chunk *c = m->head; c != NULL; c = c->next)
        acct_chunk_drop(c);
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
            m->run.gone = true;
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
    m->run.svc = svc;
    m->run.progress = pump_cb;
    m->run.arg = m;
    m->r = r;
    m->ndjson = ndjson;
    m->run.check = check;
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
