/*
 * The store against a real PostgreSQL: apps, key versions (numbering, one active per app, no
 * fingerprint reused across apps, destroyed ones included), transactions that fail leave
 * nothing, the keyring row, API tokens, the app list with each app's active version, and a
 * reconnect after the server drops the connection.
 */
#include "dbtest.h"

#include <inttypes.h>

static const uint32_t APP_A = 1400000001, APP_B = 1400000002, APP_C = 1400000003;

static void fingerprint(uint8_t out[STORE_FINGERPRINT_LEN], int n)
{
    for (int i = 0; i < STORE_FINGERPRINT_LEN; i++)
        out[i] = (uint8_t)(n * 31 + i);
}

/* A key version with a made-up sealed blob (tag n). Caller store_key_clear()s it. */
static struct store_key new_key(uint32_t app, uint32_t version, enum store_key_state state, int fp)
{
    struct store_key k = {
        .sdkappid = app, .version = version, .kind = STORE_KEY_HMAC, .state = state};
    fingerprint(k.fingerprint, fp);
    k.sealed_len = 40 + (size_t)fp;
    k.sealed = malloc(k.sealed_len);
    if (k.sealed == NULL)
        abort();
    memset(k.sealed, 0xa0 + fp, k.sealed_len);
    return k;
}

static enum store_rc insert_key(struct store *st, uint32_t app, uint32_t version,
                                enum store_key_state state, int fp)
{
    struct store_key k = new_key(app, version, state, fp);
    enum store_rc rc = store_key_insert(st, &k);
    store_key_clear(&k);
    return rc;
}

static void test_apps(struct store *st)
{
    struct store_app a = {.sdkappid = APP_A,
                          .default_expire = 86400,
                          .max_expire = 604800,
                          .identifier_policy = STORE_ID_STRICT};
    struct store_app b = {.sdkappid = APP_B, .default_expire = 15552000, .max_expire = 315360000};
    struct store_app got;
    struct store_app_listed *list = NULL;
    size_t n = 0;

    strcpy(a.name, "alpha");
    /* 128 two-byte characters: the longest name, in bytes twice its length */
    for (int i = 0; i < STORE_APP_NAME_MAX; i++)
        memcpy(b.name + 2 * i, "\xc3\xa9", 2);
    b.name[2 * STORE_APP_NAME_MAX] = '\0';

    CHECK(store_app_insert(st, &a) == STORE_OK, "insert app A");
    CHECK(a.created_at_us > 1600000000000000LL && a.updated_at_us == a.created_at_us,
          "created_at written back (%" PRId64 ")", a.created_at_us);
    CHECK(store_app_insert(st, &b) == STORE_OK, "insert app B with a 128-character name");
    CHECK(store_app_insert(st, &a) == STORE_CONFLICT, "duplicate app");
    CHECK(strcmp(store_conflict(st), "sdkappid") == 0, "conflict names sdkappid: %s",
          store_conflict(st));

    CHECK(store_app_get(st, APP_A, STORE_LOCK_NONE, &got) == STORE_OK, "get A");
    CHECK(got.sdkappid == APP_A && strcmp(got.name, "alpha") == 0 && got.default_expire == 86400 &&
              got.max_expire == 604800 && got.identifier_policy == STORE_ID_STRICT &&
              got.created_at_us == a.created_at_us,
          "A as inserted");
    CHECK(store_app_get(st, APP_B, STORE_LOCK_SHARE, &got) == STORE_OK &&
              strcmp(got.name, b.name) == 0 && got.identifier_policy == STORE_ID_PRINTABLE,
          "B's long name round trips");
    CHECK(store_app_get(st, 42, STORE_LOCK_UPDATE, &got) == STORE_NOT_FOUND, "unknown app");

    /* partial update: the name only */
    struct store_app change = {.sdkappid = APP_A};
    strcpy(change.name, "alpha two");
    CHECK(store_app_update(st, &change, STORE_APP_SET_NAME, &got) == STORE_OK, "rename A");
    CHECK(strcmp(got.name, "alpha two") == 0 && got.default_expire == 86400 &&
              got.max_expire == 604800 && got.identifier_policy == STORE_ID_STRICT,
          "only the name changed");
    change.default_expire = 3600;
    change.identifier_policy = STORE_ID_PRINTABLE;
    CHECK(store_app_update(st, &change, STORE_APP_SET_DEFAULT_EXPIRE | STORE_APP_SET_ID_POLICY,
                           &got) == STORE_OK,
          "update expire and policy");
    CHECK(got.default_expire == 3600 && got.identifier_policy == STORE_ID_PRINTABLE &&
              strcmp(got.name, "alpha two") == 0 && got.updated_at_us >= got.created_at_us,
          "expire and policy changed");
    change.default_expire = 700000; /* above max_expire 604800 */
    CHECK(store_app_update(st, &change, STORE_APP_SET_DEFAULT_EXPIRE, NULL) == STORE_ERROR,
          "default above max refused by the CHECK");
    CHECK(store_app_get(st, APP_A, STORE_LOCK_NONE, &got) == STORE_OK && got.default_expire == 3600,
          "the store still works after a refused statement");
    change.sdkappid = 42;
    CHECK(store_app_update(st, &change, STORE_APP_SET_NAME, NULL) == STORE_NOT_FOUND,
          "update of an unknown app");

    /* list: all, scoped, paged */
    CHECK(store_app_list(st, NULL, 0, 0, 0, &list, &n) == STORE_OK && n == 2 &&
              list[0].app.sdkappid == APP_A && list[1].app.sdkappid == APP_B,
          "list all in order");
    free(list);
    uint32_t scope[] = {APP_B, 99};
    CHECK(store_app_list(st, scope, 2, 0, 0, &list, &n) == STORE_OK && n == 1 &&
              list[0].app.sdkappid == APP_B,
          "list in scope");
    free(list);
    CHECK(store_app_list(st, scope, 0, 0, 0, &list, &n) == STORE_OK && n == 0 && list == NULL,
          "an empty scope sees nothing");
    CHECK(store_app_list(st, NULL, 0, APP_A, 1, &list, &n) == STORE_OK && n == 1 &&
              list[0].app.sdkappid == APP_B,
          "list after A, limit 1");
    free(list);

    CHECK(store_id_policy_parse("strict") == STORE_ID_STRICT &&
              store_id_policy_parse("nope") == -1 &&
              strcmp(store_id_policy_name(STORE_ID_PRINTABLE), "printable") == 0,
          "policy names");
}

