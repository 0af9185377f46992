/*
 * The signing pipeline's jobs that end other than complete, on real worker threads and a real
 * event loop with the fake batch of pipeline_fixture.c: a cancel mid-way (blocks still with the
 * workers), a reader that stops reading, an emit that fails, configurations refused, and freeing
 * the pool under a running job; each frees everything (run it under ASan and TSan).
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

struct cancel_ctx {
    struct fake *f;
    size_t after_emits;
    bool cancelled;
    struct pipeline_result res;
    uint64_t queued_at_cancel;
};

static void cancel_cb(evutil_socket_t fd, short what, void *arg)
{
    struct cancel_ctx *c = arg;
    struct pipeline_stats st;
    (void)fd;
    (void)what;
    if (c->cancelled || c->f->emits < c->after_emits)
        return;
    pipeline_get_stats(pool, &st);
    c->queued_at_cancel = st.blocks_queued;
    pipeline_job_cancel(c->f->job, &c->res);
    c->f->job = NULL;
    c->cancelled = true;
}

static void test_cancel_midway(void)
{
    struct fake f;
    struct cancel_ctx c = {.f = &f, .after_emits = 3};
    fake_init(&f, PIPELINE_IN_TEXT, PIPELINE_OUT_NDJSON, 200000);
    for (size_t i = 0; i < f.n_items; i++) {
        char b[32];
        snprintf(b, sizeof b, "cancel-%zu", i);
        f.items[i] = strdup(b);
    }
    f.cfg.max_in_flight = 8;
    start(&f);
    struct event *ev = event_new(base, -1, EV_PERSIST, cancel_cb, &c);
    struct timeval tv = {0, 1000};
    event_add(ev, &tv);
    CHECK(run_until(&c.cancelled), "cancelled after %zu emits", c.after_emits);
    event_free(ev);
    CHECK(!f.done, "no done after a cancel");
    CHECK(c.res.state == PIPELINE_CANCELLED, "cancel result state %s",
          pipeline_state_name(c.res.state));
    char sha[65];
    sha256_hex(f.out, f.out_len, sha);
    CHECK(c.res.count == f.blocks_emitted * PIPELINE_BLOCK_ITEMS && c.res.count > 0 &&
              c.res.count < f.n_items && strcmp(sha, c.res.sha256) == 0,
          "the cancel result covers exactly what was emitted: %llu items, %zu blocks",
          (unsigned long long)c.res.count, f.blocks_emitted);
    CHECK(pool_settles(), "the cancelled job and its blocks are freed once the workers return");
    CHECK(!f.done, "still no done");
    fake_free(&f);
}

/* A reader that stops reading: nothing more is cut, then the owner cancels. */
static void test_stalled_reader(void)
{
    struct fake f;
    struct pipeline_stats st;
    fake_init(&f, PIPELINE_IN_TEXT, PIPELINE_OUT_NDJSON, 100000);
    for (size_t i = 0; i < f.n_items; i++) {
        char b[32];
        snprintf(b, sizeof b, "stall-%zu", i);
        f.items[i] = strdup(b);
    }
    f.drain_delay_us = -1;
    f.cfg.max_in_flight = 4;
    start(&f);
    bool emitted = false;
    struct event *keep = event_new(base, -1, EV_PERSIST, keepalive_cb, NULL);
    struct timeval tv = {0, 10000};
    event_add(keep, &tv);
    /* Long enough for every worker to finish whatever it was given. */
    for (time_t end = time(NULL) + 2; time(NULL) < end;) {
        event_base_loop(base, EVLOOP_ONCE);
        emitted = emitted || f.emits > 0;
    }
    event_free(keep);
    pipeline_get_stats(pool, &st);
    CHECK(emitted && f.emits <= 4 && f.blocks_cut <= 4,
          "one round of emits, then nothing while undrained: %zu emits", f.emits);
    CHECK(st.blocks <= 4 + 2,
          "a stalled reader holds at most max_in_flight blocks: cut %zu, allocated %llu",
          f.blocks_cut, (unsigned long long)st.blocks);
    pipeline_job_cancel(f.job, NULL);
    f.job = NULL;
    CHECK(pool_settles(), "the stalled job is freed after its cancel");
    fake_free(&f);
}

static void test_emit_failure(void)
{
    struct fake f;
    fake_init(&f, PIPELINE_IN_TEXT, PIPELINE_OUT_NDJSON, 30000);
    for (size_t i = 0; i < f.n_items; i++)
        f.items[i] = strdup("someone");
    f.fail_emit_at = 2;
    start(&f);
    CHECK(run_until(&f.done), "failed job reports done");
    CHECK(f.res.state == PIPELINE_FAILED && f.res.why != NULL &&
              f.res.count == PIPELINE_BLOCK_ITEMS,
          "an emit that fails fails the job after what went out: %s %llu",
          pipeline_state_name(f.res.state), (unsigned long long)f.res.count);
    CHECK(pool_settles(), "the failed job is freed");
    fake_free(&f);
}

static void test_bad_config(void)
{
    struct pipeline_job *j = NULL;
    struct fake f;
    fake_init(&f, PIPELINE_IN_TEXT, PIPELINE_OUT_NDJSON, 0);
    f.cfg.key = new_key();
    f.cfg.level = 10;
    CHECK(pipeline_job_new(pool, &f.cfg, &j) == PIPELINE_BAD_CONFIG && j == NULL,
          "level 10 refused (the key is freed)");
    f.cfg.level = 6;
    f.cfg.key = new_key();
    f.cfg.expire = MAX_EXPIRE + 1;
    CHECK(pipeline_job_new(pool, &f.cfg, &j) == PIPELINE_BAD_CONFIG, "expire over max refused");
    f.cfg.expire = EXPIRE;
    f.cfg.key = new_key();
    CHECK(pipeline_job_new(pool, &f.cfg, &j) == PIPELINE_OK, "a job made");
    pipeline_job_cancel(j, NULL); /* never started */
    CHECK(pool_settles(), "a job cancelled before its start is freed at once");
    fake_free(&f);
}

/* pipeline_free under a running job: its done comes with CANCELLED, the workers stop, and
 * everything is freed (ASan would say otherwise). */
static void test_free_under_job(void)
{
    char err[256];
    struct pipeline *saved = pool;
    struct fake f;
    pool = pipeline_new(base, 3, err, sizeof err);
    CHECK(pool != NULL, "a second pool: %s", err);
    if (pool == NULL) {
        pool = saved;
        return;
    }
    fake_init(&f, PIPELINE_IN_NDJSON, PIPELINE_OUT_NDJSON, 100000);
    for (size_t i = 0; i < f.n_items; i++) {
        char b[64];
        snprintf(b, sizeof b, "{\"identifier\":\"free-%zu\"}", i);
        f.items[i] = strdup(b);
    }
    start(&f);
    struct event *keep = event_new(base, -1, EV_PERSIST, keepalive_cb, NULL);
    struct timeval tv = {0, 10000};
    event_add(keep, &tv);
    while (f.emits < 2)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(keep);
    pipeline_free(pool);
    CHECK(f.done && f.res.state == PIPELINE_CANCELLED, "pipeline_free ends a running job");
    pool = saved;
    fake_free(&f);
}

int main(void)
{
    char err[256];
    if (fixture_begin() != 0)
        return 1;
    CHECK(pipeline_new(base, 0, err, sizeof err) == NULL && strstr(err, "workers") != NULL,
          "0 workers refused");

    test_cancel_midway();
    test_stalled_reader();
    test_emit_failure();
    test_bad_config();
    test_free_under_job();
    return fixture_end("pipeline_cancel");
}
