/*
 * GET /metrics: the Prometheus scrape, in the text exposition format. The process's counters
 * and histograms (base/metrics.c), then what is read at the scrape: the audit chain's length
 * (its last seq, read on a database thread), the caches' hits and misses, the database pool's
 * queue, open connections and the resident memory. Behind a token whose role may read metrics.
 */
#include <event2/buffer.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "gateway.h"
#include "handlers.h"
#include "metrics.h"
#include "op_apps.h"
#include "pipeline.h"
#include "usage.h"
#include "service.h"

#include "clock.h"

#define CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define SCHEDULE_APPS_MAX 1000 /* apps whose active key's age is shown (the first, by sdkappid) */

struct scrape {
    struct dbpool_job job;
    struct api_request *r;
    int64_t last_seq;
    bool seq_ok;
    struct store_key_schedule *sched; /* the active versions' ages (free()d with the scrape) */
    size_t n_sched;
    bool sched_ok;
};

static int emit_evbuffer(void *arg, const char *text, size_t len)
{
    return evbuffer_add(arg, text, len) == 0 ? 0 : -1;
}

/* On a database thread: the chain's last seq, which is its length (seqs start at 1, no gaps). */
static void scrape_job(struct store *st, void *ctx, struct dbpool_job *jobs)
{
    (void)ctx;
    for (struct dbpool_job *j = jobs; j != NULL; j = j->next) {
        struct scrape *sc = j->arg;
        uint8_t mac[32];
        int64_t at, now;
        sc->seq_ok = store_audit_last(st, &sc->last_seq, mac, &at, &now) == STORE_OK;
        sc->sched_ok =
            store_key_schedules(st, SCHEDULE_APPS_MAX, &sc->sched, &sc->n_sched) == STORE_OK;
    }
}

static int gauge(struct evbuffer *out, const char *name, const char *type, const char *help,
                 const char *labels, double value)
{
    return evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s%s %.17g\n", name, help, name,
                               type, name, labels, value) < 0
               ? -1
               : 0;
}

/* Resident memory from /proc/self/statm (pages), or -1. */
static double resident_bytes(void)
{
    unsigned long size, resident;
    long page = sysconf(_SC_PAGESIZE);
    FILE *f = fopen("/proc/self/statm", "re");
    int n = f != NULL ? fscanf(f, "%lu %lu", &size, &resident) : 0;
    if (f != NULL)
        fclose(f);
    return n == 2 && page > 0 ? (double)resident * (double)page : -1;
}

/* Each app's active key version: its age, and where the app has a rotate_every, that and
 * whether the age is past it. Never acted on: rotation is the operator's (keys come from
 * Tencent's console). */
static int render_schedules(const struct scrape *sc, struct evbuffer *out)
{
    int bad = 0;
    if (!sc->sched_ok)
        return 0;
    int64_t now = clock_realtime_us();
    bad |= evbuffer_add_printf(out, "# HELP usersigd_key_age_seconds Seconds since the active key "
                                    "version of an app was activated.\n"
                                    "# TYPE usersigd_key_age_seconds gauge\n") < 0;
    for (size_t i = 0; i < sc->n_sched; i++) {
        int64_t age;
        (void)op_apps_past_rotate_every(0, sc->sched[i].activated_at_us, now, &age);
        if (age >= 0)
            bad |= evbuffer_add_printf(out,
                                       "usersigd_key_age_seconds{sdkappid=\"%u\",version=\"%u\"} "
                                       "%" PRId64 "\n",
                                       sc->sched[i].sdkappid, sc->sched[i].version, age) < 0;
    }
    bad |= evbuffer_add_printf(out, "# HELP usersigd_key_rotate_every_seconds The app's "
                                    "rotate_every (cryptoperiod), for apps that set one.\n"
                                    "# TYPE usersigd_key_rotate_every_seconds gauge\n") < 0;
    for (size_t i = 0; i < sc->n_sched; i++)
        if (sc->sched[i].rotate_every != 0)
            bad |=
                evbuffer_add_printf(out, "usersigd_key_rotate_every_seconds{sdkappid=\"%u\"} %u\n",
                                    sc->sched[i].sdkappid, sc->sched[i].rotate_every) < 0;
    bad |= evbuffer_add_printf(out, "# HELP usersigd_key_past_rotate_every 1 when the active key "
                                    "version is older than the app's rotate_every, else 0.\n"
                                    "# TYPE usersigd_key_past_rotate_every gauge\n") < 0;
    for (size_t i = 0; i < sc->n_sched; i++) {
        int64_t age;
        bool past = op_apps_past_rotate_every(sc->sched[i].rotate_every,
                                              sc->sched[i].activated_at_us, now, &age);
        if (sc->sched[i].rotate_every != 0 && age >= 0)
            bad |= evbuffer_add_printf(
                       out,
                       "usersigd_key_past_rotate_every{sdkappid=\"%u\",version=\"%u\"} "
                       "%d\n",
                       sc->sched[i].sdkappid, sc->sched[i].version, past ? 1 : 0) < 0;
    }
    return bad != 0 ? -1 : 0;
}

