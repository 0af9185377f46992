/*
 * The audit chain against a real PostgreSQL: appends and their canonical MAC (recomputed here
 * from server/README.md's definition), filters, the table refusing UPDATE/DELETE/TRUNCATE,
 * a signing group's one multi-row insert (every column as given), tampering (with the triggers
 * disabled) found by audit_verify, and two processes appending, and
 * signing while a third rotates, keeping one valid chain.
 */
#include "audit.h"
#include "dbtest.h"
#include "hex.h"

#include <inttypes.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/wait.h>

static const uint8_t KEY[AUDIT_KEY_LEN] = {
    0x61, 0x75, 0x64, 0x69, 0x74, 0x20, 0x6b, 0x65, 0x79, 0x20, 0x66, 0x6f, 0x72, 0x20, 0x74, 0x65,
    0x73, 0x74, 0x73, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c};
static const uint32_t APP = 1400000001;

/* Appends one event in its own transaction; the event's seq, or -1. */
static int64_t append(struct store *st, const char *actor, int64_t actor_id, const char *action,
                      uint32_t sdkappid, uint32_t version, const char *details)
{
    struct audit_event ev = {.actor_id = actor_id,
                             .actor_name = actor,
                             .action = action,
                             .sdkappid = sdkappid,
                             .key_version = version,
                             .outcome = "ok",
                             .details = details};
    if (store_begin(st) != STORE_OK)
        return -1;
    if (audit_append(st, KEY, &ev) != AUDIT_OK || store_commit(st) != STORE_OK) {
        store_rollback(st);
        return -1;
    }
    return ev.seq;
}

static int64_t log_count(PGconn *c)
{
    return dbtest_scalar(c, "SELECT count(*) FROM audit_log");
}

/* mac = HMAC-SHA256(key, prev || "seq\nat\nactor_id\nactor_name\naction\nsdkappid\n
 *                                   key_version\noutcome\ndetails\n"), built independently. */
static void readme_mac(const uint8_t prev[32], const struct audit_event *ev, uint8_t out[32])
{
    char canon[AUDIT_DETAILS_MAX + 2048], id[24] = "", app[24] = "", ver[24] = "";
    uint8_t msg[sizeof canon + 32];
    unsigned int len = 0;
    if (ev->actor_id != 0)
        snprintf(id, sizeof id, "%" PRId64, ev->actor_id);
    if (ev->sdkappid != 0)
        snprintf(app, sizeof app, "%" PRIu32, ev->sdkappid);
    if (ev->key_version != 0)
        snprintf(ver, sizeof ver, "%" PRIu32, ev->key_version);
    int n = snprintf(canon, sizeof canon, "%" PRId64 "\n%" PRId64 "\n%s\n%s\n%s\n%s\n%s\n%s\n%s\n",
                     ev->seq, ev->at_us, id, ev->actor_name, ev->action, app, ver, ev->outcome,
                     ev->details);
    memcpy(msg, prev, 32);
    memcpy(msg + 32, canon, (size_t)n);
    HMAC(EVP_sha256(), KEY, sizeof KEY, msg, 32 + (size_t)n, out, &len);
}

