/*
 * Settings. The table below is the one place a setting is declared: config_load() parses and
 * bounds-checks by it, fills the defaults from it, and config_describe() prints it as the
 * documentation (as pgbouncer's CF_ABS table and nginx's ngx_command_t do). Order: defaults, then
 * the file, then the environment.
 */
#include "config.h"
#include "config_int.h"
#include "log.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

enum setting_type {
    T_STRING,   /* min/max: length in bytes */
    T_ADDRESS,  /* host:port */
    T_INT,      /* an int */
    T_SIZE,     /* a uint64_t of bytes */
    T_DURATION, /* an int64_t of milliseconds */
    T_BOOL,     /* an int, 0 or 1 */
    T_ENUM,     /* an int-sized enum: the index of the value among choices */
};

struct setting {
    const char *name;
    enum setting_type type;
    const char *def; /* in the file's notation */
    int64_t min, max;
    const char *choices; /* T_ENUM: "a|b|c" */
    const char *env;
    size_t offset; /* of the field in struct config */
    const char *description;
    int live; /* SIGHUP applies a new value to the running server; others need a restart */
};

#define F(field) offsetof(struct config, field)
#define MASTER_KEY_NAME "/master.key" /* in data_dir, when master_key_file is empty */

/* T_ENUM stores through an int lvalue. */
_Static_assert(sizeof(enum log_level) == sizeof(int), "enum log_level is int-sized");
_Static_assert(sizeof(enum log_format) == sizeof(int), "enum log_format is int-sized");

