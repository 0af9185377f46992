/*
 * The HTTP framework's test server (test_http.c, test_http_bodies.c): the real evhttp server on
 * 127.0.0.1 (any free port) in a thread, a small route table of test handlers and a fake
 * authenticate callback, driven over plain sockets (testlib's client).
 */
#ifndef HTTP_FIXTURE_H
#define HTTP_FIXTURE_H

#include <event2/event.h>
#include <stdatomic.h>
#include <stddef.h>

#include "http.h"
#include "testlib.h"

#define APP_A 1400000000u
#define APP_B 1400000001u
#define MAX_BODY 4096
#define MAX_BODY_LARGE 16384

#define AUTH(t) "Authorization: Bearer " t "\r\n"
#define JSON_CT "Content-Type: application/json\r\n"

/* The tokens: t-admin, t-admin-scoped (APP_A), t-km, t-km-scoped (APP_A), t-signer (APP_A and
 * APP_B), t-auditor; t-broken (the check fails), t-bad-role, t-ok-without-principal. Answers
 * before it returns; auth_calls counts the calls. */
void fake_authenticate(void *ctx, const char *token, struct api_auth *call);
extern atomic_int auth_calls;

extern const struct api_route test_table[];
extern const size_t test_table_len;

extern struct event_base *base;
extern int port;

/* The event base (evthread_use_pthreads first). 0, or -1 (failed a CHECK). */
int http_fixture_base(void);

/* The server on base (MAX_BODY, MAX_BODY_LARGE, a 1 s request timeout, test_table), its loop
 * in a thread; port set. 0, or -1 (failed a CHECK). */
int http_fixture_start(void);

/* Stops the loop and frees the server, checking one reply per request (at least min_requests
 * of them) and no reply bugs counted. */
void http_fixture_stop(unsigned long long min_requests);

/* One request to the server, its response in r (test_resp_free it). */
void call(struct test_resp *r, const char *method, const char *path, const char *headers,
          const char *body);

#endif
