/*
 * The token and app cache (cache.h): two chained hash tables (buckets doubled as they fill),
 * one mutex, reference-counted app entries.
 */
#include "cache.h"

#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "decimal.h"
#include "log.h"

#define CACHE_MAX_ENTRIES (1u << 20) /* apps, tokens each: past it the table is flushed */

struct app_node {
    struct app_node *next;
    struct cache_app *a;
};

struct token_node {
    struct token_node *next;
    struct cache_token t;
    int64_t touched_us;  /* last use recorded (read from the row, then by cache_token_due) */
    int64_t scan_second; /* the second scan_count counts in */
    unsigned scan_count;
};

/* The entry and its reference count, in one allocation; the count is the only mutable part. */
struct app_box {
    atomic_uint refs;
    atomic_bool listed; /* the table holds it (cache_app_listed) */
    struct cache_app a;
};

struct scan_box {
    atomic_uint refs;
    struct cache_scan s;
};

struct cache {
    pthread_mutex_t mu;
    pthread_mutex_t evict_mu; /* held while evict_fn runs, and to change it */
    cache_evict_fn evict_fn;
    void *evict_arg;
    struct cache_scan *scan; /* the table's reference, or NULL */
    uint64_t epoch;          /* bumped by every eviction */
    bool listening;
    struct app_node **apps;
    size_t n_app_buckets, n_apps;
    struct token_node **tokens;
    size_t n_token_buckets, n_tokens;
    struct cache_stats stats;
};

static size_t hash_u64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return (size_t)x;
}

static struct app_box *box_of(const struct cache_app *a)
{
    return (struct app_box *)((char *)a - offsetof(struct app_box, a));
}

struct cache_app *cache_app_alloc(size_t n_keys)
{
    struct app_box *b = calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    b->a.keys = calloc(n_keys > 0 ? n_keys : 1, sizeof *b->a.keys);
    if (b->a.keys == NULL) {
        free(b);
        return NULL;
    }
    atomic_init(&b->refs, 1);
    atomic_init(&b->listed, false);
    return &b->a;
}

static void app_free(struct cache_app *a)
{
    for (size_t i = 0; i < a->n_keys; i++)
        usersig_key_free(a->keys[i].key); /* wipes the key */
    free(a->keys);
    struct app_box *b = box_of(a);
    OPENSSL_cleanse(b, sizeof *b);
    free(b);
}

/* ---- the scan index ---- */

static struct scan_box *scan_box_of(const struct cache_scan *s)
{
    return (struct scan_box *)((char *)s - offsetof(struct scan_box, s));
}

struct cache_scan *cache_scan_alloc(size_t n)
{
    struct scan_box *b = calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    b->s.keys = calloc(n > 0 ? n : 1, sizeof *b->s.keys);
    if (b->s.keys == NULL) {
        free(b);
        return NULL;
    }
    atomic_init(&b->refs, 1);
    return &b->s;
}

void cache_scan_release(const struct cache_scan *s)
{
    if (s == NULL)
        return;
    struct scan_box *b = scan_box_of(s);
    if (atomic_fetch_sub(&b->refs, 1) != 1)
        return;
    for (size_t i = 0; i < b->s.n; i++)
        usersig_key_free(b->s.keys[i].key);
    free(b->s.keys);
    free(b);
}

/* Drops the table's index; the caller releases the returned one after unlocking. Under mu. */
static struct cache_scan *take_scan(struct cache *c)
{
    struct cache_scan *s = c->scan;
    c->scan = NULL;
    return s;
}

const struct cache_scan *cache_scan_get(struct cache *c)
{
    pthread_mutex_lock(&c->mu);
    struct cache_scan *s = c->scan;
    if (s != NULL)
        atomic_fetch_add(&scan_box_of(s)->refs, 1);
    pthread_mutex_unlock(&c->mu);
    return s;
}

const struct cache_scan *cache_scan_put(struct cache *c, struct cache_scan *s, uint64_t epoch)
{
    struct cache_scan *old = NULL;
    pthread_mutex_lock(&c->mu);
    if (c->listening && c->epoch == epoch) {
        old = take_scan(c);
        c->scan = s;
        atomic_fetch_add(&scan_box_of(s)->refs, 1);
    }
    pthread_mutex_unlock(&c->mu);
    cache_scan_release(old);
    return s;
}

