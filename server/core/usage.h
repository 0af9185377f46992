/*
 * Usage counters of key versions: verifies by verdict, per (sdkappid, key version), counted in
 * memory by whatever thread verifies (the loop thread for cached apps, at 20,000 a second, and
 * pool threads) with a relaxed atomic add and no lock, written to PostgreSQL by a pool thread
 * every few seconds in one statement (usage_flush, through the upkeep job: upkeep.h), never a
 * database write per verify. The listing of an app's keys reads the totals of every process
 * from the database (usage_read); the Prometheus scrape shows this process's own counts
 * (usage_render: usersigd_key_verifies_total{sdkappid, version, verdict}).
 *
 * Bounds: at most USAGE_MAX_KEYS (sdkappid, version) pairs a process; verifies of more pairs
 * count under sdkappid="other" in the metrics and are not written (logged once). Verdicts are a
 * fixed table: the codec's names and the core's (no_key, key_pending, key_disabled). Version 0
 * is a verify that no key version of the app matched (signature_mismatch, no_key, ...):
 * version="none" in the metrics, unmatched_verify_counts in the listing.
 */
#ifndef USAGE_H
#define USAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define USAGE_MAX_KEYS 2048 /* (sdkappid, version) pairs counted per process */

/* One verify of a token for app sdkappid (not 0) that key version `version` (0: none) signed,
 * with its verdict ("ok", "expired", ...). Any thread; no I/O, no lock. */
void usage_verify(uint32_t sdkappid, uint32_t version, const char *verdict);

/* Writes the counts not yet written (one statement) on st, outside a transaction; on failure
 * they are kept for the next call. Returns 0 (also when there was nothing to write) or -1. One
 * caller at a time (the upkeep job, or the last flush at stop). */
int usage_flush(struct store *st);

/* The Prometheus text of this process's counts through emit (0, or -1 to stop). 0 or -1. */
int usage_render(int (*emit)(void *arg, const char *text, size_t len), void *arg);

/* An app's verify counts as stored (every process's flushed ones): rows in (version, verdict)
 * order. Caller free()s *out. */
enum store_rc usage_read(struct store *st, uint32_t sdkappid, struct store_verify_count **out,
                         size_t *n) STORE_WUR;

#endif
