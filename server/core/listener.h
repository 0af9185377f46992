/*
 * The cache's listener: a thread with a database connection of its own that LISTENs on
 * usersigd_cache and evicts what each notification names (cache_notify). While it is not
 * connected it keeps caching off (cache_set_listening): a notification missed then could leave a
 * stale entry, so nothing is cached until it listens again. It also LISTENs on usersigd_hold,
 * Tencent's 70050 holds that a process met (store_notify_hold), and hands each to the hook
 * listener_on_hold set.
 */
#ifndef LISTENER_H
#define LISTENER_H

#include "cache.h"

#define LISTENER_WUR __attribute__((warn_unused_result))

struct listener;

/* Starts the thread; it connects with conninfo (retrying every second while it cannot), and
 * returns at once. 0 with *out set, or -1 (logged). */
int listener_start(const char *conninfo, struct cache *cache, struct listener **out) LISTENER_WUR;

/* A notification on usersigd_hold (a 70050 hold that a process, this one included, told of, or
 * anything any role that can connect sent there): its payload, unchecked. On the listener's
 * thread. */
typedef void (*listener_hold_fn)(void *arg, const char *payload);

/* Sets the hook (NULL: none). Once this returns, the old hook is not running and is never called
 * again. */
void listener_on_hold(struct listener *l, listener_hold_fn fn, void *arg);

/* True once the first LISTEN succeeded and while connected. */
bool listener_ready(struct listener *l);

/* Stops and joins the thread, closes its connection and turns caching off. Accepts NULL. */
void listener_stop(struct listener *l);

#endif