static const struct setting SETTINGS[] = {
    {"listen", T_ADDRESS, "127.0.0.1:8080", 0, 0, NULL, "USERSIGD_LISTEN", F(listen),
     "Address of the admin API, host:port ([::1]:8080 for IPv6, 0.0.0.0:8080 for all; port 0 "
     "takes any free port, logged as \"listening on\").",
     0},
    {"database_url", T_STRING, "", 0, CONFIG_STRING_MAX - 1, NULL, "USERSIGD_DATABASE_URL",
     F(database_url),
     "PostgreSQL URI or key=value string (password never logged); empty runs one in data_dir.", 0},
    {"master_key_file", T_STRING, "", 0, CONFIG_STRING_MAX - 1, NULL, "USERSIGD_MASTER_KEY_FILE",
     F(master_key_file),
     "The master key: 64 hex characters, mode 0600; empty means <data_dir>/master.key.", 0},
    {"data_dir", T_STRING, ".usersigd", 1, CONFIG_STRING_MAX - sizeof MASTER_KEY_NAME, NULL,
     "USERSIGD_DATA_DIR", F(data_dir),
     "Directory of the server's own files: the master key, the private PostgreSQL.", 0},
    {"migrations_dir", T_STRING, NULL, 1, CONFIG_STRING_MAX - 1, NULL, "USERSIGD_MIGRATIONS_DIR",
     F(migrations_dir),
     "Directory of the schema migrations (0001_init.sql, ...). Default, found at run time: "
     "<directory of the binary>/../" USERSIGD_MIGRATIONS_REL " when it exists (an installed "
     "usersigd), else the source tree's.",
     0},
    {"ui_dir", T_STRING, NULL, 0, CONFIG_STRING_MAX - 1, NULL, "USERSIGD_UI_DIR", F(ui_dir),
     "Directory of the web dashboard's files, served at /ui/ (read into memory at start and on "
     "SIGHUP); empty: no dashboard. Default, found at run time: <directory of the "
     "binary>/../" USERSIGD_UI_REL
     " when it exists (an installed usersigd), else the source tree's admin-api/ui.",
     0},
    {"max_body_size", T_SIZE, "1M", KB, GB, NULL, "USERSIGD_MAX_BODY_SIZE", F(max_body_size),
     "Largest request body accepted, except on batch signing.", 0},
    {"batch_max_body_size", T_SIZE, "64M", KB, GB, NULL, "USERSIGD_BATCH_MAX_BODY_SIZE",
     F(batch_max_body_size),
     "Largest application/json body of batch signing (checked whole before any line is "
     "signed); text/plain and NDJSON bodies stream, without a size limit.",
     0},
    {"cors_origins", T_STRING, "", 0, CONFIG_STRING_MAX - 1, NULL, "USERSIGD_CORS_ORIGINS",
     F(cors_origins),
     "Origins a browser may call the admin API from, comma-separated, each exactly as the "
     "browser sends it (https://dash.example.com, a port when not the default); empty: no "
     "cross-origin requests (CORS off). A preflight (OPTIONS) needs no token.",
     0},
    {"tencent_allow_insecure_base_url", T_BOOL, "false", 0, 0, NULL,
     "USERSIGD_TENCENT_ALLOW_INSECURE_BASE_URL", F(tencent_allow_insecure_base_url),
     "For tests only: let an app's tencent_base_url be any http or https URL, loopback "
     "included (a stand-in for Tencent's REST API). Otherwise it must be https:// and one of "
     "Tencent's region hosts.",
     0},
    {"log_level", T_ENUM, "info", 0, 0, "debug|info|warn|error", "USERSIGD_LOG_LEVEL", F(log_level),
     "Least severe level logged.", 1},
    {"log_format", T_ENUM, "text", 0, 0, "text|json", "USERSIGD_LOG_FORMAT", F(log_format),
     "Log lines as text, or as JSON objects one a line (time, level, request_id, message; access "
     "lines add method, path, route, status, code, duration_ms and actor).",
     0},
    {"request_timeout", T_DURATION, "30s", SEC, HOUR, NULL, "USERSIGD_REQUEST_TIMEOUT",
     F(request_timeout_ms), "Time a client has to send a request and read its reply.", 0},
    {"workers", T_INT, "0", 0, 256, NULL, "USERSIGD_WORKERS", F(workers),
     "Signing threads; 0 means one per online CPU.", 0},
    {"batch_max_running", T_INT, "8", 1, 1024, NULL, "USERSIGD_BATCH_MAX_RUNNING",
     F(batch_max_running),
     "Batch signing requests this process runs at once (their workers are shared fairly); one "
     "more is refused with 429 too_many_batches and Retry-After. Each running batch holds a "
     "few MB whatever its size, so this bounds the memory batches take.",
     0},
    {"rate_limit_processes", T_INT, "1", 1, 1024, NULL, "USERSIGD_RATE_LIMIT_PROCESSES",
     F(rate_limit_processes),
     "How many usersigd serve processes share the database: each enforces an app's or a "
     "token's signs_per_second divided by this, in its own memory (batch_tokens_per_day is "
     "counted in the database and needs no division).",
     0},
    {"db_connections", T_INT, "4", 1, 64, NULL, "USERSIGD_DB_CONNECTIONS", F(db_connections),
     "Database connections the API's requests use, each driven by a thread of its own, so that "
     "the event loop never waits on PostgreSQL.",
     0},
    {"tls_cert_file", T_STRING, "", 0, CONFIG_STRING_MAX - 1, NULL, "USERSIGD_TLS_CERT_FILE",
     F(tls_cert_file),
     "PEM certificate chain of the admin API (the server's certificate first, then its "
     "intermediates); with tls_key_file the listener speaks only HTTPS (TLS 1.2 or later). "
     "SIGHUP reads the same files again for new connections.",
     0},
    {"tls_key_file", T_STRING, "", 0, CONFIG_STRING_MAX - 1, NULL, "USERSIGD_TLS_KEY_FILE",
     F(tls_key_file), "PEM private key of tls_cert_file's certificate (keep it mode 0600).", 0},
    {"tls_client_ca_file", T_STRING, "", 0, CONFIG_STRING_MAX - 1, NULL,
     "USERSIGD_TLS_CLIENT_CA_FILE", F(tls_client_ca_file),
     "PEM CA certificates: when set, every client must present a certificate issued by one of "
     "them (mutual TLS), on top of its API token. Empty: no client certificates.",
     0},
    {"allow_plain_http", T_BOOL, "false", 0, 0, NULL, "USERSIGD_ALLOW_PLAIN_HTTP",
     F(allow_plain_http),
     "Without a certificate, serve plain HTTP on a listen address that is not loopback (tokens "
     "and UserSigs then cross the network in clear: only behind a TLS-terminating proxy on a "
     "trusted network). Plain HTTP on 127.0.0.0/8, ::1 or localhost needs no permission.",
     0},
    {"tencent_ca_file", T_STRING, "", 0, CONFIG_STRING_MAX - 1, NULL, "USERSIGD_TENCENT_CA_FILE",
     F(tencent_ca_file),
     "PEM CA certificates that Tencent's REST API servers are verified against; empty: the "
     "system's store. Certificates and host names are always verified.",
     0},
    {"tencent_connect_timeout", T_DURATION, "5s", 100, MIN, NULL,
     "USERSIGD_TENCENT_CONNECT_TIMEOUT", F(tencent_connect_timeout_ms),
     "Time a call to Tencent's REST API has to connect (TCP and TLS).", 0},
    {"tencent_timeout", T_DURATION, "10s", SEC, 5 * MIN, NULL, "USERSIGD_TENCENT_TIMEOUT",
     F(tencent_timeout_ms),
     "Time a call to Tencent's REST API has in all, connecting included; a call over it fails "
     "as a timeout and is not retried.",
     0},
    {"tencent_rate", T_INT, "95", 1, 10000, NULL, "USERSIGD_TENCENT_RATE", F(tencent_rate),
     "Calls a second to Tencent's REST API per app, paced (the gateway and account import "
     "share them; the default keeps under Tencent's published limits, 100 to 200 a second per "
     "command). A call waits up to 2 s for its turn; past that it is refused with 429 and "
     "Retry-After.",
     0},
    {"audit_checkpoint_events", T_INT, "1000", 0, 1000000000, NULL,
     "USERSIGD_AUDIT_CHECKPOINT_EVENTS", F(audit_checkpoint_events),
     "A signed audit checkpoint (the chain's latest seq and MAC, Ed25519) once this many events "
     "follow the last one; 0: not by count.",
     0},
    {"audit_checkpoint_seconds", T_INT, "3600", 0, 604800, NULL,
     "USERSIGD_AUDIT_CHECKPOINT_SECONDS", F(audit_checkpoint_seconds),
     "A signed audit checkpoint this often (seconds) when events came since the last one; 0: "
     "not by time (both 0: no checkpoints).",
     0},
    {"verify_counts_flush_seconds", T_INT, "5", 1, 3600, NULL,
     "USERSIGD_VERIFY_COUNTS_FLUSH_SECONDS", F(verify_counts_flush_seconds),
     "How often the verifies counted in memory (per key version and verdict) are added to the "
     "database, in one statement.",
     0},
    {"webhook_allow_insecure_url", T_BOOL, "false", 0, 0, NULL,
     "USERSIGD_WEBHOOK_ALLOW_INSECURE_URL", F(webhook_allow_insecure_url),
     "Tests only: webhook URLs may be http:// and name a loopback or private host (otherwise "
     "https:// to a public host name).",
     0},
    {"webhook_timeout", T_DURATION, "10s", 100, 5 * MIN, NULL, "USERSIGD_WEBHOOK_TIMEOUT",
     F(webhook_timeout_ms),
     "How long a webhook delivery attempt may take, connect included; past it the attempt "
     "failed and is tried again later.",
     0},
    {"webhook_retry_min", T_DURATION, "1s", 10, HOUR, NULL, "USERSIGD_WEBHOOK_RETRY_MIN",
     F(webhook_retry_min_ms),
     "The wait after a webhook delivery's first failed attempt; it doubles after each one, "
     "up to webhook_retry_max.",
     0},
    {"webhook_retry_max", T_DURATION, "10m", 10, 24 * HOUR, NULL, "USERSIGD_WEBHOOK_RETRY_MAX",
     F(webhook_retry_max_ms), "The longest wait between two attempts of a webhook delivery.", 0},
    {"webhook_max_attempts", T_INT, "15", 1, 100, NULL, "USERSIGD_WEBHOOK_MAX_ATTEMPTS",
     F(webhook_max_attempts),
     "Attempts of a webhook delivery before it is marked failed (it can be re-sent through the "
     "API); the endpoint's next deliveries then go on.",
     0},
};
#define N_SETTINGS (sizeof SETTINGS / sizeof SETTINGS[0])

