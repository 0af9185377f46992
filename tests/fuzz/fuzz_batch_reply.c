/*
 * The reply side of `usersig batch` (server/cli/usersig_batch_out.c): a server's streamed 200
 * answer fed to usersig_batch_feed / usersig_batch_stream_end as usersig_batch.c does, once whole,
 * once cut at the points the input chooses and once a byte at a time (short replies); or a
 * refusal's body to usersig_batch_refused. The three feeds give the same verdict, stdout, stderr
 * and counts; stdout is a prefix of the reply (plus a final LF) holding exactly the lines counted;
 * stderr and the refusal are printable ASCII; a 0 verdict means every identifier was answered.
 *
 * Input: flags (bit 0 CSV, bit 1 a refusal, bits 2-4 the span's first item, bits 5-7 a long
 * first line), the number of cuts, two bytes per cut, two bytes of identifier-section length,
 * the identifiers (one a line, blank lines skipped as the CLI skips them), then the reply (a
 * refusal: two bytes of status first). FUZZ_BATCH_REPLY_SHOW=1 prints the verdict on replay.
 */
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "usersig_batch_int.h"

#define MAX_CUTS 16

struct outcome {
    int rc;
    char *out, *err; /* what went to stdout and stderr (open_memstream buffers) */
    size_t out_len, err_len;
    uint64_t received, ok, failed, done, signed_n, b_failed;
    struct summary sum;
    uint64_t failed_lines[SHOW_FAILED];
    char failed_codes[SHOW_FAILED][40];
};

static void outcome_free(struct outcome *o)
{
    free(o->out);
    free(o->err);
}

static int printable(const char *s, size_t n, int lf_ok)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 0x20 && s[i] <= 0x7e) || (lf_ok && s[i] == '\n')))
            return 0;
    return 1;
}

static int terminated_printable(const char *s, size_t cap)
{
    const char *z = memchr(s, '\0', cap);
    return z != NULL && printable(s, (size_t)(z - s), 0);
}

/* The request as usersig_batch.c builds it from stdin: non-blank lines, each with its LF; blank
 * ones remembered as gaps. */
static void build_request(struct batch *b, const char *ids, size_t n, uint64_t *items)
{
    struct request *r = &b->req;
    uint64_t lineno = 0;
    r->body = malloc(n + 1);
    if (r->body == NULL)
        abort();
    *items = 0;
    while (n > 0) {
        const char *nl = memchr(ids, '\n', n);
        size_t len = nl != NULL ? (size_t)(nl - ids) : n, used = nl != NULL ? len + 1 : len;
        lineno++;
        if (len > 0 && ids[len - 1] == '\r')
            len--;
        if (len == 0) {
            r->pending_skip++;
        } else {
            if (*items == 0)
                r->first_line = lineno;
            else if (r->pending_skip > 0 && r->ngaps < MAX_GAPS)
                r->gaps[r->ngaps++] = (struct gap){.index = *items, .skipped = r->pending_skip};
            r->pending_skip = 0;
            memcpy(r->body + r->len, ids, len);
            r->body[r->len + len] = '\n';
            r->len += len + 1;
            (*items)++;
        }
        ids += used;
        n -= used;
    }
}

