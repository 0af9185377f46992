/*
 * What the two halves of the Tencent REST client share (tim.c: calls, buckets, sending, replies;
 * tim_sigs.c: the admin UserSig cache): the client's, a call's, a bucket's and a cache entry's
 * state, and the few functions each half calls in the other. Internal to server/tencent/.
 */
#ifndef TIM_INT_H
#define TIM_INT_H

#include <event2/event.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "tim.h"

#define INFO_MAX 256

enum call_state { ST_QUEUED, ST_SIGNING, ST_IN_FLIGHT, ST_RETRY_WAIT, ST_FINISHING };

struct sig_entry;

struct tcall {
    struct tim *t;
    enum call_state state;
    uint32_t sdkappid, key_version;
    char identifier[TIM_MAX_IDENTIFIER + 1];
    char service[TIM_MAX_NAME + 1], command[TIM_MAX_NAME + 1];
    char *base_url;
    char *body;
    size_t body_len;
    tim_done_fn done;
    void *arg;
    double started_ms;
    int attempts;
    struct event *ev; /* retry timer, then the finishing event */
    struct tim_result result;
    json_t *reply;
    char *raw; /* the reply's bytes, with reply */
    size_t raw_len;
    char info[INFO_MAX];
    struct tcall *qnext;       /* in its bucket's queue, or its entry's waiters */
    struct tcall *prev, *next; /* every call of t */
};

/* An admin account Tencent answered 70050 for: no call of it goes before until_ms. */
struct hold {
    char identifier[TIM_MAX_IDENTIFIER + 1];
    double until_ms;
    struct hold *next;
};

struct bucket {
    uint32_t sdkappid;
    double rate, burst, tokens, last_ms;
    int queued;
    struct tcall *qhead, *qtail;
    struct hold *holds;
    struct event *timer;
    struct tim *t;
    struct bucket *next;
};

struct sign_req; /* one signing in progress */

struct sig_entry {
    uint32_t sdkappid, key_version;
    char identifier[TIM_MAX_IDENTIFIER + 1];
    char *usersig; /* NULL until signed; wiped when replaced or freed */
    int64_t issued_at, expire;
    struct sign_req *signing;
    struct tcall *waiters;
    int warned_short; /* the short-validity warning was logged */
    struct sig_entry *next;
};

struct sign_req {
    struct tim *t; /* NULL once t is freed: the signer's late answer is dropped */
    struct sig_entry *e;
    int forgotten; /* tim_forget_* while it was signed: its answer is not kept */
};

struct tim {
    struct event_base *base;
    struct outbound *ob;
    struct tim_options opt;
    struct tcall *calls;
    struct bucket *buckets;
    struct sig_entry *sigs;
    int n_sigs;
    int closing;
    struct tim_stats stats;
};

/* tim.c: ends c with rc (msg, when not NULL, its error_info) from an event of its own. */
void tim_finish(struct tcall *c, enum tim_rc rc, const char *msg);
/* tim.c: sends c with usersig (or ends it TIM_HELD when its account is held meanwhile). */
void tim_send(struct tcall *c, const char *usersig);

/* tim_sigs.c: c has its token; now its admin UserSig (cached, renewed, or signed first), then
 * tim_send. */
void tim_get_sig(struct tcall *c);
/* tim_sigs.c: Tencent refused c's admin UserSig (70001, 70003, 70009): its entry's is dropped,
 * the next call signs a new one (unless a signing is under way). */
void tim_sigs_drop(struct tim *t, const struct tcall *c);
/* tim_sigs.c: c (ST_SIGNING) no longer waits for its entry's signing. */
void tim_sigs_unwait(struct tim *t, const struct tcall *c);
/* tim_sigs.c: at tim_free, before the calls end: no entry has waiters, and a signer's late
 * answer is dropped. */
void tim_sigs_detach(struct tim *t);
/* tim_sigs.c: every entry wiped and freed. */
void tim_sigs_free(struct tim *t);

#endif
