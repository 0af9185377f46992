/*
 * Admin API batch signing: POST /v1/apps/{sdkappid}/usersigs/batch. The event loop never waits
 * on the database here: the query and the body's form are checked on the loop; the app and its
 * active key are read and the batch recorded (a running batches row and the "usersig.batch"
 * event, or an audited refusal) in one transaction on a database thread; only once that has
 * committed does the stream start, carrying the signing pipeline's lines while it computes them
 * (server/pipeline.h) and cutting the body into blocks as it goes. The end (row, sign count,
 * "usersig.batch.finish" event) is recorded on a database thread too, before the summary line,
 * or as aborted when the client leaves or the stream fails. The steps, in order: parse the query
 * and the body's form (loop); open the app and key, record the start (database); make the
 * pipeline job, start the stream (loop); record the end (database, batch_end.c); end the stream
 * (loop). The application/json body's check and cutting are batch_json.c; a re-issue's
 * identifiers, batch_reissue.c; ?import=1, batch_import.c.
 *
 * A text/plain or NDJSON body streams (http.h api_request_stream): lines are cut as they
 * arrive, only whole ones until the body ends, and the connection is read only as fast as the
 * pipeline takes them; a body cut short ends the batch as aborted, after the lines received
 * whole. At most batch_max_running batches run at once; one more is 429 with Retry-After.
 */
#include "batch_int.h"
#include "batches.h"
#include "gateway.h"
#include "hex.h"
#include "metrics.h"
#include "op_limits.h"

#include <event2/buffer.h>
#include <event2/util.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define RETRY_AFTER_BATCH "5" /* seconds: a batch takes seconds, its slot frees then */

/* The SHA-256 of no output: a batch closed before its pipeline job existed. */
#define SHA256_EMPTY "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* ---- cutting the body into items (pipeline fill callback) ------------------------------------ */

/* text/plain and application/x-ndjson: one item a line; the last one may lack its LF. Takes at
 * most limit bytes of in. */
enum pipeline_fill batch_fill_lines(struct batch *b, struct evbuffer *in, struct pipeline_items *it,
                                    size_t limit)
{
    struct evbuffer_iovec v;
    size_t done = 0;
    while (done < limit && evbuffer_peek(in, -1, NULL, &v, 1) > 0 && v.iov_len > 0) {
        const char *s = v.iov_base;
        size_t n = v.iov_len < limit - done ? v.iov_len : limit - done, used = 0;
        while (used < n) {
            if (!b->item_open) {
                if (pipeline_items_full(it))
                    break;
                pipeline_items_begin(it);
                b->item_open = true;
            }
            const char *nl = memchr(s + used, '\n', n - used);
            size_t take = nl != NULL ? (size_t)(nl - (s + used)) : n - used;
            if (pipeline_items_append(it, s + used, take) != 0)
                return PIPELINE_FILL_ERROR;
            used += take;
            if (nl != NULL) {
                pipeline_items_end(it);
                b->item_open = false;
                used++;
            }
        }
        evbuffer_drain(in, used);
        done += used;
        if (used < n)
            return PIPELINE_FILL_MORE;
    }
    if (b->item_open) {
        pipeline_items_end(it);
        b->item_open = false;
    }
    return PIPELINE_FILL_END;
}

/* The bytes of in up to and including its last LF (0: none); (size_t)-1 when out of memory. */
static size_t through_last_lf(struct evbuffer *in)
{
    struct evbuffer_iovec small[64], *v = small;
    int n = evbuffer_peek(in, -1, NULL, NULL, 0);
    size_t end = evbuffer_get_length(in), found = 0;

    if (n <= 0)
        return 0;
    if (n > 64 && (v = malloc((size_t)n * sizeof *v)) == NULL)
        return (size_t)-1;
    n = evbuffer_peek(in, -1, NULL, v, n);
    for (int i = n - 1; i >= 0 && found == 0; i--) {
        const char *p = v[i].iov_base;
        end -= v[i].iov_len;
        for (size_t k = v[i].iov_len; k > 0; k--)
            if (p[k - 1] == '\n') {
                found = end + k;
                break;
            }
    }
    if (v != small)
        free(v);
    return found;
}

