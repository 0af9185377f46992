/*
 * Verify counts per key version (usage.h): a fixed open-addressing table of (sdkappid, version)
 * slots claimed with a compare-and-swap, each with a total (for the metrics) and a part not yet
 * written (for the flush) per verdict, all relaxed atomics; nothing here locks or allocates on
 * the counting path.
 */
#include "usage.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "usersig.h"

#define RELAXED memory_order_relaxed
#define SLOTS (2 * USAGE_MAX_KEYS)

/* The verdicts: the codec's, then the core's own (verify.c), then "other". */
static const char *const CORE_VERDICTS[] = {"no_key", "key_pending", "key_disabled",
                                            "verify_window_closed"};
#define N_CORE (sizeof CORE_VERDICTS / sizeof CORE_VERDICTS[0])
#define N_VERDICTS (USERSIG_VERDICT_COUNT + N_CORE + 1)
#define VERDICT_OTHER (N_VERDICTS - 1)

struct slot {
    _Atomic uint64_t key; /* sdkappid << 32 | version; 0: free (sdkappid is never 0) */
    _Atomic uint64_t total[N_VERDICTS];
    _Atomic uint64_t unwritten[N_VERDICTS];
};

static struct slot table[SLOTS];
static struct slot overflow; /* pairs past USAGE_MAX_KEYS: metrics only */
static _Atomic unsigned claimed;
static _Atomic int overflow_logged;

static const char *verdict_name(size_t i)
{
    if (i < USERSIG_VERDICT_COUNT)
        return usersig_verdict_name((enum usersig_verdict)i);
    if (i < USERSIG_VERDICT_COUNT + N_CORE)
        return CORE_VERDICTS[i - USERSIG_VERDICT_COUNT];
    return "other";
}

static size_t verdict_index(const char *v)
{
    if (v == NULL)
        return VERDICT_OTHER;
    for (size_t i = 0; i < VERDICT_OTHER; i++)
        if (strcmp(v, verdict_name(i)) == 0)
            return i;
    return VERDICT_OTHER;
}

static struct slot *slot_of(uint32_t sdkappid, uint32_t version)
{
    uint64_t key = (uint64_t)sdkappid << 32 | version;
    size_t h = (size_t)((key * UINT64_C(0x9E3779B97F4A7C15)) >> 40) % SLOTS;

    for (size_t probe = 0; probe < SLOTS; probe++, h = (h + 1) % SLOTS) {
        uint64_t k = atomic_load_explicit(&table[h].key, memory_order_acquire);
        if (k == key)
            return &table[h];
        if (k != 0)
            continue;
        if (atomic_load_explicit(&claimed, RELAXED) >= USAGE_MAX_KEYS)
            break;
        uint64_t expect = 0;
        if (atomic_compare_exchange_strong(&table[h].key, &expect, key)) {
            atomic_fetch_add_explicit(&claimed, 1, RELAXED);
            return &table[h];
        }
        if (expect == key)
            return &table[h];
    }
    if (atomic_exchange(&overflow_logged, 1) == 0)
        log_warn("usage: more than %d key versions verified by this process: the verifies of "
                 "the others are counted under sdkappid=\"other\" and not stored",
                 USAGE_MAX_KEYS);
    return &overflow;
}

void usage_verify(uint32_t sdkappid, uint32_t version, const char *verdict)
{
    if (sdkappid == 0)
        return;
    struct slot *s = slot_of(sdkappid, version);
    size_t v = verdict_index(verdict);
    atomic_fetch_add_explicit(&s->total[v], 1, RELAXED);
    if (s != &overflow)
        atomic_fetch_add_explicit(&s->unwritten[v], 1, RELAXED);
}

int usage_flush(struct store *st)
{
    struct store_verify_count *rows = NULL;
    size_t n = 0, cap = 0;
    int ret = 0;

    for (size_t i = 0; i < SLOTS; i++) {
        uint64_t key = atomic_load_explicit(&table[i].key, memory_order_acquire);
        if (key == 0)
            continue;
        for (size_t v = 0; v < N_VERDICTS; v++) {
            if (atomic_load_explicit(&table[i].unwritten[v], RELAXED) == 0)
                continue;
            if (n == cap) {
                size_t ncap = cap == 0 ? 64 : 2 * cap;
                struct store_verify_count *r = realloc(rows, ncap * sizeof *r);
                if (r == NULL) {
                    log_error("usage: out of memory; the counts are kept for the next flush");
                    goto put_back;
                }
                rows = r;
                cap = ncap;
            }
            uint64_t d = atomic_exchange_explicit(&table[i].unwritten[v], 0, RELAXED);
            if (d == 0)
                continue;
            rows[n].sdkappid = (uint32_t)(key >> 32);
            rows[n].version = (uint32_t)key;
            snprintf(rows[n].verdict, sizeof rows[n].verdict, "%s", verdict_name(v));
            rows[n].count = d;
            n++;
        }
    }
    if (n == 0 || store_verify_counts_add(st, rows, n) == STORE_OK) {
        free(rows);
        return 0;
    }
    log_warn("usage: cannot store %zu verify count(s); kept for the next flush", n);
put_back:
    ret = -1;
    /* What was taken goes back where it came from, to be written next time. */
    for (size_t j = 0; j < n; j++) {
        struct slot *s = slot_of(rows[j].sdkappid, rows[j].version);
        if (s != &overflow)
            atomic_fetch_add_explicit(&s->unwritten[verdict_index(rows[j].verdict)], rows[j].count,
                                      RELAXED);
    }
    free(rows);
    return ret;
}

static int emitf(int (*emit)(void *, const char *, size_t), void *arg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int emitf(int (*emit)(void *, const char *, size_t), void *arg, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof buf)
        return -1;
    return emit(arg, buf, (size_t)n);
}

int usage_render(int (*emit)(void *arg, const char *text, size_t len), void *arg)
{
    static const char name[] = "usersigd_key_verifies_total";
    if (emitf(emit, arg,
              "# HELP %s Verifies by the key version that signed the token (version \"none\": no "
              "version of the app matched) and verdict, counted by this process.\n# TYPE %s "
              "counter\n",
              name, name) != 0)
        return -1;
    for (size_t i = 0; i < SLOTS; i++) {
        uint64_t key = atomic_load_explicit(&table[i].key, memory_order_acquire);
        if (key == 0)
            continue;
        char version[16];
        if ((uint32_t)key == 0)
            snprintf(version, sizeof version, "none");
        else
            snprintf(version, sizeof version, "%u", (unsigned)(uint32_t)key);
        for (size_t v = 0; v < N_VERDICTS; v++) {
            uint64_t c = atomic_load_explicit(&table[i].total[v], RELAXED);
            if (c != 0 &&
                emitf(emit, arg, "%s{sdkappid=\"%u\",version=\"%s\",verdict=\"%s\"} %llu\n", name,
                      (unsigned)(key >> 32), version, verdict_name(v), (unsigned long long)c) != 0)
                return -1;
        }
    }
    for (size_t v = 0; v < N_VERDICTS; v++) {
        uint64_t c = atomic_load_explicit(&overflow.total[v], RELAXED);
        if (c != 0 &&
            emitf(emit, arg, "%s{sdkappid=\"other\",version=\"other\",verdict=\"%s\"} %llu\n", name,
                  verdict_name(v), (unsigned long long)c) != 0)
            return -1;
    }
    return 0;
}

enum store_rc usage_read(struct store *st, uint32_t sdkappid, struct store_verify_count **out,
                         size_t *n)
{
    return store_verify_counts_get(st, sdkappid, out, n);
}
