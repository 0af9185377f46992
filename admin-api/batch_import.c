/*
 * A batch's ?import=1 (batch_import.h): the body's lines held in chunks of 100, their accounts
 * imported through acct_calls.h, and the lines handed to the pipeline in input order once their
 * chunk's import has ended, a failed import refused in place.
 */
#include "batch_import.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acct_calls.h"
#include "usersig.h"

#define IN_FLIGHT 4 /* calls of one batch at once */

/* What becomes of a line. */
enum line_kind {
    LINE_THROUGH = -1,    /* not sent: the pipeline refuses it anyway */
    LINE_UNSENDABLE = -2, /* signable, yet not a UserID Tencent takes: refused here */
    /* 0..99: the index of its account in the chunk's acct_chunk */
};

struct line_chunk {
    struct acct_chunk *c; /* its accounts; NULL when no line of it goes to Tencent */
    char *buf;            /* the lines' bytes, one after the other */
    size_t len, cap;
    uint32_t off[ACCT_CHUNK_MAX], n[ACCT_CHUNK_MAX];
    int kind[ACCT_CHUNK_MAX]; /* enum line_kind, or the account's index */
    int lines, emitted;
    struct line_chunk *next;
};

struct batch_import {
    struct batch_import_config cfg;
    struct acct_run run;
    struct line_chunk *head, *tail, *filling;
    int n_chunks;    /* in the list; filling apart */
    bool skip_line;  /* the rest of a line over PIPELINE_ITEM_MAX is dropped up to its LF */
    bool input_done; /* every line of the body has been read */
    bool in_fill, stopped;
    struct batch_import_counts counts;
    char idbuf[PIPELINE_ITEM_MAX]; /* a line's identifier, decoded */
};

static void chunk_free(struct line_chunk *lc)
{
    if (lc == NULL)
        return;
    if (lc->c != NULL)
        acct_chunk_free(lc->c);
    free(lc->buf);
    free(lc);
}

static bool chunk_done(const struct line_chunk *lc)
{
    return lc->c == NULL || lc->c->done;
}

static void on_progress(void *arg)
{
    struct batch_import *bi = arg;
    if (!bi->in_fill && !bi->stopped)
        bi->cfg.ready(bi->cfg.arg);
}

struct batch_import *batch_import_new(const struct batch_import_config *cfg)
{
    struct batch_import *bi = calloc(1, sizeof *bi);
    if (bi == NULL) {
        cache_app_release(cfg->app);
        return NULL;
    }
    bi->cfg = *cfg;
    bi->run.svc = cfg->svc;
    bi->run.app = cfg->app;
    bi->run.progress = on_progress;
    bi->run.arg = bi;
    return bi;
}

/* ---- reading lines --------------------------------------------------------------------------- */

/* The identifier of a line (s, n bytes) as the pipeline would read it, or false when it has
 * none (the pipeline refuses the line). idbuf: PIPELINE_ITEM_MAX bytes. */
static bool line_identifier(const struct batch_import *bi, const char *s, size_t n, char *idbuf,
                            size_t *len)
{
    if (bi->cfg.input == PIPELINE_IN_TEXT) {
        if (n > 0 && s[n - 1] == '\r')
            n--;
        if (n > PIPELINE_ITEM_MAX)
            return false;
        if (n > 0)
            memcpy(idbuf, s, n);
        *len = n;
        return true;
    }
    json_error_t e;
    json_t *o = n > 0 ? json_loadb(s, n, JSON_REJECT_DUPLICATES, &e) : NULL;
    json_t *id = json_object_get(o, "identifier");
    bool ok = json_is_string(id) && json_string_length(id) <= PIPELINE_ITEM_MAX;
    if (ok) {
        *len = json_string_length(id);
        memcpy(idbuf, json_string_value(id), *len);
    }
    json_decref(o);
    return ok;
}

/* What becomes of a line: through as it is, refused here, or an account of lc's chunk. 0, or
 * -1 when out of memory. */