/* A streamed text/plain or NDJSON body: whole lines as they come; the last line once the body
 * is complete; a partial last line of a body cut short is dropped (b->cut). */
static enum pipeline_fill fill_stream(struct batch *b, struct pipeline_items *it)
{
    struct evbuffer *in = frame_stream_buffer(b->stream);
    enum frame_stream_state st = frame_stream_state(b->stream);
    size_t before = evbuffer_get_length(in), upto;
    enum pipeline_fill rc = PIPELINE_FILL_END;

    if (b->skip_line) {
        /* The rest of a line over PIPELINE_ITEM_MAX, whose item was added with its start. */
        struct evbuffer_ptr lf = evbuffer_search(in, "\n", 1, NULL);
        evbuffer_drain(in, lf.pos >= 0 ? (size_t)lf.pos + 1 : before);
        b->skip_line = lf.pos < 0;
    }
    upto = st == FRAME_STREAM_END ? evbuffer_get_length(in) : through_last_lf(in);
    if (upto == (size_t)-1)
        return PIPELINE_FILL_ERROR;
    if (!b->skip_line && upto == 0 && st == FRAME_STREAM_OPEN &&
        evbuffer_get_length(in) > PIPELINE_ITEM_MAX && !pipeline_items_full(it)) {
        /* A line longer than any item, its LF not here yet: its start is its item (marked too
         * long: an error line in its place), so that the stream never waits on it. */
        unsigned char *p = evbuffer_pullup(in, PIPELINE_ITEM_MAX + 1);
        if (p == NULL || pipeline_items_add(it, (const char *)p, PIPELINE_ITEM_MAX + 1) != 0)
            return PIPELINE_FILL_ERROR;
        evbuffer_drain(in, evbuffer_get_length(in));
        b->skip_line = true;
    }
    if (!b->skip_line && upto > 0)
        rc = batch_fill_lines(b, in, it, upto);
    if (rc == PIPELINE_FILL_END && st == FRAME_STREAM_OPEN)
        rc = PIPELINE_FILL_WAIT;
    if (rc == PIPELINE_FILL_END && st == FRAME_STREAM_CUT) {
        b->cut = true; /* what follows the last LF was a partial line */
        evbuffer_drain(in, evbuffer_get_length(in));
    }
    if (evbuffer_get_length(in) < before)
        frame_stream_drained(b->stream);
    return rc;
}

/* ?import=1: the lines through the import front. */
static enum pipeline_fill fill_import(struct batch *b, struct evbuffer *in,
                                      struct pipeline_items *it)
{
    enum batch_import_input st = BATCH_IMPORT_END;
    bool taken = false;
    if (b->stream != NULL) {
        in = frame_stream_buffer(b->stream);
        enum frame_stream_state fs = frame_stream_state(b->stream);
        st = fs == FRAME_STREAM_OPEN  ? BATCH_IMPORT_OPEN
             : fs == FRAME_STREAM_END ? BATCH_IMPORT_END
                                      : BATCH_IMPORT_CUT;
    }
    enum pipeline_fill rc = batch_import_fill(b->imp, in, st, it, &taken);
    if (rc == PIPELINE_FILL_END && st == BATCH_IMPORT_CUT)
        b->cut = true;
    if (taken && b->stream != NULL)
        frame_stream_drained(b->stream);
    return rc;
}

static enum pipeline_fill batch_fill(void *arg, struct pipeline_items *it)
{
    struct batch *b = arg;
    if (b->reissue)
        return batch_reissue_fill(b, it);
    struct evbuffer *in = b->r != NULL ? api_request_input(b->r) : NULL;
    if (in == NULL)
        return PIPELINE_FILL_ERROR;
    if (b->imp != NULL)
        return fill_import(b, in, it);
    if (b->stream != NULL)
        return fill_stream(b, it);
    return b->input == PIPELINE_IN_JSON_VALUE ? batch_json_fill(&b->json, in, it)
                                              : batch_fill_lines(b, in, it, SIZE_MAX);
}

/* The stream has new bytes, or ended; or, with ?import=1, an import ended. */
void batch_input(void *arg)
{
    struct batch *b = arg;
    if (b->job != NULL)
        pipeline_job_input(b->job);
}

