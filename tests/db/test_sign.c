/*
 * The core's sign operation (server/core/sign.c) without HTTP, on the real PostgreSQL through
 * the database pool: many signs waiting together share transactions and every one is recorded
 * (one audit row each, the chain valid, the sign count exact); refusals in a group are audited
 * beside the signatures and change nothing else; two pools (as two processes) signing to the
 * same apps in opposite orders neither deadlock nor fork the chain; a rotation is used by the
 * next group; a process that wrote the chain's last event sends its next group in one round
 * trip, and a change by anyone else meets that attempt under the lock; while signs wait, the
 * batches' workers leave a core free; signs still queued when the pool is freed are refused,
 * none issued.
 */
#include "audit.h"
#include "dbpool.h"
#include "dbtest.h"
#include "pipeline.h"
#include "service.h"
#include "sign.h"

#include <event2/thread.h>

#define APP_A 1400000100u
#define APP_B 1400000101u
#define APP_NOKEY 1400000102u
#define APP_STRICT 1400000103u
#define APP_NONE 1400000199u
#define APP_BROKEN 1400000104u /* its active key does not open under the master key */
#define SECRET_A1 "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1"
#define SECRET_A2 "a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2a2"
#define SECRET_B1 "b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1"
#define MANY 300

static struct event_base *base;
static struct keyring *kr;
static struct service proto;
static int n_done;
static struct principal actor = {.token_id = 0, .name = "sign-test", .all_apps = true};

struct call {
    struct sign_request req;
    char id[40];
    int done;
};

static void done_cb(struct sign_request *req)
{
    struct call *c = req->arg;
    c->done++;
    n_done++;
}

static struct dbpool *pool_new(const struct dbtest *t, int size)
{
    struct dbpool *p = NULL;
    struct dbpool_config cfg = {
        .conninfo = t->url,
        .size = size,
        .thread_ctx_new = service_thread_new,
        .thread_ctx_free = service_thread_free,
        .thread_ctx_arg = &proto,
    };
    CHECK(dbpool_new(base, &cfg, &p) == 0, "pool of %d", size);
    return p;
}

static void call_init(struct call *c, uint32_t sdkappid, const char *id)
{
    memset(c, 0, sizeof *c);
    snprintf(c->id, sizeof c->id, "%s", id);
    c->req.principal = &actor;
    c->req.sdkappid = sdkappid;
    c->req.in.identifier = c->id;
    c->req.in.identifier_len = strlen(c->id);
    c->req.done = done_cb;
    c->req.arg = c;
}

