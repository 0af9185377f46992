/*
 * The signing pipeline alone (server/pipeline.c): real worker threads and a real event loop,
 * a fake source of items and a fake emitter whose "connection" drains on a timer
 * (pipeline_fixture.c). Checks that lines come out in input order across many blocks and
 * workers with error lines in place, that the SHA-256 and counts match the output and that no
 * more than max_in_flight blocks are out and nothing is cut while the output is not drained.
 * Jobs that end other than complete: test_pipeline_cancel.c.
 */
#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pipeline.h"
#include "pipeline_fixture.h"
#include "testlib.h"
#include "usersig.h"

/* ---- tests ---------------------------------------------------------------------------------- */

/* Item i of the big text batch: every 7th is bad in one of three ways. */
static char *text_item(size_t i)
{
    char buf[64];
    if (i % 7 == 3)
        snprintf(buf, sizeof buf, "%s", i % 3 == 0 ? "" : i % 3 == 1 ? "bad\x01id" : "x");
    else
        snprintf(buf, sizeof buf, "user-%zu%s", i, i % 5 == 0 ? "\r" : "");
    if (i % 7 == 3 && i % 3 == 2)
        snprintf(buf, sizeof buf, "%s", "0123456789012345678901234567890123"); /* 34 bytes */
    return strdup(buf);
}

static void check_text_batch(size_t n, long drain_delay_us, size_t max_in_flight)
{
    struct fake f;
    struct usersig_key *key = new_key();
    char sha[65];
    size_t n_lines, bad = 0;

    fake_init(&f, PIPELINE_IN_TEXT, PIPELINE_OUT_NDJSON, n);
    for (size_t i = 0; i < n; i++)
        f.items[i] = text_item(i);
    f.drain_delay_us = drain_delay_us;
    f.cfg.max_in_flight = max_in_flight;
    start(&f);
    CHECK(run_until(&f.done), "text batch of %zu finished", n);
    CHECK(f.res.state == PIPELINE_COMPLETE, "state %s", pipeline_state_name(f.res.state));
    CHECK(f.res.count == n, "count %llu of %zu", (unsigned long long)f.res.count, n);
    sha256_hex(f.out, f.out_len, sha);
    CHECK(strcmp(sha, f.res.sha256) == 0, "sha256 over the output: %s vs %s", sha, f.res.sha256);
    CHECK(f.max_out <= (max_in_flight ? max_in_flight : 2 * (size_t)pipeline_workers(pool)),
          "at most max_in_flight blocks out: %zu", f.max_out);
    CHECK(!f.cut_while_undrained, "no block cut while the output was not drained");
    CHECK(f.blocks_emitted >= n / PIPELINE_BLOCK_ITEMS, "blocks: %zu", f.blocks_emitted);

    char **lines = split_lines(&f, &n_lines);
    CHECK(n_lines == n, "%zu lines for %zu items", n_lines, n);
    for (size_t i = 0; i < n_lines && i < n; i++) {
        json_error_t jerr;
        json_t *o = json_loads(lines[i], 0, &jerr);
        char want[64];
        snprintf(want, sizeof want, "%s", f.items[i]);
        size_t wl = strlen(want);
        if (wl > 0 && want[wl - 1] == '\r')
            want[wl - 1] = '\0';
        const char *id = json_string_value(json_object_get(o, "identifier"));
        const char *tok = json_string_value(json_object_get(o, "usersig"));
        json_t *err = json_object_get(o, "error");
        bool want_bad = i % 7 == 3;
        if (o == NULL || id == NULL || strcmp(id, want) != 0) {
            CHECK(false, "line %zu is for item %zu (%s): %s", i, i, want, lines[i]);
            json_decref(o);
            break;
        }
        if (want_bad) {
            bad++;
            CHECK(tok == NULL && err != NULL &&
                      strcmp(json_string_value(json_object_get(err, "code")), "bad_identifier") ==
                          0 &&
                      strstr(json_string_value(json_object_get(err, "message")), "printable") !=
                          NULL,
                  "line %zu is a bad_identifier error: %s", i, lines[i]);
        } else if (i % 997 == 0 || i + 1 == n) {
            CHECK(tok != NULL && err == NULL && token_ok(key, tok, want),
                  "line %zu holds a valid token for %s", i, want);
        } else {
            CHECK(tok != NULL && err == NULL, "line %zu holds a token", i);
        }
        json_decref(o);
    }
    CHECK(f.res.failed_count == bad && f.res.signed_count == n - bad,
          "signed %llu failed %llu (want %zu bad)", (unsigned long long)f.res.signed_count,
          (unsigned long long)f.res.failed_count, bad);
    free(lines);
    fake_free(&f);
    usersig_key_free(key);
}