static int classify(struct batch_import *bi, struct line_chunk *lc, int k, const char *s, size_t n)
{
    char *idbuf = bi->idbuf;
    size_t len = 0;
    lc->kind[k] = LINE_THROUGH;
    if (n > PIPELINE_ITEM_MAX || !line_identifier(bi, s, n, idbuf, &len) ||
        usersig_identifier_check(idbuf, len, bi->cfg.policy) != USERSIG_OK ||
        !pipeline_rules_permit(&bi->cfg.rules, idbuf, len))
        return 0;
    if (lc->c == NULL && (lc->c = acct_chunk_new(&bi->run)) == NULL)
        return -1;
    struct acct *a = &lc->c->a[lc->c->n];
    memset(a, 0, sizeof *a);
    acct_set_id(a, idbuf, len);
    if (!a->sendable) {
        lc->kind[k] = LINE_UNSENDABLE;
        return 0;
    }
    lc->kind[k] = lc->c->n++;
    return 0;
}

/* One line (its first PIPELINE_ITEM_MAX + 1 bytes at most: more is too long anyway) into the
 * chunk being filled. 0, or -1 when out of memory. */
static int take_line(struct batch_import *bi, const char *s, size_t n)
{
    if (n > PIPELINE_ITEM_MAX + 1)
        n = PIPELINE_ITEM_MAX + 1;
    if (bi->filling == NULL && (bi->filling = calloc(1, sizeof *bi->filling)) == NULL)
        return -1;
    struct line_chunk *lc = bi->filling;
    if (lc->len + n > lc->cap) {
        size_t cap = lc->cap ? lc->cap : 4096;
        while (cap < lc->len + n)
            cap *= 2;
        char *b = realloc(lc->buf, cap);
        if (b == NULL)
            return -1;
        lc->buf = b;
        lc->cap = cap;
    }
    int k = lc->lines;
    if (n > 0)
        memcpy(lc->buf + lc->len, s, n);
    lc->off[k] = (uint32_t)lc->len;
    lc->n[k] = (uint32_t)n;
    lc->len += n;
    lc->lines++;
    return classify(bi, lc, k, s, n);
}

static void enqueue(struct batch_import *bi)
{
    struct line_chunk *lc = bi->filling;
    bi->filling = NULL;
    if (lc == NULL)
        return;
    if (lc->lines == 0) {
        chunk_free(lc);
        return;
    }
    if (bi->tail != NULL)
        bi->tail->next = lc;
    else
        bi->head = lc;
    bi->tail = lc;
    bi->n_chunks++;
}

/* Whole lines of in into chunks while fewer than BATCH_IMPORT_CHUNKS are held. 0, or -1 when
 * out of memory. */
static int read_lines(struct batch_import *bi, struct evbuffer *in, enum batch_import_input state)
{
    while (bi->n_chunks < BATCH_IMPORT_CHUNKS && !bi->input_done) {
        size_t have = evbuffer_get_length(in);
        struct evbuffer_ptr lf = evbuffer_search(in, "\n", 1, NULL);
        if (bi->skip_line) {
            evbuffer_drain(in, lf.pos >= 0 ? (size_t)lf.pos + 1 : have);
            bi->skip_line = lf.pos < 0;
            if (bi->skip_line)
                break;
            continue;
        }
        size_t len, drain;
        if (lf.pos >= 0) {
            len = (size_t)lf.pos;
            drain = len + 1;
        } else if (state == BATCH_IMPORT_END && have > 0) {
            len = drain = have;
        } else if (state == BATCH_IMPORT_OPEN && have > PIPELINE_ITEM_MAX) {
            len = drain = have; /* a line longer than any item: its start is its item */
            bi->skip_line = true;
        } else {
            if (state != BATCH_IMPORT_OPEN) {
                evbuffer_drain(in, have); /* CUT: a partial last line */
                bi->input_done = true;
            }
            break;
        }
        size_t look = len < PIPELINE_ITEM_MAX + 1 ? len : PIPELINE_ITEM_MAX + 1;
        unsigned char *p = evbuffer_pullup(in, (ssize_t)look);
        if ((p == NULL && look > 0) || take_line(bi, (const char *)p, look) != 0)
            return -1;
        evbuffer_drain(in, drain);
        if (bi->filling->lines == ACCT_CHUNK_MAX)
            enqueue(bi);
    }
    /* What came goes now, not when 100 lines are here, once no call is under way (a call's end
     * comes back here): a slow client is not kept waiting, nor does a trickle of lines become a
     * call a line. */
    if (bi->filling != NULL &&
        (bi->input_done ||
         (evbuffer_search(in, "\n", 1, NULL).pos < 0 && bi->run.in_flight == 0)) &&
        bi->n_chunks < BATCH_IMPORT_CHUNKS)
        enqueue(bi);
    return 0;
}

