/*
 * The cache's listener thread (listener.h).
 */
#include "listener.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "store.h"

#define RETRY_MS 1000

struct listener {
    pthread_t tid;
    char *conninfo;
    struct cache *cache;
    int wake[2]; /* a pipe: a byte in it stops the thread */
    atomic_bool stop, ready;
    pthread_mutex_t hook_mu; /* held while the hook runs */
    listener_hold_fn on_hold;
    void *hold_arg;
};

static void on_note(void *arg, const char *channel, const char *payload)
{
    struct listener *l = arg;
    if (strcmp(channel, STORE_CHANNEL_HOLD) != 0) {
        cache_notify(l->cache, payload);
        return;
    }
    pthread_mutex_lock(&l->hook_mu);
    if (l->on_hold != NULL)
        l->on_hold(l->hold_arg, payload);
    pthread_mutex_unlock(&l->hook_mu);
}

/* Sleeps up to ms, waking early when stopped. */
static void pause_ms(struct listener *l, int ms)
{
    struct pollfd p = {.fd = l->wake[0], .events = POLLIN};
    (void)poll(&p, 1, ms);
}

static void *listener_main(void *arg)
{
    struct listener *l = arg;
    bool warned = false;

    while (!atomic_load(&l->stop)) {
        struct store *st = NULL;
        if (store_open(l->conninfo, &st) != STORE_OK || store_listen(st) != STORE_OK) {
            store_close(st);
            if (!warned)
                log_warn("cache: cannot listen for changes; caching is off until it can");
            warned = true;
            pause_ms(l, RETRY_MS);
            continue;
        }
        if (warned)
            log_info("cache: listening for changes again; caching is on");
        warned = false;
        cache_set_listening(l->cache, true);
        atomic_store(&l->ready, true);
        while (!atomic_load(&l->stop) &&
               store_notify_wait(st, l->wake[0], -1, on_note, l) == STORE_OK) {
        }
        atomic_store(&l->ready, false);
        cache_set_listening(l->cache, false);
        store_close(st);
        if (!atomic_load(&l->stop)) {
            log_warn("cache: the connection for change notifications was lost; caching is off "
                     "until it is back");
            warned = true;
            pause_ms(l, RETRY_MS);
        }
    }
    return NULL;
}

int listener_start(const char *conninfo, struct cache *cache, struct listener **out)
{
    struct listener *l = calloc(1, sizeof *l);
    *out = NULL;
    if (l == NULL || (l->conninfo = strdup(conninfo)) == NULL) {
        log_error("cache: out of memory");
        free(l);
        return -1;
    }
    l->cache = cache;
    atomic_init(&l->stop, false);
    atomic_init(&l->ready, false);
    if (pthread_mutex_init(&l->hook_mu, NULL) != 0) {
        log_error("cache: cannot make a mutex");
        free(l->conninfo);
        free(l);
        return -1;
    }
    if (pipe2(l->wake, O_CLOEXEC | O_NONBLOCK) != 0) {
        log_error("cache: pipe: %s", strerror(errno));
        pthread_mutex_destroy(&l->hook_mu);
        free(l->conninfo);
        free(l);
        return -1;
    }
    if (pthread_create(&l->tid, NULL, listener_main, l) != 0) {
        log_error("cache: cannot start the listener thread");
        close(l->wake[0]);
        close(l->wake[1]);
        pthread_mutex_destroy(&l->hook_mu);
        free(l->conninfo);
        free(l);
        return -1;
    }
    *out = l;
    return 0;
}

void listener_on_hold(struct listener *l, listener_hold_fn fn, void *arg)
{
    if (l == NULL)
        return;
    pthread_mutex_lock(&l->hook_mu);
    l->on_hold = fn;
    l->hold_arg = arg;
    pthread_mutex_unlock(&l->hook_mu);
}

bool listener_ready(struct listener *l)
{
    return l != NULL && atomic_load(&l->ready);
}

void listener_stop(struct listener *l)
{
    if (l == NULL)
        return;
    atomic_store(&l->stop, true);
    ssize_t w = write(l->wake[1], "x", 1);
    (void)w;
    pthread_join(l->tid, NULL);
    close(l->wake[0]);
    close(l->wake[1]);
    pthread_mutex_destroy(&l->hook_mu);
    cache_set_listening(l->cache, false);
    OPENSSL_cleanse(l->conninfo, strlen(l->conninfo)); /* it may hold a password */
    free(l->conninfo);
    free(l);
}
