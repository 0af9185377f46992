/*
 * Bringing usersigd up (boot.h): settings, database, schema check, master key and keyring root,
 * shared by `usersigd serve` and the operator commands so that they fail the same way.
 */
#include "boot.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "migrate.h"

/* ---- Signals before (and after) the event loop ----------------------------------------------
 * The handler only notes the signal; the startup steps look between them, and serve's loop takes
 * over with libevent's evsignal once it runs. A second stop signal forces the default action,
 * unless this process is starting or running the embedded PostgreSQL, which must be stopped. */
static volatile sig_atomic_t stop_signal, hup_pending, pg_owned;

static void note_signal(int sig)
{
    if (sig == SIGHUP) {
        hup_pending = 1;
    } else if (stop_signal != 0 && !pg_owned) {
        signal(sig, SIG_DFL);
        raise(sig);
    } else {
        stop_signal = sig;
    }
}

int boot_catch_signals(void)
{
    static const int sigs[] = {SIGHUP, SIGINT, SIGTERM, SIGQUIT};
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = note_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        if (sigaction(sigs[i], &sa, NULL) != 0)
            return -1;
    /* A client that leaves mid-reply must not kill the server. */
    return signal(SIGPIPE, SIG_IGN) == SIG_ERR ? -1 : 0;
}

int boot_stop_signal(void)
{
    return stop_signal;
}

bool boot_take_hup(void)
{
    bool was = hup_pending != 0;
    hup_pending = 0;
    return was;
}

const char *boot_signal_name(int sig)
{
    switch (sig) {
    case SIGHUP:
        return "SIGHUP";
    case SIGINT:
        return "SIGINT";
    case SIGTERM:
        return "SIGTERM";
    case SIGQUIT:
        return "SIGQUIT";
    }
    return "a signal";
}

bool boot_interrupted(void)
{
    static bool told;
    if (stop_signal == 0)
        return false;
    if (!told)
        log_info("%s during start-up: stopping", boot_signal_name(stop_signal));
    told = true;
    return true;
}

/* ---- Checks before anything is created ------------------------------------------------------ */

/* A test bind of the listen address, as the admin API will bind it (SO_REUSEADDR, every address
 * the host resolves to until one binds). */
static int check_listen(const struct config *cfg)
{
    struct addrinfo hints, *res = NULL;
    char port[8];
    int rc, err = 0, ok = 0;
    const char *host = strcmp(cfg->listen_host, "*") == 0 ? NULL : cfg->listen_host;

    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(port, sizeof port, "%u", (unsigned)cfg->listen_port);
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        log_error("cannot listen on %s: the host does not resolve (%s); set USERSIGD_LISTEN "
                  "(listen) to an address of this machine, such as 127.0.0.1:8080",
                  cfg->listen, gai_strerror(rc));
        return -1;
    }
    for (struct addrinfo *ai = res; ai != NULL && !ok; ai = ai->ai_next) {
        int one = 1, fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            err = err != 0 ? err : errno;
            continue;
        }
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
            bind(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            ok = 1;
        else if (err == 0)
            err = errno;
        close(fd);
    }
    freeaddrinfo(res);
    if (ok)
        return 0;
    if (err == EADDRINUSE)
        log_error("cannot listen on %s: address already in use; stop the other server or set "
                  "USERSIGD_LISTEN (listen) to another address",
                  cfg->listen);
    else if (err == EACCES)
        log_error("cannot listen on %s: permission denied (ports below 1024 need privileges); "
                  "set USERSIGD_LISTEN (listen) to a port above 1023",
                  cfg->listen);
    else if (err == EADDRNOTAVAIL)
        log_error("cannot listen on %s: no such address on this machine; set USERSIGD_LISTEN "
                  "(listen) to one of its addresses, such as 127.0.0.1:8080 or 0.0.0.0:8080",
                  cfg->listen);
    else
        log_error("cannot listen on %s: %s; set USERSIGD_LISTEN (listen) to another address",
                  cfg->listen, strerror(err != 0 ? err : EINVAL));
    return -1;
}

/* A directory that exists and is writable, or whose nearest existing ancestor is (so that it can
 * be created). what: "the data directory"; env: the variable to point elsewhere. */