static void test_append(struct store *st, PGconn *c)
{
    struct audit_event ev = {.actor_name = "admin", .action = "app.create", .outcome = "ok"};
    struct audit_event *page = NULL;
    size_t n = 0;

    CHECK(audit_append(st, KEY, &ev) == AUDIT_ERROR, "append outside a transaction");
    CHECK(log_count(c) == 0, "nothing written");

    /* 300 events: some with an actor, app and version, some without; some several to a
     * transaction, one transaction rolled back */
    int64_t seq = 0;
    for (int i = 0; i < 300; i++) {
        char details[64];
        snprintf(details, sizeof details, "{\"i\":%d,\"identifier\":\"user_%d\"}", i, i);
        if (i % 50 == 10) {
            CHECK(store_begin(st) == STORE_OK, "begin batch");
            for (int j = 0; j < 3; j++) {
                struct audit_event b = {.actor_id = 7,
                                        .actor_name = "batch",
                                        .action = "usersig.sign",
                                        .sdkappid = APP,
                                        .key_version = 1,
                                        .outcome = "ok",
                                        .details = details};
                CHECK(audit_append(st, KEY, &b) == AUDIT_OK && b.seq == seq + 1, "batch event %d",
                      j);
                seq = b.seq;
            }
            CHECK(store_commit(st) == STORE_OK, "commit batch");
            continue;
        }
        if (i % 50 == 20) {
            struct audit_event r = {.actor_name = "x", .action = "app.create", .outcome = "ok"};
            CHECK(store_begin(st) == STORE_OK && audit_append(st, KEY, &r) == AUDIT_OK,
                  "append then roll back");
            store_rollback(st);
            continue;
        }
        int64_t s = append(st, i % 3 == 0 ? "" : "ops team", i % 3 == 0 ? 0 : 1 + i % 4,
                           i % 2 ? "key.rotate" : "app.update", i % 5 == 0 ? 0 : APP,
                           i % 2 ? (uint32_t)(1 + i % 3) : 0, details);
        CHECK(s == seq + 1, "event %d has seq %" PRId64 " (got %" PRId64 ")", i, seq + 1, s);
        seq = s;
    }
    CHECK(log_count(c) == seq && seq == 300 - 6 + 12, "rolled-back events are not in the log");

    /* the stored MACs are the README's */
    struct store_audit_filter all = {.limit = STORE_AUDIT_PAGE_MAX};
    CHECK(store_audit_query(st, &all, &page, &n) == STORE_OK && n == (size_t)seq, "read them back");
    uint8_t prev[32] = {0}, mac[32];
    bool same = n > 0, ordered = true;
    for (size_t i = 0; i < n; i++) {
        readme_mac(prev, &page[i], mac);
        same = same && memcmp(mac, page[i].mac, 32) == 0;
        ordered = ordered && page[i].seq == (int64_t)i + 1 &&
                  (i == 0 || page[i].at_us >= page[i - 1].at_us);
        memcpy(prev, page[i].mac, 32);
    }
    CHECK(same, "every MAC is HMAC-SHA256(key, prev || canonical form)");
    CHECK(ordered, "seq 1, 2, 3 ... and time never going back");
    CHECK(n > 2 && page[0].actor_id == 0 && page[0].sdkappid == 0 && page[0].key_version == 0 &&
              strcmp(page[0].actor_name, "") == 0 &&
              strcmp(page[0].details, "{\"i\":0,\"identifier\":\"user_0\"}") == 0,
          "empties and details round trip");
    CHECK(page[0].at_us > 1600000000000000LL, "at is Unix microseconds");
    free(page);

    /* what cannot be appended */
    struct audit_event bad[] = {
        {.actor_name = "a", .action = "x\ny", .outcome = "ok"},
        {.actor_name = "a\n", .action = "x", .outcome = "ok"},
        {.actor_name = "a", .action = "", .outcome = "ok"},
        {.actor_name = NULL, .action = "x", .outcome = "ok"},
        {.actor_name = "a", .action = "x", .outcome = NULL},
        {.actor_name = "a", .action = "x", .outcome = "ok", .details = "{\n}"},
    };
    CHECK(store_begin(st) == STORE_OK, "begin");
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(audit_append(st, KEY, &bad[i]) == AUDIT_BAD_EVENT, "bad event %zu refused", i);
    char *long_details = malloc(AUDIT_DETAILS_MAX + 2);
    if (long_details == NULL)
        abort();
    memset(long_details, 'x', AUDIT_DETAILS_MAX + 1);
    long_details[AUDIT_DETAILS_MAX + 1] = '\0';
    struct audit_event big = {
        .actor_name = "a", .action = "x", .outcome = "ok", .details = long_details};
    CHECK(audit_append(st, KEY, &big) == AUDIT_BAD_EVENT, "details over the bound refused");
    free(long_details);
    struct audit_event no_details = {.actor_name = "a", .action = "x", .outcome = "ok"};
    CHECK(audit_append(st, KEY, &no_details) == AUDIT_OK && strcmp(no_details.details, "{}") == 0,
          "NULL details are {}");
    CHECK(store_commit(st) == STORE_OK, "commit");
}

