/*
 * Handlers on database threads: the admin API server's offload hook (http.h, "Offloaded
 * handlers"). A handler of an API_ROUTE_OFFLOAD route runs on a dbpool thread with that
 * thread's struct service as r->ctx, its reply captured and made on the loop thread.
 */
#ifndef OFFLOAD_H
#define OFFLOAD_H

#include "http.h"

/* The api_server_config.offload hook; ctx is the loop's struct service. With svc->pool set,
 * r is put in capture mode and handler(r) runs as a dbpool job (r->ctx: the pool thread's
 * service), its reply replayed when the job is done; a job cancelled because the pool is
 * being freed answers 503 unavailable. Without a pool (tests, operator commands) handler(r)
 * runs at once on the loop thread, the ordinary way. Out of memory answers 500 at once. */
void offload_request(void *ctx, struct api_request *r, void (*handler)(struct api_request *r));

#endif
