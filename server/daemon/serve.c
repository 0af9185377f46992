/*
 * `usersigd serve` (serve.h): the checks before anything is created, the startup order, the
 * first admin token, and the event loop with its signals. Signal handlers do no work: boot.c's
 * only note a signal until the loop runs, then libevent's evsignal hands each one to a callback
 * on the loop thread.
 */
#include "serve.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "http.h"
#include "log.h"
#include "migrate.h"
#include "authn.h"
#include "batches.h"
#include "offload.h"
#include "dbpool.h"
#include "gateway.h"
#include "listener.h"
#include "pipeline.h"
#include "routes.h"
#include "ratelimit.h"
#include "sign.h"
#include "tls.h"
#include "tokens.h"
#include "ui.h"
#include "upkeep.h"
#include "webhooks.h"

#define SHUTDOWN_GRACE_MS 10000 /* streamed replies may finish within this after a signal */
#define BOOTSTRAP_TOKEN_NAME "bootstrap-admin"

static const int SIGNALS[] = {SIGHUP, SIGINT, SIGTERM, SIGQUIT};
#define N_SIGNALS (sizeof SIGNALS / sizeof SIGNALS[0])

struct serve {
    struct boot *d;
    struct event_base *base;
    struct api_server_config acfg;
    struct api_server *server;
    struct api_tls *tls; /* NULL: plain HTTP (loopback, or allow_plain_http) */
    struct event *sig[N_SIGNALS];
    struct event *drain;
    int64_t drain_left_ms;
    bool stopping;
    struct batches *batches;   /* the batch owner lease, retries and sweep (batches.h) */
    struct listener *listener; /* the cache's (listener.h) */
    struct ui_assets *ui;      /* the dashboard's files (ui.h); NULL: ui_dir empty */
    struct upkeep *upkeep;     /* verify counts' flush, audit checkpoints (upkeep.h) */
    struct webhooks *webhooks; /* the webhook deliverer (webhooks.h) */
};

static void drain_cb(evutil_socket_t fd, short what, void *arg)
{
    struct serve *s = arg;
    struct api_server_stats stats;
    (void)fd;
    (void)what;
    api_server_get_stats(s->server, &stats);
    s->drain_left_ms -= 100;
    /* Waiting too: a token check, a deferred reply (a sign in its group) or an offloaded
     * handler still on the database pool answers within the drain, rather than as cancelled. */
    uint64_t left = stats.in_flight + stats.unflushed + stats.auth_waiting + stats.deferred;
    if (left == 0 || s->drain_left_ms <= 0) {
        if (left > 0)
            log_warn("stopping with %llu replies unfinished or not yet written out (%llu "
                     "streaming, %llu ended but not written out, %llu waiting on a token check, "
                     "%llu deferred)",
                     (unsigned long long)left, (unsigned long long)stats.in_flight,
                     (unsigned long long)stats.unflushed, (unsigned long long)stats.auth_waiting,
                     (unsigned long long)stats.deferred);
        event_base_loopexit(s->base, NULL);
        return;
    }
    struct timeval tv = {0, 100000};
    event_add(s->drain, &tv);
}

/* SIGHUP: the TLS certificate and key files again (for new connections; open ones keep theirs),
 * then the config file and the environment. log_level changes at once; a change to a setting
 * read only at start is named, and left for a restart. */
