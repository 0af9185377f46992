/*
 * usersig batch: the client for bulk-signing jobs. Reads identifiers from stdin and sends them to
 * a usersigd server's batch endpoint in one text/plain request streamed as it is read (chunked:
 * the input is never held whole, the upload waits for the answers when the server is slower), or,
 * with --max-request-bytes, in requests of bounded size one after the other (never splitting a
 * line); the answer lines go to stdout in input order as they come. Each request's summary is
 * checked here (counts, and the SHA-256 over the lines received) before it is reported on stderr.
 * usersig import is the same streamed request and checks at the accounts endpoints (b->job).
 * HTTP/1.1 or HTTPS (certificates always verified) through libcurl.
 * This file: stdin and the requests, run by usersig_batch_main.c (options, the token, the exit
 * status). It calls usersig_batch_out.c (the checking of each answer, fed the bytes as they
 * arrive), usersig_batch_tty.c (messages and the progress line on stderr) and usersig_http.c
 * (the transport); none of them calls back here.
 */
#include "usersig_args.h"
#include "usersig_batch_int.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define N_HEADERS 5
/* Streamed, sent and not answered: the upload pauses above PENDING_MAX and goes on below
 * PENDING_LOW. 4 MiB is some 130,000 short identifiers ahead of the answers: far more than a
 * server keeps in flight (usersigd: 256 KiB of body and its workers' blocks), so it never waits
 * for the client, while a server that reads ahead without answering cannot make it grow. */
#define PENDING_MAX ((size_t)4 << 20)
#define PENDING_LOW ((size_t)2 << 20)
#define PENDING_START ((size_t)1 << 20)
#define BUSY_DEFAULT_S 5 /* a 429 without Retry-After: wait this long */
#define BUSY_MAX_S 60    /* the longest single wait a Retry-After gets */
#define BUSY_TOTAL_S 600 /* the most time spent waiting for a turn (429) in one run */

/* Before each wait for the server (usersig_http_hooks.waiting): the lines so far leave
 * (stdout is flushed when more came), and the progress line is redrawn. */
static int waiting(void *arg, int fresh)
{
    struct batch *b = arg;
    if (usersig_interrupted())
        return -1; /* the caller says so, and where to resume */
    if (fresh && fflush(stdout) != 0) {
        usersig_batch_say(b, "writing stdout: %s", strerror(errno));
        return -1;
    }
    usersig_batch_progress(b, b->cur != NULL ? b->cur->next_id : 0, 0);
    return 0;
}

/* The answer's head (usersig_http_hooks.head): a 200 streams, any other status is a refusal
 * whose body is kept (bounded) in b->line. */
static int on_head(void *arg, const struct usersig_http_answer *a)
{
    struct batch *b = arg;
    b->answer = *a;
    b->line_len = 0;
    return 0;
}

/* Body bytes (usersig_http_hooks.body): a 200's to the line checker, a refusal's kept. */
static int on_body(void *arg, const char *p, size_t n)
{
    struct batch *b = arg;
    if (b->answer.status == 200) {
        int rc = usersig_batch_feed(b, b->cur, p, n);
        /* A batch the server stopped ends with that line: what else is on the way (the upload)
         * no longer matters. */
        return rc == 0 && b->cur->stream && b->cur->stream_error ? 1 : rc;
    }
    size_t room = MAX_ERROR_BODY - b->line_len;
    if (n > room)
        n = room;
    memcpy(b->line + b->line_len, p, n);
    b->line_len += n;
    return b->line_len == MAX_ERROR_BODY ? 1 : 0;
}

/* ---- stdin --------------------------------------------------------------------------------- */

/* Whether stdin can be read without waiting (data, its end, or an error to report). */
static int input_ready(void)
{
    struct pollfd pf = {.fd = STDIN_FILENO, .events = POLLIN};
    int k;
    while ((k = poll(&pf, 1, 0)) < 0 && errno == EINTR)
        ;
    return k != 0;
}

