/*
 * Admin API: the REST gateway, POST /v1/apps/{sdkappid}/tencent/{servicename}/{command}. The
 * handler takes the names from the path (the router checked them), hands the JSON body to the
 * core's gateway (gateway.h: rest_allow, the app, the admin UserSig, the call, the audit) and
 * replies Tencent's bytes unchanged, or a JSON error (429 with Retry-After when the app's calls
 * are at their limit). A client that leaves cancels its call.
 */
#include "handlers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "service.h"

struct gw_http {
    struct gateway_call c;
    struct api_request *r;
    char *body;
    char service[TIM_MAX_NAME + 1], command[TIM_MAX_NAME + 1];
};

static void gw_http_done(struct gateway_call *c)
{
    struct gw_http *h = c->arg;
    struct api_request *r = h->r;

    if (c->err == API_OK) {
        api_reply_text(r, 200, "application/json", c->reply, c->reply_len);
    } else {
        if (c->err == API_ERR_TENCENT_RATE_LIMITED) {
            char secs[24];
            snprintf(secs, sizeof secs, "%lld", (long long)((c->retry_after_ms + 999) / 1000));
            if (api_reply_header(r, "Retry-After", secs) != 0) {
                api_reply_error(r, API_ERR_INTERNAL, "out of memory");
                goto out;
            }
        }
        api_reply_error(r, c->err, "%s",
                        c->msg[0] != '\0' ? c->msg : api_error_info(c->err)->message);
    }
out:
    free(h->body);
    free(h);
}

static void gw_http_close(struct api_request *r, void *arg)
{
    struct gw_http *h = arg;
    (void)r;
    gateway_call_cancel(&h->c);
}

/* The n-th segment of path (0: "v1"), copied into out (cap bytes). 0, or -1. */
static int path_segment(const char *path, int n, char *out, size_t cap)
{
    const char *p = path;
    for (int i = 0; i <= n; i++) {
        if (*p != '/')
            return -1;
        const char *s = ++p;
        while (*p != '/' && *p != '\0')
            p++;
        if (i == n) {
            size_t len = (size_t)(p - s);
            if (len == 0 || len >= cap)
                return -1;
            memcpy(out, s, len);
            out[len] = '\0';
            return 0;
        }
    }
    return -1;
}

void handle_tencent_call(struct api_request *r)
{
    struct service *svc = r->ctx;
    struct gw_http *h;

    if (svc->gateway == NULL) {
        api_reply_error(r, API_ERR_UNAVAILABLE, "the server is not calling Tencent now; retry");
        return;
    }
    h = calloc(1, sizeof *h);
    if (h == NULL) {
        api_reply_error(r, API_ERR_INTERNAL, "out of memory");
        return;
    }
    /* /v1/apps/{sdkappid}/tencent/{servicename}/{command} */
    if (path_segment(r->path, 4, h->service, sizeof h->service) != 0 ||
        path_segment(r->path, 5, h->command, sizeof h->command) != 0) {
        free(h);
        api_reply_error(r, API_ERR_INVALID_PARAM, "servicename and command: 1 to 64 of a-z 0-9 _");
        return;
    }
    h->body = json_dumps(r->body, JSON_COMPACT);
    if (h->body == NULL) {
        free(h);
        api_reply_error(r, API_ERR_INTERNAL, "out of memory");
        return;
    }
    h->r = r;
    h->c.principal = r->principal;
    h->c.sdkappid = r->sdkappid;
    h->c.service = h->service;
    h->c.command = h->command;
    h->c.body = h->body;
    h->c.body_len = strlen(h->body);
    h->c.request_id = r->request_id;
    h->c.done = gw_http_done;
    h->c.arg = h;
    api_request_defer(r);
    api_request_on_close(r, gw_http_close, h);
    gateway_submit(svc->gateway, &h->c);
}