/* ---- the stream ------------------------------------------------------------------------------ */

void batch_free(struct batch *b)
{
    if (b->counted)
        b->svc->batches_running--;
    batch_import_free(b->imp);
    if (b->capp != NULL)
        cache_app_release(b->capp);
    if (b->src != NULL)
        evbuffer_free(b->src);
    free(b->page);
    frame_stream_release(b->stream);
    if (b->chunk != NULL)
        evbuffer_free(b->chunk);
    usersig_key_free(b->ukey);
    explicit_bzero(&b->principal, sizeof b->principal);
    free(b);
}

static void batch_sent(struct api_request *r, void *arg)
{
    struct batch *b = arg;
    (void)r;
    if (b->job != NULL)
        pipeline_job_drained(b->job);
}

static int batch_emit(void *arg, const char *data, size_t len)
{
    struct batch *b = arg;
    if (b->r == NULL || api_request_gone(b->r) || evbuffer_add(b->chunk, data, len) != 0)
        return -1;
    if (api_reply_chunk(b->r, b->chunk, batch_sent, b) != 0) {
        evbuffer_drain(b->chunk, evbuffer_get_length(b->chunk));
        return -1;
    }
    return 0;
}

/* The pipeline's end of the job: record it; the last line follows once it is recorded. */
static void batch_done(void *arg, const struct pipeline_result *res)
{
    struct batch *b = arg;
    bool complete = res->state == PIPELINE_COMPLETE;

    b->job = NULL;
    b->res = *res;
    batch_import_stop(b->imp);
    if (!complete)
        log_msg(LOG_ERROR, b->request_id, "batch %s: %s after %" PRIu64 " lines: %s", b->batch_id,
                pipeline_state_name(res->state), res->count,
                res->why != NULL ? res->why : "stopped");
    else if (b->cut)
        log_msg(LOG_WARN, b->request_id,
                "batch %s: the body was cut short after %" PRIu64 " bytes; %" PRIu64
                " whole lines answered",
                b->batch_id, frame_stream_received(b->stream), res->count);
    batch_end(b, complete && !b->cut ? STORE_BATCH_COMPLETE : STORE_BATCH_ABORTED, true);
}

/* The client left (or the server is stopping): the batch ends as aborted, with what was sent.
 * When its end is being recorded already, batch_end_done ends the stream. */
static void batch_closed(struct api_request *r, void *arg)
{
    struct batch *b = arg;
    (void)r;
    if (b->job == NULL)
        return;
    pipeline_job_cancel(b->job, &b->res);
    b->job = NULL;
    batch_import_stop(b->imp);
    log_msg(LOG_WARN, b->request_id, "batch %s: the client left after %" PRIu64 " lines",
            b->batch_id, b->res.count);
    batch_end(b, STORE_BATCH_ABORTED, false);
}

/* ---- the request ---------------------------------------------------------------------------- */

/* Whether v starts with the media type type (any case), then parameters or the end, or, in an
 * Accept list (in_list), the list's next entry. A Content-Type is one type: not a list. */
static bool media_is(const char *v, const char *type, bool in_list)
{
    size_t n = strlen(type);
    while (*v == ' ' || *v == '\t')
        v++;
    if (strncasecmp(v, type, n) != 0)
        return false;
    v += n;
    while (*v == ' ' || *v == '\t')
        v++;
    return *v == '\0' || *v == ';' || (in_list && *v == ',');
}

/* Whether an Accept header asks for CSV: a text/csv entry whose q is not 0. */
bool batch_accepts_csv(const char *accept)
{
    for (const char *p = accept; p != NULL; p = strchr(p, ',')) {
        p += *p == ',';
        if (!media_is(p, "text/csv", true))
            continue;
        size_t len = strcspn(p, ",");
        const char *q = strstr(p, "q=");
        if (q == NULL || q >= p + len || strtod(q + 2, NULL) > 0)
            return true;
    }
    return false;
}

/* The details of the start event, or of a refusal (expire 0: not known yet). NULL when out of
 * memory. */
