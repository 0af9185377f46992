/*
 * usersigd: the daemon and its operator commands. `serve` brings everything up in order (config,
 * database, migrations, master key, keyring root, first admin token) and runs the admin API on
 * one libevent loop until SIGINT/SIGTERM; the other commands share the same startup path, do
 * one thing in a transaction with its audit event, and exit (the startup steps are boot.c). Secrets
 * never come from argv: the master key is a file and tokens are printed, never read.
 */
#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit.h"
#include "boot.h"
#include "config.h"
#include "http.h"
#include "keyring.h"
#include "log.h"
#include "migrate.h"
#include "pgembed.h"
#include "pipeline.h"
#include "routes.h"
#include "service.h"
#include "store.h"
#include "tokens.h"

#define EXIT_USAGE 2
#define SHUTDOWN_GRACE_MS 10000 /* streamed replies may finish within this after a signal */
#define BOOTSTRAP_TOKEN_NAME "bootstrap-admin"

static const char USAGE[] =
    "usage: usersigd COMMAND [options] [--config FILE]\n"
    "\n"
    "Key management and bulk signing of Tencent Cloud Chat / TRTC UserSig tokens.\n"
    "\n"
    "commands:\n"
    "  serve                      run the admin API (see below)\n"
    "  migrate                    apply the pending schema migrations, then exit\n"
    "  token create --name NAME --role ROLE [--apps ID,ID...] [--ttl DURATION]\n"
    "                             create an API token and print it once on stdout\n"
    "  audit verify               check the audit log's HMAC chain\n"
    "  rewrap --new-master-key-file FILE\n"
    "                             re-seal the keyring under a new master key\n"
    "  master-key create FILE     write a new random master key file (mode 0600)\n"
    "\n"
    "options:\n"
    "  --config FILE              read settings from FILE; USERSIGD_* environment variables\n"
    "                             override it (see --help-config)\n"
    "  --help                     this text (also: usersigd COMMAND --help)\n"
    "  --help-config              every setting, its environment variable and default\n"
    "\n"
    "serve:\n"
    "  With no database_url, starts a private PostgreSQL in data_dir (Unix socket only) and,\n"
    "  on the first run, creates the master key file (mode 0600: back it up, nothing opens\n"
    "  without it). With database_url, the master key file must already exist.\n"
    "  serve applies pending migrations itself before serving (under the migrations' advisory\n"
    "  lock, so several instances starting together apply each one once); `usersigd migrate`\n"
    "  does the same alone, for deployments that migrate as a separate step.\n"
    "  On the first run (no API token at all) it creates the admin token \"bootstrap-admin\"\n"
    "  (every app, no expiry) and prints it once on stdout as \"admin token: usg_...\".\n"
    "  Logs go to stderr; \"listening on HOST:PORT\" says where it serves (the actual port when\n"
    "  listen asks for port 0). SIGINT or SIGTERM stops it gracefully.\n"
    "\n"
    "Other commands on the embedded database while serve runs connect to serve's PostgreSQL\n"
    "through its socket. Exit status: 0 ok, 1 failure, 2 bad usage.\n";

static const char USAGE_TOKEN[] =
    "usage: usersigd token create --name NAME --role ROLE [--apps ID,ID...] [--ttl DURATION]\n"
    "\n"
    "  --name NAME      who or what uses it (1..128 characters); shown in the audit log\n"
    "  --role ROLE      admin, key_manager, signer or auditor\n"
    "  --apps LIST      scope it to these SDKAppIDs (comma-separated); default: every app\n"
    "  --ttl DURATION   lifetime: seconds, or a number with s, m, h or d (\"30d\", \"12h\");\n"
    "                   default: until revoked\n"
    "\n"
    "Prints the token once on stdout (only its hash is kept) and records token.create in the\n"
    "audit log with the actor \"cli\". Exit status 2 for a bad name, role, list or duration.\n";

static const char USAGE_AUDIT[] =
    "usage: usersigd audit verify\n"
    "\n"
    "Walks the audit log and checks every sequence number and HMAC. Prints \"ok: N events\"\n"
    "(exit 0), or \"broken at seq N: PROBLEM\" (exit 1).\n";