/* The app list with each app's active version, from one statement: apps with an active key,
 * with none, with only pending, retired, disabled or destroyed versions, and one rotated; all,
 * scoped and paged, each entry checked against store_app_get and store_key_get_active. */
#define LIST_BASE 1500000000u
#define LIST_APPS 7

/* What store_app_list must say about app LIST_BASE + 1 + i (0: no active version). */
static uint32_t list_want[LIST_APPS];

static bool app_same(const struct store_app *a, const struct store_app *b)
{
    return a->sdkappid == b->sdkappid && strcmp(a->name, b->name) == 0 &&
           a->default_expire == b->default_expire && a->max_expire == b->max_expire &&
           a->identifier_policy == b->identifier_policy && a->created_at_us == b->created_at_us &&
           a->updated_at_us == b->updated_at_us;
}

static void check_listed(struct store *st, const struct store_app_listed *l, const char *what)
{
    struct store_app a;
    struct store_key k = {0};
    uint32_t i = l->app.sdkappid - LIST_BASE - 1;
    CHECK(i < LIST_APPS, "%s: app %" PRIu32 " is not one of the list's", what, l->app.sdkappid);
    if (i >= LIST_APPS)
        return;
    CHECK(l->active_version == list_want[i],
          "%s: app %" PRIu32 " active version %" PRIu32 ", want %" PRIu32, what, l->app.sdkappid,
          l->active_version, list_want[i]);
    CHECK(store_app_get(st, l->app.sdkappid, STORE_LOCK_NONE, &a) == STORE_OK &&
              app_same(&a, &l->app),
          "%s: app %" PRIu32 " as store_app_get reads it", what, l->app.sdkappid);
    enum store_rc rc = store_key_get_active(st, l->app.sdkappid, STORE_LOCK_NONE, &k);
    CHECK(rc == (l->active_version ? STORE_OK : STORE_NOT_FOUND) &&
              (rc != STORE_OK || k.version == l->active_version),
          "%s: app %" PRIu32 " agrees with store_key_get_active", what, l->app.sdkappid);
    store_key_clear(&k);
}

/* The rotation of the keys handler: from to retired, to to active, in one transaction. */
static bool rotate(struct store *st, uint32_t app, uint32_t from, uint32_t to)
{
    bool ok = store_begin(st) == STORE_OK &&
              store_key_set_state(st, app, from, STORE_KEY_RETIRED) == STORE_OK &&
              store_key_set_state(st, app, to, STORE_KEY_ACTIVE) == STORE_OK &&
              store_commit(st) == STORE_OK;
    store_rollback(st);
    return ok;
}

