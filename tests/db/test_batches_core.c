/*
 * The core's batch manifests (server/core/batches.c) on the real PostgreSQL: an end that could
 * not be written while the database was away is recorded by the retry job once it is back, the
 * sign count grown once; the batches of an owner that is gone are marked interrupted with their
 * audit events and the chain verifies; those of a live owner are left alone; an owner whose
 * lease connection was cut still closes its interrupted batch and takes its lock again; rows
 * without an owner are swept only when asked; the trigger refuses other transitions.
 */
#include "audit.h"
#include "batches.h"
#include "dbpool.h"
#include "dbtest.h"
#include "service.h"

#include <event2/thread.h>
#include <stdarg.h>
#include <time.h>

#define APP 1400000300u
#define SECRET "c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1"
#define SHA_X "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static struct event_base *base;
static struct keyring *kr;
static struct dbtest t;
static struct principal actor = {.token_id = 0, .name = "batches-test", .all_apps = true};
static int batch_seq;

/* Runs the loop until cond() or ms pass; returns cond(). */
static bool spin(int ms, bool (*cond)(void *), void *arg)
{
    for (int waited = 0; waited < ms; waited += 10) {
        if (cond != NULL && cond(arg))
            return true;
        struct timeval tv = {0, 10000};
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
    }
    return cond != NULL && cond(arg);
}

static bool none_pending(void *arg)
{
    return batches_pending(arg) == 0;
}

/* dbtest_scalar of a formatted statement. */
__attribute__((format(printf, 2, 3))) static long long scalarf(PGconn *c, const char *fmt, ...)
{
    char sql[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    return dbtest_scalar(c, sql);
}

static void chain_ok(struct store *st, const char *what)
{
    struct audit_verify_result res;
    CHECK(audit_verify(st, keyring_audit_key(kr), &res) == AUDIT_OK &&
              res.problem == AUDIT_CHAIN_OK,
          "%s: the audit chain verifies", what);
}

static struct batches *owner_new(struct service *svc, struct event_base *b)
{
    struct batches_config cfg = {.conninfo = t.url,
                                 .retry_min_ms = 50,
                                 .retry_max_ms = 200,
                                 .sweep_interval_ms = 3600000,
                                 .no_start_sweep = true};
    struct batches *bs = NULL;
    CHECK(batches_new(b, svc, &cfg, &bs) == 0 && bs != NULL && batches_owner(bs) > 0,
          "a batch owner");
    return bs;
}

/* Starts a batch of bs (its row running, its start event) on svc; the id goes to id. */
static bool start(struct service *svc, const struct batches *bs, char id[STORE_BATCH_ID_LEN + 1])
{
    struct store_batch row;
    memset(&row, 0, sizeof row);
    snprintf(row.batch_id, sizeof row.batch_id, "%032x", ++batch_seq + 0xb000);
    row.sdkappid = APP;
    row.key_version = 1;
    snprintf(row.actor_name, sizeof row.actor_name, "%s", actor.name);
    json_t *d = json_pack("{s:s}", "batch_id", row.batch_id);
    bool ok =
        store_begin(svc->st) == STORE_OK && batches_start(svc, bs, &actor, &row, d) == STORE_OK;
    store_rollback(svc->st);
    snprintf(id, STORE_BATCH_ID_LEN + 1, "%s", row.batch_id);
    return ok && row.owner == batches_owner(bs);
}

static void end_init(struct batches_end *e, const char *id, uint64_t signed_count)
{
    memset(e, 0, sizeof *e);
    snprintf(e->batch_id, sizeof e->batch_id, "%s", id);
    e->sdkappid = APP;
    e->key_version = 1;
    e->principal = actor;
    e->state = STORE_BATCH_COMPLETE;
    e->count = signed_count + 1;
    e->signed_count = signed_count;
    e->failed_count = 1;
    snprintf(e->sha256, sizeof e->sha256, "%s", SHA_X);
}

static long long sign_count(PGconn *c)
{
    return dbtest_scalar(c, "SELECT sign_count FROM app_keys WHERE sdkappid = 1400000300");
}

static const char *state_of(PGconn *c, const char *id)
{
    static char buf[32];
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT state FROM batches WHERE batch_id = '%s'", id);
    PGresult *r = PQexec(c, sql);
    snprintf(buf, sizeof buf, "%s",
             PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : "?");
    PQclear(r);
    return buf;
}

/* Owner's advisory lock in pg_locks, which lists every database's: this test's only (other
 * tests' databases on the cluster number their batch owners from 1 too). */
#define OWNER_LOCK                                                                                 \
    "pg_locks WHERE locktype = 'advisory' AND classid = 1431521092 AND objid = %lld "              \
    "AND objsubid = 1 AND database = (SELECT oid FROM pg_database WHERE datname = "                \
    "current_database())"

/* The lock of owner is held by some session. */
static long long lock_held(PGconn *c, int64_t owner)
{
    char sql[512];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM " OWNER_LOCK " AND granted", (long long)owner);
    return dbtest_scalar(c, sql);
}

/* The database refuses connections and every session on it ends (allow false), or takes them
 * again. */
static void database_away(bool away)
{
    char sql[256];
    PGconn *admin = dbtest_connect_url(t.admin_url);
    CHECK(admin != NULL, "admin connection");
    if (admin == NULL)
        return;
    snprintf(sql, sizeof sql, "ALTER DATABASE %s ALLOW_CONNECTIONS %s", t.name,
             away ? "false" : "true");
    CHECK(dbtest_exec(admin, sql, false), "%s", sql);
    if (away) {
        snprintf(sql, sizeof sql,
                 "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                 "WHERE datname = '%s' AND pid <> pg_backend_pid()",
                 t.name);
        CHECK(dbtest_scalar(admin, sql) >= 1, "sessions ended");
        /* Until they are gone, a statement may still reach one. */
        snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_stat_activity WHERE datname = '%s'",
                 t.name);
        for (int i = 0; i < 200 && dbtest_scalar(admin, sql) > 0; i++)
            usleep(10000);
    }
    PQfinish(admin);
}