static const char USAGE_REWRAP[] =
    "usage: usersigd rewrap --new-master-key-file FILE\n"
    "\n"
    "Re-seals the keyring root and every key version under the master key in FILE, in one\n"
    "transaction recorded as keyring.rewrap in the audit log. FILE must exist with mode 0600:\n"
    "make one with `usersigd master-key create FILE`. Afterwards point master_key_file\n"
    "(USERSIGD_MASTER_KEY_FILE) at FILE and restart every usersigd: running ones still hold the\n"
    "old key. The audit chain and key fingerprints are unchanged. Keep the old file until the\n"
    "restart is done.\n";

static const char USAGE_MASTER_KEY[] =
    "usage: usersigd master-key create FILE\n"
    "\n"
    "Writes 32 random bytes as 64 hex characters to FILE, created with mode 0600; refuses to\n"
    "overwrite an existing file. Never prints the key.\n";

static const char USAGE_MIGRATE[] =
    "usage: usersigd migrate\n"
    "\n"
    "Applies the pending migrations of the migrations directory (USERSIGD_MIGRATIONS_DIR, or the\n"
    "one compiled in), each in one transaction, under an advisory lock. Prints what it applied\n"
    "or \"schema is current\". Uses database_url, or the embedded PostgreSQL of data_dir.\n";

/* ---- serve ------------------------------------------------------------------------------------
 */

struct loop_state {
    struct event_base *base;
    struct api_server *server;
    struct event *drain;
    int64_t drain_left_ms;
    bool stopping;
};

static void drain_cb(evutil_socket_t fd, short what, void *arg)
{
    struct loop_state *ls = arg;
    struct api_server_stats stats;
    (void)fd;
    (void)what;
    api_server_get_stats(ls->server, &stats);
    ls->drain_left_ms -= 100;
    if ((stats.in_flight == 0 && stats.unflushed == 0) || ls->drain_left_ms <= 0) {
        if (stats.in_flight + stats.unflushed > 0)
            log_warn("stopping with %llu streamed replies unfinished or not yet written out",
                     (unsigned long long)(stats.in_flight + stats.unflushed));
        event_base_loopexit(ls->base, NULL);
        return;
    }
    struct timeval tv = {0, 100000};
    event_add(ls->drain, &tv);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    struct loop_state *ls = arg;
    (void)what;
    if (ls->stopping) {
        log_warn("%s again: stopping now", sig == SIGINT ? "SIGINT" : "SIGTERM");
        event_base_loopbreak(ls->base);
        return;
    }
    ls->stopping = true;
    log_info("%s: stopping (no new connections; replies in progress may finish)",
             sig == SIGINT ? "SIGINT" : "SIGTERM");
    api_server_stop(ls->server);
    ls->drain_left_ms = SHUTDOWN_GRACE_MS;
    drain_cb(-1, 0, ls);
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

static int run_server(struct boot *d)
{
    struct loop_state ls = {0};
    struct event *sigint = NULL, *sigterm = NULL;
    char err[512] = "";
    int ret = -1;
    struct api_server_config acfg = {
        .listen = d->cfg.listen,
        .max_body = (size_t)d->cfg.max_body_size,
        .max_body_large = (size_t)d->cfg.batch_max_body_size,
        .request_timeout_ms = d->cfg.request_timeout_ms,
        .routes = api_routes,
        .n_routes = api_routes_count,
        .authenticate = service_authenticate,
        .ctx = &d->svc,
    };

    if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
        log_error("cannot ignore SIGPIPE");
        return -1;
    }
    /* Batch signing's workers hand results back with event_active(): a thread-aware loop. */
    if (evthread_use_pthreads() != 0) {
        log_error("cannot make libevent thread-aware");
        return -1;
    }
    ls.base = event_base_new();
    if (ls.base == NULL) {
        log_error("cannot create the event loop");
        return -1;
    }
    d->svc.pipeline = pipeline_new(ls.base, config_workers(&d->cfg), err, sizeof err);
    if (d->svc.pipeline == NULL) {
        log_error("cannot start the signing workers: %s", err);
        goto done;
    }
    log_info("batch signing: %d worker threads", pipeline_workers(d->svc.pipeline));
    ls.server = api_server_new(ls.base, &acfg, err, sizeof err);
    if (ls.server == NULL) {
        log_error("cannot set up the admin API: %s", err);
        goto done;
    }
    if (api_server_start(ls.server, err, sizeof err) != 0) {
        log_error("cannot listen on %s: %s", d->cfg.listen, err);
        goto done;
    }
    sigint = evsignal_new(ls.base, SIGINT, signal_cb, &ls);
    sigterm = evsignal_new(ls.base, SIGTERM, signal_cb, &ls);
    ls.drain = evtimer_new(ls.base, drain_cb, &ls);
    if (sigint == NULL || sigterm == NULL || ls.drain == NULL || evsignal_add(sigint, NULL) != 0 ||
        evsignal_add(sigterm, NULL) != 0) {
        log_error("cannot set up the signal handlers");
        goto done;
    }
    if (strchr(d->cfg.listen_host, ':') != NULL)
        log_info("listening on [%s]:%d", d->cfg.listen_host, api_server_port(ls.server));
    else
        log_info("listening on %s:%d", d->cfg.listen_host, api_server_port(ls.server));
    if (event_base_dispatch(ls.base) < 0) {
        log_error("the event loop failed");
        goto done;
    }
    log_info("stopped");
    ret = 0;
done:
    if (sigint != NULL)
        event_free(sigint);
    if (sigterm != NULL)
        event_free(sigterm);
    if (ls.drain != NULL)
        event_free(ls.drain);
    api_server_free(ls.server); /* open batches hear of it and end as aborted */
    pipeline_free(d->svc.pipeline);
    d->svc.pipeline = NULL;
    event_base_free(ls.base);
    return ret;
}

