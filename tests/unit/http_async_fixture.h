/*
 * The test server of test_http_async.c (http_async_fixture.c): its route table, its token
 * checks, and what the tests read and release. Everything here runs on the loop thread of base
 * but the counters, which the test thread reads.
 */
#ifndef HTTP_ASYNC_FIXTURE_H
#define HTTP_ASYNC_FIXTURE_H

#include <event2/event.h>
#include <stdatomic.h>
#include <stddef.h>

#include "http.h"

#define APP_A 1400000000u
#define MAX_HELD 64

extern struct event_base *base; /* the server's loop */

/* The routes: GET and PATCH /v1/apps/{sdkappid} (echo), POST /v1/apps/{sdkappid}/hold (held
 * until release_req_cb), GET /t/defer?ms=N&tag=T[&cancel=1] (a reply N ms later), /t/defer-now,
 * /t/stream?ms=N (a streamed reply ending N ms later), GET /v1/apps/{sdkappid}/defer. */
extern const struct api_route async_routes[];
extern const size_t n_async_routes;

/* Tokens: "t-<who>" answers inside the callback; "a<ms>-<who>" from a timer ms later; "hold-<who>"
 * when the test releases it (release_auth_cb). <who>: admin, signer, unknown, broken. */
void async_authenticate(void *ctx, const char *token, struct api_auth *call);
/* Answers call as who's token (loop thread). */
void answer(struct api_auth *call, const char *who);
/* Answers every held check, as they said, or all with *(enum api_auth_rc *)arg when non-NULL. */
void release_auth_cb(void *arg);
/* Replies to every held request, the last to arrive first. */
void release_req_cb(void *arg);

extern struct api_auth *held_auth[MAX_HELD];
extern atomic_int n_held_auth, n_held_req, held_closed;
extern atomic_int timed_answered, bad_request_ids, closes, deferred_fired, stream_faults;

#endif
