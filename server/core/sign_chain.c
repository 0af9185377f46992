/*
 * What one process knows of the audit chain's head (sign.h, "struct sign_chain"): the last event
 * one of its groups appended, whether the last group to read the head under the lock found it
 * still last, and the database's clock against this host's. Shared by the process's database
 * threads under a mutex.
 */
#include "sign_chain_int.h"

#include "clock.h"

#include <openssl/crypto.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct sign_chain {
    pthread_mutex_t mu;
    bool known; /* seq, mac, at: the last event a group of this process wrote */
    bool ours;  /* ... and the last group to read the head found it still last */
    int64_t seq, at_us;
    uint8_t mac[AUDIT_MAC_LEN];
    int64_t clock_offset_us; /* the database's clock minus this host's, as last read */
    struct sign_chain_stats stats;
};

struct sign_chain *sign_chain_new(void)
{
    struct sign_chain *c = calloc(1, sizeof *c);
    if (c != NULL && pthread_mutex_init(&c->mu, NULL) != 0) {
        free(c);
        c = NULL;
    }
    return c;
}

void sign_chain_free(struct sign_chain *c)
{
    if (c == NULL)
        return;
    pthread_mutex_destroy(&c->mu);
    free(c);
}

void sign_chain_stats(struct sign_chain *c, struct sign_chain_stats *out)
{
    pthread_mutex_lock(&c->mu);
    *out = c->stats;
    pthread_mutex_unlock(&c->mu);
}

bool sign_chain_head(struct sign_chain *c, struct store_group *g)
{
    if (c == NULL)
        return false;
    pthread_mutex_lock(&c->mu);
    bool ours = c->known && c->ours;
    if (ours) {
        g->last_seq = c->seq;
        memcpy(g->last_mac, c->mac, AUDIT_MAC_LEN);
        g->last_at_us = c->at_us;
        g->now_us = clock_realtime_us() + c->clock_offset_us;
    }
    pthread_mutex_unlock(&c->mu);
    return ours;
}

void sign_chain_wrote(struct sign_chain *c, const struct store_group *g, bool read,
                      int64_t offset_us, const struct audit_event *last)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    if (read) {
        c->ours = c->known && g->last_seq == c->seq &&
                  CRYPTO_memcmp(g->last_mac, c->mac, AUDIT_MAC_LEN) == 0;
        c->clock_offset_us = offset_us;
        c->stats.two_trips++;
    } else {
        c->stats.one_trip++;
    }
    if (last != NULL) {
        c->known = true;
        c->seq = last->seq;
        c->at_us = last->at_us;
        memcpy(c->mac, last->mac, AUDIT_MAC_LEN);
    }
    pthread_mutex_unlock(&c->mu);
}

void sign_chain_lost(struct sign_chain *c, bool head_moved)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->mu);
    c->ours = false;
    if (head_moved)
        c->stats.head_moved++;
    pthread_mutex_unlock(&c->mu);
}
