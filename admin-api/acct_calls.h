/*
 * Accounts sent to Tencent 100 a call, for the admin API's account import and check
 * (accounts_api.c) and a batch's ?import=1 (batch_import.c); included by nothing else.
 *
 * A chunk holds up to ACCT_CHUNK_MAX accounts. acct_dispatch() sends its pending ones
 * (im_open_login_svc/multiaccount_import, or account_check) through the core's gateway client
 * (gateway.h: the app's gateway_identifier, its admin UserSig, its token bucket); a call refused
 * by the bucket, rate-limited by Tencent past tim's own retries, or cut off by the network is
 * tried again with backoff, up to ACCT_MAX_TRIES calls; the accounts Tencent lists in
 * FailAccounts are sent again, ACCT_FAIL_ROUNDS calls in all. Each account ends imported (or,
 * checking, imported / not imported) or failed with a code and a message; then the chunk is
 * done. The owner hears of every step through its run's progress callback, called on the loop
 * (from inside acct_dispatch too: a call that fails at once), and looks at the chunks then.
 */
#ifndef ACCT_CALLS_H
#define ACCT_CALLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache.h"
#include "service.h"
#include "tim.h"

#define ACCT_CHUNK_MAX 100 /* accounts a call: Tencent's limit */
#define ACCT_MAX_TRIES 10  /* calls of one chunk refused, rate-limited or cut off */
#define ACCT_FAIL_ROUNDS 3 /* calls an account listed in FailAccounts gets in all */
#define ACCT_NICK_MAX 256
#define ACCT_FACE_MAX 1024

enum acct_state { ACCT_PENDING = 0, ACCT_IMPORTED, ACCT_NOT_IMPORTED, ACCT_FAILED };

struct acct {
    char id[TIM_MAX_IDENTIFIER * 4 + 1]; /* as received (cleaned for output) */
    bool sendable;
    char *nick, *face; /* NULL, or the chunk's (acct_chunk_free frees them) */
    enum acct_state state;
    char code[32]; /* ACCT_FAILED: the error code */
    long long tencent_code;
    char msg[160];
};

/* What a job's chunks share: the app, the command, and the owner's callback. */
struct acct_run {
    struct service *svc;
    const struct cache_app *app; /* the owner's reference */
    bool check;                  /* account_check, not multiaccount_import */
    bool gone;                   /* the owner's client left: nothing more is sent */
    bool stopped;                /* the gateway stopped (the server stops): nothing more is sent */
    int in_flight;               /* calls of this run under way */
    uint64_t calls;              /* calls made */
    void (*progress)(void *arg); /* a call ended, or a chunk is done */
    void *arg;
};

struct acct_chunk {
    struct acct_run *run;
    struct acct a[ACCT_CHUNK_MAX];
    int n;
    int tries, rounds;
    bool in_call, done;
    struct event *timer;
    struct acct_chunk *next; /* the owner's list */
};

/* Account a failed with code (an admin API error code), Tencent's code (0: none) and msg
 * (cleaned to UTF-8). */
void acct_fail(struct acct *a, const char *code, long long tencent_code, const char *msg);

/* a's identifier from n bytes at s: cleaned for output; failed as bad_identifier unless it is
 * 1..32 bytes of UTF-8 without control characters. */
void acct_set_id(struct acct *a, const char *s, size_t n);

/* a (zeroed first) from a line: text, the line is the UserID; NDJSON, {"identifier", "nick"?,
 * "face_url"?} with Nick and FaceUrl kept. A bad line is a failed account. */
void acct_from_line(struct acct *a, bool ndjson, const char *s, size_t n);

/* A new empty chunk of run, or NULL when out of memory. */
struct acct_chunk *acct_chunk_new(struct acct_run *run);
void acct_chunk_free(struct acct_chunk *c);

/* Whether c has not been sent yet (nor tried, nor done): the owner's cue to dispatch it. */
bool acct_chunk_unsent(const struct acct_chunk *c);

/* Sends c's pending accounts (done at once when none is): see the top of this file. */
void acct_dispatch(struct acct_chunk *c);

/* The owner's client left: c's call in flight is cancelled, a retry waiting dropped, and its
 * pending accounts fail as client_gone. Does not call progress. */
void acct_chunk_drop(struct acct_chunk *c);

#endif
