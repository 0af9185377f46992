/*
 * The token buckets of rate limits (server/core/ratelimit.c), on a clock the test drives: the
 * burst, the refill, the retry time, all-or-none across a token's and an app's bucket, a changed
 * rate, fractional rates, the table's bound, and threads taking together.
 */
#include "ratelimit.h"
#include "testlib.h"

#include <pthread.h>
#include <stdlib.h>

#define SEC INT64_C(1000000000)

static struct ratelimit *shared;
static long taken_by_threads;
static pthread_mutex_t taken_mu = PTHREAD_MUTEX_INITIALIZER;

static void *taker(void *arg)
{
    (void)arg;
    struct ratelimit_key k = {RATELIMIT_APP, 7, 100};
    int64_t retry;
    long mine = 0;
    for (int i = 0; i < 1000; i++)
        if (ratelimit_take(shared, &k, 1, 5 * SEC, &retry) < 0)
            mine++;
    pthread_mutex_lock(&taken_mu);
    taken_by_threads += mine;
    pthread_mutex_unlock(&taken_mu);
    return NULL;
}

int main(void)
{
    struct ratelimit *rl = ratelimit_new();
    int64_t retry = -1, t = 10 * SEC;
    CHECK(rl != NULL, "ratelimit_new");

    /* A burst of one second's worth, then refusals with the time until the next token. */
    struct ratelimit_key tok = {RATELIMIT_TOKEN, 1, 5};
    int ok = 0;
    for (int i = 0; i < 8; i++)
        ok += ratelimit_take(rl, &tok, 1, t, &retry) < 0;
    CHECK(ok == 5, "a rate of 5 lets a burst of 5 pass (got %d)", ok);
    CHECK(ratelimit_take(rl, &tok, 1, t, &retry) == 0 && retry >= 199 && retry <= 201,
          "the retry after an empty bucket of rate 5 is 200 ms (got %lld)", (long long)retry);
    /* 200 ms later one more passes, and only one. */
    CHECK(ratelimit_take(rl, &tok, 1, t + SEC / 5, &retry) < 0, "refilled after 200 ms");
    CHECK(ratelimit_take(rl, &tok, 1, t + SEC / 5, &retry) == 0, "only one refilled");
    /* A long pause refills to the burst, not beyond. */
    ok = 0;
    for (int i = 0; i < 10; i++)
        ok += ratelimit_take(rl, &tok, 1, t + 100 * SEC, &retry) < 0;
    CHECK(ok == 5, "an idle bucket holds at most its burst (got %d)", ok);

    /* All or none: the app's bucket empty leaves the token's untouched. */
    struct ratelimit_key both[2] = {{RATELIMIT_TOKEN, 2, 3}, {RATELIMIT_APP, 2, 1}};
    CHECK(ratelimit_take(rl, both, 2, t, &retry) < 0, "first take of both");
    CHECK(ratelimit_take(rl, both, 2, t, &retry) == 1 && retry >= 999 && retry <= 1001,
          "the app's bucket (index 1) refuses, retry 1 s (got %lld)", (long long)retry);
    CHECK(ratelimit_take(rl, &both[0], 1, t, &retry) < 0 &&
              ratelimit_take(rl, &both[0], 1, t, &retry) < 0 &&
              ratelimit_take(rl, &both[0], 1, t, &retry) == 0,
          "the refused take left the token's 2 remaining tokens");
    /* Same id, another kind: another bucket. */
    struct ratelimit_key app2 = {RATELIMIT_APP, 1, 1};
    CHECK(ratelimit_take(rl, &app2, 1, t, &retry) < 0, "app 1 is not token 1");

    /* No limit: never refused. */
    struct ratelimit_key none = {RATELIMIT_TOKEN, 3, 0};
    for (int i = 0; i < 100; i++)
        CHECK(ratelimit_take(rl, &none, 1, t, &retry) < 0, "rate 0 is no limit");

    /* A lowered rate clamps what is left; a fractional rate (divided among processes) holds 1. */
    struct ratelimit_key ch = {RATELIMIT_APP, 4, 100};
    CHECK(ratelimit_take(rl, &ch, 1, t, &retry) < 0, "rate 100");
    ch.rate = 2;
    ok = 0;
    for (int i = 0; i < 10; i++)
        ok += ratelimit_take(rl, &ch, 1, t, &retry) < 0;
    CHECK(ok == 2, "lowered to 2: two left (got %d)", ok);
    struct ratelimit_key frac = {RATELIMIT_TOKEN, 5, 0.5};
    CHECK(ratelimit_take(rl, &frac, 1, t, &retry) < 0, "0.5/s: one at first");
    CHECK(ratelimit_take(rl, &frac, 1, t + SEC, &retry) == 0 && retry >= 999 && retry <= 1001,
          "0.5/s: the next after 2 s (retry %lld ms after 1 s)", (long long)retry);
    CHECK(ratelimit_take(rl, &frac, 1, t + 2 * SEC, &retry) < 0, "0.5/s: one after 2 s");

    /* The table is bounded: far more keys than slots all work (each new one starts full). */
    ok = 0;
    for (int64_t id = 1000; id < 1000 + 4 * RATELIMIT_SLOTS; id++) {
        struct ratelimit_key k = {RATELIMIT_TOKEN, id, 1};
        ok += ratelimit_take(rl, &k, 1, t + id, &retry) < 0;
    }
    CHECK(ok == 4 * RATELIMIT_SLOTS, "every new key's first take passes (%d)", ok);
    ratelimit_free(rl);

    /* Threads together take exactly the burst at one instant. */
    shared = ratelimit_new();
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        CHECK(pthread_create(&th[i], NULL, taker, NULL) == 0, "thread");
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    CHECK(taken_by_threads == 100, "4 threads took %ld of a burst of 100", taken_by_threads);
    ratelimit_free(shared);

    CHECK(ratelimit_take(NULL, &tok, 1, t, &retry) < 0, "no table: no limit");
    return test_done("ratelimit");
}
