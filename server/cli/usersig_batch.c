/*
 * usersig batch: the client for bulk-signing jobs. Reads identifiers from stdin and sends them to
 * a usersigd server's batch endpoint in one text/plain request streamed as it is read (chunked:
 * the input is never held whole, the upload waits for the answers when the server is slower), or,
 * with --max-request-bytes, in requests of bounded size one after the other (never splitting a
 * line); the answer lines go to stdout in input order as they come. Each request's summary is
 * checked here (counts, and the SHA-256 over the lines received) before it is reported on stderr.
 * HTTP/1.1 or HTTPS (certificates always verified) through libcurl.
 * This file: options, the token, stdin and the requests. It calls usersig_batch_out.c (the
 * checking of each answer, fed the bytes as they arrive), usersig_batch_tty.c (messages and the
 * progress line on stderr) and usersig_http.c (the transport); none of them calls back here.
 */
#include "usersig_args.h"
#include "usersig_batch.h"
#include "usersig_batch_int.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define EXIT_FAILED 1
#define EXIT_FATAL 2
#define DEFAULT_MAX_REQUEST ((uint64_t)32 << 20)
#define MIN_MAX_REQUEST 64
#define MAX_MAX_REQUEST ((uint64_t)1 << 30)
#define MAX_EXPIRE 315360000
#define MAX_TOKEN 4096
#define USER_AGENT "usersig-batch/0.1"
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

static const char usage_batch[] =
    "usage: usersig batch --server URL --sdkappid N [--token-file F] [--ca-file F] [--expire S]\n"
    "                     [--level L] [--format ndjson|csv] [--max-request-bytes B]\n"
    "                     < ids.txt > out\n"
    "\n"
    "Signs one UserSig per stdin line on a usersigd server (POST /v1/apps/N/usersigs/batch);\n"
    "the app's key never leaves the server. Sends any amount of input in one request, streamed\n"
    "(chunked) as stdin is read: the input is never held whole, and the sending waits when the\n"
    "server signs more slowly than stdin comes. Blank lines are skipped.\n"
    "Writes the server's answer lines to stdout as they arrive, in input order: NDJSON\n"
    "{\"identifier\",\"usersig\"} or {\"identifier\",\"error\":{\"code\",\"message\"}} (CSV: "
    "identifier,usersig\n"
    "or identifier,,code). Each request's summary goes to stderr, as \"batch ID: COUNT signed N\n"
    "failed M key_version V sha256 HEX\", once its counts and the SHA-256 of the lines received\n"
    "have been checked. When stderr is a terminal it also shows progress (done, rate, ETA).\n"
    "\n"
    "  --server URL            https://HOST[:PORT][/PREFIX] or http://...; HOST a name, an IPv4\n"
    "                          or an [IPv6] address. https: the server's certificate and name\n"
    "                          are always verified, TLS 1.2 or later. http: no TLS, the token\n"
    "                          and the tokens travel in clear (loopback only, or a trusted\n"
    "                          network). No proxy from the environment is used.\n"
    "  --token-file F          the API token (role signer or admin); default $USERSIGD_TOKEN.\n"
    "                          Never on the command line. The file should be mode 0600.\n"
    "  --ca-file F             the CAs to trust for https, a PEM bundle (default: the system's\n"
    "                          store). With it, only those CAs.\n"
    "  --sdkappid N            the app's SDKAppID (1..4294967295)\n"
    "  --expire S              validity in seconds, 1..315360000 (default: the app's)\n"
    "  --level L               zlib level 0..9 (default: the server's)\n"
    "  --format F              ndjson (default) or csv\n"
    "  --max-request-bytes B   for a server (or proxy) that limits a request's size: send the\n"
    "                          input in requests of at most B bytes (in bytes or with K, M or\n"
    "                          G; 64 to 1G), one after the other, never splitting a line, each\n"
    "                          held in memory and sent with its length. A request the server\n"
    "                          refuses as too large (413) is split in two and sent again.\n"
    "\n"
    "A server running as many batches as it allows answers 429 too_many_batches: the request is\n"
    "sent again after its Retry-After (when that is at most 60 s; 10 minutes of waiting in all;\n"
    "nothing of the input is lost: the streamed body starts once the server has accepted it).\n"
    "\n"
    "Timeouts: 10 s to connect (TLS handshake included); a request gives up after 300 s without\n"
    "a byte sent or received. A request has no overall limit: its time grows with its size.\n"
    "\n"
    "Exit status: 0 every identifier signed; 1 some failed (their input line numbers are named\n"
    "on stderr: the first 20, then a count; their error lines are in the output); 2 a usage,\n"
    "connection, HTTP or protocol error (a stream cut short, counts or sha256 that do not match\n"
    "the summary): stdout then holds the lines answered so far, and stderr says where to resume.\n";

