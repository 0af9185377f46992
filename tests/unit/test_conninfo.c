/*
 * The database URL as it is logged (store_conninfo_redacted, server/store/store_conninfo.c):
 * parsed by libpq, only chosen keys printed. Keyword/value and URI forms, multi-host, quoting
 * that libpq reads back to the same values, the spellings of a password that a text scan misses
 * (an escaped space, a percent-encoded keyword), and a password in none of the outputs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "store.h"
#include "testlib.h"

struct conninfo_case {
    const char *in, *want;
    const char *secret; /* must not appear in the output (NULL: none) */
};

static const struct conninfo_case cases[] = {
    /* The two spellings a scan of the text got wrong. */
    {"host=db password=top\\ secret", "host=db", "secret"},
    {"postgresql://h/db?%70assword=secret", "host=h dbname=db", "secret"},
    /* Keyword/value. */
    {"host=db password=hunter2 dbname=u", "host=db dbname=u", "hunter2"},
    {"host=db password = 'hun ter\\' 2' dbname=u", "host=db dbname=u", "hun ter"},
    {"password=hunter2", "(defaults)", "hunter2"},
    {"host=db dbname='my db' user=u", "host=db dbname='my db' user=u", NULL},
    {"host=db dbname='it\\'s' user='back\\\\slash'", "host=db dbname='it\\'s' user='back\\\\slash'",
     NULL},
    {"host=db dbname='' user=u", "host=db dbname='' user=u", NULL},
    {"host=db passfile=/secret/pgpass options='-c search_path=hunter2' sslmode=require",
     "host=db sslmode=require", "hunter2"},
    {"host=/run/postgresql port=5433 dbname=usersigd user=usersigd application_name=x",
     "host=/run/postgresql port=5433 dbname=usersigd user=usersigd application_name=x", NULL},
    /* URIs: the user info, percent-encoded values, the query. */
    {"postgresql://user:hunter2@host:5432/db", "host=host port=5432 dbname=db user=user",
     "hunter2"},
    {"postgres://user:p%40hunter2@host/db", "host=host dbname=db user=user", "hunter2"},
    {"postgresql://user:@host/db", "host=host dbname=db user=user", NULL},
    {"postgresql://u@host/db?password=hunter2&sslmode=require",
     "host=host dbname=db user=u sslmode=require", "hunter2"},
    {"postgresql://host/db?pass%77ord=hunter2", "host=host dbname=db", "hunter2"},
    {"postgresql:///usersigd?host=/run/postgresql", "host=/run/postgresql dbname=usersigd", NULL},
    {"postgresql://h/my%20db?application_name=a%27b",
     "host=h dbname='my db' application_name='a\\'b'", NULL},
    {"postgresql://h/db?application_name=a%0Ab", "host=h dbname=db application_name=a?b", NULL},
    /* Multi-host, as the failover setting writes it. */
    {"host=db1,db2 port=5432,5433 dbname=usersigd target_session_attrs=read-write password=pw1",
     "host=db1,db2 port=5432,5433 dbname=usersigd target_session_attrs=read-write", "pw1"},
    {"postgresql://u:pw2@db1:5432,db2:5433/usersigd?target_session_attrs=read-write",
     "host=db1,db2 port=5432,5433 dbname=usersigd user=u target_session_attrs=read-write", "pw2"},
    {"postgresql://[::1]:5432,[fe80::1]/db", "host=::1,fe80::1 port=5432, dbname=db", NULL},
    /* What libpq refuses: a fixed text, never the content. */
    {"host=db password='unterminated hunter2", STORE_CONNINFO_UNPARSABLE, "hunter2"},
    {"host=db colour=hunter2", STORE_CONNINFO_UNPARSABLE, "hunter2"},
    {"postgresql://h/db?colour=hunter2", STORE_CONNINFO_UNPARSABLE, "hunter2"},
    {"postgresql://u:hunter2@h/db?%zz=1", STORE_CONNINFO_UNPARSABLE, "hunter2"},
    {"host=db hunter2", STORE_CONNINFO_UNPARSABLE, "hunter2"},
    /* Not a connection string: store_open takes it as a database name. */
    {"usersigd", "dbname=usersigd", NULL},
    {"", "(no database URL)", NULL},
};

