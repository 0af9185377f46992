/*
 * The database URL as it may be logged (store.h, "the connection string in a log"): parsed by
 * libpq itself (PQconninfoParse), so that what is shown is what libpq reads, then printed from a
 * list of harmless keys only. A password, or any key not on the list, is never printed, however
 * the text spells it (quoted, escaped, percent-encoded, in a URI's user info).
 */
#include "store.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <string.h>

/* What may be logged: where the server is, whom usersigd connects as, and how. Not "password",
 * "passfile" or "options" (free text handed to the server), nor any key libpq may add later. */
static const char *const shown_keys[] = {
    "host",
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
    NULL,
};

/* libpq's own test (recognized_connection_string in fe-connect.c): store_open passes the URL as
 * an expanded dbname, so anything else is a bare database name. */
static bool is_connection_string(const char *s)
{
    return strncmp(s, "postgresql://", 13) == 0 || strncmp(s, "postgres://", 11) == 0 ||
           strchr(s, '=') != NULL;
}

struct out {
    char *p;
    size_t cap, len;
    bool full;
};

static void put_char(struct out *o, char c)
{
    if (o->len + 1 < o->cap)
        o->p[o->len++] = c;
    else
        o->full = true;
}

static void put_str(struct out *o, const char *s)
{
    while (*s != '\0')
        put_char(o, *s++);
}

/* key=value with libpq's keyword/value quoting: single quotes when the value is empty or holds
 * a space, a quote or a backslash, those two escaped. A control byte is shown as '?' so that a
 * value cannot start a line of its own in the log. Written whole or not at all. */
static void put_pair(struct out *o, const char *key, const char *val)
{
    size_t start = o->len;
    bool quote = val[0] == '\0';
    for (const char *s = val; *s != '\0' && !quote; s++)
        quote = *s == ' ' || *s == '\'' || *s == '\\';

    if (start > 0)
        put_char(o, ' ');
    put_str(o, key);
    put_char(o, '=');
    if (quote)
        put_char(o, '\'');
    for (const unsigned char *s = (const unsigned char *)val; *s != '\0'; s++) {
        if (*s == '\'' || *s == '\\')
            put_char(o, '\\');
        put_char(o, *s < 0x20 || *s == 0x7f ? '?' : (char)*s);
    }
    if (quote)
        put_char(o, '\'');
    if (o->full)
        o->len = start;
}

const char *store_conninfo_redacted(const char *conninfo, char *out, size_t cap)
{
    struct out o = {.p = out, .cap = cap};
    PQconninfoOption *opts = NULL;
    char *err = NULL;

    if (cap == 0)
        return out;
    out[0] = '\0';
    if (conninfo == NULL || conninfo[0] == '\0') {
        put_str(&o, "(no database URL)");
        goto done;
    }
    if (!is_connection_string(conninfo)) {
        put_pair(&o, "dbname", conninfo);
        goto done;
    }
    /* libpq's message may quote the text: it is dropped unread. */
    opts = PQconninfoParse(conninfo, &err);
    if (opts == NULL) {
        put_str(&o, err != NULL ? STORE_CONNINFO_UNPARSABLE : "(out of memory)");
        goto done;
    }
    /* In the order of shown_keys (where before who), each key at most once. */
    for (size_t k = 0; shown_keys[k] != NULL && !o.full; k++)
        for (const PQconninfoOption *op = opts; op->keyword != NULL; op++)
            if (op->val != NULL && strcmp(op->keyword, shown_keys[k]) == 0) {
                put_pair(&o, op->keyword, op->val);
                break;
            }
    if (o.full) {
        /* The last pair that fits is followed by the marker, or cut short for it. */
        size_t n = strlen(STORE_CONNINFO_MORE);
        if (o.len + n + 1 > cap)
            o.len = cap > n ? cap - n - 1 : 0;
        o.full = false;
        if (o.len + n + 1 <= cap)
            put_str(&o, STORE_CONNINFO_MORE);
    } else if (o.len == 0) {
        put_str(&o, "(defaults)");
    }
done:
    out[o.len] = '\0';
    PQconninfoFree(opts);
    PQfreemem(err);
    return out;
}
