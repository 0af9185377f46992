/*
 * The periodic work of a serve process that is not a request: the verify counts written to the
 * database (usage.h) and the audit checkpoints (checkpoint.h). A timer on the loop thread ticks
 * every UPKEEP_TICK_MS and, unless the last run is still going, hands one job to the database
 * pool, which does what is due on a pool thread: never a database call on the loop, and never
 * inside a signing group (the checkpoint writer reads the chain's head without the audit lock).
 *
 * Threads: upkeep_new and upkeep_free on the loop thread; the job on a pool thread.
 */
#ifndef UPKEEP_H
#define UPKEEP_H

#include <event2/event.h>
#include <stdint.h>

#include "service.h"

#define UPKEEP_WUR __attribute__((warn_unused_result))
#define UPKEEP_TICK_MS 1000

struct upkeep;

struct upkeep_config {
    int64_t checkpoint_events;  /* a checkpoint every this many events; 0: not by count */
    int64_t checkpoint_seconds; /* ... or this often when events came; 0: not by time */
    int64_t flush_seconds;      /* verify counts written this often (>= 1) */
};

/* Arms the timer; the job runs on svc->pool. 0 with *out, or -1 (logged). */
int upkeep_new(struct event_base *base, struct service *svc, const struct upkeep_config *cfg,
               struct upkeep **out) UPKEEP_WUR;

/* At stop, on the loop thread, once the pool is freed (no job of it in flight): the verify
 * counts not yet written get one last flush on svc's own connection. Accepts NULL. */
void upkeep_free(struct upkeep *u);

#endif