void cache_app_discard(struct cache_app *a)
{
    if (a != NULL)
        app_free(a);
}

void cache_app_release(const struct cache_app *a)
{
    if (a == NULL)
        return;
    struct app_box *b = box_of(a);
    if (atomic_fetch_sub(&b->refs, 1) == 1)
        app_free(&b->a);
}

bool cache_app_listed(const struct cache_app *a)
{
    return atomic_load(&box_of(a)->listed);
}

const struct cache_app *cache_app_ref(const struct cache_app *a)
{
    atomic_fetch_add(&box_of(a)->refs, 1);
    return a;
}

struct cache *cache_new(void)
{
    struct cache *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->n_app_buckets = 256;
    c->n_token_buckets = 256;
    c->apps = calloc(c->n_app_buckets, sizeof *c->apps);
    c->tokens = calloc(c->n_token_buckets, sizeof *c->tokens);
    if (c->apps == NULL || c->tokens == NULL || pthread_mutex_init(&c->mu, NULL) != 0) {
        free(c->apps);
        free(c->tokens);
        free(c);
        return NULL;
    }
    if (pthread_mutex_init(&c->evict_mu, NULL) != 0) {
        pthread_mutex_destroy(&c->mu);
        free(c->apps);
        free(c->tokens);
        free(c);
        return NULL;
    }
    return c;
}

/* Under c->mu. */
static void flush_locked(struct cache *c)
{
    for (size_t i = 0; i < c->n_app_buckets; i++) {
        struct app_node *n = c->apps[i];
        while (n != NULL) {
            struct app_node *next = n->next;
            atomic_store(&box_of(n->a)->listed, false);
            cache_app_release(n->a);
            free(n);
            n = next;
        }
        c->apps[i] = NULL;
    }
    for (size_t i = 0; i < c->n_token_buckets; i++) {
        struct token_node *n = c->tokens[i];
        while (n != NULL) {
            struct token_node *next = n->next;
            OPENSSL_cleanse(n, sizeof *n);
            free(n);
            n = next;
        }
        c->tokens[i] = NULL;
    }
    c->n_apps = c->n_tokens = 0;
    c->epoch++;
    c->stats.evictions++;
    cache_scan_release(take_scan(c)); /* its keys are freed once unreferenced */
}

void cache_free(struct cache *c)
{
    if (c == NULL)
        return;
    flush_locked(c);
    pthread_mutex_destroy(&c->mu);
    pthread_mutex_destroy(&c->evict_mu);
    free(c->apps);
    free(c->tokens);
    free(c);
}

uint64_t cache_epoch(struct cache *c)
{
    pthread_mutex_lock(&c->mu);
    uint64_t e = c->epoch;
    pthread_mutex_unlock(&c->mu);
    return e;
}

/* Doubles a table's buckets when it holds more entries than buckets; a failed allocation
 * leaves it as it is (longer chains, still correct). Under c->mu. */
static void grow_apps(struct cache *c)
{
    if (c->n_apps < c->n_app_buckets)
        return;
    size_t nb = c->n_app_buckets * 2;
    struct app_node **t = calloc(nb, sizeof *t);
    if (t == NULL)
        return;
    for (size_t i = 0; i < c->n_app_buckets; i++)
        for (struct app_node *n = c->apps[i], *next; n != NULL; n = next) {
            next = n->next;
            size_t h = hash_u64(n->a->app.sdkappid) & (nb - 1);
            n->next = t[h];
            t[h] = n;
        }
    free(c->apps);
    c->apps = t;
    c->n_app_buckets = nb;
}

static void grow_tokens(struct cache *c)
{
    if (c->n_tokens < c->n_token_buckets)
        return;
    size_t nb = c->n_token_buckets * 2;
    struct token_node **t = calloc(nb, sizeof *t);
    if (t == NULL)
        return;
    for (size_t i = 0; i < c->n_token_buckets; i++)
        for (struct token_node *n = c->tokens[i], *next; n != NULL; n = next) {
            next = n->next;
            size_t h = hash_u64((uint64_t)n->t.id) & (nb - 1);
            n->next = t[h];
            t[h] = n;
        }
    free(c->tokens);
    c->tokens = t;
    c->n_token_buckets = nb;
}

/* ---- apps ---------------------------------------------------------------------------------- */