static void run_until(int want)
{
    for (int waited = 0; n_done < want && waited < 30000; waited++) {
        struct timeval tv = {0, 1000};
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
}

/* The token verifies with secret for app and identifier, now. */
static bool token_ok(const struct call *c, uint32_t app, const char *secret)
{
    struct usersig_key *k = NULL;
    struct usersig_expect e = {
        .identifier = c->id, .identifier_len = strlen(c->id), .sdkappid = app};
    if (usersig_key_new_hmac(secret, strlen(secret), &k) != USERSIG_OK)
        return false;
    bool ok = usersig_verify(c->req.token, c->req.token_len, &e, k, (int64_t)time(NULL), NULL) ==
              USERSIG_VALID;
    usersig_key_free(k);
    return ok;
}

static long long count(PGconn *c, const char *sql)
{
    return dbtest_scalar(c, sql);
}

static void chain_ok(struct store *st, const char *what)
{
    struct audit_verify_result res;
    CHECK(audit_verify(st, keyring_audit_key(kr), &res) == AUDIT_OK &&
              res.problem == AUDIT_CHAIN_OK,
          "%s: the audit chain verifies", what);
}

/* Submits n signs (app and identifier from the callbacks) through svc and waits for them. */
static void sign_all(struct service *svc, struct call *calls, int n)
{
    n_done = 0;
    for (int i = 0; i < n; i++)
        sign_submit(svc, &calls[i].req);
    run_until(n);
}

static void test_many(struct service *svc, PGconn *c, struct store *st)
{
    static struct call calls[MANY];
    for (int i = 0; i < MANY; i++) {
        char id[32];
        snprintf(id, sizeof id, "user%d", i);
        call_init(&calls[i], i % 2 ? APP_A : APP_B, id);
    }
    sign_all(svc, calls, MANY);
    int ok = 0, verified = 0;
    for (int i = 0; i < MANY; i++) {
        ok += calls[i].done == 1 && calls[i].req.err == API_OK && calls[i].req.key_version == 1;
        verified += token_ok(&calls[i], i % 2 ? APP_A : APP_B, i % 2 ? SECRET_A1 : SECRET_B1);
    }
    CHECK(n_done == MANY && ok == MANY, "%d signs, each done once with version 1 (%d ok)", MANY,
          ok);
    CHECK(verified == MANY, "every token verifies with its app's secret (%d)", verified);
    CHECK(count(c, "SELECT count(*) FROM audit_log WHERE action = 'usersig.sign' AND outcome = "
                   "'ok'") == MANY,
          "one audit row per signature");
    CHECK(count(c, "SELECT sum(sign_count) FROM app_keys") == MANY, "sign counts add up");
    CHECK(count(c, "SELECT count(DISTINCT details::jsonb->>'identifier') FROM audit_log WHERE "
                   "action = 'usersig.sign'") == MANY,
          "each identifier recorded once");
    chain_ok(st, "after many signs");
}

/* One group of signs and refusals: each gets its own answer; the refusals are audited with
 * their code; only the signatures count. */
static void test_mixed(struct service *svc, PGconn *c)
{
    struct call calls[7];
    long long rows0 = count(c, "SELECT count(*) FROM audit_log");
    long long signs0 = count(c, "SELECT sum(sign_count) FROM app_keys");
    call_init(&calls[0], APP_A, "mixed-ok-a");
    call_init(&calls[1], APP_NONE, "mixed-no-app");
    call_init(&calls[2], APP_NOKEY, "mixed-no-key");
    /* The app's rules are checked before its key: this app has none. */
    call_init(&calls[3], APP_STRICT, "not strict!");
    call_init(&calls[4], APP_B, "mixed-ok-b");
    call_init(&calls[5], APP_A, "mixed-expire");
    calls[5].req.in.has_expire = true;
    calls[5].req.in.expire = 86401; /* over A's max_expire */
    call_init(&calls[6], APP_A, "mixed-parse");
    calls[6].req.refused_err = API_ERR_BAD_ROOM;
    snprintf(calls[6].req.msg, sizeof calls[6].req.msg, "give room_id or room_str, not both");
    sign_all(svc, calls, 7);

    CHECK(calls[0].req.err == API_OK && token_ok(&calls[0], APP_A, SECRET_A1), "A signed");
    CHECK(calls[4].req.err == API_OK && token_ok(&calls[4], APP_B, SECRET_B1), "B signed");
    CHECK(calls[1].req.err == API_ERR_APP_NOT_FOUND &&
              strstr(calls[1].req.msg, "no app with sdkappid") != NULL,
          "unknown app: app_not_found (%s)", calls[1].req.msg);
    CHECK(calls[2].req.err == API_ERR_INVALID_STATE &&
              strstr(calls[2].req.msg, "has no active key") != NULL,
          "no active key: invalid_state");
    CHECK(calls[3].req.err == API_ERR_BAD_IDENTIFIER && strstr(calls[3].req.msg, "strict"),
          "strict policy: bad_identifier (%s)", calls[3].req.msg);
    CHECK(calls[5].req.err == API_ERR_BAD_EXPIRE, "over max_expire: bad_expire");
    CHECK(calls[6].req.err == API_ERR_BAD_ROOM &&
              strcmp(calls[6].req.msg, "give room_id or room_str, not both") == 0,
          "a refusal decided by parsing keeps its error and message");
    for (int i = 1; i < 7; i++)
        if (i != 4)
            CHECK(calls[i].req.token_len == 0, "refusal %d issued no token", i);
    CHECK(count(c, "SELECT count(*) FROM audit_log") == rows0 + 7, "7 audit rows, one each");
    CHECK(count(c, "SELECT count(*) FROM audit_log WHERE action = 'usersig.sign' AND outcome IN "
                   "('app_not_found', 'invalid_state', 'bad_identifier', 'bad_expire', "
                   "'bad_room')") == 5,
          "the five refusals audited with their codes");
    CHECK(count(c, "SELECT sum(sign_count) FROM app_keys") == signs0 + 2, "two signatures counted");
}

/* An app whose key does not open answers its own signs with a 500, and the signs for other
 * apps in the same groups go through (they were all re-done, then refused 503). */
static void test_unopenable(struct service *svc, PGconn *c)
{
    enum { N = 20 };
    struct call calls[N];
    char id[32];
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof id, "broken-mix-%d", i);
        call_init(&calls[i], i % 2 ? APP_A : APP_BROKEN, id);
    }
    long long rows0 = count(c, "SELECT count(*) FROM audit_log WHERE action = 'usersig.sign' AND "
                               "outcome = 'ok'");
    sign_all(svc, calls, N);
    int a_ok = 0, broken_500 = 0;
    for (int i = 0; i < N; i++) {
        if (i % 2)
            a_ok += calls[i].req.err == API_OK && token_ok(&calls[i], APP_A, SECRET_A1);
        else
            broken_500 += calls[i].req.err == API_ERR_INTERNAL && calls[i].req.token_len == 0 &&
                          strstr(calls[i].req.msg, "does not open") != NULL;
    }
    CHECK(a_ok == N / 2, "beside an app whose key does not open, A's signs go through (%d of %d)",
          a_ok, N / 2);
    CHECK(broken_500 == N / 2, "that app's signs get a 500 that says why (%d of %d)", broken_500,
          N / 2);
    CHECK(count(c, "SELECT count(*) FROM audit_log WHERE action = 'usersig.sign' AND outcome = "
                   "'ok'") == rows0 + N / 2,
          "an audit row for each of A's signs");
}

