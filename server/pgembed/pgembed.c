/*
 * pgembed: creates, starts, takes over and stops the private PostgreSQL 15 cluster of a data
 * directory by running initdb, pg_ctl and createdb as child processes (argv arrays, no shell;
 * the runner is proc.c). As root, PostgreSQL's commands and every write inside <data_dir>/pg
 * happen in a child that became the OS user "postgres" after fork (proc_spawn,
 * proc_fileop_run): root never writes in a directory that user controls. The data directory is
 * made ready by pgembed_dir.c. Layers: pgembed.c -> pgembed_dir.c -> pgembed_str.c, proc.c;
 * nothing below calls back up here.
 */
#include "pgembed.h"
#include "pgembed_int.h"

#include "clock.h"
#include "log.h"
#include "proc.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PG_MAJOR 15
#define DB_NAME "usersigd"
#define DB_USER "usersigd"
#define FALLBACK_BINDIR "/usr/lib/postgresql/15/bin"
#define INSTALL_HINT "apt-get install postgresql-15"
#define LOG_TAIL_LINES 8
#define LOG_TAIL_BYTES 4096
#define STR_(x) #x
#define STR(x) STR_(x)

const char *pgembed_rc_message(enum pgembed_rc rc)
{
    switch (rc) {
    case PGEMBED_OK:
        return "ok";
    case PGEMBED_NOT_INSTALLED:
        return "PostgreSQL 15 is not installed (or, as root, there is no OS user \"postgres\"): "
               "apt-get install postgresql-15";
    case PGEMBED_BUSY:
        return "another process is using this data directory's PostgreSQL: is another usersigd "
               "running with it?";
    case PGEMBED_BAD_DIR:
        return "the data directory cannot hold the embedded PostgreSQL (owner, permissions, "
               "path or cluster version)";
    case PGEMBED_FAILED:
        return "a PostgreSQL command failed: see pg.log in the data directory";
    case PGEMBED_SYSTEM:
        return "a system call failed while running PostgreSQL";
    case PGEMBED_BAD_ARG:
        return "bad argument to pgembed_start (NULL or empty, or a buffer too small)";
    }
    return "unknown pgembed result";
}

