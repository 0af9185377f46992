/*
 * The application/json body of the batch route, {"identifiers": [...], "expire"?: N}: checked
 * whole by a validating scan that keeps no copy of it, then cut into items, one per element of
 * its identifiers array, as the signing pipeline asks for them. Used by batch.c.
 */
#ifndef API_BATCH_JSON_H
#define API_BATCH_JSON_H

#include <event2/buffer.h>
#include <stdbool.h>
#include <stdint.h>

#include "errors.h"
#include "pipeline.h"

/* Where the cutting of a checked body stands. Starts zeroed; batch_json_check() sets skip. */
struct batch_json_cut {
    uint64_t skip;   /* bytes before the identifiers array's first element */
    bool item_open;  /* an element is being added */
    bool array_done; /* the identifiers array ended */
    int depth;       /* nesting inside the current element */
    bool in_string, escaped;
};

/* Checks the whole body (in is only read). API_OK with cut->skip set, and the body's expire
 * (*has_expire false when it gives none); or the error, with msg (cap bytes) saying why. */
enum api_error batch_json_check(struct evbuffer *in, struct batch_json_cut *cut, bool *has_expire,
                                int64_t *expire, char *msg, size_t cap)
    __attribute__((warn_unused_result));

/* The pipeline's fill for a checked body: adds the array's elements from in (drained as they are
 * taken) until the items are full or the array ends. */
enum pipeline_fill batch_json_fill(struct batch_json_cut *cut, struct evbuffer *in,
                                   struct pipeline_items *it);

#endif