static int check_dir(const char *path, const char *what, const char *env)
{
    char up[PATH_MAX];
    struct stat st;
    size_t n = strlen(path);

    if (stat(path, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) {
            log_error("%s %s is not a directory; remove it or set %s", what, path, env);
            return -1;
        }
        if (access(path, W_OK | X_OK) != 0) {
            log_error("%s %s is not writable (%s); give usersigd write access to it or set %s",
                      what, path, strerror(errno), env);
            return -1;
        }
        return 0;
    }
    if (errno != ENOENT) {
        log_error("cannot reach %s %s: %s; fix the permissions on its path or set %s", what, path,
                  strerror(errno), env);
        return -1;
    }
    if (n >= sizeof up) {
        log_error("%s %s: path too long; set %s", what, path, env);
        return -1;
    }
    memcpy(up, path, n + 1);
    for (;;) {
        char *slash;
        while (n > 1 && up[n - 1] == '/')
            up[--n] = '\0';
        slash = strrchr(up, '/');
        if (slash == NULL) {
            strcpy(up, ".");
        } else if (slash == up) {
            up[1] = '\0';
        } else {
            *slash = '\0';
        }
        n = strlen(up);
        if (stat(up, &st) == 0)
            break;
        if (errno != ENOENT || strcmp(up, ".") == 0 || strcmp(up, "/") == 0) {
            log_error("cannot create %s %s: %s: %s; set %s", what, path, up, strerror(errno), env);
            return -1;
        }
    }
    if (!S_ISDIR(st.st_mode) || access(up, W_OK | X_OK) != 0) {
        log_error("cannot create %s %s: %s is %s; create it yourself or set %s", what, path, up,
                  S_ISDIR(st.st_mode) ? "not writable" : "not a directory", env);
        return -1;
    }
    return 0;
}

int boot_check_serve(const struct config *cfg)
{
    bool embedded = cfg->database_url[0] == '\0';
    const char *key = cfg->master_key_file;
    char dir[PATH_MAX];
    const char *slash;
    struct stat st;

    if (check_listen(cfg) != 0)
        return -1;
    if (embedded && check_dir(cfg->data_dir, "the data directory", "USERSIGD_DATA_DIR") != 0)
        return -1;
    if (stat(key, &st) == 0) {
        int fd = open(key, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0) {
            log_error("cannot read the master key file %s: %s; run usersigd as its owner or set "
                      "USERSIGD_MASTER_KEY_FILE",
                      key, strerror(errno));
            return -1;
        }
        close(fd);
        return 0;
    }
    if (errno != ENOENT) {
        log_error("cannot reach the master key file %s: %s; fix the permissions on its path or "
                  "set USERSIGD_MASTER_KEY_FILE",
                  key, strerror(errno));
        return -1;
    }
    if (!embedded)
        return 0; /* boot_open_master_key() says how to make one */
    /* The first run creates it: its directory must be there, or be the data directory that the
     * embedded PostgreSQL creates. */
    slash = strrchr(key, '/');
    if (slash == NULL)
        snprintf(dir, sizeof dir, ".");
    else
        snprintf(dir, sizeof dir, "%.*s", slash == key ? 1 : (int)(slash - key), key);
    if (stat(dir, &st) != 0 && errno == ENOENT && strcmp(dir, cfg->data_dir) == 0)
        return 0;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || access(dir, W_OK | X_OK) != 0) {
        log_error("cannot create the master key file %s: its directory %s %s; create the "
                  "directory or set USERSIGD_MASTER_KEY_FILE",
                  key, dir,
                  stat(dir, &st) != 0    ? "does not exist"
                  : !S_ISDIR(st.st_mode) ? "is not a directory"
                                         : "is not writable");
        return -1;
    }
    return 0;
}

void boot_close(struct boot *d)
{
    store_close(d->st);
    d->st = NULL;
    if (d->conninfo != NULL) /* may hold a password */
        explicit_bzero(d->conninfo, strlen(d->conninfo));
    free(d->conninfo);
    d->conninfo = NULL;
    keyring_free(d->kr);
    d->kr = NULL;
    pgembed_stop(d->pg);
    d->pg = NULL;
    pg_owned = 0;
}

