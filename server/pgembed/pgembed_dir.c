/*
 * pgembed: the data directory made ready for the embedded PostgreSQL (pgembed_int.h): its path
 * checked and created, as root the search permission the OS user "postgres" needs to reach it
 * (walked with O_NOFOLLOW), pg.lock taken, pg.log opened, and pg/ and pg/run created (owned by
 * the run user; pg/run by a child that became that user). Called by pgembed.c only; calls
 * pgembed_str.c and proc.c, never back up.
 */
#include "pgembed_int.h"

#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* mkdir -p, the last component mode 0700. */
static int mkdir_p(const char *path)
{
    char *p = strdup(path);
    int rc = 0;

    if (p == NULL)
        return -1;
    for (char *s = p + 1; rc == 0; s++) {
        bool last = *s == '\0';
        if (*s != '/' && !last)
            continue;
        *s = '\0';
        if (mkdir(p, last ? 0700 : 0755) != 0 && errno != EEXIST)
            rc = -1;
        if (last)
            break;
        *s = '/';
    }
    free(p);
    return rc;
}

/* As root: gives path and each of its parents the one search bit (user, group or other, as
 * applies) the run user lacks to reach it. Walks with openat(O_NOFOLLOW), so a component
 * swapped for a symlink meanwhile is refused rather than followed. */
static enum pgembed_rc make_traversable(const struct pgembed *pg, char *err, size_t errlen)
{
    char *copy = strdup(pg->data_dir), *save = NULL;
    int fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    char *name = NULL;
    enum pgembed_rc rc = PGEMBED_OK;

    if (copy == NULL || fd < 0) {
        log_errbuf(err, errlen, "cannot open /: %s", strerror(errno));
        rc = PGEMBED_SYSTEM;
        goto out;
    }
    for (name = copy; rc == PGEMBED_OK;) {
        struct stat st;
        if (fstat(fd, &st) != 0) {
            rc = PGEMBED_SYSTEM;
            break;
        }
        mode_t bit = st.st_uid == pg->as.uid                   ? S_IXUSR
                     : proc_runas_in_group(&pg->as, st.st_gid) ? S_IXGRP
                                                               : S_IXOTH;
        if ((st.st_mode & bit) == 0) {
            size_t shown = name == copy ? 1 : (size_t)(name - copy - 1);
            if (fchmod(fd, (st.st_mode & 07777) | bit) != 0) {
                log_errbuf(err, errlen, "cannot let the " OS_USER " user reach %s: chmod %.*s: %s",
                           pg->data_dir, (int)shown, pg->data_dir, strerror(errno));
                rc = PGEMBED_BAD_DIR;
                break;
            }
            if (strlen(pg->data_dir) != shown)
                log_warn("embedded PostgreSQL: added %s search permission to %.*s so the OS user "
                         "\"" OS_USER "\" can reach %s",
                         bit == S_IXUSR   ? "user"
                         : bit == S_IXGRP ? "group"
                                          : "other",
                         (int)shown, pg->data_dir, pg->data_dir);
        }
        char *comp = strtok_r(name == copy ? copy + 1 : NULL, "/", &save);
        if (comp == NULL)
            break;
        name = comp + strlen(comp) + 1;
        int next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0) {
            log_errbuf(err, errlen, "cannot open %s: %s", pg->data_dir, strerror(errno));
            rc = PGEMBED_BAD_DIR;
            break;
        }
        close(fd);
        fd = next;
    }
    if (rc == PGEMBED_SYSTEM)
        log_errbuf(err, errlen, "cannot stat a parent of %s: %s", pg->data_dir, strerror(errno));
out:
    if (fd >= 0)
        close(fd);
    free(copy);
    return rc;
}

/* pg_ctl hands -D and -l to /bin/sh inside double quotes, unescaped; libpq splits a host on
 * commas; a Unix socket path is limited to sizeof sun_path. Refuse what would break on them
 * (run_dir NULL: the characters only). */