const struct cache_app *cache_app_get(struct cache *c, uint32_t sdkappid)
{
    const struct cache_app *found = NULL;
    pthread_mutex_lock(&c->mu);
    size_t h = hash_u64(sdkappid) & (c->n_app_buckets - 1);
    for (struct app_node *n = c->apps[h]; n != NULL; n = n->next)
        if (n->a->app.sdkappid == sdkappid) {
            found = cache_app_ref(n->a);
            break;
        }
    if (found != NULL)
        c->stats.app_hits++;
    else
        c->stats.app_misses++;
    pthread_mutex_unlock(&c->mu);
    return found;
}

/* Unlinks app sdkappid; returns its node (the caller frees it and drops its reference after
 * unlocking) or NULL. Under c->mu. */
static struct app_node *unlink_app(struct cache *c, uint32_t sdkappid)
{
    size_t h = hash_u64(sdkappid) & (c->n_app_buckets - 1);
    for (struct app_node **pp = &c->apps[h]; *pp != NULL; pp = &(*pp)->next)
        if ((*pp)->a->app.sdkappid == sdkappid) {
            struct app_node *n = *pp;
            *pp = n->next;
            c->n_apps--;
            atomic_store(&box_of(n->a)->listed, false);
            return n;
        }
    return NULL;
}

const struct cache_app *cache_app_put(struct cache *c, struct cache_app *a, uint64_t epoch)
{
    struct app_node *node = malloc(sizeof *node), *old = NULL;
    bool published = false;

    pthread_mutex_lock(&c->mu);
    if (node != NULL && c->listening && c->epoch == epoch) {
        if (c->n_apps >= CACHE_MAX_ENTRIES)
            flush_locked(c);
        else {
            old = unlink_app(c, a->app.sdkappid);
            node->a = a; /* the table's reference: the one a was made with */
            atomic_store(&box_of(a)->listed, true);
            size_t h = hash_u64(a->app.sdkappid) & (c->n_app_buckets - 1);
            node->next = c->apps[h];
            c->apps[h] = node;
            c->n_apps++;
            grow_apps(c);
            cache_app_ref(a); /* the caller's */
            published = true;
        }
    }
    pthread_mutex_unlock(&c->mu);
    if (old != NULL) {
        cache_app_release(old->a);
        free(old);
    }
    if (!published)
        free(node); /* a stays the caller's alone: good for the use it was read for */
    return a;
}

/* ---- tokens -------------------------------------------------------------------------------- */

static struct token_node *find_token(struct cache *c, int64_t id)
{
    size_t h = hash_u64((uint64_t)id) & (c->n_token_buckets - 1);
    for (struct token_node *n = c->tokens[h]; n != NULL; n = n->next)
        if (n->t.id == id)
            return n;
    return NULL;
}

bool cache_token_get(struct cache *c, int64_t id, struct cache_token *out)
{
    pthread_mutex_lock(&c->mu);
    struct token_node *n = find_token(c, id);
    if (n != NULL) {
        *out = n->t;
        c->stats.token_hits++;
    } else {
        c->stats.token_misses++;
    }
    pthread_mutex_unlock(&c->mu);
    return n != NULL;
}

void cache_token_put(struct cache *c, const struct cache_token *t, int64_t used_us, uint64_t epoch)
{
    struct token_node *node = calloc(1, sizeof *node);
    if (node == NULL)
        return;
    node->t = *t;
    node->touched_us = used_us;
    pthread_mutex_lock(&c->mu);
    if (c->listening && c->epoch == epoch && find_token(c, t->id) == NULL) {
        if (c->n_tokens >= CACHE_MAX_ENTRIES)
            flush_locked(c);
        size_t h = hash_u64((uint64_t)t->id) & (c->n_token_buckets - 1);
        node->next = c->tokens[h];
        c->tokens[h] = node;
        c->n_tokens++;
        grow_tokens(c);
        node = NULL;
    }
    pthread_mutex_unlock(&c->mu);
    if (node != NULL) {
        OPENSSL_cleanse(node, sizeof *node);
        free(node);
    }
}

bool cache_token_due(struct cache *c, int64_t id, int64_t now_us)
{
    bool due = false;
    pthread_mutex_lock(&c->mu);
    struct token_node *n = find_token(c, id);
    if (n != NULL && (n->touched_us == 0 || now_us - n->touched_us >= 60 * 1000000LL)) {
        n->touched_us = now_us;
        due = true;
    }
    pthread_mutex_unlock(&c->mu);
    return due;
}

