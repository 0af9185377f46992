/*
 * Signing one UserSig, as an operation of the core: the request waits for a database thread
 * (dbpool.h), and the signs waiting together share one transaction (group commit): one read of
 * each app and its active key, their audit events appended in that transaction, the sign counts
 * updated once per key version, one commit. A token leaves only after the commit that records
 * it ("no audit row, no token"); if the commit fails, no token of the group leaves.
 *
 * Lock order (store.h): the apps of a group are taken in sdkappid order, then the audit lock,
 * so groups on other threads or processes cannot deadlock.
 */
#ifndef SIGN_H
#define SIGN_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "dbpool.h"
#include "ratelimit.h"
#include "service.h"
#include "usersig.h"

#define SIGN_GROUP_MAX 128 /* signs in one transaction */
/* Groups of one process in flight at once. One: the signs that arrive while a group commits
 * wait and form the next group together. More would split them into smaller groups queued on
 * the same locks (the active key row and the audit lock), each paying a transaction's fixed
 * cost: measured, 2 at once gave groups of 19 and 6,000 signs/s where 1 gave 28 and 8,000. */
#define SIGN_GROUPS_AT_ONCE 1
#define SIGN_MSG_BUF 512

/* What to sign, as parsed from the request; identifier and room_str are borrowed and must stay
 * valid until done runs. */
struct sign_input {
    const char *identifier;
    size_t identifier_len;
    bool has_expire;
    json_int_t expire; /* defaulted from the app when !has_expire */
    /* Set by sign_check_app when it gave the app's default, or by a caller whose expire is an
     * upper bound (the gateway's admin UserSigs): lowered to the app's max_expire and
     * admin_max_expire instead of refused, against the app as the check reads it. */
    bool expire_defaulted;
    struct usersig_room room;
};

struct sign_request {
    struct dbpool_job job; /* the pool's */
    /* In: */
    const struct principal *principal; /* the actor of the audit event; valid until done */
    uint32_t sdkappid;
    struct sign_input in;
    /* A refusal already decided (by parsing): only its audit event is recorded; err and msg are
     * kept. API_OK otherwise. */
    enum api_error refused_err;
    void (*done)(struct sign_request *req); /* on the loop thread */
    void *arg;
    /* Out (valid in done): err API_OK with token, key_version and issued_at set, or the error
     * to answer with and msg for the client. */
    enum api_error err;
    char msg[SIGN_MSG_BUF];
    uint32_t key_version;
    int64_t issued_at;
    char token[USERSIG_TOKEN_BUF]; /* wiped by the caller once sent */
    size_t token_len;
    /* err is API_ERR_TOKEN_SIGNS_PER_SECOND or API_ERR_APP_SIGNS_PER_SECOND: the Retry-After. */
    int64_t retry_after_ms;
    /* The core's: the buckets were drawn from once (a group tried again does not draw again). */
    bool rate_checked;
    enum api_error rate_err;
    struct service *waiting; /* counted in its signs_waiting until done */
};

/* The calling database thread keeps signers from now on (service_thread_new calls it on the
 * thread); sign_thread_exit frees them (service_thread_free). */
void sign_thread_start(void);
void sign_thread_exit(void);

/* Queues req on svc's database pool (service_run); done runs on the loop thread. */
void sign_submit(struct service *svc, struct sign_request *req);

/* What one process knows of the audit chain's head, shared by its database threads
 * (service.chain): the last event one of its groups appended and whether, when a group last
 * read the head under the audit lock, that event was still the last. While it is, the next
 * group is chained before it holds the lock and sent as one round trip (store_group_fast); a
 * check under the lock refuses it if anything changed, and the group is done the usual way. */
struct sign_chain;
struct sign_chain *sign_chain_new(void); /* NULL when out of memory */
void sign_chain_free(struct sign_chain *c);
struct sign_chain_stats {
    uint64_t one_trip;   /* groups committed in one round trip */
    uint64_t two_trips;  /* groups committed the usual way */
    uint64_t head_moved; /* groups sent in one round trip that met a change, then done again */
};
void sign_chain_stats(struct sign_chain *c, struct sign_chain_stats *out);

/* The checks against the app's rules: identifier policy, expire (defaulted) within max_expire
 * (an expire_defaulted one lowered to it). API_OK, or the error with msg filled. */
enum api_error sign_check_app(const struct store_app *app, struct sign_input *in, char *msg,
                              size_t cap);

/* The checks of who signs (after sign_check_app): an identifier among the app's
 * admin_identifiers only for a principal whose role signs them (ADMIN_IDENTIFIER otherwise; p
 * NULL, the server itself, may) and for at most admin_max_expire seconds (BAD_EXPIRE; a
 * defaulted expire is lowered to it instead); a principal with identifier prefixes only for an
 * identifier that starts with one (IDENTIFIER_PREFIX). API_OK, or the error with msg filled. Reads
 * the app as given (the cache's entry): no database. */
enum api_error sign_check_principal(const struct store_app *app, const struct principal *p,
                                    struct sign_input *in, char *msg, size_t cap);

/* The rate limits of a sign (ratelimit.h): one token from the principal's signs_per_second
 * bucket and the app's together, each rate divided by processes (rate_limit_processes). API_OK,
 * or TOKEN_/APP_SIGNS_PER_SECOND with msg filled and *retry_after_ms. rl NULL: no limits. */
enum api_error sign_check_rate(struct ratelimit *rl, int processes, const struct cache_app *entry,
                               const struct principal *p, int64_t *retry_after_ms, char *msg,
                               size_t cap);

/* True when id (len bytes) is one of app's admin_identifiers. */
bool sign_is_admin_identifier(const struct store_app *app, const char *id, size_t len);

/* The audit details of a signature or of its refusal (never the token) as the audit chain's
 * text: a JSON object with sorted keys, ASCII only (what json_dumps gave with JSON_COMPACT |
 * JSON_SORT_KEYS | JSON_ENSURE_ASCII for the same object, so old and new events read alike);
 * expire_at 0 leaves it out. Its length, NUL-terminated in buf, or 0 when it does not fit
 * (SIGN_DETAILS_BUF always does). */
#define SIGN_DETAILS_BUF 1024
size_t sign_details_text(const struct sign_input *in, int64_t expire_at, char *buf, size_t cap);

#endif