/* The next line, without its newline, in *p (valid until the next call). Returns 1, 0 at the end
 * of the input, -1 on a read error (errno), -2 for a line longer than the buffer, -3 when nb and
 * the rest of the line has not come yet (stdin would block). */
static int reader_line(struct reader *r, const char **p, size_t *n, int nb)
{
    for (;;) {
        char *nl = r->end > r->pos ? memchr(r->buf + r->pos, '\n', r->end - r->pos) : NULL;
        if (nl != NULL || (r->eof && r->end > r->pos)) {
            *p = r->buf + r->pos;
            *n = nl != NULL ? (size_t)(nl - *p) : r->end - r->pos;
            r->pos += *n + (nl != NULL);
            r->offset += *n + (nl != NULL);
            return 1;
        }
        if (r->eof)
            return 0;
        if (r->pos > 0) {
            memmove(r->buf, r->buf + r->pos, r->end - r->pos);
            r->end -= r->pos;
            r->pos = 0;
        }
        if (r->end == sizeof r->buf)
            return -2;
        if (nb && !input_ready())
            return -3;
        ssize_t k = read(STDIN_FILENO, r->buf + r->end, sizeof r->buf - r->end);
        if (k < 0 && errno == EINTR && !usersig_interrupted())
            continue;
        if (k < 0)
            return -1;
        if (k == 0)
            r->eof = 1;
        r->end += (size_t)k;
    }
}

/* The request's path and query into path and its header lines into headers, the Authorization
 * one in b->hdr (wiped by the caller after the request). Returns 0, or -1 (said). */
static int request_head(struct batch *b, char *path, size_t cap, const char *headers[N_HEADERS])
{
    char query[64] = "";
    int qn = 0;
    if (b->has_expire)
        qn = snprintf(query, sizeof query, "?expire=%" PRIu64, b->expire);
    if (b->has_level)
        snprintf(query + qn, sizeof query - (size_t)qn, "%clevel=%" PRIu64,
                 b->has_expire ? '&' : '?', b->level);
    if (b->job == USERSIG_JOB_BATCH)
        snprintf(path, cap, "/v1/apps/%" PRIu64 "/usersigs/batch%s", b->sdkappid, query);
    else
        snprintf(path, cap, "/v1/apps/%" PRIu64 "/accounts/%s", b->sdkappid,
                 b->job == USERSIG_JOB_CHECK ? "check" : "import");
    int hn = snprintf(b->hdr, sizeof b->hdr, "Authorization: Bearer %s", b->token);
    if (hn < 0 || (size_t)hn >= sizeof b->hdr) {
        usersig_batch_say(b, "the request head does not fit in %zu bytes", sizeof b->hdr);
        return -1;
    }
    headers[0] = b->hdr;
    headers[1] = b->job == USERSIG_JOB_BATCH ? "User-Agent: usersig-batch/0.1"
                                             : "User-Agent: usersig-import/0.1";
    headers[2] = b->ndjson ? "Content-Type: application/x-ndjson" : "Content-Type: text/plain";
    headers[3] = b->csv ? "Accept: text/csv" : "Accept: application/x-ndjson";
    headers[4] = "Connection: close";
    return 0;
}

/* After a 429 (b->refusal, b->answer.retry_after): waits for the server's Retry-After and
 * returns 0 to try again, or -1 (said) once BUSY_TOTAL_S of waiting have gone by. */