/* Two pools on one database, as two processes, signing to A and B in opposite orders. */
static void test_two_pools(struct service *one, struct service *two, PGconn *c, struct store *st)
{
    static struct call calls[2 * MANY];
    long long rows0 = count(c, "SELECT count(*) FROM audit_log");
    n_done = 0;
    for (int i = 0; i < 2 * MANY; i++) {
        char id[32];
        snprintf(id, sizeof id, "two%d", i);
        bool first = i < MANY;
        /* one: A, B, A, B ...; two: B, A, B, A ... */
        call_init(&calls[i], (i % 2 == 0) == first ? APP_A : APP_B, id);
        sign_submit(first ? one : two, &calls[i].req);
    }
    run_until(2 * MANY);
    int ok = 0;
    for (int i = 0; i < 2 * MANY; i++)
        ok += calls[i].done == 1 && calls[i].req.err == API_OK;
    CHECK(n_done == 2 * MANY && ok == 2 * MANY, "two pools: every sign done (%d ok)", ok);
    CHECK(count(c, "SELECT count(*) FROM audit_log") == rows0 + 2 * MANY,
          "two pools: one row per signature");
    CHECK(count(c, "SELECT max(seq) - min(seq) + 1 - count(*) FROM audit_log") == 0,
          "two pools: no gap in the sequence");
    chain_ok(st, "after two pools");
}

/* A rotation committed elsewhere is used by the very next sign. */
static void test_rotation(struct service *svc, struct store *st)
{
    uint32_t v2 = dbtest_add_key(st, kr, APP_A, SECRET_A2, STORE_KEY_PENDING);
    CHECK(v2 == 2, "A's key 2 pending");
    CHECK(store_begin(st) == STORE_OK &&
              store_key_set_state(st, APP_A, 1, STORE_KEY_RETIRED) == STORE_OK &&
              store_key_set_state(st, APP_A, 2, STORE_KEY_ACTIVE) == STORE_OK &&
              store_commit(st) == STORE_OK,
          "rotate A to version 2");
    struct call c;
    call_init(&c, APP_A, "after-rotation");
    sign_all(svc, &c, 1);
    CHECK(c.req.err == API_OK && c.req.key_version == 2 && token_ok(&c, APP_A, SECRET_A2) &&
              !token_ok(&c, APP_A, SECRET_A1),
          "the next sign uses version 2");
}