/* What a setting accepts, as told in errors and in config_describe(). */
static void describe_allowed(const struct setting *s, char *out, size_t cap)
{
    char lo[32], hi[32];
    switch (s->type) {
    case T_STRING:
        if (s->min > 0)
            snprintf(out, cap, "a non-empty string of at most %" PRId64 " bytes", s->max);
        else
            snprintf(out, cap, "a string of at most %" PRId64 " bytes", s->max);
        return;
    case T_ADDRESS:
        snprintf(out, cap, "host:port, port 0..65535 (0: any free port)");
        return;
    case T_INT:
        snprintf(out, cap, "an integer %" PRId64 "..%" PRId64, s->min, s->max);
        return;
    case T_SIZE:
        config_format_size(s->min, lo, sizeof lo);
        config_format_size(s->max, hi, sizeof hi);
        snprintf(out, cap, "a size %s..%s (suffix k, M or G)", lo, hi);
        return;
    case T_DURATION:
        config_format_duration(s->min, lo, sizeof lo);
        config_format_duration(s->max, hi, sizeof hi);
        snprintf(out, cap, "a duration %s..%s (suffix ms, s, m, h or d)", lo, hi);
        return;
    case T_BOOL:
        snprintf(out, cap, "true or false");
        return;
    case T_ENUM:
        snprintf(out, cap, "one of %s", s->choices);
        return;
    }
    snprintf(out, cap, "?");
}