static void reload(struct serve *s)
{
    struct config fresh;
    char err[CONFIG_ERR_BUF], restart[512];
    struct boot *d = s->d;
    bool shown_before = d->cfg.log_level <= LOG_INFO;

    if (s->tls != NULL) {
        if (api_tls_reload(s->tls, err, sizeof err) != 0)
            log_warn("SIGHUP: keeping the current TLS certificate: %s", err);
        else
            log_info("SIGHUP: reloaded the TLS certificate and key (%s, %s) for new connections",
                     d->cfg.tls_cert_file, d->cfg.tls_key_file);
    }
    if (s->ui != NULL) {
        if (ui_assets_reload(s->ui, err, sizeof err) != 0)
            log_warn("SIGHUP: keeping the dashboard's files as they were: %s", err);
        else
            log_info("SIGHUP: reloaded the dashboard's files (%zu, %zu bytes) from %s",
                     ui_assets_count(s->ui), ui_assets_bytes(s->ui), d->cfg.ui_dir);
    }
    if (config_load(d->config_path, &fresh, err, sizeof err) != CONFIG_OK) {
        log_warn("SIGHUP: cannot re-read the settings, keeping the current ones: %s", err);
        return;
    }
    if (config_apply_live(&d->cfg, &fresh, restart, sizeof restart) > 0)
        log_warn("SIGHUP: changed but applied only on a restart (still using the old values): %s",
                 restart);
    /* Said at info under the old level or else the new one, so that a change either way
     * (info to warn, warn to info) is on record. */
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1)
            log_set_level(d->cfg.log_level);
        if (shown_before == (pass == 0))
            log_info("SIGHUP: re-read the settings from %s%s; log level %s",
                     d->config_path != NULL ? d->config_path : "the environment",
                     d->config_path != NULL ? " and the environment" : "",
                     log_level_name(d->cfg.log_level));
    }
    log_debug("SIGHUP: debug logging is on");
}

static void stop(struct serve *s, int sig)
{
    if (sig == SIGQUIT || s->stopping) {
        log_warn("%s%s: stopping now (replies in progress are cut off)", boot_signal_name(sig),
                 s->stopping && sig != SIGQUIT ? " again" : "");
        event_base_loopbreak(s->base);
        return;
    }
    s->stopping = true;
    log_info("%s: stopping (no new connections; replies in progress may finish)",
             boot_signal_name(sig));
    api_server_stop(s->server);
    s->drain_left_ms = SHUTDOWN_GRACE_MS;
    drain_cb(-1, 0, s);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    if (sig == SIGHUP)
        reload(arg);
    else
        stop(arg, (int)sig);
}

/* The first admin token when there is no token at all, printed once on stdout. The audit lock
 * serializes two instances starting together, so only one makes it. */
static int bootstrap_token(struct boot *d)
{
    struct tokens_spec spec = {
        .name = BOOTSTRAP_TOKEN_NAME, .role = STORE_ROLE_ADMIN, .all_apps = true};
    struct store_token *list = NULL, t;
    char token[KEYRING_TOKEN_BUF] = "";
    size_t n = 0;
    enum store_rc rc = store_begin(d->st);

    if (rc == STORE_OK)
        rc = store_audit_lock(d->st);
    if (rc == STORE_OK)
        rc = store_token_list(d->st, &list, &n);
    free(list);
    if (rc == STORE_OK && n > 0) {
        store_rollback(d->st);
        return 0;
    }
    if (rc == STORE_OK)
        rc = tokens_create(&d->svc, NULL, &spec, &t, token, sizeof token);
    if (rc == STORE_OK)
        rc = store_commit(d->st);
    if (rc != STORE_OK) {
        store_rollback(d->st);
        OPENSSL_cleanse(token, sizeof token);
        log_error("cannot create the first admin token");
        return -1;
    }
    log_info("first run: created the admin token \"%s\" (id %lld), printed once on stdout",
             BOOTSTRAP_TOKEN_NAME, (long long)t.id);
    printf("admin token: %s\n", token);
    printf("store this admin token now: it is not shown again (only its hash is kept)\n");
    fflush(stdout);
    OPENSSL_cleanse(token, sizeof token);
    return 0;
}

/* The loop, the API server and its bound socket: before anything is created, so that a taken
 * port fails a first run with nothing left behind. */
