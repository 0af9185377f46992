/*
 * usersig: the offline command-line tool around the codec, for operators, scripts and debugging.
 * Signs one token or a stream of identifiers, verifies and explains a token, decodes one. Keys
 * come from a file or the USERSIG_KEY environment variable, never from the command line.
 * Exit status: 0 success, 1 a token failed verification or a batch line failed, 2 usage error
 * (or stdin, stdout unreadable, unwritable), 128 + N interrupted by signal N (sign --batch).
 * Options are matched by their exact names (usersig_args.c); no error message repeats an
 * option's value or an operand, since a secret typed in the wrong place must not reach stderr.
 */
#include "build_info.h"
#include "usersig.h"
#include "usersig_args.h"
#include "usersig_batch.h"
#include "usersig_http.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define EXIT_FAILED 1
#define EXIT_USAGE 2
#define MAX_KEY_FILE 16384
#define MAX_TOKEN_ARG (USERSIG_MAX_TOKEN_INPUT + 2)

static const char *prog = "usersig";

static const char usage_main[] =
    "usage: usersig COMMAND [OPTIONS]\n"
    "       usersig --version\n"
    "\n"
    "Sign, verify and decode Tencent Cloud Chat / TRTC UserSig tokens offline, or sign in bulk\n"
    "on a usersigd server.\n"
    "\n"
    "commands:\n"
    "  sign     sign one token, or one per stdin line with --batch\n"
    "  verify   verify a token and explain the verdict (with Tencent's error code)\n"
    "  decode   print a token's JSON document and its PrivateMapKey fields\n"
    "  batch    " USERSIG_BATCH_SUMMARY "\n"
    "  import   " USERSIG_IMPORT_SUMMARY "\n"
    "  version  print the release, the commit it was built from and the token formats\n"
    "           (also --version)\n"
    "\n"
    "Run 'usersig COMMAND --help' for a command's options. Options are spelled out in full\n"
    "(no abbreviations) and each one that takes a value is given at most once.\n";

static const char usage_sign[] =
    "usage: usersig sign --sdkappid N [--key-file F] --identifier ID [--expire S] [--time T]\n"
    "                    [--level L] [--room-id R | --room-str S] [--privileges P] [--strict]\n"
    "       usersig sign --sdkappid N [--key-file F] --batch [--expire S] [--level L] [--strict]\n"
    "\n"
    "  --sdkappid N     the app's SDKAppID (1..4294967295)\n"
    "  --key-file F     the app's key: the HMAC secret as shown in the console (v2), or a PEM\n"
    "                   EC private key (legacy v1). Without it, $USERSIG_KEY holds the secret.\n"
    "  --identifier ID  the UserID: 1..32 bytes of printable ASCII\n"
    "  --expire S       validity in seconds, 1..315360000 (default 15552000, 180 days)\n"
    "  --time T         issue time, Unix seconds (default now)\n"
    "  --level L        zlib level 0..9 (default 6; 0 is fastest, every level is valid)\n"
    "  --room-id R      make a TRTC PrivateMapKey for numeric room R\n"
    "  --room-str S     make a TRTC PrivateMapKey for string room S (1..64 bytes)\n"
    "  --privileges P   PrivateMapKey privilege bits 0..255 (default 255, all)\n"
    "  --strict         only allow A-Z a-z 0-9 _ - in identifiers\n"
    "  --batch          read identifiers from stdin, one a line; write 'identifier<TAB>token'\n"
    "                   lines in the same order, or 'identifier<TAB>!error CODE: MESSAGE' for a\n"
    "                   bad one (the run goes on; exit status 1 if any failed)\n";

static const char usage_verify[] =
    "usage: usersig verify --sdkappid N (--key-file F | --public-key-file F) --identifier ID\n"
    "                      [--now T] [--room-id R | --room-str S] [--privileges P] [TOKEN | -]\n"
    "\n"
    "Prints 'ok', or '<verdict> <tencent_code>: <explanation>' ('-' when Tencent has no code\n"
    "for it); exit status 0 only for ok.\n"
    "The token is read from stdin when it is '-' or absent.\n"
    "\n"
    "  --sdkappid N          the SDKAppID the token must belong to\n"
    "  --key-file F          the HMAC secret (v2) or PEM EC private key (v1); default "
    "$USERSIG_KEY\n"
    "  --public-key-file F   a PEM EC public key, for legacy v1 tokens\n"
    "  --identifier ID       the UserID the token must be for\n"
    "  --now T               check expiry at Unix time T instead of now\n"
    "  --room-id R, --room-str S, --privileges P\n"
    "                        also require a PrivateMapKey for that room with those bits\n";