/* Index of value among "a|b|c", or -1. */
static int enum_index(const char *choices, const char *value)
{
    size_t n = strlen(value);
    int i = 0;
    for (const char *p = choices;; i++) {
        const char *end = strchr(p, '|');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (len == n && n > 0 && memcmp(p, value, n) == 0)
            return i;
        if (end == NULL)
            return -1;
        p = end + 1;
    }
}

/* Sets one setting from its text. On failure writes why (the value quoted back only when it
 * cannot be a secret, that is for every type but T_STRING) and returns -1. */
static int apply(const struct setting *s, const char *value, struct config *cfg, char *why,
                 size_t cap)
{
    char *field = (char *)cfg + s->offset;
    char allowed[128];
    size_t len = strlen(value);
    int64_t v = 0;
    uint64_t u = 0;
    int b = 0;

    /* A control character (a carriage return alone does not end a line) would join what
     * follows it into this value, and an error that quoted the value would quote that too: a
     * password among it. Refused without quoting anything. */
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)value[i] < 0x20 || value[i] == 0x7f) {
            snprintf(why, cap, "the value holds a control character (byte %zu)", i + 1);
            return -1;
        }
    describe_allowed(s, allowed, sizeof allowed);
    switch (s->type) {
    case T_STRING:
        for (size_t i = 0; i < len; i++) {
            if ((unsigned char)value[i] < 0x20 || value[i] == 0x7f) {
                snprintf(why, cap, "the value holds a control character");
                return -1;
            }
        }
        if ((int64_t)len < s->min || (int64_t)len > s->max) {
            snprintf(why, cap, "the value is %zu bytes; allowed: %s", len, allowed);
            return -1;
        }
        memcpy(field, value, len + 1);
        return 0;
    case T_ADDRESS: {
        char host[CONFIG_STRING_MAX];
        uint16_t port;
        if (len >= CONFIG_STRING_MAX ||
            config_parse_address(value, host, sizeof host, &port) != 0) {
            snprintf(why, cap, "\"%.64s\" is not an address; allowed: %s", value, allowed);
            return -1;
        }
        memcpy(field, value, len + 1);
        return 0;
    }
    case T_INT:
        if (config_parse_int(value, &v) != 0) {
            snprintf(why, cap, "\"%.64s\" is not an integer; allowed: %s", value, allowed);
            return -1;
        }
        if (v < s->min || v > s->max) {
            snprintf(why, cap, "%" PRId64 " is out of range; allowed: %s", v, allowed);
            return -1;
        }
        *(int *)(void *)field = (int)v;
        return 0;
    case T_SIZE:
        if (config_parse_size(value, &u) != 0) {
            snprintf(why, cap, "\"%.64s\" is not a size; allowed: %s", value, allowed);
            return -1;
        }
        if (u < (uint64_t)s->min || u > (uint64_t)s->max) {
            snprintf(why, cap, "%s is out of range; allowed: %s", value, allowed);
            return -1;
        }
        *(uint64_t *)(void *)field = u;
        return 0;
    case T_DURATION:
        if (config_parse_duration(value, &v) != 0) {
            snprintf(why, cap, "\"%.64s\" is not a duration; allowed: %s", value, allowed);
            return -1;
        }
        if (v < s->min || v > s->max) {
            snprintf(why, cap, "%s is out of range; allowed: %s", value, allowed);
            return -1;
        }
        *(int64_t *)(void *)field = v;
        return 0;
    case T_BOOL:
        if (config_parse_bool(value, &b) != 0) {
            snprintf(why, cap, "\"%.64s\" is not a boolean; allowed: %s", value, allowed);
            return -1;
        }
        *(int *)(void *)field = b;
        return 0;
    case T_ENUM:
        b = enum_index(s->choices, value);
        if (b < 0) {
            snprintf(why, cap, "\"%.64s\" is not allowed; allowed: %s", value, allowed);
            return -1;
        }
        *(int *)(void *)field = b;
        return 0;
    }
    snprintf(why, cap, "unknown setting type");
    return -1;
}