/* Signs one request to app through svc, alone in its group. */
static void sign_one_call(struct service *svc, struct call *k, uint32_t app, const char *id,
                          const struct principal *p)
{
    call_init(k, app, id);
    if (p != NULL)
        k->req.principal = p;
    sign_all(svc, k, 1);
}

/* A process whose group wrote the chain's last event, and found it still last when it next
 * read the head, sends its groups in one round trip; an event another process appends makes
 * the next such attempt meet a change under the lock: nothing of it is written, the group is
 * done in two round trips, each token issued and recorded once, the chain whole. */
static void test_one_trip(struct service *svc, PGconn *c, struct store *st)
{
    struct sign_chain_stats s0, s1, s2, s3;
    struct call k;
    char id[32];
    int ok = 0;

    sign_chain_stats(svc->chain, &s0);
    long long rows0 = count(c, "SELECT count(*) FROM audit_log");
    for (int i = 0; i < 5; i++) {
        snprintf(id, sizeof id, "trip%d", i);
        sign_one_call(svc, &k, APP_B, id, NULL);
        ok += k.req.err == API_OK && token_ok(&k, APP_B, SECRET_B1);
    }
    sign_chain_stats(svc->chain, &s1);
    CHECK(ok == 5, "five signs in a row, each verifies (%d)", ok);
    /* At most the first two read the head (one to write it, one to find it still last). */
    CHECK(s1.one_trip - s0.one_trip >= 3 && s1.head_moved == s0.head_moved,
          "then in one round trip each (%llu of 5)",
          (unsigned long long)(s1.one_trip - s0.one_trip));
    CHECK(count(c, "SELECT count(*) FROM audit_log") == rows0 + 5, "five audit rows");
    chain_ok(st, "after one-round-trip groups");

    /* Another process's event: appended on the test's own connection. */
    struct audit_event ev = {
        .actor_name = "elsewhere", .action = "test.elsewhere", .outcome = "ok"};
    CHECK(store_begin(st) == STORE_OK && audit_append(st, keyring_audit_key(kr), &ev) == AUDIT_OK &&
              store_commit(st) == STORE_OK,
          "an event appended by someone else");
    rows0 = count(c, "SELECT count(*) FROM audit_log");
    sign_one_call(svc, &k, APP_B, "after-elsewhere", NULL);
    sign_chain_stats(svc->chain, &s2);
    CHECK(k.req.err == API_OK && token_ok(&k, APP_B, SECRET_B1), "the next sign is issued");
    CHECK(s2.head_moved == s1.head_moved + 1 && s2.two_trips == s1.two_trips + 1 &&
              s2.one_trip == s1.one_trip,
          "its one-round-trip attempt met the change and it was done in two");
    CHECK(count(c, "SELECT count(*) FROM audit_log") == rows0 + 1 &&
              count(c, "SELECT count(*) FROM audit_log WHERE details::jsonb->>'identifier' = "
                       "'after-elsewhere'") == 1,
          "one audit row for it, nothing of the refused attempt");
    chain_ok(st, "after a change met under the lock");
    for (int i = 0; i < 2; i++)
        sign_one_call(svc, &k, APP_B, i ? "back2" : "back1", NULL);
    sign_chain_stats(svc->chain, &s3);
    /* The first reads the head and finds its own event still last; the second is sent in one
     * round trip. (After a change, one group reads the head first: a process that alternates
     * with another on the chain never sends an attempt bound to fail.) */
    CHECK(k.req.err == API_OK && s3.one_trip == s2.one_trip + 1 && s3.two_trips == s2.two_trips + 1,
          "its head found still last: one round trip again");
    CHECK(count(c, "SELECT count(*) FROM audit_log WHERE at < (SELECT max(at) FROM audit_log AS "
                   "b WHERE b.seq < audit_log.seq)") == 0 &&
              count(c, "SELECT count(*) FROM audit_log WHERE abs(extract(epoch FROM at - "
                       "clock_timestamp())) > 60") == 0,
          "event times never go back and follow the database's clock");
    chain_ok(st, "at the end");
}