static json_t *start_details(const struct batch *b, int64_t expire, int level)
{
    json_t *d = json_pack("{s:i, s:s, s:s}", "level", level, "format",
                          pipeline_input_name(b->input), "output", pipeline_output_name(b->output));
    int bad = d == NULL;
    if (!bad && b->batch_id[0] != '\0')
        bad |= json_object_set_new(d, "batch_id", json_string(b->batch_id));
    if (!bad && expire != 0)
        bad |= json_object_set_new(d, "expire", json_integer(expire));
    if (!bad && b->import)
        bad |= json_object_set_new(d, "import", json_true());
    if (!bad && b->reissue)
        bad |=
            json_object_set_new(d, "reissue",
                                json_pack("{s:I, s:I}", "from_version", (json_int_t)b->from_version,
                                          "expiring_after", (json_int_t)b->after_s));
    if (bad) {
        json_decref(d);
        return NULL;
    }
    return d;
}

static void new_batch_id(char out[STORE_BATCH_ID_LEN + 1])
{
    uint8_t rnd[STORE_BATCH_ID_LEN / 2];
    evutil_secure_rng_get_bytes(rnd, sizeof rnd);
    hex_encode(rnd, sizeof rnd, out);
}

/* ---- the handler, step by step -------------------------------------------------------------- */

/* A new batch for r, or NULL when out of memory (or r has no body buffer). */
struct batch *batch_new(struct api_request *r, struct evbuffer *in)
{
    struct batch *b = calloc(1, sizeof *b);
    if (b == NULL || in == NULL || (b->chunk = evbuffer_new()) == NULL) {
        if (b != NULL)
            batch_free(b);
        return NULL;
    }
    b->svc = r->ctx;
    b->r = r;
    b->sdkappid = r->sdkappid;
    b->principal = *r->principal;
    snprintf(b->request_id, sizeof b->request_id, "%s", r->request_id);
    return b;
}

/* The query: expire, level and import (the route's query list in routes.c: the dispatcher has
 * refused any other name). */
static enum api_error parse_query(struct api_request *r, struct batch_params *p, char msg[MSG_BUF])
{
    int64_t import = 0;
    if (api_query_int64(r, "import", 0, 1, &import) == API_QUERY_INVALID) {
        snprintf(msg, MSG_BUF, "query parameter import must be 0 or 1");
        return API_ERR_INVALID_PARAM;
    }
    p->import = import == 1;
    if (api_query_int64(r, "level", 0, 9, &p->level) == API_QUERY_INVALID) {
        snprintf(msg, MSG_BUF, "query parameter level must be a zlib level from 0 to 9");
        return API_ERR_INVALID_PARAM;
    }
    switch (api_query_int64(r, "expire", INT32_MIN, INT32_MAX, &p->expire)) {
    case API_QUERY_OK:
        p->has_expire = true;
        break;
    case API_QUERY_ABSENT:
        break;
    case API_QUERY_INVALID:
        snprintf(msg, MSG_BUF, "query parameter expire must be an integer (seconds)");
        return API_ERR_INVALID_PARAM;
    }
    return API_OK;
}

/* The body's form (Content-Type), the answer's (Accept), and an application/json body checked
 * whole (it may carry expire). */
static enum api_error parse_body_form(struct api_request *r, struct batch *b, struct evbuffer *in,
                                      struct batch_params *p, char msg[MSG_BUF])
{
    const char *ct = api_request_header(r, "Content-Type");
    int64_t body_expire = 0;
    bool has_body_expire = false;
    enum api_error err;

