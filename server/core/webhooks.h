/*
 * Webhooks: what usersigd tells the outside when something happens. Events are written to an
 * outbox (store_webhook_outbox) in the transaction of the change they report: every audited
 * change passes through webhooks_from_audit (called by service_audit), which maps the audit
 * action and outcome to an event type; the few events that are no audit event (a checkpoint
 * written, an audit verification that failed, a key past its rotate_every: the deliverer checks
 * every WEBHOOKS_ROTATION_CHECK_MS and reports each version once) call webhooks_emit.
 * The deliverer (webhooks_new) sends them at least once: a loop-thread timer hands one pool job
 * at a time the due deliveries of the endpoints that have none out (each endpoint's oldest
 * pending one, read only once the previous one is recorded, so an endpoint's events arrive in
 * order and a slow endpoint holds only its own), posts them through outbound (libcurl on the
 * loop, never blocking it) with
 * Usersigd-Timestamp and Usersigd-Signature: v1=hex(HMAC-SHA256(secret, timestamp "." body)),
 * and records each attempt on the pool: a 2xx delivers, anything else is tried again after an
 * exponential backoff (webhook_retry_min doubling to webhook_retry_max) until
 * webhook_max_attempts, then failed (re-sent through the API). Only the process holding the
 * lease (webhook_lease) delivers.
 */
#ifndef WEBHOOKS_H
#define WEBHOOKS_H

#include <event2/event.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "audit.h"
#include "keyring.h"
#include "service.h"
#include "store.h"

#define WEBHOOKS_WUR __attribute__((warn_unused_result))

#define WEBHOOKS_POLL_MS 500 /* the deliverer's tick */
#define WEBHOOKS_DUE_MAX 64  /* deliveries out at once (one per endpoint), at most */
#define WEBHOOKS_SIG_HEX 64
#define WEBHOOKS_ROTATION_CHECK_MS                                                                 \
    5000 /* how often active versions are held against rotate_every */

/* The event types, as an endpoint lists them. */
extern const char *const webhooks_types[];
extern const size_t webhooks_n_types;
bool webhooks_type_valid(const char *type);

/* The outbox entry of audit event ev (appended, seq and time set) when its action and outcome
 * are an event type; nothing otherwise. In the caller's transaction. */
enum store_rc webhooks_from_audit(struct store *st, const struct audit_event *ev) WEBHOOKS_WUR;

/* An event that is no audit event: type (one of webhooks_types) for app sdkappid (0: none)
 * with details (stolen; NULL: {}), in the caller's transaction. */
enum store_rc webhooks_emit(struct store *st, const char *type, uint32_t sdkappid,
                            uint32_t key_version, const char *actor, json_t *details) WEBHOOKS_WUR;

/* An endpoint URL's rule: https://host[:port][/path][?query], 8..2048 bytes of printable
 * ASCII, no user info or fragment; the host, as libcurl's URL API reads it (any IPv4 spelling
 * normalised), a name or an address that is not loopback, private or link-local
 * (outbound_addr_internal), no IPv6 zone ID, no IP address with a trailing dot.
 * allow_insecure (webhook_allow_insecure_url, tests): http:// and internal hosts. false with
 * why filled. The deliverer checks each address it connects to as well. */
bool webhooks_url_ok(const char *url, bool allow_insecure, char *why, size_t cap);

/* hex(HMAC-SHA256(secret, ts "." body)) into hex (WEBHOOKS_SIG_HEX + 1 bytes). 0, or -1. */
int webhooks_sign(const uint8_t secret[KEYRING_WEBHOOK_SECRET_BYTES], int64_t ts, const char *body,
                  size_t len, char hex[WEBHOOKS_SIG_HEX + 1]);

/* The backoff before attempt n + 1 after n (>= 1) failed attempts: min_ms doubled n - 1 times,
 * at most max_ms; -1 when n reached max_attempts (the delivery fails). */
int64_t webhooks_retry_ms(int n, int max_attempts, int64_t min_ms, int64_t max_ms);

struct webhooks;

/* The deliverer of a serve process, on base's loop, its jobs on svc->pool (after the pool is
 * made; freed before it). 0 with *out, or -1 (logged). */
int webhooks_new(struct event_base *base, struct service *svc, struct webhooks **out) WEBHOOKS_WUR;
/* Stops the timer and ends the calls in flight (their attempts are not recorded: they are sent
 * again by the next deliverer); before the pool is freed. Accepts NULL. */
void webhooks_stop(struct webhooks *w);
/* Frees w, after the pool is freed (its jobs' callbacks use w). Accepts NULL. */
void webhooks_free(struct webhooks *w);

#endif
