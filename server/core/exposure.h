/*
 * Exposure of a key version: how many UserSigs it signed are still unexpired, by day of expiry,
 * single signs apart from batches, and the batches listed: what stops working when that key is
 * reset in Tencent's console. Read from the summaries migrations/0009_key_schedule.sql keeps
 * (store_exposure.c), never from the audit log's rows, so its cost follows the version's hours
 * and batches, not its signs. Runs on a database thread (an offloaded handler's).
 */
#ifndef EXPOSURE_H
#define EXPOSURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"
#include "service.h"
#include "store.h"

#define EXPOSURE_BATCHES_DEFAULT 100
#define EXPOSURE_BATCHES_MAX 1000

struct exposure {
    struct store_key key; /* metadata only */
    int64_t now_s;        /* the time the counts hold at */
    uint64_t single, batch;
    struct store_exposure_day *days; /* in day order */
    size_t n_days;
    struct store_exposure_batch *batches; /* the latest expiry first */
    size_t n_batches;
    bool more_batches;
};

/* Fills *out for version of sdkappid (its batches listed up to batch_limit): APP_NOT_FOUND,
 * KEY_NOT_FOUND, UNAVAILABLE (msg says which). Caller exposure_free()s *out, on error too. */
enum api_error exposure_read(struct service *svc, uint32_t sdkappid, uint32_t version,
                             size_t batch_limit, struct exposure *out, char *msg,
                             size_t cap) SERVICE_WUR;
void exposure_free(struct exposure *e);

#endif
