/*
 * The signing pipeline of batch signing: a pool of worker threads, each signing whole blocks of
 * ~4096 items with a usersig_signer of its own, and per batch a job that cuts the input into
 * blocks, hands them to the workers, and emits the finished blocks strictly in input order,
 * hashed (SHA-256 over every output line, "\n" included), on the event-loop thread.
 *
 * Threading. The pool lives on one event_base (the server's); every pipeline_* function and
 * every callback runs on the thread of that loop. Workers touch only the blocks handed to them
 * and the job's read-only configuration, and hand finished blocks back through the pool's
 * mutex and event_active() on the job's event, so libevent must be thread-enabled
 * (evthread_use_pthreads() before event_base_new()).
 *
 * Priority. Workers run at a nice value PIPELINE_WORKER_NICE above the process's (Linux keeps
 * one per thread), so the event-loop thread, which answers every request and hashes and sends
 * the batches, never waits behind the signing for a core. A nice value does not reach other
 * processes, though: on a Linux with autogroup scheduling each PostgreSQL backend is a group of
 * its own, weighed against the whole usersigd process. So while single signs wait on the
 * database the server calls pipeline_reserve(1) (sign.c): one worker fewer signs at once and the
 * backend that commits them finds a core.
 *
 * Back-pressure. A job has at most max_in_flight blocks between being cut and being emitted
 * (queued, being signed, or done and waiting for their turn). The blocks whose turn has come
 * are emitted together, one emit each; after such a round nothing is cut or emitted until the
 * owner calls pipeline_job_drained() (its output has been written to the connection). So memory
 * stays within max_in_flight blocks plus one round of emitted output, however slow the reader:
 * a slow reader idles the workers instead. On the input side, fill may say the input has no
 * more yet (PIPELINE_FILL_WAIT, a body still arriving): the job then waits for
 * pipeline_job_input(), and the owner reads its input only as fast as fill takes it.
 *
 * Sharing. Several jobs share the workers through one queue, in the order blocks were cut; each
 * job has at most its share of 4 x workers blocks out (max_in_flight, or the pool's blocks
 * divided by the running jobs, at least 2), so one job cannot fill the queue ahead of another,
 * and memory depends on the pool, not on how many jobs run.
 *
 * Memory, in the owner's terms: up to max_in_flight x (PIPELINE_BLOCK_BYTES of input + the
 * block's output, ~300 bytes a token) plus the same again in the connection's buffer. With the
 * default 2 x workers and blocks of 1024 items, a 2-core server holds ~3 MB a job (text input),
 * for any size of batch.
 *
 * Ownership. The owner makes a job (pipeline_job_new) and starts it; from then on the pipeline
 * calls fill (on the owner's input) and emit (the owner's output) as it goes, and done exactly
 * once when the job completes or fails. A job ends for the owner with done, or with
 * pipeline_job_cancel; after either the handle must not be used again and no callback comes
 * any more. The pipeline itself keeps a cancelled or failed job until the workers have
 * returned its blocks (a block being signed cannot be taken back), then frees it: blocks, the
 * signing key (the job owns it: workers may still use it after the owner is gone), the event.
 * pipeline_free() waits for the workers and frees every job left.
 */
#ifndef PIPELINE_H
#define PIPELINE_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "usersig.h"

#define PIPELINE_WUR __attribute__((warn_unused_result))

#define PIPELINE_BLOCK_ITEMS 1024         /* items of a block */
#define PIPELINE_BLOCK_BYTES (256 * 1024) /* input bytes after which a block takes no more */
#define PIPELINE_ITEM_MAX 8192            /* bytes of an item kept; the rest is dropped */
#define PIPELINE_ECHO_MAX 256             /* bytes of an identifier repeated in an error line */
#define PIPELINE_CODE_MAX 32              /* bytes of an owner's error code */
#define PIPELINE_MAX_IN_FLIGHT 64         /* cap of max_in_flight */
#define PIPELINE_SHA256_HEX 65            /* 64 hex characters and a NUL */
#define PIPELINE_MAX_WORKERS 256
#define PIPELINE_WORKER_NICE 5 /* workers run this much nicer than the process (the loop) */