static void test_app_list(struct store *st)
{
    struct store_app_listed *list = NULL, *page = NULL;
    size_t n = 0, np = 0;
    char what[96];

    for (uint32_t i = 0; i < LIST_APPS; i++) {
        struct store_app a = {.sdkappid = LIST_BASE + 1 + i,
                              .default_expire = 3600 + i,
                              .max_expire = 86400,
                              .identifier_policy = i % 2 ? STORE_ID_STRICT : STORE_ID_PRINTABLE};
        snprintf(a.name, sizeof a.name, "list app %" PRIu32 " \xc3\xa9", i);
        CHECK(store_app_insert(st, &a) == STORE_OK, "insert list app %" PRIu32, i);
    }
    const uint32_t A1 = LIST_BASE + 1, A3 = LIST_BASE + 3, A4 = LIST_BASE + 4, A5 = LIST_BASE + 5,
                   A6 = LIST_BASE + 6, A7 = LIST_BASE + 7;
    /* A1: v1 active. A2: no key. A3: v1 pending only. A4: v1 retired, v2 active (a rotation).
     * A5: v1 disabled, v2 destroyed. A6: v1 active. A7: v1, v2 retired, v3 active. */
    CHECK(insert_key(st, A1, 1, STORE_KEY_ACTIVE, 101) == STORE_OK, "A1 v1");
    CHECK(insert_key(st, A3, 1, STORE_KEY_PENDING, 102) == STORE_OK, "A3 v1");
    CHECK(insert_key(st, A4, 1, STORE_KEY_ACTIVE, 103) == STORE_OK &&
              insert_key(st, A4, 2, STORE_KEY_PENDING, 104) == STORE_OK && rotate(st, A4, 1, 2),
          "A4 rotated to v2");
    CHECK(insert_key(st, A5, 1, STORE_KEY_PENDING, 105) == STORE_OK &&
              insert_key(st, A5, 2, STORE_KEY_PENDING, 106) == STORE_OK &&
              store_key_set_state(st, A5, 1, STORE_KEY_DISABLED) == STORE_OK &&
              store_key_destroy(st, A5, 2, "gone") == STORE_OK,
          "A5 v1 disabled, v2 destroyed");
    CHECK(insert_key(st, A6, 1, STORE_KEY_ACTIVE, 107) == STORE_OK, "A6 v1");
    CHECK(insert_key(st, A7, 1, STORE_KEY_ACTIVE, 108) == STORE_OK &&
              insert_key(st, A7, 2, STORE_KEY_PENDING, 109) == STORE_OK && rotate(st, A7, 1, 2) &&
              insert_key(st, A7, 3, STORE_KEY_PENDING, 110) == STORE_OK && rotate(st, A7, 2, 3),
          "A7 rotated twice to v3");
    const uint32_t want[LIST_APPS] = {1, 0, 0, 2, 0, 1, 3};
    memcpy(list_want, want, sizeof want);

    /* Unscoped: every app after LIST_BASE (the other tests' apps are below it). */
    CHECK(store_app_list(st, NULL, 0, LIST_BASE, 0, &list, &n) == STORE_OK && n == LIST_APPS,
          "list all: %zu apps, want %d", n, LIST_APPS);
    for (size_t i = 0; i < n; i++) {
        CHECK(list[i].app.sdkappid == LIST_BASE + 1 + i, "list all: entry %zu in order", i);
        check_listed(st, &list[i], "list all");
    }

    /* Paged two at a time, after the last of each page, as the API pages: the same entries. */
    uint32_t after = LIST_BASE;
    size_t seen = 0;
    for (int pages = 0; pages < LIST_APPS + 1; pages++) {
        CHECK(store_app_list(st, NULL, 0, after, 2, &page, &np) == STORE_OK && np <= 2,
              "page after %" PRIu32, after);
        for (size_t i = 0; i < np && seen + i < n; i++)
            CHECK(app_same(&page[i].app, &list[seen + i].app) &&
                      page[i].active_version == list[seen + i].active_version,
                  "page after %" PRIu32 ": entry %zu as in the full list", after, i);
        seen += np;
        if (np > 0)
            after = page[np - 1].app.sdkappid;
        free(page);
        page = NULL;
        if (np < 2)
            break;
    }
    CHECK(seen == n, "paging saw %zu apps, want %zu", seen, n);
    free(list);
    list = NULL;

    /* Scoped: an app with no key, one rotated, one pending only, an unknown sdkappid, and one
     * below LIST_BASE; out of order, as a token's scope may be. */
    const uint32_t scope[] = {A7, LIST_BASE + 2, 99, A4, A3, APP_A};
    CHECK(store_app_list(st, scope, 6, LIST_BASE, 0, &list, &n) == STORE_OK && n == 4,
          "scoped list: %zu apps, want 4", n);
    const uint32_t scoped_order[] = {LIST_BASE + 2, A3, A4, A7};
    for (size_t i = 0; i < n && i < 4; i++) {
        snprintf(what, sizeof what, "scoped entry %zu", i);
        CHECK(list[i].app.sdkappid == scoped_order[i], "%s is %" PRIu32 ", want %" PRIu32, what,
              list[i].app.sdkappid, scoped_order[i]);
        check_listed(st, &list[i], what);
    }
    free(list);
    list = NULL;
    /* Scoped and paged: after A3, one at a time. */
    CHECK(store_app_list(st, scope, 6, A3, 1, &list, &n) == STORE_OK && n == 1 &&
              list[0].app.sdkappid == A4 && list[0].active_version == 2,
          "scoped after A3, limit 1: A4 with v2");
    free(list);
    list = NULL;
    CHECK(store_app_list(st, scope, 6, A7, 10, &list, &n) == STORE_OK && n == 0 && list == NULL,
          "scoped after the last: nothing");

    /* A rotation shows at once: A1 v1 -> v2. */
    CHECK(insert_key(st, A1, 2, STORE_KEY_PENDING, 111) == STORE_OK && rotate(st, A1, 1, 2),
          "rotate A1");
    list_want[0] = 2;
    CHECK(store_app_list(st, NULL, 0, LIST_BASE, 1, &list, &n) == STORE_OK && n == 1 &&
              list[0].app.sdkappid == A1,
          "A1 first");
    if (n == 1)
        check_listed(st, &list[0], "after the rotation");
    free(list);
}