static enum pgembed_rc check_path(const char *data_dir, const char *run_dir, char *err,
                                  size_t errlen)
{
    for (const char *p = data_dir; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f || strchr("\"$`\\,", *p) != NULL) {
            log_errbuf(
                err, errlen,
                "the data directory path %s holds a character PostgreSQL's tools cannot take "
                "in a path (\" $ ` \\ , or a control character): choose another data "
                "directory",
                data_dir);
            return PGEMBED_BAD_DIR;
        }
    if (run_dir == NULL)
        return PGEMBED_OK;
    size_t len = strlen(run_dir) + strlen(PG_SOCKET_FILE);
    if (len >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        log_errbuf(err, errlen,
                   "the PostgreSQL socket path %s%s is %zu bytes, more than the %zu a Unix socket "
                   "allows: choose a data directory with a shorter path (USERSIGD_DATA_DIR)",
                   run_dir, PG_SOCKET_FILE, len, sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
        return PGEMBED_BAD_DIR;
    }
    return PGEMBED_OK;
}

/* Takes pg.lock (BUSY when another process holds it) and opens pg.log (owned by the run user,
 * as the server itself appends to it). */
static enum pgembed_rc open_lock_and_log(struct pgembed *pg, char *err, size_t errlen)
{
    char *lock_path = pgembed_join(pg->data_dir, "pg.lock");
    char buf[32];
    struct stat st;
    enum pgembed_rc rc = PGEMBED_BAD_DIR;

    if (lock_path == NULL) {
        log_errbuf(err, errlen, "out of memory");
        return PGEMBED_SYSTEM;
    }
    pg->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (pg->lock_fd < 0) {
        log_errbuf(err, errlen, "cannot open %s: %s", lock_path, strerror(errno));
        goto out;
    }
    if (flock(pg->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        bool busy = errno == EWOULDBLOCK;
        ssize_t n = busy ? pread(pg->lock_fd, buf, sizeof buf - 1, 0) : -1;
        buf[n > 0 ? n : 0] = '\0';
        buf[strcspn(buf, "\n")] = '\0';
        log_errbuf(err, errlen,
                   "another process%s%s%s holds %s: is another usersigd running with this data "
                   "directory?",
                   buf[0] ? " (pid " : "", buf, buf[0] ? ")" : "", lock_path);
        rc = busy ? PGEMBED_BUSY : PGEMBED_SYSTEM;
        goto out;
    }
    int n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
    if (ftruncate(pg->lock_fd, 0) != 0 || pwrite(pg->lock_fd, buf, (size_t)n, 0) != n) {
        log_errbuf(err, errlen, "cannot write %s: %s", lock_path, strerror(errno));
        goto out;
    }
    pg->log_fd = open(pg->log_path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (pg->log_fd < 0 || fstat(pg->log_fd, &st) != 0) {
        log_errbuf(err, errlen, "cannot open %s: %s", pg->log_path, strerror(errno));
        goto out;
    }
    if (pg->as.drop && st.st_uid != pg->as.uid && fchown(pg->log_fd, pg->as.uid, pg->as.gid) != 0) {
        log_errbuf(err, errlen, "cannot chown %s to " OS_USER ": %s", pg->log_path,
                   strerror(errno));
        goto out;
    }
    rc = PGEMBED_OK;
out:
    free(lock_path);
    return rc;
}

/* Creates pg/ (owned by the run user) and pg/run, or checks the owner of those there. */
static enum pgembed_rc make_pg_dirs(struct pgembed *pg, char *err, size_t errlen)
{
    struct stat st;
    struct proc_fileop op = {.kind = PROC_OP_MKDIR, .path = pg->run_dir};

    if (mkdir(pg->pg_dir, 0700) == 0 && pg->as.drop) {
        /* O_NOFOLLOW: a symlink swapped in meanwhile is not followed to something else. */
        int fd = open(pg->pg_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        int ok = fd >= 0 && fchown(fd, pg->as.uid, pg->as.gid) == 0;
        if (fd >= 0)
            close(fd);
        if (!ok) {
            log_errbuf(err, errlen, "cannot chown %s to " OS_USER ": %s", pg->pg_dir,
                       strerror(errno));
            return PGEMBED_BAD_DIR;
        }
    }
    if (stat(pg->pg_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        if (errno == EEXIST)
            errno = ENOTDIR;
        log_errbuf(err, errlen, "cannot create %s: %s", pg->pg_dir, strerror(errno));
        return PGEMBED_BAD_DIR;
    }
    uid_t want = pg->as.drop ? pg->as.uid : geteuid();
    if (st.st_uid != want) {
        log_errbuf(err, errlen, "%s is owned by uid %lu, but PostgreSQL runs as uid %lu%s: %s",
                   pg->pg_dir, (unsigned long)st.st_uid, (unsigned long)want,
                   pg->as.drop ? " (\"" OS_USER "\", as usersigd runs as root)" : "",
                   pg->as.drop ? "chown -R " OS_USER
                                 ": that directory, or run usersigd as its owner"
                               : "run usersigd as its owner (or as root if that is " OS_USER ")");
        return PGEMBED_BAD_DIR;
    }
    if (proc_fileop_run(&pg->as, &op) != 0) {
        log_errbuf(err, errlen, "cannot create %s: %s", pg->run_dir, strerror(errno));
        return PGEMBED_BAD_DIR;
    }
    return PGEMBED_OK;
}

enum pgembed_rc pgembed_dir_prepare(struct pgembed *pg, const char *data_dir, char *err,
                                    size_t errlen)
{
    enum pgembed_rc rc;

    if ((rc = check_path(data_dir, NULL, err, errlen)) != PGEMBED_OK)
        return rc;
    if (mkdir_p(data_dir) != 0 || (pg->data_dir = realpath(data_dir, NULL)) == NULL) {
        log_errbuf(err, errlen, "cannot create the data directory %s: %s", data_dir,
                   strerror(errno));
        return PGEMBED_BAD_DIR;
    }
    pg->pg_dir = pgembed_join(pg->data_dir, "pg");
    pg->pgdata = pgembed_join(pg->data_dir, "pg/data");
    pg->run_dir = pgembed_join(pg->data_dir, "pg/run");
    pg->log_path = pgembed_join(pg->data_dir, "pg.log");
    if (!pg->pg_dir || !pg->pgdata || !pg->run_dir || !pg->log_path) {
        log_errbuf(err, errlen, "out of memory");
        return PGEMBED_SYSTEM;
    }
    if ((rc = check_path(pg->data_dir, pg->run_dir, err, errlen)) != PGEMBED_OK)
        return rc;
    if (pg->as.drop && (rc = make_traversable(pg, err, errlen)) != PGEMBED_OK)
        return rc;
    if ((rc = open_lock_and_log(pg, err, errlen)) != PGEMBED_OK)
        return rc;
    return make_pg_dirs(pg, err, errlen);
}