static int render_scrape(struct api_request *r, const struct scrape *sc, struct evbuffer *out)
{
    struct service *svc = r->ctx;
    struct api_server_stats hs;
    int64_t conns = api_request_open_connections(r);
    double rss = resident_bytes();
    int bad = 0;

    if (metrics_render(emit_evbuffer, out) != 0 || usage_render(emit_evbuffer, out) != 0)
        return -1;
    api_request_server_stats(r, &hs);
    if (conns >= 0)
        bad |= gauge(out, "usersigd_http_open_connections", "gauge",
                     "Client connections open on the admin API.", "", (double)conns);
    bad |= gauge(out, "usersigd_http_waiting_requests", "gauge",
                 "Requests waiting for a token check, a database thread or a deferred reply.", "",
                 (double)(hs.auth_waiting + hs.deferred));
    bad |= gauge(out, "usersigd_http_streams", "gauge", "Streamed replies (batches) in progress.",
                 "", (double)hs.in_flight);
    if (rss >= 0)
        bad |= gauge(out, "process_resident_memory_bytes", "gauge",
                     "Resident memory size in bytes.", "", rss);
    if (sc->seq_ok)
        bad |= gauge(out, "usersigd_audit_chain_length", "gauge",
                     "Events in the audit chain (the last event's seq).", "", (double)sc->last_seq);
    bad |= gauge(out, "usersigd_audit_chain_read_ok", "gauge",
                 "1 when this scrape could read the audit chain's last event, else 0.", "",
                 sc->seq_ok ? 1 : 0);
    bad |= render_schedules(sc, out);
    if (svc != NULL && svc->cache != NULL) {
        struct cache_stats cs;
        cache_get_stats(svc->cache, &cs);
        bad |= evbuffer_add_printf(
                   out,
                   "# HELP usersigd_cache_hits_total Lookups answered from the cache, by kind.\n"
                   "# TYPE usersigd_cache_hits_total counter\n"
                   "usersigd_cache_hits_total{kind=\"app\"} %" PRIu64 "\n"
                   "usersigd_cache_hits_total{kind=\"token\"} %" PRIu64 "\n"
                   "# HELP usersigd_cache_misses_total Lookups that read the database, by kind.\n"
                   "# TYPE usersigd_cache_misses_total counter\n"
                   "usersigd_cache_misses_total{kind=\"app\"} %" PRIu64 "\n"
                   "usersigd_cache_misses_total{kind=\"token\"} %" PRIu64 "\n",
                   cs.app_hits, cs.token_hits, cs.app_misses, cs.token_misses) < 0;
        bad |= evbuffer_add_printf(out,
                                   "# HELP usersigd_cache_entries Entries in the cache, by kind.\n"
                                   "# TYPE usersigd_cache_entries gauge\n"
                                   "usersigd_cache_entries{kind=\"app\"} %zu\n"
                                   "usersigd_cache_entries{kind=\"token\"} %zu\n",
                                   cs.apps, cs.tokens) < 0;
        bad |= gauge(out, "usersigd_cache_listening", "gauge",
                     "1 while the cache's invalidation listener is connected (caching on).", "",
                     cs.listening ? 1 : 0);
    }
    if (svc != NULL && svc->pool != NULL) {
        struct dbpool_stats ps;
        dbpool_get_stats(svc->pool, &ps);
        bad |= gauge(out, "usersigd_db_pool_queued_jobs", "gauge",
                     "Jobs waiting for a database thread.", "", (double)ps.queued);
        bad |= gauge(out, "usersigd_db_pool_running_jobs", "gauge",
                     "Jobs running on database threads.", "", (double)ps.running);
        bad |= gauge(out, "usersigd_db_pool_connections", "gauge",
                     "Database threads, each with its connection.", "", (double)ps.size);
    }
    if (svc != NULL && svc->pipeline != NULL) {
        struct pipeline_stats bs;
        pipeline_get_stats(svc->pipeline, &bs);
        bad |= gauge(out, "usersigd_batch_workers", "gauge", "Batch signing's worker threads.", "",
                     (double)bs.workers);
        bad |= gauge(out, "usersigd_batch_workers_allowed", "gauge",
                     "How many batch workers may sign at once: fewer than the workers while "
                     "single signs wait, which leaves a core to them.",
                     "", (double)bs.allowed);
        bad |= gauge(out, "usersigd_batch_workers_signing", "gauge",
                     "Batch workers signing a block now.", "", (double)bs.signing);
        bad |= gauge(out, "usersigd_batch_workers_paused", "gauge",
                     "Batch workers holding a block, paused to leave a core to single signs.", "",
                     (double)bs.paused);
    }
    struct tim *tim = svc != NULL && svc->gateway != NULL ? gateway_tim(svc->gateway) : NULL;
    if (tim != NULL) {
        struct tim_stats ts;
        tim_get_stats(tim, &ts);
        bad |= evbuffer_add_printf(
                   out,
                   "# HELP usersigd_tencent_holds_total Tencent's 70050 holds of an app's "
                   "administrator account taken, by origin: answered to this process, or told by "
                   "a process (this one included) through the database.\n"
                   "# TYPE usersigd_tencent_holds_total counter\n"
                   "usersigd_tencent_holds_total{origin=\"answered\"} %" PRIu64 "\n"
                   "usersigd_tencent_holds_total{origin=\"told\"} %" PRIu64 "\n",
                   ts.holds_answered, ts.holds_told) < 0;
        bad |= gauge(out, "usersigd_tencent_held_calls_total", "counter",
                     "Calls to Tencent's REST API ended unsent because their administrator "
                     "account is held after a 70050.",
                     "", (double)ts.held_calls);
        bad |= gauge(out, "usersigd_tencent_hold_notices_refused_total", "counter",
                     "Notices on the hold channel that no process with this keyring made "
                     "(malformed, or their MAC did not match), ignored.",
                     "", (double)gateway_hold_notices_refused(svc->gateway));
    }
    return bad != 0 ? -1 : 0;
}

