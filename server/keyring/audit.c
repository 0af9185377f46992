/*
 * The audit chain: appending an event under the audit lock in the caller's transaction, and
 * walking the log to check that seqs run without a gap and that every MAC follows from the one
 * before (server/README.md "Audit chain"). The key comes from the keyring.
 */
#include "audit.h"
#include "jsonw.h"

#include "log.h"

#include <inttypes.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AUDIT_VERIFY_PAGE 500

const char *audit_problem_name(enum audit_problem p)
{
    static const char *const names[] = {"ok", "mac_mismatch", "gap", "malformed"};
    return (unsigned)p < sizeof names / sizeof names[0] ? names[p] : "?";
}

/* A field the canonical form can hold: bounded and without a newline (a newline could move
 * text from one field to the next and keep the MAC). */
static bool field_ok(const char *s, size_t min, size_t max)
{
    size_t n;
    if (s == NULL)
        return false;
    n = strlen(s);
    return n >= min && n <= max && memchr(s, '\n', n) == NULL;
}

/* Why ev cannot be appended, or NULL. */
static const char *event_problem(const struct audit_event *ev)
{
    if (ev->actor_id < 0)
        return "actor_id is negative";
    if (!field_ok(ev->actor_name, 0, AUDIT_TEXT_MAX))
        return "actor_name is missing, too long or holds a newline";
    if (!field_ok(ev->action, 1, AUDIT_TEXT_MAX))
        return "action is missing, too long or holds a newline";
    if (!field_ok(ev->outcome, 1, AUDIT_TEXT_MAX))
        return "outcome is missing, too long or holds a newline";
    if (!field_ok(ev->details, 0, AUDIT_DETAILS_MAX))
        return "details is too long or holds a newline";
    return NULL;
}

/* An HMAC-SHA256 context keyed once: each MAC after the first starts again from the key's
 * state (EVP_MAC_init without a key) instead of fetching, allocating and keying anew. */
static EVP_MAC_CTX *mac_ctx_new(const uint8_t key[AUDIT_KEY_LEN])
{
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac != NULL ? EVP_MAC_CTX_new(mac) : NULL;
    EVP_MAC_free(mac); /* the context keeps its own reference */
    if (ctx != NULL && !EVP_MAC_init(ctx, key, AUDIT_KEY_LEN, params)) {
        EVP_MAC_CTX_free(ctx);
        ctx = NULL;
    }
    if (ctx == NULL)
        log_error("audit: cannot make an HMAC context");
    return ctx;
}

/* Decimal text of v into buf (at least JSONW_INT_MAX bytes, no NUL), or "" for 0 when
 * zero_is_empty. */
static size_t num_text(char *buf, int64_t v, bool zero_is_empty)
{
    return zero_is_empty && v == 0 ? 0 : jsonw_int_text(buf, v);
}

/* The bytes an event's MAC covers, after the previous MAC, are its fields each followed by a
 * newline. Up to this many they are gathered into one buffer and hashed in one update. */
#define MAC_TEXT_BUF 2048

/* The event's MAC with ctx (from mac_ctx_new: keyed with the audit key). */
static bool mac_with(EVP_MAC_CTX *ctx, const uint8_t prev[AUDIT_MAC_LEN],
                     const struct audit_event *ev, uint8_t out[AUDIT_MAC_LEN])
{
    char num[5][24];
    size_t num_len[5];
    const char *text[9];
    size_t len[9];
    size_t out_len = 0, total = 0;
    char buf[MAC_TEXT_BUF];

    num_len[0] = num_text(num[0], ev->seq, false);
    num_len[1] = num_text(num[1], ev->at_us, false);
    num_len[2] = num_text(num[2], ev->actor_id, true);
    num_len[3] = num_text(num[3], ev->sdkappid, true);
    num_len[4] = num_text(num[4], ev->key_version, true);
    /* seq, at, actor_id, actor_name, action, sdkappid, key_version, outcome, details */
    text[0] = num[0], len[0] = num_len[0];
    text[1] = num[1], len[1] = num_len[1];
    text[2] = num[2], len[2] = num_len[2];
    text[3] = ev->actor_name, len[3] = strlen(ev->actor_name);
    text[4] = ev->action, len[4] = strlen(ev->action);
    text[5] = num[3], len[5] = num_len[3];
    text[6] = num[4], len[6] = num_len[4];
    text[7] = ev->outcome, len[7] = strlen(ev->outcome);
    text[8] = ev->details, len[8] = strlen(ev->details);
    for (int i = 0; i < 9; i++)
        total += len[i] + 1;

    /* A key of NULL starts again from the key the context was made with. */
    if (!EVP_MAC_init(ctx, NULL, 0, NULL) || !EVP_MAC_update(ctx, prev, AUDIT_MAC_LEN))
        return false;
    if (total <= sizeof buf) {
        size_t at = 0;
        for (int i = 0; i < 9; i++) {
            memcpy(buf + at, text[i], len[i]);
            at += len[i];
            buf[at++] = '\n';
        }
        if (!EVP_MAC_update(ctx, (const unsigned char *)buf, at))
            return false;
    } else {
        for (int i = 0; i < 9; i++)
            if (!EVP_MAC_update(ctx, (const unsigned char *)text[i], len[i]) ||
                !EVP_MAC_update(ctx, (const unsigned char *)"\n", 1))
                return false;
    }
    return EVP_MAC_final(ctx, out, &out_len, AUDIT_MAC_LEN) && out_len == AUDIT_MAC_LEN;
}