struct pipeline;       /* the pool: opaque */
struct pipeline_job;   /* one batch: opaque */
struct pipeline_items; /* the input half of a block, filled by the owner: opaque */

/* What an item is. */
enum pipeline_input {
    PIPELINE_IN_TEXT = 0,   /* one identifier (a line without its LF; a trailing CR is dropped) */
    PIPELINE_IN_NDJSON,     /* one JSON object {identifier, expire?, room_id?|room_str?,
                             * privilege_map?}, as the single-sign route takes */
    PIPELINE_IN_JSON_VALUE, /* one JSON value of an array (surrounding whitespace allowed): a
                             * string is an identifier, anything else an error line */
};

/* What a line of output is. NDJSON: {"identifier":"...","usersig":"..."} or
 * {"identifier":"...","error":{"code":"...","message":"..."}}. CSV (RFC 4180): identifier,usersig
 * or identifier,,code; an identifier is quoted when it holds a comma, quote, CR or LF or starts
 * with '#' (so that no row looks like the closing "#summary" line). Identifiers are repeated as
 * UTF-8 (a byte that is not is written as U+FFFD), at most PIPELINE_ECHO_MAX bytes of them. The
 * error codes are the admin API's: bad_identifier, bad_expire, bad_room, bad_privilege,
 * bad_json, invalid_field, unknown_field, missing_field, admin_identifier, identifier_prefix. */
enum pipeline_output { PIPELINE_OUT_NDJSON = 0, PIPELINE_OUT_CSV };

const char *pipeline_input_name(enum pipeline_input in);    /* "text", "ndjson", "json" */
const char *pipeline_output_name(enum pipeline_output out); /* "ndjson", "csv" */

/* ---- the pool ------------------------------------------------------------------------------ */

/* Starts workers threads (1..PIPELINE_MAX_WORKERS) whose results come back on base. Returns
 * NULL with err filled when a thread or an allocation fails. Caller pipeline_free()s it before
 * event_base_free(base). */
struct pipeline *pipeline_new(struct event_base *base, int workers, char *err,
                              size_t errlen) PIPELINE_WUR;

/* Ends every job still running (its done gets PIPELINE_CANCELLED), stops and joins the workers
 * (each finishes the block in its hands first), frees every job and the pool. Accepts NULL.
 * Call it on the loop's thread, the loop running or not. */
void pipeline_free(struct pipeline *p);

int pipeline_workers(const struct pipeline *p);

/* Leaves cores cores to the rest of the process and the machine: from now on at most
 * workers - cores workers (at least one) sign at once; a worker over the count pauses within
 * 64 tokens of its block, and goes on with it before any new block is taken. 0 lifts it. For the
 * online path: while single signs wait on the database, the database's backend and the event loop
 * find a core free instead of queueing behind the batches. */
void pipeline_reserve(struct pipeline *p, int cores);

struct pipeline_stats {
    int workers;
    uint64_t jobs;          /* jobs not freed yet, cancelled ones waiting for workers included */
    uint64_t blocks;        /* blocks allocated, all jobs */
    uint64_t blocks_queued; /* waiting for a worker */
    int signing;            /* workers signing a block now */
    int paused;             /* workers with a block in hand, paused by a reserve */
    int allowed;            /* how many may be (workers, less a pipeline_reserve) */
    int signing_peak;       /* the most that were at once since the last pipeline_reserve */
    int paused_peak;        /* the most paused at once since the last pipeline_reserve */
};
void pipeline_get_stats(struct pipeline *p, struct pipeline_stats *out);

/* ---- a job ----------------------------------------------------------------------------------- */

