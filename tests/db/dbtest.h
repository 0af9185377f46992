/*
 * Helpers of the database tests: each test process makes its own database on the throwaway
 * cluster (the URL is in the file named by USERSIGD_TEST_PG_URL_FILE), so db tests run in
 * parallel, and drops it at the end. libpq is used directly only for setup and tampering.
 */
#ifndef DBTEST_H
#define DBTEST_H

#include "keyring.h"
#include "migrate.h"
#include "store.h"
#include "testlib.h"

#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct dbtest {
    char admin_url[512]; /* the cluster's usersigd database */
    char url[640];       /* this test's database */
    char name[64];
};

/* Runs sql (no parameters) on c; false (and a message) when it fails, unless quiet. */
static inline bool dbtest_exec(PGconn *c, const char *sql, bool quiet)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType s = PQresultStatus(r);
    bool ok = s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK;
    if (!ok && !quiet)
        fprintf(stderr, "dbtest: %s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    return ok;
}

/* The error message of sql when it fails (a static buffer), or NULL when it succeeds. */
static inline const char *dbtest_error(PGconn *c, const char *sql)
{
    static char msg[512];
    PGresult *r = PQexec(c, sql);
    ExecStatusType s = PQresultStatus(r);
    const char *m = s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK ? NULL : PQerrorMessage(c);
    if (m != NULL)
        snprintf(msg, sizeof msg, "%s", m);
    PQclear(r);
    return m != NULL ? msg : NULL;
}

/* The first column of the first row of sql as a number (-1 on failure). */
static inline long long dbtest_scalar(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    long long v = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
        v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    else
        fprintf(stderr, "dbtest: %s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    return v;
}

static inline void dbtest_quiet_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

static inline PGconn *dbtest_connect_url(const char *url)
{
    PGconn *c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "dbtest: cannot connect: %s", PQerrorMessage(c));
        PQfinish(c);
        return NULL;
    }
    PQsetNoticeProcessor(c, dbtest_quiet_notice, NULL);
    return c;
}

/* A libpq connection to this test's database (caller PQfinish()es it); exits on failure. */
static inline PGconn *dbtest_connect(const struct dbtest *t)
{
    PGconn *c = dbtest_connect_url(t->url);
    if (c == NULL)
        exit(1);
    return c;
}

/* Makes a new database "<prefix>_<pid>" (dropping a leftover one) and fills t; with migrate,
 * applies migrations/ to it. Exits on failure: nothing else can run then. */
static inline void dbtest_create(struct dbtest *t, const char *prefix, bool migrate)
{
    const char *file = getenv("USERSIGD_TEST_PG_URL_FILE");
    FILE *f = file != NULL ? fopen(file, "r") : NULL;
    char sql[256];
    PGconn *admin;
    char *slash;

    memset(t, 0, sizeof *t);
    if (f == NULL || fgets(t->admin_url, sizeof t->admin_url, f) == NULL) {
        fprintf(stderr,
                "dbtest: USERSIGD_TEST_PG_URL_FILE (%s) is not readable: run through "
                "ctest, which starts the throwaway cluster\n",
                file != NULL ? file : "unset");
        exit(1);
    }
    fclose(f);
    t->admin_url[strcspn(t->admin_url, "\r\n")] = '\0';
    snprintf(t->name, sizeof t->name, "%s_%ld", prefix, (long)getpid());
    /* postgresql://user@host:port/dbname[?params] -> the same with this test's database */
    slash = strrchr(t->admin_url, '/');
    if (slash == NULL || strstr(t->admin_url, "://") == NULL) {
        fprintf(stderr, "dbtest: unexpected URL form\n");
        exit(1);
    }
    snprintf(t->url, sizeof t->url, "%.*s/%s%s", (int)(slash - t->admin_url), t->admin_url, t->name,
             strchr(slash, '?') != NULL ? strchr(slash, '?') : "");

    admin = dbtest_connect_url(t->admin_url);
    if (admin == NULL)
        exit(1);
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", t->name);
    bool ok = dbtest_exec(admin, sql, false);
    snprintf(sql, sizeof sql, "CREATE DATABASE %s TEMPLATE template0", t->name);
    ok = ok && dbtest_exec(admin, sql, false);
    PQfinish(admin);
    if (!ok)
        exit(1);

    if (migrate) {
        struct store *st = NULL;
        int applied = 0;
        if (store_open(t->url, &st) != STORE_OK ||
            migrate_apply(st, USERSIGD_MIGRATIONS_DIR, &applied) != MIGRATE_OK || applied < 1) {
            fprintf(stderr, "dbtest: cannot migrate %s\n", t->name);
            exit(1);
        }
        store_close(st);
    }
}

/* Drops this test's database. */
static inline void dbtest_drop(const struct dbtest *t)
{
    char sql[256];
    PGconn *admin = dbtest_connect_url(t->admin_url);
    if (admin == NULL)
        return;
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS %s WITH (FORCE)", t->name);
    (void)dbtest_exec(admin, sql, false);
    PQfinish(admin);
}