/* The output read back by libpq: the same values for the keys shown, no password. */
static void check_reparse(const char *in, const char *out)
{
    char *err = NULL;
    PQconninfoOption *a = PQconninfoParse(in, &err);
    PQfreemem(err);
    if (a == NULL || out[0] == '(') {
        PQconninfoFree(a);
        return;
    }
    PQconninfoOption *b = PQconninfoParse(out, &err);
    PQfreemem(err);
    CHECK(b != NULL, "\"%s\" reads back", out);
    for (PQconninfoOption *o = b; b != NULL && o->keyword != NULL; o++) {
        const char *orig = NULL;
        for (PQconninfoOption *p = a; p->keyword != NULL; p++)
            if (strcmp(p->keyword, o->keyword) == 0)
                orig = p->val;
        if (strcmp(o->keyword, "password") == 0 || strcmp(o->keyword, "passfile") == 0 ||
            strcmp(o->keyword, "options") == 0)
            CHECK(o->val == NULL, "\"%s\": no %s read back", out, o->keyword);
        else if (o->val != NULL && strchr(o->val, '?') == NULL)
            CHECK(orig != NULL && strcmp(orig, o->val) == 0, "\"%s\": %s reads back as given", out,
                  o->keyword);
    }
    PQconninfoFree(a);
    PQconninfoFree(b);
}

static void test_cases(void)
{
    char out[512];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct conninfo_case *c = &cases[i];
        memset(out, 'x', sizeof out);
        CHECK(store_conninfo_redacted(c->in, out, sizeof out) == out, "returns out");
        CHECK(strcmp(out, c->want) == 0, "\"%s\" shown as \"%s\" (want \"%s\")", c->in, out,
              c->want);
        CHECK(c->secret == NULL || strstr(out, c->secret) == NULL, "no \"%s\" in \"%s\"", c->secret,
              out);
        CHECK(strstr(out, "password") == NULL, "no password key in \"%s\"", out);
        check_reparse(c->in, out);
    }
    CHECK(strcmp(store_conninfo_redacted(NULL, out, sizeof out), "(no database URL)") == 0, "NULL");
}

/* A short buffer: always terminated, whole pairs then the marker, never past cap. */
static void test_short_buffers(void)
{
    static const char in[] = "postgresql://user:hunter2@db1:5432,db2:5433/usersigd";
    const char *full = "host=db1,db2 port=5432,5433 dbname=usersigd user=user";
    char buf[80];
    CHECK(store_conninfo_redacted(in, buf, 0) == buf, "cap 0");
    for (size_t cap = 1; cap <= sizeof buf; cap++) {
        memset(buf, 'x', sizeof buf);
        store_conninfo_redacted(in, buf, cap);
        size_t n = strnlen(buf, cap);
        CHECK(n < cap, "cap %zu: terminated", cap);
        CHECK(cap >= sizeof buf || buf[cap] == 'x', "cap %zu: nothing written past it", cap);
        CHECK(strstr(buf, "hunter2") == NULL, "cap %zu: no password", cap);
        if (cap > strlen(full))
            CHECK(strcmp(buf, full) == 0, "cap %zu: whole: \"%s\"", cap, buf);
        else if (cap > strlen(STORE_CONNINFO_MORE))
            CHECK(n >= strlen(STORE_CONNINFO_MORE) &&
                      strcmp(buf + n - strlen(STORE_CONNINFO_MORE), STORE_CONNINFO_MORE) == 0,
                  "cap %zu: marked as cut: \"%s\"", cap, buf);
    }
    /* The size the daemon allocates is always enough. */
    char big[4096];
    size_t len = 0;
    len += (size_t)snprintf(big + len, sizeof big - len, "host=");
    for (int i = 0; i < 200; i++)
        big[len++] = '\\', big[len++] = '\'';
    len += (size_t)snprintf(big + len, sizeof big - len,
                            " password=pw dbname=d user=u target_session_attrs=any");
    size_t cap = STORE_CONNINFO_REDACTED_BUF(len);
    char *out = malloc(cap);
    CHECK(out != NULL, "malloc");
    if (out != NULL) {
        store_conninfo_redacted(big, out, cap);
        CHECK(strstr(out, STORE_CONNINFO_MORE) == NULL && strstr(out, "pw") == NULL &&
                  strstr(out, "target_session_attrs=any") != NULL,
              "STORE_CONNINFO_REDACTED_BUF is enough: %.60s...", out);
        free(out);
    }
}

int main(void)
{
    test_cases();
    test_short_buffers();
    return test_done("conninfo");
}