static const struct setting *lookup(const char *name, size_t len)
{
    for (size_t i = 0; i < N_SETTINGS; i++)
        if (strlen(SETTINGS[i].name) == len && memcmp(SETTINGS[i].name, name, len) == 0)
            return &SETTINGS[i];
    return NULL;
}

/* ---- The file ------------------------------------------------------------------------------- */

static char *trim(char *s)
{
    char *end;
    while (*s == ' ' || *s == '\t')
        s++;
    end = s + strlen(s);
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' || end[-1] == '\r'))
        end--;
    *end = '\0';
    return s;
}

static enum config_rc load_file(const char *path, struct config *cfg, char *err, size_t errlen)
{
    enum config_rc rc = CONFIG_INVALID;
    long set_on[N_SETTINGS] = {0}; /* line where each setting was set, 0 when not yet */
    FILE *f = fopen(path, "re");
    char *line = NULL;
    size_t cap = 0;
    long lineno = 0;
    ssize_t n;

    if (f == NULL) {
        log_errbuf(err, errlen, "cannot open config file %s: %s", path, strerror(errno));
        return CONFIG_CANNOT_READ;
    }
    errno = 0;
    while ((n = getline(&line, &cap, f)) != -1) {
        char *name, *value, *eq, why[256];
        const struct setting *s;

        lineno++;
        if ((size_t)n > CONFIG_LINE_MAX) {
            log_errbuf(err, errlen, "%s:%ld: line longer than %d bytes", path, lineno,
                       CONFIG_LINE_MAX);
            goto done;
        }
        if (strlen(line) != (size_t)n) {
            log_errbuf(err, errlen, "%s:%ld: line holds a NUL byte", path, lineno);
            goto done;
        }
        /* The line's end (LF, or CR LF) aside, a control character is refused without quoting
         * the line: a CR alone would otherwise join what follows into one name or value. */
        size_t body = (size_t)n;
        if (body > 0 && line[body - 1] == '\n')
            body--;
        if (body > 0 && line[body - 1] == '\r')
            body--;
        for (size_t i = 0; i < body; i++)
            if (((unsigned char)line[i] < 0x20 && line[i] != '\t') || line[i] == 0x7f) {
                log_errbuf(err, errlen, "%s:%ld: line holds a control character (byte %zu)", path,
                           lineno, i + 1);
                goto done;
            }
        name = trim(line);
        if (name[0] == '\0' || name[0] == '#')
            continue;
        eq = strchr(name, '=');
        if (eq == NULL) {
            log_errbuf(err, errlen, "%s:%ld: expected \"name = value\"", path, lineno);
            goto done;
        }
        *eq = '\0';
        value = trim(eq + 1);
        name = trim(name);
        s = lookup(name, strlen(name));
        if (s == NULL) {
            log_errbuf(err, errlen,
                       "%s:%ld: unknown setting \"%.64s\" (usersigd --help-config lists them)",
                       path, lineno, name);
            goto done;
        }
        if (set_on[s - SETTINGS] != 0) {
            log_errbuf(err, errlen, "%s:%ld: %s: set twice (first on line %ld)", path, lineno,
                       s->name, set_on[s - SETTINGS]);
            goto done;
        }
        set_on[s - SETTINGS] = lineno;
        if (value[0] == '"') {
            size_t len = strlen(value);
            if (len < 2 || value[len - 1] != '"') {
                log_errbuf(err, errlen, "%s:%ld: %s: unterminated quote", path, lineno, s->name);
                goto done;
            }
            value[len - 1] = '\0';
            value++;
        }
        if (apply(s, value, cfg, why, sizeof why) != 0) {
            log_errbuf(err, errlen, "%s:%ld: %s: %s", path, lineno, s->name, why);
            goto done;
        }
        errno = 0;
    }
    if (errno == ENOMEM) {
        log_errbuf(err, errlen, "out of memory reading config file %s", path);
        rc = CONFIG_NO_MEMORY;
        goto done;
    }
    if (ferror(f)) {
        log_errbuf(err, errlen, "cannot read config file %s: %s", path,
                   strerror(errno != 0 ? errno : EIO));
        rc = CONFIG_CANNOT_READ;
        goto done;
    }
    rc = CONFIG_OK;
done:
    free(line);
    fclose(f);
    return rc;
}