/* A store on this test's database; exits on failure. */
static inline struct store *dbtest_store(const struct dbtest *t)
{
    struct store *st = NULL;
    if (store_open(t->url, &st) != STORE_OK) {
        fprintf(stderr, "dbtest: store_open failed\n");
        exit(1);
    }
    return st;
}

/* A keyring with a new master key (its file removed at once) and a root stored in st's
 * database: what the server has after its first start. Exits on failure. */
static inline struct keyring *dbtest_keyring(struct store *st)
{
    char dir[] = "/tmp/usersigd-dbtest.XXXXXX", path[64], err[256] = "";
    struct keyring *kr = NULL;
    uint8_t *sealed_root = NULL;
    size_t root_len = 0;

    if (mkdtemp(dir) == NULL) {
        fprintf(stderr, "dbtest: mkdtemp failed\n");
        exit(1);
    }
    snprintf(path, sizeof path, "%s/master.key", dir);
    bool ok = keyring_master_create(path, err, sizeof err) == KEYRING_OK &&
              keyring_master_load(path, &kr, err, sizeof err) == KEYRING_OK &&
              keyring_root_create(kr, &sealed_root, &root_len) == KEYRING_OK &&
              store_keyring_insert(st, sealed_root, root_len) == STORE_OK &&
              keyring_root_open(kr, sealed_root, root_len) == KEYRING_OK;
    free(sealed_root);
    unlink(path);
    rmdir(dir);
    if (!ok) {
        fprintf(stderr, "dbtest: keyring: %s\n", err);
        exit(1);
    }
    return kr;
}

/* Inserts an app; false when the store refused it. */
static inline bool dbtest_add_app(struct store *st, uint32_t sdkappid, uint32_t default_expire,
                                  uint32_t max_expire, enum store_id_policy policy)
{
    struct store_app a;
    memset(&a, 0, sizeof a);
    a.sdkappid = sdkappid;
    snprintf(a.name, sizeof a.name, "app %u", sdkappid);
    a.default_expire = default_expire;
    a.max_expire = max_expire;
    a.identifier_policy = policy;
    return store_app_insert(st, &a) == STORE_OK;
}

/* Adds an HMAC key version, sealed as the server keeps it; returns its version, 0 on failure. */
static inline uint32_t dbtest_add_key(struct store *st, struct keyring *kr, uint32_t sdkappid,
                                      const char *secret, enum store_key_state state)
{
    struct store_key k;
    uint8_t *sealed = NULL;
    size_t len = 0;
    uint32_t version = 0;

    memset(&k, 0, sizeof k);
    if (store_begin(st) != STORE_OK || store_key_next_version(st, sdkappid, &version) != STORE_OK ||
        keyring_seal_key(kr, sdkappid, version, (const uint8_t *)secret, strlen(secret), &sealed,
                         &len) != KEYRING_OK ||
        keyring_fingerprint_hmac(kr, (const uint8_t *)secret, strlen(secret), k.fingerprint) !=
            KEYRING_OK) {
        store_rollback(st);
        free(sealed);
        return 0;
    }
    k.sdkappid = sdkappid;
    k.version = version;
    k.kind = STORE_KEY_HMAC;
    k.state = state;
    k.sealed = sealed;
    k.sealed_len = len;
    bool ok = store_key_insert(st, &k) == STORE_OK && store_commit(st) == STORE_OK;
    store_rollback(st);
    free(sealed);
    return ok ? version : 0;
}

/* Inserts an API token row for name with role, apps (NULL: every app) and expiry (0: none);
 * the token's text goes to out. Returns the row's id, 0 on failure. */
static inline int64_t dbtest_add_token(struct store *st, const char *name, enum store_role role,
                                       const uint32_t *apps, size_t n_apps, int64_t expires_at_us,
                                       char out[KEYRING_TOKEN_BUF])
{
    struct store_token t;
    char tmp[KEYRING_TOKEN_BUF];
    memset(&t, 0, sizeof t);
    snprintf(t.name, sizeof t.name, "%s", name);
    t.role = role;
    t.all_apps = apps == NULL;
    t.n_apps = n_apps;
    if (apps != NULL)
        memcpy(t.apps, apps, n_apps * sizeof apps[0]);
    t.expires_at_us = expires_at_us;
    /* The hash covers the secret only, so the id can be put in once the row has one. */
    if (keyring_token_new(1, tmp, sizeof tmp, t.secret_hash) != KEYRING_OK ||
        store_token_insert(st, &t) != STORE_OK)
        return 0;
    snprintf(out, KEYRING_TOKEN_BUF, "usg_%lld_%s", (long long)t.id, strchr(tmp + 4, '_') + 1);
    OPENSSL_cleanse(tmp, sizeof tmp);
    return t.id;
}

#endif