static void test_keys(struct store *st, PGconn *raw)
{
    struct store_key k = {0}, *list = NULL;
    size_t n = 0;
    uint32_t v = 0, app = 0, ver = 0;
    uint8_t fp[STORE_FINGERPRINT_LEN];

    CHECK(store_key_next_version(st, 42, &v) == STORE_NOT_FOUND, "next version of no app");
    CHECK(store_key_next_version(st, APP_A, &v) == STORE_OK && v == 1, "first version is 1");
    CHECK(insert_key(st, APP_A, 1, STORE_KEY_ACTIVE, 1) == STORE_OK, "insert A v1 active");
    CHECK(store_key_next_version(st, APP_A, &v) == STORE_OK && v == 2, "then 2");
    CHECK(insert_key(st, APP_A, 2, STORE_KEY_PENDING, 2) == STORE_OK, "insert A v2 pending");
    CHECK(insert_key(st, APP_A, 3, STORE_KEY_ACTIVE, 3) == STORE_CONFLICT &&
              strcmp(store_conflict(st), "one_active") == 0,
          "a second active key is refused (%s)", store_conflict(st));
    CHECK(insert_key(st, APP_A, 2, STORE_KEY_PENDING, 4) == STORE_CONFLICT &&
              strcmp(store_conflict(st), "version") == 0,
          "a version twice is refused (%s)", store_conflict(st));
    CHECK(insert_key(st, APP_B, 1, STORE_KEY_ACTIVE, 1) == STORE_CONFLICT &&
              strcmp(store_conflict(st), "fingerprint") == 0,
          "A's key on B is refused (%s)", store_conflict(st));
    CHECK(insert_key(st, 42, 1, STORE_KEY_ACTIVE, 9) == STORE_NOT_FOUND, "key of no app");
    CHECK(insert_key(st, APP_A, 3, STORE_KEY_RETIRED, 9) == STORE_ERROR,
          "a new key is pending or active");

    CHECK(store_key_get(st, APP_A, 1, &k) == STORE_OK, "get A v1");
    fingerprint(fp, 1);
    CHECK(k.state == STORE_KEY_ACTIVE && k.kind == STORE_KEY_HMAC && k.sealed_len == 41 &&
              k.sealed[0] == 0xa1 && k.sealed[40] == 0xa1 &&
              memcmp(k.fingerprint, fp, sizeof fp) == 0 && k.activated_at_us >= k.created_at_us &&
              k.created_at_us > 0 && k.retired_at_us == 0 && k.sign_count == 0,
          "A v1 as inserted");
    store_key_clear(&k);
    CHECK(store_key_get(st, APP_A, 9, &k) == STORE_NOT_FOUND && k.sealed == NULL, "no v9");

    for (int lock = STORE_LOCK_NONE; lock <= STORE_LOCK_UPDATE; lock++) {
        CHECK(store_begin(st) == STORE_OK, "begin");
        CHECK(store_key_get_active(st, APP_A, (enum store_lock)lock, &k) == STORE_OK &&
                  k.version == 1 && k.sealed != NULL,
              "active of A is v1 (lock %d)", lock);
        store_key_clear(&k);
        CHECK(store_key_get_active(st, APP_B, (enum store_lock)lock, &k) == STORE_NOT_FOUND,
              "B has no active key (lock %d)", lock);
        CHECK(store_commit(st) == STORE_OK, "commit");
    }

    CHECK(store_key_list(st, APP_A, &list, &n) == STORE_OK && n == 2 && list[0].version == 1 &&
              list[1].version == 2 && list[1].state == STORE_KEY_PENDING && list[0].sealed == NULL,
          "list A: metadata of v1, v2");
    store_key_list_free(list, n);

    /* rotation: one transaction, old retired first */
    CHECK(store_begin(st) == STORE_OK, "begin rotation");
    CHECK(store_key_next_version(st, APP_A, &v) == STORE_OK && v == 3, "lock A");
    CHECK(store_key_set_state(st, APP_A, 1, STORE_KEY_RETIRED) == STORE_OK, "retire v1");
    CHECK(store_key_set_state(st, APP_A, 2, STORE_KEY_ACTIVE) == STORE_OK, "activate v2");
    CHECK(store_commit(st) == STORE_OK, "commit rotation");
    CHECK(store_key_get_active(st, APP_A, STORE_LOCK_NONE, &k) == STORE_OK && k.version == 2 &&
              k.activated_at_us > 0,
          "v2 is active");
    store_key_clear(&k);
    CHECK(store_key_get(st, APP_A, 1, &k) == STORE_OK && k.state == STORE_KEY_RETIRED &&
              k.retired_at_us > 0,
          "v1 retired with its time");
    store_key_clear(&k);
    CHECK(store_key_set_state(st, APP_A, 1, STORE_KEY_ACTIVE) == STORE_CONFLICT &&
              strcmp(store_conflict(st), "one_active") == 0,
          "activating v1 beside v2 is refused");
    CHECK(store_key_set_state(st, APP_A, 9, STORE_KEY_DISABLED) == STORE_NOT_FOUND,
          "state of no version");
    CHECK(store_key_set_state(st, APP_A, 1, STORE_KEY_DESTROYED) == STORE_ERROR,
          "destroy goes through store_key_destroy");

    /* destroy */
    CHECK(store_key_destroy(st, APP_A, 2, "compromised") == STORE_CONFLICT &&
              strcmp(store_conflict(st), "state") == 0,
          "the active key cannot be destroyed");
    CHECK(store_key_destroy(st, APP_A, 1, "") == STORE_ERROR, "a reason is required");
    CHECK(store_key_destroy(st, APP_A, 1, "leaked in a log") == STORE_OK, "destroy v1");
    CHECK(store_key_get(st, APP_A, 1, &k) == STORE_OK && k.state == STORE_KEY_DESTROYED &&
              k.sealed == NULL && k.destroyed_at_us > 0 &&
              strcmp(k.destroy_reason, "leaked in a log") == 0,
          "v1 destroyed: no material, reason kept");
    store_key_clear(&k);
    CHECK(store_key_destroy(st, APP_A, 1, "again") == STORE_CONFLICT, "destroyed once only");
    CHECK(store_key_destroy(st, APP_A, 9, "none") == STORE_NOT_FOUND, "destroy no version");
    CHECK(store_key_set_state(st, APP_A, 1, STORE_KEY_PENDING) == STORE_ERROR,
          "a destroyed key stays destroyed");
    CHECK(insert_key(st, APP_B, 1, STORE_KEY_ACTIVE, 1) == STORE_CONFLICT &&
              strcmp(store_conflict(st), "fingerprint") == 0,
          "a destroyed key's fingerprint is still refused on another app");
    CHECK(store_key_find_fingerprint(st, fp, &app, &ver) == STORE_OK && app == APP_A && ver == 1,
          "fingerprint 1 belongs to A v1");
    fingerprint(fp, 77);
    CHECK(store_key_find_fingerprint(st, fp, &app, &ver) == STORE_NOT_FOUND, "unknown fp");
    CHECK(store_key_next_version(st, APP_A, &v) == STORE_OK && v == 3, "versions are never reused");
    CHECK(dbtest_error(raw, "DELETE FROM app_keys WHERE sdkappid = 1400000001 AND version = 1") !=
              NULL,
          "the database refuses to delete a version");
    CHECK(dbtest_error(raw, "UPDATE app_keys SET sdkappid = 1400000002 WHERE version = 2") != NULL,
          "the database refuses to move a version to another app");

    /* use counts */
    CHECK(store_key_record_use(st, APP_A, 2, 5) == STORE_OK &&
              store_key_record_use(st, APP_A, 2, 2) == STORE_OK,
          "record use");
    CHECK(store_key_record_use(st, APP_A, 9, 1) == STORE_NOT_FOUND, "use of no version");
    CHECK(store_key_get(st, APP_A, 2, &k) == STORE_OK && k.sign_count == 7 && k.last_used_at_us > 0,
          "sign_count 7, last use set");
    store_key_clear(&k);

    /* sealed lists and rewrap */
    CHECK(insert_key(st, APP_B, 1, STORE_KEY_ACTIVE, 5) == STORE_OK, "insert B v1");
    CHECK(store_key_list_sealed(st, NULL, 0, false, &list, &n) == STORE_OK && n == 2 &&
              list[0].sdkappid == APP_A && list[0].version == 2 && list[1].sdkappid == APP_B &&
              list[0].sealed != NULL && list[1].sealed_len == 45,
          "every live key, with its sealed blob (destroyed v1 left out)");
    store_key_list_free(list, n);
    uint32_t only_b[] = {APP_B};
    CHECK(store_key_list_sealed(st, only_b, 1, false, &list, &n) == STORE_OK && n == 1 &&
              list[0].sdkappid == APP_B,
          "live keys of B");
    store_key_list_free(list, n);
    uint8_t resealed[64];
    memset(resealed, 0x5e, sizeof resealed);
    CHECK(store_begin(st) == STORE_OK, "begin rewrap");
    CHECK(store_key_list_sealed(st, NULL, 0, true, &list, &n) == STORE_OK && n == 2,
          "lock the live keys");
    for (size_t i = 0; i < n; i++)
        CHECK(store_key_update_sealed(st, list[i].sdkappid, list[i].version, resealed,
                                      sizeof resealed) == STORE_OK,
              "reseal %zu", i);
    store_key_list_free(list, n);
    CHECK(store_key_update_sealed(st, APP_A, 1, resealed, sizeof resealed) == STORE_NOT_FOUND,
          "a destroyed key has nothing to reseal");
    CHECK(store_commit(st) == STORE_OK, "commit rewrap");
    CHECK(store_key_get(st, APP_B, 1, &k) == STORE_OK && k.sealed_len == 64 && k.sealed[63] == 0x5e,
          "resealed");
    store_key_clear(&k);
}