int boot_load_config(struct boot *d, const char *path)
{
    char err[CONFIG_ERR_BUF];
    if (config_load(path, &d->cfg, err, sizeof err) != CONFIG_OK) {
        fprintf(stderr, "usersigd: %s\n", err);
        return -1;
    }
    log_set_level(d->cfg.log_level);
    log_set_format(d->cfg.log_format);
    d->config_path = path;
    d->migrations_dir = d->cfg.migrations_dir;
    d->svc.cfg = &d->cfg;
    d->svc.migrations_dir = d->cfg.migrations_dir;
    return 0;
}

/* The conninfo of the embedded PostgreSQL that another usersigd runs on data_dir. */
static int running_cluster_conninfo(const char *data_dir, char *out, size_t cap)
{
    char abs[PATH_MAX], sock[PATH_MAX + 32];
    struct stat sb;
    if (realpath(data_dir, abs) == NULL)
        return -1;
    snprintf(sock, sizeof sock, "%s/pg/run/.s.PGSQL.5432", abs);
    if (stat(sock, &sb) != 0 || !S_ISSOCK(sb.st_mode))
        return -1;
    /* pgembed refuses data directories holding quotes or backslashes: no escaping needed. */
    int n = snprintf(out, cap, "host='%s/pg/run' port=5432 dbname=usersigd user=usersigd", abs);
    return n > 0 && (size_t)n < cap ? 0 : -1;
}

/* Connects to database_url, or starts the embedded PostgreSQL of data_dir. A command other than
 * serve that finds the embedded one busy (serve runs it) connects through its socket. */
int boot_open_database(struct boot *d, bool serve)
{
    char conninfo[PGEMBED_CONNINFO_BUF];
    char err[PGEMBED_ERR_BUF] = "";
    const char *target = d->cfg.database_url;

    if (d->cfg.database_url[0] != '\0') {
        size_t cap = STORE_CONNINFO_REDACTED_BUF(strlen(d->cfg.database_url));
        char *shown = malloc(cap);
        if (shown == NULL) {
            log_error("out of memory");
            return -1;
        }
        log_info("database: %s", store_conninfo_redacted(d->cfg.database_url, shown, cap));
        free(shown);
    } else {
        log_info("database: the embedded PostgreSQL of %s", d->cfg.data_dir);
        pg_owned = 1; /* from here to boot_close(): no signal may skip stopping it */
        enum pgembed_rc prc =
            pgembed_start(d->cfg.data_dir, &d->pg, conninfo, sizeof conninfo, err, sizeof err);
        if (prc == PGEMBED_BUSY && !serve &&
            running_cluster_conninfo(d->cfg.data_dir, conninfo, sizeof conninfo) == 0) {
            log_info("the embedded PostgreSQL is run by another usersigd: connecting to it");
        } else if (prc != PGEMBED_OK) {
            log_error("cannot start the embedded PostgreSQL in %s: %s%s%s", d->cfg.data_dir,
                      pgembed_rc_message(prc), err[0] ? "\n" : "", err);
            return -1;
        }
        target = conninfo;
    }
    if (store_open(target, &d->st) != STORE_OK) {
        log_error("cannot connect to the database (see the message above)");
        return -1;
    }
    free(d->conninfo);
    d->conninfo = strdup(target);
    if (d->conninfo == NULL) {
        log_error("out of memory");
        return -1;
    }
    d->svc.st = d->st;
    return 0;
}

/* The schema must be what this binary expects (commands other than serve and migrate). */
int boot_require_current_schema(struct boot *d)
{
    struct migrate_status ms;
    if (migrate_status(d->st, d->migrations_dir, &ms) != MIGRATE_OK) {
        log_error("cannot compare the database schema with %s", d->migrations_dir);
        return -1;
    }
    if (ms.unknown > 0) {
        log_error("the database schema (version %d) is newer than this usersigd (version %d): "
                  "upgrade usersigd",
                  ms.latest_applied, ms.latest_file);
        return -1;
    }
    if (ms.pending > 0) {
        log_error("%d schema migration(s) pending: run usersigd migrate (or usersigd serve)",
                  ms.pending);
        return -1;
    }
    return 0;
}

/* Loads the master key. may_create: serve on the embedded default with no keyring yet, where a
 * missing file is the first run. */