static int cmd_serve(struct boot *d, const char *config_path)
{
    uint8_t buf[STORE_SEALED_ROOT_MAX];
    size_t len;
    int64_t created;
    int applied = 0;
    enum store_rc rc;
    bool embedded;

    if (boot_load_config(config_path, &d->cfg) != 0)
        return -1;
    embedded = d->cfg.database_url[0] == '\0';
    log_info("usersigd starting");
    /* With an external database the master key file must exist: say so before touching it. */
    if (!embedded && boot_open_master_key(d, false) != 0)
        return -1;
    if (boot_open_database(d, true) != 0)
        return -1;
    if (migrate_apply(d->st, d->migrations_dir, &applied) != MIGRATE_OK) {
        log_error("cannot apply the schema migrations of %s (see the message above)",
                  d->migrations_dir);
        return -1;
    }
    if (applied > 0)
        log_info("applied %d schema migration(s)", applied);
    if (boot_require_current_schema(d) != 0)
        return -1;
    /* A new master key only where it can be the first: the embedded database without a
     * keyring. A missing key file beside an existing keyring is a lost key, not a first run. */
    rc = store_keyring_get(d->st, false, buf, sizeof buf, &len, &created);
    if (rc != STORE_OK && rc != STORE_NOT_FOUND) {
        log_error("cannot read the keyring from the database");
        return -1;
    }
    if (d->kr == NULL && boot_open_master_key(d, rc == STORE_NOT_FOUND) != 0)
        return -1;
    if (boot_open_keyring(d) != 0 || bootstrap_token(d) != 0)
        return -1;
    return run_server(d);
}

/* ---- the other commands -----------------------------------------------------------------------
 */

static int cmd_migrate(struct boot *d, const char *config_path)
{
    int applied = 0;
    if (boot_load_config(config_path, &d->cfg) != 0 || boot_open_database(d, false) != 0)
        return -1;
    if (migrate_apply(d->st, d->migrations_dir, &applied) != MIGRATE_OK) {
        log_error("cannot apply the schema migrations of %s (see the message above)",
                  d->migrations_dir);
        return -1;
    }
    if (boot_require_current_schema(d) != 0)
        return -1;
    if (applied > 0)
        printf("applied %d migration(s)\n", applied);
    else
        printf("schema is current\n");
    return 0;
}

static const struct api_principal *cli_principal(void)
{
    static struct api_principal p = {.token_id = 0, .name = "cli", .all_apps = true};
    return &p;
}