static void test_query(struct store *st)
{
    struct audit_event *page = NULL;
    size_t n = 0;
    struct store_audit_filter f = {.sdkappid = APP, .action = "usersig.sign", .limit = 100};

    CHECK(store_audit_query(st, &f, &page, &n) == STORE_OK && n == 18, "by app and action: %zu", n);
    bool match = true;
    for (size_t i = 0; i < n; i++)
        match = match && page[i].sdkappid == APP && strcmp(page[i].action, "usersig.sign") == 0 &&
                strcmp(page[i].actor_name, "batch") == 0 &&
                (i == 0 || page[i].seq > page[i - 1].seq);
    CHECK(match, "only those, in seq order");
    int64_t fifth = n >= 5 ? page[4].seq : 0;
    free(page);

    f = (struct store_audit_filter){.actor = "batch", .after_seq = fifth, .limit = 4};
    CHECK(store_audit_query(st, &f, &page, &n) == STORE_OK && n == 4 && page[0].seq > fifth,
          "by actor, paged after a seq");
    free(page);

    f = (struct store_audit_filter){.action = "no.such", .limit = 10};
    CHECK(store_audit_query(st, &f, &page, &n) == STORE_OK && n == 0 && page == NULL,
          "no match: empty");

    /* time bounds: [at of seq 10, at of seq 20) holds seqs 10..19 (times may tie, so compare
     * with what the bounds select) */
    struct store_audit_filter all = {.limit = 50};
    CHECK(store_audit_query(st, &all, &page, &n) == STORE_OK && n == 50, "first 50");
    int64_t since = page[9].at_us, until = page[19].at_us;
    size_t want = 0;
    for (size_t i = 0; i < n; i++)
        want += page[i].at_us >= since && page[i].at_us < until;
    free(page);
    f = (struct store_audit_filter){.since_us = since, .until_us = until, .limit = 100};
    CHECK(store_audit_query(st, &f, &page, &n) == STORE_OK && n == want && n > 0 &&
              page[0].at_us >= since && page[n - 1].at_us < until,
          "since/until select by time (%zu, want %zu)", n, want);
    free(page);

    f = (struct store_audit_filter){.limit = 0};
    CHECK(store_audit_query(st, &f, &page, &n) == STORE_ERROR, "limit 0 refused");
    f.limit = STORE_AUDIT_PAGE_MAX + 1;
    CHECK(store_audit_query(st, &f, &page, &n) == STORE_ERROR, "limit over the page refused");
}

static void expect_verify(struct store *st, bool ok, enum audit_problem problem, int64_t bad_seq,
                          const char *what)
{
    struct audit_verify_result r;
    CHECK(audit_verify(st, KEY, &r) == AUDIT_OK, "%s: verify runs", what);
    CHECK(r.ok == ok && r.problem == problem && r.bad_seq == bad_seq,
          "%s: ok %d problem %s bad_seq %" PRId64 " (want %d %s %" PRId64 ")", what, r.ok,
          audit_problem_name(r.problem), r.bad_seq, ok, audit_problem_name(problem), bad_seq);
    if (!ok)
        CHECK(r.checked == bad_seq - 1 && r.last_seq == bad_seq - 1,
              "%s: the events before it followed", what);
}

/* The row of ev as stored, every column compared in SQL with the values given as parameters (0
 * ids as NULL); 1 when it matches. */
