/*
 * `usersigd serve`: checks what can fail before anything is created (listen address, data
 * directory, master key file), binds the admin API, brings the rest up in order (database,
 * migrations, master key, keyring root, first admin token) and runs one libevent loop. Signals go
 * through evsignal on that loop: SIGHUP re-reads the settings, SIGINT/SIGTERM stop gracefully,
 * SIGQUIT at once; every way out stops the embedded PostgreSQL (boot_close()).
 */
#ifndef SERVE_H
#define SERVE_H

#include "boot.h"

/* Runs serve with the config file at config_path (NULL: none) until a stop signal. Returns 0
 * when stopped by a signal (during start-up too), -1 when something failed (logged). The caller
 * boot_close()s d either way. */
int serve_run(struct boot *d, const char *config_path);

#endif
