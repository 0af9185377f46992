/*
 * usersig batch and usersig import: their options, the API token, and the exit status. Parses
 * the command line, loads the token, has usersig_batch.c send stdin and check the answers, then
 * says how the run went (the failed lines named on stderr). The two commands differ only in the
 * job (b->job: the endpoint, the answer's lines and summary) and in the options each takes.
 * Calls usersig_batch.c and usersig_batch_tty.c.
 */
#include "usersig_args.h"
#include "usersig_batch.h"
#include "usersig_batch_int.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define EXIT_FAILED 1
#define EXIT_FATAL 2
#define DEFAULT_MAX_REQUEST ((uint64_t)32 << 20)
#define MIN_MAX_REQUEST 64
#define MAX_MAX_REQUEST ((uint64_t)1 << 30)
#define MAX_EXPIRE 315360000
#define MAX_TOKEN 4096

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

static const char usage_import[] =
    "usage: usersig import --server URL --sdkappid N [--token-file F] [--ca-file F] [--check]\n"
    "                      [--ndjson] < accounts.txt > out\n"
    "\n"
    "Imports accounts into Tencent Cloud Chat through a usersigd server (POST\n"
    "/v1/apps/N/accounts/import, im_open_login_svc/multiaccount_import 100 a call), or with\n"
    "--check asks which are imported (/accounts/check, account_check). Reads one UserID a line,\n"
    "or with --ndjson one {\"identifier\",\"nick\",\"face_url\"} object a line, and sends any\n"
    "amount of it in one request, streamed (chunked) as stdin is read, as `usersig batch` does.\n"
    "Blank lines are skipped.\n"
    "Writes the server's answer lines to stdout as they arrive, in input order:\n"
    "{\"identifier\",\"status\":\"imported\"} (--check: also \"not_imported\"), or\n"
    "{\"identifier\",\"status\":\"failed\",\"error\":{\"code\",\"message\",\"tencent_code\"}}.\n"
    "The summary goes to stderr, as \"import JOB: COUNT imported N failed M calls C sha256 HEX\"\n"
    "(\"check JOB: COUNT imported N not_imported K failed M ...\"), once its counts and the "
    "SHA-256\n"
    "of the lines received have been checked. When stderr is a terminal it also shows progress.\n"
    "\n"
    "  --server URL      https://HOST[:PORT][/PREFIX] or http://... (as for usersig batch)\n"
    "  --token-file F    the API token (role admin, or rest_caller allowed\n"
    "                    im_open_login_svc/multiaccount_import, or account_check for --check);\n"
    "                    default $USERSIGD_TOKEN. Never on the command line; mode 0600.\n"
    "  --ca-file F       the CAs to trust for https, a PEM bundle (default: the system's store)\n"
    "  --sdkappid N      the app's SDKAppID (1..4294967295)\n"
    "  --check           check the accounts (imported or not_imported) instead of importing\n"
    "  --ndjson          stdin is NDJSON: {\"identifier\",\"nick\"?,\"face_url\"?} a line\n"
    "\n"
    "A 429 is waited out as usersig batch does (Retry-After, 10 minutes in all). Timeouts: 10 s\n"
    "to connect, 300 s without a byte sent or received.\n"
    "\n"
    "Exit status: 0 every account imported (--check: checked); 1 some failed (their input line\n"
    "numbers are named on stderr: the first 20, then a count; their lines are in the output); 2 a\n"
    "usage, connection, HTTP or protocol error (a refusal such as a token without the role, a\n"
    "stream cut short, counts or sha256 that do not match the summary, a job not complete).\n";

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