static int bind_api(struct serve *s)
{
    struct boot *d = s->d;
    char err[512] = "";

    if (config_check_listener(&d->cfg, err, sizeof err) != 0) {
        log_error("%s", err);
        return -1;
    }
    if (boot_check_serve(&d->cfg) != 0)
        return -1;
    if (d->cfg.tls_cert_file[0] != '\0') {
        struct api_tls_config tcfg = {.cert_file = d->cfg.tls_cert_file,
                                      .key_file = d->cfg.tls_key_file,
                                      .client_ca_file = d->cfg.tls_client_ca_file};
        if (api_tls_new(&tcfg, &s->tls, err, sizeof err) != 0) {
            log_error("%s; fix the file or USERSIGD_TLS_CERT_FILE, USERSIGD_TLS_KEY_FILE, "
                      "USERSIGD_TLS_CLIENT_CA_FILE",
                      err);
            return -1;
        }
    }
    /* The dashboard's files, read now (small, bounded: ui.h) so that no request reads a disk. */
    if (ui_assets_load(d->cfg.ui_dir, &s->ui, err, sizeof err) != 0) {
        log_error("%s; fix the folder, or set ui_dir (USERSIGD_UI_DIR) to another one, or to "
                  "\"\" for no dashboard",
                  err);
        return -1;
    }
    d->svc.ui = s->ui;
    if (s->ui != NULL)
        log_info("dashboard: %zu files (%zu bytes) from %s, served at /ui/", ui_assets_count(s->ui),
                 ui_assets_bytes(s->ui), d->cfg.ui_dir);
    else
        log_info("dashboard: off (ui_dir is empty)");
    /* Batch signing's workers hand results back with event_active(): a thread-aware loop. */
    if (evthread_use_pthreads() != 0) {
        log_error("cannot make libevent thread-aware");
        return -1;
    }
    /* epoll's change list: the changes one loop iteration makes to a descriptor (evhttp turns
     * reading off and on again around every request) reach the kernel as one epoll_ctl, not
     * several (two a request instead of four). No descriptor here is dup()ed, the one case
     * libevent warns the change list mishandles. */
    struct event_config *ecfg = event_config_new();
    if (ecfg == NULL) {
        log_error("out of memory creating the event loop");
        return -1;
    }
    event_config_set_flag(ecfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    s->base = event_base_new_with_config(ecfg);
    event_config_free(ecfg);
    if (s->base == NULL) {
        log_error("cannot create the event loop");
        return -1;
    }
    s->acfg = (struct api_server_config){
        .listen = d->cfg.listen,
        .max_body = (size_t)d->cfg.max_body_size,
        .max_body_large = (size_t)d->cfg.batch_max_body_size,
        .request_timeout_ms = d->cfg.request_timeout_ms,
        .routes = api_routes,
        .n_routes = api_routes_count,
        .authenticate = authn_token,
        /* API_ROUTE_OFFLOAD handlers on the pool's threads; it finds d->svc.pool (made in
         * run_loop) at each request. */
        .offload = offload_request,
        .ctx = &d->svc,
        .cors_origins = d->cfg.cors_origins,
        .tls = s->tls,
    };
    s->server = api_server_new(s->base, &s->acfg, err, sizeof err);
    if (s->server == NULL) {
        log_error("cannot set up the admin API: %s", err);
        return -1;
    }
    /* err names the address and why; the test bind above makes this rare (a race). */
    if (api_server_start(s->server, err, sizeof err) != 0) {
        log_error("%s; stop the other server or set USERSIGD_LISTEN (listen)", err);
        return -1;
    }
    return 0;
}

/* Database, migrations, master key, keyring root, first admin token; -1 failed, 1 stopped by a
 * signal, 0 ready. */
static int bring_up(struct boot *d, bool embedded)
{
    uint8_t buf[STORE_SEALED_ROOT_MAX];
    size_t len;
    int64_t created;
    int applied = 0;
    enum store_rc rc;

    /* With an external database the master key file must exist: say so before touching it. */
    if (!embedded && boot_open_master_key(d, false) != 0)
        return -1;
    if (boot_open_database(d, true) != 0)
        return boot_interrupted() ? 1 : -1;
    if (boot_interrupted())
        return 1;
    if (migrate_apply(d->st, d->migrations_dir, &applied) != MIGRATE_OK) {
        log_error("cannot apply the schema migrations of %s (see the message above)",
                  d->migrations_dir);
        return -1;
    }
    if (applied > 0)
        log_info("applied %d schema migration(s)", applied);
    if (boot_require_current_schema(d) != 0)
        return -1;
    if (boot_interrupted())
        return 1;
    /* A new master key only where it can be the first: the embedded database without a
     * keyring. A missing key file beside an existing keyring is a lost key, not a first run. */
    rc = store_keyring_get(d->st, false, buf, sizeof buf, &len, &created);
    if (rc != STORE_OK && rc != STORE_NOT_FOUND) {
        log_error("cannot read the keyring from the database");
        return -1;
    }
    if (d->kr == NULL && boot_open_master_key(d, rc == STORE_NOT_FOUND) != 0)
        return -1;
    if (boot_open_keyring(d) != 0)
        return -1;
    if (boot_interrupted())
        return 1;
    return bootstrap_token(d) != 0 ? -1 : 0;
}

static int run_loop(struct serve *s)
{
    struct boot *d = s->d;
    char err[512] = "";
    int pending;
    const char *tls = s->tls == NULL ? " (plain HTTP)"
                      : d->cfg.tls_client_ca_file[0] != '\0'
                          ? " (TLS, client certificates required)"
                          : " (TLS)";

    d->svc.pipeline = pipeline_new(s->base, config_workers(&d->cfg), err, sizeof err);
    if (d->svc.pipeline == NULL) {
        log_error("cannot start the signing workers: %s", err);
        return -1;
    }
    log_info("batch signing: %d worker threads", pipeline_workers(d->svc.pipeline));
    /* Tokens and apps cached, kept exact by the listener (cache.h); nothing is cached until it
     * listens. Made before the pool: its threads share it. */
    d->svc.cache = cache_new();
    if (d->svc.cache == NULL || listener_start(d->conninfo, d->svc.cache, &s->listener) != 0) {
        log_error("cannot start the cache");
        return -1;
    }
    d->svc.limits = ratelimit_new(); /* the signs' buckets, shared by the pool's threads */
    if (d->svc.limits == NULL) {
        log_error("out of memory for the rate limits");
        return -1;
    }
    d->svc.chain = sign_chain_new(); /* the audit chain's head as this process wrote it */
    if (d->svc.chain == NULL) {
        log_error("out of memory for the signing groups");
        return -1;
    }
    struct dbpool_config pcfg = {
        .conninfo = d->conninfo,
        .size = d->cfg.db_connections,
        .thread_ctx_new = service_thread_new,
        .thread_ctx_free = service_thread_free,
        .thread_ctx_arg = &d->svc,
    };
    if (dbpool_new(s->base, &pcfg, &d->svc.pool) != 0) {
        log_error("cannot open the database pool's %d connections (see the message above)",
                  d->cfg.db_connections);
        return -1;
    }
    log_info("database pool: %d connections", d->cfg.db_connections);
    struct batches_config bcfg = {.conninfo = d->conninfo};
    if (batches_new(s->base, &d->svc, &bcfg, &s->batches) != 0)
        return -1;
    /* Calls to Tencent's REST API on this loop (gateway.h); its signer signs on the pool. */
    if (gateway_new(s->base, &d->svc, &d->svc.gateway) != 0)
        return -1;
    listener_on_hold(s->listener, gateway_told_hold, d->svc.gateway); /* 70050s of the others */
    struct upkeep_config ucfg = {.checkpoint_events = d->cfg.audit_checkpoint_events,
                                 .checkpoint_seconds = d->cfg.audit_checkpoint_seconds,
                                 .flush_seconds = d->cfg.verify_counts_flush_seconds};
    if (upkeep_new(s->base, &d->svc, &ucfg, &s->upkeep) != 0)
        return -1;
    if (webhooks_new(s->base, &d->svc, &s->webhooks) != 0)
        return -1;
    s->drain = evtimer_new(s->base, drain_cb, s);
    if (s->drain == NULL) {
        log_error("cannot set up the shutdown timer");
        return -1;
    }
    for (size_t i = 0; i < N_SIGNALS; i++) {
        s->sig[i] = evsignal_new(s->base, SIGNALS[i], signal_cb, s);
        if (s->sig[i] == NULL || evsignal_add(s->sig[i], NULL) != 0) {
            log_error("cannot set up the signal handlers");
            return -1;
        }
    }
    if (strchr(d->cfg.listen_host, ':') != NULL)
        log_info("listening on [%s]:%d%s", d->cfg.listen_host, api_server_port(s->server), tls);
    else
        log_info("listening on %s:%d%s", d->cfg.listen_host, api_server_port(s->server), tls);
    /* What came before the loop's handlers took over. */
    pending = boot_stop_signal();
    if (pending != 0)
        stop(s, pending);
    else if (boot_take_hup())
        reload(s);
    if (event_base_dispatch(s->base) < 0) {
        log_error("the event loop failed");
        return -1;
    }
    log_info("stopped");
    return 0;
}

/* The soft limit on open files up to the hard one: each client connection is a descriptor, beside
 * the database pool's, the listener's and the batch owner's. A default soft limit of 1024 would
 * refuse accepts (and starve the pool) long before the loop runs out of breath. */
static void raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        log_warn("cannot read the open files limit; keeping it");
        return;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t was = rl.rlim_cur;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            log_warn("cannot raise the open files limit from %llu to %llu; keeping %llu",
                     (unsigned long long)was, (unsigned long long)rl.rlim_max,
                     (unsigned long long)was);
            rl.rlim_cur = was;
        }
    }
    if (rl.rlim_cur == RLIM_INFINITY)
        log_info("open files limit: unlimited");
    else
        log_info("open files limit: %llu", (unsigned long long)rl.rlim_cur);
}

