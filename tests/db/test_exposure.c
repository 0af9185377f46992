/*
 * Exposure summaries on a fresh migrated database: usersig.sign events appended through the
 * core's audit (a real chain), several in one statement as a group commit does, and what the
 * audit log's trigger and the catch-up make of them: key_exposure's hour sums and the days
 * (refusals, other actions and other versions left out; expired hours dropped), the batches
 * counted from their manifests, key_live_identifiers (plain UserSigs only, each identifier once
 * with its latest expiry) paged in order, the watermark moving once and a catch-up held by
 * another connection skipped, and exposure_read's errors.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "audit.h"
#include "dbtest.h"
#include "exposure.h"
#include "log.h"
#include "service.h"

#define APP 1400000400u

static struct service svc;
static PGconn *conn;
static struct principal admin;

static long long count(const char *sql)
{
    return dbtest_scalar(conn, sql);
}

/* n events of one statement: each (identifier, version, outcome, expire_at, room). */
struct ev {
    const char *id;
    uint32_t version;
    const char *outcome;
    int64_t expire_at;
    bool room;
};

static void append(const struct ev *e, size_t n)
{
    CHECK(store_begin(svc.st) == STORE_OK, "begin");
    for (size_t i = 0; i < n; i++) {
        json_t *d = json_pack("{s:s, s:i, s:I}", "identifier", e[i].id, "expire", 3600, "expire_at",
                              (json_int_t)e[i].expire_at);
        if (e[i].room)
            json_object_set_new(d, "room_id", json_integer(7));
        CHECK(service_audit(&svc, &admin, "usersig.sign", APP, e[i].version, e[i].outcome, d) ==
                  STORE_OK,
              "append %s", e[i].id);
    }
    CHECK(store_commit(svc.st) == STORE_OK, "commit");
}

/* The index entries of audit_log's primary key read so far, as the statistics have them. */
static long long pkey_reads(void)
{
    return count("SELECT idx_tup_read FROM pg_stat_user_indexes WHERE indexrelname = "
                 "'audit_log_pkey'");
}

/* pkey_reads once it has reached at_least (the statistics of a connection are flushed when its
 * backend exits, a moment after it closes) and then stopped moving, polled for at most 10 s. */
static long long pkey_reads_settled(long long at_least)
{
    long long prev = pkey_reads(), now;
    for (int i = 0; i < 100; i++) {
        usleep(100 * 1000);
        now = pkey_reads();
        if (now == prev && now >= at_least && i >= 5)
            break;
        prev = now;
    }
    return prev;
}

