/*
 * Verify and explain (verify.h): the app's own key versions from the cache, then, on a
 * signature mismatch, a bounded search of the other apps' keys.
 */
#include "verify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "usage.h"

void verify_verdict_set(struct verify_result *res, enum usersig_verdict v)
{
    res->verdict = usersig_verdict_name(v);
    res->tencent_code = usersig_verdict_tencent_code(v);
    snprintf(res->message, sizeof res->message, "%s", usersig_verdict_message(v));
}

/* Checks d against the live versions of entry. Returns true when the signature matched none
 * of them (a cross-app search is due); *res is filled either way. */
static bool check_entry(const struct cache_app *e, const struct usersig_decoded *d,
                        const struct usersig_expect *expect, struct verify_result *res, int64_t now)
{
    const struct cache_key *matched = NULL;
    bool all_kind_mismatch = true;
    uint32_t app = e->app.sdkappid;

    if (e->n_keys == 0) {
        res->verdict = "no_key";
        res->tencent_code = VERIFY_TENCENT_NO_KEY;
        snprintf(res->message, sizeof res->message,
                 "app %u has no key version to verify with: import a key first", app);
        return false;
    }
    for (size_t i = 0; i < e->n_keys && matched == NULL; i++) {
        enum usersig_verdict v = usersig_check_signature(d, e->keys[i].key);
        if (v != USERSIG_KIND_MISMATCH)
            all_kind_mismatch = false;
        if (v == USERSIG_VALID)
            matched = &e->keys[i];
    }
    if (matched != NULL) {
        /* The identifier, sdkappid and expiry checks come first, as Tencent's do. */
        enum usersig_verdict v = usersig_check(d, expect, matched->key, now);
        res->key_version = matched->version;
        verify_verdict_set(res, v);
        if (v == USERSIG_VALID &&
            (matched->state == STORE_KEY_PENDING || matched->state == STORE_KEY_DISABLED)) {
            bool pending = matched->state == STORE_KEY_PENDING;
            res->verdict = pending ? "key_pending" : "key_disabled";
            res->tencent_code = VERIFY_TENCENT_BAD_SIGNATURE;
            snprintf(res->message, sizeof res->message,
                     "the UserSig was signed with key version %u of app %u, which is %s: it "
                     "does not verify until that version is %s; issue a new UserSig with the "
                     "active key",
                     matched->version, app, pending ? "pending" : "disabled",
                     pending ? "activated" : "enabled");
        }
        if (v == USERSIG_VALID && matched->state == STORE_KEY_RETIRED &&
            matched->verify_until_us != 0 && now > matched->verify_until_us / 1000000) {
            char when[32];
            time_t t = (time_t)(matched->verify_until_us / 1000000);
            struct tm tm;
            gmtime_r(&t, &tm);
            strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
            res->verdict = VERIFY_WINDOW_CLOSED;
            res->tencent_code = VERIFY_TENCENT_BAD_SIGNATURE;
            snprintf(res->message, sizeof res->message,
                     "the UserSig was signed with key version %u of app %u, which is retired "
                     "and stopped verifying at its verify_until (%s): issue a new UserSig with "
                     "the active key (POST /v1/apps/%u/keys/reissue re-signs every one still "
                     "live on it)",
                     matched->version, app, when, app);
        }
        return false;
    }
    enum usersig_verdict v = usersig_check(d, expect, NULL, now);
    if (v == USERSIG_SIGNATURE_MISMATCH && all_kind_mismatch)
        v = USERSIG_KIND_MISMATCH;
    verify_verdict_set(res, v);
    return v == USERSIG_SIGNATURE_MISMATCH;
}

enum verify_step verify_cached(struct service *svc, uint32_t app, const struct usersig_decoded *d,
                               const struct usersig_expect *expect, struct verify_result *res,
                               enum api_error *err, char *msg, size_t cap)
{
    (void)msg;
    (void)cap;
    *err = API_OK;
    if (svc->cache == NULL)
        return VERIFY_NEEDS_RUN;
    const struct cache_app *e = cache_app_get(svc->cache, app);
    if (e == NULL)
        return VERIFY_NEEDS_RUN;
    bool scan = check_entry(e, d, expect, res, clock_realtime_us() / 1000000);
    cache_app_release(e);
    if (!scan)
        usage_verify(app, res->key_version, res->verdict);
    return scan ? VERIFY_NEEDS_RUN : VERIFY_DONE;
}

/* Every live key of every app, opened (skipping, as logged, one that does not open). */
static const struct cache_scan *scan_index(struct service *svc)
{
    const struct cache_scan *idx = svc->cache != NULL ? cache_scan_get(svc->cache) : NULL;
    if (idx != NULL)
        return idx;
    uint64_t epoch = svc->cache != NULL ? cache_epoch(svc->cache) : 0;
    struct store_key *keys = NULL;
    size_t n = 0;
    if (store_key_list_sealed(svc->st, NULL, 0, false, &keys, &n) != STORE_OK)
        return NULL;
    struct cache_scan *s = cache_scan_alloc(n);
    if (s == NULL) {
        store_key_list_free(keys, n);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        struct cache_scan_key *k = &s->keys[s->n];
        if (service_open_key(svc, &keys[i], &k->key) != 0)
            continue;
        k->sdkappid = keys[i].sdkappid;
        k->version = keys[i].version;
        s->n++;
    }
    store_key_list_free(keys, n);
    return svc->cache != NULL ? cache_scan_put(svc->cache, s, epoch) : s;
}