static long long row_matches(PGconn *c, const struct audit_event *ev)
{
    char seq[24], at[24], id[24], app[24], ver[24], mac[2 * AUDIT_MAC_LEN + 1];
    snprintf(seq, sizeof seq, "%" PRId64, ev->seq);
    snprintf(at, sizeof at, "%" PRId64, ev->at_us);
    snprintf(id, sizeof id, "%" PRId64, ev->actor_id);
    snprintf(app, sizeof app, "%" PRIu32, ev->sdkappid);
    snprintf(ver, sizeof ver, "%" PRIu32, ev->key_version);
    hex_encode(ev->mac, AUDIT_MAC_LEN, mac);
    const char *v[10] = {seq,
                         at,
                         ev->actor_id != 0 ? id : NULL,
                         ev->actor_name,
                         ev->action,
                         ev->sdkappid != 0 ? app : NULL,
                         ev->key_version != 0 ? ver : NULL,
                         ev->outcome,
                         ev->details != NULL ? ev->details : "{}",
                         mac};
    PGresult *r = PQexecParams(
        c,
        "SELECT count(*) FROM audit_log WHERE seq = $1::bigint AND at = 'epoch'::timestamptz + "
        "$2::bigint * interval '1 microsecond' AND actor_id IS NOT DISTINCT FROM $3::bigint AND "
        "actor_name = $4 AND action = $5 AND sdkappid IS NOT DISTINCT FROM $6::bigint AND "
        "key_version IS NOT DISTINCT FROM $7::integer AND outcome = $8 AND details = $9 AND "
        "mac = decode($10, 'hex')",
        10, NULL, v, NULL, NULL, 0);
    long long n = PQresultStatus(r) == PGRES_TUPLES_OK ? atoll(PQgetvalue(r, 0, 0)) : -1;
    PQclear(r);
    return n;
}

/* A signing group's one insert (store_group_begin, audit_link, store_group_commit), as the
 * online signs use it: every column as given, NULL for the ids that are 0, an empty actor, texts
 * with quotes, backslashes, commas, braces, a tab and UTF-8, the longest details; a text that is
 * not UTF-8 refused whole, with nothing written. */
static void test_group_insert(struct store *st, PGconn *c)
{
    static char longest[AUDIT_DETAILS_MAX + 1];
    size_t k = 0;
    k += (size_t)snprintf(longest, sizeof longest, "{\"x\":\"");
    while (k + 2 + 2 <= AUDIT_DETAILS_MAX) {
        memcpy(longest + k, "\xc3\xa9", 2);
        k += 2;
    }
    memcpy(longest + k, "\"}", 3);
    CHECK(strlen(longest) == AUDIT_DETAILS_MAX, "the longest details (%zu)", strlen(longest));

    struct audit_event evs[4] = {
        {.actor_name = "", .action = "test.group", .outcome = "ok"},
        {.actor_id = 7,
         .actor_name = "ci \xc3\xa9\"\\'{},\t",
         .action = "test.group",
         .sdkappid = APP,
         .key_version = 3,
         .outcome = "ok",
         .details = "{\"expire_at\":1,\"identifier\":\"a\\\"b,{}\"}"},
        {.actor_id = INT64_MAX,
         .actor_name = "x",
         .action = "test.group",
         .sdkappid = 4294967295u,
         .outcome = "bad_expire",
         .details = longest},
        {.actor_id = 1,
         .actor_name = "y",
         .action = "test.group",
         .key_version = 1,
         .outcome = "ok",
         .details = "{}"},
    };
    struct audit_event *evp[4] = {&evs[0], &evs[1], &evs[2], &evs[3]};
    const uint32_t no_apps[1] = {0};
    const int64_t no_tokens[1] = {0};
    int64_t gens[1];
    bool live[1];
    struct store_group g = {
        .apps = no_apps, .tokens = no_tokens, .generations = gens, .token_live = live};
    long long before = log_count(c);

    CHECK(store_group_begin(st, &g) == STORE_OK, "group: begin");
    CHECK(audit_link(KEY, g.last_seq, g.last_mac, g.last_at_us, g.now_us, evp, 4) == AUDIT_OK,
          "group: linked");
    CHECK(store_group_commit(st, evp, 4, NULL, 0) == STORE_OK, "group: committed");
    CHECK(log_count(c) == before + 4, "group: four rows");
    uint8_t prev[32], want[32];
    memcpy(prev, g.last_mac, 32);
    for (int i = 0; i < 4; i++) {
        CHECK(evs[i].seq == g.last_seq + 1 + i, "group: seq %d in order", i);
        CHECK(row_matches(c, &evs[i]) == 1, "group: event %d stored as given", i);
        struct audit_event canon = evs[i];
        if (canon.details == NULL)
            canon.details = "{}";
        readme_mac(prev, &canon, want);
        CHECK(memcmp(want, evs[i].mac, 32) == 0, "group: event %d MAC as the README says", i);
        memcpy(prev, evs[i].mac, 32);
    }
    expect_verify(st, true, AUDIT_CHAIN_OK, 0, "after a group insert");

    /* Not UTF-8: PostgreSQL refuses the array, the transaction goes, nothing is written. */
    struct audit_event bad = {.actor_name = "z\xff", .action = "test.group", .outcome = "ok"};
    struct audit_event *badp[1] = {&bad};
    before = log_count(c);
    CHECK(store_group_begin(st, &g) == STORE_OK, "bad group: begin");
    CHECK(audit_link(KEY, g.last_seq, g.last_mac, g.last_at_us, g.now_us, badp, 1) == AUDIT_OK,
          "bad group: linked");
    CHECK(store_group_commit(st, badp, 1, NULL, 0) != STORE_OK, "bad group: refused");
    if (store_in_transaction(st))
        store_rollback(st);
    CHECK(log_count(c) == before, "bad group: nothing written");
    expect_verify(st, true, AUDIT_CHAIN_OK, 0, "after a refused group");
}