static int busy_wait(struct batch *b, int *waited)
{
    int secs = b->answer.retry_after;
    if (secs < 1)
        secs = BUSY_DEFAULT_S;
    if (secs > BUSY_MAX_S) {
        usersig_batch_say(b,
                          "the server is busy (%s) and asks for %d s before another try; run the "
                          "%s again later",
                          b->refusal, secs, usersig_batch_job_name(b));
        return -1;
    }
    if (*waited + secs > BUSY_TOTAL_S) {
        usersig_batch_say(b,
                          "the server still refuses the %s after %d s of waiting: %s; run it "
                          "again later%s",
                          usersig_batch_job_name(b), *waited, b->refusal,
                          b->job == USERSIG_JOB_BATCH ? " (or ask for a higher batch_max_running)"
                                                      : "");
        return -1;
    }
    usersig_batch_say(b, "the server is busy (%s); trying again in %d s", b->refusal, secs);
    usersig_batch_progress_clear(b);
    fflush(stdout);
    *waited += secs;
    struct timespec ts = {.tv_sec = secs};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
    return 0;
}

/* One HTTP request for the body bytes [off, off + len) holding items [first_index, +nitems).
 * Returns 0, 1 when the server refused it as too large (413), -1 on an error (printed). */
static int request_once(struct batch *b, size_t off, size_t len, uint64_t first_index,
                        uint64_t nitems)
{
    char path[128];
    const char *headers[N_HEADERS];
    struct span s = {.off = off, .len = len, .first_index = first_index, .nitems = nitems};
    int rc = -1, waited = 0;

again:
    if (request_head(b, path, sizeof path, headers) != 0)
        return -1;
    s.next_id = off;
    if (s.sha == NULL)
        s.sha = EVP_MD_CTX_new();
    if (s.sha == NULL || EVP_DigestInit_ex(s.sha, EVP_sha256(), NULL) != 1) {
        usersig_batch_say(b, "cannot set up SHA-256");
        goto done;
    }
    memset(&b->answer, 0, sizeof b->answer);
    b->line_len = 0;
    b->cur = &s;
    if (usersig_http_post(b->http, path, headers, N_HEADERS, b->req.body + off, len) != 0)
        goto done;
    if (b->answer.status == 200)
        rc = usersig_batch_stream_end(b, &s);
    else
        rc = usersig_batch_refused(b, &b->answer, b->line, b->line_len);
    if (rc == 2) {
        OPENSSL_cleanse(b->hdr, sizeof b->hdr);
        rc = -1;
        if (busy_wait(b, &waited) == 0)
            goto again;
    }
done:
    b->cur = NULL;
    b->line_len = 0;
    OPENSSL_cleanse(b->hdr, sizeof b->hdr);
    EVP_MD_CTX_free(s.sha);
    return rc;
}

/* Sends body bytes [off, off + len) in one request, or in two halves split at a line when it is
 * over the current limit or the server refuses it as too large (413; the limit is then lowered
 * for the rest of the run). */
static int send_span(struct batch *b, size_t off, size_t len, uint64_t first_index, uint64_t nitems)
{
    int rc = 0;
    if (len <= b->limit || nitems < 2) {
        rc = request_once(b, off, len, first_index, nitems);
        if (rc != 1)
            return rc;
        if (nitems < 2) {
            usersig_batch_say(b,
                              "the server refuses even a request of one identifier (%zu bytes): %s",
                              len, b->refusal);
            return -1;
        }
    }
    const char *body = b->req.body, *mid = body + off + len / 2, *end = body + off + len;
    const char *nl = memchr(mid, '\n', (size_t)(end - 1 - mid));
    if (nl == NULL)
        nl = memrchr(body + off, '\n', (size_t)(mid - (body + off)));
    size_t first_len = (size_t)(nl + 1 - (body + off));
    uint64_t first_items = 0;
    for (const char *p = body + off; (p = memchr(p, '\n', (size_t)(nl + 1 - p))) != NULL; p++)
        first_items++;
    uint64_t half = first_len > len - first_len ? first_len : len - first_len;
    if (rc == 1 && half < b->limit) {
        b->limit = half;
        usersig_batch_say(b,
                          "the server refused a request of %zu bytes (%s); sending at most %" PRIu64
                          " bytes a request from now on",
                          len, b->refusal, b->limit);
    }
    rc = send_span(b, off, first_len, first_index, first_items);
    if (rc != 0)
        return rc;
    return send_span(b, off + first_len, len - first_len, first_index + first_items,
                     nitems - first_items);
}