static bool is_exec(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* ---- Running PostgreSQL's commands ------------------------------------------------------ */

/* Appends to err the last lines pg.log got since offset from, control characters but newlines
 * replaced. */
static void append_log_tail(const struct pgembed *pg, off_t from, char *err, size_t errlen)
{
    char buf[LOG_TAIL_BYTES + 1];
    size_t used = err != NULL ? strlen(err) : 0;
    int fd;

    if (err == NULL || used + 1 >= errlen)
        return;
    fd = open(pg->log_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return;
    off_t end = lseek(fd, 0, SEEK_END);
    off_t start = end - LOG_TAIL_BYTES > from ? end - LOG_TAIL_BYTES : from;
    ssize_t n = end > start ? pread(fd, buf, (size_t)(end - start), start) : 0;
    close(fd);
    if (n <= 0)
        return;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    buf[n] = '\0';
    char *p = buf + n;
    for (int lines = 0; p > buf; p--)
        if (p[-1] == '\n' && ++lines == LOG_TAIL_LINES)
            break;
    for (char *q = p; *q != '\0'; q++)
        if ((unsigned char)*q < 0x20 && *q != '\n')
            *q = *q == '\t' ? ' ' : '?';
    int head = snprintf(err + used, errlen - used, "; last lines of %s:\n", pg->log_path);
    if (head < 0 || (size_t)head >= errlen - used)
        return;
    /* What does not fit goes from the start: the last line is the one that says why. */
    size_t room = errlen - used - (size_t)head - 1, len = strlen(p);
    if (len > room) {
        p += len - room;
        p += strcspn(p, "\n") + (strchr(p, '\n') != NULL);
    }
    snprintf(err + used + head, errlen - used - (size_t)head, "%s", p);
}

/* Runs a PostgreSQL command as the run user in pg_dir, its output appended to pg.log. On
 * failure err says what failed and shows the last lines it wrote (err NULL: quiet). */
static enum pgembed_rc run_pg(const struct pgembed *pg, const char *what, const char *const argv[],
                              char *err, size_t errlen)
{
    char head[1024], when[32], how[64];
    struct tm tm;
    time_t now = time(NULL);
    size_t n;
    int st;

    /* A header in pg.log, so each command's output can be found. */
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    n = (size_t)snprintf(head, sizeof head, "--- usersigd %s:", when);
    for (int i = 0; argv[i] != NULL && n < sizeof head; i++)
        n += (size_t)snprintf(head + n, sizeof head - n, " %s", argv[i]);
    if (n >= sizeof head - 1)
        n = sizeof head - 2;
    head[n++] = '\n';
    ssize_t w = write(pg->log_fd, head, n);
    (void)w;

    off_t from = lseek(pg->log_fd, 0, SEEK_END);
    pid_t pid = proc_spawn(&pg->as, pg->pg_dir, argv, pg->log_fd, pg->log_fd);
    if (pid < 0) {
        log_errbuf(err, errlen, "cannot start %s: fork: %s", what, strerror(errno));
        return PGEMBED_SYSTEM;
    }
    if (proc_wait(pid, &st) != 0) {
        log_errbuf(err, errlen, "cannot wait for %s: %s", what, strerror(errno));
        return PGEMBED_SYSTEM;
    }
    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return PGEMBED_OK;
    proc_describe_status(st, how, sizeof how);
    log_errbuf(err, errlen, "%s failed (%s)", what, how);
    append_log_tail(pg, from, err, errlen);
    return PGEMBED_FAILED;
}

/* ---- Finding PostgreSQL ---------------------------------------------------------------- */

static char *find_in_path(const char *name)
{
    const char *path = getenv("PATH");
    char *copy, *save = NULL, *found = NULL;

    if (path == NULL || (copy = strdup(path)) == NULL)
        return NULL;
    for (char *dir = strtok_r(copy, ":", &save); dir != NULL && found == NULL;
         dir = strtok_r(NULL, ":", &save)) {
        char *cand = dir[0] == '/' ? pgembed_join(dir, name) : NULL;
        if (cand != NULL && is_exec(cand))
            found = cand;
        else
            free(cand);
    }
    free(copy);
    return found;
}

/* The major version of the PostgreSQL in dir (all of its binaries we use present), or -1. */
static int bindir_major(const struct proc_runas *as, const char *dir)
{
    static const char *const need[] = {"pg_ctl", "initdb", "postgres", "createdb"};
    char out[256], *pg_ctl = NULL;
    int major = -1;

    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++) {
        char *p = pgembed_join(dir, need[i]);
        bool ok = p != NULL && is_exec(p);
        free(p);
        if (!ok)
            return -1;
    }
    if ((pg_ctl = pgembed_join(dir, "pg_ctl")) == NULL)
        return -1;
    const char *argv[] = {pg_ctl, "--version", NULL};
    if (proc_capture(as, argv, out, sizeof out) == 0) {
        const char *v = strstr(out, "(PostgreSQL) ");
        if (v != NULL)
            major = atoi(v + strlen("(PostgreSQL) "));
    }
    free(pg_ctl);
    return major;
}

/* Sets pg->pg_ctl, initdb, createdb from the first of: pg_config --bindir, FALLBACK_BINDIR,
 * the directory of pg_ctl in PATH (symlinks resolved), that is PostgreSQL 15. */
static enum pgembed_rc find_binaries(struct pgembed *pg, char *err, size_t errlen)
{
    char out[PATH_MAX + 16] = "", other[PATH_MAX + 64] = "";
    char *pg_config = find_in_path("pg_config"), *in_path = find_in_path("pg_ctl");
    char *cand[3] = {NULL, strdup(FALLBACK_BINDIR), NULL};
    const char *argv[] = {pg_config, "--bindir", NULL};
    enum pgembed_rc rc = cand[1] != NULL ? PGEMBED_NOT_INSTALLED : PGEMBED_SYSTEM;

    if (pg_config != NULL && proc_capture(&pg->as, argv, out, sizeof out) == 0 && out[0] == '/') {
        out[strcspn(out, "\r\n")] = '\0';
        if ((cand[0] = strdup(out)) == NULL)
            rc = PGEMBED_SYSTEM;
    }
    if (in_path != NULL && (cand[2] = realpath(in_path, NULL)) != NULL)
        *strrchr(cand[2], '/') = '\0'; /* "/usr/lib/postgresql/15/bin/pg_ctl": its directory */
    for (int i = 0; i < 3 && rc == PGEMBED_NOT_INSTALLED; i++) {
        int major = cand[i] != NULL ? bindir_major(&pg->as, cand[i]) : -1;
        if (major == PG_MAJOR) {
            pg->pg_ctl = pgembed_join(cand[i], "pg_ctl");
            pg->initdb = pgembed_join(cand[i], "initdb");
            pg->createdb = pgembed_join(cand[i], "createdb");
            rc = pg->pg_ctl && pg->initdb && pg->createdb ? PGEMBED_OK : PGEMBED_SYSTEM;
        } else if (major > 0 && other[0] == '\0') {
            snprintf(other, sizeof other, " (%s holds PostgreSQL %d)", cand[i], major);
        }
    }
    if (rc == PGEMBED_SYSTEM)
        log_errbuf(err, errlen, "out of memory");
    else if (rc == PGEMBED_NOT_INSTALLED)
        log_errbuf(
            err, errlen,
            "PostgreSQL %d server binaries (initdb, pg_ctl, postgres, createdb) not found in "
            "pg_config --bindir, %s or PATH%s: " INSTALL_HINT,
            PG_MAJOR, FALLBACK_BINDIR, other);
    free(pg_config);
    free(in_path);
    for (int i = 0; i < 3; i++)
        free(cand[i]);
    return rc;
}

/* As root: the OS user PostgreSQL runs as, and its groups. */
static enum pgembed_rc lookup_os_user(struct proc_runas *as, char *err, size_t errlen)
{
    enum proc_user_rc rc = proc_runas_lookup(as, OS_USER);

    if (rc == PROC_USER_UNKNOWN) {
        log_errbuf(
            err, errlen,
            "usersigd runs as root and PostgreSQL refuses to: it runs as the OS user \"" OS_USER
            "\", which does not exist: " INSTALL_HINT " (or run usersigd as another user)");
        return PGEMBED_NOT_INSTALLED;
    }
    if (rc == PROC_USER_ROOT) {
        log_errbuf(err, errlen, "the OS user \"" OS_USER "\" has uid 0; PostgreSQL refuses root");
        return PGEMBED_NOT_INSTALLED;
    }
    return PGEMBED_OK;
}

/* ---- The server ---------------------------------------------------------------------------- */

/* Reads a small file (not through a symlink) into buf, NUL-terminated. Returns its length. */
static ssize_t read_small(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return -1;
    do
        n = read(fd, buf, cap - 1);
    while (n < 0 && errno == EINTR);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    return n;
}

/* postmaster.pid: pid, data directory, start time, port, socket directory, listen address,
 * shared memory key, status. */
struct pidinfo {
    long pid;
    int port;
    char sockdir[PATH_MAX];
    char status[16];
};

static int read_pidfile(const char *pgdata, struct pidinfo *pi)
{
    char buf[8192], *path = pgembed_join(pgdata, "postmaster.pid");
    int line = 1;

    memset(pi, 0, sizeof *pi);
    if (path == NULL)
        return -1;
    ssize_t n = read_small(path, buf, sizeof buf);
    free(path);
    if (n <= 0)
        return -1;
    for (char *s = buf, *nl; s != NULL && line <= 8; s = nl ? nl + 1 : NULL, line++) {
        nl = strchr(s, '\n');
        if (nl != NULL)
            *nl = '\0';
        if (line == 1)
            pi->pid = strtol(s, NULL, 10);
        else if (line == 4)
            pi->port = atoi(s);
        else if (line == 5 && strlen(s) < sizeof pi->sockdir)
            memcpy(pi->sockdir, s, strlen(s) + 1);
        else if (line == 8) /* padded with spaces */
            snprintf(pi->status, sizeof pi->status, "%.*s", (int)strcspn(s, " "), s);
    }
    return pi->pid > 0 ? 0 : -1;
}

enum pm_state { PM_NONE, PM_ALIVE, PM_FOREIGN };

/* Whether pid is alive and (where /proc tells) a PostgreSQL process: after a reboot or a
 * container restart a stale postmaster.pid may name a pid now used by something else. */
static enum pm_state pm_state(long pid)
{
    char path[64], comm[64];

    if (kill((pid_t)pid, 0) != 0 && errno != EPERM)
        return PM_NONE;
    snprintf(path, sizeof path, "/proc/%ld/comm", pid);
    if (read_small(path, comm, sizeof comm) <= 0)
        return PM_ALIVE;
    comm[strcspn(comm, "\n")] = '\0';
    return strcmp(comm, "postgres") == 0 || strcmp(comm, "postmaster") == 0 ? PM_ALIVE : PM_FOREIGN;
}

/* Waits for a server already running on pg->pgdata to be ready. *taken = true when it is;
 * false when there is none (or it went away), so the caller starts one. */
static enum pgembed_rc take_over(struct pgembed *pg, bool *taken, char *err, size_t errlen)
{
    struct pidinfo pi;
    double deadline = ((double)clock_monotonic_ns() / 1e9) + PGEMBED_START_TIMEOUT;

    *taken = false;
    while (read_pidfile(pg->pgdata, &pi) == 0) {
        enum pm_state s = pm_state(pi.pid);
        if (s == PM_NONE)
            return PGEMBED_OK; /* stale: the postmaster replaces the file */
        if (s == PM_FOREIGN) {
            char *path = pgembed_join(pg->pgdata, "postmaster.pid");
            struct proc_fileop op = {.kind = PROC_OP_UNLINK, .path = path};
            log_warn("embedded PostgreSQL: %s names pid %ld, which is not a PostgreSQL process "
                     "(left by a server that did not stop): removing it",
                     path ? path : "postmaster.pid", pi.pid);
            int r = path != NULL ? proc_fileop_run(&pg->as, &op) : -1;
            free(path);
            if (r != 0) {
                log_errbuf(err, errlen, "cannot remove the stale postmaster.pid of %s: %s",
                           pg->pgdata, strerror(errno));
                return PGEMBED_BAD_DIR;
            }
            return PGEMBED_OK;
        }
        if (strcmp(pi.status, "ready") == 0) {
            log_info("embedded PostgreSQL: taking over the server already running on %s "
                     "(pid %ld)",
                     pg->pgdata, pi.pid);
            *taken = true;
            return PGEMBED_OK;
        }
        if (((double)clock_monotonic_ns() / 1e9) > deadline) {
            log_errbuf(err, errlen,
                       "the PostgreSQL server on %s (pid %ld) is running but not ready after %d s "
                       "(status \"%s\")",
                       pg->pgdata, pi.pid, PGEMBED_START_TIMEOUT, pi.status);
            return PGEMBED_FAILED;
        }
        nanosleep(&(struct timespec){.tv_nsec = 100 * 1000 * 1000}, NULL);
    }
    return PGEMBED_OK;
}

/* Writes pgdata/usersigd.conf, which postgresql.conf includes: what makes the cluster private,
 * and the one setting of its own (wal_init_zero). Rewritten at each start, so a moved data
 * directory gets its new socket path. */
static enum pgembed_rc write_settings(const struct pgembed *pg, const char *pgdata, char *err,
                                      size_t errlen)
{
    char quoted[2 * PATH_MAX], *text = NULL;
    char *path = pgembed_join(pgdata, "usersigd.conf"),
         *tmp = pgembed_join(pgdata, "usersigd.conf.tmp");
    size_t n = 0;
    enum pgembed_rc rc = PGEMBED_SYSTEM;

    if (path == NULL || tmp == NULL) {
        log_errbuf(err, errlen, "out of memory");
        goto out;
    }
    /* A configuration string doubles its single quotes; the list item is double-quoted so
     * that spaces stay part of the path (check_path() refused '"', backslash and ','). */
    for (const char *p = pg->run_dir; *p != '\0' && n + 3 < sizeof quoted; p++) {
        if (*p == '\'')
            quoted[n++] = '\'';
        quoted[n++] = *p;
    }
    quoted[n] = '\0';
    text =
        pgembed_asprintf("# Written by usersigd at each start of its embedded server; edits here "
                         "are overwritten.\n"
                         "# A private cluster: a Unix socket only (no TCP port), in a directory "
                         "only its owner can enter.\n"
                         "listen_addresses = ''\n"
                         "unix_socket_directories = '\"%s\"'\n"
                         "unix_socket_permissions = 0700\n"
                         "port = %d\n"
                         "# A new WAL segment is not zero-filled first: the commit that needs "
                         "one would wait for\n"
                         "# 16 MiB of zeros to be written (~20 ms here while signs write "
                         "~13 MB of WAL a second).\n"
                         "wal_init_zero = off\n",
                         quoted, PG_PORT);
    if (text == NULL) {
        log_errbuf(err, errlen, "out of memory");
        goto out;
    }
    struct proc_fileop op = {
        .kind = PROC_OP_WRITE, .path = path, .other = tmp, .data = text, .len = strlen(text)};
    if (proc_fileop_run(&pg->as, &op) != 0) {
        log_errbuf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        rc = PGEMBED_BAD_DIR;
        goto out;
    }
    rc = PGEMBED_OK;
out:
    free(text);
    free(path);
    free(tmp);
    return rc;
}

static enum pgembed_rc server_start(const struct pgembed *pg, const char *pgdata, char *err,
                                    size_t errlen)
{
    enum pgembed_rc rc = write_settings(pg, pgdata, err, errlen);
    if (rc != PGEMBED_OK)
        return rc;
    const char *argv[] = {pg->pg_ctl, "start", "-D",
                          pgdata,     "-l",    pg->log_path,
                          "-w",       "-t",    STR(PGEMBED_START_TIMEOUT),
                          NULL};
    return run_pg(pg, "pg_ctl start", argv, err, errlen);
}

static enum pgembed_rc server_stop(const struct pgembed *pg, const char *pgdata, const char *mode,
                                   char *err, size_t errlen)
{
    const char *argv[] = {
        pg->pg_ctl, "stop", "-D", pgdata, "-m", mode, "-w", "-t", STR(PGEMBED_START_TIMEOUT), NULL};
    return run_pg(pg, "pg_ctl stop", argv, err, errlen);
}

/* First run: initdb into pg/data.init, start it, create the database, stop it, rename it to
 * pg/data. pg/data exists only once all of that is done; a data.init found here was left by a
 * first run cut short, and is removed (by the run user) before starting again. */
static enum pgembed_rc init_cluster(struct pgembed *pg, char *err, size_t errlen)
{
    static const char include[] = "\n# usersigd: the settings of its embedded server\n"
                                  "include = 'usersigd.conf'\n";
    char *init = pgembed_join(pg->pg_dir, "data.init");
    char *conf = init ? pgembed_join(init, "postgresql.conf") : NULL;
    char *pidfile = init ? pgembed_join(init, "postmaster.pid") : NULL;
    struct stat st;
    enum pgembed_rc rc;

    if (init == NULL || conf == NULL || pidfile == NULL) {
        log_errbuf(err, errlen, "out of memory");
        rc = PGEMBED_SYSTEM;
        goto out;
    }
    if (lstat(init, &st) == 0) {
        log_warn("embedded PostgreSQL: removing %s, left by a first run that did not finish", init);
        if (lstat(pidfile, &st) == 0)
            (void)server_stop(pg, init, "immediate", NULL, 0);
        const char *rm = is_exec("/bin/rm") ? "/bin/rm" : "/usr/bin/rm";
        const char *argv[] = {rm, "-rf", "--", init, NULL};
        if ((rc = run_pg(pg, "removing data.init", argv, err, errlen)) != PGEMBED_OK)
            goto out;
    }
    log_info("embedded PostgreSQL: first run, creating a PostgreSQL %d cluster in %s", PG_MAJOR,
             pg->pgdata);
    /* Locale C: byte order, the same on every machine, and no glibc collation upgrade that
     * would silently corrupt text indexes. Trust on the socket only; its directory is 0700. */
    const char *initdb[] = {pg->initdb,
                            "-D",
                            init,
                            "-U",
                            DB_USER,
                            "--encoding=UTF8",
                            "--locale=C",
                            "--auth-local=trust",
                            "--auth-host=reject",
                            NULL};
    if ((rc = run_pg(pg, "initdb", initdb, err, errlen)) != PGEMBED_OK)
        goto out;
    struct proc_fileop add = {
        .kind = PROC_OP_APPEND, .path = conf, .data = include, .len = sizeof include - 1};
    if (proc_fileop_run(&pg->as, &add) != 0) {
        log_errbuf(err, errlen, "cannot append to %s: %s", conf, strerror(errno));
        rc = PGEMBED_BAD_DIR;
        goto out;
    }
    if ((rc = server_start(pg, init, err, errlen)) != PGEMBED_OK) {
        (void)server_stop(pg, init, "immediate", NULL, 0); /* pg_ctl -w timed out: it may run */
        goto out;
    }
    const char *createdb[] = {pg->createdb, "-h",    pg->run_dir,     "-p",    STR(PG_PORT),
                              "-U",         DB_USER, "--no-password", DB_NAME, NULL};
    rc = run_pg(pg, "createdb", createdb, err, errlen);
    if (rc != PGEMBED_OK) {
        (void)server_stop(pg, init, "fast", NULL, 0);
        goto out;
    }
    if ((rc = server_stop(pg, init, "fast", err, errlen)) != PGEMBED_OK)
        goto out;
    struct proc_fileop mv = {.kind = PROC_OP_RENAME, .path = init, .other = pg->pgdata};
    if (proc_fileop_run(&pg->as, &mv) != 0) {
        log_errbuf(err, errlen, "cannot rename %s to %s: %s", init, pg->pgdata, strerror(errno));
        rc = PGEMBED_BAD_DIR;
        goto out;
    }
    int dfd = open(pg->pg_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
out:
    free(init);
    free(conf);
    free(pidfile);
    return rc;
}

/* Checks pg/data: absent (first run), or a cluster of PG_MAJOR. */
static enum pgembed_rc check_cluster(const struct pgembed *pg, bool *exists, char *err,
                                     size_t errlen)
{
    char *path = pgembed_join(pg->pgdata, "PG_VERSION"), buf[32];
    struct stat st;

    *exists = false;
    if (path == NULL) {
        log_errbuf(err, errlen, "out of memory");
        return PGEMBED_SYSTEM;
    }
    ssize_t n = read_small(path, buf, sizeof buf);
    int e = errno;
    free(path);
    if (n > 0) {
        if (atoi(buf) != PG_MAJOR) {
            log_errbuf(err, errlen,
                       "%s holds a PostgreSQL %d cluster, and this usersigd runs PostgreSQL %d: "
                       "move it away (or dump it and restore the dump into a new one)",
                       pg->pgdata, atoi(buf), PG_MAJOR);
            return PGEMBED_BAD_DIR;
        }
        *exists = true;
        return PGEMBED_OK;
    }
    if (lstat(pg->pgdata, &st) != 0 && errno == ENOENT)
        return PGEMBED_OK;
    log_errbuf(err, errlen, "%s is there but is not a readable PostgreSQL cluster (PG_VERSION: %s)",
               pg->pgdata, n < 0 ? strerror(e) : "empty");
    return PGEMBED_BAD_DIR;
}

/* libpq keyword/value: a value with a space, a quote or a backslash (or empty) is single-quoted,
 * ' and \ escaped with a backslash. Returns false when it does not fit. */
static bool conninfo_add(char *out, size_t cap, size_t *n, const char *key, const char *value)
{
    bool quote = value[0] == '\0' || strpbrk(value, " \t\n\r\f\v'\\") != NULL;
    int w = snprintf(out + *n, cap - *n, "%s%s=%s", *n ? " " : "", key, quote ? "'" : "");
    if (w < 0 || (size_t)w >= cap - *n)
        return false;
    *n += (size_t)w;
    for (const char *p = value; *p != '\0'; p++) {
        if (*n + 3 >= cap)
            return false;
        if (quote && (*p == '\'' || *p == '\\'))
            out[(*n)++] = '\\';
        out[(*n)++] = *p;
    }
    if (quote && *n + 2 >= cap)
        return false;
    if (quote)
        out[(*n)++] = '\'';
    out[*n] = '\0';
    return true;
}

static enum pgembed_rc make_conninfo(struct pgembed *pg, char *conninfo, size_t cap, char *err,
                                     size_t errlen)
{
    struct pidinfo pi;
    char port[16];
    size_t n = 0;

    if (read_pidfile(pg->pgdata, &pi) != 0 || pi.sockdir[0] != '/' || pi.port <= 0) {
        log_errbuf(err, errlen,
                   "the PostgreSQL server on %s has no Unix socket directory in its postmaster.pid",
                   pg->pgdata);
        return PGEMBED_FAILED;
    }
    pg->postmaster = (pid_t)pi.pid;
    snprintf(port, sizeof port, "%d", pi.port);
    conninfo[0] = '\0';
    if (!conninfo_add(conninfo, cap, &n, "host", pi.sockdir) ||
        !conninfo_add(conninfo, cap, &n, "port", port) ||
        !conninfo_add(conninfo, cap, &n, "dbname", DB_NAME) ||
        !conninfo_add(conninfo, cap, &n, "user", DB_USER)) {
        log_errbuf(err, errlen, "the conninfo buffer (%zu bytes) is too small", cap);
        return PGEMBED_BAD_ARG;
    }
    return PGEMBED_OK;
}

static void handle_free(struct pgembed *pg)
{
    if (pg == NULL)
        return;
    if (pg->log_fd >= 0)
        close(pg->log_fd);
    if (pg->lock_fd >= 0)
        close(pg->lock_fd); /* releases the flock */
    free(pg->data_dir);
    free(pg->pg_dir);
    free(pg->pgdata);
    free(pg->run_dir);
    free(pg->log_path);
    free(pg->pg_ctl);
    free(pg->initdb);
    free(pg->createdb);
    proc_runas_free(&pg->as);
    free(pg);
}

static enum pgembed_rc handle_new(struct pgembed **out, char *err, size_t errlen)
{
    struct pgembed *pg = calloc(1, sizeof *pg);

    *out = pg;
    if (pg == NULL) {
        log_errbuf(err, errlen, "out of memory");
        return PGEMBED_SYSTEM;
    }
    pg->lock_fd = pg->log_fd = -1;
    if (proc_runas_init(&pg->as) != 0) {
        log_errbuf(err, errlen, "out of memory");
        return PGEMBED_SYSTEM; /* the caller frees *out */
    }
    return PGEMBED_OK;
}

enum pgembed_rc pgembed_start(const char *data_dir, struct pgembed **out, char *conninfo,
                              size_t cap, char *err, size_t errlen)
{
    struct pgembed *pg = NULL;
    bool exists = false, running = false, started = false;
    enum pgembed_rc rc;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    if (out != NULL)
        *out = NULL;
    if (data_dir == NULL || data_dir[0] == '\0' || out == NULL || conninfo == NULL || cap == 0) {
        log_errbuf(err, errlen, "pgembed_start: data_dir, out and conninfo are required");
        return PGEMBED_BAD_ARG;
    }
    conninfo[0] = '\0';
    if ((rc = handle_new(&pg, err, errlen)) != PGEMBED_OK)
        goto fail;
    if (geteuid() == 0 && (rc = lookup_os_user(&pg->as, err, errlen)) != PGEMBED_OK)
        goto fail;
    if ((rc = find_binaries(pg, err, errlen)) != PGEMBED_OK)
        goto fail;

    if ((rc = pgembed_dir_prepare(pg, data_dir, err, errlen)) != PGEMBED_OK)
        goto fail;
    if ((rc = check_cluster(pg, &exists, err, errlen)) != PGEMBED_OK)
        goto fail;
    if (!exists && (rc = init_cluster(pg, err, errlen)) != PGEMBED_OK)
        goto fail;
    if (exists && (rc = take_over(pg, &running, err, errlen)) != PGEMBED_OK)
        goto fail;
    if (!running) {
        started = true; /* on failure too: pg_ctl -w may time out with the server running */
        if ((rc = server_start(pg, pg->pgdata, err, errlen)) != PGEMBED_OK)
            goto fail;
    }
    if ((rc = make_conninfo(pg, conninfo, cap, err, errlen)) != PGEMBED_OK)
        goto fail;
    if (started)
        log_info("embedded PostgreSQL: started, socket in %s (pid %ld)", pg->run_dir,
                 (long)pg->postmaster);
    *out = pg;
    return PGEMBED_OK;
fail:
    if (started)
        (void)server_stop(pg, pg->pgdata, "fast", NULL, 0);
    conninfo[0] = '\0';
    handle_free(pg);
    return rc;
}

void pgembed_stop(struct pgembed *pg)
{
    char err[PGEMBED_ERR_BUF];
    int st;

    if (pg == NULL)
        return;
    if (server_stop(pg, pg->pgdata, "fast", err, sizeof err) != PGEMBED_OK)
        log_error("embedded PostgreSQL: %s", err);
    else
        log_info("embedded PostgreSQL: stopped");
    /* Where this process is the postmaster's reaper (pid 1 of a container, or a subreaper),
     * it is our child once pg_ctl is gone: collect it. Elsewhere waitpid says ECHILD. */
    for (int i = 0; pg->postmaster > 0 && i < 100; i++) {
        pid_t r = waitpid(pg->postmaster, &st, WNOHANG);
        if (r != 0 && !(r < 0 && errno == EINTR))
            break;
        nanosleep(&(struct timespec){.tv_nsec = 50 * 1000 * 1000}, NULL);
    }
    handle_free(pg);
}