enum pipeline_state {
    PIPELINE_COMPLETE = 0, /* every item was emitted */
    PIPELINE_FAILED,       /* fill or emit failed, or signing failed where it should not */
    PIPELINE_CANCELLED,    /* pipeline_job_cancel, or pipeline_free */
};
const char *pipeline_state_name(enum pipeline_state s); /* "complete", "failed", "cancelled" */

/* What a job did: counts and digest of what was emitted (all of it when complete). */
struct pipeline_result {
    enum pipeline_state state;
    uint64_t count; /* items emitted */
    uint64_t signed_count;
    uint64_t failed_count;
    /* Of failed_count: lines refused for an administrator identifier the caller may not sign
     * for (admin_identifier), and for an identifier outside the caller's prefixes
     * (identifier_prefix); admin_refused_ids has bit i set when rules.admin_ids[i] was one. */
    uint64_t admin_refused, prefix_refused;
    uint32_t admin_refused_ids;
    uint64_t quota_refused; /* of failed_count: past cfg.max_items (batch_quota) */
    uint64_t owner_refused; /* of failed_count: refused by the owner (pipeline_items_refuse) */
    char sha256[PIPELINE_SHA256_HEX]; /* lowercase hex over the emitted lines */
    const char *why;                  /* FAILED: what went wrong (static text, for the log) */
};

enum pipeline_fill {
    PIPELINE_FILL_MORE = 0, /* the items are full; more input follows */
    PIPELINE_FILL_END,      /* the input ended (the items may hold its last ones, or none) */
    PIPELINE_FILL_ERROR,    /* the input cannot be read: the job fails */
    /* No more input yet (the items may hold some): fill is called again, on the same items,
     * after the owner calls pipeline_job_input(). The items are signed as they are when none
     * of the job's blocks is out, so that signing starts with the first lines received. */
    PIPELINE_FILL_WAIT,
};

#define PIPELINE_MAX_ADMIN_IDS 10 /* an app's administrator identifiers */
#define PIPELINE_MAX_PREFIXES 16  /* a caller's identifier prefixes */

/* Who may sign what, decided by the owner from the app and the caller (the core's rules,
 * server/core/sign.h sign_check_principal), applied to each line. Plain data: copied into the
 * job with its configuration. */
struct pipeline_rules {
    size_t n_admin_ids;
    char admin_ids[PIPELINE_MAX_ADMIN_IDS][USERSIG_MAX_IDENTIFIER + 1];
    bool admin_allowed;        /* the caller may sign for them ... */
    uint32_t admin_max_expire; /* ... for at most this long (a defaulted expire is lowered) */
    size_t n_prefixes;         /* 0: any identifier; else it must start with one of them */
    char prefixes[PIPELINE_MAX_PREFIXES][USERSIG_MAX_IDENTIFIER + 1];
};

/* Whether r lets the caller sign for identifier id (len bytes): not an administrator identifier
 * it may not sign for, and within its prefixes. The expiry rules are left out. */
bool pipeline_rules_permit(const struct pipeline_rules *r, const char *id, size_t len);

struct pipeline_job_config {
    uint32_t sdkappid;
    struct usersig_key *key; /* taken by pipeline_job_new, success or not */
    int level;               /* zlib level 0..9 */
    enum usersig_id_policy policy;
    uint32_t expire;     /* of items that give none, 1..max_expire */
    bool expire_given;   /* expire was asked for (not the app's default) */
    uint32_t max_expire; /* an NDJSON item's own expire must be 1..max_expire */
    enum pipeline_input input;
    enum pipeline_output output;
    size_t max_in_flight;        /* blocks; 0: 2 x workers; at most PIPELINE_MAX_IN_FLIGHT. While
                                  * several jobs run, each has at most its share of the pool's
                                  * 4 x workers (never below 2), so that memory stays bounded
                                  * by the pool, not by the number of jobs, and each job gets
                                  * its turn at the workers' queue */
    struct pipeline_rules rules; /* zeroed: no administrator identifiers, no prefixes */
    /* 0: no bound; else the items past the first max_items are refused in place (batch_quota:
     * the day's allowance under batch_tokens_per_day), counted in quota_refused. */
    uint64_t max_items;