static int cmd_token_create(struct boot *d, const char *config_path, int argc, char **argv)
{
    struct tokens_spec spec = {.role = (enum store_role) - 1, .all_apps = true};
    const char *role = NULL;
    char why[TOKENS_WHY_BUF];
    char token[KEYRING_TOKEN_BUF] = "";
    struct store_token t;
    enum store_rc rc;
    int r;

    for (int i = 0; i < argc; i++) {
        const char *opt = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(opt, "--name") != 0 && strcmp(opt, "--role") != 0 &&
            strcmp(opt, "--apps") != 0 && strcmp(opt, "--ttl") != 0) {
            fprintf(stderr, "usersigd token create: unknown argument \"%s\"\n\n%s", opt,
                    USAGE_TOKEN);
            return EXIT_USAGE;
        }
        if (val == NULL) {
            fprintf(stderr, "usersigd token create: %s needs a value\n", opt);
            return EXIT_USAGE;
        }
        i++;
        if (strcmp(opt, "--name") == 0) {
            spec.name = val;
        } else if (strcmp(opt, "--role") == 0) {
            role = val;
        } else if (strcmp(opt, "--apps") == 0) {
            if (tokens_parse_apps(val, &spec) != 0) {
                fprintf(stderr,
                        "usersigd token create: --apps: a comma-separated list of 1 to %d "
                        "SDKAppIDs, each 1..4294967295\n",
                        STORE_TOKEN_MAX_APPS);
                return EXIT_USAGE;
            }
        } else if (tokens_parse_ttl(val, &spec.ttl_s) != 0) {
            fprintf(stderr, "usersigd token create: --ttl: seconds, or a number with s, m, h or d "
                            "(\"30d\"), from 1 second to 10 years\n");
            return EXIT_USAGE;
        }
    }
    if (spec.name == NULL || role == NULL) {
        fprintf(stderr, "usersigd token create: --name and --role are required\n\n%s", USAGE_TOKEN);
        return EXIT_USAGE;
    }
    r = store_role_parse(role);
    spec.role = r >= 0 ? (enum store_role)r : (enum store_role) - 1;
    if (tokens_check(&spec, why, sizeof why) != TOKENS_OK) {
        fprintf(stderr, "usersigd token create: %s\n", why);
        return EXIT_USAGE;
    }
    if (boot_open_all(d, config_path) != 0)
        return 1;
    rc = store_begin(d->st);
    if (rc == STORE_OK)
        rc = tokens_create(&d->svc, cli_principal(), &spec, &t, token, sizeof token);
    if (rc == STORE_OK)
        rc = store_commit(d->st);
    if (rc != STORE_OK) {
        store_rollback(d->st);
        log_error("cannot create the token (see the message above)");
        return 1;
    }
    log_info("created API token %lld \"%s\" (%s)", (long long)t.id, t.name,
             store_role_name(t.role));
    printf("%s\n", token);
    fflush(stdout);
    OPENSSL_cleanse(token, sizeof token);
    return 0;
}

static int cmd_audit_verify(struct boot *d, const char *config_path)
{
    struct audit_verify_result res;
    if (boot_open_all(d, config_path) != 0)
        return 1;
    if (audit_verify(d->st, keyring_audit_key(d->kr), &res) != AUDIT_OK) {
        log_error("cannot read the audit log (see the message above)");
        return 1;
    }
    if (res.ok) {
        printf("ok: %lld events\n", (long long)res.checked);
        return 0;
    }
    if (res.problem == AUDIT_CHAIN_GAP)
        printf("broken at seq %lld: %s (found seq %lld)\n", (long long)res.bad_seq,
               audit_problem_name(res.problem), (long long)res.found_seq);
    else
        printf("broken at seq %lld: %s\n", (long long)res.bad_seq, audit_problem_name(res.problem));
    return 1;
}