static void test_failed_transaction(struct store *st)
{
    struct store_app c = {.sdkappid = APP_C, .default_expire = 60, .max_expire = 60};
    struct store_app got;
    uint32_t v = 0;

    strcpy(c.name, "gamma");
    CHECK(store_begin(st) == STORE_OK, "begin");
    CHECK(store_app_insert(st, &c) == STORE_OK, "insert C");
    CHECK(store_key_next_version(st, APP_C, &v) == STORE_OK && v == 1, "C v1");
    CHECK(insert_key(st, APP_C, 1, STORE_KEY_ACTIVE, 10) == STORE_OK, "insert C v1");
    CHECK(insert_key(st, APP_C, 2, STORE_KEY_PENDING, 5) == STORE_CONFLICT, "B's key on C");
    CHECK(store_app_get(st, APP_C, STORE_LOCK_NONE, &got) == STORE_ERROR,
          "nothing runs in a failed transaction");
    CHECK(store_commit(st) == STORE_ERROR, "commit of a failed transaction fails");
    CHECK(!store_in_transaction(st), "and ends it");
    CHECK(store_app_get(st, APP_C, STORE_LOCK_NONE, &got) == STORE_NOT_FOUND, "C was not created");
    uint8_t fp[STORE_FINGERPRINT_LEN];
    uint32_t app, ver;
    fingerprint(fp, 10);
    CHECK(store_key_find_fingerprint(st, fp, &app, &ver) == STORE_NOT_FOUND,
          "C's key was not kept");

    CHECK(store_begin(st) == STORE_OK, "begin");
    CHECK(store_app_insert(st, &c) == STORE_OK, "insert C");
    CHECK(store_begin(st) == STORE_ERROR, "no nested transaction");
    store_rollback(st);
    CHECK(store_app_get(st, APP_C, STORE_LOCK_NONE, &got) == STORE_NOT_FOUND, "rolled back: no C");
    store_rollback(st); /* nothing open: a no-op */
    CHECK(store_commit(st) == STORE_ERROR, "commit with nothing open");
    CHECK(store_audit_lock(st) == STORE_ERROR, "the audit lock needs a transaction");
}