static int flush_request(struct batch *b)
{
    struct request *r = &b->req;
    int rc = 0;
    if (r->items > 0)
        rc = send_span(b, 0, r->len, 0, r->items);
    r->in_start = r->in_end; /* answered: what the ETA counts once the body is gone */
    r->len = 0;
    r->items = 0;
    r->ngaps = 0;
    r->pending_skip = 0;
    return rc;
}

/* Reads stdin to the end, sending requests as they fill. Returns 0, or -1 (printed). */
static int run(struct batch *b)
{
    struct request *r = &b->req;
    uint64_t lineno = 0, line_start = b->in.offset;
    const char *line;
    size_t n;
    int k;
    for (; (k = reader_line(&b->in, &line, &n, 0)) > 0; line_start = b->in.offset) {
        lineno++;
        if (n > 0 && line[n - 1] == '\r')
            n--;
        if (n == 0) {
            r->pending_skip++;
            continue;
        }
        if (n + 1 > b->max_request) {
            usersig_batch_say(
                b, "input line %" PRIu64 " is %zu bytes, more than --max-request-bytes allows",
                lineno, n);
            return -1;
        }
        if (r->len > 0 &&
            (r->len + n + 1 > b->limit || (r->pending_skip > 0 && r->ngaps == MAX_GAPS))) {
            uint64_t skip = r->pending_skip;
            if (flush_request(b) != 0)
                return -1;
            r->pending_skip = skip;
        }
        if (r->items == 0) {
            r->first_line = lineno;
            r->in_start = line_start;
        } else if (r->pending_skip > 0) {
            r->gaps[r->ngaps++] = (struct gap){.index = r->items, .skipped = r->pending_skip};
        }
        r->pending_skip = 0;
        memcpy(r->body + r->len, line, n);
        r->body[r->len + n] = '\n';
        r->len += n + 1;
        r->items++;
        r->in_end = b->in.offset;
    }
    if (k == -1) {
        usersig_batch_say(b, "reading stdin: %s", strerror(errno));
        return -1;
    }
    if (k == -2) {
        usersig_batch_say(b, "input line %" PRIu64 " is longer than %d bytes: not an identifier",
                          lineno + 1, IN_BUF);
        return -1;
    }
    return flush_request(b);
}

/* ---- the streamed request ------------------------------------------------------------------ */

/* Appends one identifier sent to b->pend. Returns 0, or -1 when out of memory. */
static int pend_push(struct batch *b, const char *id, size_t n, uint64_t lineno, uint64_t in_end)
{
    struct pending *q = &b->pend;
    size_t need = PENDING_HDR + n + 1;
    if (q->cap - q->tail < need && q->head > 0) { /* the answered front makes room */
        memmove(q->buf, q->buf + q->head, q->tail - q->head);
        q->tail -= q->head;
        q->replay = q->replay > q->head ? q->replay - q->head : 0;
        q->head = 0;
    }
    if (q->cap - q->tail < need) {
        size_t cap = q->cap > 0 ? q->cap * 2 : PENDING_START;
        if (cap > PENDING_MAX + PENDING_HDR + IN_BUF + 1) /* the most it can hold */
            cap = PENDING_MAX + PENDING_HDR + IN_BUF + 1;
        while (cap - q->tail < need)
            cap *= 2;
        char *nb = realloc(q->buf, cap);
        if (nb == NULL)
            return -1;
        q->buf = nb;
        q->cap = cap;
    }
    char *e = q->buf + q->tail;
    memcpy(e, &lineno, 8);
    memcpy(e + 8, &in_end, 8);
    memcpy(e + PENDING_HDR, id, n);
    e[PENDING_HDR + n] = '\n';
    q->tail += need;
    return 0;
}