static void scrape_done(struct dbpool_job *job)
{
    struct scrape *sc = job->arg;
    struct api_request *r = sc->r;
    struct evbuffer *out = evbuffer_new();

    if (job->cancelled)
        sc->seq_ok = false;
    if (out == NULL || render_scrape(r, sc, out) != 0) {
        api_reply_error(r, API_ERR_INTERNAL, "out of memory rendering the metrics");
    } else {
        size_t len = evbuffer_get_length(out);
        const char *text = (const char *)evbuffer_pullup(out, -1);
        if (text == NULL && len > 0)
            api_reply_error(r, API_ERR_INTERNAL, "out of memory rendering the metrics");
        else
            api_reply_text(r, 200, CONTENT_TYPE, text != NULL ? text : "", len);
    }
    if (out != NULL)
        evbuffer_free(out);
    free(sc->sched);
    free(sc);
}

/* On the loop thread; the one database read runs on a pool thread, the reply leaves from
 * scrape_done back on the loop (where the server's own counters are read). */
void handle_metrics(struct api_request *r)
{
    struct scrape *sc = calloc(1, sizeof *sc);
    if (sc == NULL) {
        api_reply_error(r, API_ERR_INTERNAL, "out of memory");
        return;
    }
    sc->r = r;
    sc->job.run = scrape_job;
    sc->job.done = scrape_done;
    sc->job.arg = sc;
    api_request_defer(r);
    service_run(r->ctx, &sc->job);
}
