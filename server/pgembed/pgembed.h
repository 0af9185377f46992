/*
 * pgembed: the private PostgreSQL 15 cluster `usersigd serve` starts when no database URL is
 * configured. It lives in <data_dir>/pg, listens on a Unix socket only (no TCP port is opened,
 * so none can collide) and trusts local connections; the socket directory is mode 0700, so
 * only its owner (and root) can reach it. No SQL and no libpq here: the store connects with the
 * conninfo this module writes.
 */
#ifndef PGEMBED_H
#define PGEMBED_H

#include <stddef.h>

#define PGEMBED_WUR __attribute__((warn_unused_result))

#define PGEMBED_ERR_BUF 2048      /* room for any message, with the last lines of pg.log */
#define PGEMBED_CONNINFO_BUF 1024 /* room for any conninfo pgembed_start() writes */
#define PGEMBED_START_TIMEOUT 60  /* seconds pg_ctl waits for the server to start or stop */

enum pgembed_rc {
    PGEMBED_OK = 0,
    PGEMBED_NOT_INSTALLED, /* no PostgreSQL 15 server binaries, or (as root) no OS user
                            * "postgres": apt-get install postgresql-15 */
    PGEMBED_BUSY,          /* another process (a running usersigd) is using this data_dir */
    PGEMBED_BAD_DIR,       /* data_dir unusable: cannot be created, wrong owner or
                            * permissions, a path with " $ ` \ , or a control character (pg_ctl
                            * and libpq cannot take them) or too long for a Unix socket, or a
                            * cluster of another PostgreSQL version */
    PGEMBED_FAILED,        /* initdb, pg_ctl or createdb failed, or the server did not get
                            * ready in time: err holds the last lines of <data_dir>/pg.log */
    PGEMBED_SYSTEM,        /* a system call failed where it should not (fork, pipe, memory) */
    PGEMBED_BAD_ARG,       /* NULL or empty argument, or conninfo/err buffer too small */
};

/* A one-line explanation a person can act on. */
const char *pgembed_rc_message(enum pgembed_rc rc);

/* A cluster this process started or took over. Opaque. */
struct pgembed;

/*
 * Starts (first run: creates) the cluster of data_dir and waits until it accepts connections.
 *
 * - The binaries are those of `pg_config --bindir`, else /usr/lib/postgresql/15/bin, else the
 *   directory of pg_ctl found in PATH; they must be PostgreSQL 15.
 * - data_dir is created mode 0700 if missing (its missing parents as `mkdir -p` would). Under it:
 *   pg/data (the cluster), pg/run (the socket directory), pg.log (output of initdb, pg_ctl and
 *   the server) and pg.lock (held while the handle lives; a second process gets PGEMBED_BUSY).
 * - First run: initdb (superuser usersigd, UTF8, locale C, trust for local socket connections,
 *   reject for TCP) into pg/data.init, which gets database usersigd and is then renamed to
 *   pg/data: a first run cut short is redone from the start by the next one.
 * - A server already running on pg/data (a previous usersigd crashed) is taken over. A stale
 *   postmaster.pid is left to PostgreSQL, which replaces it, unless its pid now belongs to a
 *   live process that is not PostgreSQL (as after a container restart): that one is removed.
 * - As root (PostgreSQL refuses to run as root) every PostgreSQL command runs as the OS user
 *   "postgres", which owns pg/ and pg.log; data_dir and, where needed, its parents get the one
 *   search (x) permission bit that lets that user reach pg/ (logged at WARN for each parent).
 *   Root writes nothing inside pg/ itself. As any other user, everything runs as that user.
 * - Children are run from argv arrays (no shell) with a clean environment, stdin /dev/null,
 *   output appended to pg.log and no inherited descriptor beyond 0-2, and are all waited for.
 *   So, while pgembed_start() or pgembed_stop() runs, SIGCHLD must not be ignored (SIG_IGN)
 *   and nothing else may reap children with waitpid(-1, ...).
 *
 * On success *out is a new handle (caller pgembed_stop()s it) and conninfo gets a libpq
 * keyword/value string, "host=<absolute socket directory> port=5432 dbname=usersigd
 * user=usersigd", values quoted where needed (PGEMBED_CONNINFO_BUF is enough). On failure *out
 * is NULL, err (PGEMBED_ERR_BUF is enough; may be NULL) gets a message naming what failed
 * (possibly several lines: the tail of pg.log), and a server this call started is stopped.
 * Blocks for up to a few minutes on a first run (initdb, two starts).
 */
enum pgembed_rc pgembed_start(const char *data_dir, struct pgembed **out, char *conninfo,
                              size_t cap, char *err, size_t errlen) PGEMBED_WUR;

/* Stops the server (pg_ctl stop -m fast, waiting up to PGEMBED_START_TIMEOUT seconds; a
 * failure is logged with the tail of pg.log), releases pg.lock and frees pg. NULL is a no-op. */
void pgembed_stop(struct pgembed *pg);

#endif
