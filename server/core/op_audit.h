/*
 * Audit-log operations of the core: a filtered, paged query that keeps a scoped principal to the
 * events of its apps, and the verification of the whole chain. Reads only: no transaction of
 * their own, no event. Runs on the caller's thread: a database pool thread for the admin API
 * (op_apps.h says more).
 */
#ifndef OP_AUDIT_H
#define OP_AUDIT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "audit.h"
#include "checkpoint.h"
#include "errors.h"
#include "principal.h"
#include "service.h"
#include "store.h"

#define OP_MSG_BUF 320 /* room for any operation's message */

/* Rows a scoped query reads for one page before it answers with what it found so far (the
 * client follows next_after). Bounds the work of one request over a log of other apps' events. */
#define OP_AUDIT_SCAN_MAX 20000

/* The filter of store_audit_query (its strings borrowed), limit 1..STORE_AUDIT_PAGE_MAX being
 * the page wanted. A principal scoped to some apps must name one of them in sdkappid
 * (otherwise FORBIDDEN) or see the events of its apps only (events of no app included out). */
struct op_audit_query_in {
    struct store_audit_filter filter;
};

struct op_audit_query_out {
    const struct audit_event **events; /* n of them, in seq order, pointing into blocks */
    size_t n;
    int64_t next_after;          /* 0: no more pages; otherwise the seq to go on after */
    struct audit_event **blocks; /* what the store returned; op_audit_query_free() frees all */
    size_t n_blocks;
};

enum api_error op_audit_query(struct service *svc, const struct principal *p,
                              const struct op_audit_query_in *in, struct op_audit_query_out *out,
                              char *msg, size_t cap) SERVICE_WUR;
/* Frees what op_audit_query filled (accepts an out it zeroed on error). */
void op_audit_query_free(struct op_audit_query_out *out);

/* What reader p may see of one event's details (parsed, changed in place): another app that an
 * event names (other_sdkappid: the holder of a refused key) and that p's scope does not cover is
 * shown as OP_AUDIT_OUTSIDE_SCOPE, as the refused caller was told. The stored event and its MAC
 * stay as they are (audit verify reads those). */
#define OP_AUDIT_OUTSIDE_SCOPE "(outside the reader's scope)"
void op_audit_details_for(const struct principal *p, json_t *details);

/* Walks the whole chain (audit_verify); a broken chain is API_OK with out->ok false (logged),
 * a log that cannot be read UNAVAILABLE. */
/* An audit verification that failed, as an audit.verify_failed webhook event (problem, the
 * first bad seq or the checkpoint's seq, 0 when none), in a transaction of its own. */
void op_audit_verify_failed(struct service *svc, const struct principal *p, const char *problem,
                            int64_t bad_seq, int64_t checkpoint_seq);

enum api_error op_audit_verify(struct service *svc, const struct principal *p,
                               struct audit_verify_result *out, char *msg, size_t cap) SERVICE_WUR;

/* The chain's status for GET /v1/audit/verify: the whole chain walked and the latest stored
 * checkpoint (*has_latest) checked against it with the stored key (checkpoint.h ckpt_status). A
 * broken chain or checkpoint is API_OK (logged). */
enum api_error op_audit_verify_status(struct service *svc, const struct principal *p,
                                      struct audit_verify_result *chain, struct store_ckpt *latest,
                                      bool *has_latest, struct ckpt_check *check, char *msg,
                                      size_t cap) SERVICE_WUR;

/* The chain checked up to checkpoint c, its signature with pub (NULL: the stored key's): a
 * failed check is API_OK with check->problem set (logged). */
enum api_error op_audit_verify_checkpoint(struct service *svc, const struct principal *p,
                                          const struct store_ckpt *c, const uint8_t *pub,
                                          struct ckpt_check *check, char *msg,
                                          size_t cap) SERVICE_WUR;

/* A page of checkpoints (checkpoint.h ckpt_list); caller free()s *out. */
enum api_error op_audit_checkpoints(struct service *svc, const struct principal *p,
                                    int64_t after_seq, size_t limit, struct store_ckpt **out,
                                    size_t *n, bool *more, char *msg, size_t cap) SERVICE_WUR;

/* The checkpoint key's public part, made on first use (checkpoint.h ckpt_key_get_or_create). */
enum api_error op_audit_checkpoint_key(struct service *svc, const struct principal *p,
                                       struct store_ckpt_key *out, char *msg,
                                       size_t cap) SERVICE_WUR;

#endif
