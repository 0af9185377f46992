/*
 * Token buckets in a bounded open-addressing table (ratelimit.h). Each bucket keeps its tokens
 * as a double refilled from the time it was last touched, so a take is a few arithmetic steps
 * under the mutex, with no allocation and no I/O.
 */
#include "ratelimit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct bucket {
    uint64_t key; /* 0: empty */
    double tokens;
    double rate;
    int64_t last_ns;
};

struct ratelimit {
    pthread_mutex_t mu;
    struct bucket slots[RATELIMIT_SLOTS];
};

struct ratelimit *ratelimit_new(void)
{
    struct ratelimit *rl = calloc(1, sizeof *rl);
    if (rl == NULL)
        return NULL;
    if (pthread_mutex_init(&rl->mu, NULL) != 0) {
        free(rl);
        return NULL;
    }
    return rl;
}

void ratelimit_free(struct ratelimit *rl)
{
    if (rl == NULL)
        return;
    pthread_mutex_destroy(&rl->mu);
    free(rl);
}

static uint64_t key_of(const struct ratelimit_key *k)
{
    /* ids are >= 1 (token ids, sdkappids): a key is never 0, the empty slot's */
    return ((uint64_t)k->kind << 56) | ((uint64_t)k->id & UINT64_C(0x00ffffffffffffff));
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= UINT64_C(0xff51afd7ed558ccd);
    x ^= x >> 33;
    return x;
}

static double burst_of(double rate)
{
    return rate < 1.0 ? 1.0 : rate;
}

static bool among(struct bucket *const *list, size_t n, const struct bucket *b)
{
    for (size_t i = 0; i < n; i++)
        if (list[i] == b)
            return true;
    return false;
}

/* The bucket of key k, refilled to now (made full when new or dropped and made again); never
 * one of the n_taken buckets already found for this take. */
static struct bucket *bucket_at(struct ratelimit *rl, const struct ratelimit_key *k, int64_t now_ns,
                                struct bucket *const *taken, size_t n_taken)
{
    uint64_t key = key_of(k);
    size_t home = (size_t)(mix(key) & (RATELIMIT_SLOTS - 1));
    struct bucket *victim = NULL;
    for (size_t i = 0; i < RATELIMIT_PROBE; i++) {
        struct bucket *b = &rl->slots[(home + i) & (RATELIMIT_SLOTS - 1)];
        if (b->key == key) {
            if (b->rate != k->rate) { /* the limit changed: keep what is left, within it */
                b->rate = k->rate;
                if (b->tokens > burst_of(k->rate))
                    b->tokens = burst_of(k->rate);
            }
            double add = (double)(now_ns - b->last_ns) / 1e9 * b->rate;
            if (add > 0) {
                b->tokens += add;
                if (b->tokens > burst_of(b->rate))
                    b->tokens = burst_of(b->rate);
            }
            if (now_ns > b->last_ns)
                b->last_ns = now_ns;
            return b;
        }
        if (among(taken, n_taken, b))
            continue;
        if (b->key == 0) {
            if (victim == NULL || victim->key != 0)
                victim = b;
        } else if (victim == NULL || (victim->key != 0 && b->last_ns < victim->last_ns)) {
            victim = b;
        }
    }
    if (victim == NULL) /* every slot of the window is this take's: cannot be, n is small */
        return NULL;
    victim->key = key;
    victim->rate = k->rate;
    victim->tokens = burst_of(k->rate);
    victim->last_ns = now_ns;
    return victim;
}

int ratelimit_take(struct ratelimit *rl, const struct ratelimit_key *keys, size_t n, int64_t now_ns,
                   int64_t *retry_after_ms)
{
    struct bucket *b[RATELIMIT_MAX_KEYS];
    int refused = -1;

    *retry_after_ms = 0;
    if (rl == NULL)
        return -1;
    if (n > RATELIMIT_MAX_KEYS)
        n = RATELIMIT_MAX_KEYS;
    pthread_mutex_lock(&rl->mu);
    for (size_t i = 0; i < n; i++)
        b[i] = NULL;
    for (size_t i = 0; i < n; i++) {
        if (keys[i].rate <= 0)
            continue;
        b[i] = bucket_at(rl, &keys[i], now_ns, b, i);
        if (b[i] == NULL)
            continue;
        if (refused < 0 && b[i]->tokens < 1.0) {
            refused = (int)i;
            /* rounded up: a retry after it finds the token */
            *retry_after_ms = (int64_t)((1.0 - b[i]->tokens) / b[i]->rate * 1000.0) + 1;
        }
    }
    if (refused < 0)
        for (size_t i = 0; i < n; i++)
            if (b[i] != NULL)
                b[i]->tokens -= 1.0;
    pthread_mutex_unlock(&rl->mu);
    return refused;
}
