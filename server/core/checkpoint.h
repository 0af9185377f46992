/*
 * Audit checkpoints (server/README.md "Audit checkpoints"): every N events or T seconds the
 * chain's latest event (seq, mac) and the time are signed with the process-wide Ed25519
 * checkpoint key (sealed under the master key, made on first use), so that a copy kept outside
 * the database shows events cut off the end of the log, or a chain rewritten by someone who
 * holds the master key but not the checkpoint key's copy. Here: the key (read or made), the
 * writer's step, the list, the checks of a checkpoint against the chain, and the JSON form of
 * both that the API answers and `usersigd audit verify --checkpoint` reads.
 *
 * Threads: everything runs on the thread that owns svc's connection (a pool thread for the API
 * and the periodic writer, the main thread for the command line); nothing here keeps state.
 */
#ifndef CHECKPOINT_H
#define CHECKPOINT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "audit.h"
#include "errors.h"
#include "keyring.h"
#include "principal.h"
#include "service.h"
#include "store.h"

#define CKPT_WUR __attribute__((warn_unused_result))
#define CKPT_MSG_BUF 320
#define CKPT_JSON_MAX 4096 /* bytes of a checkpoint's JSON text that its readers take */

/* The key: read, or made (with its "audit.checkpoint_key.create" event, in one transaction of
 * its own) when there is none. svc's connection must be outside a transaction. API_OK with *out,
 * or UNAVAILABLE (the database, or a key that does not open: logged). */
enum api_error ckpt_key_get_or_create(struct service *svc, struct store_ckpt_key *out, char *msg,
                                      size_t cap) CKPT_WUR;

/* When a checkpoint is due: every_events events after the latest checkpoint, or every_seconds
 * after it (after started_us, the caller's start, when there is none yet) if any event came
 * since. 0 turns either off. */
struct ckpt_policy {
    int64_t every_events;
    int64_t every_seconds;
    int64_t started_us; /* Unix microseconds */
};

enum ckpt_step {
    CKPT_WRITTEN = 0, /* *out is the new checkpoint */
    CKPT_NOT_DUE,     /* nothing to do (or another process is writing one) */
    CKPT_REFUSED,     /* the chain does not follow from the latest checkpoint: nothing signed
                       * (msg says why; the caller logs it) */
    CKPT_FAILED,      /* the database or the key (logged) */
};

/* One step of the writer, in a transaction of its own (svc's connection outside any): under the
 * writers' lock (tried: another process's writer wins and this one does nothing), reads the
 * latest checkpoint and the chain's last event, and when one is due checks the events since the
 * latest checkpoint (their MACs from its mac on) and signs and stores (seq, mac, now). A chain
 * that ends before the latest checkpoint or does not follow from it is never signed. Never takes
 * the audit lock: signs go on meanwhile. */
enum ckpt_step ckpt_write_step(struct service *svc, const struct ckpt_policy *pol,
                               struct store_ckpt *out, char *msg, size_t cap) CKPT_WUR;

/* Checkpoints after after_seq in seq order, at most limit (1..1000); *more when another page
 * follows. Caller free()s *out. */
enum api_error ckpt_list(struct service *svc, int64_t after_seq, size_t limit,
                         struct store_ckpt **out, size_t *n, bool *more, char *msg,
                         size_t cap) CKPT_WUR;

/* What checking a checkpoint found, worst first where several apply. */
enum ckpt_problem {
    CKPT_OK = 0,
    CKPT_BAD_SIGNATURE, /* not signed by the key it is checked with (forged or altered) */
    CKPT_NO_KEY,        /* no key to check with: none given and none stored */
    CKPT_EVENT_MISSING, /* the log ends before its seq: events were cut off the end */
    CKPT_MAC_MISMATCH,  /* the event at its seq has another MAC: the chain was rewritten */
    CKPT_CHAIN_BROKEN,  /* the chain up to its seq does not verify (chain.bad_seq) */
};
const char *ckpt_problem_name(enum ckpt_problem p); /* "ok", "bad_signature", ... */

struct ckpt_check {
    enum ckpt_problem problem;
    bool signature_ok;
    struct audit_verify_result chain; /* the walk up to the checkpoint's seq */
};

/* Checks c against the log: its signature with pub (NULL: the stored key's), the chain from the
 * start up to c->seq (audit_verify_range), and that the event at c->seq exists with exactly
 * c->mac. API_OK with *out (a failed check is API_OK, problem set), or UNAVAILABLE. */
enum api_error ckpt_check(struct service *svc, const struct store_ckpt *c,
                          const uint8_t *pub /* KEYRING_CKPT_KEY_BYTES or NULL */,
                          struct ckpt_check *out, char *msg, size_t cap) CKPT_WUR;

/* The chain's status as GET /v1/audit/verify reports it: the whole chain walked, and the latest
 * checkpoint (*has_latest) checked against it with the stored key. */
enum api_error ckpt_status(struct service *svc, struct audit_verify_result *chain,
                           struct store_ckpt *latest, bool *has_latest, struct ckpt_check *check,
                           char *msg, size_t cap) CKPT_WUR;

/* ---- JSON ---------------------------------------------------------------------------------- */

/* The AuditCheckpoint of openapi.yaml: seq, mac (hex), at (RFC 3339), at_us, algorithm,
 * key_fingerprint (hex SHA-256 of the raw public key), signature (base64). A new json_t, or
 * NULL when out of memory. */
json_t *ckpt_json(const struct store_ckpt *c);
/* The AuditCheckpointKey: algorithm, public_key (base64 of the 32 bytes), public_key_pem,
 * fingerprint, created_at. NULL when out of memory. */
json_t *ckpt_key_json(const struct store_ckpt_key *k);
/* Reads what ckpt_json wrote (seq, mac, at_us and signature are what count; the rest is
 * ignored). 0, or -1 with msg saying which field is wrong. */
int ckpt_from_json(const json_t *o, struct store_ckpt *c, char *msg, size_t cap) CKPT_WUR;
/* The hex SHA-256 of a raw public key (65 bytes with the NUL). */
void ckpt_fingerprint(const uint8_t pub[KEYRING_CKPT_KEY_BYTES], char out[65]);

#endif