static void test_refusals(PGconn *c)
{
    const char *e;
    e = dbtest_error(c, "UPDATE audit_log SET details = '{}' WHERE seq = 1");
    CHECK(e != NULL && strstr(e, "append-only") != NULL, "UPDATE refused: %s", e ? e : "");
    e = dbtest_error(c, "DELETE FROM audit_log WHERE seq = 1");
    CHECK(e != NULL && strstr(e, "append-only") != NULL, "DELETE refused");
    e = dbtest_error(c, "TRUNCATE audit_log");
    CHECK(e != NULL && strstr(e, "append-only") != NULL, "TRUNCATE refused");
}

static void test_tamper(struct store *st, PGconn *c)
{
    struct audit_verify_result r;
    int64_t total = log_count(c);
    char sql[512];

    CHECK(audit_verify(st, KEY, &r) == AUDIT_OK && r.ok && r.checked == total &&
              r.last_seq == total && r.problem == AUDIT_CHAIN_OK && r.bad_seq == 0,
          "the log verifies: %" PRId64 " events", r.checked);
    uint8_t other[AUDIT_KEY_LEN];
    memset(other, 7, sizeof other);
    CHECK(audit_verify(st, other, &r) == AUDIT_OK && !r.ok &&
              r.problem == AUDIT_CHAIN_MAC_MISMATCH && r.bad_seq == 1,
          "another key fails at the first event");

    CHECK(dbtest_exec(c, "ALTER TABLE audit_log DISABLE TRIGGER ALL", false), "disable triggers");
    CHECK(dbtest_exec(c, "CREATE TABLE saved AS SELECT * FROM audit_log", false), "save a copy");

    /* altered */
    CHECK(dbtest_exec(c, "UPDATE audit_log SET details = '{\"i\":9999}' WHERE seq = 150", false),
          "alter event 150");
    expect_verify(st, false, AUDIT_CHAIN_MAC_MISMATCH, 150, "altered details");
    CHECK(dbtest_exec(c,
                      "UPDATE audit_log a SET details = s.details FROM saved s "
                      "WHERE a.seq = 150 AND s.seq = 150",
                      false),
          "restore it");
    expect_verify(st, true, AUDIT_CHAIN_OK, 0, "restored");
    CHECK(dbtest_exec(c, "UPDATE audit_log SET sdkappid = NULL WHERE seq = 151", false),
          "alter event 151's app");
    expect_verify(st, false, AUDIT_CHAIN_MAC_MISMATCH, 151, "altered app");
    CHECK(dbtest_exec(c,
                      "UPDATE audit_log a SET sdkappid = s.sdkappid FROM saved s "
                      "WHERE a.seq = 151 AND s.seq = 151",
                      false),
          "restore it");
    CHECK(dbtest_exec(c, "UPDATE audit_log SET at = at + interval '1 microsecond' WHERE seq = 152",
                      false),
          "alter event 152's time");
    expect_verify(st, false, AUDIT_CHAIN_MAC_MISMATCH, 152, "altered time");
    CHECK(dbtest_exec(c,
                      "UPDATE audit_log a SET at = s.at FROM saved s "
                      "WHERE a.seq = 152 AND s.seq = 152",
                      false),
          "restore it");

    /* missing */
    CHECK(dbtest_exec(c, "DELETE FROM audit_log WHERE seq = 200", false), "delete event 200");
    expect_verify(st, false, AUDIT_CHAIN_GAP, 200, "deleted");
    CHECK(audit_verify(st, KEY, &r) == AUDIT_OK && r.found_seq == 201, "the gap ends at 201");
    CHECK(dbtest_exec(c, "DELETE FROM audit_log WHERE seq = 1", false), "delete event 1");
    expect_verify(st, false, AUDIT_CHAIN_GAP, 1, "first deleted");
    CHECK(dbtest_exec(c, "INSERT INTO audit_log SELECT * FROM saved WHERE seq IN (1, 200)", false),
          "put them back");
    expect_verify(st, true, AUDIT_CHAIN_OK, 0, "restored");

    /* inserted: replacing an event, and appending a forged one */
    CHECK(dbtest_exec(c, "DELETE FROM audit_log WHERE seq = 77", false), "remove 77");
    CHECK(dbtest_exec(c,
                      "INSERT INTO audit_log (seq, at, actor_name, action, outcome, details, "
                      "mac) SELECT 77, at, 'mallory', 'key.export', 'ok', '{}', mac "
                      "FROM saved WHERE seq = 77",
                      false),
          "forge 77 with the old MAC");
    expect_verify(st, false, AUDIT_CHAIN_MAC_MISMATCH, 77, "forged in place");
    CHECK(dbtest_exec(c, "DELETE FROM audit_log WHERE seq = 77", false) &&
              dbtest_exec(c, "INSERT INTO audit_log SELECT * FROM saved WHERE seq = 77", false),
          "put 77 back");
    snprintf(sql, sizeof sql,
             "INSERT INTO audit_log (seq, at, actor_name, action, outcome, details, mac) "
             "VALUES (%" PRId64 ", now(), 'mallory', 'app.create', 'ok', '{}', "
             "sha256('forged'::bytea))",
             total + 1);
    CHECK(dbtest_exec(c, sql, false), "append a forged event");
    expect_verify(st, false, AUDIT_CHAIN_MAC_MISMATCH, total + 1, "forged at the end");
    snprintf(sql, sizeof sql, "DELETE FROM audit_log WHERE seq = %" PRId64, total + 1);
    CHECK(dbtest_exec(c, sql, false), "remove it");

    /* a stored event no append writes: the CHECK dropped, a newline moved between fields */
    CHECK(dbtest_exec(c, "ALTER TABLE audit_log DROP CONSTRAINT audit_log_no_newlines", false),
          "drop the newline CHECK");
    CHECK(dbtest_exec(c,
                      "UPDATE audit_log SET actor_name = 'ops team' || E'\\n' || action, "
                      "action = 'x' WHERE seq = 5",
                      false),
          "smuggle a newline into event 5");
    expect_verify(st, false, AUDIT_CHAIN_MALFORMED, 5, "newline");
    CHECK(dbtest_exec(c,
                      "UPDATE audit_log a SET actor_name = s.actor_name, action = s.action "
                      "FROM saved s WHERE a.seq = 5 AND s.seq = 5",
                      false),
          "restore it");

    CHECK(dbtest_exec(c, "DROP TABLE saved", false), "drop the copy");
    CHECK(dbtest_exec(c, "ALTER TABLE audit_log ENABLE TRIGGER ALL", false), "enable triggers");
    expect_verify(st, true, AUDIT_CHAIN_OK, 0, "after the tampering tests");
    test_refusals(c);
}

