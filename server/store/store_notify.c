/*
 * LISTEN/NOTIFY for the cache's listener (store.h, "notifications"): subscribe on a connection
 * of its own, then wait on its socket for notifications.
 */
#include "store_int.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static const char SQL_LISTEN_CACHE[] = "LISTEN " STORE_CHANNEL_CACHE;
static const char SQL_LISTEN_HOLD[] = "LISTEN " STORE_CHANNEL_HOLD;
static const char SQL_NOTIFY_HOLD[] = "SELECT pg_notify('" STORE_CHANNEL_HOLD "', $1)";

enum store_rc store_listen_cache(struct store *st)
{
    enum store_rc rc = RUN(st, SQL_LISTEN_CACHE, NULL, NULL);
    return rc == STORE_OK ? RUN(st, SQL_LISTEN_HOLD, NULL, NULL) : rc;
}

enum store_rc store_notify_hold(struct store *st, uint32_t sdkappid, const char *identifier,
                                int64_t ms)
{
    char payload[128];
    int n =
        snprintf(payload, sizeof payload, "%" PRIu32 ":%" PRId64 ":%s", sdkappid, ms, identifier);
    if (n < 0 || (size_t)n >= sizeof payload)
        return STORE_ERROR;
    struct store_params p = {0};
    store_param_text(&p, payload);
    return RUN(st, SQL_NOTIFY_HOLD, &p, NULL);
}

/* A decimal number without sign or leading zeros, at most max, then sep. */
static bool parse_num(const char **s, char sep, uint64_t max, uint64_t *v)
{
    const char *p = *s;
    uint64_t x = 0;
    if (*p < '0' || *p > '9' || (*p == '0' && p[1] != sep))
        return false;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (x > (max - (uint64_t)(*p - '0')) / 10)
            return false;
        x = x * 10 + (uint64_t)(*p - '0');
    }
    if (*p != sep)
        return false;
    *s = p + 1;
    *v = x;
    return true;
}

bool store_hold_parse(const char *payload, uint32_t *sdkappid, int64_t *ms, char *identifier,
                      size_t cap)
{
    uint64_t app, hold;
    const char *p = payload;
    if (p == NULL || !parse_num(&p, ':', UINT32_MAX, &app) || !parse_num(&p, ':', INT64_MAX, &hold))
        return false;
    size_t n = strlen(p);
    if (n >= cap)
        return false;
    memcpy(identifier, p, n + 1);
    *sdkappid = (uint32_t)app;
    *ms = (int64_t)hold;
    return true;
}

enum store_rc store_notify_wait(struct store *st, int wake_fd, int timeout_ms,
                                void (*fn)(void *arg, const char *channel, const char *payload),
                                void *arg)
{
    PGconn *c = st->conn;
    struct pollfd fds[2] = {{.fd = PQsocket(c), .events = POLLIN},
                            {.fd = wake_fd, .events = POLLIN}};

    if (PQstatus(c) != CONNECTION_OK || fds[0].fd < 0)
        return STORE_ERROR;
    int n = poll(fds, wake_fd >= 0 ? 2 : 1, timeout_ms);
    if (n < 0 && errno != EINTR) {
        log_error("store: waiting for notifications failed");
        return STORE_ERROR;
    }
    if (n > 0 && (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0 && PQconsumeInput(c) != 1) {
        log_warn("store: the notification connection was lost: %s", PQerrorMessage(c));
        return STORE_ERROR;
    }
    PGnotify *note;
    while ((note = PQnotifies(c)) != NULL) {
        fn(arg, note->relname, note->extra);
        PQfreemem(note);
    }
    return PQstatus(c) == CONNECTION_OK ? STORE_OK : STORE_ERROR;
}
