/*
 * The audit log: one event per state change, refusal of one, and signature issued, written in
 * the same transaction as the change, chained with HMAC-SHA256 (server/README.md "Audit chain"):
 *   mac[n] = HMAC-SHA256(audit key, mac[n-1] || canonical(event n)), mac[0] = 32 zero bytes,
 *   canonical = seq, at (Unix microseconds), actor_id or "", actor_name, action, sdkappid or "",
 *               key_version or "", outcome, details: each as text followed by "\n".
 */
#ifndef AUDIT_H
#define AUDIT_H

#include "store.h"

#include <stdbool.h>
#include <stdint.h>

#define AUDIT_WUR __attribute__((warn_unused_result))

#define AUDIT_KEY_LEN 32
#define AUDIT_MAC_LEN 32
#define AUDIT_TEXT_MAX 256     /* bytes of actor_name, action, outcome */
#define AUDIT_DETAILS_MAX 8192 /* bytes of details */

struct audit_event {
    int64_t seq;            /* 1, 2, 3 ...: set by audit_append */
    int64_t at_us;          /* Unix microseconds: set by audit_append */
    int64_t actor_id;       /* the API token's id; 0 = none (the command line, the server) */
    const char *actor_name; /* the token's name, or "" / "cli" ...; never NULL */
    const char *action;     /* "app.create", "key.rotate", "usersig.sign" ...; 1..256 bytes */
    uint32_t sdkappid;      /* 0 = none */
    uint32_t key_version;   /* 0 = none */
    const char *outcome;    /* "ok", or what refused it ("key_used_by_other_app"); 1..256 bytes */
    const char *details;    /* compact JSON text, stored and MACed verbatim; NULL = "{}". Never
                             * a secret. */
    uint8_t mac[AUDIT_MAC_LEN]; /* set by audit_append */
};

enum audit_rc {
    AUDIT_OK = 0,
    AUDIT_BAD_EVENT, /* a field missing, too long, or holding a newline (nothing written) */
    AUDIT_ERROR,     /* the store or OpenSSL failed (logged); roll the transaction back */
};

/* Appends ev inside the caller's open transaction (the one making the change it records): takes
 * the audit advisory lock (held until commit, so two processes keep one chain), reads the last
 * event, and sets ev->seq = last + 1, ev->at_us = the database's clock now (never before the
 * last event's time) and ev->mac, then inserts it. With no transaction open: AUDIT_ERROR. */
enum audit_rc audit_append(struct store *st, const uint8_t key[AUDIT_KEY_LEN],
                           struct audit_event *ev) AUDIT_WUR;
/* audit_append for n events at once (group commit): one lock, one read of the last event, the
 * n chained in order (seq last+1 .. last+n, one time), inserted in one round trip. Nothing is
 * written unless every event is valid. */
enum audit_rc audit_append_many(struct store *st, const uint8_t key[AUDIT_KEY_LEN],
                                struct audit_event *const *evs, size_t n);

/* Links n events after the chain's last (last_seq, last_mac; 0 and zeros for an empty log):
 * checks each, sets seq, at (now, never before last_at) and mac. For a caller that holds the
 * audit lock and has read the last event itself (store_group_begin); audit_append_many is this
 * plus the lock, the read and the insert. */
enum audit_rc audit_link(const uint8_t key[AUDIT_KEY_LEN], int64_t last_seq,
                         const uint8_t last_mac[AUDIT_MAC_LEN], int64_t last_at, int64_t now,
                         struct audit_event *const *evs, size_t n) AUDIT_WUR;

/* The MAC of one event given the previous one's: what audit_append stores and audit_verify
 * recomputes. */
enum audit_rc audit_mac(const uint8_t key[AUDIT_KEY_LEN], const uint8_t prev[AUDIT_MAC_LEN],
                        const struct audit_event *ev, uint8_t out[AUDIT_MAC_LEN]) AUDIT_WUR;

enum audit_problem {
    AUDIT_CHAIN_OK = 0,
    AUDIT_CHAIN_MAC_MISMATCH, /* the event was altered, or inserted, or its predecessor was */
    AUDIT_CHAIN_GAP,          /* an event is missing: bad_seq is the first missing seq */
    AUDIT_CHAIN_MALFORMED,    /* a stored event no append could have written (a newline ...) */
};
const char *audit_problem_name(enum audit_problem p); /* "ok", "mac_mismatch", "gap", ... */

struct audit_verify_result {
    bool ok;
    int64_t checked;  /* events that followed the chain (all of them when ok) */
    int64_t last_seq; /* the last event that followed (0 for an empty log) */
    uint8_t last_mac[AUDIT_MAC_LEN];
    enum audit_problem problem;
    int64_t bad_seq;   /* the first event that does not follow (0 when ok) */
    int64_t found_seq; /* for a gap: the seq found where bad_seq was expected */
};

/* Walks the whole log in seq order, a page at a time (memory stays bounded), checking that seqs
 * run 1, 2, 3 ... and that each MAC follows; stops at the first event that does not. Returns
 * AUDIT_OK when the walk completed (the verdict is in *out) and AUDIT_ERROR when the store failed.
 * Events removed from the end of the log leave a shorter valid chain: compare last_seq/last_mac
 * with a copy kept elsewhere to catch that. */
enum audit_rc audit_verify(struct store *st, const uint8_t key[AUDIT_KEY_LEN],
                           struct audit_verify_result *out) AUDIT_WUR;
/* audit_verify from a known point to another: the events after from_seq (whose MAC is
 * from_mac; 0 and zeros: the start of the log) up to upto_seq included (0: the end of the log).
 * out->last_seq starts at from_seq, so a log that ends before upto_seq is ok with a smaller
 * last_seq: the caller compares. What a checkpoint is checked with (the chain up to its seq) and
 * what the checkpoint writer checks since the last checkpoint before it signs a new one. */
enum audit_rc audit_verify_range(struct store *st, const uint8_t key[AUDIT_KEY_LEN],
                                 int64_t from_seq, const uint8_t from_mac[AUDIT_MAC_LEN],
                                 int64_t upto_seq, struct audit_verify_result *out) AUDIT_WUR;

/* A checkpoint (server/README.md "Audit checkpoints"): the chain's event seq, its mac and the
 * checkpoint's time, signed with the checkpoint key (keyring_ckpt_sign). The signed text is
 *   "usersigd audit checkpoint v1\n" seq "\n" hex(mac) "\n" at_us "\n"
 * (decimal numbers, lower-case hex). Writes it into out and returns its length. */
#define AUDIT_CKPT_LABEL "usersigd audit checkpoint v1"
#define AUDIT_CKPT_MSG_BUF 160
size_t audit_checkpoint_message(int64_t seq, const uint8_t mac[AUDIT_MAC_LEN], int64_t at_us,
                                char out[AUDIT_CKPT_MSG_BUF]);

#endif
