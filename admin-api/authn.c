/*
 * Token checks for the admin API (authn.h): the cache first, the store on a miss.
 */
#include "authn.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "service.h"

/* One token check in flight: a miss checked on a database thread, or a use to record. */
struct auth_call {
    struct dbpool_job job;
    struct api_auth *call; /* NULL: only record the use of token_id */
    int64_t token_id;
    char token[API_TOKEN_MAX + 1];
    enum service_token_rc rc;
    struct principal principal;
};

static enum api_auth_rc auth_rc(enum service_token_rc rc)
{
    switch (rc) {
    case SERVICE_TOKEN_OK:
        return API_AUTH_OK;
    case SERVICE_TOKEN_UNKNOWN:
        return API_AUTH_NOT_FOUND;
    default:
        return API_AUTH_ERROR;
    }
}

/* The token checks waiting together, their rows fetched in one statement. */
static void auth_run(struct store *st, void *ctx, struct dbpool_job *jobs)
{
    struct auth_call *calls[SERVICE_TOKENS_MAX];
    const char *tokens[SERVICE_TOKENS_MAX] = {0};
    struct principal principals[SERVICE_TOKENS_MAX];
    enum service_token_rc rc[SERVICE_TOKENS_MAX];
    size_t n = 0;

    (void)st;
    for (struct dbpool_job *j = jobs; j != NULL && n < SERVICE_TOKENS_MAX; j = j->next) {
        calls[n] = j->arg;
        tokens[n] = calls[n]->token;
        n++;
    }
    service_check_tokens(ctx, tokens, n, rc, principals);
    for (size_t i = 0; i < n; i++) {
        calls[i]->rc = rc[i];
        if (rc[i] == SERVICE_TOKEN_OK)
            calls[i]->principal = principals[i];
        OPENSSL_cleanse(calls[i]->token, sizeof calls[i]->token);
    }
    OPENSSL_cleanse(principals, sizeof principals);
}

static void auth_done(struct dbpool_job *job)
{
    struct auth_call *a = job->arg;
    if (job->cancelled)
        a->rc = SERVICE_TOKEN_ERROR;
    api_auth_done(a->call, auth_rc(a->rc), a->rc == SERVICE_TOKEN_OK ? &a->principal : NULL);
    OPENSSL_cleanse(a, sizeof *a);
    free(a);
}

static void touch_run(struct store *st, void *ctx, struct dbpool_job *jobs)
{
    (void)st;
    for (struct dbpool_job *j = jobs; j != NULL; j = j->next)
        service_token_touch(ctx, ((struct auth_call *)j->arg)->token_id);
}

static void touch_done(struct dbpool_job *job)
{
    free(job->arg);
}

/* Records a cached token's use on a database thread; the request does not wait for it. */
static void touch_later(struct service *svc, int64_t id)
{
    struct auth_call *a = calloc(1, sizeof *a);
    if (a == NULL)
        return; /* only the last-use time is late */
    a->token_id = id;
    a->job.run = touch_run;
    a->job.done = touch_done;
    a->job.arg = a;
    a->job.batch = SERVICE_TOKENS_MAX;
    service_run(svc, &a->job);
}

void authn_token(void *ctx, const char *token, struct api_auth *call)
{
    struct service *svc = ctx;
    size_t len = strlen(token);
    struct principal p;
    bool touch = false;
    struct auth_call *a;

    if (len > API_TOKEN_MAX) { /* the framework refuses longer ones before */
        api_auth_done(call, API_AUTH_NOT_FOUND, NULL);
        return;
    }
    enum service_token_rc rc = service_token_cached(svc, token, &p, &touch);
    if (rc != SERVICE_TOKEN_MISS) {
        api_auth_done(call, auth_rc(rc), rc == SERVICE_TOKEN_OK ? &p : NULL);
        if (touch)
            touch_later(svc, p.token_id);
        return;
    }
    a = calloc(1, sizeof *a);
    if (a == NULL) {
        log_msg(LOG_ERROR, api_auth_request_id(call), "out of memory checking a token");
        api_auth_done(call, API_AUTH_ERROR, NULL);
        return;
    }
    a->call = call;
    memcpy(a->token, token, len + 1);
    a->job.run = auth_run;
    a->job.done = auth_done;
    a->job.arg = a;
    a->job.batch = SERVICE_TOKENS_MAX;
    service_run(svc, &a->job);
}