#define SECRET_B2 "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2"

/* A cached service whose cache never hears of a change (as if the notification were late):
 * the group's check under the audit lock still keeps it exact. */
static void test_stale_cache(const struct dbtest *t, PGconn *c, struct store *st)
{
    struct service svc = proto;
    struct cache_stats stats;
    char text[KEYRING_TOKEN_BUF];

    svc.cache = cache_new();
    svc.chain = sign_chain_new();
    CHECK(svc.cache != NULL && svc.chain != NULL, "cache");
    if (svc.cache == NULL || svc.chain == NULL) {
        cache_free(svc.cache);
        sign_chain_free(svc.chain);
        return;
    }
    cache_set_listening(svc.cache, true); /* on, with no listener: nothing evicts it */
    proto.cache = svc.cache;              /* the pool's threads copy proto as they start */
    struct sign_chain *proto_chain = proto.chain;
    proto.chain = svc.chain;
    svc.pool = pool_new(t, 2);
    proto.cache = NULL;
    proto.chain = proto_chain;
    if (svc.pool == NULL) {
        cache_free(svc.cache);
        sign_chain_free(svc.chain);
        return;
    }
    int64_t tid = dbtest_add_token(st, "cached-signer", STORE_ROLE_SIGNER, NULL, 0, 0, text);
    struct principal p = actor;
    p.token_id = tid;
    snprintf(p.name, sizeof p.name, "cached-signer");

    struct call k;
    struct sign_chain_stats s0, s1;
    /* Twice: the second finds the first's event still last, so the next group is sent in one
     * round trip, whose check under the lock then meets each change. */
    sign_one_call(&svc, &k, APP_B, "warm", &p);
    sign_one_call(&svc, &k, APP_B, "warm2", &p);
    CHECK(k.req.err == API_OK && k.req.key_version == 1, "warm: B version 1, now cached");
    sign_chain_stats(svc.chain, &s0);
    const struct cache_app *e = cache_app_get(svc.cache, APP_B);
    CHECK(e != NULL && e->active != NULL && e->active->version == 1, "B cached with version 1");
    cache_app_release(e);

    /* Rotated behind the cache's back. */
    CHECK(dbtest_add_key(st, kr, APP_B, SECRET_B2, STORE_KEY_PENDING) == 2 &&
              store_begin(st) == STORE_OK &&
              store_key_set_state(st, APP_B, 1, STORE_KEY_RETIRED) == STORE_OK &&
              store_key_set_state(st, APP_B, 2, STORE_KEY_ACTIVE) == STORE_OK &&
              store_commit(st) == STORE_OK,
          "B rotated to version 2, the cache not told");
    long long rows0 = count(c, "SELECT count(*) FROM audit_log");
    call_init(&k, APP_B, "after");
    k.req.principal = &p;
    sign_all(&svc, &k, 1);
    CHECK(k.req.err == API_OK && k.req.key_version == 2 && token_ok(&k, APP_B, SECRET_B2) &&
              !token_ok(&k, APP_B, SECRET_B1),
          "the stale entry is not used: version 2 signs");
    cache_get_stats(svc.cache, &stats);
    CHECK(stats.stale_groups == 1, "one group re-done (%llu)",
          (unsigned long long)stats.stale_groups);
    sign_chain_stats(svc.chain, &s1);
    CHECK(s1.head_moved == s0.head_moved + 1,
          "its one-round-trip attempt met the new generation under the lock");
    CHECK(count(c, "SELECT count(*) FROM audit_log") == rows0 + 1 &&
              count(c, "SELECT count(*) FROM audit_log WHERE action = 'usersig.sign' AND "
                       "key_version = 1 AND details::jsonb->>'identifier' = 'after'") == 0,
          "one audit row, for version 2");

    /* Revoked behind the cache's back: the group refuses it, records nothing, issues nothing. */
    char sql[160];
    snprintf(sql, sizeof sql, "UPDATE api_tokens SET revoked_at = now() WHERE id = %lld",
             (long long)tid);
    CHECK(dbtest_exec(c, sql, false), "token revoked");
    rows0 = count(c, "SELECT count(*) FROM audit_log");
    call_init(&k, APP_B, "revoked");
    k.req.principal = &p;
    sign_all(&svc, &k, 1);
    CHECK(k.req.err == API_ERR_UNAUTHORIZED && k.req.token_len == 0,
          "a revoked token: 401, no UserSig");
    CHECK(count(c, "SELECT count(*) FROM audit_log") == rows0, "and no audit row");
    sign_chain_stats(svc.chain, &s0);
    CHECK(s0.head_moved == s1.head_moved + 1,
          "its one-round-trip attempt met the revocation under the lock");

    dbpool_free(svc.pool);
    cache_free(svc.cache);
    sign_chain_free(svc.chain);
}