/* ---- Defaults found at run time ------------------------------------------------------------ */

/* <directory of exe>/../rel, resolved, when it is a directory. */
static int dir_beside(const char *exe, const char *rel, char *out, size_t cap)
{
    char dir[PATH_MAX], cand[2 * PATH_MAX + 8], real[PATH_MAX];
    const char *slash = exe != NULL ? strrchr(exe, '/') : NULL;
    struct stat st;
    size_t n;

    if (slash == NULL || (size_t)(slash - exe) >= sizeof dir)
        return -1;
    memcpy(dir, exe, (size_t)(slash - exe));
    dir[slash - exe] = '\0';
    snprintf(cand, sizeof cand, "%s/../%s", dir[0] != '\0' ? dir : "", rel);
    if (stat(cand, &st) != 0 || !S_ISDIR(st.st_mode) || realpath(cand, real) == NULL)
        return -1;
    n = strlen(real);
    if (n >= cap)
        return -1;
    memcpy(out, real, n + 1);
    return 0;
}

int config_migrations_dir_beside(const char *exe, char *out, size_t cap)
{
    return dir_beside(exe, USERSIGD_MIGRATIONS_REL, out, cap);
}

/* rel beside the running binary, else fallback. */
static const char *default_dir(const char *rel, const char *fallback, char *out, size_t cap)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);

    if (n > 0) {
        exe[n] = '\0';
        if (dir_beside(exe, rel, out, cap) == 0)
            return out;
    }
    snprintf(out, cap, "%s", fallback);
    return out;
}

const char *config_default_migrations_dir(char *out, size_t cap)
{
    return default_dir(USERSIGD_MIGRATIONS_REL, USERSIGD_MIGRATIONS_DIR, out, cap);
}

