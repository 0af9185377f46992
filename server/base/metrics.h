/*
 * Process metrics for the Prometheus scrape: counters and fixed-bucket histograms kept in
 * atomics, so that any thread of any layer counts without a lock and a scrape reads while they
 * count. Every label set is bounded: routes are the patterns of the route table, statuses are
 * HTTP codes, outcomes are short names from fixed tables (error codes, verdicts), and app labels
 * are sdkappids, at most METRICS_MAX_APPS distinct ones per metric (the rest count under
 * sdkappid="other"). No identifier and no token is ever a label.
 */
#ifndef METRICS_H
#define METRICS_H

#include <stddef.h>
#include <stdint.h>

#define METRICS_MAX_ROUTES 96   /* (method, pattern) pairs; more count under route="other" */
#define METRICS_MAX_APPS 1000   /* distinct sdkappid label values per metric */
#define METRICS_MAX_OUTCOMES 32 /* distinct outcome/verdict values per metric, "other" included */
#define METRICS_OUTCOME_LEN 31  /* bytes of an outcome name ([A-Za-z0-9_]); longer is "other" */

/* ---- HTTP (the admin API's framework counts these) ------------------------------------------ */

/* The index of route (method, pattern) for metrics_http_request, registered on first use
 * (pattern NULL: requests that matched no route, route="unmatched"). Both strings must outlive
 * the process's metrics (the route table's). Past METRICS_MAX_ROUTES: the "other" index. */
size_t metrics_route(const char *method, const char *pattern);
/* One reply of route (an index from metrics_route) with status, after seconds. */
void metrics_http_request(size_t route, int status, double seconds);

/* ---- signing and verifying ------------------------------------------------------------------- */

/* One sign for app sdkappid (0: none known), outcome "ok" or an error code. */
void metrics_sign(uint32_t sdkappid, const char *outcome);
/* One verify of a token for app sdkappid (0: none known), verdict "ok", the codec's verdict name
 * or an error code. */
void metrics_verify(uint32_t sdkappid, const char *verdict);
/* The signs committed together in one group (core/sign.c, once per group), its transaction in
 * round_trips (1 or 2) round trips. */
void metrics_sign_group(size_t signs, int round_trips);
/* A group sent in one round trip met a change and is done again in two. */
void metrics_sign_group_head_moved(void);

/* ---- batches ----------------------------------------------------------------------------------
 */

/* A batch ended in state ("complete", "aborted", "interrupted", "failed"; anything else counts
 * as "other") with tokens signed. */
void metrics_batch_end(const char *state, uint64_t tokens);

/* ---- the database ------------------------------------------------------------------------------
 */

void metrics_db_error(void);     /* a statement or connection failed (the store, per failure) */
void metrics_db_reconnect(void); /* a connection was re-established (the store, per reset) */

/* ---- the scrape --------------------------------------------------------------------------------
 */

/* Writes every metric above in the Prometheus text exposition format (version 0.0.4) through
 * emit (which returns 0, or -1 to stop). Any thread. Returns 0, or -1 when emit failed. */
int metrics_render(int (*emit)(void *arg, const char *text, size_t len), void *arg);

/* Writes s as a label value (backslash, quote and newline escaped) through emit. 0 or -1. */
int metrics_emit_label_value(int (*emit)(void *arg, const char *text, size_t len), void *arg,
                             const char *s);

#endif
