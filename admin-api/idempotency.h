/*
 * Idempotency-Key on the POST routes that create or change something: the first request with a
 * key runs and its reply (status and JSON body, unless 5xx) is kept in PostgreSQL for 24 h; the
 * same key, token and request again get that reply (with Idempotency-Replayed: true) without
 * running again, another request under the key 422 idempotency_key_reused, and one while the
 * first still runs 409 idempotency_in_progress. The dispatcher (http.c) asks
 * idem_route_takes_key and idem_prepare on the loop thread, and hands idem_handler to the
 * offload hook in place of the route's handler: the claim, the handler and the keeping of its
 * reply then run on one database thread, the reply captured and made on the loop thread.
 */
#ifndef API_IDEMPOTENCY_H
#define API_IDEMPOTENCY_H

#include <event2/buffer.h>
#include <stdbool.h>

#include "http.h"

/* True for the routes that take an Idempotency-Key: POST, offloaded, JSON body. Not POST
 * /v1/tokens (its reply holds the new token's secret, which is never kept), nor signing (its
 * reply is a credential; signing changes nothing but counters and the audit log, so a retry
 * simply signs again), verify (changes nothing) or the streamed batch endpoint. On the others
 * the header is ignored. */
bool idem_route_takes_key(const struct api_route *route);

/* On the loop thread, before the body is parsed (in: the raw body): with no Idempotency-Key
 * header, returns 0 and leaves r->idempotency_key empty. With one of 1..API_IDEM_KEY_MAX
 * printable ASCII characters (given once), copies it into r->idempotency_key, sets
 * r->idempotency_hash to SHA-256(method NUL path NUL body) and returns 0. Otherwise replies
 * 400 invalid_param (500 when out of memory) and returns -1. */
int idem_prepare(struct api_request *r, struct evbuffer *in) API_WUR;

/* The handler of a request whose r->idempotency_key is set, for the offload hook (r->ctx a
 * struct service; in capture mode on a database thread, or on the loop thread without a pool,
 * where it captures and replays itself). Calls r->route->handler once at most. */
void idem_handler(struct api_request *r);

#endif
