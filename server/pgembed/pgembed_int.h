/*
 * Internals of pgembed, shared by its files and included by nothing else. The layers, each
 * calling only those below it: pgembed.c (finding PostgreSQL, running its commands, creating,
 * starting, taking over and stopping the cluster) -> pgembed_dir.c (making the data directory
 * ready for them) -> pgembed_str.c (string helpers), proc.c (running children).
 */
#ifndef PGEMBED_INT_H
#define PGEMBED_INT_H

#include <stddef.h>
#include <sys/types.h>

#include "pgembed.h"
#include "proc.h"

#define PG_PORT 5432
#define PG_SOCKET_FILE "/.s.PGSQL.5432" /* PostgreSQL's socket name for PG_PORT */
#define OS_USER "postgres"

struct pgembed {
    char *data_dir; /* absolute, symlinks resolved */
    char *pg_dir;   /* <data_dir>/pg: owned by the run user */
    char *pgdata;   /* <data_dir>/pg/data: the cluster */
    char *run_dir;  /* <data_dir>/pg/run: the socket directory */
    char *log_path; /* <data_dir>/pg.log */
    char *pg_ctl, *initdb, *createdb;
    struct proc_runas as; /* who the PostgreSQL commands run as, and what they get */
    int lock_fd;          /* <data_dir>/pg.lock, flock()ed while the handle lives */
    int log_fd;           /* pg.log, O_APPEND */
    pid_t postmaster;
};

/* pgembed_str.c: dir/name, and a formatted string: new strings (caller frees), or NULL when
 * out of memory. */
char *pgembed_join(const char *dir, const char *name);
char *pgembed_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * pgembed_dir.c: makes data_dir ready (pg->as already set): refuses a path PostgreSQL's tools
 * or a Unix socket cannot take, creates it (mode 0700, parents as `mkdir -p`), sets
 * pg->data_dir (absolute, symlinks resolved), pg_dir, pgdata, run_dir and log_path, as root
 * gives the run user search permission down to it, takes pg.lock (PGEMBED_BUSY when another
 * process holds it), opens pg.log and creates pg/ and pg/run. On failure err says why; what was
 * set goes with the handle.
 */
enum pgembed_rc pgembed_dir_prepare(struct pgembed *pg, const char *data_dir, char *err,
                                    size_t errlen) PGEMBED_WUR;

#endif