bool cache_scan_allowed(struct cache *c, int64_t id, int64_t now_us, unsigned per_second)
{
    bool ok = true;
    pthread_mutex_lock(&c->mu);
    struct token_node *n = find_token(c, id);
    if (n != NULL) {
        int64_t second = now_us / 1000000;
        if (n->scan_second != second) {
            n->scan_second = second;
            n->scan_count = 0;
        }
        ok = n->scan_count < per_second;
        if (ok)
            n->scan_count++;
    }
    pthread_mutex_unlock(&c->mu);
    return ok;
}

/* ---- invalidation -------------------------------------------------------------------------- */

void cache_on_evict(struct cache *c, cache_evict_fn fn, void *arg)
{
    pthread_mutex_lock(&c->evict_mu);
    c->evict_fn = fn;
    c->evict_arg = arg;
    pthread_mutex_unlock(&c->evict_mu);
}

static void tell_evicted(struct cache *c, uint32_t sdkappid, bool all)
{
    pthread_mutex_lock(&c->evict_mu);
    if (c->evict_fn != NULL)
        c->evict_fn(c->evict_arg, sdkappid, all);
    pthread_mutex_unlock(&c->evict_mu);
}

void cache_forget_app(struct cache *c, uint32_t sdkappid)
{
    pthread_mutex_lock(&c->mu);
    struct app_node *old = unlink_app(c, sdkappid);
    struct cache_scan *scan = take_scan(c);
    c->epoch++;
    c->stats.evictions++;
    pthread_mutex_unlock(&c->mu);
    cache_scan_release(scan);
    if (old != NULL) {
        cache_app_release(old->a);
        free(old);
    }
    tell_evicted(c, sdkappid, false);
}

void cache_forget_token(struct cache *c, int64_t id)
{
    struct token_node *old = NULL;
    pthread_mutex_lock(&c->mu);
    size_t h = hash_u64((uint64_t)id) & (c->n_token_buckets - 1);
    for (struct token_node **pp = &c->tokens[h]; *pp != NULL; pp = &(*pp)->next)
        if ((*pp)->t.id == id) {
            old = *pp;
            *pp = old->next;
            c->n_tokens--;
            break;
        }
    c->epoch++;
    c->stats.evictions++;
    pthread_mutex_unlock(&c->mu);
    if (old != NULL) {
        OPENSSL_cleanse(old, sizeof *old);
        free(old);
    }
}

void cache_forget_all(struct cache *c)
{
    pthread_mutex_lock(&c->mu);
    flush_locked(c);
    pthread_mutex_unlock(&c->mu);
    tell_evicted(c, 0, true);
}

void cache_set_listening(struct cache *c, bool on)
{
    pthread_mutex_lock(&c->mu);
    flush_locked(c);
    c->listening = on;
    pthread_mutex_unlock(&c->mu);
    tell_evicted(c, 0, true);
}

/* Parses the decimal after prefix in payload; false unless it is all digits, in range. */
static bool parse_id(const char *payload, const char *prefix, uint64_t max, uint64_t *out)
{
    size_t n = strlen(prefix);
    return strncmp(payload, prefix, n) == 0 &&
           decimal_parse(payload + n, strlen(payload + n), max, 0, out) == 0;
}

void cache_notify(struct cache *c, const char *payload)
{
    uint64_t id;
    if (payload != NULL && parse_id(payload, "app:", UINT32_MAX, &id))
        cache_forget_app(c, (uint32_t)id);
    else if (payload != NULL && parse_id(payload, "token:", INT64_MAX, &id))
        cache_forget_token(c, (int64_t)id);
    else
        cache_forget_all(c);
}

void cache_count_stale_group(struct cache *c)
{
    pthread_mutex_lock(&c->mu);
    c->stats.stale_groups++;
    pthread_mutex_unlock(&c->mu);
}

void cache_get_stats(struct cache *c, struct cache_stats *out)
{
    pthread_mutex_lock(&c->mu);
    *out = c->stats;
    out->apps = c->n_apps;
    out->tokens = c->n_tokens;
    out->listening = c->listening;
    pthread_mutex_unlock(&c->mu);
}
