/*
 * Calls to Tencent Cloud Chat's server-side REST API (POST https://<host>/v4/<svc>/<cmd>?sdkappid=
 * &identifier=&usersig=&random=&contenttype=json) over outbound.c, on the event loop: the URL
 * (identifier and admin UserSig percent-encoded, random from RAND_bytes), a per-app token bucket
 * with a bounded wait queue, retries with backoff and jitter for Tencent's rate-limit codes only
 * (60007, 60011), the reply's ActionStatus / ErrorCode / ErrorInfo, and a cache of admin UserSigs
 * per (app, identifier, key version) renewed before they run out. This layer signs nothing: the
 * caller hands it a signer callback (the core signs), so it never calls up. Every function runs
 * on the thread of the event_base's loop.
 */
#ifndef TIM_H
#define TIM_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "outbound.h"

struct event_base;
struct tim;

#define TIM_WUR __attribute__((warn_unused_result))

#define TIM_MAX_NAME 64       /* bytes of a servicename or a command: [a-z0-9_]{1,64} */
#define TIM_MAX_IDENTIFIER 32 /* bytes of the admin identifier (a Tencent UserID) */
#define TIM_MAX_USERSIG 1024  /* bytes of an admin UserSig the signer may return */
#define TIM_MAX_URL 4096      /* bytes of a request URL */
#define TIM_DEFAULT_BASE_URL "https://console.tim.qq.com"

enum tim_rc {
    TIM_OK = 0,       /* a reply was parsed: see action_ok, error_code, error_info */
    TIM_RATE_LIMITED, /* refused here, before any call: retry_after_ms says when to try again */
    TIM_TRANSPORT,    /* the HTTPS call failed: see transport (timeout, connect, tls, ...) */
    TIM_BAD_REPLY,    /* an HTTP status other than 200, or a body that is not Tencent's JSON */
    TIM_SIGN_FAILED,  /* the signer gave no admin UserSig */
    TIM_INVALID,      /* a bad servicename, command, identifier or base URL */
    TIM_NO_MEMORY,
    TIM_CANCELLED, /* tim_free() while the call was waiting or in flight */
    TIM_HELD,      /* not sent (again: a retry after 60007 ends so too): Tencent answered 70050
                    * for the app's admin account (too many UserSigs it could not verify) and
                    * asks for a pause; retry_after_ms says when it ends */
};

/* The signer's answer, through the done callback it was given: usersig (NUL-terminated, at most
 * TIM_MAX_USERSIG bytes; copied, the signer keeps its own) and its issue time and validity in
 * seconds; usersig NULL when signing failed. done may be called before the signer returns or
 * later on the loop thread, exactly once. */
typedef void (*tim_signed_fn)(void *ctx, const char *usersig, int64_t issued_at, int64_t expire);

/* The caller's signer: make a UserSig for identifier of app sdkappid, with its key version
 * key_version, valid expire seconds, and give it to done(ctx, ...). */
typedef void (*tim_sign_fn)(void *signer_arg, uint32_t sdkappid, const char *identifier,
                            uint32_t key_version, int64_t expire, tim_signed_fn done, void *ctx);

/* The clock, Unix seconds (tests inject one; NULL: time()). */
typedef int64_t (*tim_clock_fn)(void *clock_arg);

/* Tencent answered 70050 for an app's admin account that was not held, which is now held for
 * ms: told so the hold can reach the other processes that call for the app. On the loop
 * thread. */
typedef void (*tim_hold_fn)(void *hold_arg, uint32_t sdkappid, const char *identifier, int64_t ms);

#define TIM_MAX_HOLD_MS 600000 /* the longest hold tim_hold takes */

struct tim_options {
    struct outbound_options outbound; /* the HTTPS client's settings */
    tim_sign_fn sign;                 /* required */
    void *sign_arg;
    tim_clock_fn clock; /* NULL: time() */
    void *clock_arg;
    int64_t sig_expire;      /* validity asked of the signer, seconds; 0: 86400 */
    double rate;             /* calls per second per app; 0: 50 */
    double burst;            /* bucket size; 0: rate */
    int max_queue;           /* calls of one app waiting for a token; 0: 100 */
    int64_t max_wait_ms;     /* longest wait for a token; 0: 2000. Longer: TIM_RATE_LIMITED */
    int max_attempts;        /* tries of one call when Tencent answers 60007/60011; 0: 4 */
    int64_t backoff_base_ms; /* first retry after [base/2, base], doubling; 0: 250 */
    int64_t backoff_max_ms;  /* cap of one backoff; 0: 4000 */
    int max_cached_sigs;     /* admin UserSigs kept; 0: 1024 */
    int64_t hold_ms;         /* no call of an admin account after Tencent's 70050; 0: 60000 */
    tim_hold_fn on_hold;     /* NULL: none */
    void *hold_arg;
};

struct tim_stats {
    uint64_t holds_answered; /* 70050s Tencent answered to this client */
    uint64_t holds_told;     /* holds taken through tim_hold (another process's 70050) */
    uint64_t held_calls;     /* calls ended TIM_HELD, none of them sent */
};

struct tim_call {
    uint32_t sdkappid;
    const char *identifier; /* the app's admin account, 1..32 bytes of printable ASCII */
    uint32_t key_version;   /* of the key the signer signs with (part of the cache key) */
    const char *base_url;   /* "https://host[:port]" (no path, query, user); NULL: the default */
    const char *service;    /* [a-z0-9_]{1,64}, e.g. "im_open_login_svc" */
    const char *command;    /* [a-z0-9_]{1,64}, e.g. "account_check" */
    const char *body;       /* JSON, copied; NULL: "{}" */
    size_t body_len;
};