/* Two processes append at once: one chain, no seq lost or doubled. */
static void test_two_writers(const struct dbtest *t, struct store *st, PGconn *c)
{
    enum { PER_CHILD = 150 };
    int64_t before = log_count(c);
    pid_t pids[2];
    int ok = 0;

    for (int i = 0; i < 2; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            struct store *cs = NULL;
            int fails = 0;
            if (store_open(t->url, &cs) != STORE_OK)
                _exit(2);
            for (int j = 0; j < PER_CHILD; j++)
                fails += append(cs, i == 0 ? "writer one" : "writer two", 10 + i, "usersig.sign",
                                APP, 1, "{\"n\":1}") < 0;
            store_close(cs);
            _exit(fails == 0 ? 0 : 1);
        }
    }
    for (int i = 0; i < 2; i++) {
        int status = 0;
        ok += pids[i] > 0 && waitpid(pids[i], &status, 0) == pids[i] && WIFEXITED(status) &&
              WEXITSTATUS(status) == 0;
    }
    CHECK(ok == 2, "both writers appended every event");
    CHECK(log_count(c) == before + 2 * PER_CHILD, "all of them are in the log");
    CHECK(dbtest_scalar(c, "SELECT max(seq) - min(seq) + 1 - count(*) FROM audit_log") == 0,
          "no seq lost");
    expect_verify(st, true, AUDIT_CHAIN_OK, 0, "two writers");
}

