/*
 * Audit-log operations (op_audit.h). A scoped principal without ?sdkappid= is filtered here, the
 * store read page after page until the page is full or OP_AUDIT_SCAN_MAX rows were looked at.
 */
#include "op_audit.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "webhooks.h"

__attribute__((format(printf, 4, 5))) static enum api_error
fail(char *msg, size_t cap, enum api_error err, const char *fmt, ...)
{
    if (cap > 0)
        msg[0] = '\0';
    if (fmt != NULL && cap > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, cap, fmt, ap);
        va_end(ap);
    }
    return err;
}

void op_audit_query_free(struct op_audit_query_out *out)
{
    for (size_t i = 0; i < out->n_blocks; i++)
        free(out->blocks[i]);
    free(out->blocks);
    free(out->events);
    memset(out, 0, sizeof *out);
}

/* Keeps block (a store result) in out; -1 when out of memory (block freed). */
static int keep_block(struct op_audit_query_out *out, struct audit_event *block)
{
    struct audit_event **b = realloc(out->blocks, (out->n_blocks + 1) * sizeof *b);
    if (b == NULL) {
        free(block);
        return -1;
    }
    out->blocks = b;
    out->blocks[out->n_blocks++] = block;
    return 0;
}

enum api_error op_audit_query(struct service *svc, const struct principal *p,
                              const struct op_audit_query_in *in, struct op_audit_query_out *out,
                              char *msg, size_t cap)
{
    struct store_audit_filter f = in->filter;
    struct audit_event *events = NULL;
    size_t n = 0, want = f.limit, scanned = 0;
    int64_t last_scanned = 0;
    bool more = false, scoped;
    enum store_rc rc;

    memset(out, 0, sizeof *out);
    fail(msg, cap, API_OK, NULL);
    if (want < 1 || want > STORE_AUDIT_PAGE_MAX)
        return fail(msg, cap, API_ERR_INTERNAL, NULL);
    if (f.sdkappid != 0 && !principal_has_app(p, f.sdkappid))
        return fail(msg, cap, API_ERR_FORBIDDEN, "this token does not cover app %u", f.sdkappid);
    /* A scoped token without ?sdkappid= sees the events of its apps only; events of no app
     * (tokens, the keyring) are not for it either. */
    scoped = f.sdkappid == 0 && (p == NULL || !p->all_apps);
    out->events = malloc(want * sizeof *out->events);
    if (out->events == NULL)
        return fail(msg, cap, API_ERR_INTERNAL, NULL);
    for (;;) {
        if (scoped)
            f.limit = STORE_AUDIT_PAGE_MAX;
        rc = store_audit_query(svc->st, &f, &events, &n);
        if (rc != STORE_OK) {
            op_audit_query_free(out);
            return fail(msg, cap, service_store_error(rc, API_ERR_NOT_FOUND), NULL);
        }
        for (size_t i = 0; i < n && out->n < want; i++) {
            last_scanned = events[i].seq;
            scanned++;
            if (scoped && !principal_has_app(p, events[i].sdkappid))
                continue;
            out->events[out->n++] = &events[i];
        }
        /* More may follow when this read filled its page or stopped early on a full list. */
        more = n == f.limit || (n > 0 && last_scanned != events[n - 1].seq);
        if (events != NULL && keep_block(out, events) != 0) {
            op_audit_query_free(out);
            return fail(msg, cap, API_ERR_INTERNAL, NULL);
        }
        events = NULL;
        if (!more || out->n >= want || !scoped || scanned >= OP_AUDIT_SCAN_MAX)
            break;
        f.after_seq = last_scanned;
    }
    out->next_after = more && last_scanned > 0 ? last_scanned : 0;
    return API_OK;
}

void op_audit_details_for(const struct principal *p, json_t *details)
{
    json_t *other = json_object_get(details, "other_sdkappid");
    if (p == NULL || p->all_apps || !json_is_integer(other))
        return;
    json_int_t v = json_integer_value(other);
    if (v >= 1 && v <= UINT32_MAX && principal_has_app(p, (uint32_t)v))
        return;
    if (json_object_set_new(details, "other_sdkappid", json_string(OP_AUDIT_OUTSIDE_SCOPE)) != 0)
        (void)json_object_del(details, "other_sdkappid"); /* out of memory: hidden all the same */
}