/* One answer: the reply cut at cuts[0..ncuts) (sorted offsets), as the transport's reads. */
static void run(const char *ids, size_t ids_len, int csv, unsigned first, const char *reply,
                size_t reply_len, const size_t *cuts, size_t ncuts, struct outcome *o)
{
    struct batch *b = calloc(1, sizeof *b);
    uint64_t items = 0;
    FILE *saved_out = stdout, *saved_err = stderr;
    if (b == NULL)
        abort();
    b->csv = csv;
    build_request(b, ids, ids_len, &items);

    /* The span: items [first, items) of the body, as a request split after a 413 would be. */
    size_t off = 0;
    uint64_t skip = first < items ? first : items;
    for (uint64_t i = 0; i < skip; i++)
        off = (size_t)((const char *)memchr(b->req.body + off, '\n', b->req.len - off) -
                       b->req.body) +
              1;
    struct span s = {.off = off,
                     .len = b->req.len - off,
                     .first_index = skip,
                     .nitems = items - skip,
                     .next_id = off};
    s.sha = EVP_MD_CTX_new();
    if (s.sha == NULL || EVP_DigestInit_ex(s.sha, EVP_sha256(), NULL) != 1)
        abort();

    memset(o, 0, sizeof *o);
    /* The parser writes to stdout and stderr: both made memory streams for the call (libFuzzer
     * and the sanitizers keep their own handles to the real ones). */
    stdout = open_memstream(&o->out, &o->out_len);
    stderr = open_memstream(&o->err, &o->err_len);
    if (stdout == NULL || stderr == NULL)
        abort();
    b->cur = &s;
    b->line_len = 0;
    int rc = 0;
    size_t at = 0;
    for (size_t i = 0; i <= ncuts && rc == 0; i++) {
        size_t end = i < ncuts ? cuts[i] : reply_len;
        rc = usersig_batch_feed(b, &s, reply + at, end - at);
        at = end;
    }
    if (rc == 0)
        rc = usersig_batch_stream_end(b, &s);
    fclose(stdout);
    fclose(stderr);
    stdout = saved_out;
    stderr = saved_err;

    o->rc = rc;
    o->received = s.received;
    o->ok = s.ok;
    o->failed = s.failed;
    o->done = b->done;
    o->signed_n = b->signed_n;
    o->b_failed = b->failed;
    o->sum = s.sum;
    memcpy(o->failed_lines, b->failed_lines, sizeof o->failed_lines);
    memcpy(o->failed_codes, b->failed_codes, sizeof o->failed_codes);
    EVP_MD_CTX_free(s.sha);
    free(b->req.body);
    free(b);

    /* What holds for any one feed. */
    if (rc != 0 && rc != -1)
        abort();
    if (o->received > s.nitems || o->received != o->ok + o->failed || o->done != o->received ||
        o->signed_n != o->ok || o->b_failed != o->failed)
        abort();
    if (rc == 0 && (!o->sum.seen || o->received != s.nitems || o->sum.count != s.nitems))
        abort();
    /* stdout: the answered lines as they came, nothing else. */
    size_t lfs = 0;
    for (size_t i = 0; i < o->out_len; i++)
        lfs += o->out[i] == '\n';
    if (lfs != o->received || (o->out_len > 0 && o->out[o->out_len - 1] != '\n'))
        abort();
    if (o->out_len > 0 &&
        (o->out_len > reply_len + 1 || memcmp(o->out, reply, o->out_len - 1) != 0 ||
         (o->out_len <= reply_len && reply[o->out_len - 1] != '\n')))
        abort();
    /* stderr: safe on a terminal, one message a line; an error says why. */
    if (!printable(o->err, o->err_len, 1) || (o->err_len > 0 && o->err[o->err_len - 1] != '\n') ||
        (rc != 0 && o->err_len == 0))
        abort();
    for (size_t i = 0; i < SHOW_FAILED && i < o->b_failed; i++)
        if (!terminated_printable(o->failed_codes[i], sizeof o->failed_codes[i]))
            abort();
    if (!terminated_printable(o->sum.batch_id, sizeof o->sum.batch_id) ||
        !terminated_printable(o->sum.sha256, sizeof o->sum.sha256) ||
        !terminated_printable(o->sum.key_version, sizeof o->sum.key_version))
        abort();
}

static void same(const struct outcome *a, const struct outcome *b)
{
    if (a->rc != b->rc || a->out_len != b->out_len || memcmp(a->out, b->out, a->out_len) != 0 ||
        a->err_len != b->err_len || memcmp(a->err, b->err, a->err_len) != 0 ||
        a->received != b->received || a->ok != b->ok || a->failed != b->failed ||
        a->sum.seen != b->sum.seen || a->sum.count != b->sum.count ||
        a->sum.signed_n != b->sum.signed_n || a->sum.failed != b->sum.failed ||
        strcmp(a->sum.batch_id, b->sum.batch_id) != 0 ||
        strcmp(a->sum.key_version, b->sum.key_version) != 0 ||
        strcmp(a->sum.sha256, b->sum.sha256) != 0 ||
        memcmp(a->failed_lines, b->failed_lines, sizeof a->failed_lines) != 0)
        abort();
    for (size_t i = 0; i < SHOW_FAILED && i < a->b_failed; i++)
        if (strcmp(a->failed_codes[i], b->failed_codes[i]) != 0)
            abort();
}

static int cmp_size(const void *x, const void *y)
{
    size_t a = *(const size_t *)x, b = *(const size_t *)y;
    return a < b ? -1 : a > b;
}