/* The streamed body (usersig_http_hooks.send): what a request sent again must repeat (after a
 * 429), then the next whole lines of stdin, as many as fit, without waiting for stdin; blank
 * ones skipped (counted as lines), CR LF as LF. Each identifier sent is kept in b->pend until
 * it is answered; above PENDING_MAX of them the sending waits for the answers. */
static long stream_send(void *arg, char *buf, size_t cap)
{
    struct batch *b = arg;
    struct pending *q = &b->pend;
    size_t out = 0;
    while (q->replay < q->tail) {
        const char *id = q->buf + q->replay + PENDING_HDR;
        const char *nl = memchr(id, '\n', q->tail - q->replay - PENDING_HDR);
        size_t n = (size_t)(nl + 1 - id);
        if (n > cap - out)
            return (long)out;
        memcpy(buf + out, id, n);
        out += n;
        q->replay = (size_t)(nl + 1 - q->buf);
    }
    while (!b->in_done) {
        if (q->tail - q->head > PENDING_MAX) {
            b->wait_answers = 1;
            break;
        }
        const char *line;
        size_t n;
        uint64_t at = b->in.offset;
        int k = reader_line(&b->in, &line, &n, 1);
        if (k == -3) {
            b->wait_input = 1;
            break;
        }
        if (k == 0) {
            b->in_done = 1;
            break;
        }
        if (k == -1) {
            usersig_batch_say(b, "reading stdin: %s", strerror(errno));
            return -1;
        }
        if (k == -2) {
            usersig_batch_say(b,
                              "input line %" PRIu64 " is longer than %d bytes: not an identifier",
                              b->lineno + 1, IN_BUF);
            return -1;
        }
        size_t len = n > 0 && line[n - 1] == '\r' ? n - 1 : n;
        if (len + 1 > cap - out) { /* next time: put back */
            if (out == 0) {
                usersig_batch_say(b, "input line %" PRIu64 " is %zu bytes, more than %zu",
                                  b->lineno + 1, len, cap - 1);
                return -1;
            }
            b->in.pos = (size_t)(line - b->in.buf);
            b->in.offset = at;
            break;
        }
        b->lineno++;
        if (len == 0)
            continue;
        if (pend_push(b, line, len, b->lineno, b->in.offset) != 0) {
            usersig_batch_say(b, "out of memory");
            return -1;
        }
        q->replay = q->tail;
        memcpy(buf + out, line, len);
        buf[out + len] = '\n';
        out += len + 1;
        b->sent_items++;
    }
    if (out > 0)
        return (long)out;
    return b->in_done ? 0 : USERSIG_HTTP_SEND_WAIT;
}

/* While the sending waits (usersig_http_hooks.send_ready): for the answers to catch up, or for
 * stdin. */
static int stream_ready(void *arg, int *fd)
{
    struct batch *b = arg;
    *fd = -1;
    if (b->wait_answers && b->pend.tail - b->pend.head > PENDING_LOW)
        return 0;
    b->wait_answers = 0;
    if (b->wait_input && !input_ready()) {
        *fd = STDIN_FILENO;
        return 0;
    }
    b->wait_input = 0;
    return 1;
}

/* Reads stdin to its first identifier (blank lines counted), left in the reader. Returns 1 when
 * there is one, 0 for none, -1 on an error (said). */
static int stream_first(struct batch *b)
{
    const char *line;
    size_t n;
    for (;;) {
        uint64_t at = b->in.offset;
        int k = reader_line(&b->in, &line, &n, 0);
        if (k == 0)
            return 0;
        if (k == -1) {
            usersig_batch_say(b, "reading stdin: %s", strerror(errno));
            return -1;
        }
        if (k == -2) {
            usersig_batch_say(b,
                              "input line %" PRIu64 " is longer than %d bytes: not an identifier",
                              b->lineno + 1, IN_BUF);
            return -1;
        }
        if (n > (size_t)(n > 0 && line[n - 1] == '\r')) {
            b->in.pos = (size_t)(line - b->in.buf);
            b->in.offset = at;
            return 1;
        }
        b->lineno++;
    }
}

