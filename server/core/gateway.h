/*
 * Tencent's REST API for an app, as an operation of the core: the REST gateway's calls (POST
 * /v1/apps/{sdkappid}/tencent/{servicename}/{command}) and the account import's (accounts.h) go
 * through one tim client (server/tencent/tim.h) per process, on the event loop. A call is
 * checked (a rest_caller's rest_allow), meets its app as the cache holds it (read on a database
 * thread on a miss: the loop never waits), goes out as the app's gateway_identifier with an admin
 * UserSig that this module has the core sign (sign.h, as the server itself: audited as
 * usersig.sign, cached and renewed by tim), and is audited as tencent.call (actor, servicename,
 * command, ActionStatus, ErrorCode, attempts, duration; never the body or the UserSig) before its
 * result is handed back. Everything here runs on the loop thread.
 */
#ifndef GATEWAY_H
#define GATEWAY_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dbpool.h"
#include "errors.h"
#include "service.h"
#include "tim.h"

#define GATEWAY_WUR __attribute__((warn_unused_result))
#define GATEWAY_MSG_BUF 512

struct gateway;

/* The process's client on base, from svc's settings (tencent_* in config.h). 0 with *out set,
 * or -1 (logged). */
int gateway_new(struct event_base *base, struct service *svc, struct gateway **out) GATEWAY_WUR;
/* Ends every call (each completes, audited, as cancelled) and wipes the cached admin UserSigs;
 * from then on every call is refused as unavailable (gateway_tim() is NULL). Before the database
 * pool is freed: the calls' audit events go through it. NULL: nothing. */
void gateway_stop(struct gateway *g);

/* gateway_stop(), then frees g. After the database pool and the API server are freed: their
 * last callbacks (a call whose app was being read, a client gone) still meet a stopped g, not
 * freed memory. NULL: nothing. */
void gateway_free(struct gateway *g);
/* The tim client (account import calls it directly, with gateway_app_call's checks; NULL once
 * stopped), and the loop it runs on. */
struct tim *gateway_tim(struct gateway *g);
struct event_base *gateway_base(struct gateway *g);

#define GATEWAY_HOLD_MS 60000      /* Tencent's 70050: "verify again in a minute" */
#define GATEWAY_HOLD_SLACK_MS 5000 /* a told hold may end this much later than a hold from now */

/* A notice on usersigd_hold (the listener's hook, listener_on_hold; g the gateway): a 70050 hold
 * a process met, this one included (each process tells the others of its own, signed with the
 * keyring's notice key, from a database thread), taken by this process's tim on the loop soon
 * after, until the hold's end as the sender set it, so no call for that account goes to
 * Tencent meanwhile. A notice without the right MAC is counted and ignored. Any thread. */
void gateway_told_hold(void *g, const char *payload);
/* Notices gateway_told_hold refused. Any thread. */
uint64_t gateway_hold_notices_refused(struct gateway *g);

/* ---- hold notices, exposed for tests ---- */

#define GATEWAY_NOTICE_MAX 192 /* bytes of a notice, its NUL included */

/* A hold told by a notice. */
struct gateway_told {
    int64_t until_ms; /* Unix milliseconds */
    uint32_t sdkappid;
    char identifier[TIM_MAX_IDENTIFIER + 1];
};

/* Adds h to the *n holds of list (room for cap): merged into the same account's, the later end
 * kept. false when the list is full and h is another account's (h dropped). */
bool gateway_told_add(struct gateway_told *list, int *n, int cap, const struct gateway_told *h);
/* How long to hold for a told hold ending at until_ms, at now_ms (both Unix milliseconds): 0 when
 * it is over; GATEWAY_HOLD_MS, with *ahead, when it ends more than a hold and its slack from
 * now (the sender's clock is ahead of this host's). */
int64_t gateway_told_left(int64_t until_ms, int64_t now_ms, bool *ahead);

struct keyring;

/* The notice of a hold of app sdkappid's admin account identifier until until_ms (Unix
 * milliseconds): "v1:<sdkappid>:<until_ms>:<mac>:<identifier>", mac the lower-case hex
 * HMAC-SHA256 under kr's notice key of "usersigd_hold v1:<sdkappid>:<until_ms>:<identifier>".
 * Into out (cap bytes). 0, or -1 (an identifier tim would not send, no root, too small). */
int gateway_notice_make(const struct keyring *kr, uint32_t sdkappid, int64_t until_ms,
                        const char *identifier, char *out, size_t cap) GATEWAY_WUR;
/* True with the notice's parts when payload is one that kr's notice key made. */
bool gateway_notice_parse(const struct keyring *kr, const char *payload, uint32_t *sdkappid,
                          int64_t *until_ms, char identifier[TIM_MAX_IDENTIFIER + 1]);

enum gateway_stage { GW_IDLE = 0, GW_APP, GW_TENCENT, GW_AUDIT, GW_DONE };

/* One call through the gateway; the caller's memory, valid until done. */
struct gateway_call {
    /* In: */
    const struct principal *principal; /* the actor; valid until done */
    uint32_t sdkappid;
    const char *service, *command; /* [a-z0-9_]{1,64}; borrowed until done */
    const char *body;              /* the JSON to forward (borrowed until done; copied out) */
    size_t body_len;
    const char *request_id; /* for the audit details; borrowed */
    void (*done)(struct gateway_call *c);
    void *arg;
    /* Out (valid in done): err API_OK with Tencent's reply (its bytes, unchanged) in reply, or
     * the error and msg; retry_after_ms with API_ERR_TENCENT_RATE_LIMITED. */
    enum api_error err;
    char msg[GATEWAY_MSG_BUF];
    int64_t retry_after_ms;
    const char *reply;
    size_t reply_len;
    int action_ok;
    long long error_code;
    /* Private: */
    struct gateway *g;
    enum gateway_stage stage;
    struct dbpool_job job;
    const struct cache_app *app;
    char *reply_buf;
    char outcome[64];
    int attempts;
    long http_status;
    double duration_ms;
    uint32_t key_version;
    bool audit_ok;
};

/* Starts c; c->done(c) runs once, later, on the loop thread (never from within this call). */
void gateway_submit(struct gateway *g, struct gateway_call *c);

/* The client went away: a call waiting for Tencent is dropped there (tim_cancel) and audited
 * as cancelled; done still runs once. Any other stage goes on. */
void gateway_call_cancel(struct gateway_call *c);

/* For account import: the app's entry checked for a call (a gateway_identifier, an active key,
 * a base URL this server calls) and the tim_call filled from it (service and command the
 * caller's). API_OK, or the error with msg filled. */
enum api_error gateway_app_call(const struct gateway *g, const struct cache_app *app,
                                struct tim_call *out, char *msg, size_t cap) GATEWAY_WUR;
/* gateway_app_call's checks with the settings cfg (NULL: the defaults) instead of a gateway:
 * for a database thread, which must not touch the loop's gateway (freed first at a stop). */
struct config;
enum api_error gateway_app_check(const struct config *cfg, const struct cache_app *app,
                                 struct tim_call *out, char *msg, size_t cap) GATEWAY_WUR;

/* The API error of a tim result that is not TIM_OK (msg filled); for TIM_OK, API_OK. */
enum api_error gateway_tim_error(const struct tim_result *res, char *msg, size_t cap);

#endif
