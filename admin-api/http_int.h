/*
 * Internals of the admin API's HTTP framework shared by http.c (the server, dispatcher and
 * replies) and http_fields.c (query string, headers, JSON fields); included by nothing else.
 * Handlers see only struct api_request (http.h).
 */
#ifndef API_HTTP_INT_H
#define API_HTTP_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "http.h"

enum req_state { ST_NEW = 0, ST_REPLIED, ST_STREAMING, ST_ENDED };

struct query_param {
    char *name, *value; /* point into query_buf */
};

/* One request: the public part handed to handlers, and the framework's own state. */
struct req {
    struct api_request pub;
    struct api_server *server; /* NULL once the server is freed under a stream */
    enum req_state state;
    bool in_handler; /* api_reply_end inside the handler leaves the free to the dispatcher */
    bool gone;       /* the client left during a stream */
    int status;
    enum api_error err;
    struct timespec started;
    char path[API_PATH_MAX + 1];
    struct api_principal principal;
    char *query_buf;
    struct query_param query[API_QUERY_MAX_PARAMS];
    size_t n_query;
    void (*close_cb)(struct api_request *r, void *arg);
    void *close_arg;
    void (*sent_cb)(struct api_request *r, void *arg);
    void *sent_arg;
    struct req *prev, *next; /* the server's open streams */
};

/* The struct req around a handler's api_request. */
static inline struct req *req_of(const struct api_request *r)
{
    return (struct req *)((char *)r - offsetof(struct req, pub));
}

/* Parses the query string q (NULL or "": none) into f->query, f->query_buf (freed with f).
 * Returns 0; -1 with a message for the client in why (a 400 invalid_param: too long, malformed,
 * a name twice, too many parameters); -2 when out of memory. */
int api_query_parse(struct req *f, const char *q, char *why, size_t whylen);

#endif