/* The whole input in one streamed request. Returns 0, or -1 (said). */
static int run_stream(struct batch *b)
{
    char path[128];
    const char *headers[N_HEADERS];
    struct span s = {.stream = 1};
    int rc = -1, waited = 0;

    int first = stream_first(b);
    if (first <= 0)
        return first;
    s.sha = EVP_MD_CTX_new();
    if (s.sha == NULL || EVP_DigestInit_ex(s.sha, EVP_sha256(), NULL) != 1) {
        usersig_batch_say(b, "cannot set up SHA-256");
        goto done;
    }
again:
    if (request_head(b, path, sizeof path, headers) != 0)
        goto done;
    memset(&b->answer, 0, sizeof b->answer);
    b->line_len = 0;
    b->cur = &s;
    b->pend.replay = b->pend.head; /* a request sent again repeats what its first one sent */
    b->in_done = b->wait_input = b->wait_answers = 0;
    if (usersig_http_post_stream(b->http, path, headers, N_HEADERS) != 0)
        goto done;
    if (b->answer.status == 200) {
        rc = usersig_batch_stream_end(b, &s);
        goto done;
    }
    int k = usersig_batch_refused(b, &b->answer, b->line, b->line_len);
    if (k == 2 && b->done == 0) { /* nothing answered: every identifier sent is in b->pend */
        OPENSSL_cleanse(b->hdr, sizeof b->hdr);
        if (busy_wait(b, &waited) == 0)
            goto again;
    } else if (k == 2) {
        usersig_batch_say(b, "the server answered %s", b->refusal);
    } else if (k == 1 && b->job != USERSIG_JOB_BATCH) {
        usersig_batch_say(b,
                          "the server refused the streamed request as too large (%s): it limits "
                          "a request's size; nothing was sent to Tencent: split the input",
                          b->refusal);
    } else if (k == 1) {
        usersig_batch_say(b,
                          "the server refused the streamed request as too large (%s): it limits "
                          "a request's size; nothing was signed: run again with "
                          "--max-request-bytes (32M, or less than its limit) to send requests "
                          "of bounded size",
                          b->refusal);
    } else if (b->answer.status == 411 && b->job == USERSIG_JOB_BATCH) {
        usersig_batch_say(b, "the server (or a proxy) takes no chunked upload: run again with "
                             "--max-request-bytes 32M to send requests with their length");
    }
done:
    b->cur = NULL;
    b->line_len = 0;
    OPENSSL_cleanse(b->hdr, sizeof b->hdr);
    EVP_MD_CTX_free(s.sha);
    return rc;
}

/* ---- the run ------------------------------------------------------------------------------- */

int usersig_batch_run(struct batch *b)
{
    const struct usersig_http_hooks hooks = {.vsay = usersig_batch_vsay,
                                             .head = on_head,
                                             .body = on_body,
                                             .waiting = waiting,
                                             .send = stream_send,
                                             .send_ready = stream_ready,
                                             .arg = b};
    b->http = usersig_http_new(&b->url, b->ca_file, &hooks);
    if (b->http == NULL) {
        fprintf(stderr, "usersig: out of memory\n");
        return -1;
    }
    struct stat st;
    off_t at = lseek(STDIN_FILENO, 0, SEEK_CUR);
    if (fstat(STDIN_FILENO, &st) == 0 && S_ISREG(st.st_mode) && at >= 0 && st.st_size > at)
        b->input_size = (uint64_t)(st.st_size - at);
    b->tty = isatty(STDERR_FILENO);
    b->t0 = b->last_draw = usersig_batch_now_ns();
    return b->streaming ? run_stream(b) : run(b);
}