    if (ct != NULL && media_is(ct, "text/plain", false)) {
        b->input = PIPELINE_IN_TEXT;
    } else if (ct != NULL && media_is(ct, "application/x-ndjson", false)) {
        b->input = PIPELINE_IN_NDJSON;
    } else if (ct != NULL && media_is(ct, "application/json", false)) {
        b->input = PIPELINE_IN_JSON_VALUE;
    } else {
        snprintf(msg, MSG_BUF,
                 "send the body as text/plain (one identifier a line), application/x-ndjson "
                 "(one JSON object a line) or application/json ({\"identifiers\": [...]})");
        return API_ERR_UNSUPPORTED_MEDIA_TYPE;
    }
    b->output =
        batch_accepts_csv(api_request_header(r, "Accept")) ? PIPELINE_OUT_CSV : PIPELINE_OUT_NDJSON;
    if (b->input != PIPELINE_IN_JSON_VALUE)
        return API_OK;
    err = batch_json_check(in, &b->json, &has_body_expire, &body_expire, msg, MSG_BUF);
    if (err != API_OK)
        return err;
    if (has_body_expire && p->has_expire) {
        snprintf(msg, MSG_BUF, "give expire in the query or in the body, not both");
        return API_ERR_INVALID_FIELD;
    }
    if (has_body_expire) {
        p->has_expire = true;
        p->expire = body_expire;
    }
    return API_OK;
}

/* In a new transaction on svc (a database thread's): the app (its default and max expire) and
 * its active key, opened for signing into b->ukey. On failure the caller rolls back; *refused
 * says an audited refusal. */
static enum api_error open_app_key(struct service *svc, struct batch *b, struct store_key *key,
                                   char msg[MSG_BUF], bool *refused)
{
    struct batch_params *p = &b->p;
    enum api_error err;

    if (store_begin(svc->st) != STORE_OK)
        return API_ERR_UNAVAILABLE;
    err = service_app_get(svc, b->sdkappid, &b->app, msg, MSG_BUF, refused);
    if (err != API_OK)
        return err;
    if (!p->has_expire)
        p->expire = b->app.default_expire;
    if (p->expire < 1 || p->expire > (int64_t)b->app.max_expire) {
        *refused = true;
        snprintf(msg, MSG_BUF,
                 "expire must be 1 to %u seconds: at most app %u's max_expire (%u seconds)",
                 b->app.max_expire, b->sdkappid, b->app.max_expire);
        return API_ERR_BAD_EXPIRE;
    }
    err = service_active_key(svc, b->sdkappid, STORE_LOCK_SHARE, key, &b->ukey, msg, MSG_BUF,
                             refused);
    if (err == API_OK)
        b->key_version = key->version;
    return err;
}

static enum api_error bad_key(const struct batch *b, char msg[MSG_BUF])
{
    snprintf(msg, MSG_BUF, "key version %u of app %u cannot sign: %s", b->key_version, b->sdkappid,
             usersig_rc_message(USERSIG_KEY_CANNOT_SIGN));
    return API_ERR_BAD_KEY;
}

/* The batch is recorded before anything is signed (a running batches row and the
 * "usersig.batch" event), and the transaction committed: no row and no event, no token. */
static enum api_error record_start(struct service *svc, struct batch *b, char msg[MSG_BUF])
{
    struct store_batch row;

    new_batch_id(b->batch_id);
    memset(&row, 0, sizeof row);
    snprintf(row.batch_id, sizeof row.batch_id, "%s", b->batch_id);
    row.sdkappid = b->sdkappid;
    row.key_version = b->key_version;
    row.actor_id = b->principal.token_id;
    snprintf(row.actor_name, sizeof row.actor_name, "%s", b->principal.name);
    enum api_error err = op_limits_batch_reserve(svc, &b->principal, b->sdkappid, &b->allowance,
                                                 &b->retry_after_s, msg, MSG_BUF);
    if (err != API_OK)
        return err; /* over a limit: not audited (a client hammering it would fill the log) */
    row.allowance = b->allowance;
    row.expire = (uint32_t)b->p.expire;
    if (batches_start(svc, batches_current(), &b->principal, &row,
                      start_details(b, b->p.expire, (int)b->p.level)) != STORE_OK) {
        snprintf(msg, MSG_BUF, "the batch could not be recorded; no UserSig was issued");
        return API_ERR_UNAVAILABLE;
    }
    return API_OK;
}

/* ---- ?import=1 ------------------------------------------------------------------------------ */

/* On the loop, before anything is recorded: the body's form, the caller's right to import (an
 * admin, or a token whose rest_allow covers multiaccount_import) and a gateway to call. */
