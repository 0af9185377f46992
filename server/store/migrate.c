/*
 * Schema migrations: reads migrations/NNNN_name.sql (bounded), and applies the ones the database
 * has not recorded, in number order, each with its schema_migrations row in one transaction,
 * under the store's migration lock so that two processes starting together apply each once.
 */
#include "migrate.h"

#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct migration {
    int version;
    char name[MIGRATE_MAX_NAME + 1];  /* "init" */
    char file[MIGRATE_MAX_NAME + 10]; /* "0001_init.sql" */
};

/* NNNN_name.sql with name [a-z0-9_]{1,MIGRATE_MAX_NAME}: fills m, or false. */
static bool parse_file_name(const char *file, struct migration *m)
{
    size_t len = strlen(file), name_len;
    if (len < 10 || len > 4 + 1 + MIGRATE_MAX_NAME + 4 || strcmp(file + len - 4, ".sql") != 0)
        return false;
    for (int i = 0; i < 4; i++)
        if (file[i] < '0' || file[i] > '9')
            return false;
    if (file[4] != '_')
        return false;
    name_len = len - 9;
    for (size_t i = 0; i < name_len; i++) {
        char c = file[5 + i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    m->version =
        (file[0] - '0') * 1000 + (file[1] - '0') * 100 + (file[2] - '0') * 10 + (file[3] - '0');
    memcpy(m->name, file + 5, name_len);
    m->name[name_len] = '\0';
    memcpy(m->file, file, len + 1);
    return m->version >= 1;
}

static int by_version(const void *a, const void *b)
{
    const struct migration *x = a, *y = b;
    return (x->version > y->version) - (x->version < y->version);
}

/* The migrations of dir in number order. On success *out is a new array of *n (NULL when
 * none); caller free()s it. */
MIGRATE_WUR static enum migrate_rc scan_dir(const char *dir, struct migration **out, size_t *n)
{
    DIR *d = NULL;
    struct dirent *e;
    struct migration *list = NULL;
    size_t count = 0;
    enum migrate_rc rc = MIGRATE_BAD_DIR;

    *out = NULL;
    *n = 0;
    d = opendir(dir);
    if (d == NULL) {
        log_error("migrations: cannot read the folder %s: %s", dir, strerror(errno));
        goto done;
    }
    list = calloc(MIGRATE_MAX_FILES, sizeof *list);
    if (list == NULL) {
        log_error("migrations: out of memory");
        rc = MIGRATE_ERROR;
        goto done;
    }
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len < 4 || strcmp(e->d_name + len - 4, ".sql") != 0)
            continue; /* README.md, editor files */
        if (count == MIGRATE_MAX_FILES) {
            log_error("migrations: more than %d files in %s", MIGRATE_MAX_FILES, dir);
            goto done;
        }
        if (!parse_file_name(e->d_name, &list[count])) {
            log_error("migrations: %s/%s is not named NNNN_name.sql (0001.., a-z 0-9 _)", dir,
                      e->d_name);
            goto done;
        }
        count++;
    }
    qsort(list, count, sizeof *list, by_version);
    for (size_t i = 1; i < count; i++) {
        if (list[i].version == list[i - 1].version) {
            log_error("migrations: %s and %s share a number", list[i - 1].file, list[i].file);
            goto done;
        }
    }
    *out = list;
    *n = count;
    list = NULL;
    rc = MIGRATE_OK;
done:
    free(list);
    if (d != NULL)
        closedir(d);
    return rc;
}

/* The text of dir/file, NUL-terminated, at most MIGRATE_MAX_FILE_BYTES. Caller free()s *out. */
MIGRATE_WUR static enum migrate_rc read_migration(const char *dir, const char *file, char **out)
{
    char path[PATH_MAX];
    struct stat sb;
    char *text = NULL;
    int fd = -1;
    size_t got = 0;
    enum migrate_rc rc = MIGRATE_BAD_DIR;

    *out = NULL;
    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, file) >= sizeof path) {
        log_error("migrations: the path of %s is too long", file);
        goto done;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &sb) != 0) {
        log_error("migrations: cannot read %s: %s", path, strerror(errno));
        goto done;
    }
    if (!S_ISREG(sb.st_mode) || sb.st_size > MIGRATE_MAX_FILE_BYTES) {
        log_error("migrations: %s is not a regular file of at most %d bytes", path,
                  MIGRATE_MAX_FILE_BYTES);
        goto done;
    }
    text = malloc((size_t)sb.st_size + 1);
    if (text == NULL) {
        log_error("migrations: out of memory");
        rc = MIGRATE_ERROR;
        goto done;
    }
    while (got < (size_t)sb.st_size) {
        ssize_t r = read(fd, text + got, (size_t)sb.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            log_error("migrations: cannot read %s: %s", path, r < 0 ? strerror(errno) : "short");
            goto done;
        }
        got += (size_t)r;
    }
    text[got] = '\0';
    if (strlen(text) != got) {
        log_error("migrations: %s holds a NUL byte", path);
        goto done;
    }
    *out = text;
    text = NULL;
    rc = MIGRATE_OK;