/* Signers (lock the active key, count the use, audit) in two processes while this one rotates:
 * no deadlock, no error, every signature counted, every rotation seen, one chain. */
static void test_sign_during_rotation(const struct dbtest *t, struct store *st, PGconn *c)
{
    enum { PER_CHILD = 120, ROTATIONS = 8 };
    struct store_app app = {.sdkappid = APP, .default_expire = 60, .max_expire = 60};
    struct store_key k = {
        .sdkappid = APP, .version = 1, .kind = STORE_KEY_HMAC, .state = STORE_KEY_ACTIVE};
    uint8_t sealed[40];
    pid_t pids[2];
    int ok = 0, rotated = 0;

    strcpy(app.name, "rotating");
    memset(sealed, 1, sizeof sealed);
    k.sealed = sealed;
    k.sealed_len = sizeof sealed;
    memset(k.fingerprint, 1, sizeof k.fingerprint);
    CHECK(store_app_insert(st, &app) == STORE_OK && store_key_insert(st, &k) == STORE_OK,
          "an app with an active key");

    for (int i = 0; i < 2; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            struct store *cs = NULL;
            int fails = 0;
            if (store_open(t->url, &cs) != STORE_OK)
                _exit(2);
            for (int j = 0; j < PER_CHILD; j++) {
                struct store_key active = {0};
                struct audit_event ev = {.actor_id = 20 + i,
                                         .actor_name = "signer",
                                         .action = "usersig.sign",
                                         .sdkappid = APP,
                                         .outcome = "ok",
                                         .details = "{\"identifier\":\"u\"}"};
                bool done = store_begin(cs) == STORE_OK &&
                            store_key_get_active(cs, APP, STORE_LOCK_UPDATE, &active) == STORE_OK &&
                            store_key_record_use(cs, APP, active.version, 1) == STORE_OK;
                ev.key_version = active.version;
                done =
                    done && audit_append(cs, KEY, &ev) == AUDIT_OK && store_commit(cs) == STORE_OK;
                store_rollback(cs);
                store_key_clear(&active);
                fails += !done;
            }
            store_close(cs);
            _exit(fails == 0 ? 0 : 1);
        }
    }
    for (int r = 0; r < ROTATIONS; r++) {
        uint32_t next = 0;
        struct store_key old = {0}, nk = k;
        struct audit_event ev = {.actor_id = 1,
                                 .actor_name = "admin",
                                 .action = "key.rotate",
                                 .sdkappid = APP,
                                 .outcome = "ok",
                                 .details = "{}"};
        /* rotate while the signers are at work: after every 25 signatures */
        for (int wait = 0; wait < 1000 && dbtest_scalar(c, "SELECT sum(sign_count) FROM app_keys "
                                                           "WHERE sdkappid = 1400000001") < 25 * r;
             wait++)
            usleep(10000);
        bool done = store_begin(st) == STORE_OK &&
                    store_key_next_version(st, APP, &next) == STORE_OK &&
                    store_key_get_active(st, APP, STORE_LOCK_UPDATE, &old) == STORE_OK &&
                    store_key_set_state(st, APP, old.version, STORE_KEY_RETIRED) == STORE_OK;
        nk.version = next;
        memset(nk.fingerprint, 2 + r, sizeof nk.fingerprint);
        ev.key_version = next;
        done = done && store_key_insert(st, &nk) == STORE_OK &&
               audit_append(st, KEY, &ev) == AUDIT_OK && store_commit(st) == STORE_OK;
        store_rollback(st);
        store_key_clear(&old);
        rotated += done;
    }
    for (int i = 0; i < 2; i++) {
        int status = 0;
        ok += pids[i] > 0 && waitpid(pids[i], &status, 0) == pids[i] && WIFEXITED(status) &&
              WEXITSTATUS(status) == 0;
    }
    CHECK(rotated == ROTATIONS, "every rotation committed (%d)", rotated);
    CHECK(ok == 2, "every signature committed");
    CHECK(dbtest_scalar(c, "SELECT sum(sign_count) FROM app_keys WHERE sdkappid = 1400000001") ==
              2 * PER_CHILD,
          "every signature counted once");
    CHECK(dbtest_scalar(c, "SELECT count(*) FROM app_keys WHERE sdkappid = 1400000001 "
                           "AND state = 'active'") == 1 &&
              dbtest_scalar(c, "SELECT max(version) FROM app_keys "
                               "WHERE sdkappid = 1400000001 AND state = 'active'") == 1 + ROTATIONS,
          "the last version is the one active");
    /* each signature names the version that was active when it was audited */
    CHECK(dbtest_scalar(c, "SELECT count(*) FROM audit_log s WHERE s.action = 'usersig.sign' "
                           "AND s.actor_name = 'signer' AND s.key_version <> COALESCE((SELECT "
                           "r.key_version FROM audit_log r WHERE r.action = 'key.rotate' AND "
                           "r.actor_name = 'admin' AND r.seq < s.seq ORDER BY r.seq DESC "
                           "LIMIT 1), 1)") == 0,
          "no signature used a key rotated away before it");
    CHECK(dbtest_scalar(c, "SELECT count(DISTINCT key_version) FROM audit_log "
                           "WHERE actor_name = 'signer'") > 2,
          "the signers went through several versions");
    expect_verify(st, true, AUDIT_CHAIN_OK, 0, "signing during rotation");
}

int main(void)
{
    struct dbtest t;
    struct store *st;
    PGconn *c;

    dbtest_create(&t, "db_audit", true);
    st = dbtest_store(&t);
    c = dbtest_connect(&t);
    expect_verify(st, true, AUDIT_CHAIN_OK, 0, "an empty log");
    test_append(st, c);
    test_query(st);
    test_refusals(c);
    test_group_insert(st, c);
    test_tamper(st, c);
    test_two_writers(&t, st, c);
    test_sign_during_rotation(&t, st, c);
    PQfinish(c);
    store_close(st);
    dbtest_drop(&t);
    return test_done("db_audit");
}
