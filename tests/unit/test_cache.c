/*
 * The token and app cache (server/core/cache.c) on its own: nothing is published while the
 * listener is off or after an eviction raced the read (the epoch), notifications evict what they
 * name, entries live while referenced, the per-token bound on 70009 searches, and who is told
 * of evictions (cache_on_evict).
 */
#include "cache.h"
#include "testlib.h"

#include <string.h>

struct told {
    int calls, all;
    uint32_t last;
};

static void on_evict(void *arg, uint32_t sdkappid, bool all)
{
    struct told *t = arg;
    t->calls++;
    t->all += all;
    t->last = sdkappid;
}

static struct cache_app *app(uint32_t sdkappid, int64_t gen)
{
    struct cache_app *a = cache_app_alloc(1);
    if (a != NULL) {
        a->app.sdkappid = sdkappid;
        a->generation = gen;
    }
    return a;
}

static struct cache_token token(int64_t id)
{
    struct cache_token t;
    memset(&t, 0, sizeof t);
    t.id = id;
    t.principal.token_id = id;
    return t;
}

int main(void)
{
    struct cache *c = cache_new();
    struct cache_token t = token(7), got;
    struct cache_stats st;

    CHECK(c != NULL, "cache_new");
    if (c == NULL)
        return test_done("cache");

    /* Off (no listener yet): a put is not published, but the caller keeps a usable entry. */
    const struct cache_app *r = cache_app_put(c, app(1, 1), cache_epoch(c));
    CHECK(r != NULL && r->app.sdkappid == 1, "an unpublished entry is still the caller's");
    cache_app_release(r);
    CHECK(cache_app_get(c, 1) == NULL, "nothing cached while not listening");
    cache_token_put(c, &t, 0, cache_epoch(c));
    CHECK(!cache_token_get(c, 7, &got), "no token cached while not listening");

    cache_set_listening(c, true);
    cache_app_release(cache_app_put(c, app(1, 5), cache_epoch(c)));
    r = cache_app_get(c, 1);
    CHECK(r != NULL && r->generation == 5, "published once listening");
    cache_app_release(r);

    /* A read that raced an eviction (of anything) is not published. */
    uint64_t e = cache_epoch(c);
    cache_forget_app(c, 99);
    cache_app_release(cache_app_put(c, app(2, 1), e));
    CHECK(cache_app_get(c, 2) == NULL, "a put after an eviction since its epoch is refused");
    cache_token_put(c, &t, 0, e);
    CHECK(!cache_token_get(c, 7, &got), "the same for a token");
    cache_token_put(c, &t, 0, cache_epoch(c));
    CHECK(cache_token_get(c, 7, &got) && got.principal.token_id == 7, "a token put at the epoch");

    /* An entry held by a reader outlives its eviction; the table forgets it at once. */
    r = cache_app_get(c, 1);
    cache_notify(c, "app:1");
    CHECK(cache_app_get(c, 1) == NULL, "app:1 evicts app 1");
    CHECK(r != NULL && r->generation == 5, "the reader's reference stays good");
    cache_app_release(r);

    cache_notify(c, "token:7");
    CHECK(!cache_token_get(c, 7, &got), "token:7 evicts token 7");

    /* Listed while the table holds it: a long-lived holder (a thread's signer) drops it after. */
    const struct cache_app *held = cache_app_put(c, app(4, 1), cache_epoch(c));
    CHECK(held != NULL && cache_app_listed(held), "a published entry is listed");
    cache_notify(c, "app:4");
    CHECK(!cache_app_listed(held), "evicted: no longer listed");
    cache_app_release(held);
    held = cache_app_put(c, app(4, 2), cache_epoch(c));
    const struct cache_app *newer = cache_app_put(c, app(4, 3), cache_epoch(c));
    CHECK(!cache_app_listed(held) && cache_app_listed(newer), "replaced: the old one is not");
    cache_app_release(held);
    e = cache_epoch(c);
    cache_forget_app(c, 98);
    held = cache_app_put(c, app(5, 1), e);
    CHECK(!cache_app_listed(held), "never published: not listed");
    cache_app_release(held);
    cache_notify(c, "zzz");
    CHECK(!cache_app_listed(newer), "flushed: not listed");
    cache_app_release(newer);

    /* Anything else flushes everything (a payload it cannot read must not leave stale data). */
    cache_token_put(c, &t, 0, cache_epoch(c));
    cache_app_release(cache_app_put(c, app(3, 1), cache_epoch(c)));
    static const char *const odd[] = {"app:", "app:x", "app:99999999999", "token:-1", "", "zzz"};
    for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
        cache_token_put(c, &t, 0, cache_epoch(c));
        cache_notify(c, odd[i]);
        CHECK(!cache_token_get(c, 7, &got), "'%s' flushes", odd[i]);
    }
    CHECK(cache_app_get(c, 3) == NULL, "the flush took the apps too");

    /* The listener gone: flushed and off. */
    cache_token_put(c, &t, 0, cache_epoch(c));
    cache_set_listening(c, false);
    CHECK(!cache_token_get(c, 7, &got), "listener lost: flushed");
    cache_token_put(c, &t, 0, cache_epoch(c));
    CHECK(!cache_token_get(c, 7, &got), "and off");
    cache_set_listening(c, true);

    /* Use recorded at most once a minute per token. */
    cache_token_put(c, &t, 1000000, cache_epoch(c));
    CHECK(!cache_token_due(c, 7, 1000000 + 59 * 1000000LL), "not due within a minute");
    CHECK(cache_token_due(c, 7, 1000000 + 60 * 1000000LL), "due after a minute");
    CHECK(!cache_token_due(c, 7, 1000000 + 61 * 1000000LL), "once");

    /* At most N searches a second per token. */
    int allowed = 0;
    for (int i = 0; i < 10; i++)
        allowed += cache_scan_allowed(c, 7, 5000000, 3);
    CHECK(allowed == 3, "3 searches in one second (%d)", allowed);
    CHECK(cache_scan_allowed(c, 7, 6000000, 3), "the next second starts again");

    /* Hundreds of apps: the table grows and finds each. */
    for (uint32_t i = 100; i < 1100; i++)
        cache_app_release(cache_app_put(c, app(i, i), cache_epoch(c)));
    int found = 0;
    for (uint32_t i = 100; i < 1100; i++) {
        r = cache_app_get(c, i);
        found += r != NULL && r->generation == (int64_t)i;
        cache_app_release(r);
    }
    CHECK(found == 1000, "1000 apps cached and found (%d)", found);
    cache_get_stats(c, &st);
    CHECK(st.apps == 1000 && st.listening, "stats: %zu apps", st.apps);

    /* Evictions told: an app's by its id, a flush as all; a token's, or a capacity's, not. */
    struct told told = {0};
    cache_on_evict(c, on_evict, &told);
    cache_notify(c, "app:123");
    CHECK(told.calls == 1 && told.last == 123 && told.all == 0, "app:123 told (%d, %u)", told.calls,
          told.last);
    cache_forget_app(c, 77);
    CHECK(told.calls == 2 && told.last == 77, "cache_forget_app told");
    cache_notify(c, "token:7");
    CHECK(told.calls == 2, "a token's eviction is not an app's");
    cache_notify(c, "zzz");
    CHECK(told.calls == 3 && told.all == 1, "a flush told as all");
    cache_set_listening(c, false);
    cache_set_listening(c, true);
    CHECK(told.calls == 5 && told.all == 3, "the listener's flushes told as all");
    cache_on_evict(c, NULL, NULL);
    cache_forget_app(c, 78);
    cache_forget_all(c);
    CHECK(told.calls == 5, "no one told once unset (%d)", told.calls);

    cache_free(c);
    return test_done("cache");
}