static void test_keyring(struct store *st)
{
    uint8_t root[60], other[60], buf[STORE_SEALED_ROOT_MAX];
    size_t len = 0;
    int64_t created = 0;
    memset(root, 0x11, sizeof root);
    memset(other, 0x22, sizeof other);

    CHECK(store_keyring_get(st, false, buf, sizeof buf, &len, &created) == STORE_NOT_FOUND,
          "no root yet");
    CHECK(store_keyring_update(st, other, sizeof other) == STORE_NOT_FOUND, "nothing to rewrap");
    CHECK(store_begin(st) == STORE_OK, "begin");
    CHECK(store_keyring_insert(st, root, sizeof root) == STORE_OK, "insert root");
    CHECK(store_keyring_insert(st, other, sizeof other) == STORE_CONFLICT &&
              strcmp(store_conflict(st), "keyring") == 0,
          "a second root is refused");
    CHECK(store_keyring_get(st, true, buf, sizeof buf, &len, &created) == STORE_OK &&
              len == sizeof root && memcmp(buf, root, len) == 0 && created > 0,
          "the transaction goes on after the refusal and reads the first root");
    CHECK(store_commit(st) == STORE_OK, "commit");
    CHECK(store_keyring_get(st, false, buf, 10, &len, NULL) == STORE_ERROR, "buffer too small");
    CHECK(store_keyring_update(st, other, sizeof other) == STORE_OK, "rewrap the root");
    CHECK(store_keyring_get(st, false, buf, sizeof buf, &len, NULL) == STORE_OK &&
              memcmp(buf, other, sizeof other) == 0,
          "rewrapped root");
}

