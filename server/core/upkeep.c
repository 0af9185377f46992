/*
 * The upkeep job (upkeep.h): a loop-thread timer, one pool job at a time, the verify counts'
 * flush and the checkpoint writer's step when due. A refusal to checkpoint (a chain that does
 * not follow from the latest checkpoint) is logged when it first appears and when it changes,
 * not every tick.
 */
#include "upkeep.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "checkpoint.h"
#include "clock.h"
#include "log.h"
#include "op_audit.h"
#include "usage.h"

#define UPKEEP_LIVE_BATCH 50000 /* events a tick adds to key_live_identifiers, at most */

struct upkeep {
    struct service *svc;
    struct event *timer;
    struct dbpool_job job;
    bool busy; /* loop thread: a job is out */
    struct upkeep_config cfg;
    struct ckpt_policy pol;
    int64_t next_flush_ms; /* the job's (one at a time) */
    char last_refusal[CKPT_MSG_BUF];
};

static void job_run(struct store *st, void *ctx, struct dbpool_job *jobs)
{
    struct service *svc = ctx;
    (void)st;
    for (struct dbpool_job *j = jobs; j != NULL; j = j->next) {
        struct upkeep *u = j->arg;
        if (clock_monotonic_ms() >= u->next_flush_ms) {
            (void)usage_flush(svc->st);
            u->next_flush_ms = clock_monotonic_ms() + u->cfg.flush_seconds * 1000;
        }
        /* The identifiers a re-issue reads, kept off the signing path (store.h). */
        size_t added = 0;
        bool busy = false;
        if (store_live_catch_up(svc->st, UPKEEP_LIVE_BATCH, &added, &busy) != STORE_OK)
            added = 0; /* logged by the store; the next tick tries again */
        struct store_ckpt c;
        char msg[CKPT_MSG_BUF] = "";
        switch (ckpt_write_step(svc, &u->pol, &c, msg, sizeof msg)) {
        case CKPT_WRITTEN:
            log_info("audit checkpoint written at seq %lld", (long long)c.seq);
            u->last_refusal[0] = '\0';
            break;
        case CKPT_REFUSED:
            if (strcmp(msg, u->last_refusal) != 0) {
                log_error("audit checkpoints: %s", msg);
                op_audit_verify_failed(svc, NULL, "checkpoint_refused", 0, 0);
            }
            snprintf(u->last_refusal, sizeof u->last_refusal, "%s", msg);
            break;
        case CKPT_NOT_DUE:
        case CKPT_FAILED: /* logged where it failed; the next tick tries again */
            break;
        }
    }
}

static void job_done(struct dbpool_job *job)
{
    struct upkeep *u = job->arg;
    u->busy = false;
}

static void tick(evutil_socket_t fd, short what, void *arg)
{
    struct upkeep *u = arg;
    (void)fd;
    (void)what;
    if (u->busy)
        return;
    u->busy = true;
    u->job = (struct dbpool_job){.run = job_run, .done = job_done, .arg = u};
    service_run(u->svc, &u->job);
}

int upkeep_new(struct event_base *base, struct service *svc, const struct upkeep_config *cfg,
               struct upkeep **out)
{
    struct timeval tv = {UPKEEP_TICK_MS / 1000, (UPKEEP_TICK_MS % 1000) * 1000};
    struct upkeep *u = calloc(1, sizeof *u);

    *out = NULL;
    if (u == NULL) {
        log_error("upkeep: out of memory");
        return -1;
    }
    u->svc = svc;
    u->cfg = *cfg;
    if (u->cfg.flush_seconds < 1)
        u->cfg.flush_seconds = 1;
    u->pol = (struct ckpt_policy){
        .every_events = cfg->checkpoint_events,
        .every_seconds = cfg->checkpoint_seconds,
        .started_us = clock_realtime_us(),
    };
    u->next_flush_ms = clock_monotonic_ms() + u->cfg.flush_seconds * 1000;
    u->timer = event_new(base, -1, EV_PERSIST, tick, u);
    if (u->timer == NULL || event_add(u->timer, &tv) != 0) {
        log_error("upkeep: cannot set up its timer");
        upkeep_free(u);
        return -1;
    }
    if (cfg->checkpoint_events > 0 || cfg->checkpoint_seconds > 0)
        log_info("audit checkpoints: every %lld events or %lld s (0: not by that)",
                 (long long)cfg->checkpoint_events, (long long)cfg->checkpoint_seconds);
    else
        log_info("audit checkpoints: off");
    *out = u;
    return 0;
}

void upkeep_free(struct upkeep *u)
{
    if (u == NULL)
        return;
    if (u->timer != NULL)
        event_free(u->timer);
    if (u->svc != NULL && u->svc->st != NULL)
        (void)usage_flush(u->svc->st);
    free(u);
}
