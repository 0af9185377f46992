/*
 * The migration runner against a real PostgreSQL: a fresh apply, a re-run that does nothing,
 * status current / pending / unknown, a failing migration rolled back alone, file names and
 * sizes refused, and two processes migrating at once applying each migration once.
 */
#include "dbtest.h"

#include <sys/stat.h>
#include <sys/wait.h>

static char tmp_dir[256];

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[512];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "w");
    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static void remove_file(const char *dir, const char *name)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
}

/* A migrations folder of our own: dir/name, emptied. */
static void make_dir(char *dir, size_t cap, const char *name)
{
    char cmd[600];
    snprintf(dir, cap, "%s/%s", tmp_dir, name);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", dir, dir);
    if (system(cmd) != 0)
        exit(1);
}

static void copy_init(const char *dir, const char *as)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cp '%s/0001_init.sql' '%s/%s'", USERSIGD_MIGRATIONS_DIR, dir, as);
    if (system(cmd) != 0)
        exit(1);
}

static bool table_exists(PGconn *c, const char *table)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_tables WHERE tablename = '%s'", table);
    return dbtest_scalar(c, sql) == 1;
}

/* The real migrations/ on a fresh database. */
static void test_fresh(void)
{
    struct dbtest t;
    struct store *st;
    struct migrate_status s;
    int applied = -1;
    PGconn *c;

    dbtest_create(&t, "db_migrate_fresh", false);
    st = dbtest_store(&t);
    c = dbtest_connect(&t);

    CHECK(migrate_status(st, USERSIGD_MIGRATIONS_DIR, &s) == MIGRATE_OK, "status of an empty db");
    CHECK(!s.current && s.pending >= 1 && s.latest_applied == 0 && s.latest_file >= 1 &&
              s.unknown == 0,
          "an empty database is behind (pending %d)", s.pending);
    CHECK(!table_exists(c, "schema_migrations"), "status changes nothing");

    CHECK(migrate_apply(st, USERSIGD_MIGRATIONS_DIR, &applied) == MIGRATE_OK, "apply");
    CHECK(applied == s.pending, "applied every pending migration (%d)", applied);
    CHECK(table_exists(c, "apps") && table_exists(c, "app_keys") && table_exists(c, "keyring") &&
              table_exists(c, "api_tokens") && table_exists(c, "audit_log"),
          "the schema is there");
    CHECK(dbtest_scalar(c, "SELECT count(*) FROM schema_migrations WHERE version = 1 AND "
                           "name = 'init' AND applied_at <= now()") == 1,
          "0001_init recorded");
    CHECK(migrate_status(st, USERSIGD_MIGRATIONS_DIR, &s) == MIGRATE_OK && s.current &&
              s.pending == 0 && s.latest_applied == s.latest_file,
          "current after apply");

    CHECK(migrate_apply(st, USERSIGD_MIGRATIONS_DIR, &applied) == MIGRATE_OK && applied == 0,
          "a re-run is a no-op");
    CHECK(dbtest_scalar(c, "SELECT count(*) FROM schema_migrations") == s.latest_file,
          "one row per migration");

    PQfinish(c);
    store_close(st);
    dbtest_drop(&t);
}