/* ---- the calls, the lines out ---------------------------------------------------------------- */

static void dispatch_some(struct batch_import *bi)
{
    for (struct line_chunk *lc = bi->head; lc != NULL && bi->run.in_flight < IN_FLIGHT;
         lc = lc->next)
        if (lc->c != NULL && acct_chunk_unsent(lc->c))
            acct_dispatch(lc->c);
}

/* The refusal of a line whose account was not imported. */
static int refuse(struct pipeline_items *it, const struct acct *a)
{
    char msg[320];
    if (a == NULL)
        snprintf(msg, sizeof msg,
                 "not imported: Tencent takes a UserID of 1 to 32 bytes of UTF-8 without "
                 "control characters; no UserSig was issued");
    else if (a->tencent_code != 0)
        snprintf(msg, sizeof msg,
                 "not imported (%s, Tencent error %lld): %s; no UserSig was issued", a->code,
                 a->tencent_code, a->msg);
    else
        snprintf(msg, sizeof msg, "not imported (%s): %s; no UserSig was issued", a->code, a->msg);
    return pipeline_items_refuse(it, "import_failed", msg);
}

/* The lines of the chunks whose imports have ended, from the head, into it: MORE when it is
 * full, END when no more is ready, ERROR when out of memory. */
static enum pipeline_fill emit_done(struct batch_import *bi, struct pipeline_items *it)
{
    while (bi->head != NULL && chunk_done(bi->head)) {
        struct line_chunk *lc = bi->head;
        while (lc->emitted < lc->lines) {
            if (pipeline_items_full(it))
                return PIPELINE_FILL_MORE;
            int k = lc->emitted;
            if (pipeline_items_add(it, lc->buf + lc->off[k], lc->n[k]) != 0)
                return PIPELINE_FILL_ERROR;
            lc->emitted++;
            int kind = lc->kind[k];
            const struct acct *a = kind >= 0 ? &lc->c->a[kind] : NULL;
            if (kind >= 0 && a->state == ACCT_IMPORTED)
                bi->counts.imported++;
            else if ((kind >= 0 || kind == LINE_UNSENDABLE) && refuse(it, a) != 0)
                return PIPELINE_FILL_ERROR;
        }
        bi->head = lc->next;
        if (bi->head == NULL)
            bi->tail = NULL;
        bi->n_chunks--;
        chunk_free(lc);
    }
    return PIPELINE_FILL_END;
}

enum pipeline_fill batch_import_fill(struct batch_import *bi, struct evbuffer *in,
                                     enum batch_import_input state, struct pipeline_items *it,
                                     bool *taken)
{
    size_t before = evbuffer_get_length(in);
    enum pipeline_fill rc;

    bi->in_fill = true;
    for (;;) {
        rc = emit_done(bi, it);
        if (rc != PIPELINE_FILL_END)
            break;
        if (bi->stopped || read_lines(bi, in, state) != 0) {
            rc = PIPELINE_FILL_ERROR;
            break;
        }
        dispatch_some(bi);
        if (bi->input_done && bi->head == NULL && bi->filling == NULL) {
            rc = PIPELINE_FILL_END;
            break;
        }
        if (bi->head == NULL || !chunk_done(bi->head)) {
            rc = PIPELINE_FILL_WAIT;
            break;
        }
    }
    bi->in_fill = false;
    *taken = evbuffer_get_length(in) < before;
    return rc;
}

void batch_import_stop(struct batch_import *bi)
{
    if (bi == NULL || bi->stopped)
        return;
    bi->stopped = true;
    bi->run.gone = true;
    for (struct line_chunk *lc = bi->head; lc != NULL; lc = lc->next)
        if (lc->c != NULL)
            acct_chunk_drop(lc->c);
}

void batch_import_counts(const struct batch_import *bi, struct batch_import_counts *out)
{
    *out = bi->counts;
    out->calls = bi->run.calls;
}

void batch_import_free(struct batch_import *bi)
{
    if (bi == NULL)
        return;
    batch_import_stop(bi);
    while (bi->head != NULL) {
        struct line_chunk *lc = bi->head;
        bi->head = lc->next;
        chunk_free(lc);
    }
    chunk_free(bi->filling);
    cache_app_release(bi->cfg.app);
    free(bi);
}
