/*
 * The fake batch shared by the pipeline's tests (pipeline_fixture.c): items in, lines out, on
 * one event loop (base) and one pool of 4 workers (pool) that fixture_begin() makes and
 * fixture_end() frees.
 */
#ifndef PIPELINE_FIXTURE_H
#define PIPELINE_FIXTURE_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>

#include "pipeline.h"
#include "usersig.h"

#define APP 1400000000u
#define SECRET "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
#define EXPIRE 86400u
#define MAX_EXPIRE 315360000u
#define DEADLINE_S 120

extern struct event_base *base;
extern struct pipeline *pool;

/* ---- a fake batch: items in, lines out --------------------------------------------------- */

struct fake {
    /* input */
    char **items;
    size_t n_items, next_item;
    /* output */
    char *out;
    size_t out_len, out_cap;
    /* the job and what it did */
    struct pipeline_job *job;
    struct pipeline_job_config cfg;
    bool done;
    struct pipeline_result res;
    /* flow control */
    long drain_delay_us; /* -1: never drain (a reader that stopped) */
    bool undrained;      /* emitted, drained not called yet */
    int drains_pending;  /* drain timers not fired yet: the fake must outlive them */
    size_t blocks_cut, blocks_emitted, max_out;
    bool cut_while_undrained;
    int fail_emit_at; /* emit returns -1 on this call (1-based); 0: never */
    size_t emits;
    bool refuse_odd; /* items 1, 3, 5 ... refused in place by the owner */
};

/* A fake of n items (the caller strdup()s them into f->items) with in and out as its formats. */
void fake_init(struct fake *f, enum pipeline_input in, enum pipeline_output out, size_t n);
/* Waits for its drain timers, then frees its items and output. */
void fake_free(struct fake *f);
/* The HMAC key of SECRET; the caller frees it (or a job it is given to does). */
struct usersig_key *new_key(void);
/* A timer callback that does nothing: it keeps the loop waiting for the workers' wake-ups. */
void keepalive_cb(evutil_socket_t fd, short what, void *arg);
/* Runs the loop until *flag or the deadline; a periodic timer keeps it waiting for the
 * workers' wake-ups. */
bool run_until(const bool *flag);
/* Makes f's job on pool with a new key and starts it. */
void start(struct fake *f);
void sha256_hex(const char *data, size_t len, char out[65]);
/* The output as lines (pointers into f->out, each NUL-terminated in place); the caller frees
 * the array. */
char **split_lines(struct fake *f, size_t *n);
/* True when token verifies under key for identifier id and APP, now. */
bool token_ok(struct usersig_key *key, const char *token, const char *id);
/* Waits for the pool to hold no job and no block (cancelled jobs freed once their blocks came
 * back from the workers). */
bool pool_settles(void);

/* Makes base and pool: 0, or 1 with the reason on stderr. */
int fixture_begin(void);
/* Checks that the pool settles, frees pool and base and returns test_done(name). */
int fixture_end(const char *name);

#endif