const char *config_default_ui_dir(char *out, size_t cap)
{
    return default_dir(USERSIGD_UI_REL, USERSIGD_UI_DIR, out, cap);
}

/* A setting's default in the file's notation; buf (CONFIG_STRING_MAX) holds one found at run
 * time (def NULL in the table). */
static const char *setting_default(const struct setting *s, char *buf, size_t cap)
{
    if (s->def != NULL)
        return s->def;
    if (s->offset == F(migrations_dir))
        return config_default_migrations_dir(buf, cap);
    if (s->offset == F(ui_dir))
        return config_default_ui_dir(buf, cap);
    buf[0] = '\0';
    return buf;
}

/* ---- Loading -------------------------------------------------------------------------------- */

enum config_rc config_load(const char *path, struct config *out, char *err, size_t errlen)
{
    enum config_rc rc;
    char why[256];
    size_t n;

    if (err != NULL && errlen > 0)
        err[0] = '\0';
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < N_SETTINGS; i++) {
        char found[CONFIG_STRING_MAX];
        const char *def = setting_default(&SETTINGS[i], found, sizeof found);
        if (apply(&SETTINGS[i], def, out, why, sizeof why) != 0) {
            log_errbuf(err, errlen, "built-in default of %s: %s", SETTINGS[i].name, why);
            return CONFIG_INVALID;
        }
    }
    if (path != NULL) {
        rc = load_file(path, out, err, errlen);
        if (rc != CONFIG_OK)
            return rc;
    }
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const char *v = SETTINGS[i].env != NULL ? getenv(SETTINGS[i].env) : NULL;
        if (v != NULL && apply(&SETTINGS[i], v, out, why, sizeof why) != 0) {
            log_errbuf(err, errlen, "environment variable %s: %s: %s", SETTINGS[i].env,
                       SETTINGS[i].name, why);
            return CONFIG_INVALID;
        }
    }
    /* Derived values; their sources were checked above, so these cannot fail but for length. */
    if (config_parse_address(out->listen, out->listen_host, sizeof out->listen_host,
                             &out->listen_port) != 0) {
        log_errbuf(err, errlen, "listen: not host:port");
        return CONFIG_INVALID;
    }
    if (out->master_key_file[0] == '\0') {
        n = (size_t)snprintf(out->master_key_file, sizeof out->master_key_file,
                             "%s" MASTER_KEY_NAME, out->data_dir);
        if (n >= sizeof out->master_key_file) {
            log_errbuf(err, errlen, "master_key_file: <data_dir>/master.key is too long");
            return CONFIG_INVALID;
        }
    }
    return CONFIG_OK;
}

int config_host_is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;

    if (host == NULL)
        return 0;
    if (strcasecmp(host, "localhost") == 0)
        return 1; /* RFC 6761: always the loopback addresses */
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) != 1)
        return 0;
    if (IN6_IS_ADDR_LOOPBACK(&a6))
        return 1;
    return IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127;
}

int config_check_listener(const struct config *cfg, char *err, size_t errlen)
{
    int cert = cfg->tls_cert_file[0] != '\0', key = cfg->tls_key_file[0] != '\0';

    if (cert != key) {
        log_errbuf(err, errlen,
                   "%s is set but %s is not: TLS needs both the certificate chain file and its "
                   "private key file (USERSIGD_TLS_CERT_FILE, USERSIGD_TLS_KEY_FILE)",
                   cert ? "tls_cert_file" : "tls_key_file",
                   cert ? "tls_key_file" : "tls_cert_file");
        return -1;
    }
    if (!cert && cfg->tls_client_ca_file[0] != '\0') {
        log_errbuf(err, errlen,
                   "tls_client_ca_file is set without tls_cert_file and tls_key_file: client "
                   "certificates need TLS on the listener");
        return -1;
    }
    if (!cert && !cfg->allow_plain_http && !config_host_is_loopback(cfg->listen_host)) {
        log_errbuf(err, errlen,
                   "refusing plain HTTP on %.200s, which is not a loopback address: API tokens "
                   "and UserSigs would cross the network in clear. Set tls_cert_file and "
                   "tls_key_file (USERSIGD_TLS_CERT_FILE, USERSIGD_TLS_KEY_FILE), or listen on "
                   "127.0.0.1, or set allow_plain_http = true (USERSIGD_ALLOW_PLAIN_HTTP) behind "
                   "a TLS-terminating proxy",
                   cfg->listen);
        return -1;
    }
    return 0;
}