static void test_rerecord(struct service *loop_svc, struct batches *bs)
{
    char id[STORE_BATCH_ID_LEN + 1];
    struct batches_end e;
    PGconn *c;

    CHECK(start(loop_svc, bs, id), "rerecord: the batch started");
    c = dbtest_connect(&t);
    long long before = sign_count(c);
    PQfinish(c);

    database_away(true);
    end_init(&e, id, 41);
    CHECK(batches_finish(loop_svc, bs, &e) == STORE_ERROR,
          "rerecord: its end cannot be written while the database is away");
    CHECK(batches_retry(bs, &e), "rerecord: the end is kept");
    CHECK(batches_pending(bs) == 1, "rerecord: one end pending");
    spin(600, NULL, NULL); /* retries on the pool fail meanwhile */
    CHECK(batches_pending(bs) == 1, "rerecord: still pending while the database is away");
    database_away(false);
    CHECK(spin(10000, none_pending, bs), "rerecord: recorded once the database is back");

    c = dbtest_connect(&t);
    CHECK(strcmp(state_of(c, id), "complete") == 0, "rerecord: the batch is complete (%s)",
          state_of(c, id));
    CHECK(scalarf(c, "SELECT signed FROM batches WHERE batch_id = '%s'", id) == 41 &&
              scalarf(c, "SELECT count FROM batches WHERE batch_id = '%s'", id) == 42,
          "rerecord: with its counts");
    CHECK(sign_count(c) == before + 41, "rerecord: sign count grown by 41 (%lld -> %lld)", before,
          sign_count(c));
    CHECK(scalarf(c,
                  "SELECT count(*) FROM audit_log WHERE action = 'usersig.batch.finish' "
                  "AND outcome = 'complete' AND details LIKE '%%%s%%'",
                  id) == 1,
          "rerecord: one finish event");
    /* A second attempt (an earlier one's reply lost) changes nothing. */
    CHECK(batches_finish(loop_svc, bs, &e) == STORE_NOT_FOUND, "rerecord: closed already");
    CHECK(sign_count(c) == before + 41, "rerecord: the sign count grew once");
    /* The lease came back with the database. */
    batches_maintain(loop_svc, bs, false, false);
    long long held = lock_held(c, batches_owner(bs));
    CHECK(held == 1, "rerecord: the owner lock is held again (%lld)", held);
    chain_ok(loop_svc->st, "rerecord");
    PQfinish(c);
}

