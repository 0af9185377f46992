/*
 * pgembed: starts a private PostgreSQL 15 in a temporary directory, talks to it with libpq, stops
 * it and starts it again (the database and a table made the first time are still there), takes
 * over a server left running by a process that died, and gets past stale postmaster.pid files.
 * Needs the postgresql-15 package; runs as root (PostgreSQL then runs as "postgres") or not.
 */
#include "pgembed.h"
#include "testlib.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char conninfo[PGEMBED_CONNINFO_BUF];
static char err[PGEMBED_ERR_BUF];

/* The first column of the first row of sql, or "" (a failure is a failed check). */
static const char *query1(PGconn *c, const char *sql, char *out, size_t cap)
{
    PGresult *r = PQexec(c, sql);
    out[0] = '\0';
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0)
        snprintf(out, cap, "%s", PQgetvalue(r, 0, 0));
    else
        CHECK(PQresultStatus(r) == PGRES_COMMAND_OK, "%s: %s", sql, PQresultErrorMessage(r));
    PQclear(r);
    return out;
}

static PGconn *connect_ok(void)
{
    PGconn *c = PQconnectdb(conninfo);
    CHECK(PQstatus(c) == CONNECTION_OK, "connect %s: %s", conninfo, PQerrorMessage(c));
    if (PQstatus(c) != CONNECTION_OK) {
        PQfinish(c);
        return NULL;
    }
    return c;
}

static long pidfile_pid(const char *pgdata)
{
    char path[512], buf[32] = "";
    snprintf(path, sizeof path, "%s/postmaster.pid", pgdata);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return -1;
    if (fgets(buf, sizeof buf, f) == NULL)
        buf[0] = '\0';
    fclose(f);
    return atol(buf);
}

static void write_pidfile(const char *pgdata, long pid)
{
    char path[512];
    snprintf(path, sizeof path, "%s/postmaster.pid", pgdata);
    FILE *f = fopen(path, "w");
    CHECK(f != NULL, "cannot write %s", path);
    if (f != NULL) {
        fprintf(f, "%ld\n%s\n", pid, pgdata);
        fclose(f);
    }
}

