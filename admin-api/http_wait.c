/*
 * Requests that wait (http_int.h): a token check, a deferred or a captured reply. While one
 * waits it is on its server's list and counted, and its connection is watched for the client
 * leaving. Part of the framework's lowest layer, with http_reply.c, whose stream close it calls.
 */
#include "http.h"
#include "http_int.h"

#include <assert.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "log.h"

/* Bytes a waiting request's connection may buffer (a pipelined next request) before it is no
 * longer read, and so no longer watched for the client leaving, until the reply. */
#define WAIT_INPUT_MAX (64 * 1024)

/* Once a request is read, evhttp stops reading its connection until the reply, so a client
 * that leaves meanwhile would go unnoticed. While a request waits, its connection's events are
 * ours: evhttp's callbacks are set aside and put back before the reply (evhttp sets its own for
 * the reply anyway). Input that arrives (a pipelined request) stays buffered for evhttp. */

static struct bufferevent *request_bev(const struct req *f)
{
    struct evhttp_connection *evcon =
        f->pub.req != NULL ? evhttp_request_get_connection(f->pub.req) : NULL;
    return evcon != NULL ? evhttp_connection_get_bufferevent(evcon) : NULL;
}

static void unwatch(struct req *f)
{
    struct bufferevent *bev = request_bev(f);
    if (!f->watching)
        return;
    f->watching = false;
    if (bev == NULL)
        return;
    if (!(f->saved_enabled & EV_READ))
        bufferevent_disable(bev, EV_READ);
    bufferevent_setcb(bev, f->saved_readcb, f->saved_writecb, f->saved_eventcb, f->saved_cbarg);
}

static void on_wait_read(struct bufferevent *bev, void *arg)
{
    (void)arg;
    if (evbuffer_get_length(bufferevent_get_input(bev)) > WAIT_INPUT_MAX)
        bufferevent_disable(bev, EV_READ);
}

static void on_wait_event(struct bufferevent *bev, short what, void *arg)
{
    struct req *f = arg;
    struct evhttp_connection *evcon = evhttp_request_get_connection(f->pub.req);

    if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))) {
        /* The read timeout: here the client waits for the server, not the other way. */
        bufferevent_enable(bev, EV_READ);
        return;
    }
    unwatch(f);
    f->pub.req = NULL;
    f->gone = true;
    log_msg(LOG_DEBUG, f->pub.request_id, "the client left while its request waited for %s",
            f->wait == WAIT_AUTH ? "its token check"
            : f->cap.on          ? "its handler on another thread"
                                 : "a deferred reply");
    evhttp_connection_free(evcon); /* the evhttp request goes with it */
    if (f->wait == WAIT_REPLY)
        api_stream_notify_close(f); /* may reply (discarded) and free f */
}

static void watch(struct req *f)
{
    struct bufferevent *bev = request_bev(f);
    if (bev == NULL)
        return;
    bufferevent_getcb(bev, &f->saved_readcb, &f->saved_writecb, &f->saved_eventcb, &f->saved_cbarg);
    f->saved_enabled = bufferevent_get_enabled(bev);
    f->watching = true;
    bufferevent_setcb(bev, on_wait_read, NULL, on_wait_event, f);
    if (bufferevent_enable(bev, EV_READ) != 0) /* unwatched: a leaving client shows at the reply */
        log_msg(LOG_WARN, f->pub.request_id, "cannot watch the connection while the request waits");
}

static uint64_t *wait_counter(struct req *f)
{
    return f->wait == WAIT_AUTH ? &f->server->stats.auth_waiting : &f->server->stats.deferred;
}

/* See http_int.h. */
void api_request_wait_begin(struct req *f, enum req_wait what)
{
    assert(f->wait == WAIT_NONE && what != WAIT_NONE);
    f->wait = what;
    if (f->server != NULL) {
        (*wait_counter(f))++;
        f->prev = NULL;
        f->next = f->server->waiting;
        if (f->next != NULL)
            f->next->prev = f;
        f->server->waiting = f;
    }
    watch(f);
}

static void wait_unlink(struct req *f)
{
    if (f->server == NULL)
        return;
    if (f->prev != NULL)
        f->prev->next = f->next;
    else if (f->server->waiting == f)
        f->server->waiting = f->next;
    if (f->next != NULL)
        f->next->prev = f->prev;
    f->prev = f->next = NULL;
    (*wait_counter(f))--;
}

/* See http_int.h. */
void api_request_wait_end(struct req *f)
{
    if (f->wait == WAIT_NONE)
        return;
    wait_unlink(f);
    unwatch(f);
    f->wait = WAIT_NONE;
}

/* See http_int.h. */
void api_request_wait_orphan(struct req *f)
{
    wait_unlink(f);
    f->server = NULL;
    unwatch(f);
    if (f->pub.req != NULL) {
        f->pub.req = NULL;
        f->gone = true;
    }
    if (f->wait == WAIT_REPLY)
        api_stream_notify_close(f); /* may reply (discarded) and free f */
}
