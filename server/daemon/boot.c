/*
 * Bringing usersigd up (boot.h): settings, database, schema check, master key and keyring root,
 * shared by `usersigd serve` and the operator commands so that they fail the same way.
 */
#include "boot.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "migrate.h"

void boot_close(struct boot *d)
{
    store_close(d->st);
    d->st = NULL;
    keyring_free(d->kr);
    d->kr = NULL;
    pgembed_stop(d->pg);
    d->pg = NULL;
}

int boot_load_config(const char *path, struct config *cfg)
{
    char err[CONFIG_ERR_BUF];
    if (config_load(path, cfg, err, sizeof err) != CONFIG_OK) {
        fprintf(stderr, "usersigd: %s\n", err);
        return -1;
    }
    log_set_level(cfg->log_level);
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
        size_t cap = strlen(d->cfg.database_url) + 16;
        char *shown = malloc(cap);
        if (shown == NULL) {
            log_error("out of memory");
            return -1;
        }
        log_info("database: %s", config_redacted_url(d->cfg.database_url, shown, cap));
        free(shown);
    } else {
        log_info("database: the embedded PostgreSQL of %s", d->cfg.data_dir);
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
        rc = service_audit(&d->svc, NULL, "keyring.create", 0, 0, "ok", NULL);
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
    if (boot_load_config(config_path, &d->cfg) != 0 || boot_open_database(d, false) != 0 ||
        boot_require_current_schema(d) != 0 || boot_open_master_key(d, false) != 0)
        return -1;
    return boot_open_keyring(d);
}