/* While single signs wait, the batches' workers leave a core to them (sign_submit): one fewer
 * may sign at once; when the last is done, all may again. */
static void test_reserve(struct service *proto_svc, const struct dbtest *t)
{
    static struct call calls[20];
    struct service svc = *proto_svc;
    struct pipeline_stats ps;
    char err[128];

    proto.chain = svc.chain; /* the pool's threads copy proto as they start */
    svc.pool = pool_new(t, 2);
    proto.chain = NULL;
    svc.pipeline = pipeline_new(base, 3, err, sizeof err);
    CHECK(svc.pipeline != NULL, "pipeline: %s", err);
    if (svc.pool == NULL || svc.pipeline == NULL) {
        dbpool_free(svc.pool);
        if (svc.pipeline != NULL)
            pipeline_free(svc.pipeline);
        return;
    }
    pipeline_get_stats(svc.pipeline, &ps);
    CHECK(ps.allowed == 3, "no sign out: all 3 workers may sign (%d)", ps.allowed);
    n_done = 0;
    for (int i = 0; i < 20; i++) {
        char id[32];
        snprintf(id, sizeof id, "reserve%d", i);
        call_init(&calls[i], APP_A, id);
        sign_submit(&svc, &calls[i].req);
    }
    /* Their answers come back through the loop, which has not run yet. */
    pipeline_get_stats(svc.pipeline, &ps);
    CHECK(ps.allowed == 2 && svc.signs_waiting == 20,
          "20 signs out: 2 of 3 workers may sign (%d), 20 counted (%zu)", ps.allowed,
          svc.signs_waiting);
    run_until(20);
    int ok = 0;
    for (int i = 0; i < 20; i++)
        ok += calls[i].done == 1 && calls[i].req.err == API_OK;
    pipeline_get_stats(svc.pipeline, &ps);
    CHECK(ok == 20 && ps.allowed == 3 && svc.signs_waiting == 0,
          "all done (%d ok): all 3 may sign again (%d), none counted (%zu)", ok, ps.allowed,
          svc.signs_waiting);
    dbpool_free(svc.pool);
    pipeline_free(svc.pipeline);
}

/* A job that holds the pool's one thread for 200 ms. */
static void run_busy(struct store *st, void *ctx, struct dbpool_job *jobs)
{
    struct timespec ts = {0, 200 * 1000 * 1000};
    (void)st;
    (void)ctx;
    (void)jobs;
    nanosleep(&ts, NULL);
}

static void busy_done(struct dbpool_job *job)
{
    (void)job;
}

