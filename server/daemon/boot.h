/*
 * Bringing usersigd up: the startup steps `usersigd serve` and the operator commands share, in
 * order: settings, the database (external, or the embedded PostgreSQL), the schema check, the
 * master key file, the keyring root. Each step logs why it failed, in words an operator can act
 * on, and returns -1; boot_close() undoes whatever was done.
 */
#ifndef BOOT_H
#define BOOT_H

#include <stdbool.h>

#include "config.h"
#include "keyring.h"
#include "pgembed.h"
#include "service.h"
#include "store.h"

/* Everything a command opens, closed by boot_close() in reverse order. */
struct boot {
    struct config cfg;
    const char *config_path;    /* the --config file, NULL: none (SIGHUP re-reads it) */
    const char *migrations_dir; /* cfg.migrations_dir once loaded */
    struct pgembed *pg;
    struct store *st;
    char *conninfo; /* what st connected with: the database pool opens its own the same way */
    struct keyring *kr;
    struct service svc;
};

/* Undoes the steps done: closes the store, wipes the keyring, stops the embedded PostgreSQL.
 * Accepts a partly opened or zeroed struct. */
void boot_close(struct boot *d);

/* config_load() into d->cfg (env overrides the file at path, NULL: none), the log level, and
 * the pointers to it in d and d->svc. Errors go to stderr as "usersigd: ...". */
int boot_load_config(struct boot *d, const char *path);

/* Signals for the whole run: SIGHUP, SIGINT, SIGTERM and SIGQUIT are only noted (serve's event
 * loop takes them over through evsignal while it runs, and gives them back after), SIGPIPE is
 * ignored. So no signal skips boot_close(), which stops the embedded PostgreSQL. A second stop
 * signal takes its default action unless the embedded PostgreSQL is being started or runs.
 * 0, or -1 when sigaction fails. */
int boot_catch_signals(void);
/* The stop signal (SIGINT, SIGTERM, SIGQUIT) noted so far, 0 when none. */
int boot_stop_signal(void);
/* Whether a SIGHUP was noted since the last call. */
bool boot_take_hup(void);
/* "SIGTERM" and so on. */
const char *boot_signal_name(int sig);
/* True (logged once: "SIGTERM during start-up: stopping") when a stop signal was noted: the
 * startup steps look between them. */
bool boot_interrupted(void);

/* What serve checks before it creates anything (master key, cluster, token): the listen
 * address binds (a test bind), the data directory (embedded database) exists writable or can
 * be created, the master key file is readable if present, else (embedded) creatable. Each
 * failure is logged once, saying what failed and what to do. 0, or -1. */
int boot_check_serve(const struct config *cfg);

/* Connects to database_url, or starts the embedded PostgreSQL of data_dir (serve). Other
 * commands (serve false) that find the embedded one run by a serve connect through its socket.
 * Sets d->st and d->svc.st. */
int boot_open_database(struct boot *d, bool serve);

/* -1 (logged: "run usersigd migrate", or "upgrade usersigd") unless the schema is current. */
int boot_require_current_schema(struct boot *d);

/* Loads master_key_file into d->kr (and d->svc.kr). may_create: a missing file is the first run
 * (serve on the embedded database with no keyring yet) and is created (mode 0600). Otherwise a
 * missing file is an error saying how to make or find one. */
int boot_open_master_key(struct boot *d, bool may_create);

/* Opens the keyring root into d->kr, first creating it (audited as keyring.create) when the
 * database has none; a root created concurrently by another process is read instead. A master
 * key that does not open it: "the master key does not open this database's keyring". */
int boot_open_keyring(struct boot *d);

/* boot_load_config, boot_open_database (not serve), boot_require_current_schema,
 * boot_open_master_key (no create), boot_open_keyring: what the operator commands need. */
int boot_open_all(struct boot *d, const char *config_path);

#endif