/* Re-seals every live key version and the root under new_kr, in the caller's transaction. */
static int reseal_all(struct boot *d, struct keyring *new_kr, size_t *n_keys)
{
    struct store_key *keys = NULL;
    uint8_t root[STORE_SEALED_ROOT_MAX];
    uint8_t *out = NULL;
    size_t n = 0, len = 0, out_len = 0;
    int64_t created;
    enum keyring_rc krc;
    int ret = -1;

    /* Lock order: key rows, then the keyring row, then (service_audit) the audit lock. */
    if (store_key_list_sealed(d->st, NULL, 0, true, &keys, &n) != STORE_OK ||
        store_keyring_get(d->st, true, root, sizeof root, &len, &created) != STORE_OK) {
        log_error("cannot read the keyring and the keys (see the message above)");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        krc = keyring_reseal(d->kr, new_kr, keys[i].sdkappid, keys[i].version, keys[i].sealed,
                             keys[i].sealed_len, &out, &out_len);
        if (krc != KEYRING_OK) {
            log_error("key %u/%u: %s; nothing was changed", keys[i].sdkappid, keys[i].version,
                      keyring_rc_message(krc));
            goto done;
        }
        if (store_key_update_sealed(d->st, keys[i].sdkappid, keys[i].version, out, out_len) !=
            STORE_OK) {
            log_error("cannot store key %u/%u; nothing was changed", keys[i].sdkappid,
                      keys[i].version);
            goto done;
        }
        free(out);
        out = NULL;
    }
    krc = keyring_reseal_root(d->kr, new_kr, root, len, &out, &out_len);
    if (krc != KEYRING_OK) {
        log_error("the keyring root: %s; nothing was changed", keyring_rc_message(krc));
        goto done;
    }
    /* The new root must open under the new key and give the same audit key, or the chain
     * would not verify after the switch. */
    if (keyring_root_open(new_kr, out, out_len) != KEYRING_OK ||
        CRYPTO_memcmp(keyring_audit_key(new_kr), keyring_audit_key(d->kr), AUDIT_KEY_LEN) != 0) {
        log_error("the re-sealed keyring root does not check out; nothing was changed");
        goto done;
    }
    if (store_keyring_update(d->st, out, out_len) != STORE_OK) {
        log_error("cannot store the keyring root; nothing was changed");
        goto done;
    }
    *n_keys = n;
    ret = 0;
done:
    free(out);
    store_key_list_free(keys, n);
    return ret;
}

static int cmd_rewrap(struct boot *d, const char *config_path, int argc, char **argv)
{
    const char *new_path = NULL;
    struct keyring *new_kr = NULL;
    struct stat a, b;
    char err[512] = "";
    size_t n_keys = 0;
    json_t *details = NULL;
    enum keyring_rc krc;
    enum store_rc rc;
    int ret = 1;

    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--new-master-key-file") == 0 && i + 1 < argc) {
            new_path = argv[++i];
        } else {
            fprintf(stderr, "usersigd rewrap: unexpected argument \"%s\"\n\n%s", argv[i],
                    USAGE_REWRAP);
            return EXIT_USAGE;
        }
    }
    if (new_path == NULL) {
        fprintf(stderr, "usersigd rewrap: --new-master-key-file FILE is required\n\n%s",
                USAGE_REWRAP);
        return EXIT_USAGE;
    }
    if (boot_open_all(d, config_path) != 0)
        return 1;
    if (stat(new_path, &a) == 0 && stat(d->cfg.master_key_file, &b) == 0 && a.st_dev == b.st_dev &&
        a.st_ino == b.st_ino) {
        log_error("%s is the current master key file: give a new one (usersigd master-key create "
                  "FILE)",
                  new_path);
        return 1;
    }
    krc = keyring_master_load(new_path, &new_kr, err, sizeof err);
    if (krc != KEYRING_OK) {
        log_error("the new master key: %s%s", err[0] ? err : keyring_rc_message(krc),
                  krc == KEYRING_BAD_FILE ? " (create one with usersigd master-key create FILE)"
                                          : "");
        return 1;
    }
    rc = store_begin(d->st);
    if (rc != STORE_OK || reseal_all(d, new_kr, &n_keys) != 0) {
        if (rc != STORE_OK)
            log_error("cannot begin a transaction");
        goto done;
    }
    details = json_pack("{s:I}", "key_versions", (json_int_t)n_keys);
    if (details == NULL) {
        log_error("out of memory");
        goto done;
    }
    rc = service_audit(&d->svc, cli_principal(), "keyring.rewrap", 0, 0, "ok", details);
    if (rc == STORE_OK)
        rc = store_commit(d->st);
    if (rc != STORE_OK) {
        log_error("cannot commit the rewrap; nothing was changed");
        goto done;
    }
    printf("rewrapped the keyring root and %zu key version(s) under %s\n", n_keys, new_path);
    printf("now set USERSIGD_MASTER_KEY_FILE (master_key_file) to %s and restart every "
           "usersigd; keep the old file until then\n",
           new_path);
    ret = 0;
done:
    store_rollback(d->st);
    keyring_free(new_kr);
    return ret;
}