enum audit_rc audit_mac(const uint8_t key[AUDIT_KEY_LEN], const uint8_t prev[AUDIT_MAC_LEN],
                        const struct audit_event *ev, uint8_t out[AUDIT_MAC_LEN])
{
    EVP_MAC_CTX *ctx = NULL;
    enum audit_rc rc = AUDIT_ERROR;

    if (event_problem(ev) != NULL)
        return AUDIT_BAD_EVENT;
    ctx = mac_ctx_new(key);
    if (ctx == NULL)
        goto done;
    if (!mac_with(ctx, prev, ev, out)) {
        log_error("audit: HMAC-SHA256 failed");
        goto done;
    }
    rc = AUDIT_OK;
done:
    EVP_MAC_CTX_free(ctx);
    return rc;
}

enum audit_rc audit_append(struct store *st, const uint8_t key[AUDIT_KEY_LEN],
                           struct audit_event *ev)
{
    int64_t last_seq = 0, last_at = 0, now = 0;
    uint8_t prev[AUDIT_MAC_LEN];
    const char *why;
    enum audit_rc rc;

    if (ev->details == NULL)
        ev->details = "{}";
    why = event_problem(ev);
    if (why != NULL) {
        log_error("audit: event %s not written: %s", ev->action != NULL ? ev->action : "?", why);
        return AUDIT_BAD_EVENT;
    }
    if (!store_in_transaction(st)) {
        log_error("audit: event %s must be appended inside the transaction it records", ev->action);
        return AUDIT_ERROR;
    }
    /* The lock is held until commit: the next append reads this event as the last. */
    if (store_audit_lock(st) != STORE_OK ||
        store_audit_last(st, &last_seq, prev, &last_at, &now) != STORE_OK)
        return AUDIT_ERROR;
    ev->seq = last_seq + 1;
    ev->at_us = now > last_at ? now : last_at; /* another host's clock may run ahead */
    rc = audit_mac(key, prev, ev, ev->mac);
    if (rc != AUDIT_OK)
        return rc;
    if (store_audit_insert(st, ev) != STORE_OK)
        return AUDIT_ERROR;
    return AUDIT_OK;
}

enum audit_rc audit_link(const uint8_t key[AUDIT_KEY_LEN], int64_t last_seq,
                         const uint8_t last_mac[AUDIT_MAC_LEN], int64_t last_at, int64_t now,
                         struct audit_event *const *evs, size_t n)
{
    uint8_t prev[AUDIT_MAC_LEN];

    for (size_t i = 0; i < n; i++) {
        if (evs[i]->details == NULL)
            evs[i]->details = "{}";
        const char *why = event_problem(evs[i]);
        if (why != NULL) {
            log_error("audit: event %s not written: %s",
                      evs[i]->action != NULL ? evs[i]->action : "?", why);
            return AUDIT_BAD_EVENT;
        }
    }
    EVP_MAC_CTX *ctx = n > 0 ? mac_ctx_new(key) : NULL;
    if (n > 0 && ctx == NULL)
        return AUDIT_ERROR;
    memcpy(prev, last_mac, AUDIT_MAC_LEN);
    for (size_t i = 0; i < n; i++) {
        evs[i]->seq = last_seq + 1 + (int64_t)i;
        evs[i]->at_us = now > last_at ? now : last_at;
        if (!mac_with(ctx, prev, evs[i], evs[i]->mac)) {
            log_error("audit: HMAC-SHA256 failed");
            EVP_MAC_CTX_free(ctx);
            return AUDIT_ERROR;
        }
        memcpy(prev, evs[i]->mac, AUDIT_MAC_LEN);
    }
    EVP_MAC_CTX_free(ctx);
    return AUDIT_OK;
}

enum audit_rc audit_append_many(struct store *st, const uint8_t key[AUDIT_KEY_LEN],
                                struct audit_event *const *evs, size_t n)
{
    int64_t last_seq = 0, last_at = 0, now = 0;
    uint8_t prev[AUDIT_MAC_LEN];