static enum api_error import_allowed(struct api_request *r, struct service *svc,
                                     const struct batch *b, char msg[MSG_BUF])
{
    if (b->input == PIPELINE_IN_JSON_VALUE) {
        snprintf(msg, MSG_BUF,
                 "import=1 takes a text/plain or application/x-ndjson body (one identifier, or "
                 "one JSON object, a line)");
        return API_ERR_INVALID_PARAM;
    }
    if (r->principal->role != ROLE_ADMIN &&
        !principal_rest_allows(r->principal, "im_open_login_svc", "multiaccount_import")) {
        snprintf(msg, MSG_BUF,
                 "import=1 imports each account into Tencent first: this token's rest_allow "
                 "does not cover im_open_login_svc/multiaccount_import (an admin token, or a "
                 "signer token created with it, may)");
        return API_ERR_REST_NOT_ALLOWED;
    }
    if (svc->gateway == NULL) {
        snprintf(msg, MSG_BUF, "the server is not calling Tencent now; retry");
        return API_ERR_UNAVAILABLE;
    }
    return API_OK;
}

/* In the start's transaction (svc: the database thread's): the app can call Tencent (a
 * gateway_identifier, a base URL this server calls); its cache entry kept in b->capp for the
 * calls. */
static enum api_error import_check(struct service *svc, struct batch *b, char msg[MSG_BUF],
                                   bool *refused)
{
    struct tim_call tc;
    enum api_error err = service_app_entry(svc, b->sdkappid, &b->capp, msg, MSG_BUF, refused);
    if (err == API_OK)
        err = gateway_app_check(svc->cfg, b->capp, &tc, msg, MSG_BUF); /* not the loop's gateway */
    if (err == API_ERR_INVALID_STATE)
        *refused = true;
    return err;
}

static void import_ready(void *arg)
{
    batch_input(arg);
}

static void rules_of(const struct batch *b, struct pipeline_rules *r);

/* On the loop, once the start is recorded: the import front, with the pipeline's rules. */
static enum api_error import_front(struct batch *b)
{
    struct batch_import_config cfg = {
        .svc = b->svc,
        .app = b->capp,
        .input = b->input,
        .policy = (enum usersig_id_policy)b->app.identifier_policy,
        .ready = import_ready,
        .arg = b,
    };
    rules_of(b, &cfg.rules);
    b->capp = NULL; /* taken */
    b->imp = batch_import_new(&cfg);
    return b->imp != NULL ? API_OK : API_ERR_INTERNAL;
}

/* On a database thread (ctx: its struct service): for each batch, the app and its key read and
 * the start recorded; or the error, a refusal audited in a transaction of its own. */
void batch_start_run(struct store *st, void *ctx, struct dbpool_job *jobs)
{
    struct service *svc = ctx;
    (void)st;
    for (struct dbpool_job *j = jobs; j != NULL; j = j->next) {
        struct batch *b = j->arg;
        struct store_key key;

        memset(&key, 0, sizeof key);
        b->err = open_app_key(svc, b, &key, b->msg, &b->refused);
        /* What the pipeline job would refuse, found before anything is recorded. */
        if (b->err == API_OK && !usersig_key_is_private(b->ukey))
            b->err = bad_key(b, b->msg);
        if (b->err == API_OK && b->reissue)
            b->err = batch_reissue_check(svc, b, b->msg, &b->refused);
        if (b->err == API_OK && b->import)
            b->err = import_check(svc, b, b->msg, &b->refused);
        if (b->err == API_OK)
            b->err = record_start(svc, b, b->msg);
        if (b->err == API_OK && b->reissue)
            batch_reissue_catch_up(svc, b);
        if (b->err == API_OK && b->reissue)
            batch_reissue_fetch_page(svc, b);
        if (b->err == API_OK) {
            b->started = true;
        } else {
            store_rollback(svc->st);
            usersig_key_free(b->ukey);
            b->ukey = NULL;
            if (b->refused)
                service_audit_refusal(svc, &b->principal, "usersig.batch", b->sdkappid, key.version,
                                      api_error_code(b->err),
                                      start_details(b, b->p.expire, (int)b->p.level));
        }
        store_key_clear(&key);
    }
}

/* Who may sign what in b (sign.h's rules, as a single sign applies them): the app's
 * administrator identifiers, whether b's principal may sign for them and for how long, and its
 * identifier prefixes. */