static void refusal(const char *ids, size_t ids_len, const char *p, size_t n)
{
    struct batch *b = calloc(1, sizeof *b);
    struct usersig_http_answer a = {0};
    FILE *saved_err = stderr;
    char *err = NULL;
    size_t err_len = 0;
    if (b == NULL || n < 2)
        goto out;
    a.status = 100 + ((unsigned char)p[0] | (unsigned char)p[1] << 8) % 500;
    /* The head's strings come cleaned from usersig_http.c: reason, then request id. */
    const char *nl = memchr(ids, '\n', ids_len);
    size_t rlen = nl != NULL ? (size_t)(nl - ids) : ids_len;
    usersig_http_clean_copy(a.reason, sizeof a.reason, ids, rlen);
    if (nl != NULL)
        usersig_http_clean_copy(a.request_id, sizeof a.request_id, nl + 1, ids_len - rlen - 1);
    /* As on_body keeps it: at most MAX_ERROR_BODY bytes, in b->line. */
    n -= 2;
    if (n > MAX_ERROR_BODY)
        n = MAX_ERROR_BODY;
    memcpy(b->line, p + 2, n);
    stderr = open_memstream(&err, &err_len);
    if (stderr == NULL)
        abort();
    int rc = usersig_batch_refused(b, &a, b->line, n);
    fclose(stderr);
    stderr = saved_err;
    if (getenv("FUZZ_BATCH_REPLY_SHOW") != NULL)
        fprintf(stderr, "verdict %d, refusal %s, stderr:\n%.*s", rc, b->refusal, (int)err_len, err);
    /* 413: the caller splits; 429: the caller waits and sends again; both say nothing yet. */
    int want = a.status == 413 ? 1 : a.status == 429 ? 2 : -1;
    if (rc != want || !terminated_printable(b->refusal, sizeof b->refusal) ||
        b->refusal[0] == '\0' || !printable(err, err_len, 1) || (rc == -1) != (err_len > 0))
        abort();
out:
    free(err);
    free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    unsigned flags = data[0];
    size_t ncuts = data[1] % (MAX_CUTS + 1), at = 2;
    size_t raw_cuts[MAX_CUTS];
    if (size < at + 2 * ncuts + 2)
        return 0;
    for (size_t i = 0; i < ncuts; i++, at += 2)
        raw_cuts[i] = data[at] | (size_t)data[at + 1] << 8;
    size_t ids_len = data[at] | (size_t)data[at + 1] << 8;
    at += 2;
    if (ids_len > size - at)
        ids_len = size - at;
    const char *ids = (const char *)data + at;
    const char *reply = ids + ids_len;
    size_t reply_len = size - at - ids_len;

    if (flags & 2) {
        refusal(ids, ids_len, reply, reply_len);
        return 0;
    }
    /* Bit 5: the first line starts with MAX_ANSWER_LINE - 128 + 32 * (bits 6-7) spaces (JSON
     * whitespace), so the longest line kept is reached without inputs of 64 KiB. */
    char *padded = NULL;
    if (flags & 32) {
        size_t pad = MAX_ANSWER_LINE - 128 + 32 * (flags >> 6);
        if ((padded = malloc(pad + reply_len)) == NULL)
            abort();
        memset(padded, ' ', pad);
        memcpy(padded + pad, reply, reply_len);
        reply = padded;
        reply_len += pad;
    }
    int csv = flags & 1;
    unsigned first = (flags >> 2) & 7;
    size_t cuts[MAX_CUTS];
    for (size_t i = 0; i < ncuts; i++)
        cuts[i] = raw_cuts[i] % (reply_len + 1);
    qsort(cuts, ncuts, sizeof cuts[0], cmp_size);

    struct outcome whole, split;
    run(ids, ids_len, csv, first, reply, reply_len, NULL, 0, &whole);
    if (getenv("FUZZ_BATCH_REPLY_SHOW") != NULL) /* replaying by hand: what the CLI would say */
        fprintf(stderr, "verdict %d, %zu bytes out, stderr:\n%.*s", whole.rc, whole.out_len,
                (int)whole.err_len, whole.err);
    run(ids, ids_len, csv, first, reply, reply_len, cuts, ncuts, &split);
    same(&whole, &split);
    outcome_free(&split);
    if (reply_len <= 2048) {
        size_t *bytes = malloc((reply_len + 1) * sizeof *bytes);
        if (bytes == NULL)
            abort();
        for (size_t i = 0; i < reply_len; i++)
            bytes[i] = i + 1;
        struct outcome each;
        run(ids, ids_len, csv, first, reply, reply_len, bytes, reply_len, &each);
        same(&whole, &each);
        outcome_free(&each);
        free(bytes);
    }
    outcome_free(&whole);
    free(padded);
    return 0;
}
