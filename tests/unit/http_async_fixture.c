/*
 * The test server's side of test_http_async.c: token checks that answer at once, from a timer or
 * when the test releases them, and handlers that reply at once, later (deferred), streamed, or
 * when the test releases them; the counters the tests read.
 */
#include "http_async_fixture.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"

struct event_base *base;

/* ---- token checks ------------------------------------------------------------------------ */

/* Tokens: "t-<who>" answers inside the callback; "a<ms>-<who>" from a timer ms later; "hold-<who>"
 * when the test releases it. <who>: admin, signer, unknown, broken. */
static bool lookup(const char *who, struct principal *p, enum api_auth_rc *rc)
{
    memset(p, 0, sizeof *p);
    *rc = API_AUTH_OK;
    if (strcmp(who, "broken") == 0) {
        *rc = API_AUTH_ERROR;
        return false;
    }
    if (strcmp(who, "admin") == 0) {
        p->role = ROLE_ADMIN;
        p->all_apps = true;
    } else if (strcmp(who, "signer") == 0) {
        p->role = ROLE_SIGNER;
        p->n_apps = 1;
        p->apps[0] = APP_A;
    } else {
        *rc = API_AUTH_NOT_FOUND;
        return false;
    }
    p->token_id = 7;
    snprintf(p->name, sizeof p->name, "%s-name", who);
    return true;
}

void answer(struct api_auth *call, const char *who)
{
    struct principal p;
    enum api_auth_rc rc;
    bool ok = lookup(who, &p, &rc);
    api_auth_done(call, rc, ok ? &p : NULL);
}

struct timed_check {
    struct event *timer;
    struct api_auth *call;
    char who[32]; /* copied: the token is wiped when the callback returns */
};

atomic_int timed_answered;

static void timed_check_fire(evutil_socket_t fd, short what, void *arg)
{
    struct timed_check *t = arg;
    (void)fd;
    (void)what;
    answer(t->call, t->who);
    event_free(t->timer);
    free(t);
    atomic_fetch_add(&timed_answered, 1);
}

/* Held checks (loop thread only, but counted for the test thread). */
struct api_auth *held_auth[MAX_HELD];
static char held_auth_who[MAX_HELD][32];
atomic_int n_held_auth, bad_request_ids;

void async_authenticate(void *ctx, const char *token, struct api_auth *call)
{
    int ms;
    char who[32];
    (void)ctx;
    if (api_auth_request_id(call) == NULL || strlen(api_auth_request_id(call)) != 16)
        atomic_fetch_add(&bad_request_ids, 1);
    if (strncmp(token, "t-", 2) == 0) {
        answer(call, token + 2);
        return;
    }
    if (strncmp(token, "hold-", 5) == 0) {
        int i = atomic_load(&n_held_auth);
        if (i == MAX_HELD) {
            api_auth_done(call, API_AUTH_ERROR, NULL);
            return;
        }
        held_auth[i] = call;
        snprintf(held_auth_who[i], sizeof held_auth_who[i], "%s", token + 5);
        atomic_store(&n_held_auth, i + 1);
        return;
    }
    if (sscanf(token, "a%d-%31s", &ms, who) == 2) {
        struct timed_check *t = calloc(1, sizeof *t);
        struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
        if (t == NULL || (t->timer = evtimer_new(base, timed_check_fire, t)) == NULL) {
            free(t);
            api_auth_done(call, API_AUTH_ERROR, NULL);
            return;
        }
        t->call = call;
        snprintf(t->who, sizeof t->who, "%s", who);
        evtimer_add(t->timer, &tv);
        return;
    }
    api_auth_done(call, API_AUTH_NOT_FOUND, NULL);
}

/* Answers every held check (loop thread), as they said, or all with rc when arg is non-NULL. */
void release_auth_cb(void *arg)
{
    int n = atomic_load(&n_held_auth);
    atomic_store(&n_held_auth, 0);
    for (int i = 0; i < n; i++) {
        if (arg != NULL)
            api_auth_done(held_auth[i], *(enum api_auth_rc *)arg, NULL);
        else
            answer(held_auth[i], held_auth_who[i]);
    }
}

/* ---- handlers ---------------------------------------------------------------------------- */

atomic_int closes, deferred_fired, stream_faults;

static json_t *echo_body(struct api_request *r, const char *tag)
{
    return json_pack("{s:s?, s:s, s:s?, s:O?, s:I}", "tag", tag, "request_id", r->request_id,
                     "principal", r->principal ? r->principal->name : NULL, "body", r->body,
                     "sdkappid", (json_int_t)r->sdkappid);
}

static void h_echo(struct api_request *r)
{
    api_reply_json(r, 200, echo_body(r, NULL));
}

struct later {
    struct api_request *r;
    struct event *timer;
    char tag[64];
};

static void later_fire(evutil_socket_t fd, short what, void *arg)
{
    struct later *l = arg;
    (void)fd;
    (void)what;
    atomic_fetch_add(&deferred_fired, 1);
    api_reply_json(l->r, 200, echo_body(l->r, l->tag)); /* releases r, also when discarded */
    event_free(l->timer);
    free(l);
}

static void later_on_close(struct api_request *r, void *arg)
{
    struct later *l = arg;
    (void)r;
    (void)l;
    atomic_fetch_add(&closes, 1); /* the timer still replies (into nothing) */
}

static void later_cancel_on_close(struct api_request *r, void *arg)
{
    struct later *l = arg;
    atomic_fetch_add(&closes, 1);
    event_free(l->timer);
    free(l);
    api_reply_error(r, API_ERR_UNAVAILABLE, "cancelled"); /* discarded; releases r */
}