int main(void)
{
    struct dbtest t;
    char sql[512];
    int64_t now = (int64_t)time(NULL);

    log_set_level(getenv("TEST_LOG") ? LOG_DEBUG : LOG_ERROR);
    dbtest_create(&t, "db_exposure", true);
    conn = dbtest_connect(&t);
    svc.st = dbtest_store(&t);
    svc.kr = dbtest_keyring(svc.st);
    memset(&admin, 0, sizeof admin);
    admin.token_id = 1;
    snprintf(admin.name, sizeof admin.name, "admin");
    admin.role = ROLE_ADMIN;
    admin.all_apps = true;
    CHECK(dbtest_add_app(svc.st, APP, 86400, 315360000, STORE_ID_PRINTABLE), "the app");
    snprintf(sql, sizeof sql,
             "INSERT INTO app_keys (sdkappid, version, kind, state, fingerprint, sealed) VALUES "
             "(%u, 1, 'hmac', 'retired', decode(repeat('11', 32), 'hex'), "
             "decode(repeat('00', 40), 'hex')), (%u, 2, 'hmac', 'active', "
             "decode(repeat('22', 32), 'hex'), decode(repeat('00', 40), 'hex'))",
             APP, APP);
    CHECK(dbtest_exec(conn, sql, false), "two versions");

    /* Each append is one transaction; service_audit inserts one row a statement, so a group's
     * several rows in one statement are the store's group commit: covered by the e2e tests. */
    const struct ev evs[] = {
        {"alice", 1, "ok", now + 100, false},
        {"alice", 1, "ok", now + 2 * 86400, false},
        {"bob", 1, "ok", now + 2 * 86400 + 60, false},
        {"dave", 1, "ok", now + 86400, true},        /* a PrivateMapKey */
        {"erin", 1, "bad_expire", now + 500, false}, /* a refusal */
        {"carol", 2, "ok", now + 86400, false},      /* another version */
        {"gone", 1, "ok", now - 7200, false},        /* expired two hours ago */
    };
    append(evs, sizeof evs / sizeof evs[0]);
    CHECK(count("SELECT sum(count) FROM key_exposure WHERE version = 1") == 5,
          "v1: five ok signs summed");
    CHECK(count("SELECT sum(count) FROM key_exposure WHERE version = 2") == 1, "v2: one");

    struct exposure e;
    char msg[256];
    CHECK(exposure_read(&svc, APP, 1, 10, &e, msg, sizeof msg) == API_OK, "read: %s", msg);
    CHECK(e.single == 4 && e.batch == 0, "live on v1: 4 (the expired one left out), got %llu",
          (unsigned long long)e.single);
    CHECK(e.n_days >= 2 && e.days[0].day <= now / 86400 + 1, "days in order");
    uint64_t sum = 0;
    for (size_t i = 0; i < e.n_days; i++) {
        sum += e.days[i].single;
        CHECK(i == 0 || e.days[i].day > e.days[i - 1].day, "ascending");
    }
    CHECK(sum == 4, "the days add up");
    exposure_free(&e);

    /* A batch on v1, finished, 10 signed at an expire of 3 days. */
    snprintf(sql, sizeof sql,
             "INSERT INTO batches (batch_id, sdkappid, key_version, actor_name, state, count, "
             "signed, failed, sha256, finished_at, expire) VALUES (md5('b'), %u, 1, 'ci', "
             "'complete', 12, 10, 2, md5('b') || md5('b'), now(), 259200), (md5('c'), %u, 1, "
             "'ci', 'complete', 5, 5, 0, md5('c') || md5('c'), now() - interval '10 days', 60)",
             APP, APP);
    CHECK(dbtest_exec(conn, sql, false), "batches");
    CHECK(exposure_read(&svc, APP, 1, 10, &e, msg, sizeof msg) == API_OK, "read");
    CHECK(e.batch == 10 && e.n_batches == 1 && e.batches[0].b.signed_count == 10 &&
              e.batches[0].b.expire == 259200 && strcmp(e.batches[0].b.actor_name, "ci") == 0 &&
              e.batches[0].expire_at_s >= now + 259200,
          "the live batch counted and listed, the expired one not");
    exposure_free(&e);
    CHECK(exposure_read(&svc, APP, 9, 10, &e, msg, sizeof msg) == API_ERR_KEY_NOT_FOUND,
          "an unknown version");
    exposure_free(&e);
    CHECK(exposure_read(&svc, APP + 1, 1, 10, &e, msg, sizeof msg) == API_ERR_APP_NOT_FOUND,
          "an unknown app");
    exposure_free(&e);

    /* The identifiers: nothing until a catch-up. */
    CHECK(count("SELECT count(*) FROM key_live_identifiers") == 0, "off the signing path");
    size_t added = 0;
    bool busy = false;
    CHECK(store_live_catch_up(svc.st, 3, &added, &busy) == STORE_OK && added == 3 && !busy,
          "three events at most");
    CHECK(store_live_catch_up(svc.st, 1000, &added, &busy) == STORE_OK && !busy, "the rest");
    CHECK(store_live_catch_up(svc.st, 1000, &added, &busy) == STORE_OK && added == 0,
          "caught up: nothing more");
    CHECK(count("SELECT last_seq FROM key_live_watermark") == count("SELECT max(seq) FROM "
                                                                    "audit_log"),
          "the watermark at the log's end");
    CHECK(count("SELECT count(*) FROM key_live_identifiers WHERE version = 1") == 3,
          "alice, bob, gone: no room, no refusal");
    snprintf(sql, sizeof sql,
             "SELECT expire_at FROM key_live_identifiers WHERE identifier = 'alice' AND "
             "version = 1");
    CHECK(count(sql) == now + 2 * 86400, "alice's latest expiry");

    char buf[STORE_LIVE_PAGE_MAX * (STORE_ID_MAX + 1)], last[STORE_ID_MAX + 1];
    size_t len = 0, n = 0;
    CHECK(store_live_identifiers_page(svc.st, APP, 1, now, "", 1, buf, sizeof buf, &len, &n,
                                      last) == STORE_OK &&
              n == 1 && len == 6 && memcmp(buf, "alice\n", 6) == 0 && strcmp(last, "alice") == 0,
          "page 1");
    CHECK(store_live_identifiers_page(svc.st, APP, 1, now, last, 1, buf, sizeof buf, &len, &n,
                                      last) == STORE_OK &&
              n == 1 && memcmp(buf, "bob\n", 4) == 0,
          "page 2");
    CHECK(store_live_identifiers_page(svc.st, APP, 1, now, last, 1, buf, sizeof buf, &len, &n,
                                      last) == STORE_OK &&
              n == 0,
          "the expired one is not live: the end");
    CHECK(store_live_identifiers_page(svc.st, APP, 1, now + 2 * 86400 + 30, "", 10, buf, sizeof buf,
                                      &len, &n, last) == STORE_OK &&
              n == 1 && memcmp(buf, "bob\n", 4) == 0,
          "expiring after a time");

    /* Another connection holds the watermark: skipped, nothing done. */
    append(&(struct ev){"frank", 1, "ok", now + 3600, false}, 1);
    CHECK(dbtest_exec(conn, "BEGIN", false) &&
              dbtest_exec(conn, "SELECT * FROM key_live_watermark FOR UPDATE", false),
          "hold the watermark");
    CHECK(store_live_catch_up(svc.st, 1000, &added, &busy) == STORE_OK && busy && added == 0,
          "busy");
    CHECK(dbtest_exec(conn, "COMMIT", false), "release");
    CHECK(store_live_catch_up(svc.st, 1000, &added, &busy) == STORE_OK && !busy && added == 1 &&
              count("SELECT count(*) FROM key_live_identifiers WHERE identifier = 'frank'") == 1,
          "then frank");

    /* Later catch-ups keep each identifier's latest expiry: an earlier one changes nothing, a
     * later one moves it. */
    append(&(struct ev){"alice", 1, "ok", now + 50, false}, 1);
    append(&(struct ev){"bob", 1, "ok", now + 5 * 86400, false}, 1);
    CHECK(store_live_catch_up(svc.st, 1000, &added, &busy) == STORE_OK && !busy && added == 2,
          "alice and bob again");
    snprintf(sql, sizeof sql,
             "SELECT expire_at FROM key_live_identifiers WHERE identifier = 'alice' AND "
             "version = 1");
    CHECK(count(sql) == now + 2 * 86400, "alice keeps her latest expiry");
    snprintf(sql, sizeof sql,
             "SELECT expire_at FROM key_live_identifiers WHERE identifier = 'bob' AND "
             "version = 1");
    CHECK(count(sql) == now + 5 * 86400, "bob's moves on");
    CHECK(count("SELECT count(*) FROM key_live_identifiers WHERE version = 1") == 4,
          "no row added for either");

    struct audit_verify_result vr;
    CHECK(audit_verify(svc.st, keyring_audit_key(svc.kr), &vr) == AUDIT_OK && vr.ok,
          "the chain verifies");

    /* The catch-up reads the log from its watermark, not from its start: 300,000 more events
     * (analyzed, so the planner sees the log's size), caught up 50,000 at a time, read 300,000
     * of the log's index entries, not 50,000 + 100,000 + ... (each connection's statistics are
     * in once it has closed). */
    CHECK(dbtest_exec(conn,
                      "INSERT INTO audit_log (seq, at, actor_name, action, outcome, details, mac) "
                      "SELECT s, now(), 'fill', 'test.fill', 'ok', '{}', "
                      "decode(repeat('00', 32), 'hex') FROM generate_series((SELECT max(seq) + 1 "
                      "FROM audit_log), (SELECT max(seq) + 300000 FROM audit_log)) s",
                      false) &&
              dbtest_exec(conn, "ANALYZE audit_log", false),
          "300,000 more events");
    store_close(svc.st);
    long long before = pkey_reads_settled(0);
    svc.st = dbtest_store(&t);
    size_t caught = 0;
    do {
        CHECK(store_live_catch_up(svc.st, 50000, &added, &busy) == STORE_OK, "catching up");
        caught += added;
    } while (added > 0 && caught < 400000);
    CHECK(caught == 300000, "caught up on them (%zu)", caught);
    store_close(svc.st);
    long long read = pkey_reads_settled(before + 300000) - before;
    CHECK(read >= 300000 && read < 301000,
          "the catch-ups read %lld of the log's index entries for 300,000 events", read);
    svc.st = dbtest_store(&t);

    keyring_free(svc.kr);
    store_close(svc.st);
    PQfinish(conn);
    dbtest_drop(&t);
    return test_done("db_exposure");
}