int serve_run(struct boot *d, const char *config_path)
{
    struct serve s = {.d = d};
    int ret = -1, up;
    bool embedded;

    if (boot_load_config(d, config_path) != 0)
        return -1;
    embedded = d->cfg.database_url[0] == '\0';
    log_info("usersigd starting");
    raise_nofile();
    if (bind_api(&s) != 0)
        goto done;
    if (boot_interrupted()) {
        ret = 0;
        goto done;
    }
    up = bring_up(d, embedded);
    if (up != 0) {
        ret = up > 0 ? 0 : -1;
        goto done;
    }
    ret = run_loop(&s);
done:
    for (size_t i = 0; i < N_SIGNALS; i++)
        if (s.sig[i] != NULL)
            event_free(s.sig[i]); /* boot.c's handler is back: nothing kills us while we stop */
    if (s.drain != NULL)
        event_free(s.drain);
    /* Before the pool: its calls end cancelled and are audited on the pool. Freed after it
     * and after the server, whose last callbacks refer to it. */
    listener_on_hold(s.listener, NULL, NULL);
    gateway_stop(d->svc.gateway);
    webhooks_stop(s.webhooks); /* before the pool too: its posts end, unrecorded */
    /* Before the server: the requests waiting on the pool borrow their inputs from it; the
     * running jobs finish, the queued ones complete as cancelled, and each replies. */
    dbpool_free(d->svc.pool);
    d->svc.pool = NULL;
    webhooks_free(s.webhooks);
    listener_stop(s.listener);
    api_server_free(s.server); /* open batches hear of it and end as aborted */
    api_tls_free(s.tls);       /* after the server: its connections held the context */
    gateway_free(d->svc.gateway);
    d->svc.gateway = NULL;
    cache_free(d->svc.cache);
    d->svc.cache = NULL;
    ratelimit_free(d->svc.limits);
    d->svc.limits = NULL;
    sign_chain_free(d->svc.chain); /* after the pool: its threads shared it */
    d->svc.chain = NULL;
    pipeline_free(d->svc.pipeline);
    d->svc.pipeline = NULL;
    batches_free(s.batches); /* the ends still kept: one last attempt */
    upkeep_free(s.upkeep);   /* the verify counts not yet written: one last flush */
    d->svc.ui = NULL;
    ui_assets_free(s.ui);
    if (s.base != NULL)
        event_base_free(s.base);
    return ret;
}