static void test_dead_and_live(struct service *svc, struct batches *bs)
{
    char dead_id[STORE_BATCH_ID_LEN + 1], live_id[STORE_BATCH_ID_LEN + 1];
    struct batches *dead = owner_new(svc, NULL), *live = owner_new(svc, NULL);
    PGconn *c = dbtest_connect(&t);
    long long before = sign_count(c);
    int64_t dead_owner = batches_owner(dead);

    CHECK(start(svc, dead, dead_id) && start(svc, live, live_id), "dead/live: batches started");
    CHECK(lock_held(c, dead_owner) == 1 && lock_held(c, batches_owner(live)) == 1,
          "dead/live: both owners hold their locks");
    /* The process goes: its lock with it, its batch left running. */
    batches_free(dead);
    CHECK(lock_held(c, dead_owner) == 0, "dead/live: the dead owner's lock is free");

    CHECK(batches_sweep(svc, bs, false) == 1, "dead/live: one batch marked");
    CHECK(strcmp(state_of(c, dead_id), "interrupted") == 0, "dead/live: the dead one interrupted");
    CHECK(strcmp(state_of(c, live_id), "running") == 0, "dead/live: the live one left running");
    CHECK(scalarf(c,
                  "SELECT count(*) FROM batches WHERE batch_id = '%s' AND count IS NULL AND "
                  "signed IS NULL AND failed IS NULL AND sha256 IS NULL AND finished_at IS NOT "
                  "NULL",
                  dead_id) == 1,
          "dead/live: counts and digest unknown, finished_at set");
    CHECK(scalarf(c,
                  "SELECT count(*) FROM audit_log WHERE action = 'usersig.batch.finish' AND "
                  "outcome = 'interrupted' AND actor_name = 'usersigd' AND sdkappid = 1400000300 "
                  "AND key_version = 1 AND details::jsonb ->> 'batch_id' = '%s' AND "
                  "details::jsonb -> 'signed' = 'null'::jsonb",
                  dead_id) == 1,
          "dead/live: its interrupted event");
    CHECK(sign_count(c) == before, "dead/live: no sign count from an interrupted batch");
    chain_ok(svc->st, "dead/live");
    /* Nothing more to do: a second sweep marks nothing, makes no event. */
    long long events = dbtest_scalar(c, "SELECT count(*) FROM audit_log");
    CHECK(batches_sweep(svc, bs, false) == 0, "dead/live: a second sweep marks nothing");
    CHECK(dbtest_scalar(c, "SELECT count(*) FROM audit_log") == events,
          "dead/live: and appends nothing");
    /* The live one ends as usual. */
    struct batches_end e;
    end_init(&e, live_id, 5);
    CHECK(batches_finish(svc, live, &e) == STORE_OK, "dead/live: the live one completes");
    CHECK(strcmp(state_of(c, live_id), "complete") == 0 && sign_count(c) == before + 5,
          "dead/live: complete, sign count +5");
    /* An interrupted batch is not another owner's to close. */
    end_init(&e, dead_id, 1);
    CHECK(batches_finish(svc, live, &e) == STORE_NOT_FOUND, "dead/live: not closed by another");
    /* The trigger: a finished batch never becomes interrupted, nor an interrupted one running. */
    char sql[256];
    snprintf(sql, sizeof sql,
             "UPDATE batches SET state = 'interrupted', sha256 = NULL, count = "
             "NULL, signed = NULL, failed = NULL WHERE batch_id = '%s'",
             live_id);
    CHECK(dbtest_error(c, sql) != NULL, "dead/live: complete -> interrupted refused");
    snprintf(sql, sizeof sql,
             "UPDATE batches SET state = 'running', finished_at = NULL WHERE batch_id = '%s'",
             dead_id);
    CHECK(dbtest_error(c, sql) != NULL, "dead/live: interrupted -> running refused");
    batches_free(live);
    PQfinish(c);
}

/* The owner's lease connection is cut (its lock goes) while its batch streams: another process
 * marks the batch interrupted; the owner then records its end over it, and takes its lock back. */