/* Before each wait for the server (usersig_http_hooks.waiting): the lines so far leave
 * (stdout is flushed when more came), and the progress line is redrawn. */
static int waiting(void *arg, int fresh)
{
    struct batch *b = arg;
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

/* ---- options, token ------------------------------------------------------------------------ */

/* Bytes, or a number with K, M or G (binary multiples). */
static int parse_size(const char *s, uint64_t *out)
{
    char *end;
    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    int shift = 0;
    if (*end == 'k' || *end == 'K')
        shift = 10;
    else if (*end == 'm' || *end == 'M')
        shift = 20;
    else if (*end == 'g' || *end == 'G')
        shift = 30;
    if (shift != 0)
        end++;
    if (errno != 0 || *end != '\0' || v > (MAX_MAX_REQUEST >> shift))
        return -1;
    *out = (uint64_t)v << shift;
    return 0;
}

/* The API token from the file or $USERSIGD_TOKEN: a new string the caller wipes and frees. The
 * file's path is never repeated in a message: it may be the token itself, typed where its file
 * belongs; messages name --token-file instead. */
static char *load_token(const char *file, size_t *len)
{
    char *buf = malloc(MAX_TOKEN + 1);
    size_t n = 0;
    const char *what = file != NULL ? "the file given with --token-file" : "$USERSIGD_TOKEN";
    if (buf == NULL) {
        fprintf(stderr, "usersig: out of memory\n");
        return NULL;
    }
    if (file != NULL) {
        struct stat st;
        FILE *f = fopen(file, "rb");
        if (f == NULL) {
            fprintf(stderr, "usersig: cannot open token file given with --token-file: %s\n",
                    strerror(errno));
            free(buf);
            return NULL;
        }
        if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0077) != 0)
            fprintf(stderr, "usersig: warning: token file given with --token-file is readable by "
                            "other users (chmod 600 it)\n");
        n = fread(buf, 1, MAX_TOKEN + 1, f);
        int err = ferror(f);
        fclose(f);
        if (err || n > MAX_TOKEN) {
            fprintf(stderr,
                    "usersig: token file given with --token-file is unreadable or larger than %d "
                    "bytes\n",
                    MAX_TOKEN);
            goto fail;
        }
    } else {
        const char *env = getenv("USERSIGD_TOKEN");
        if (env == NULL || *env == '\0') {
            fprintf(stderr, "usersig: no API token: give --token-file F or set USERSIGD_TOKEN\n");
            goto fail;
        }
        n = strlen(env);
        if (n > MAX_TOKEN) {
            fprintf(stderr, "usersig: $USERSIGD_TOKEN is longer than %d bytes\n", MAX_TOKEN);
            goto fail;
        }
        memcpy(buf, env, n);
    }
    while (n > 0 &&
           (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' || buf[n - 1] == '\t'))
        n--;
    buf[n] = '\0';
    if (n == 0) {
        fprintf(stderr, "usersig: the token in %s is empty\n", what);
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        if (buf[i] <= 0x20 || buf[i] >= 0x7f) { /* it goes into an HTTP header */
            fprintf(stderr, "usersig: the token in %s has a space or a control character\n", what);
            goto fail;
        }
    }
    *len = n;
    return buf;
fail:
    OPENSSL_cleanse(buf, MAX_TOKEN + 1);
    free(buf);
    return NULL;
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
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -1;
        if (k == 0)
            r->eof = 1;
        r->end += (size_t)k;
    }
}

/* The request's path and query into path, and its Authorization header into b->hdr (wiped by
 * the caller after the request). Returns 0, or -1 (said). */