/* Folders of our own: outdated, unknown, a failing migration, bad names and sizes. */
static void test_folders(void)
{
    struct dbtest t;
    struct store *st;
    struct migrate_status s;
    char dir[300];
    int applied = -1;
    PGconn *c;

    dbtest_create(&t, "db_migrate_dirs", false);
    st = dbtest_store(&t);
    c = dbtest_connect(&t);
    make_dir(dir, sizeof dir, "dirs");

    write_file(dir, "0001_first.sql",
               "CREATE TABLE t1 (x integer);\n"
               "INSERT INTO t1 VALUES (1), (2);\n");
    write_file(dir, "README.md", "not a migration\n");
    CHECK(migrate_apply(st, dir, &applied) == MIGRATE_OK && applied == 1, "apply 0001");
    CHECK(migrate_status(st, dir, &s) == MIGRATE_OK && s.current, "current");

    write_file(dir, "0002_second.sql", "CREATE TABLE t2 (y text);\n");
    CHECK(migrate_status(st, dir, &s) == MIGRATE_OK && !s.current && s.pending == 1 &&
              s.latest_file == 2 && s.latest_applied == 1,
          "a new file: outdated");
    CHECK(migrate_apply(st, dir, &applied) == MIGRATE_OK && applied == 1 && table_exists(c, "t2"),
          "apply 0002 only");

    /* a failing migration: rolled back alone, not recorded, the next run tries it again */
    write_file(dir, "0003_bad.sql", "CREATE TABLE t3 (z integer);\nSELEC oops;\n");
    CHECK(migrate_apply(st, dir, &applied) == MIGRATE_FAILED && applied == 0,
          "a failing migration fails");
    CHECK(!table_exists(c, "t3") && table_exists(c, "t2") &&
              dbtest_scalar(c, "SELECT count(*) FROM schema_migrations") == 2,
          "rolled back alone");
    CHECK(!store_in_transaction(st) && store_ping(st) == STORE_OK, "the store is usable");
    remove_file(dir, "0003_bad.sql");

    /* a database newer than the folder */
    remove_file(dir, "0002_second.sql");
    CHECK(migrate_status(st, dir, &s) == MIGRATE_OK && !s.current && s.unknown == 1 &&
              s.pending == 0 && s.latest_applied == 2,
          "an applied version without a file: not current");
    write_file(dir, "0002_second.sql", "CREATE TABLE t2 (y text);\n");

    /* names, numbers and sizes */
    write_file(dir, "3_short.sql", "SELECT 1;\n");
    CHECK(migrate_apply(st, dir, &applied) == MIGRATE_BAD_DIR, "3_short.sql is refused");
    CHECK(migrate_status(st, dir, &s) == MIGRATE_BAD_DIR, "by status too");
    remove_file(dir, "3_short.sql");
    write_file(dir, "0003_Upper.sql", "SELECT 1;\n");
    CHECK(migrate_apply(st, dir, &applied) == MIGRATE_BAD_DIR, "upper case is refused");
    remove_file(dir, "0003_Upper.sql");
    write_file(dir, "0000_zero.sql", "SELECT 1;\n");
    CHECK(migrate_apply(st, dir, &applied) == MIGRATE_BAD_DIR, "number 0 is refused");
    remove_file(dir, "0000_zero.sql");
    write_file(dir, "0002_again.sql", "SELECT 1;\n");
    CHECK(migrate_apply(st, dir, &applied) == MIGRATE_BAD_DIR, "a shared number is refused");
    remove_file(dir, "0002_again.sql");

    char *big = malloc(MIGRATE_MAX_FILE_BYTES + 64);
    if (big == NULL)
        abort();
    memset(big, ' ', MIGRATE_MAX_FILE_BYTES + 63);
    memcpy(big, "SELECT 1;", 9);
    big[MIGRATE_MAX_FILE_BYTES + 63] = '\0';
    write_file(dir, "0003_big.sql", big);
    free(big);
    CHECK(migrate_apply(st, dir, &applied) == MIGRATE_BAD_DIR && applied == 0,
          "a file over the size bound is refused");
    CHECK(dbtest_scalar(c, "SELECT count(*) FROM schema_migrations") == 2, "nothing recorded");
    remove_file(dir, "0003_big.sql");

    CHECK(migrate_apply(st, "/nonexistent/migrations", &applied) == MIGRATE_BAD_DIR,
          "a missing folder");
    CHECK(migrate_apply(st, dir, &applied) == MIGRATE_OK && applied == 0, "back to current");

    PQfinish(c);
    store_close(st);
    dbtest_drop(&t);
}

/* Two processes migrate at once: each migration is applied once, both succeed. The second
 * migration sleeps so that the two overlap. */
static void test_concurrent(void)
{
    struct dbtest t;
    char dir[300];
    pid_t pids[2];
    int applied[2] = {-1, -1};
    PGconn *c;

    dbtest_create(&t, "db_migrate_race", false);
    make_dir(dir, sizeof dir, "race");
    copy_init(dir, "0001_init.sql");
    write_file(dir, "0002_slow.sql", "SELECT pg_sleep(1);\nCREATE TABLE slow (x integer);\n");

    for (int i = 0; i < 2; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            struct store *st = NULL;
            int n = -1;
            if (store_open(t.url, &st) != STORE_OK)
                _exit(100);
            enum migrate_rc rc = migrate_apply(st, dir, &n);
            store_close(st);
            _exit(rc == MIGRATE_OK ? n : 100 + (int)rc);
        }
        CHECK(pids[i] > 0, "fork");
    }
    for (int i = 0; i < 2; i++) {
        int status = 0;
        if (pids[i] > 0 && waitpid(pids[i], &status, 0) == pids[i] && WIFEXITED(status))
            applied[i] = WEXITSTATUS(status);
    }
    CHECK((applied[0] == 2 && applied[1] == 0) || (applied[0] == 0 && applied[1] == 2),
          "one process applied both, the other none (%d, %d)", applied[0], applied[1]);
    c = dbtest_connect(&t);
    CHECK(dbtest_scalar(c, "SELECT count(*) FROM schema_migrations") == 2 &&
              table_exists(c, "slow") && table_exists(c, "audit_log"),
          "both migrations applied once");
    PQfinish(c);
    dbtest_drop(&t);
}

int main(void)
{
    char cmd[300];
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/usersigd-test-migrate-%ld", (long)getpid());
    test_fresh();
    test_folders();
    test_concurrent();
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmp_dir);
    return test_done("db_migrate");
}