static void test_lease_cut(struct service *svc, struct batches *bs)
{
    char id[STORE_BATCH_ID_LEN + 1], sql[512];
    struct batches *cut = owner_new(svc, NULL);
    PGconn *c = dbtest_connect(&t);
    long long before = sign_count(c);
    int64_t owner = batches_owner(cut);
    struct batches_end e;

    CHECK(start(svc, cut, id), "lease: started");
    snprintf(sql, sizeof sql, "SELECT count(pg_terminate_backend(pid)) FROM " OWNER_LOCK,
             (long long)owner);
    CHECK(dbtest_scalar(c, sql) == 1, "lease: its connection cut");
    for (int i = 0; i < 200 && lock_held(c, owner) > 0; i++)
        usleep(10000);
    CHECK(batches_sweep(svc, bs, false) == 1 && strcmp(state_of(c, id), "interrupted") == 0,
          "lease: marked interrupted by another");
    end_init(&e, id, 7);
    CHECK(batches_finish(svc, cut, &e) == STORE_OK, "lease: its owner records its end");
    CHECK(strcmp(state_of(c, id), "complete") == 0 && sign_count(c) == before + 7 &&
              scalarf(c, "SELECT count FROM batches WHERE batch_id = '%s'", id) == 8,
          "lease: complete with its counts, sign count +7");
    CHECK(scalarf(c,
                  "SELECT count(*) FROM audit_log WHERE action = 'usersig.batch.finish' AND "
                  "details::jsonb ->> 'batch_id' = '%s'",
                  id) == 2,
          "lease: both events on record (interrupted, then complete)");
    batches_maintain(svc, cut, false, false);
    CHECK(lock_held(c, owner) == 1, "lease: the lock taken again");
    char id2[STORE_BATCH_ID_LEN + 1];
    CHECK(start(svc, cut, id2) && batches_sweep(svc, bs, false) == 0 &&
              strcmp(state_of(c, id2), "running") == 0,
          "lease: its next batch is left alone");
    end_init(&e, id2, 0);
    CHECK(batches_finish(svc, cut, &e) == STORE_OK, "lease: which ends");
    chain_ok(svc->st, "lease");
    batches_free(cut);
    PQfinish(c);
}

/* Rows from before owners (NULL owner): swept only when asked (at a process's start). */
static void test_unowned(struct service *svc, struct batches *bs)
{
    PGconn *c = dbtest_connect(&t);
    const char *id = "feedfacefeedfacefeedfacefeedface";
    char sql[256];
    snprintf(sql, sizeof sql,
             "INSERT INTO batches (batch_id, sdkappid, key_version, actor_name) VALUES "
             "('%s', 1400000300, 1, 'old')",
             id);
    CHECK(dbtest_exec(c, sql, false), "unowned: a row without an owner");
    CHECK(batches_sweep(svc, bs, false) == 0 && strcmp(state_of(c, id), "running") == 0,
          "unowned: left alone by the periodic sweep");
    CHECK(batches_sweep(svc, bs, true) == 1 && strcmp(state_of(c, id), "interrupted") == 0,
          "unowned: marked by the start sweep");
    chain_ok(svc->st, "unowned");
    PQfinish(c);
}

int main(void)
{
    log_set_level(getenv("TEST_LOG") ? LOG_DEBUG : LOG_ERROR);
    CHECK(evthread_use_pthreads() == 0, "evthread_use_pthreads");
    base = event_base_new();
    dbtest_create(&t, "batches_core", true);
    struct store *st = dbtest_store(&t);
    kr = dbtest_keyring(st);
    struct service proto = {.st = st, .kr = kr};
    CHECK(dbtest_add_app(st, APP, 3600, 86400, STORE_ID_PRINTABLE) &&
              dbtest_add_key(st, kr, APP, SECRET, STORE_KEY_ACTIVE) == 1,
          "app and key");

    struct service loop_svc = proto;
    struct dbpool_config pcfg = {
        .conninfo = t.url,
        .size = 2,
        .thread_ctx_new = service_thread_new,
        .thread_ctx_free = service_thread_free,
        .thread_ctx_arg = &proto,
    };
    CHECK(dbpool_new(base, &pcfg, &loop_svc.pool) == 0, "pool");
    struct batches *bs = owner_new(&loop_svc, base);
    CHECK(batches_current() == bs, "the first batches is the process's");
    if (loop_svc.pool != NULL && bs != NULL) {
        test_rerecord(&loop_svc, bs);
        test_dead_and_live(&proto, bs);
        test_lease_cut(&proto, bs);
        test_unowned(&proto, bs);
    }
    dbpool_free(loop_svc.pool);
    loop_svc.pool = NULL;
    batches_free(bs);
    CHECK(batches_current() == NULL, "none once freed");

    keyring_free(kr);
    store_close(st);
    event_base_free(base);
    dbtest_drop(&t);
    return test_done("db_batches_core");
}