static void no_children_left(const char *when)
{
    int st;
    errno = 0;
    CHECK(waitpid(-1, &st, WNOHANG) < 0 && errno == ECHILD, "%s: a child is left unreaped", when);
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void check_args_and_paths(const char *tmp)
{
    struct pgembed *pg = (struct pgembed *)1;
    char dir[512];

    for (int rc = PGEMBED_OK; rc <= PGEMBED_BAD_ARG; rc++)
        CHECK(strlen(pgembed_rc_message((enum pgembed_rc)rc)) > 1, "no message for %d", rc);
    CHECK(pgembed_start(NULL, &pg, conninfo, sizeof conninfo, err, sizeof err) == PGEMBED_BAD_ARG &&
              pg == NULL,
          "NULL data_dir accepted");
    CHECK(pgembed_start(tmp, &pg, NULL, 0, err, sizeof err) == PGEMBED_BAD_ARG,
          "NULL conninfo accepted");

    /* pg_ctl passes a path to /bin/sh between double quotes; libpq splits a host on commas. */
    static const char *const bad[] = {"a\"b", "a$b", "a,b", "a\nb"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(dir, sizeof dir, "%s/%s", tmp, bad[i]);
        CHECK(pgembed_start(dir, &pg, conninfo, sizeof conninfo, err, sizeof err) ==
                      PGEMBED_BAD_DIR &&
                  pg == NULL,
              "a path with %s accepted: %s", bad[i], err);
        CHECK(access(dir, F_OK) != 0, "the refused directory %s was created", dir);
    }

    /* A Unix socket path has at most 107 bytes. */
    snprintf(dir, sizeof dir, "%s/%0100d", tmp, 0);
    CHECK(pgembed_start(dir, &pg, conninfo, sizeof conninfo, err, sizeof err) == PGEMBED_BAD_DIR &&
              strstr(err, "Unix socket") != NULL,
          "a socket path too long accepted: %s", err);

    /* A conninfo buffer too small: the server this call started is stopped again. */
    snprintf(dir, sizeof dir, "%s/small", tmp);
    char small[16];
    CHECK(pgembed_start(dir, &pg, small, sizeof small, err, sizeof err) == PGEMBED_BAD_ARG &&
              pg == NULL,
          "a conninfo buffer of 16 bytes accepted: %s", err);
    snprintf(dir, sizeof dir, "%s/small/pg/data", tmp);
    CHECK(pidfile_pid(dir) < 0, "the server is left running after a failed start");
}

int main(void)
{
    char tmp[] = "/tmp/pgembed-XXXXXX", data[64], pgdata[128], run[128], buf[512];
    struct pgembed *pg = NULL, *other = NULL;
    struct stat st;
    PGconn *c;

    if (mkdtemp(tmp) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    /* A space in the path: the conninfo must quote it. */
    snprintf(data, sizeof data, "%s/data dir", tmp);
    snprintf(pgdata, sizeof pgdata, "%s/pg/data", data);
    snprintf(run, sizeof run, "%s/pg/run", data);
    check_args_and_paths(tmp);

    /* First run: initdb, database usersigd, a table. */
    enum pgembed_rc rc = pgembed_start(data, &pg, conninfo, sizeof conninfo, err, sizeof err);
    CHECK(rc == PGEMBED_OK && pg != NULL, "first start: %s: %s", pgembed_rc_message(rc), err);
    no_children_left("after the first start");
    snprintf(buf, sizeof buf, "host='%s' port=5432 dbname=usersigd user=usersigd", run);
    CHECK(strcmp(conninfo, buf) == 0, "conninfo %s, expected %s", conninfo, buf);
    CHECK(stat(data, &st) == 0 && (st.st_mode & 066) == 0, "data dir mode %o",
          (unsigned)st.st_mode);
    CHECK(stat(run, &st) == 0 && (st.st_mode & 0777) == 0700, "socket dir mode %o",
          (unsigned)st.st_mode);
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam("postgres");
        CHECK(pw != NULL && stat(pgdata, &st) == 0 && st.st_uid == pw->pw_uid,
              "as root, the cluster is not owned by postgres");
    }
    if ((c = connect_ok()) != NULL) {
        CHECK(strcmp(query1(c, "SELECT 1", buf, sizeof buf), "1") == 0, "SELECT 1 gave %s", buf);
        CHECK(PQserverVersion(c) / 10000 == 15, "server version %d", PQserverVersion(c));
        CHECK(strcmp(query1(c, "SHOW listen_addresses", buf, sizeof buf), "") == 0,
              "listen_addresses '%s': a TCP port is open", buf);
        CHECK(strcmp(query1(c, "SHOW wal_init_zero", buf, sizeof buf), "off") == 0,
              "wal_init_zero '%s': new WAL segments are zero-filled at a commit", buf);
        CHECK(strcmp(query1(c,
                            "SELECT current_database() || '/' || current_user || '/' || "
                            "pg_encoding_to_char(encoding) FROM pg_database WHERE datname = "
                            "current_database()",
                            buf, sizeof buf),
                     "usersigd/usersigd/UTF8") == 0,
              "database/user/encoding %s", buf);
        query1(c, "CREATE TABLE pgembed_probe (v int); INSERT INTO pgembed_probe VALUES (42)", buf,
               sizeof buf);
        PQfinish(c);
    }

    /* A second process on the same data_dir is refused, not handed the first one's server. */
    rc = pgembed_start(data, &other, buf, sizeof buf, err, sizeof err);
    CHECK(rc == PGEMBED_BUSY && other == NULL, "second start: %s: %s", pgembed_rc_message(rc), err);

    pgembed_stop(pg);
    pg = NULL;
    no_children_left("after stop");
    CHECK(pidfile_pid(pgdata) < 0, "postmaster.pid is still there after stop");
    c = PQconnectdb(conninfo);
    CHECK(PQstatus(c) != CONNECTION_OK, "connected after stop");
    PQfinish(c);

    /* Second run: the same cluster, the table still there. */
    rc = pgembed_start(data, &pg, conninfo, sizeof conninfo, err, sizeof err);
    CHECK(rc == PGEMBED_OK, "second start: %s: %s", pgembed_rc_message(rc), err);
    if ((c = connect_ok()) != NULL) {
        CHECK(strcmp(query1(c, "SELECT v FROM pgembed_probe", buf, sizeof buf), "42") == 0,
              "the table made by the first run reads '%s'", buf);
        PQfinish(c);
    }
    pgembed_stop(pg);
    pg = NULL;

    /* A usersigd that dies without stopping its server: the next start takes that server over
     * (same postmaster pid) instead of failing. */
    pid_t child = fork();
    if (child == 0) {
        struct pgembed *mine = NULL;
        char e[PGEMBED_ERR_BUF];
        _exit(pgembed_start(data, &mine, conninfo, sizeof conninfo, e, sizeof e) == PGEMBED_OK ? 0
                                                                                               : 1);
    }
    int wst = 0;
    CHECK(child > 0 && waitpid(child, &wst, 0) == child && WIFEXITED(wst) && WEXITSTATUS(wst) == 0,
          "the process that dies did not start the server");
    long before = pidfile_pid(pgdata);
    rc = pgembed_start(data, &pg, conninfo, sizeof conninfo, err, sizeof err);
    CHECK(rc == PGEMBED_OK, "start over a running server: %s: %s", pgembed_rc_message(rc), err);
    CHECK(before > 0 && pidfile_pid(pgdata) == before,
          "the running server (pid %ld) was not "
          "taken over (now %ld)",
          before, pidfile_pid(pgdata));
    if ((c = connect_ok()) != NULL) {
        CHECK(strcmp(query1(c, "SELECT v FROM pgembed_probe", buf, sizeof buf), "42") == 0,
              "after take-over the table reads '%s'", buf);
        PQfinish(c);
    }
    pgembed_stop(pg);
    pg = NULL;

    /* Stale postmaster.pid files: one naming a dead pid (PostgreSQL replaces it), one naming a
     * live process that is not PostgreSQL (as after a container restart: pgembed removes it). */
    pid_t dead = fork();
    if (dead == 0)
        _exit(0);
    waitpid(dead, &wst, 0);
    long stale[2] = {(long)dead, (long)getpid()};
    for (int i = 0; i < 2; i++) {
        write_pidfile(pgdata, stale[i]);
        rc = pgembed_start(data, &pg, conninfo, sizeof conninfo, err, sizeof err);
        CHECK(rc == PGEMBED_OK, "start over a stale pid file (%s pid): %s: %s",
              i ? "foreign" : "dead", pgembed_rc_message(rc), err);
        if ((c = connect_ok()) != NULL)
            PQfinish(c);
        pgembed_stop(pg);
        pg = NULL;
    }
    no_children_left("at the end");

    snprintf(buf, sizeof buf, "%s/pg.log", data);
    CHECK(stat(buf, &st) == 0 && st.st_size > 0 && (st.st_mode & 077) == 0,
          "pg.log missing, empty or readable by others");
    CHECK(nftw(tmp, rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0, "cannot remove %s", tmp);
    return test_done("pgembed");
}
