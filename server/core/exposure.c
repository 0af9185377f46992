/*
 * Exposure of a key version (exposure.h): the key, then the day sums and the live batches, each
 * one statement of the store.
 */
#include "exposure.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void exposure_free(struct exposure *e)
{
    if (e == NULL)
        return;
    store_key_clear(&e->key);
    free(e->days);
    free(e->batches);
    memset(e, 0, sizeof *e);
}

enum api_error exposure_read(struct service *svc, uint32_t sdkappid, uint32_t version,
                             size_t batch_limit, struct exposure *out, char *msg, size_t cap)
{
    struct store_app app;
    enum store_rc rc;

    memset(out, 0, sizeof *out);
    if (cap > 0)
        msg[0] = '\0';
    out->now_s = (int64_t)time(NULL);
    rc = store_app_get(svc->st, sdkappid, STORE_LOCK_NONE, &app);
    if (rc == STORE_OK) {
        rc = store_key_get(svc->st, sdkappid, version, &out->key);
        store_key_clear(&out->key); /* metadata only */
        if (rc == STORE_NOT_FOUND) {
            snprintf(msg, cap, "app %u has no key version %u", sdkappid, version);
            return API_ERR_KEY_NOT_FOUND;
        }
    }
    if (rc == STORE_OK)
        rc = store_exposure_days(svc->st, sdkappid, version, out->now_s, &out->days, &out->n_days);
    if (rc == STORE_OK)
        rc = store_exposure_batches(svc->st, sdkappid, version, out->now_s, batch_limit,
                                    &out->batches, &out->n_batches, &out->more_batches);
    if (rc != STORE_OK)
        return service_store_error(rc, API_ERR_APP_NOT_FOUND);
    for (size_t i = 0; i < out->n_days; i++) {
        out->single += out->days[i].single;
        out->batch += out->days[i].batch;
    }
    return API_OK;
}