static void test_tokens(struct store *st)
{
    struct store_token admin = {.role = STORE_ROLE_ADMIN, .all_apps = true};
    struct store_token signer = {.role = STORE_ROLE_SIGNER,
                                 .n_apps = 3,
                                 .apps = {APP_A, APP_B, 4294967295u},
                                 .expires_at_us = 4102444800000000LL};
    struct store_token got, *list = NULL;
    size_t n = 0;

    strcpy(admin.name, "bootstrap admin");
    strcpy(signer.name, "chat backend");
    memset(admin.secret_hash, 0xaa, sizeof admin.secret_hash);
    memset(signer.secret_hash, 0xbb, sizeof signer.secret_hash);
    CHECK(store_token_insert(st, &admin) == STORE_OK && admin.id > 0 && admin.created_at_us > 0,
          "insert admin token");
    CHECK(store_token_insert(st, &signer) == STORE_OK && signer.id > admin.id, "insert signer");
    struct store_token none = signer;
    none.n_apps = 0;
    CHECK(store_token_insert(st, &none) == STORE_ERROR, "a scope of no app is refused");

    CHECK(store_token_get(st, admin.id, &got) == STORE_OK && got.all_apps && got.n_apps == 0 &&
              got.role == STORE_ROLE_ADMIN && strcmp(got.name, "bootstrap admin") == 0 &&
              got.expires_at_us == 0 && got.revoked_at_us == 0 && got.last_used_at_us == 0 &&
              memcmp(got.secret_hash, admin.secret_hash, 32) == 0,
          "admin token as inserted");
    CHECK(store_token_get(st, signer.id, &got) == STORE_OK && !got.all_apps && got.n_apps == 3 &&
              got.apps[0] == APP_A && got.apps[2] == 4294967295u && got.role == STORE_ROLE_SIGNER &&
              got.expires_at_us == 4102444800000000LL,
          "signer token: scope and expiry exact");
    CHECK(store_token_get(st, 9999, &got) == STORE_NOT_FOUND, "no token 9999");
    CHECK(store_token_touch(st, signer.id) == STORE_OK &&
              store_token_get(st, signer.id, &got) == STORE_OK && got.last_used_at_us > 0,
          "touch sets last use");
    int64_t first_use = got.last_used_at_us;
    CHECK(store_token_touch(st, signer.id) == STORE_OK &&
              store_token_get(st, signer.id, &got) == STORE_OK && got.last_used_at_us == first_use,
          "a second touch within the minute writes nothing");
    CHECK(store_token_revoke(st, signer.id) == STORE_OK &&
              store_token_get(st, signer.id, &got) == STORE_OK && got.revoked_at_us > 0,
          "revoke");
    int64_t revoked = got.revoked_at_us;
    CHECK(store_token_revoke(st, signer.id) == STORE_OK &&
              store_token_get(st, signer.id, &got) == STORE_OK && got.revoked_at_us == revoked,
          "revoking again keeps the first time");
    CHECK(store_token_revoke(st, 9999) == STORE_NOT_FOUND, "revoke no token");
    CHECK(store_token_list(st, &list, &n) == STORE_OK && n == 2 && list[0].id == admin.id &&
              list[1].id == signer.id && list[1].n_apps == 3,
          "list tokens");
    free(list);
    CHECK(store_role_parse("key_manager") == STORE_ROLE_KEY_MANAGER &&
              store_role_parse("root") == -1 &&
              strcmp(store_role_name(STORE_ROLE_AUDITOR), "auditor") == 0,
          "role names");
}