static const char usage_decode[] =
    "usage: usersig decode [TOKEN | -]\n"
    "\n"
    "Prints the token's JSON document on one line and, for a PrivateMapKey, a second line\n"
    "{\"userbuf\":{...}} with its fields decoded. No key is needed and nothing is verified.\n";

static void die_usage(const char *usage, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

static void die_usage(const char *usage, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n\n%s", usage);
    exit(EXIT_USAGE);
}

/* Reads a whole small file into a NUL-terminated buffer; trailing whitespace is trimmed. The
 * caller wipes and frees it. A path that cannot be opened is not repeated: it may be the secret
 * itself, given where its file belongs; opt names the option instead. */
static char *read_secret_file(const char *path, const char *opt, size_t *len, int secret)
{
    struct stat st;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "%s: cannot open key file given with %s: %s\n", prog, opt, strerror(errno));
        return NULL;
    }
    if (secret && fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0077) != 0)
        fprintf(stderr, "%s: warning: key file %s is readable by other users (chmod 600 it)\n",
                prog, path);
    char *buf = malloc(MAX_KEY_FILE + 1);
    if (buf == NULL) {
        fclose(f);
        fprintf(stderr, "%s: out of memory\n", prog);
        return NULL;
    }
    size_t n = fread(buf, 1, MAX_KEY_FILE + 1, f);
    int err = ferror(f);
    fclose(f);
    if (err || n > MAX_KEY_FILE) {
        fprintf(stderr, "%s: key file %s is unreadable or larger than %d bytes\n", prog, path,
                MAX_KEY_FILE);
        OPENSSL_cleanse(buf, MAX_KEY_FILE + 1);
        free(buf);
        return NULL;
    }
    while (n > 0 &&
           (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' || buf[n - 1] == '\t'))
        n--;
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* Loads the key: a PEM file becomes an EC key, anything else an HMAC secret. */
static struct usersig_key *load_key(const char *key_file, const char *public_key_file)
{
    struct usersig_key *key = NULL;
    char *buf = NULL;
    size_t len = 0;
    enum usersig_rc rc;
    const char *what;

    if (public_key_file != NULL) {
        buf = read_secret_file(public_key_file, "--public-key-file", &len, 0);
        what = public_key_file;
    } else if (key_file != NULL) {
        buf = read_secret_file(key_file, "--key-file", &len, 1);
        what = key_file;
    } else {
        const char *env = getenv("USERSIG_KEY");
        if (env == NULL || *env == '\0') {
            fprintf(stderr, "%s: no key: give --key-file F or set USERSIG_KEY\n", prog);
            return NULL;
        }
        len = strlen(env);
        buf = malloc(len + 1);
        if (buf == NULL)
            return NULL;
        memcpy(buf, env, len + 1);
        what = "$USERSIG_KEY";
    }
    if (buf == NULL)
        return NULL;
    if (len == 0) {
        fprintf(stderr, "%s: the key in %s is empty\n", prog, what);
        free(buf);
        return NULL;
    }
    if (strstr(buf, "-----BEGIN") != NULL)
        rc = usersig_key_new_pem(buf, len, &key);
    else if (public_key_file != NULL)
        rc = USERSIG_BAD_KEY;
    else
        rc = usersig_key_new_hmac(buf, len, &key);
    OPENSSL_cleanse(buf, len);
    free(buf);
    if (rc != USERSIG_OK) {
        fprintf(stderr, "%s: %s: %s\n", prog, what, usersig_rc_message(rc));
        return NULL;
    }
    return key;
}

/* Reads a token argument or, for "-" or none, stdin (bounded). Returns a malloc'd string, or
 * NULL when stdin is closed or memory ran out (said on stderr). */
static char *read_token(const char *arg, size_t *len)
{
    char *buf;
    if (arg != NULL && strcmp(arg, "-") != 0) {
        *len = strlen(arg);
        if ((buf = strdup(arg)) == NULL)
            fprintf(stderr, "%s: out of memory\n", prog);
        return buf;
    }
    if (usersig_stdin_refused("token"))
        return NULL;
    if ((buf = malloc(MAX_TOKEN_ARG + 1)) == NULL) {
        fprintf(stderr, "%s: out of memory\n", prog);
        return NULL;
    }
    size_t n = fread(buf, 1, MAX_TOKEN_ARG + 1, stdin);
    if (n > MAX_TOKEN_ARG)
        n = MAX_TOKEN_ARG + 1; /* too long: the decoder calls it malformed */
    buf[n > MAX_TOKEN_ARG ? MAX_TOKEN_ARG : n] = '\0';
    *len = n > MAX_TOKEN_ARG ? MAX_TOKEN_ARG : n;
    /* Trailing newline from echo or a file. */
    while (*len > 0 && (buf[*len - 1] == '\n' || buf[*len - 1] == '\r'))
        buf[--(*len)] = '\0';
    if (n > MAX_TOKEN_ARG)
        *len = USERSIG_MAX_TOKEN_INPUT + 1;
    return buf;
}

struct common_opts {
    uint64_t sdkappid;
    const char *key_file, *public_key_file, *identifier;
    uint64_t expire, time, level, room_id, privileges, now;
    const char *room_str;
    int has_time, has_now, has_room_id, has_privileges, strict, batch;
};

enum {
    OPT_SDKAPPID = 256,
    OPT_KEY_FILE,
    OPT_PUBLIC_KEY_FILE,
    OPT_IDENTIFIER,
    OPT_EXPIRE,
    OPT_TIME,
    OPT_LEVEL,
    OPT_ROOM_ID,
    OPT_ROOM_STR,
    OPT_PRIVILEGES,
    OPT_STRICT,
    OPT_BATCH,
    OPT_NOW,
    OPT_HELP,
};

static const struct option long_opts[] = {
    {"sdkappid", required_argument, NULL, OPT_SDKAPPID},
    {"key-file", required_argument, NULL, OPT_KEY_FILE},
    {"public-key-file", required_argument, NULL, OPT_PUBLIC_KEY_FILE},
    {"identifier", required_argument, NULL, OPT_IDENTIFIER},
    {"expire", required_argument, NULL, OPT_EXPIRE},
    {"time", required_argument, NULL, OPT_TIME},
    {"level", required_argument, NULL, OPT_LEVEL},
    {"room-id", required_argument, NULL, OPT_ROOM_ID},
    {"room-str", required_argument, NULL, OPT_ROOM_STR},
    {"privileges", required_argument, NULL, OPT_PRIVILEGES},
    {"strict", no_argument, NULL, OPT_STRICT},
    {"batch", no_argument, NULL, OPT_BATCH},
    {"now", required_argument, NULL, OPT_NOW},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

/* Parses the options a command allows (allowed: OPT_ values ended by 0). An invalid value is
 * described, never repeated. */
static void parse_opts(int argc, char **argv, const char *usage, const int *allowed,
                       struct common_opts *o)
{
    char why[256];
    int c, idx = -1;
    if (usersig_args_check(argc, argv, long_opts, "h", why, sizeof why) != 0)
        die_usage(usage, "%s", why);
    memset(o, 0, sizeof *o);
    o->expire = USERSIG_DEFAULT_EXPIRE;
    o->level = USERSIG_DEFAULT_LEVEL;
    o->privileges = 255;
    opterr = 0;
    optind = 1;
    while ((idx = -1, c = getopt_long(argc, argv, "+h", long_opts, &idx)) != -1) {
        if (c == 'h' || c == OPT_HELP) {
            fputs(usage, stdout);
            exit(0);
        }
        if (c == '?' || c == ':') /* usersig_args_check let nothing of the kind through */
            die_usage(usage, "unknown option or missing value");
        int ok = 0;
        for (const int *a = allowed; *a != 0; a++)
            ok |= *a == c;
        if (!ok) /* argv[optind - 1] would be the value of "--opt VALUE": name the option */
            die_usage(usage, "option --%s does not apply to this command",
                      idx >= 0 ? long_opts[idx].name : "?");
        switch (c) {
        case OPT_SDKAPPID:
            if (usersig_http_parse_u64(optarg, UINT32_MAX, &o->sdkappid) != 0 || o->sdkappid == 0)
                die_usage(usage, "--sdkappid must be a number from 1 to 4294967295");
            break;
        case OPT_KEY_FILE:
            o->key_file = optarg;
            break;
        case OPT_PUBLIC_KEY_FILE:
            o->public_key_file = optarg;
            break;
        case OPT_IDENTIFIER:
            o->identifier = optarg;
            break;
        case OPT_EXPIRE:
            if (usersig_http_parse_u64(optarg, USERSIG_MAX_EXPIRE, &o->expire) != 0 ||
                o->expire == 0)
                die_usage(usage, "--expire must be 1 to 315360000 seconds");
            break;
        case OPT_TIME:
            if (usersig_http_parse_u64(optarg, UINT32_MAX, &o->time) != 0)
                die_usage(usage, "--time must be Unix seconds (0 to 4294967295)");
            o->has_time = 1;
            break;
        case OPT_NOW:
            if (usersig_http_parse_u64(optarg, (uint64_t)INT64_MAX / 4, &o->now) != 0)
                die_usage(usage, "--now must be Unix seconds");
            o->has_now = 1;
            break;
        case OPT_LEVEL:
            if (usersig_http_parse_u64(optarg, 9, &o->level) != 0)
                die_usage(usage, "--level must be 0 to 9");
            break;
        case OPT_ROOM_ID:
            if (usersig_http_parse_u64(optarg, UINT32_MAX, &o->room_id) != 0 || o->room_id == 0)
                die_usage(usage, "--room-id must be 1 to 4294967295");
            o->has_room_id = 1;
            break;
        case OPT_ROOM_STR:
            if (optarg[0] == '\0' || strlen(optarg) > USERSIG_MAX_ROOM_STR)
                die_usage(usage, "--room-str must be 1 to 64 bytes");
            o->room_str = optarg;
            break;
        case OPT_PRIVILEGES:
            if (usersig_http_parse_u64(optarg, 255, &o->privileges) != 0)
                die_usage(usage, "--privileges must be 0 to 255");
            o->has_privileges = 1;
            break;
        case OPT_STRICT:
            o->strict = 1;
            break;
        case OPT_BATCH:
            o->batch = 1;
            break;
        default:
            die_usage(usage, "unexpected option");
        }
    }
    if (o->has_room_id && o->room_str != NULL)
        die_usage(usage, "give --room-id or --room-str, not both");
    if (o->key_file != NULL && o->public_key_file != NULL)
        die_usage(usage, "give --key-file or --public-key-file, not both");
}

/* Writes s for a batch error line: printable bytes as they are, others as \xHH, at most 64. */
static void put_escaped_id(FILE *out, const char *s, size_t n)
{
    size_t shown = n > 64 ? 64 : n;
    for (size_t i = 0; i < shown; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c <= 0x7e && c != '\\')
            putc_unlocked((int)c, out);
        else
            fprintf(out, "\\x%02x", c);
    }
    if (n > shown)
        fputs("...", out);
}

static int sign_batch(struct usersig_signer *signer, const struct common_opts *o)
{
    char token[USERSIG_TOKEN_BUF];
    char *line = NULL;
    size_t cap = 0, lineno = 0, failed = 0;
    ssize_t n;
    static char outbuf[1 << 20];

    setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
    /* Interrupted, it stops after a whole line, says where to resume, and exits 128 + the
     * signal: stdout never ends in a cut token. */
    usersig_catch_interrupts();
    while (!usersig_interrupted() && (n = getline(&line, &cap, stdin)) != -1) {
        size_t len = (size_t)n, tok_len = 0;
        lineno++;
        if (len > 0 && line[len - 1] == '\n')
            len--;
        if (len > 0 && line[len - 1] == '\r')
            len--;
        struct usersig_params p = {
            .identifier = line,
            .identifier_len = len,
            .expire = (uint32_t)o->expire,
            .time = o->has_time ? (int64_t)o->time : (int64_t)time(NULL),
        };
        enum usersig_rc rc = usersig_sign(signer, &p, token, sizeof token, &tok_len);
        if (rc == USERSIG_OK) {
            fwrite_unlocked(line, 1, len, stdout);
            putc_unlocked('\t', stdout);
            fwrite_unlocked(token, 1, tok_len, stdout);
            putc_unlocked('\n', stdout);
        } else {
            failed++;
            put_escaped_id(stdout, line, len);
            fprintf(stdout, "\t!error %s: %s\n", usersig_rc_name(rc), usersig_rc_message(rc));
            if (failed <= 10)
                fprintf(stderr, "%s: line %zu: %s\n", prog, lineno, usersig_rc_message(rc));
        }
    }
    free(line);
    int sig = usersig_interrupted();
    if (ferror(stdin) && sig == 0) {
        fprintf(stderr, "%s: reading stdin: %s\n", prog, strerror(errno));
        return EXIT_USAGE;
    }
    if (fflush(stdout) != 0) {
        fprintf(stderr, "%s: writing stdout: %s\n", prog, strerror(errno));
        return EXIT_USAGE;
    }
    if (sig != 0) {
        fprintf(stderr,
                "%s: interrupted (signal %d) after %zu input lines, all of them in stdout: "
                "resume from line %zu (tail -n +%zu)\n",
                prog, sig, lineno, lineno + 1, lineno + 1);
        return 128 + sig;
    }
    if (failed > 0) {
        fprintf(stderr, "%s: %zu of %zu identifiers failed\n", prog, failed, lineno);
        return EXIT_FAILED;
    }
    return 0;
}

static int cmd_sign(int argc, char **argv)
{
    static const int allowed[] = {OPT_SDKAPPID,   OPT_KEY_FILE, OPT_IDENTIFIER, OPT_EXPIRE,
                                  OPT_TIME,       OPT_LEVEL,    OPT_ROOM_ID,    OPT_ROOM_STR,
                                  OPT_PRIVILEGES, OPT_STRICT,   OPT_BATCH,      0};
    struct common_opts o;
    struct usersig_key *key = NULL;
    struct usersig_signer *signer = NULL;
    int status = EXIT_USAGE;

    parse_opts(argc, argv, usage_sign, allowed, &o);
    if (optind < argc)
        die_usage(usage_sign, "unexpected argument after the options (sign takes none)");
    if (o.sdkappid == 0)
        die_usage(usage_sign, "--sdkappid is required");
    if (o.batch && (o.identifier != NULL || o.has_room_id || o.room_str != NULL))
        die_usage(usage_sign, "--batch reads identifiers from stdin; it takes no --identifier "
                              "or room");
    if (!o.batch && o.identifier == NULL)
        die_usage(usage_sign, "--identifier is required (or --batch)");
    if (o.has_privileges && !o.has_room_id && o.room_str == NULL)
        die_usage(usage_sign, "--privileges goes with --room-id or --room-str");

    key = load_key(o.key_file, NULL);
    if (key == NULL)
        goto done;
    enum usersig_rc rc =
        usersig_signer_new(key, (uint32_t)o.sdkappid, (int)o.level,
                           o.strict ? USERSIG_ID_STRICT : USERSIG_ID_PRINTABLE, &signer);
    if (rc != USERSIG_OK) {
        fprintf(stderr, "%s: %s\n", prog, usersig_rc_message(rc));
        goto done;
    }
    if (o.batch) {
        if (usersig_stdin_refused("identifiers"))
            goto done;
        status = sign_batch(signer, &o);
        goto done;
    }
    struct usersig_params p = {
        .identifier = o.identifier,
        .identifier_len = strlen(o.identifier),
        .expire = (uint32_t)o.expire,
        .time = o.has_time ? (int64_t)o.time : (int64_t)time(NULL),
    };
    if (o.has_room_id) {
        p.room.kind = USERSIG_ROOM_NUMERIC;
        p.room.room_id = (uint32_t)o.room_id;
    } else if (o.room_str != NULL) {
        p.room.kind = USERSIG_ROOM_STRING;
        p.room.room_str = o.room_str;
        p.room.room_str_len = strlen(o.room_str);
    }
    p.room.privilege_map = (uint32_t)o.privileges;
    char token[USERSIG_TOKEN_BUF];
    size_t tok_len;
    rc = usersig_sign(signer, &p, token, sizeof token, &tok_len);
    if (rc != USERSIG_OK) {
        fprintf(stderr, "%s: %s: %s\n", prog, usersig_rc_name(rc), usersig_rc_message(rc));
        status = EXIT_FAILED;
        goto done;
    }
    printf("%s\n", token);
    status = 0;
done:
    usersig_signer_free(signer);
    usersig_key_free(key);
    return status;
}

/* '<verdict> <tencent_code>: <explanation>', the code '-' for a verdict Tencent has none for
 * (room_mismatch, privilege_missing: 0 would read as success). */
static void print_verdict(enum usersig_verdict v)
{
    int code = usersig_verdict_tencent_code(v);
    if (code != 0)
        printf("%s %d: %s\n", usersig_verdict_name(v), code, usersig_verdict_message(v));
    else
        printf("%s -: %s\n", usersig_verdict_name(v), usersig_verdict_message(v));
}

static int cmd_verify(int argc, char **argv)
{
    static const int allowed[] = {OPT_SDKAPPID,   OPT_KEY_FILE,   OPT_PUBLIC_KEY_FILE,
                                  OPT_IDENTIFIER, OPT_NOW,        OPT_ROOM_ID,
                                  OPT_ROOM_STR,   OPT_PRIVILEGES, 0};
    struct common_opts o;
    parse_opts(argc, argv, usage_verify, allowed, &o);
    if (o.sdkappid == 0)
        die_usage(usage_verify, "--sdkappid is required");
    if (o.identifier == NULL)
        die_usage(usage_verify, "--identifier is required");
    if (argc - optind > 1)
        die_usage(usage_verify, "unexpected argument after the token (verify takes one)");
    if (o.has_privileges && !o.has_room_id && o.room_str == NULL)
        die_usage(usage_verify, "--privileges goes with --room-id or --room-str");

    struct usersig_key *key = load_key(o.key_file, o.public_key_file);
    if (key == NULL)
        return EXIT_USAGE;
    size_t len = 0;
    char *token = read_token(optind < argc ? argv[optind] : NULL, &len);
    if (token == NULL) {
        usersig_key_free(key);
        return EXIT_USAGE;
    }
    struct usersig_expect e = {
        .identifier = o.identifier,
        .identifier_len = strlen(o.identifier),
        .sdkappid = (uint32_t)o.sdkappid,
    };
    if (o.has_room_id) {
        e.room_kind = USERSIG_ROOM_NUMERIC;
        e.room_id = (uint32_t)o.room_id;
    } else if (o.room_str != NULL) {
        e.room_kind = USERSIG_ROOM_STRING;
        e.room_str = o.room_str;
        e.room_str_len = strlen(o.room_str);
    }
    e.privileges = o.has_privileges ? (uint32_t)o.privileges : 0;
    int64_t now = o.has_now ? (int64_t)o.now : (int64_t)time(NULL);
    enum usersig_verdict v = usersig_verify(token, len, &e, key, now, NULL);
    free(token);
    usersig_key_free(key);
    if (v == USERSIG_VALID) {
        puts("ok");
        return 0;
    }
    print_verdict(v);
    return EXIT_FAILED;
}

static int cmd_decode(int argc, char **argv)
{
    static const int allowed[] = {0};
    struct common_opts o;
    parse_opts(argc, argv, usage_decode, allowed, &o);
    if (argc - optind > 1)
        die_usage(usage_decode, "unexpected argument after the token (decode takes one)");
    size_t len = 0;
    char *token = read_token(optind < argc ? argv[optind] : NULL, &len);
    if (token == NULL)
        return EXIT_USAGE;
    struct usersig_decoded *d = malloc(sizeof *d);
    if (d == NULL) {
        free(token);
        fprintf(stderr, "%s: out of memory\n", prog);
        return EXIT_USAGE;
    }
    enum usersig_verdict v = usersig_decode(token, len, d);
    free(token);
    int status = 0;
    if (v != USERSIG_VALID) {
        print_verdict(v);
        status = EXIT_FAILED;
    } else {
        /* The document as it is, newlines folded so it stays one line. */
        for (size_t i = 0; i < d->document_len; i++)
            putchar(d->document[i] == '\n' || d->document[i] == '\r' ? ' ' : d->document[i]);
        putchar('\n');
        if (d->has_room) {
            printf("{\"userbuf\":{\"version\":%d,\"account\":\"", d->room.version);
            for (const char *c = d->room.account; *c; c++) {
                if (*c == '"' || *c == '\\')
                    putchar('\\');
                if ((unsigned char)*c < 0x20)
                    printf("\\u%04x", (unsigned char)*c);
                else
                    putchar(*c);
            }
            printf("\",\"sdkappid\":%" PRIu32 ",\"room_id\":%" PRIu32, d->room.sdkappid,
                   d->room.room_id);
            if (d->room.version == 1) {
                printf(",\"room_str\":\"");
                for (const char *c = d->room.room_str; *c; c++) {
                    if (*c == '"' || *c == '\\')
                        putchar('\\');
                    if ((unsigned char)*c < 0x20)
                        printf("\\u%04x", (unsigned char)*c);
                    else
                        putchar(*c);
                }
                putchar('"');
            }
            printf(",\"expire_at\":%" PRIu32 ",\"privilege_map\":%" PRIu32
                   ",\"account_type\":%" PRIu32 "}}\n",
                   d->room.expire_at, d->room.privilege_map, d->room.account_type);
        }
    }
    free(d);
    return status;
}

/* `usersig --version`: this build's release and commit, then the codec's. */
static int cmd_version(int argc, char **argv)
{
    (void)argv;
    if (argc > 1) {
        fprintf(stderr, "%s: --version takes no arguments\n\n%s", prog, usage_main);
        return EXIT_USAGE;
    }
    printf("%s %s (commit %s)\n", prog, USERSIGD_VERSION, USERSIGD_COMMIT);
    printf("libusersig %s; formats: %s\n", usersig_version(), usersig_formats());
    return 0;
}

/* 1 to 16 lower-case letters and dashes, as every command and option name of the tool is. */
static bool looks_like_command(const char *w)
{
    size_t n = strspn(w, "abcdefghijklmnopqrstuvwxyz-");
    return n >= 1 && n <= 16 && (w[n] == '\0' || w[n] == '=');
}

int main(int argc, char **argv)
{
    char name[USERSIG_ARGS_MAX_NAME * 4 + 8];
    int closed = usersig_std_fds();
    if (closed < 0 || (closed & USERSIG_STDOUT_CLOSED)) {
        /* Nothing could reach it: refused rather than thrown away. */
        fprintf(stderr, "%s: standard output is closed: give it a file or a pipe\n", prog);
        return EXIT_USAGE;
    }
    if (argc < 2) {
        fputs(usage_main, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        fputs(usage_main, stdout);
        if (fflush(stdout) != 0 || ferror(stdout)) {
            fprintf(stderr, "%s: writing stdout: %s\n", prog, strerror(errno));
            return EXIT_USAGE;
        }
        return 0;
    }
    int status;
    if (strcmp(cmd, "--version") == 0 || strcmp(cmd, "version") == 0)
        status = cmd_version(argc - 1, argv + 1);
    else if (strcmp(cmd, "sign") == 0)
        status = cmd_sign(argc - 1, argv + 1);
    else if (strcmp(cmd, "verify") == 0)
        status = cmd_verify(argc - 1, argv + 1);
    else if (strcmp(cmd, "decode") == 0)
        status = cmd_decode(argc - 1, argv + 1);
    else if (strcmp(cmd, "batch") == 0)
        status = usersig_batch_main(argc - 1, argv + 1);
    else if (strcmp(cmd, "import") == 0)
        status = usersig_import_main(argc - 1, argv + 1);
    else {
        /* A pasted secret must not reach the terminal's scroll-back or a log: the word is
         * shown only when it looks like a command name. */
        if (looks_like_command(cmd))
            fprintf(stderr, "%s: unknown command '%s'\n\n%s", prog,
                    usersig_args_name(cmd, name, sizeof name), usage_main);
        else
            fprintf(stderr,
                    "%s: unknown command (not shown: it does not look like a command name)\n\n%s",
                    prog, usage_main);
        return EXIT_USAGE;
    }
    /* A token that never reached stdout (full disk, closed pipe) is a failure of the
     * environment, like a usage error: not a token that failed verification. */
    if ((fflush(stdout) != 0 || ferror(stdout)) && (status == 0 || status == EXIT_FAILED)) {
        fprintf(stderr, "%s: writing stdout: %s\n", prog, strerror(errno));
        return EXIT_USAGE;
    }
    return status;
}