    if (n == 0)
        return AUDIT_OK;
    if (!store_in_transaction(st)) {
        log_error("audit: events must be appended inside the transaction they record");
        return AUDIT_ERROR;
    }
    if (store_audit_lock(st) != STORE_OK ||
        store_audit_last(st, &last_seq, prev, &last_at, &now) != STORE_OK)
        return AUDIT_ERROR;
    enum audit_rc rc = audit_link(key, last_seq, prev, last_at, now, evs, n);
    if (rc != AUDIT_OK)
        return rc;
    return store_audit_insert_many(st, evs, n) == STORE_OK ? AUDIT_OK : AUDIT_ERROR;
}

/* Checks one stored event against the chain so far; false with out->problem set when it does
 * not follow. */
static bool verify_one(EVP_MAC_CTX *ctx, const struct audit_event *ev,
                       struct audit_verify_result *out)
{
    int64_t expected = out->last_seq + 1;
    uint8_t mac[AUDIT_MAC_LEN];

    if (ev->seq > expected) {
        out->problem = AUDIT_CHAIN_GAP;
        out->bad_seq = expected;
        out->found_seq = ev->seq;
        return false;
    }
    if (ev->seq < expected || event_problem(ev) != NULL) {
        out->problem = AUDIT_CHAIN_MALFORMED;
        out->bad_seq = ev->seq;
        return false;
    }
    if (!mac_with(ctx, out->last_mac, ev, mac))
        return false; /* the caller tells a crypto failure apart by problem == OK */
    if (CRYPTO_memcmp(mac, ev->mac, AUDIT_MAC_LEN) != 0) {
        out->problem = AUDIT_CHAIN_MAC_MISMATCH;
        out->bad_seq = ev->seq;
        return false;
    }
    out->checked++;
    out->last_seq = ev->seq;
    memcpy(out->last_mac, ev->mac, AUDIT_MAC_LEN);
    return true;
}

enum audit_rc audit_verify_range(struct store *st, const uint8_t key[AUDIT_KEY_LEN],
                                 int64_t from_seq, const uint8_t from_mac[AUDIT_MAC_LEN],
                                 int64_t upto_seq, struct audit_verify_result *out)
{
    struct store_audit_filter f = {.limit = AUDIT_VERIFY_PAGE, .after_seq = from_seq};
    struct audit_event *page = NULL;
    EVP_MAC_CTX *ctx = NULL;
    enum audit_rc rc = AUDIT_ERROR;
    size_t n = 0;

    memset(out, 0, sizeof *out);
    out->last_seq = from_seq;
    memcpy(out->last_mac, from_mac, AUDIT_MAC_LEN);
    ctx = mac_ctx_new(key);
    if (ctx == NULL)
        goto done;
    for (;;) {
        if (upto_seq > 0 && f.after_seq >= upto_seq)
            break;
        if (upto_seq > 0 && upto_seq - f.after_seq < AUDIT_VERIFY_PAGE)
            f.limit = (size_t)(upto_seq - f.after_seq);
        if (store_audit_query(st, &f, &page, &n) != STORE_OK)
            goto done;
        if (n == 0)
            break;
        for (size_t i = 0; i < n; i++) {
            if (!verify_one(ctx, &page[i], out)) {
                if (out->problem == AUDIT_CHAIN_OK) {
                    log_error("audit: HMAC-SHA256 failed");
                    goto done;
                }
                rc = AUDIT_OK;
                goto done;
            }
        }
        f.after_seq = page[n - 1].seq;
        free(page);
        page = NULL;
    }
    out->ok = true;
    rc = AUDIT_OK;
done:
    free(page);
    EVP_MAC_CTX_free(ctx);
    return rc;
}

enum audit_rc audit_verify(struct store *st, const uint8_t key[AUDIT_KEY_LEN],
                           struct audit_verify_result *out)
{
    static const uint8_t zero[AUDIT_MAC_LEN];
    return audit_verify_range(st, key, 0, zero, 0, out);
}

size_t audit_checkpoint_message(int64_t seq, const uint8_t mac[AUDIT_MAC_LEN], int64_t at_us,
                                char out[AUDIT_CKPT_MSG_BUF])
{
    static const char hex[] = "0123456789abcdef";
    char mac_hex[2 * AUDIT_MAC_LEN + 1];
    for (size_t i = 0; i < AUDIT_MAC_LEN; i++) {
        mac_hex[2 * i] = hex[mac[i] >> 4];
        mac_hex[2 * i + 1] = hex[mac[i] & 15];
    }
    mac_hex[2 * AUDIT_MAC_LEN] = '\0';
    int n = snprintf(out, AUDIT_CKPT_MSG_BUF, "%s\n%" PRId64 "\n%s\n%" PRId64 "\n",
                     AUDIT_CKPT_LABEL, seq, mac_hex, at_us);
    return n > 0 && n < AUDIT_CKPT_MSG_BUF ? (size_t)n : 0;
}