static void test_reconnect(struct store *st, const struct dbtest *t)
{
    PGconn *admin = dbtest_connect_url(t->admin_url);
    char sql[256];
    struct store_app got;
    snprintf(sql, sizeof sql,
             "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '%s' "
             "AND pid <> pg_backend_pid() AND application_name = 'usersigd'",
             t->name);
    if (admin == NULL) {
        CHECK(0, "admin connection");
        return;
    }
    CHECK(dbtest_scalar(admin, sql) == 1, "terminate the store's backend");
    usleep(100000);
    CHECK(store_app_get(st, APP_A, STORE_LOCK_NONE, &got) == STORE_OK,
          "the next statement outside a transaction reconnects");

    CHECK(store_begin(st) == STORE_OK, "begin");
    CHECK(dbtest_scalar(admin, sql) == 1, "terminate it inside a transaction");
    usleep(100000);
    CHECK(store_app_get(st, APP_A, STORE_LOCK_NONE, &got) == STORE_ERROR,
          "inside a transaction a lost connection is an error");
    store_rollback(st);
    CHECK(store_ping(st) == STORE_OK, "after the rollback the store reconnects");
    PQfinish(admin);

    struct store *bad = NULL;
    CHECK(store_open("postgresql://usersigd@127.0.0.1:1/none?connect_timeout=2", &bad) ==
                  STORE_ERROR &&
              bad == NULL,
          "no server: STORE_ERROR");
}

struct notes {
    int cache, hold;
    char payload[128];
};

static void on_note(void *arg, const char *channel, const char *payload)
{
    struct notes *n = arg;
    if (strcmp(channel, STORE_CHANNEL_HOLD) == 0) {
        n->hold++;
        snprintf(n->payload, sizeof n->payload, "%s", payload);
    } else if (strcmp(channel, STORE_CHANNEL_CACHE) == 0) {
        n->cache++;
    }
}

/* A hold notice through the database: a listener on another connection gets it on its own
 * channel, unchanged, sent at once outside a transaction and only at the commit inside one
 * (none after a rollback); the cache's channel is listened to on the same session. */
static void test_hold_notify(struct store *st, PGconn *raw, const struct dbtest *t)
{
    struct store *l = dbtest_store(t);
    struct notes n = {0};
    CHECK(store_listen(l) == STORE_OK, "listen");
    CHECK(store_notify_hold(st, "v1:1:2:ab:administrator") == STORE_OK, "told");
    for (int i = 0; i < 50 && n.hold == 0; i++)
        CHECK(store_notify_wait(l, -1, 100, on_note, &n) == STORE_OK, "wait");
    CHECK(n.hold == 1 && n.cache == 0 && strcmp(n.payload, "v1:1:2:ab:administrator") == 0,
          "the notice on its channel: %d %d \"%s\"", n.hold, n.cache, n.payload);
    CHECK(store_begin(st) == STORE_OK && store_notify_hold(st, "in a transaction") == STORE_OK,
          "told in a transaction");
    CHECK(store_notify_wait(l, -1, 200, on_note, &n) == STORE_OK && n.hold == 1,
          "nothing before the commit");
    CHECK(store_commit(st) == STORE_OK, "commit");
    for (int i = 0; i < 50 && n.hold == 1; i++)
        CHECK(store_notify_wait(l, -1, 100, on_note, &n) == STORE_OK, "wait");
    CHECK(n.hold == 2 && strcmp(n.payload, "in a transaction") == 0, "at the commit: \"%s\"",
          n.payload);
    CHECK(store_begin(st) == STORE_OK && store_notify_hold(st, "rolled back") == STORE_OK, "again");
    store_rollback(st);
    CHECK(store_notify_wait(l, -1, 200, on_note, &n) == STORE_OK && n.hold == 2,
          "nothing after a rollback");
    CHECK(dbtest_exec(raw, "SELECT pg_notify('usersigd_cache', 'app:1')", false), "a cache notice");
    for (int i = 0; i < 50 && n.cache == 0; i++)
        CHECK(store_notify_wait(l, -1, 100, on_note, &n) == STORE_OK, "wait");
    CHECK(n.cache == 1 && n.hold == 2, "the cache's channel on the same session (%d)", n.cache);
    store_close(l);
}

int main(void)
{
    struct dbtest t;
    struct store *st;
    PGconn *raw;

    dbtest_create(&t, "db_store", true);
    st = dbtest_store(&t);
    raw = dbtest_connect(&t);
    test_apps(st);
    test_keys(st, raw);
    test_failed_transaction(st);
    test_keyring(st);
    test_tokens(st);
    test_app_list(st);
    test_reconnect(st, &t);
    test_hold_notify(st, raw, &t);
    PQfinish(raw);
    store_close(st);
    dbtest_drop(&t);
    return test_done("db_store");
}