/* Signs queued behind a busy pool when it is freed: refused, nothing issued, each done once. */
static void test_cancel(const struct dbtest *t)
{
    static struct call calls[50];
    struct service svc = proto;
    svc.pool = pool_new(t, 1);
    if (svc.pool == NULL)
        return;
    n_done = 0;
    /* The one thread busy first, so that the signs wait in the queue (a running group would
     * take in every waiting sign: dbpool_take_more). */
    struct dbpool_job busy = {.run = run_busy, .done = busy_done};
    dbpool_submit(svc.pool, &busy);
    struct timespec started = {0, 20 * 1000 * 1000};
    nanosleep(&started, NULL);
    for (int i = 0; i < 50; i++) {
        char id[32];
        snprintf(id, sizeof id, "cancel%d", i);
        call_init(&calls[i], APP_B, id);
        sign_submit(&svc, &calls[i].req);
    }
    dbpool_free(
        svc.pool); /* without running the loop: the busy job finishes, the signs do not run */
    int once = 0, refused = 0, issued = 0;
    for (int i = 0; i < 50; i++) {
        once += calls[i].done == 1;
        refused += calls[i].req.err == API_ERR_UNAVAILABLE && calls[i].req.token_len == 0;
        issued += calls[i].req.err == API_OK;
    }
    CHECK(once == 50, "every sign done once at free (%d)", once);
    CHECK(refused == 50 && issued == 0, "queued signs refused as unavailable (%d, %d issued)",
          refused, issued);
}

int main(void)
{
    struct dbtest t;

    log_set_level(getenv("TEST_LOG") ? LOG_DEBUG : LOG_ERROR);
    CHECK(evthread_use_pthreads() == 0, "evthread_use_pthreads");
    base = event_base_new();
    dbtest_create(&t, "sign", true);
    struct store *st = dbtest_store(&t);
    PGconn *c = dbtest_connect(&t);
    kr = dbtest_keyring(st);
    proto = (struct service){.st = st, .kr = kr};

    CHECK(dbtest_add_app(st, APP_A, 3600, 86400, STORE_ID_PRINTABLE) &&
              dbtest_add_app(st, APP_B, 3600, 86400, STORE_ID_PRINTABLE) &&
              dbtest_add_app(st, APP_NOKEY, 3600, 86400, STORE_ID_PRINTABLE) &&
              dbtest_add_app(st, APP_STRICT, 3600, 86400, STORE_ID_STRICT),
          "apps");
    CHECK(dbtest_add_key(st, kr, APP_A, SECRET_A1, STORE_KEY_ACTIVE) == 1 &&
              dbtest_add_key(st, kr, APP_B, SECRET_B1, STORE_KEY_ACTIVE) == 1,
          "keys");
    CHECK(dbtest_add_app(st, APP_BROKEN, 3600, 86400, STORE_ID_PRINTABLE), "an app");
    {
        char sql[512];
        snprintf(sql, sizeof sql,
                 "INSERT INTO app_keys (sdkappid, version, kind, state, fingerprint, sealed) "
                 "VALUES (%u, 1, 'hmac', 'active', decode(repeat('33', 32), 'hex'), "
                 "decode(repeat('00', 40), 'hex'))",
                 APP_BROKEN);
        CHECK(dbtest_exec(c, sql, false), "a key that does not open");
    }

    /* Each pool with a chain head of its own, as two processes have. */
    struct service one = proto, two = proto;
    one.chain = proto.chain = sign_chain_new();
    one.pool = pool_new(&t, 3);
    two.chain = proto.chain = sign_chain_new();
    two.pool = pool_new(&t, 2);
    proto.chain = NULL;
    if (one.pool != NULL && two.pool != NULL && one.chain != NULL && two.chain != NULL) {
        test_many(&one, c, st);
        test_mixed(&one, c);
        test_unopenable(&one, c);
        test_two_pools(&one, &two, c, st);
        test_rotation(&one, st);
        test_one_trip(&one, c, st);
        test_reserve(&one, &t);
    }
    dbpool_free(one.pool);
    dbpool_free(two.pool);
    sign_chain_free(one.chain);
    sign_chain_free(two.chain);
    test_stale_cache(&t, c, st);
    test_cancel(&t);

    keyring_free(kr);
    store_close(st);
    PQfinish(c);
    event_base_free(base);
    dbtest_drop(&t);
    return test_done("db_sign");
}
