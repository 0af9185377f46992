/*
 * The database URL as it is logged (store_conninfo_redacted) against libpq's own reading
 * (PQconninfoParse): the output, read back by libpq, holds only chosen keys, each with the value
 * libpq read from the input (control bytes shown as '?'), and never a password, passfile or
 * options; a password value does not appear in the text unless a shown value holds it too; an
 * input libpq refuses gives the fixed text; the size the daemon allocates is always enough.
 */
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

static const char *const shown_keys[] = {"host",
                                         "hostaddr",
                                         "port",
                                         "dbname",
                                         "user",
                                         "service",
                                         "target_session_attrs",
                                         "load_balance_hosts",
                                         "sslmode",
                                         "gssencmode",
                                         "application_name",
                                         "connect_timeout",
                                         "keepalives",
                                         "keepalives_idle",
                                         "keepalives_interval",
                                         "keepalives_count",
                                         "tcp_user_timeout",
                                         NULL};

static bool is_shown(const char *k)
{
    for (size_t i = 0; shown_keys[i] != NULL; i++)
        if (strcmp(k, shown_keys[i]) == 0)
            return true;
    return false;
}

static const char *opt(const PQconninfoOption *o, const char *k)
{
    for (; o != NULL && o->keyword != NULL; o++)
        if (strcmp(o->keyword, k) == 0)
            return o->val;
    return NULL;
}

/* v as shown: control bytes as '?'. */
static bool same_shown(const char *orig, const char *back)
{
    size_t n = strlen(orig);
    if (strlen(back) != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)orig[i];
        char want = c < 0x20 || c == 0x7f ? '?' : (char)c;
        if (back[i] != want)
            return false;
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096)
        return 0;
    char *in = malloc(size + 1);
    size_t cap = STORE_CONNINFO_REDACTED_BUF(size);
    char *out = malloc(cap);
    char *err = NULL;
    if (in == NULL || out == NULL)
        abort();
    memcpy(in, data, size);
    in[size] = '\0';

    store_conninfo_redacted(in, out, cap);
    if (strlen(out) >= cap)
        abort();
    PQconninfoOption *a = PQconninfoParse(in, &err);
    PQfreemem(err);
    err = NULL;
    bool conn_string = strncmp(in, "postgresql://", 13) == 0 ||
                       strncmp(in, "postgres://", 11) == 0 || strchr(in, '=') != NULL;
    if (a == NULL && conn_string && strcmp(out, STORE_CONNINFO_UNPARSABLE) != 0)
        abort();
    if (!conn_string && in[0] != '\0') {
        /* A bare database name, as store_open takes it. */
        PQconninfoOption *b = PQconninfoParse(out, &err);
        PQfreemem(err);
        err = NULL;
        const char *db = opt(b, "dbname");
        if (b == NULL || db == NULL || !same_shown(in, db))
            abort();
        PQconninfoFree(b);
    } else if (a != NULL && out[0] != '(') {
        PQconninfoOption *b = PQconninfoParse(out, &err);
        PQfreemem(err);
        if (b == NULL)
            abort();
        for (PQconninfoOption *o = b; o->keyword != NULL; o++) {
            const char *orig = opt(a, o->keyword);
            if (o->val == NULL) {
                if (orig != NULL && is_shown(o->keyword))
                    abort(); /* a chosen key dropped */
                continue;
            }
            if (!is_shown(o->keyword) || orig == NULL || !same_shown(orig, o->val))
                abort();
        }
        PQconninfoFree(b);
        /* The text itself: a password that no shown value holds is nowhere in it. */
        const char *pw = opt(a, "password");
        if (pw != NULL && strlen(pw) >= 4 && strpbrk(pw, " ='\\?") == NULL &&
            strstr(out, pw) != NULL) {
            bool held = false;
            for (size_t i = 0; shown_keys[i] != NULL && !held; i++) {
                const char *v = opt(a, shown_keys[i]);
                held = (v != NULL && strstr(v, pw) != NULL) || strstr(shown_keys[i], pw);
            }
            if (!held)
                abort();
        }
    }
    PQconninfoFree(a);
    free(in);
    free(out);
    return 0;
}