done:
    free(text);
    if (fd >= 0)
        close(fd);
    return rc;
}

static bool recorded(const int *versions, size_t n, int version)
{
    for (size_t i = 0; i < n; i++)
        if (versions[i] == version)
            return true;
    return false;
}

/* One migration and its record, in one transaction. */
MIGRATE_WUR static enum migrate_rc apply_one(struct store *st, const char *dir,
                                             const struct migration *m)
{
    char *sql = NULL;
    enum migrate_rc rc = read_migration(dir, m->file, &sql);

    if (rc != MIGRATE_OK)
        goto done;
    rc = MIGRATE_ERROR;
    if (store_begin(st) != STORE_OK)
        goto done;
    if (store_migration_exec(st, m->file, sql) != STORE_OK) {
        rc = MIGRATE_FAILED;
        goto done;
    }
    if (store_migration_record(st, m->version, m->name) != STORE_OK || store_commit(st) != STORE_OK)
        goto done;
    log_info("migrations: applied %s", m->file);
    rc = MIGRATE_OK;
done:
    store_rollback(st);
    free(sql);
    return rc;
}

enum migrate_rc migrate_apply(struct store *st, const char *dir, int *applied)
{
    struct migration *files = NULL;
    int *versions = NULL;
    size_t n_files = 0, n_versions = 0;
    bool locked = false;
    int count = 0;
    enum migrate_rc rc;

    if (applied != NULL)
        *applied = 0;
    rc = scan_dir(dir, &files, &n_files);
    if (rc != MIGRATE_OK)
        goto done;
    rc = MIGRATE_ERROR;
    if (store_in_transaction(st)) {
        log_error("migrations: migrate_apply runs outside a transaction");
        goto done;
    }
    /* Another migrator holds it while it works: wait, then read what it recorded. */
    if (store_migration_lock(st) != STORE_OK)
        goto done;
    locked = true;
    if (store_migration_table_create(st) != STORE_OK ||
        store_migration_versions(st, &versions, &n_versions) != STORE_OK)
        goto done;
    for (size_t i = 0; i < n_files; i++) {
        if (recorded(versions, n_versions, files[i].version))
            continue;
        if (n_versions > 0 && files[i].version < versions[n_versions - 1])
            log_warn("migrations: %s is older than the newest applied one; applying it now",
                     files[i].file);
        rc = apply_one(st, dir, &files[i]);
        if (rc != MIGRATE_OK)
            goto done;
        count++;
    }
    rc = MIGRATE_OK;
done:
    if (locked)
        store_migration_unlock(st);
    if (applied != NULL)
        *applied = count;
    free(versions);
    free(files);
    return rc;
}

enum migrate_rc migrate_status(struct store *st, const char *dir, struct migrate_status *out)
{
    struct migration *files = NULL;
    int *versions = NULL;
    size_t n_files = 0, n_versions = 0;
    enum migrate_rc rc;

    memset(out, 0, sizeof *out);
    rc = scan_dir(dir, &files, &n_files);
    if (rc != MIGRATE_OK)
        goto done;
    if (store_migration_versions(st, &versions, &n_versions) != STORE_OK) {
        rc = MIGRATE_ERROR;
        goto done;
    }
    for (size_t i = 0; i < n_files; i++)
        if (!recorded(versions, n_versions, files[i].version))
            out->pending++;
    for (size_t i = 0; i < n_versions; i++) {
        bool known = false;
        for (size_t j = 0; j < n_files && !known; j++)
            known = files[j].version == versions[i];
        if (!known)
            out->unknown++;
    }
    out->latest_file = n_files > 0 ? files[n_files - 1].version : 0;
    out->latest_applied = n_versions > 0 ? versions[n_versions - 1] : 0;
    out->current = out->pending == 0 && out->unknown == 0;
done:
    free(versions);
    free(files);
    return rc;
}