static int request_head(struct batch *b, char *path, size_t cap)
{
    char query[64] = "";
    int qn = 0;
    if (b->has_expire)
        qn = snprintf(query, sizeof query, "?expire=%" PRIu64, b->expire);
    if (b->has_level)
        snprintf(query + qn, sizeof query - (size_t)qn, "%clevel=%" PRIu64,
                 b->has_expire ? '&' : '?', b->level);
    snprintf(path, cap, "/v1/apps/%" PRIu64 "/usersigs/batch%s", b->sdkappid, query);
    int hn = snprintf(b->hdr, sizeof b->hdr, "Authorization: Bearer %s", b->token);
    if (hn < 0 || (size_t)hn >= sizeof b->hdr) {
        usersig_batch_say(b, "the request head does not fit in %zu bytes", sizeof b->hdr);
        return -1;
    }
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
                          "batch again later",
                          b->refusal, secs);
        return -1;
    }
    if (*waited + secs > BUSY_TOTAL_S) {
        usersig_batch_say(b,
                          "the server still refuses the batch after %d s of waiting: %s; run it "
                          "again later (or ask for a higher batch_max_running)",
                          *waited, b->refusal);
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
    struct span s = {.off = off, .len = len, .first_index = first_index, .nitems = nitems};
    int rc = -1, waited = 0;

again:
    if (request_head(b, path, sizeof path) != 0)
        return -1;
    const char *headers[] = {
        b->hdr,
        "User-Agent: " USER_AGENT,
        "Content-Type: text/plain",
        b->csv ? "Accept: text/csv" : "Accept: application/x-ndjson",
        "Connection: close",
    };
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
    if (usersig_http_post(b->http, path, headers, sizeof headers / sizeof headers[0],
                          b->req.body + off, len) != 0)
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
    if (request_head(b, path, sizeof path) != 0)
        goto done;
    const char *headers[] = {
        b->hdr,
        "User-Agent: " USER_AGENT,
        "Content-Type: text/plain",
        b->csv ? "Accept: text/csv" : "Accept: application/x-ndjson",
        "Connection: close",
    };
    memset(&b->answer, 0, sizeof b->answer);
    b->line_len = 0;
    b->cur = &s;
    b->pend.replay = b->pend.head; /* a request sent again repeats what its first one sent */
    b->in_done = b->wait_input = b->wait_answers = 0;
    if (usersig_http_post_stream(b->http, path, headers, sizeof headers / sizeof headers[0]) != 0)
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
    } else if (k == 1) {
        usersig_batch_say(b,
                          "the server refused the streamed request as too large (%s): it limits "
                          "a request's size; nothing was signed: run again with "
                          "--max-request-bytes (32M, or less than its limit) to send requests "
                          "of bounded size",
                          b->refusal);
    } else if (b->answer.status == 411) {
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

static void report_failures(struct batch *b)
{
    usersig_batch_progress_clear(b);
    fprintf(stderr, "usersig: %" PRIu64 " of %" PRIu64 " identifiers failed, at input line",
            b->failed, b->done);
    uint64_t shown = b->failed < SHOW_FAILED ? b->failed : SHOW_FAILED;
    for (uint64_t i = 0; i < shown; i++)
        fprintf(stderr, "%s %" PRIu64 " (%s)", i == 0 ? (b->failed > 1 ? "s" : "") : ",",
                b->failed_lines[i], b->failed_codes[i]);
    if (b->failed > shown)
        fprintf(stderr, " and %" PRIu64 " more", b->failed - shown);
    fputs("; their error lines are in the output\n", stderr);
}

enum {
    OPT_SERVER = 256,
    OPT_TOKEN_FILE,
    OPT_CA_FILE,
    OPT_SDKAPPID,
    OPT_EXPIRE,
    OPT_LEVEL,
    OPT_FORMAT,
    OPT_MAX_REQUEST,
    OPT_HELP,
};

static const struct option batch_opts[] = {
    {"server", required_argument, NULL, OPT_SERVER},
    {"token-file", required_argument, NULL, OPT_TOKEN_FILE},
    {"ca-file", required_argument, NULL, OPT_CA_FILE},
    {"sdkappid", required_argument, NULL, OPT_SDKAPPID},
    {"expire", required_argument, NULL, OPT_EXPIRE},
    {"level", required_argument, NULL, OPT_LEVEL},
    {"format", required_argument, NULL, OPT_FORMAT},
    {"max-request-bytes", required_argument, NULL, OPT_MAX_REQUEST},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fputs("usersig: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n\n%s", usage_batch);
    return EXIT_FATAL;
}

int usersig_batch_main(int argc, char **argv)
{
    static char outbuf[1 << 20];
    struct batch *b = calloc(1, sizeof *b);
    const char *server = NULL, *token_file = NULL, *why = NULL;
    char bad[256];
    int c, status = EXIT_FATAL;
    const struct usersig_http_hooks hooks = {.vsay = usersig_batch_vsay,
                                             .head = on_head,
                                             .body = on_body,
                                             .waiting = waiting,
                                             .send = stream_send,
                                             .send_ready = stream_ready,
                                             .arg = b};

    if (b == NULL) {
        fprintf(stderr, "usersig: out of memory\n");
        return EXIT_FATAL;
    }
    b->max_request = DEFAULT_MAX_REQUEST;
    b->streaming = 1;
    /* Exact option names, no repeats, no value in the message (usersig_args.h). */
    if (usersig_args_check(argc, argv, batch_opts, "h", bad, sizeof bad) != 0) {
        status = usage_error("%s", bad);
        goto done;
    }
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+h", batch_opts, NULL)) != -1) {
        switch (c) {
        case 'h':
        case OPT_HELP:
            fputs(usage_batch, stdout);
            free(b);
            return 0;
        case OPT_SERVER:
            server = optarg;
            break;
        case OPT_TOKEN_FILE:
            token_file = optarg;
            break;
        case OPT_CA_FILE:
            b->ca_file = optarg;
            break;
        case OPT_SDKAPPID:
            if (usersig_http_parse_u64(optarg, UINT32_MAX, &b->sdkappid) != 0 || b->sdkappid == 0) {
                status = usage_error("--sdkappid must be a number from 1 to 4294967295");
                goto done;
            }
            break;
        case OPT_EXPIRE:
            if (usersig_http_parse_u64(optarg, MAX_EXPIRE, &b->expire) != 0 || b->expire == 0) {
                status = usage_error("--expire must be 1 to 315360000 seconds");
                goto done;
            }
            b->has_expire = 1;
            break;
        case OPT_LEVEL:
            if (usersig_http_parse_u64(optarg, 9, &b->level) != 0) {
                status = usage_error("--level must be 0 to 9");
                goto done;
            }
            b->has_level = 1;
            break;
        case OPT_FORMAT:
            if (strcmp(optarg, "csv") != 0 && strcmp(optarg, "ndjson") != 0) {
                status = usage_error("--format must be ndjson or csv");
                goto done;
            }
            b->csv = strcmp(optarg, "csv") == 0;
            break;
        case OPT_MAX_REQUEST:
            if (parse_size(optarg, &b->max_request) != 0 || b->max_request < MIN_MAX_REQUEST) {
                status = usage_error("--max-request-bytes must be 64 bytes to 1G");
                goto done;
            }
            b->streaming = 0;
            break;
        }
    }
    if (optind < argc) {
        status = usage_error("unexpected argument after the options (identifiers come from stdin)");
        goto done;
    }
    if (server == NULL || b->sdkappid == 0) {
        status = usage_error("%s is required", server == NULL ? "--server" : "--sdkappid");
        goto done;
    }
    if (usersig_http_parse_url(server, &b->url, &why) != 0) {
        status = usage_error("%s", why);
        goto done;
    }
    if (b->ca_file != NULL && !b->url.tls) {
        status = usage_error("--ca-file is for an https:// --server; this one is plain http");
        goto done;
    }
    if (b->ca_file != NULL && usersig_http_check_ca_file(b->ca_file, &why) != 0) {
        usersig_batch_say(b, "%s", why);
        goto done;
    }
    if ((b->token = load_token(token_file, &b->token_len)) == NULL)
        goto done;
    b->limit = b->max_request;
    if (!b->streaming)
        b->req.body = malloc((size_t)b->max_request);
    b->http = usersig_http_new(&b->url, b->ca_file, &hooks);
    if ((!b->streaming && b->req.body == NULL) || b->http == NULL) {
        fprintf(stderr, "usersig: out of memory\n");
        goto done;
    }
    struct stat st;
    off_t at = lseek(STDIN_FILENO, 0, SEEK_CUR);
    if (fstat(STDIN_FILENO, &st) == 0 && S_ISREG(st.st_mode) && at >= 0 && st.st_size > at)
        b->input_size = (uint64_t)(st.st_size - at);
    b->tty = isatty(STDERR_FILENO);
    b->t0 = b->last_draw = usersig_batch_now_ns();
    setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);

    if ((b->streaming ? run_stream(b) : run(b)) != 0) {
        if (b->done > 0)
            usersig_batch_say(b,
                              "stopped after %" PRIu64
                              " answered identifiers (input lines up to %" PRIu64
                              ", in stdout); resume from line %" PRIu64 " (tail -n +%" PRIu64 ")",
                              b->done, b->last_line, b->last_line + 1, b->last_line + 1);
        goto done;
    }
    if (fflush(stdout) != 0) {
        usersig_batch_say(b, "writing stdout: %s", strerror(errno));
        goto done;
    }
    if (b->tty && b->done > 0) {
        b->req.in_start = b->answered_in = b->in.offset;
        usersig_batch_progress(b, 0, 1);
        fputc('\n', stderr);
        b->progress_shown = 0;
    }
    if (b->done == 0)
        usersig_batch_say(b, "no identifiers on stdin; nothing was sent");
    if (b->failed > 0) {
        report_failures(b);
        status = EXIT_FAILED;
    } else {
        status = 0;
    }
done:
    usersig_batch_progress_clear(b);
    if (b->token != NULL) {
        OPENSSL_cleanse(b->token, b->token_len);
        free(b->token);
    }
    free(b->req.body);
    free(b->pend.buf);
    usersig_http_free(b->http);
    free(b);
    return status;
}