static void rules_of(const struct batch *b, struct pipeline_rules *r)
{
    _Static_assert(PIPELINE_MAX_ADMIN_IDS == STORE_APP_MAX_ADMIN_IDS &&
                       PIPELINE_MAX_PREFIXES == PRINCIPAL_MAX_PREFIXES &&
                       USERSIG_MAX_IDENTIFIER == STORE_ID_MAX &&
                       USERSIG_MAX_IDENTIFIER == PRINCIPAL_PREFIX_MAX,
                   "the pipeline's rules hold the app's and the principal's lists");
    memset(r, 0, sizeof *r);
    r->n_admin_ids = b->app.n_admin_ids;
    memcpy(r->admin_ids, b->app.admin_ids, sizeof r->admin_ids);
    r->admin_allowed = role_signs_admin_ids(b->principal.role);
    r->admin_max_expire = b->app.admin_max_expire;
    r->n_prefixes = b->principal.n_prefixes;
    memcpy(r->prefixes, b->principal.prefixes, sizeof r->prefixes);
}

/* The pipeline job for b, not started; it takes b->ukey (set to NULL) whatever happens. */
static enum api_error new_job(struct service *svc, struct batch *b, struct pipeline_job **job,
                              char msg[MSG_BUF])
{
    struct pipeline_job_config cfg = {
        .sdkappid = b->sdkappid,
        .key = b->ukey,
        .level = (int)b->p.level,
        .policy = (enum usersig_id_policy)b->app.identifier_policy,
        .expire = (uint32_t)b->p.expire,
        .expire_given = b->p.has_expire,
        .max_expire = b->app.max_expire,
        .input = b->input,
        .output = b->output,
        .arg = b,
        .fill = batch_fill,
        .emit = batch_emit,
        .done = batch_done,
    };
    rules_of(b, &cfg.rules);
    cfg.max_items = b->allowance > 0 ? (uint64_t)b->allowance : 0;
    b->ukey = NULL; /* taken by pipeline_job_new */
    switch (pipeline_job_new(svc->pipeline, &cfg, job)) {
    case PIPELINE_OK:
        return API_OK;
    case PIPELINE_BAD_KEY:
        return bad_key(b, msg);
    default:
        return API_ERR_INTERNAL;
    }
}

/* Starts the streamed reply and the job; from here batch_done or batch_closed ends b. When no
 * stream can start (a 500 went out instead, or the client left while the start was recorded),
 * the job is cancelled and the batch closed as aborted. */
static void start_stream(struct batch *b, struct pipeline_job *job)
{
    struct api_request *r = b->r;

    if (api_reply_start(r, 200,
                        b->output == PIPELINE_OUT_CSV ? "text/csv; charset=utf-8"
                                                      : "application/x-ndjson") != 0) {
        b->r = NULL; /* released */
        pipeline_job_cancel(job, &b->res);
        batch_end(b, STORE_BATCH_ABORTED, false);
        return;
    }
    b->job = job;
    api_request_on_close(r, batch_closed, b);
    log_msg(LOG_INFO, r->request_id,
            "batch %s: app %u, key version %u, %s in, %s out, expire %" PRId64 ", level %d",
            b->batch_id, b->sdkappid, b->key_version, pipeline_input_name(b->input),
            pipeline_output_name(b->output), b->p.expire, (int)b->p.level);
    pipeline_job_start(b->job);
}

/* On the loop, once the start is recorded, refused or failed: the stream starts, or the error
 * is the reply. */
