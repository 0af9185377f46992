/*
 * Process metrics (metrics.h): fixed arrays of relaxed atomics, claimed slots for the bounded
 * label values (routes, sdkappids, outcomes) published with release stores, and the text
 * exposition of them all at scrape time. Nothing here allocates or locks, so counting costs an
 * atomic add on whatever thread counts.
 */
#include "metrics.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#define RELAXED memory_order_relaxed

typedef int (*emit_fn)(void *arg, const char *text, size_t len);

/* ---- bounded names ------------------------------------------------------------------------------
 */

/* Outcome names interned per metric: slot 0 is "other". */
struct names {
    _Atomic int state[METRICS_MAX_OUTCOMES]; /* 0 free, 1 being written, 2 ready */
    char name[METRICS_MAX_OUTCOMES][METRICS_OUTCOME_LEN + 1];
};

static bool name_ok(const char *s)
{
    size_t n = 0;
    if (s == NULL || s[0] == '\0')
        return false;
    for (; s[n] != '\0'; n++) {
        char c = s[n];
        if (n >= METRICS_OUTCOME_LEN || !((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                                          (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

static size_t names_index(struct names *t, const char *s)
{
    if (!name_ok(s) || strcmp(s, "other") == 0)
        return 0;
    for (size_t i = 1; i < METRICS_MAX_OUTCOMES; i++) {
        int st = atomic_load_explicit(&t->state[i], memory_order_acquire);
        if (st == 0) {
            int expect = 0;
            if (atomic_compare_exchange_strong(&t->state[i], &expect, 1)) {
                snprintf(t->name[i], sizeof t->name[i], "%s", s);
                atomic_store_explicit(&t->state[i], 2, memory_order_release);
                return i;
            }
            st = expect;
        }
        while (st == 1) /* another thread is writing this slot's name: a few instructions */
            st = atomic_load_explicit(&t->state[i], memory_order_acquire);
        if (strcmp(t->name[i], s) == 0)
            return i;
    }
    return 0;
}

static const char *names_get(struct names *t, size_t i)
{
    if (i == 0)
        return "other";
    return atomic_load_explicit(&t->state[i], memory_order_acquire) == 2 ? t->name[i] : NULL;
}

/* ---- counters by (sdkappid, outcome)
 * ------------------------------------------------------------- */

#define APP_SLOTS 2048 /* open addressing over METRICS_MAX_APPS keys */
#define APP_OTHER METRICS_MAX_APPS
#define APP_NONE (METRICS_MAX_APPS + 1)

struct app_counter {
    _Atomic uint32_t key[APP_SLOTS]; /* sdkappid; 0 free */
    _Atomic unsigned idx[APP_SLOTS]; /* dense index + 1; 0 not yet published */
    _Atomic unsigned n;              /* dense indexes handed out */
    _Atomic uint32_t dense_key[METRICS_MAX_APPS];
    _Atomic uint64_t count[METRICS_MAX_APPS + 2][METRICS_MAX_OUTCOMES];
    struct names outcomes;
};

static size_t app_index(struct app_counter *c, uint32_t sdkappid)
{
    if (sdkappid == 0)
        return APP_NONE;
    size_t h = (size_t)((sdkappid * UINT32_C(2654435761)) % APP_SLOTS);
    for (size_t probe = 0; probe < APP_SLOTS; probe++, h = (h + 1) % APP_SLOTS) {
        uint32_t k = atomic_load_explicit(&c->key[h], memory_order_acquire);
        if (k == 0) {
            if (atomic_load_explicit(&c->n, RELAXED) >= METRICS_MAX_APPS)
                return APP_OTHER;
            uint32_t expect = 0;
            if (atomic_compare_exchange_strong(&c->key[h], &expect, sdkappid)) {
                unsigned d = atomic_fetch_add(&c->n, 1);
                if (d >= METRICS_MAX_APPS) {
                    atomic_store_explicit(&c->idx[h], APP_OTHER + 1, memory_order_release);
                    return APP_OTHER;
                }
                atomic_store_explicit(&c->dense_key[d], sdkappid, memory_order_release);
                atomic_store_explicit(&c->idx[h], d + 1, memory_order_release);
                return d;
            }
            k = expect;
        }
        if (k != sdkappid)
            continue;
        unsigned i;
        while ((i = atomic_load_explicit(&c->idx[h], memory_order_acquire)) == 0)
            ; /* its claimer is publishing the index: a few instructions */
        return i - 1;
    }
    return APP_OTHER;
}

static void app_count(struct app_counter *c, uint32_t sdkappid, const char *outcome)
{
    size_t a = app_index(c, sdkappid), o = names_index(&c->outcomes, outcome);
    atomic_fetch_add_explicit(&c->count[a][o], 1, RELAXED);
}

/* ---- histograms
 * ------------------------------------------------------------------------------------ */

#define LATENCY_BUCKETS 14 /* 13 bounds and +Inf */
static const double latency_bounds[LATENCY_BUCKETS - 1] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10};

#define GROUP_BUCKETS 10 /* 9 bounds and +Inf */
static const double group_bounds[GROUP_BUCKETS - 1] = {1, 2, 4, 8, 16, 32, 64, 128, 256};

/* ---- the process's metrics
 * ------------------------------------------------------------------------- */

#define STATUS_MIN 100
#define STATUS_N 500 /* 100..599 */
#define ROUTE_OTHER (METRICS_MAX_ROUTES)
#define N_ROUTES (METRICS_MAX_ROUTES + 1)

static const char *const batch_states[] = {"complete", "aborted", "interrupted", "failed", "other"};
#define N_BATCH_STATES (sizeof batch_states / sizeof batch_states[0])

static struct {
    _Atomic int route_state[METRICS_MAX_ROUTES]; /* 0 free, 1 being written, 2 ready */
    const char *route_method[METRICS_MAX_ROUTES];
    const char *route_pattern[METRICS_MAX_ROUTES]; /* NULL: unmatched */
    _Atomic uint64_t requests[N_ROUTES][STATUS_N];
    _Atomic uint64_t latency[N_ROUTES][LATENCY_BUCKETS];
    _Atomic uint64_t latency_count[N_ROUTES];
    _Atomic uint64_t latency_sum_ns[N_ROUTES];
    struct app_counter signs, verifies;
    _Atomic uint64_t group[GROUP_BUCKETS];
    _Atomic uint64_t group_count, group_sum;
    _Atomic uint64_t group_trips[2]; /* groups committed in one round trip, in two */
    _Atomic uint64_t group_head_moved;
    _Atomic uint64_t batches[N_BATCH_STATES], batch_tokens[N_BATCH_STATES];
    _Atomic uint64_t db_errors, db_reconnects;
} M;

static bool same(const char *a, const char *b)
{
    return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

size_t metrics_route(const char *method, const char *pattern)
{
    if (method == NULL || pattern == NULL)
        method = "";
    for (size_t i = 0; i < METRICS_MAX_ROUTES; i++) {
        int st = atomic_load_explicit(&M.route_state[i], memory_order_acquire);
        if (st == 0) {
            int expect = 0;
            if (atomic_compare_exchange_strong(&M.route_state[i], &expect, 1)) {
                M.route_method[i] = method;
                M.route_pattern[i] = pattern;
                atomic_store_explicit(&M.route_state[i], 2, memory_order_release);
                return i;
            }
            st = expect;
        }
        while (st == 1)
            st = atomic_load_explicit(&M.route_state[i], memory_order_acquire);
        if (same(M.route_method[i], method) && same(M.route_pattern[i], pattern))
            return i;
    }
    return ROUTE_OTHER;
}

static size_t bucket_of(const double *bounds, size_t n_bounds, double v)
{
    size_t i = 0;
    while (i < n_bounds && v > bounds[i])
        i++;
    return i;
}

void metrics_http_request(size_t route, int status, double seconds)
{
    if (route > ROUTE_OTHER)
        route = ROUTE_OTHER;
    if (status >= STATUS_MIN && status < STATUS_MIN + STATUS_N)
        atomic_fetch_add_explicit(&M.requests[route][status - STATUS_MIN], 1, RELAXED);
    if (!(seconds >= 0)) /* NaN too */
        seconds = 0;
    atomic_fetch_add_explicit(
        &M.latency[route][bucket_of(latency_bounds, LATENCY_BUCKETS - 1, seconds)], 1, RELAXED);
    atomic_fetch_add_explicit(&M.latency_count[route], 1, RELAXED);
    atomic_fetch_add_explicit(
        &M.latency_sum_ns[route],
        seconds > 1e9 ? UINT64_C(1000000000) * 1000000000 : (uint64_t)(seconds * 1e9), RELAXED);
}

void metrics_sign(uint32_t sdkappid, const char *outcome)
{
    app_count(&M.signs, sdkappid, outcome);
}

void metrics_verify(uint32_t sdkappid, const char *verdict)
{
    app_count(&M.verifies, sdkappid, verdict);
}

void metrics_sign_group(size_t signs, int round_trips)
{
    atomic_fetch_add_explicit(&M.group_trips[round_trips == 1 ? 0 : 1], 1, RELAXED);
    atomic_fetch_add_explicit(&M.group[bucket_of(group_bounds, GROUP_BUCKETS - 1, (double)signs)],
                              1, RELAXED);
    atomic_fetch_add_explicit(&M.group_count, 1, RELAXED);
    atomic_fetch_add_explicit(&M.group_sum, (uint64_t)signs, RELAXED);
}

void metrics_sign_group_head_moved(void)
{
    atomic_fetch_add_explicit(&M.group_head_moved, 1, RELAXED);
}

void metrics_batch_end(const char *state, uint64_t tokens)
{
    size_t i = 0;
    while (i < N_BATCH_STATES - 1 && !same(batch_states[i], state))
        i++;
    atomic_fetch_add_explicit(&M.batches[i], 1, RELAXED);
    atomic_fetch_add_explicit(&M.batch_tokens[i], tokens, RELAXED);
}

void metrics_db_error(void)
{
    atomic_fetch_add_explicit(&M.db_errors, 1, RELAXED);
}

void metrics_db_reconnect(void)
{
    atomic_fetch_add_explicit(&M.db_reconnects, 1, RELAXED);
}

/* ---- the text exposition
 * ------------------------------------------------------------------------------ */

static int emitf(emit_fn emit, void *arg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int emitf(emit_fn emit, void *arg, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof buf)
        return -1; /* every line here is short; a long one is a bug, not to be cut */
    return emit(arg, buf, (size_t)n);
}

int metrics_emit_label_value(emit_fn emit, void *arg, const char *s)
{
    const char *run = s;
    for (const char *p = s;; p++) {
        const char *esc = *p == '\\' ? "\\\\" : *p == '"' ? "\\\"" : *p == '\n' ? "\\n" : NULL;
        if (*p != '\0' && esc == NULL)
            continue;
        if (p > run && emit(arg, run, (size_t)(p - run)) != 0)
            return -1;
        if (*p == '\0')
            return 0;
        if (emit(arg, esc, 2) != 0)
            return -1;
        run = p + 1;
    }
}

static int family(emit_fn emit, void *arg, const char *name, const char *type, const char *help)
{
    return emitf(emit, arg, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* {method="GET",route="/v1/apps/{sdkappid}" (no closing brace) */
static int route_labels(emit_fn emit, void *arg, size_t r)
{
    const char *method = "", *pattern = "other";
    if (r < METRICS_MAX_ROUTES) {
        if (atomic_load_explicit(&M.route_state[r], memory_order_acquire) != 2)
            return 1; /* not registered: skip */
        method = M.route_method[r];
        pattern = M.route_pattern[r] != NULL ? M.route_pattern[r] : "unmatched";
    }
    if (emitf(emit, arg, "{method=\"") != 0 || metrics_emit_label_value(emit, arg, method) != 0 ||
        emitf(emit, arg, "\",route=\"") != 0 || metrics_emit_label_value(emit, arg, pattern) != 0 ||
        emitf(emit, arg, "\"") != 0)
        return -1;
    return 0;
}

static bool route_used(size_t r)
{
    return atomic_load_explicit(&M.latency_count[r], RELAXED) != 0;
}

static int render_http(emit_fn emit, void *arg)
{
    int rc;
    if (family(emit, arg, "usersigd_http_requests_total", "counter",
               "Replies of the admin API by route pattern and HTTP status.") != 0)
        return -1;
    for (size_t r = 0; r < N_ROUTES; r++) {
        if (!route_used(r))
            continue;
        for (size_t s = 0; s < STATUS_N; s++) {
            uint64_t v = atomic_load_explicit(&M.requests[r][s], RELAXED);
            if (v == 0)
                continue;
            if ((rc = emitf(emit, arg, "usersigd_http_requests_total")) != 0 ||
                (rc = route_labels(emit, arg, r)) != 0) {
                if (rc > 0)
                    break;
                return -1;
            }
            if (emitf(emit, arg, ",status=\"%zu\"} %llu\n", s + STATUS_MIN,
                      (unsigned long long)v) != 0)
                return -1;
        }
    }
    if (family(emit, arg, "usersigd_http_request_duration_seconds", "histogram",
               "Time from a request's arrival to its reply (a stream: to its start), by route "
               "pattern.") != 0)
        return -1;
    for (size_t r = 0; r < N_ROUTES; r++) {
        uint64_t cum = 0;
        if (!route_used(r))
            continue;
        for (size_t b = 0; b < LATENCY_BUCKETS; b++) {
            cum += atomic_load_explicit(&M.latency[r][b], RELAXED);
            if ((rc = emitf(emit, arg, "usersigd_http_request_duration_seconds_bucket")) != 0 ||
                (rc = route_labels(emit, arg, r)) != 0) {
                if (rc > 0)
                    break;
                return -1;
            }
            if (b + 1 < LATENCY_BUCKETS)
                rc = emitf(emit, arg, ",le=\"%g\"} %llu\n", latency_bounds[b],
                           (unsigned long long)cum);
            else
                rc = emitf(emit, arg, ",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
            if (rc != 0)
                return -1;
        }
        /* _count is the +Inf bucket's value, read once, so that the two always agree. */
        if (emitf(emit, arg, "usersigd_http_request_duration_seconds_sum") != 0 ||
            route_labels(emit, arg, r) < 0)
            return -1;
        if (emitf(emit, arg, "} %.9f\n",
                  (double)atomic_load_explicit(&M.latency_sum_ns[r], RELAXED) / 1e9) != 0)
            return -1;
        if (emitf(emit, arg, "usersigd_http_request_duration_seconds_count") != 0 ||
            route_labels(emit, arg, r) < 0 ||
            emitf(emit, arg, "} %llu\n", (unsigned long long)cum) != 0)
            return -1;
    }
    return 0;
}

static int render_apps(emit_fn emit, void *arg, struct app_counter *c, const char *name,
                       const char *label, const char *help)
{
    unsigned n = atomic_load_explicit(&c->n, memory_order_acquire);
    if (n > METRICS_MAX_APPS)
        n = METRICS_MAX_APPS;
    if (family(emit, arg, name, "counter", help) != 0)
        return -1;
    for (size_t a = 0; a < METRICS_MAX_APPS + 2; a++) {
        char app[16];
        if (a < METRICS_MAX_APPS) {
            uint32_t k;
            if (a >= n || (k = atomic_load_explicit(&c->dense_key[a], memory_order_acquire)) == 0)
                continue;
            snprintf(app, sizeof app, "%u", (unsigned)k);
        } else {
            snprintf(app, sizeof app, "%s", a == APP_OTHER ? "other" : "none");
        }
        for (size_t o = 0; o < METRICS_MAX_OUTCOMES; o++) {
            uint64_t v = atomic_load_explicit(&c->count[a][o], RELAXED);
            const char *on = names_get(&c->outcomes, o);
            if (v == 0 || on == NULL)
                continue;
            if (emitf(emit, arg, "%s{sdkappid=\"%s\",%s=\"%s\"} %llu\n", name, app, label, on,
                      (unsigned long long)v) != 0)
                return -1;
        }
    }
    return 0;
}

static int render_rest(emit_fn emit, void *arg)
{
    uint64_t cum = 0;
    if (family(emit, arg, "usersigd_sign_group_size", "histogram",
               "Signs committed together in one transaction (group commit).") != 0)
        return -1;
    for (size_t b = 0; b < GROUP_BUCKETS; b++) {
        cum += atomic_load_explicit(&M.group[b], RELAXED);
        int rc = b + 1 < GROUP_BUCKETS
                     ? emitf(emit, arg, "usersigd_sign_group_size_bucket{le=\"%g\"} %llu\n",
                             group_bounds[b], (unsigned long long)cum)
                     : emitf(emit, arg, "usersigd_sign_group_size_bucket{le=\"+Inf\"} %llu\n",
                             (unsigned long long)cum);
        if (rc != 0)
            return -1;
    }
    if (emitf(emit, arg, "usersigd_sign_group_size_sum %llu\nusersigd_sign_group_size_count %llu\n",
              (unsigned long long)atomic_load_explicit(&M.group_sum, RELAXED),
              (unsigned long long)cum) != 0)
        return -1;
    if (family(emit, arg, "usersigd_sign_groups_total", "counter",
               "Signing groups committed, by the round trips their transaction took (1: the "
               "group was chained on this process's own last audit event).") != 0 ||
        emitf(emit, arg,
              "usersigd_sign_groups_total{round_trips=\"1\"} %llu\n"
              "usersigd_sign_groups_total{round_trips=\"2\"} %llu\n",
              (unsigned long long)atomic_load_explicit(&M.group_trips[0], RELAXED),
              (unsigned long long)atomic_load_explicit(&M.group_trips[1], RELAXED)) != 0)
        return -1;
    if (family(emit, arg, "usersigd_sign_group_head_moved_total", "counter",
               "Signing groups sent in one round trip that found the audit chain, an app or a "
               "token changed, and were done again in two.") != 0 ||
        emitf(emit, arg, "usersigd_sign_group_head_moved_total %llu\n",
              (unsigned long long)atomic_load_explicit(&M.group_head_moved, RELAXED)) != 0)
        return -1;

    if (family(emit, arg, "usersigd_batches_total", "counter", "Batches ended, by final state.") !=
        0)
        return -1;
    for (size_t i = 0; i < N_BATCH_STATES; i++)
        if (emitf(emit, arg, "usersigd_batches_total{state=\"%s\"} %llu\n", batch_states[i],
                  (unsigned long long)atomic_load_explicit(&M.batches[i], RELAXED)) != 0)
            return -1;
    if (family(emit, arg, "usersigd_batch_tokens_total", "counter",
               "UserSigs signed by batches, by the batch's final state.") != 0)
        return -1;
    for (size_t i = 0; i < N_BATCH_STATES; i++)
        if (emitf(emit, arg, "usersigd_batch_tokens_total{state=\"%s\"} %llu\n", batch_states[i],
                  (unsigned long long)atomic_load_explicit(&M.batch_tokens[i], RELAXED)) != 0)
            return -1;

    if (family(emit, arg, "usersigd_db_errors_total", "counter",
               "Database statements or connections that failed.") != 0 ||
        emitf(emit, arg, "usersigd_db_errors_total %llu\n",
              (unsigned long long)atomic_load_explicit(&M.db_errors, RELAXED)) != 0 ||
        family(emit, arg, "usersigd_db_reconnects_total", "counter",
               "Database connections re-established after a failure.") != 0 ||
        emitf(emit, arg, "usersigd_db_reconnects_total %llu\n",
              (unsigned long long)atomic_load_explicit(&M.db_reconnects, RELAXED)) != 0)
        return -1;
    return 0;
}

int metrics_render(emit_fn emit, void *arg)
{
    if (render_http(emit, arg) != 0 ||
        render_apps(emit, arg, &M.signs, "usersigd_signs_total", "outcome",
                    "UserSig signs by sdkappid and outcome (ok or the error code).") != 0 ||
        render_apps(emit, arg, &M.verifies, "usersigd_verifies_total", "verdict",
                    "UserSig verifies by sdkappid and verdict (ok, the failed check, or the "
                    "error code).") != 0 ||
        render_rest(emit, arg) != 0)
        return -1;
    return 0;
}