int boot_open_master_key(struct boot *d, bool may_create)
{
    char err[512] = "";
    const char *path = d->cfg.master_key_file;
    struct stat sb;
    enum keyring_rc krc;

    if (stat(path, &sb) != 0 && errno == ENOENT) {
        if (!may_create) {
            log_error(
                "the master key file %s does not exist. usersigd serve creates it on the first "
                "run with the embedded database only; with database_url, create it first "
                "(usersigd master-key create %s) or point USERSIGD_MASTER_KEY_FILE at the "
                "existing one",
                path, path);
            return -1;
        }
        krc = keyring_master_create(path, err, sizeof err);
        if (krc != KEYRING_OK) {
            log_error("cannot create the master key file: %s",
                      err[0] ? err : keyring_rc_message(krc));
            return -1;
        }
        log_info("created the master key file %s (mode 0600): back it up and keep it apart from "
                 "the database; without it no key in the database can be opened",
                 path);
    }
    krc = keyring_master_load(path, &d->kr, err, sizeof err);
    if (krc != KEYRING_OK) {
        log_error("cannot load the master key: %s", err[0] ? err : keyring_rc_message(krc));
        return -1;
    }
    d->svc.kr = d->kr;
    return 0;
}

static int open_root(struct boot *d, const uint8_t *sealed, size_t len)
{
    enum keyring_rc krc = keyring_root_open(d->kr, sealed, len);
    if (krc == KEYRING_OPEN_FAILED) {
        log_error("the master key does not open this database's keyring: %s is not the master key "
                  "this database was set up (or last rewrapped) with",
                  d->cfg.master_key_file);
        return -1;
    }
    if (krc != KEYRING_OK) {
        log_error("cannot open the keyring: %s", keyring_rc_message(krc));
        return -1;
    }
    return 0;
}

/* Opens the keyring root, making it first when the database has none (audited as
 * keyring.create); a concurrent maker wins and its root is read instead. */
int boot_open_keyring(struct boot *d)
{
    uint8_t buf[STORE_SEALED_ROOT_MAX];
    uint8_t *made = NULL;
    size_t len = 0, made_len = 0;
    int64_t created;
    enum store_rc rc = store_keyring_get(d->st, false, buf, sizeof buf, &len, &created);
    enum keyring_rc krc;
    int ret = -1;

    if (rc == STORE_OK)
        return open_root(d, buf, len);
    if (rc != STORE_NOT_FOUND) {
        log_error("cannot read the keyring from the database");
        return -1;
    }
    krc = keyring_root_create(d->kr, &made, &made_len);
    if (krc != KEYRING_OK) {
        log_error("cannot make the keyring root: %s", keyring_rc_message(krc));
        return -1;
    }
    rc = store_begin(d->st);
    if (rc == STORE_OK)
        rc = store_keyring_insert(d->st, made, made_len);
    if (rc == STORE_CONFLICT) {
        store_rollback(d->st);
        log_info("another usersigd created the keyring at the same time: using it");
        rc = store_keyring_get(d->st, false, buf, sizeof buf, &len, &created);
        if (rc != STORE_OK) {
            log_error("cannot read the keyring from the database");
            goto done;
        }
        ret = open_root(d, buf, len);
        goto done;
    }
    if (rc == STORE_OK && open_root(d, made, made_len) != 0)
        goto done;
    if (rc == STORE_OK)
        rc = service_audit(&d->svc, NULL, "keyring.create", 0, 0, "ok", json_object());
    if (rc == STORE_OK)
        rc = store_commit(d->st);
    if (rc != STORE_OK) {
        log_error("cannot store the keyring root");
        goto done;
    }
    log_info("created the keyring root of this database");
    ret = 0;
done:
    store_rollback(d->st);
    free(made);
    return ret;
}

/* Config, database, schema check, master key, keyring: what every command but serve, migrate
 * and master-key needs. */
int boot_open_all(struct boot *d, const char *config_path)
{
    if (boot_load_config(d, config_path) != 0 || boot_interrupted() ||
        boot_open_database(d, false) != 0 || boot_interrupted() ||
        boot_require_current_schema(d) != 0 || boot_open_master_key(d, false) != 0 ||
        boot_interrupted())
        return -1;
    return boot_open_keyring(d);
}
