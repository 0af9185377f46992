/*
 * The cache's listener: a thread with a database connection of its own that LISTENs on
 * usersigd_cache and evicts what each notification names (cache_notify). While it is not
 * connected it keeps caching off (cache_set_listening): a notification missed then could leave a
 * stale entry, so nothing is cached until it listens again.
 */
#ifndef LISTENER_H
#define LISTENER_H

#include "cache.h"

#define LISTENER_WUR __attribute__((warn_unused_result))

struct listener;

/* Starts the thread; it connects with conninfo (retrying every second while it cannot), and
 * returns at once. 0 with *out set, or -1 (logged). */
int listener_start(const char *conninfo, struct cache *cache, struct listener **out) LISTENER_WUR;

/* True once the first LISTEN succeeded and while connected. */
bool listener_ready(struct listener *l);

/* Stops and joins the thread, closes its connection and turns caching off. Accepts NULL. */
void listener_stop(struct listener *l);

#endif