void batch_start_done(struct dbpool_job *job)
{
    struct batch *b = job->arg;
    struct pipeline_job *pj = NULL;

    if (job->cancelled) {
        b->err = API_ERR_UNAVAILABLE;
        snprintf(b->msg, sizeof b->msg, "the server is stopping; retry");
    }
    if (b->err == API_OK && b->reissue) {
        batch_reissue_page_take(b);
        if (b->fetch_failed) {
            b->err = API_ERR_UNAVAILABLE;
            snprintf(b->msg, sizeof b->msg, "the identifiers to re-issue could not be read");
        }
    }
    if (b->err == API_OK && b->import)
        b->err = import_front(b);
    if (b->err == API_OK)
        b->err = new_job(b->svc, b, &pj, b->msg);
    if (b->err == API_OK) {
        start_stream(b, pj); /* b and pj are the stream's now */
        return;
    }
    if (b->retry_after_s > 0) {
        char v[24];
        snprintf(v, sizeof v, "%lld", (long long)b->retry_after_s);
        if (api_reply_header(b->r, "Retry-After", v) != 0)
            b->err = API_ERR_INTERNAL;
    }
    api_reply_error(b->r, b->err, "%s",
                    b->msg[0] != '\0' ? b->msg : api_error_info(b->err)->message);
    b->r = NULL;
    if (!b->started) {
        batch_free(b);
        return;
    }
    /* Recorded as running, yet nothing can be signed: closed at once, nothing sent. */
    log_msg(LOG_ERROR, b->request_id, "batch %s: its signing could not start", b->batch_id);
    memset(&b->res, 0, sizeof b->res);
    b->res.state = PIPELINE_CANCELLED;
    snprintf(b->res.sha256, sizeof b->res.sha256, "%s", SHA256_EMPTY);
    batch_end(b, STORE_BATCH_ABORTED, false);
}

/* Whether one more batch may run in this process (batch_max_running): API_OK, or 429
 * too_many_batches with Retry-After set and msg saying so. */
enum api_error batch_check_slot(struct api_request *r, struct service *svc, char msg[MSG_BUF])
{
    if (svc->cfg == NULL || svc->cfg->batch_max_running <= 0 ||
        svc->batches_running < (size_t)svc->cfg->batch_max_running)
        return API_OK;
    snprintf(msg, MSG_BUF,
             "%d batches are running in this process, as many as it runs at once "
             "(batch_max_running); retry after %s seconds",
             svc->cfg->batch_max_running, RETRY_AFTER_BATCH);
    if (api_reply_header(r, "Retry-After", RETRY_AFTER_BATCH) != 0)
        return API_ERR_INTERNAL;
    return API_ERR_TOO_MANY_BATCHES;
}

void handle_usersig_batch(struct api_request *r)
{
    struct service *svc = r->ctx;
    struct evbuffer *in = api_request_input(r);
    struct batch_params p = {.level = USERSIG_DEFAULT_LEVEL};
    struct batch *b = NULL;
    char msg[MSG_BUF] = "";
    enum api_error err = API_OK;

    if ((b = batch_new(r, in)) == NULL)
        err = API_ERR_INTERNAL;
    if (err == API_OK)
        err = parse_query(r, &p, msg);
    if (err == API_OK)
        err = parse_body_form(r, b, in, &p, msg);
    if (err == API_OK && svc->pipeline == NULL) {
        err = API_ERR_UNAVAILABLE;
        snprintf(msg, sizeof msg, "batch signing is not running in this process");
    }
    if (err == API_OK && p.import)
        err = import_allowed(r, svc, b, msg);
    if (err == API_OK)
        err = batch_check_slot(r, svc, msg);
    if (err == API_OK) {
        /* Accepted: its body may come (100 Continue) and is read as the pipeline takes it. */
        b->stream = api_request_stream(r);
        if (b->stream != NULL && b->input == PIPELINE_IN_JSON_VALUE) {
            err = API_ERR_UNSUPPORTED_MEDIA_TYPE;
            snprintf(msg, sizeof msg, "send application/json alone as the Content-Type");
        } else if (b->stream != NULL) {
            frame_stream_on_data(b->stream, batch_input, b);
        }
        b->counted = true;
        svc->batches_running++;
    }
    if (err != API_OK) {
        api_reply_error(r, err, "%s", msg[0] != '\0' ? msg : api_error_info(err)->message);
        if (b != NULL)
            batch_free(b);
        return;
    }
    /* The database steps: r, its body and b stay as they are until batch_start_done. */
    b->p = p;
    b->import = p.import;
    b->start.run = batch_start_run;
    b->start.done = batch_start_done;
    b->start.arg = b;
    api_request_defer(r);
    service_run(svc, &b->start);
}