struct tim_result {
    enum tim_rc rc;
    int action_ok;          /* TIM_OK: ActionStatus was "OK" */
    long long error_code;   /* TIM_OK: ErrorCode */
    const char *error_info; /* TIM_OK: ErrorInfo ("" when absent); else a message of ours */
    json_t *reply;          /* TIM_OK: the whole reply object (borrowed: json_incref to keep) */
    const char *body;       /* TIM_OK: the reply's bytes as received (borrowed), else NULL */
    size_t body_len;
    long http_status;           /* 0 without a reply */
    enum outbound_rc transport; /* TIM_TRANSPORT: the class of the failure */
    int64_t retry_after_ms;     /* TIM_RATE_LIMITED, TIM_HELD (and a final 60007/60011, a
                                 * 70050): when to retry */
    int attempts;               /* calls made to Tencent (retries included) */
    double duration_ms;         /* from tim_call() to this result */
};

/* Called once per accepted call, on the loop thread, never from within tim_call(). */
typedef void (*tim_done_fn)(const struct tim_result *r, void *arg);

/* A new client on base. NULL on failure, with err saying why. */
struct tim *tim_new(struct event_base *base, const struct tim_options *opt, char *err,
                    size_t errlen) TIM_WUR;

/* Ends every call (each done gets TIM_CANCELLED), wipes the cached UserSigs, frees t. NULL:
 * nothing. */
void tim_free(struct tim *t);

/* Starts a call. TIM_OK: done(arg) will be called once. TIM_RATE_LIMITED (the app's queue is full
 * or its wait would pass max_wait_ms; *retry_after_ms set when not NULL), TIM_HELD (the admin
 * account is held after a 70050; *retry_after_ms: until when), TIM_INVALID,
 * TIM_NO_MEMORY, TIM_CANCELLED (tim_free() is under way: a done callback calling again):
 * nothing was started and done is never called. */
enum tim_rc tim_call(struct tim *t, const struct tim_call *c, tim_done_fn done, void *arg,
                     int64_t *retry_after_ms) TIM_WUR;

/* The calls started so far with this arg never have their done called (their client went away):
 * those waiting are dropped at once; one already sent ends unreported when its transfer does
 * (bounded by the timeout), and is not tried again whatever Tencent answers. A call started with
 * the same arg afterwards is reported as usual. */
void tim_cancel(struct tim *t, void *arg);

/* This app's bucket: rate calls a second, burst at most (both > 0). 0, or -1 on no memory. */
int tim_set_app_rate(struct tim *t, uint32_t sdkappid, double rate, double burst) TIM_WUR;

/* Holds an app's admin account for ms (1..TIM_MAX_HOLD_MS) as Tencent's 70050 to another process
 * does: the calls of it waiting for their turn end TIM_HELD, and none is sent before the hold
 * ends (an existing hold only lengthens). on_hold is not called. 0, or -1 (an identifier or ms
 * out of range, no memory). */
int tim_hold(struct tim *t, uint32_t sdkappid, const char *identifier, int64_t ms) TIM_WUR;

/* The client's counters. */
void tim_get_stats(const struct tim *t, struct tim_stats *out);

/* Drops the cached admin UserSigs of an app (all key versions; its keys or settings changed),
 * or of every app. */
void tim_forget_app(struct tim *t, uint32_t sdkappid);
void tim_forget_all(struct tim *t);

/* ---- pieces, exposed for tests and for the gateway route ---- */

/* 1 when s is a servicename or command Tencent could have: [a-z0-9_]{1,TIM_MAX_NAME}. */
int tim_name_valid(const char *s);

/* 1 when s is an identifier (a Tencent UserID) this layer sends: 1..TIM_MAX_IDENTIFIER bytes of
 * printable ASCII (0x20-0x7e). */
int tim_identifier_valid(const char *s);

/* A base URL: "https://host[:port]" with nothing after it but an optional "/" (no path, query,
 * fragment or user info); the host a name, an IPv4 or a bracketed IPv6 address; the port 1..65535.
 * allow_http: "http://" too. Returns the length of the part kept (without the "/"), or 0. */
size_t tim_base_url_valid(const char *base, int allow_http);

/* Writes the request URL into out (cap bytes). 0, or -1 (TIM_INVALID's cases, or too long).
 * allow_http: an http:// base_url is taken too. */
int tim_build_url(const char *base_url, int allow_http, const char *service, const char *command,
                  uint32_t sdkappid, const char *identifier, const char *usersig, uint32_t random,
                  char *out, size_t cap) TIM_WUR;

/* Parses a reply body: 0 with *action_ok, *code, *info (borrowed from *reply, a new object the
 * caller json_decref()s) set, or -1 when it is not a JSON object with ActionStatus "OK"/"FAIL"
 * and an integer ErrorCode (ErrorInfo, when present, a string). */
int tim_parse_reply(const char *body, size_t len, json_t **reply, int *action_ok, long long *code,
                    const char **info) TIM_WUR;

/* 1 for the codes Tencent answers when its rate limits are hit (60007, 60011). */
int tim_code_is_rate_limit(long long code);

#endif