/* GET /t/defer?ms=N&tag=T[&cancel=1]: replies N ms later from a timer. */
static void h_defer(struct api_request *r)
{
    int64_t ms = 0;
    struct later *l;
    struct timeval tv;
    if (api_query_int64(r, "ms", 0, 10000, &ms) != API_QUERY_OK ||
        (l = calloc(1, sizeof *l)) == NULL) {
        api_reply_error(r, API_ERR_INVALID_PARAM, "ms");
        return;
    }
    if ((l->timer = evtimer_new(base, later_fire, l)) == NULL) {
        free(l);
        api_reply_error(r, API_ERR_INTERNAL, NULL);
        return;
    }
    l->r = r;
    snprintf(l->tag, sizeof l->tag, "%s", api_query(r, "tag") ? api_query(r, "tag") : "");
    api_request_defer(r);
    api_request_on_close(r, api_query(r, "cancel") ? later_cancel_on_close : later_on_close, l);
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
    evtimer_add(l->timer, &tv);
}

/* Deferred, then answered before the handler returns: still one reply. */
static void h_defer_now(struct api_request *r)
{
    api_request_defer(r);
    api_reply_json(r, 200, echo_body(r, "now"));
}

/* GET /t/stream?ms=N: a streamed reply, "start\n" at once, "end\n" and its end N ms later. */
struct streamer {
    struct api_request *r;
    struct event *timer;
};

static void stream_chunk(struct api_request *r, const char *text)
{
    struct evbuffer *b = evbuffer_new();
    if (b == NULL || evbuffer_add(b, text, strlen(text)) != 0 ||
        api_reply_chunk(r, b, NULL, NULL) != 0)
        atomic_fetch_add(&stream_faults, 1);
    if (b != NULL)
        evbuffer_free(b);
}

static void stream_fire(evutil_socket_t fd, short what, void *arg)
{
    struct streamer *st = arg;
    (void)fd;
    (void)what;
    stream_chunk(st->r, "end\n");
    api_reply_end(st->r); /* releases r */
    event_free(st->timer);
    free(st);
}

static void h_stream(struct api_request *r)
{
    int64_t ms = 0;
    struct streamer *st = NULL;
    struct timeval tv;
    if (api_query_int64(r, "ms", 0, 10000, &ms) != API_QUERY_OK ||
        (st = calloc(1, sizeof *st)) == NULL ||
        (st->timer = evtimer_new(base, stream_fire, st)) == NULL) {
        free(st);
        api_reply_error(r, API_ERR_INVALID_PARAM, "ms");
        return;
    }
    st->r = r;
    if (api_reply_start(r, 200, "text/plain") != 0) {
        atomic_fetch_add(&stream_faults, 1);
        event_free(st->timer);
        free(st);
        return;
    }
    stream_chunk(r, "start\n");
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
    evtimer_add(st->timer, &tv);
}

/* POST /v1/apps/{sdkappid}/hold {"tag": ...}: held until the test releases (reverse order). */
static struct api_request *held_req[MAX_HELD];
atomic_int n_held_req, held_closed;

static void hold_on_close(struct api_request *r, void *arg)
{
    (void)r;
    (void)arg;
    atomic_fetch_add(&held_closed, 1);
}

static void h_hold(struct api_request *r)
{
    int i = atomic_load(&n_held_req);
    if (i == MAX_HELD) {
        api_reply_error(r, API_ERR_UNAVAILABLE, "too many held");
        return;
    }
    api_request_defer(r);
    api_request_on_close(r, hold_on_close, NULL);
    held_req[i] = r;
    atomic_store(&n_held_req, i + 1);
}

/* Replies to every held request, the last to arrive first (loop thread). */
void release_req_cb(void *arg)
{
    int n = atomic_load(&n_held_req);
    (void)arg;
    atomic_store(&n_held_req, 0);
    for (int i = n - 1; i >= 0; i--) {
        struct api_request *r = held_req[i];
        const char *tag = json_string_value(json_object_get(r->body, "tag"));
        char t[64];
        snprintf(t, sizeof t, "%s", tag ? tag : "(none)");
        if (api_request_gone(r))
            api_reply_error(r, API_ERR_UNAVAILABLE, "gone"); /* discarded */
        else
            api_reply_json(r, 200, echo_body(r, t));
    }
}

static const char *const q_defer[] = {"ms", "tag", "cancel", NULL};
static const char *const q_stream[] = {"ms", NULL};

const struct api_route async_routes[] = {
    {EVHTTP_REQ_GET, "/v1/apps/{sdkappid}", "getApp", PERM_APPS_READ, API_BODY_NONE, 0, h_echo,
     NULL},
    {EVHTTP_REQ_PATCH, "/v1/apps/{sdkappid}", "updateApp", PERM_APPS_WRITE, API_BODY_JSON, 0,
     h_echo, NULL},
    {EVHTTP_REQ_POST, "/v1/apps/{sdkappid}/hold", "hold", PERM_APPS_WRITE, API_BODY_JSON, 0, h_hold,
     NULL},
    {EVHTTP_REQ_GET, "/t/defer", "defer", PERM_PUBLIC, API_BODY_NONE, 0, h_defer, q_defer},
    {EVHTTP_REQ_GET, "/t/defer-now", "deferNow", PERM_PUBLIC, API_BODY_NONE, 0, h_defer_now, NULL},
    {EVHTTP_REQ_GET, "/t/stream", "stream", PERM_PUBLIC, API_BODY_NONE, 0, h_stream, q_stream},
    {EVHTTP_REQ_GET, "/v1/apps/{sdkappid}/defer", "deferAuth", PERM_APPS_READ, API_BODY_NONE, 0,
     h_defer, q_defer},
};

const size_t n_async_routes = sizeof async_routes / sizeof async_routes[0];