/* The first index of sdkappid's keys in idx (keys are in sdkappid order), or idx->n. */
static size_t first_of(const struct cache_scan *idx, uint32_t sdkappid)
{
    size_t lo = 0, hi = idx->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (idx->keys[mid].sdkappid < sdkappid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The keys a scan tries, in order, up to the bounds (VERIFY_SCAN_HMAC_MAX, _ECDSA_MAX). */
struct scan_list {
    const struct usersig_key **keys;
    size_t *at; /* keys[i] is idx->keys[at[i]] */
    size_t n;
    size_t hmac, ecdsa;
    bool cut; /* a bound was reached before every key was listed */
};

/* Lists idx->keys[i] when it is of the kind that can have signed d (another kind costs
 * nothing) and the bound of its kind allows. */
static void scan_add(struct scan_list *l, const struct cache_scan *idx, size_t i,
                     const struct usersig_decoded *d)
{
    const struct usersig_key *key = idx->keys[i].key;
    bool ecdsa = usersig_key_kind(key) == USERSIG_KEY_ECDSA;
    if ((ecdsa && d->version != 1) || (!ecdsa && d->version != 2))
        return;
    if (ecdsa ? l->ecdsa >= VERIFY_SCAN_ECDSA_MAX : l->hmac >= VERIFY_SCAN_HMAC_MAX) {
        l->cut = true;
        return;
    }
    ecdsa ? l->ecdsa++ : l->hmac++;
    l->keys[l->n] = key;
    l->at[l->n++] = i;
}

/* Looks among the keys of the other apps p may see for one that signed d. Returns -1 when the
 * index could not be read, else 0 (res->signed_by_* set when found, *cut when the search
 * stopped at a bound). The keys are listed first, then searched in one pass of the codec
 * (usersig_find_signer: the signed text and the signature decoded once). */
static int find_signer(struct service *svc, const struct principal *p, uint32_t app,
                       const struct usersig_decoded *d, struct verify_result *res, bool *cut)
{
    struct scan_list l = {0};
    int rc = -1;

    *cut = false;
    if (!p->all_apps && p->n_apps == 0)
        return 0;
    if (svc->cache != NULL && !cache_scan_allowed(svc->cache, p->token_id, clock_realtime_us(),
                                                  VERIFY_SCANS_PER_SECOND)) {
        *cut = true;
        return 0;
    }
    const struct cache_scan *idx = scan_index(svc);
    if (idx == NULL)
        return -1;
    l.keys = malloc((idx->n > 0 ? idx->n : 1) * sizeof *l.keys);
    l.at = malloc((idx->n > 0 ? idx->n : 1) * sizeof *l.at);
    if (l.keys == NULL || l.at == NULL)
        goto done;
    if (p->all_apps) {
        for (size_t i = 0; i < idx->n && !l.cut; i++)
            if (idx->keys[i].sdkappid != app)
                scan_add(&l, idx, i, d);
    } else {
        for (size_t a = 0; a < p->n_apps && !l.cut; a++) {
            if (p->apps[a] == app)
                continue;
            for (size_t i = first_of(idx, p->apps[a]);
                 i < idx->n && idx->keys[i].sdkappid == p->apps[a] && !l.cut; i++)
                scan_add(&l, idx, i, d);
        }
    }
    size_t f = usersig_find_signer(d, l.keys, l.n);
    if (f < l.n) {
        res->signed_by_app = idx->keys[l.at[f]].sdkappid;
        res->signed_by_version = idx->keys[l.at[f]].version;
    }
    *cut = f == l.n && l.cut;
    rc = 0;
done:
    free(l.keys);
    free(l.at);
    cache_scan_release(idx);
    return rc;
}

enum api_error verify_run(struct service *svc, const struct principal *p, uint32_t app,
                          const struct usersig_decoded *d, const struct usersig_expect *expect,
                          struct verify_result *res, char *msg, size_t cap)
{
    const struct cache_app *e = NULL;
    bool refused = false, cut = false;
    enum api_error err = service_app_entry(svc, app, &e, msg, cap, &refused);

    if (err != API_OK) {
        if (refused)
            snprintf(msg, cap,
                     "no app with sdkappid %u here (a client would see Tencent's 70020 "
                     "\"SDKAppID not found\"): check the SDKAppID the client uses",
                     app);
        return err;
    }
    bool scan = check_entry(e, d, expect, res, clock_realtime_us() / 1000000);
    cache_app_release(e);
    if (!scan) {
        usage_verify(app, res->key_version, res->verdict);
        return API_OK;
    }
    if (find_signer(svc, p, app, d, res, &cut) != 0) {
        snprintf(msg, cap, "%s", api_error_info(API_ERR_UNAVAILABLE)->message);
        return API_ERR_UNAVAILABLE;
    }
    if (res->signed_by_app != 0)
        snprintf(res->message, sizeof res->message,
                 "the signature does not match app %u's keys: the UserSig was signed with the "
                 "key of app %u (key version %u); issue it with app %u's key, or use SDKAppID %u "
                 "in the client",
                 app, res->signed_by_app, res->signed_by_version, app, res->signed_by_app);
    else if (cut)
        snprintf(res->message, sizeof res->message,
                 "the signature does not match app %u's keys: the token was signed with another "
                 "SDKAppID's key, an old key, or altered (the search of the other apps' keys for "
                 "the one that signed it stopped at its bound: %d keys a request, %d searches a "
                 "second per API token)",
                 app, VERIFY_SCAN_HMAC_MAX, VERIFY_SCANS_PER_SECOND);
    usage_verify(app, res->key_version, res->verdict);
    return API_OK;
}