static void report_failures(struct batch *b)
{
    usersig_batch_progress_clear(b);
    fprintf(stderr, "usersig: %" PRIu64 " of %" PRIu64 " %s failed, at input line", b->failed,
            b->done, b->job == USERSIG_JOB_BATCH ? "identifiers" : "accounts");
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
    OPT_CHECK,
    OPT_NDJSON,
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

static const struct option import_opts[] = {
    {"server", required_argument, NULL, OPT_SERVER},
    {"token-file", required_argument, NULL, OPT_TOKEN_FILE},
    {"ca-file", required_argument, NULL, OPT_CA_FILE},
    {"sdkappid", required_argument, NULL, OPT_SDKAPPID},
    {"check", no_argument, NULL, OPT_CHECK},
    {"ndjson", no_argument, NULL, OPT_NDJSON},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static int usage_error(const char *usage, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int usage_error(const char *usage, const char *fmt, ...)
{
    va_list ap;
    fputs("usersig: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n\n%s", usage);
    return EXIT_FATAL;
}

/* `usersig batch` (job USERSIG_JOB_BATCH) or `usersig import` (USERSIG_JOB_IMPORT, made a
 * check by --check). */
static int job_main(int argc, char **argv, enum usersig_job job)
{
    static char outbuf[1 << 20];
    const char *usage = job == USERSIG_JOB_BATCH ? usage_batch : usage_import;
    const struct option *opts = job == USERSIG_JOB_BATCH ? batch_opts : import_opts;
    struct batch *b = calloc(1, sizeof *b);
    const char *server = NULL, *token_file = NULL, *why = NULL;
    char bad[256];
    int c, status = EXIT_FATAL;

    if (b == NULL) {
        fprintf(stderr, "usersig: out of memory\n");
        return EXIT_FATAL;
    }
    b->job = job;
    b->max_request = DEFAULT_MAX_REQUEST;
    b->streaming = 1;
    /* Exact option names, no repeats, no value in the message (usersig_args.h). */
    if (usersig_args_check(argc, argv, opts, "h", bad, sizeof bad) != 0) {
        status = usage_error(usage, "%s", bad);
        goto done;
    }
    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
        case OPT_HELP:
            fputs(usage, stdout);
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
                status = usage_error(usage, "--sdkappid must be a number from 1 to 4294967295");
                goto done;
            }
            break;
        case OPT_EXPIRE:
            if (usersig_http_parse_u64(optarg, MAX_EXPIRE, &b->expire) != 0 || b->expire == 0) {
                status = usage_error(usage, "--expire must be 1 to 315360000 seconds");
                goto done;
            }
            b->has_expire = 1;
            break;
        case OPT_LEVEL:
            if (usersig_http_parse_u64(optarg, 9, &b->level) != 0) {
                status = usage_error(usage, "--level must be 0 to 9");
                goto done;
            }
            b->has_level = 1;
            break;
        case OPT_FORMAT:
            if (strcmp(optarg, "csv") != 0 && strcmp(optarg, "ndjson") != 0) {
                status = usage_error(usage, "--format must be ndjson or csv");
                goto done;
            }
            b->csv = strcmp(optarg, "csv") == 0;
            break;
        case OPT_MAX_REQUEST:
            if (parse_size(optarg, &b->max_request) != 0 || b->max_request < MIN_MAX_REQUEST) {
                status = usage_error(usage, "--max-request-bytes must be 64 bytes to 1G");
                goto done;
            }
            b->streaming = 0;
            break;
        case OPT_CHECK:
            b->job = USERSIG_JOB_CHECK;
            break;
        case OPT_NDJSON:
            b->ndjson = 1;
            break;
        }
    }
    if (optind < argc) {
        status = usage_error(usage, "unexpected argument after the options (%s come from stdin)",
                             job == USERSIG_JOB_BATCH ? "identifiers" : "accounts");
        goto done;
    }
    if (server == NULL || b->sdkappid == 0) {
        status = usage_error(usage, "%s is required", server == NULL ? "--server" : "--sdkappid");
        goto done;
    }
    if (usersig_stdin_refused(job == USERSIG_JOB_BATCH ? "identifiers" : "accounts"))
        goto done;
    if (usersig_http_parse_url(server, &b->url, &why) != 0) {
        status = usage_error(usage, "%s", why);
        goto done;
    }
    if (b->ca_file != NULL && !b->url.tls) {
        status =
            usage_error(usage, "--ca-file is for an https:// --server; this one is plain http");
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
    if (!b->streaming && b->req.body == NULL) {
        fprintf(stderr, "usersig: out of memory\n");
        goto done;
    }
    setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
    /* Interrupted, the run stops after a whole answered line and says where to resume. */
    usersig_catch_interrupts();

    if (usersig_batch_run(b) != 0) {
        int sig = usersig_interrupted();
        if (sig != 0)
            usersig_batch_say(b, "interrupted (signal %d)", sig);
        if (b->untrusted)
            usersig_batch_say(b, "stdout cannot be trusted (a summary did not match what was "
                                 "received): run the whole input again");
        else if (b->done > 0)
            usersig_batch_say(b,
                              "stopped after %" PRIu64
                              " answered identifiers (input lines up to %" PRIu64
                              ", in stdout); resume from line %" PRIu64 " (tail -n +%" PRIu64 ")",
                              b->done, b->last_line, b->last_line + 1, b->last_line + 1);
        else if (sig != 0)
            usersig_batch_say(b, "nothing was answered yet: run the whole input again");
        if (sig != 0)
            status = 128 + sig;
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
        usersig_batch_say(b, "no %s on stdin; nothing was sent",
                          job == USERSIG_JOB_BATCH ? "identifiers" : "accounts");
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

int usersig_batch_main(int argc, char **argv)
{
    return job_main(argc, argv, USERSIG_JOB_BATCH);
}

int usersig_import_main(int argc, char **argv)
{
    return job_main(argc, argv, USERSIG_JOB_IMPORT);
}