static int cmd_master_key_create(int argc, char **argv)
{
    char err[512] = "";
    enum keyring_rc krc;
    if (argc != 1 || argv[0][0] == '-') {
        fprintf(stderr, "%s", USAGE_MASTER_KEY);
        return EXIT_USAGE;
    }
    krc = keyring_master_create(argv[0], err, sizeof err);
    if (krc != KEYRING_OK) {
        fprintf(stderr, "usersigd master-key create: %s\n", err[0] ? err : keyring_rc_message(krc));
        return 1;
    }
    printf("created %s (mode 0600)\n", argv[0]);
    return 0;
}

/* ---- main -------------------------------------------------------------------------------------
 */

int main(int argc, char **argv)
{
    struct boot d = {0};
    const char *config_path = NULL;
    const char *env_dir = getenv("USERSIGD_MIGRATIONS_DIR");
    char **args = NULL;
    int n = 0, ret = 1;
    bool help = false;

    /* --config, --help and --help-config are taken from anywhere on the line. */
    args = calloc((size_t)argc + 1, sizeof *args);
    if (args == NULL) {
        fprintf(stderr, "usersigd: out of memory\n");
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "usersigd: --config needs a file\n");
                ret = EXIT_USAGE;
                goto done;
            }
            config_path = argv[++i];
        } else if (strncmp(argv[i], "--config=", 9) == 0) {
            config_path = argv[i] + 9;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            help = true;
        } else if (strcmp(argv[i], "--help-config") == 0) {
            config_describe(stdout);
            ret = 0;
            goto done;
        } else {
            args[n++] = argv[i];
        }
    }
    d.migrations_dir = env_dir != NULL && env_dir[0] != '\0' ? env_dir : USERSIGD_MIGRATIONS_DIR;
    d.svc.cfg = &d.cfg;
    d.svc.migrations_dir = d.migrations_dir;

    if (n == 0) {
        fputs(USAGE, help ? stdout : stderr);
        ret = help ? 0 : EXIT_USAGE;
        goto done;
    }
    if (strcmp(args[0], "serve") == 0 && n == 1) {
        if (help) {
            fputs(USAGE, stdout);
            ret = 0;
            goto done;
        }
        ret = cmd_serve(&d, config_path) == 0 ? 0 : 1;
    } else if (strcmp(args[0], "migrate") == 0 && n == 1) {
        if (help) {
            fputs(USAGE_MIGRATE, stdout);
            ret = 0;
            goto done;
        }
        ret = cmd_migrate(&d, config_path) == 0 ? 0 : 1;
    } else if (strcmp(args[0], "token") == 0 && n >= 2 && strcmp(args[1], "create") == 0) {
        if (help) {
            fputs(USAGE_TOKEN, stdout);
            ret = 0;
            goto done;
        }
        ret = cmd_token_create(&d, config_path, n - 2, args + 2);
    } else if (strcmp(args[0], "audit") == 0 && n == 2 && strcmp(args[1], "verify") == 0) {
        if (help) {
            fputs(USAGE_AUDIT, stdout);
            ret = 0;
            goto done;
        }
        ret = cmd_audit_verify(&d, config_path);
    } else if (strcmp(args[0], "rewrap") == 0) {
        if (help) {
            fputs(USAGE_REWRAP, stdout);
            ret = 0;
            goto done;
        }
        ret = cmd_rewrap(&d, config_path, n - 1, args + 1);
    } else if (strcmp(args[0], "master-key") == 0 && n >= 2 && strcmp(args[1], "create") == 0) {
        if (help) {
            fputs(USAGE_MASTER_KEY, stdout);
            ret = 0;
            goto done;
        }
        ret = cmd_master_key_create(n - 2, args + 2);
    } else if (help) {
        fputs(USAGE, stdout);
        ret = 0;
    } else if (strcmp(args[0], "serve") == 0 || strcmp(args[0], "migrate") == 0 ||
               strcmp(args[0], "audit") == 0 || strcmp(args[0], "token") == 0 ||
               strcmp(args[0], "master-key") == 0) {
        fprintf(stderr, "usersigd %s: unexpected or missing arguments\n\n%s", args[0], USAGE);
        ret = EXIT_USAGE;
    } else {
        fprintf(stderr, "usersigd: unknown command \"%s\"\n\n%s", args[0], USAGE);
        ret = EXIT_USAGE;
    }
done:
    boot_close(&d);
    free(args);
    return ret;
}