    void *arg; /* passed to the callbacks */
    /* Adds items until pipeline_items_full() or the end of the input. Never an item half
     * added at return. */
    enum pipeline_fill (*fill)(void *arg, struct pipeline_items *items);
    /* Takes len (> 0) bytes of whole output lines, in order; the data is the pipeline's again
     * at return. 0, or -1 when it cannot be sent (the job fails). The owner calls
     * pipeline_job_drained() once it has been written out. */
    int (*emit)(void *arg, const char *data, size_t len);
    /* The job completed or failed (not called after pipeline_job_cancel). The handle is dead
     * once it is called. */
    void (*done)(void *arg, const struct pipeline_result *res);
};

enum pipeline_rc {
    PIPELINE_OK = 0,
    PIPELINE_BAD_CONFIG, /* sdkappid 0, level, expire, formats, callbacks */
    PIPELINE_BAD_KEY,    /* the key cannot sign (a public EC key) */
    PIPELINE_NO_MEMORY,
};

/* Makes a job, not started: nothing is called until pipeline_job_start(). On PIPELINE_OK *out is
 * the job; the owner starts it, or cancels it. cfg is copied; cfg->key is taken either way. */
enum pipeline_rc pipeline_job_new(struct pipeline *p, const struct pipeline_job_config *cfg,
                                  struct pipeline_job **out) PIPELINE_WUR;

/* Starts cutting, signing and emitting. The callbacks run from the event loop, never from
 * inside a pipeline_* call of the owner (pipeline_free excepted). */
void pipeline_job_start(struct pipeline_job *job);

/* The owner's output has been written: emitting and cutting go on. */
void pipeline_job_drained(struct pipeline_job *job);

/* More input has come (after a fill that returned PIPELINE_FILL_WAIT): cutting goes on. Any
 * time; nothing happens when the job does not wait for input. */
void pipeline_job_input(struct pipeline_job *job);

/* Jobs made and not ended for their owner (done not called yet, not cancelled). */
size_t pipeline_running(const struct pipeline *p);

/* Stops the job: no callback comes any more, nothing more is cut or emitted, blocks queued are
 * dropped and those being signed are dropped when they come back. res (may be NULL) receives
 * what was emitted until now, state PIPELINE_CANCELLED. Never call it from inside a callback. */
void pipeline_job_cancel(struct pipeline_job *job, struct pipeline_result *res);

/* ---- filling a block's items (from the fill callback) ------------------------------------- */

/* An item in pieces: begin, append (any number of times), end. Bytes past PIPELINE_ITEM_MAX
 * are dropped and the item is marked too long (an error line). 0, or -1 when out of memory. */
void pipeline_items_begin(struct pipeline_items *it);
int pipeline_items_append(struct pipeline_items *it, const char *data, size_t len) PIPELINE_WUR;
void pipeline_items_end(struct pipeline_items *it);
/* begin + append + end. */
int pipeline_items_add(struct pipeline_items *it, const char *data, size_t len) PIPELINE_WUR;
/* The item added last is refused in place: its line is the error line {"identifier", "error":
 * {code, message}} (CSV identifier,,code) instead of a token, counted in owner_refused. code is
 * an error code (a-z, 0-9, _; at most PIPELINE_CODE_MAX bytes kept), msg a message for a person
 * (at most 319 bytes kept); both are copied. 0, or -1 when no item was added, one is open, the
 * code is empty or has another byte, or out of memory. */
int pipeline_items_refuse(struct pipeline_items *it, const char *code,
                          const char *msg) PIPELINE_WUR;
/* The block takes no more items (PIPELINE_BLOCK_ITEMS, or PIPELINE_BLOCK_BYTES of input). */
bool pipeline_items_full(const struct pipeline_items *it);
size_t pipeline_items_count(const struct pipeline_items *it);

#endif
