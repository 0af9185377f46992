/*
 * LISTEN/NOTIFY for the cache's listener (store.h, "notifications"): subscribe on a connection
 * of its own, then wait on its socket for notifications.
 */
#include "store_int.h"

#include <errno.h>
#include <poll.h>
#include <string.h>

#include "log.h"

static const char SQL_LISTEN_CACHE[] = "LISTEN " STORE_CHANNEL_CACHE;
static const char SQL_LISTEN_HOLD[] = "LISTEN " STORE_CHANNEL_HOLD;
static const char SQL_NOTIFY_HOLD[] = "SELECT pg_notify('" STORE_CHANNEL_HOLD "', $1)";
static const char SQL_LISTENING[] =
    "SELECT count(*) FROM pg_listening_channels() c WHERE c IN ('" STORE_CHANNEL_CACHE
    "', '" STORE_CHANNEL_HOLD "')";

/* Each statement may run on a connection reset in between (store_run, outside a transaction):
 * the session is asked last which channels it listens on. */
enum store_rc store_listen(struct store *st)
{
    PGresult *r = NULL;
    enum store_rc rc = RUN(st, SQL_LISTEN_CACHE, NULL, NULL);
    if (rc == STORE_OK)
        rc = RUN(st, SQL_LISTEN_HOLD, NULL, NULL);
    if (rc == STORE_OK)
        rc = RUN(st, SQL_LISTENING, NULL, &r);
    if (rc == STORE_OK && !(PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "2") == 0)) {
        log_warn("store: the connection was reset while it began to listen; listening again");
        rc = STORE_ERROR;
    }
    PQclear(r);
    return rc;
}

enum store_rc store_notify_hold(struct store *st, const char *payload)
{
    struct store_params p = {0};
    store_param_text(&p, payload);
    return RUN(st, SQL_NOTIFY_HOLD, &p, NULL);
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
