/*
 * Rate-limit operations: an app's and an API token's signs_per_second and batch_tokens_per_day,
 * read and changed (only what differs, audited as from/to, in the change's transaction; the
 * caches hear of it through the rows' triggers and are evicted here too); and the daily batch
 * allowance a batch start reserves (shared by every process through the database). The single
 * signs' buckets live in memory (ratelimit.h, sign.c).
 */
#ifndef OP_LIMITS_H
#define OP_LIMITS_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "errors.h"
#include "principal.h"
#include "service.h"
#include "store.h"

#ifndef OP_MSG_BUF
#define OP_MSG_BUF 320 /* room for any operation's message */
#endif

/* A change: the fields named in set (STORE_LIMIT_SET_*) take the values (0: no limit). */
struct op_limits_change {
    unsigned set;
    struct store_limits values;
};

/* App sdkappid's limits (p must have it in scope: the route's check). */
enum api_error op_limits_app_get(struct service *svc, const struct principal *p, uint32_t sdkappid,
                                 struct store_limits *out, char *msg, size_t cap);
/* Changes them; *out as they now are. Audited as "app.limits.update" when anything differs. */
enum api_error op_limits_app_set(struct service *svc, const struct principal *p, uint32_t sdkappid,
                                 const struct op_limits_change *in, struct store_limits *out,
                                 char *msg, size_t cap);
/* Changes API token id's; *out the token as it now is. Audited as "token.limits.update". */
enum api_error op_limits_token_set(struct service *svc, const struct principal *p, int64_t id,
                                   const struct op_limits_change *in, struct store_token *out,
                                   char *msg, size_t cap);

/* The limits as JSON members of o ("signs_per_second", "batch_tokens_per_day"; null: none).
 * 0, or -1 when out of memory. */
int op_limits_json_set(json_t *o, const struct store_limits *l);

/* The day's allowance of a batch by p on app sdkappid, inside the transaction
 * that records its start (batches_start records it with the row, store_batch.allowance): locks
 * the allowance until that commit, counts the day's batches of the token and of the app, and
 * gives the smaller rest. *allowance -1 when neither has a daily limit. API_OK; or
 * TOKEN_/APP_BATCH_TOKENS_PER_DAY with msg and *retry_after_s (until a running batch may give
 * back what it did not use, or until 00:00 UTC); API_ERR_UNAVAILABLE when the database failed. */
enum api_error op_limits_batch_reserve(struct service *svc, const struct principal *p,
                                       uint32_t sdkappid, int64_t *allowance,
                                       int64_t *retry_after_s, char *msg, size_t cap);

#endif