static void test_order_many_blocks(void)
{
    check_text_batch(60000, 0, 0);    /* ~15 blocks over 4 workers, a fast reader */
    check_text_batch(20000, 3000, 2); /* a slow reader, two blocks out at most */
    check_text_batch(1, 0, 0);
}

static void test_empty(void)
{
    struct fake f;
    fake_init(&f, PIPELINE_IN_TEXT, PIPELINE_OUT_NDJSON, 0);
    start(&f);
    CHECK(run_until(&f.done), "empty batch finished");
    CHECK(f.res.state == PIPELINE_COMPLETE && f.res.count == 0 && f.out_len == 0 &&
              strcmp(f.res.sha256,
                     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == 0,
          "empty: complete, nothing emitted, the SHA-256 of nothing");
    fake_free(&f);
}

struct expect_line {
    const char *item;
    const char *identifier; /* as repeated in the line */
    const char *code;       /* NULL: a token */
};

static void check_lines(enum pipeline_input in, const struct expect_line *x, size_t n)
{
    struct fake f;
    struct usersig_key *key = new_key();
    size_t n_lines;

    fake_init(&f, in, PIPELINE_OUT_NDJSON, n);
    for (size_t i = 0; i < n; i++)
        f.items[i] = strdup(x[i].item);
    start(&f);
    CHECK(run_until(&f.done) && f.res.state == PIPELINE_COMPLETE, "%s batch finished",
          pipeline_input_name(in));
    char **lines = split_lines(&f, &n_lines);
    CHECK(n_lines == n, "%s: %zu lines for %zu items", pipeline_input_name(in), n_lines, n);
    for (size_t i = 0; i < n_lines && i < n; i++) {
        json_t *o = json_loads(lines[i], 0, NULL);
        const char *id = json_string_value(json_object_get(o, "identifier"));
        const char *tok = json_string_value(json_object_get(o, "usersig"));
        const char *code = json_string_value(json_object_get(json_object_get(o, "error"), "code"));
        CHECK(o != NULL && id != NULL && strcmp(id, x[i].identifier) == 0,
              "%s item %zu: identifier %s: %s", pipeline_input_name(in), i, x[i].identifier,
              lines[i]);
        if (x[i].code == NULL)
            CHECK(tok != NULL && code == NULL && token_ok(key, tok, x[i].identifier),
                  "%s item %zu: a valid token: %s", pipeline_input_name(in), i, lines[i]);
        else
            CHECK(tok == NULL && code != NULL && strcmp(code, x[i].code) == 0,
                  "%s item %zu: error %s: %s", pipeline_input_name(in), i, x[i].code, lines[i]);
        json_decref(o);
    }
    free(lines);
    fake_free(&f);
    usersig_key_free(key);
}

static void test_ndjson_items(void)
{
    static const struct expect_line x[] = {
        {"{\"identifier\":\"alice\"}", "alice", NULL},
        {"  {\"identifier\":\"bob\",\"expire\":3600}\r", "bob", NULL},
        {"{\"identifier\":\"carol\",\"room_id\":42,\"privilege_map\":3}", "carol", NULL},
        {"{\"identifier\":\"dave\",\"room_str\":\"lobby\"}", "dave", NULL},
        {"", "", "bad_json"},
        {"[\"alice\"]", "", "bad_json"},
        {"{\"identifier\":\"eve\"", "", "bad_json"},
        {"{\"identifier\":\"eve\",\"colour\":1}", "eve", "unknown_field"},
        {"{\"identifier\":7}", "", "invalid_field"},
        {"{\"expire\":60}", "", "missing_field"},
        {"{\"identifier\":\"frank\",\"expire\":0}", "frank", "bad_expire"},
        {"{\"identifier\":\"frank\",\"expire\":315360001}", "frank", "bad_expire"},
        {"{\"identifier\":\"gina\",\"room_id\":1,\"room_str\":\"x\"}", "gina", "bad_room"},
        {"{\"identifier\":\"gina\",\"room_id\":0}", "gina", "bad_room"},
        {"{\"identifier\":\"hal\",\"privilege_map\":3}", "hal", "bad_privilege"},
        {"{\"identifier\":\"hal\",\"room_id\":9,\"privilege_map\":256}", "hal", "bad_privilege"},
        {"{\"identifier\":\"a\\\"quote\"}", "a\"quote", NULL},
        {"{\"identifier\":\"\\u00e9t\\u00e9\"}", "\xc3\xa9t\xc3\xa9", "bad_identifier"},
        {"{\"identifier\":\"dup\",\"identifier\":\"dup\"}", "", "bad_json"},
        {"{\"identifier\":\"last\"}", "last", NULL},
    };
    check_lines(PIPELINE_IN_NDJSON, x, sizeof x / sizeof x[0]);
}

static void test_json_values(void)
{
    static const struct expect_line x[] = {
        {"\"alice\"", "alice", NULL},
        {" \n\"bob\" \r\n", "bob", NULL},
        {"\"tab\\tin\"", "tab\tin", "bad_identifier"},
        {"\"\\u0041\\u0042\"", "AB", NULL},
        {"\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80", "bad_identifier"},
        {"\"\\ud800x\"", "\xef\xbf\xbdx", "bad_identifier"},
        {"42", "", "invalid_field"},
        {"{\"identifier\":\"x\"}", "", "invalid_field"},
        {"null", "", "invalid_field"},
        {"\"\"", "", "bad_identifier"},
        {"\"unterminated", "unterminated", "bad_json"},
        {"\"slash\\/ok\"", "slash/ok", NULL},
    };
    check_lines(PIPELINE_IN_JSON_VALUE, x, sizeof x / sizeof x[0]);
}

static void test_text_edge_items(void)
{
    char *longline = malloc(PIPELINE_ITEM_MAX * 2 + 1);
    memset(longline, 'a', PIPELINE_ITEM_MAX * 2);
    longline[PIPELINE_ITEM_MAX * 2] = '\0';
    char echo[PIPELINE_ECHO_MAX + 1];
    memset(echo, 'a', PIPELINE_ECHO_MAX);
    echo[PIPELINE_ECHO_MAX] = '\0';
    const struct expect_line x[] = {
        {"plain", "plain", NULL},
        {"with space", "with space", NULL},
        {"crlf\r", "crlf", NULL},
        {"", "", "bad_identifier"},
        {"\xff\xfe", "\xef\xbf\xbd\xef\xbf\xbd", "bad_identifier"},
        {longline, echo, "bad_identifier"},
        {"01234567890123456789012345678901", "01234567890123456789012345678901", NULL},
        {"quote\"and\\", "quote\"and\\", NULL},
    };
    check_lines(PIPELINE_IN_TEXT, x, sizeof x / sizeof x[0]);
    free(longline);
}

/* A body of just "\n": a block whose only items are empty, so that its input buffer was never
 * allocated (UBSan once reported NULL plus an offset in the worker here). */
static void test_only_empty_items(void)
{
    static const struct expect_line text1[] = {{"", "", "bad_identifier"}};
    static const struct expect_line text3[] = {
        {"", "", "bad_identifier"}, {"", "", "bad_identifier"}, {"\r", "", "bad_identifier"}};
    static const struct expect_line ndjson1[] = {{"", "", "bad_json"}};
    check_lines(PIPELINE_IN_TEXT, text1, 1);
    check_lines(PIPELINE_IN_TEXT, text3, 3);
    check_lines(PIPELINE_IN_NDJSON, ndjson1, 1);
}

/* Items the owner refuses (pipeline_items_refuse): their error line, in place, not signed,
 * counted; the others signed; across blocks. And pipeline_rules_permit. */
static void test_owner_refused(void)
{
    struct fake f;
    struct usersig_key *key = new_key();
    const size_t n = 3000;
    size_t n_lines;
    char id[32];

    fake_init(&f, PIPELINE_IN_TEXT, PIPELINE_OUT_NDJSON, n);
    f.refuse_odd = true;
    for (size_t i = 0; i < n; i++) {
        snprintf(id, sizeof id, "u%zu", i);
        f.items[i] = strdup(id);
    }
    start(&f);
    CHECK(run_until(&f.done) && f.res.state == PIPELINE_COMPLETE, "refusals: complete");
    CHECK(f.res.count == n && f.res.signed_count == n / 2 && f.res.failed_count == n / 2 &&
              f.res.owner_refused == n / 2,
          "refusals: %" PRIu64 " signed, %" PRIu64 " failed, %" PRIu64 " refused by the owner",
          f.res.signed_count, f.res.failed_count, f.res.owner_refused);
    char **lines = split_lines(&f, &n_lines);
    for (size_t i = 0; i < n_lines && i < n; i++) {
        json_t *o = json_loads(lines[i], 0, NULL);
        json_t *e = json_object_get(o, "error");
        const char *tok = json_string_value(json_object_get(o, "usersig"));
        snprintf(id, sizeof id, "u%zu", i);
        bool good = i % 2 == 0 ? tok != NULL && e == NULL && token_ok(key, tok, id)
                               : tok == NULL &&
                                     strcmp(json_string_value(json_object_get(e, "code")),
                                            "import_failed") == 0 &&
                                     strcmp(json_string_value(json_object_get(e, "message")),
                                            "not \"imported\"\n") == 0;
        CHECK(good && strcmp(json_string_value(json_object_get(o, "identifier")), id) == 0,
              "refusals: line %zu: %s", i, lines[i]);
        json_decref(o);
    }
    free(lines);
    fake_free(&f);
    usersig_key_free(key);

    struct pipeline_rules r = {.n_admin_ids = 1, .n_prefixes = 2};
    snprintf(r.admin_ids[0], sizeof r.admin_ids[0], "administrator");
    snprintf(r.prefixes[0], sizeof r.prefixes[0], "guest_");
    snprintf(r.prefixes[1], sizeof r.prefixes[1], "admin");
    CHECK(pipeline_rules_permit(&r, "guest_1", 7) && !pipeline_rules_permit(&r, "staff_1", 7) &&
              !pipeline_rules_permit(&r, "guest", 5),
          "rules: the prefixes");
    CHECK(!pipeline_rules_permit(&r, "administrator", 13), "rules: an admin id not allowed");
    r.admin_allowed = true;
    CHECK(pipeline_rules_permit(&r, "administrator", 13), "rules: an admin id allowed");
    r.n_prefixes = 1;
    CHECK(!pipeline_rules_permit(&r, "administrator", 13),
          "rules: an admin id allowed, yet outside the prefixes");
    r.n_prefixes = 0;
    CHECK(pipeline_rules_permit(&r, "anyone", 6), "rules: no prefixes, anyone");
}

static void test_csv(void)
{
    static const char *const items[] = {"alice",   "with,comma", "#summary,fake",
                                        "q\"uote", "",           "zed"};
    static const char *const want[] = {"alice,",         "\"with,comma\",",  "\"#summary,fake\",",
                                       "\"q\"\"uote\",", ",,bad_identifier", "zed,"};
    struct fake f;
    size_t n = sizeof items / sizeof items[0], n_lines;
    fake_init(&f, PIPELINE_IN_TEXT, PIPELINE_OUT_CSV, n);
    for (size_t i = 0; i < n; i++)
        f.items[i] = strdup(items[i]);
    start(&f);
    CHECK(run_until(&f.done) && f.res.state == PIPELINE_COMPLETE, "csv batch finished");
    char **lines = split_lines(&f, &n_lines);
    CHECK(n_lines == n, "csv: %zu lines", n_lines);
    for (size_t i = 0; i < n_lines && i < n; i++) {
        CHECK(strncmp(lines[i], want[i], strlen(want[i])) == 0, "csv line %zu: %s (want %s...)", i,
              lines[i], want[i]);
        if (want[i][strlen(want[i]) - 1] == ',')
            CHECK(strlen(lines[i]) > strlen(want[i]) + 100 &&
                      strchr(lines[i] + strlen(want[i]), ',') == NULL,
                  "csv line %zu ends with a token: %s", i, lines[i]);
    }
    CHECK(f.res.signed_count == 5 && f.res.failed_count == 1, "csv counts");
    free(lines);
    fake_free(&f);
}

static void check_level(int level)
{
    struct fake f;
    struct usersig_key *key = new_key();
    size_t n_lines;
    fake_init(&f, PIPELINE_IN_TEXT, PIPELINE_OUT_CSV, 100);
    for (size_t i = 0; i < 100; i++) {
        char b[32];
        snprintf(b, sizeof b, "lvl%d-%zu", level, i);
        f.items[i] = strdup(b);
    }
    f.cfg.level = level;
    start(&f);
    CHECK(run_until(&f.done) && f.res.state == PIPELINE_COMPLETE, "level %d finished", level);
    char **lines = split_lines(&f, &n_lines);
    for (size_t i = 0; i < n_lines; i++) {
        char *comma = strchr(lines[i], ',');
        *comma = '\0';
        CHECK(token_ok(key, comma + 1, lines[i]), "level %d line %zu verifies", level, i);
    }
    free(lines);
    fake_free(&f);
    usersig_key_free(key);
}

/* Many jobs at once share the workers; each keeps its own order. */
static void test_concurrent_jobs(void)
{
    enum { JOBS = 5, N = 9000 };
    struct fake f[JOBS];
    bool all = false;
    for (int j = 0; j < JOBS; j++) {
        fake_init(&f[j], PIPELINE_IN_TEXT, j % 2 ? PIPELINE_OUT_CSV : PIPELINE_OUT_NDJSON, N);
        for (size_t i = 0; i < N; i++) {
            char b[32];
            snprintf(b, sizeof b, "j%d-%zu", j, i);
            f[j].items[i] = strdup(b);
        }
        f[j].drain_delay_us = j * 500;
        start(&f[j]);
    }
    struct event *keep = event_new(base, -1, EV_PERSIST, keepalive_cb, NULL);
    struct timeval tv = {0, 10000};
    time_t deadline = time(NULL) + DEADLINE_S;
    event_add(keep, &tv);
    while (!all && time(NULL) < deadline) {
        event_base_loop(base, EVLOOP_ONCE);
        all = true;
        for (int j = 0; j < JOBS; j++)
            all = all && f[j].done;
    }
    event_free(keep);
    CHECK(all, "all concurrent jobs finished");
    for (int j = 0; j < JOBS; j++) {
        size_t n_lines;
        char **lines = split_lines(&f[j], &n_lines);
        size_t wrong = 0;
        CHECK(n_lines == N && f[j].res.count == N, "job %d: %zu lines", j, n_lines);
        for (size_t i = 0; i < n_lines; i++) {
            char want[48];
            snprintf(want, sizeof want, j % 2 ? "j%d-%zu," : "{\"identifier\":\"j%d-%zu\"", j, i);
            wrong += strncmp(lines[i], want, strlen(want)) != 0;
        }
        CHECK(wrong == 0, "job %d: %zu lines out of order", j, wrong);
        free(lines);
        fake_free(&f[j]);
    }
}

/* One batch of n items, at most `allowed` workers signing at once once pipeline_reserve(pool,
 * reserve) is in force; returns the peak the pool saw. */
static int reserved_run(int reserve, size_t n)
{
    struct fake f;
    struct pipeline_stats st;

    pipeline_reserve(pool, reserve);
    fake_init(&f, PIPELINE_IN_TEXT, PIPELINE_OUT_NDJSON, n);
    for (size_t i = 0; i < n; i++) {
        char b[32];
        snprintf(b, sizeof b, "r%d-%zu", reserve, i);
        f.items[i] = strdup(b);
    }
    start(&f);
    CHECK(run_until(&f.done), "reserve %d: the batch finished", reserve);
    CHECK(f.res.state == PIPELINE_COMPLETE && f.res.count == n && f.res.signed_count == n,
          "reserve %d: %llu of %zu signed", reserve, (unsigned long long)f.res.signed_count, n);
    pipeline_get_stats(pool, &st);
    fake_free(&f);
    return st.signing_peak;
}

/* pipeline_reserve: while cores are reserved, at most workers - cores workers sign at once
 * (never fewer than one, so a batch still ends); lifting it gives them all back. */
static void test_reserve(void)
{
    struct pipeline_stats st;
    int workers = pipeline_workers(pool);
    size_t n = 64 * PIPELINE_BLOCK_ITEMS;

    int peak = reserved_run(workers - 1, n);
    pipeline_get_stats(pool, &st);
    CHECK(st.allowed == 1 && peak == 1, "reserve %d of %d: allowed %d, peak %d (want 1)",
          workers - 1, workers, st.allowed, peak);
    peak = reserved_run(workers + 10, n);
    pipeline_get_stats(pool, &st);
    CHECK(st.allowed == 1 && peak == 1, "more reserved than workers: allowed %d, peak %d",
          st.allowed, peak);
    peak = reserved_run(0, n);
    pipeline_get_stats(pool, &st);
    CHECK(st.allowed == workers && peak >= 2 && peak <= workers,
          "reserve lifted: allowed %d of %d, peak %d (want 2 or more)", st.allowed, workers, peak);
}

/* A reserve made while every worker signs takes effect inside their blocks: the workers over
 * the count pause (their blocks kept), and once it is lifted they go on with them; the batch
 * comes out whole and in order. */
struct mid {
    int phase, workers;
    bool paused_seen;
    struct pipeline_stats at_pause;
};

static void mid_tick(evutil_socket_t fd, short what, void *arg)
{
    struct mid *m = arg;
    struct pipeline_stats st;
    (void)fd;
    (void)what;
    pipeline_get_stats(pool, &st);
    if (m->phase == 0 && st.signing == m->workers) {
        pipeline_reserve(pool, m->workers - 1);
        m->phase = 1;
    } else if (m->phase == 1 && st.paused_peak >= 1 && st.signing <= st.allowed) {
        m->at_pause = st;
        m->paused_seen = true;
        pipeline_reserve(pool, 0);
        m->phase = 2;
    }
}

static void test_reserve_mid_block(void)
{
    struct fake f;
    struct mid m = {.workers = pipeline_workers(pool)};
    size_t n = 256 * PIPELINE_BLOCK_ITEMS;
    struct event *tick = event_new(base, -1, EV_PERSIST, mid_tick, &m);
    struct timeval tv = {0, 200};

    pipeline_reserve(pool, 0);
    fake_init(&f, PIPELINE_IN_TEXT, PIPELINE_OUT_NDJSON, n);
    for (size_t i = 0; i < n; i++) {
        char b[32];
        snprintf(b, sizeof b, "m-%zu", i);
        f.items[i] = strdup(b);
    }
    event_add(tick, &tv);
    start(&f);
    CHECK(run_until(&f.done), "mid-block reserve: the batch finished");
    event_free(tick);
    CHECK(m.paused_seen && m.at_pause.allowed == 1 && m.at_pause.signing <= 1,
          "mid-block reserve: %d of %d workers paused with their blocks in hand, %d signing "
          "(phase %d)",
          m.at_pause.paused_peak, m.workers, m.at_pause.signing, m.phase);
    CHECK(f.res.state == PIPELINE_COMPLETE && f.res.count == n && f.res.signed_count == n,
          "mid-block reserve: %llu of %zu signed", (unsigned long long)f.res.signed_count, n);
    size_t n_lines, wrong = 0;
    char **lines = split_lines(&f, &n_lines);
    for (size_t i = 0; i < n_lines; i++) {
        char want[48];
        snprintf(want, sizeof want, "{\"identifier\":\"m-%zu\"", i);
        wrong += strncmp(lines[i], want, strlen(want)) != 0;
    }
    CHECK(n_lines == n && wrong == 0, "mid-block reserve: %zu lines, %zu out of order", n_lines,
          wrong);
    free(lines);
    struct pipeline_stats st;
    pipeline_get_stats(pool, &st);
    CHECK(st.paused == 0 && st.allowed == m.workers, "mid-block reserve: none left paused");
    fake_free(&f);
}

int main(void)
{
    if (fixture_begin() != 0)
        return 1;

    test_empty();
    test_order_many_blocks();
    test_ndjson_items();
    test_json_values();
    test_text_edge_items();
    test_only_empty_items();
    test_owner_refused();
    test_csv();
    check_level(0);
    check_level(1);
    check_level(9);
    test_concurrent_jobs();
    test_reserve();
    test_reserve_mid_block();
    return fixture_end("pipeline");
}
