/*
 * Internals of `usersig batch` and `usersig import` (the same client pointed at the accounts
 * endpoints), shared by their files and included by nothing else. The layers,
 * each calling only those below it: usersig_batch_main.c (options, the token and the exit
 * status) -> usersig_batch.c (stdin and the requests) -> usersig_batch_out.c (a request's
 * answer, bytes in: its lines checked and written to stdout, or the refusal) ->
 * usersig_batch_tty.c (messages and progress on stderr). The transport, which usersig_batch.c
 * drives, is usersig_http.h (libcurl).
 */
#ifndef USERSIG_BATCH_INT_H
#define USERSIG_BATCH_INT_H

#include <openssl/evp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "usersig_http.h"

#define IN_BUF 65536 /* the stdin buffer: also the longest input line */
#define MAX_ANSWER_LINE 65536
#define MAX_ERROR_BODY 65536 /* the most of a refusal's body kept (in struct batch.line) */
#define MAX_GAPS 4096        /* runs of skipped blank lines remembered per request */
#define SHOW_FAILED 20

/* What a run sends stdin to. The zero value is `usersig batch` (a test may calloc a batch). */
enum usersig_job {
    USERSIG_JOB_BATCH = 0, /* POST /v1/apps/N/usersigs/batch: usersig lines, signed/failed */
    USERSIG_JOB_IMPORT,    /* POST /v1/apps/N/accounts/import: status imported/failed */
    USERSIG_JOB_CHECK,     /* POST /v1/apps/N/accounts/check: imported/not_imported/failed */
};

struct gap { /* `skipped` blank input lines come right before the request's item `index` */
    uint64_t index, skipped;
};

struct request { /* the identifiers of one request body, as sent */
    char *body;
    size_t len;
    uint64_t items, first_line; /* how many; the input line number of the first */
    uint64_t in_start, in_end;  /* the stdin byte range they came from (for the ETA) */
    uint64_t pending_skip;      /* blank lines read since the last item */
    size_t ngaps;
    struct gap gaps[MAX_GAPS];
};

/* A streamed request's identifiers sent and not yet answered, oldest first, each entry its input
 * line number and the input offset after it (8 bytes each, host order), then the identifier and
 * '\n'. The sending pauses while it holds more than PENDING_MAX bytes. */
struct pending {
    char *buf;
    size_t head, tail, cap;
    size_t replay; /* a request sent again (after a 429): the next entry to resend */
};
#define PENDING_HDR 16

struct reader {
    char buf[IN_BUF];
    size_t pos, end;
    int eof;
    uint64_t offset; /* bytes consumed as lines */
};

struct summary {
    int seen;
    uint64_t count, signed_n, failed; /* signed_n: signed (batch), imported (import, check) */
    uint64_t not_imported, calls;     /* import and check */
    char batch_id[72], key_version[24], sha256[72]; /* batch_id: the job_id of an import */
    char state[24];                                 /* import and check: "complete" */
};

struct span {   /* one HTTP request: a part of the request body (or the stream) and its answer */
    int stream; /* streamed: the identifiers answered are b->pend's, nitems grows as sent */
    size_t off, len;
    uint64_t first_index, nitems;
    uint64_t received, ok, failed;
    uint64_t not_imported; /* check: lines answered not_imported (ok counts the imported) */
    size_t next_id;        /* body offset of the identifier the next answer line is for */
    size_t gap_cursor;
    uint64_t skipped;
    EVP_MD_CTX *sha;
    struct summary sum;
    int stream_error;
    char err_code[64], err_msg[256];
};

struct batch {
    struct usersig_http_url url;
    const char *ca_file; /* --ca-file, or NULL: the system's store */
    enum usersig_job job;
    uint64_t sdkappid, expire, level, max_request, limit;
    int has_expire, has_level, csv, tty;
    int ndjson;    /* import, check: stdin is NDJSON ({"identifier",...} a line), not UserIDs */
    int streaming; /* one streamed request (no --max-request-bytes) */
    char *token;
    size_t token_len;
    struct reader in;
    struct usersig_http_conn *http;
    struct request req;   /* --max-request-bytes: the request being filled */
    struct pending pend;  /* streamed: sent, not yet answered */
    uint64_t lineno;      /* streamed: input lines read */
    uint64_t sent_items;  /* streamed: identifiers sent */
    uint64_t answered_in; /* streamed: the input offset after the last line answered */
    int in_done, wait_input, wait_answers; /* streamed: the sending's state */
    struct span *cur;                      /* the request under way */
    struct usersig_http_answer answer;     /* its head, once read */
    char line[MAX_ANSWER_LINE]; /* an answer line split across reads; or a refusal's body */
    size_t line_len;
    char hdr[8192]; /* the Authorization header, wiped after each request */
    uint64_t done, signed_n, failed, last_line; /* signed_n: signed, or imported */
    int untrusted; /* a summary did not match what was received: no resume from stdout */
    uint64_t not_imported;
    uint64_t failed_lines[SHOW_FAILED];
    char failed_codes[SHOW_FAILED][40];
    char refusal[512];   /* the last refusal: "HTTP 413: code: message (request id ...)" */
    uint64_t input_size; /* stdin bytes when it is a regular file, else 0 */
    int64_t t0, last_draw;
    int progress_shown;
};

/* ---- usersig_batch.c ---- */

/* Sends stdin to the server (b's options set, its token loaded; b->http unset): one streamed
 * request, or requests of at most b->max_request bytes, their answers checked and written to
 * stdout. b->http is left for the caller to usersig_http_free(). Returns 0, or -1 (said). */
int usersig_batch_run(struct batch *b);

/* ---- usersig_batch_tty.c ---- */

/* "batch", "import" or "check": the job's name in messages. */
const char *usersig_batch_job_name(const struct batch *b);
/* CLOCK_MONOTONIC in nanoseconds. */
int64_t usersig_batch_now_ns(void);
/* As usersig_batch_say, with a va_list; arg is the struct batch (usersig_http_hooks.vsay). */
void usersig_batch_vsay(void *arg, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* "usersig: " and the message on stderr, the progress line cleared first. */
void usersig_batch_say(struct batch *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* When stderr is a terminal: the progress line (done, failed, rate, ETA), redrawn at most every
 * 250 ms unless force; body_off is how far the current request's answer has come. */
void usersig_batch_progress(struct batch *b, size_t body_off, int force);
void usersig_batch_progress_clear(struct batch *b);

/* ---- usersig_batch_out.c: the answer to one request (s), its head read; bytes in ---- */

/* The next n bytes of a 200 answer's body, as they came (any split): each whole line checked
 * and written to stdout, a cut one kept in b->line (b->line_len = 0 before the first call).
 * Returns 0, or -1 on an error (said). */
int usersig_batch_feed(struct batch *b, struct span *s, const char *p, size_t n);
/* The end of a 200 answer: its last line if unterminated, then the summary checked and
 * reported. Returns 0, or -1 on an error (said). */
int usersig_batch_stream_end(struct batch *b, struct span *s);
/* Any other status: its error body (at most MAX_ERROR_BODY bytes of it are read) into
 * b->refusal. Returns 1 for 413 (the caller splits the request, or says what to do), 2 for 429
 * (the caller waits a.retry_after and tries again), else -1 (said). */
int usersig_batch_refused(struct batch *b, const struct usersig_http_answer *a, const char *body,
                          size_t len);

#endif