int config_workers(const struct config *cfg)
{
    long n;
    if (cfg->workers > 0)
        return cfg->workers;
    n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > 256 ? 256 : (int)n;
}

void config_describe(FILE *f)
{
    fprintf(f, "# usersigd settings. A config file holds \"name = value\" lines; \"#\" at the "
               "start of a line\n"
               "# begins a comment. Each setting's environment variable overrides the file. No "
               "setting holds\n"
               "# a secret: keys live in the master key file and the database.\n");
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const struct setting *s = &SETTINGS[i];
        char allowed[128], found[CONFIG_STRING_MAX];
        const char *def = setting_default(s, found, sizeof found);
        describe_allowed(s, allowed, sizeof allowed);
        fprintf(f, "\n# %s (environment %s): %s%s\n#   %s\n#%s =%s%s\n", s->name, s->env, allowed,
                s->live ? "; SIGHUP applies a change" : "", s->description, s->name,
                def[0] != '\0' ? " " : "", def);
    }
    fprintf(f, "\n# SIGHUP re-reads the config file and the environment: the settings marked so "
               "change at once,\n"
               "# a change to any other is logged as needing a restart.\n"
               "#\n"
               "# Other environment variables usersigd reads (not settings):\n"
               "#   PATH  where the embedded PostgreSQL's binaries are looked for (pg_config, "
               "pg_ctl),\n"
               "#         after `pg_config --bindir` and /usr/lib/postgresql/15/bin; also given "
               "to them\n"
               "#   TZ    given to the embedded PostgreSQL's commands\n"
               "#   PG*   libpq's own variables (PGPASSWORD, PGSSLMODE, PGCONNECT_TIMEOUT, ...) "
               "fill in\n"
               "#         what the connection string leaves out\n");
}

/* The bytes of a setting's field that hold its value. */
static int field_equal(const struct setting *s, const struct config *a, const struct config *b)
{
    const char *fa = (const char *)a + s->offset, *fb = (const char *)b + s->offset;
    switch (s->type) {
    case T_STRING:
    case T_ADDRESS:
        return strcmp(fa, fb) == 0;
    case T_INT:
    case T_BOOL:
    case T_ENUM:
        return memcmp(fa, fb, sizeof(int)) == 0;
    case T_SIZE:
        return memcmp(fa, fb, sizeof(uint64_t)) == 0;
    case T_DURATION:
        return memcmp(fa, fb, sizeof(int64_t)) == 0;
    }
    return 0;
}

int config_apply_live(struct config *cur, const struct config *fresh, char *restart, size_t cap)
{
    int n = 0;
    size_t used = 0;

    if (restart != NULL && cap > 0)
        restart[0] = '\0';
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const struct setting *s = &SETTINGS[i];
        if (field_equal(s, cur, fresh))
            continue;
        if (s->live) {
            size_t size = s->type == T_SIZE       ? sizeof(uint64_t)
                          : s->type == T_DURATION ? sizeof(int64_t)
                          : s->type == T_STRING || s->type == T_ADDRESS
                              ? strlen((const char *)fresh + s->offset) + 1
                              : sizeof(int);
            memcpy((char *)cur + s->offset, (const char *)fresh + s->offset, size);
            continue;
        }
        n++;
        if (restart != NULL && used < cap) {
            int w = snprintf(restart + used, cap - used, "%s%s", used > 0 ? ", " : "", s->name);
            used = w > 0 ? used + (size_t)w : used;
        }
    }
    return n;
}
