/*
 * Admin API rate limits: an app's (GET and PATCH /v1/apps/{sdkappid}/limits) and an API
 * token's (PATCH /v1/tokens/{id}; also given at creation). signs_per_second and
 * batch_tokens_per_day, each an integer or null for none. The core's op_limits.h changes and
 * audits them; sign.c and op_limits_batch_reserve enforce them.
 */
#include "handlers.h"
#include "op_limits.h"
#include "tokens.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>

static const struct api_field limit_fields[] = {
    {"signs_per_second", API_FIELD_INTEGER, API_FIELD_NULLABLE},
    {"batch_tokens_per_day", API_FIELD_INTEGER, API_FIELD_NULLABLE},
    {NULL, 0, 0},
};

static json_t *app_limits_json(uint32_t sdkappid, const struct store_limits *l)
{
    json_t *o = json_pack("{s:I}", "sdkappid", (json_int_t)sdkappid);
    if (o != NULL && op_limits_json_set(o, l) != 0) {
        json_decref(o);
        o = NULL;
    }
    return o;
}

static void reply_op_error(struct api_request *r, enum api_error err, const char *msg)
{
    if (msg[0] != '\0')
        api_reply_error(r, err, "%s", msg);
    else
        api_reply_error(r, err, NULL);
}

/* The body of a PATCH of limits into *c; -1 when a 400 was replied. */
static int change_from_body(struct api_request *r, struct op_limits_change *c)
{
    const char *field = NULL;
    char why[TOKENS_WHY_BUF];

    memset(c, 0, sizeof *c);
    if (api_require_fields(r, limit_fields) != 0)
        return -1;
    if (tokens_limits_from_body(r->body, &c->values, &c->set, &field, why, sizeof why) != 0) {
        api_reply_error(r, API_ERR_INVALID_FIELD, "%s", why);
        return -1;
    }
    if (c->set == 0) {
        api_reply_error(r, API_ERR_MISSING_FIELD,
                        "give signs_per_second or batch_tokens_per_day (an integer, or null for "
                        "no limit)");
        return -1;
    }
    return 0;
}

void handle_app_limits_get(struct api_request *r)
{
    struct store_limits l;
    char msg[OP_MSG_BUF];
    enum api_error err = op_limits_app_get(r->ctx, r->principal, r->sdkappid, &l, msg, sizeof msg);
    if (err != API_OK)
        reply_op_error(r, err, msg);
    else
        api_reply_json(r, 200, app_limits_json(r->sdkappid, &l));
}

void handle_app_limits_update(struct api_request *r)
{
    struct op_limits_change c;
    struct store_limits l;
    char msg[OP_MSG_BUF];

    if (change_from_body(r, &c) != 0)
        return;
    enum api_error err =
        op_limits_app_set(r->ctx, r->principal, r->sdkappid, &c, &l, msg, sizeof msg);
    if (err != API_OK)
        reply_op_error(r, err, msg);
    else
        api_reply_json(r, 200, app_limits_json(r->sdkappid, &l));
}

void handle_token_update(struct api_request *r)
{
    struct op_limits_change c;
    struct store_token t;
    struct timeval tv;
    char msg[OP_MSG_BUF];

    if (change_from_body(r, &c) != 0)
        return;
    enum api_error err = op_limits_token_set(r->ctx, r->principal, r->id, &c, &t, msg, sizeof msg);
    if (err != API_OK) {
        reply_op_error(r, err, msg);
        return;
    }
    gettimeofday(&tv, NULL);
    api_reply_json(r, 200, tokens_json(&t, (int64_t)tv.tv_sec * 1000000 + tv.tv_usec));
}