void op_audit_verify_failed(struct service *svc, const struct principal *p, const char *problem,
                            int64_t bad_seq, int64_t checkpoint_seq)
{
    json_t *d = json_pack("{s:s}", "problem", problem);
    if (d != NULL &&
        ((bad_seq > 0 && json_object_set_new(d, "bad_seq", json_integer(bad_seq)) != 0) ||
         (checkpoint_seq > 0 &&
          json_object_set_new(d, "checkpoint_seq", json_integer(checkpoint_seq)) != 0))) {
        json_decref(d);
        d = NULL;
    }
    if (store_in_transaction(svc->st))
        store_rollback(svc->st);
    if (d == NULL || store_begin(svc->st) != STORE_OK ||
        webhooks_emit(svc->st, "audit.verify_failed", 0, 0, p != NULL ? p->name : "usersigd", d) !=
            STORE_OK ||
        store_commit(svc->st) != STORE_OK) {
        store_rollback(svc->st);
        log_error("webhooks: the audit verification failure could not be written to the outbox");
    }
}

enum api_error op_audit_verify(struct service *svc, const struct principal *p,
                               struct audit_verify_result *out, char *msg, size_t cap)
{
    (void)p; /* the route's permission covers the whole log */
    fail(msg, cap, API_OK, NULL);
    if (audit_verify(svc->st, keyring_audit_key(svc->kr), out) != AUDIT_OK)
        return fail(msg, cap, API_ERR_UNAVAILABLE, "the audit log cannot be read (see the log)");
    if (!out->ok) {
        log_warn("audit chain broken at seq %lld: %s", (long long)out->bad_seq,
                 audit_problem_name(out->problem));
        op_audit_verify_failed(svc, p, audit_problem_name(out->problem), out->bad_seq, 0);
    }
    return API_OK;
}

enum api_error op_audit_verify_status(struct service *svc, const struct principal *p,
                                      struct audit_verify_result *chain, struct store_ckpt *latest,
                                      bool *has_latest, struct ckpt_check *check, char *msg,
                                      size_t cap)
{
    (void)p; /* the route's permission covers the whole log */
    enum api_error err = ckpt_status(svc, chain, latest, has_latest, check, msg, cap);
    if (err != API_OK)
        return err;
    if (!chain->ok) {
        log_warn("audit chain broken at seq %lld: %s", (long long)chain->bad_seq,
                 audit_problem_name(chain->problem));
        op_audit_verify_failed(svc, p, audit_problem_name(chain->problem), chain->bad_seq, 0);
    }
    if (*has_latest && check->problem != CKPT_OK) {
        log_warn("audit checkpoint at seq %lld does not check out: %s", (long long)latest->seq,
                 ckpt_problem_name(check->problem));
        op_audit_verify_failed(svc, p, ckpt_problem_name(check->problem), 0, latest->seq);
    }
    return API_OK;
}

enum api_error op_audit_verify_checkpoint(struct service *svc, const struct principal *p,
                                          const struct store_ckpt *c, const uint8_t *pub,
                                          struct ckpt_check *check, char *msg, size_t cap)
{
    (void)p;
    enum api_error err = ckpt_check(svc, c, pub, check, msg, cap);
    if (err == API_OK && check->problem != CKPT_OK)
        log_warn("audit checkpoint at seq %lld given to check does not check out: %s",
                 (long long)c->seq, ckpt_problem_name(check->problem));
    return err;
}

enum api_error op_audit_checkpoints(struct service *svc, const struct principal *p,
                                    int64_t after_seq, size_t limit, struct store_ckpt **out,
                                    size_t *n, bool *more, char *msg, size_t cap)
{
    (void)p;
    return ckpt_list(svc, after_seq, limit, out, n, more, msg, cap);
}

enum api_error op_audit_checkpoint_key(struct service *svc, const struct principal *p,
                                       struct store_ckpt_key *out, char *msg, size_t cap)
{
    (void)p;
    return ckpt_key_get_or_create(svc, out, msg, cap);
}
