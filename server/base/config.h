/*
 * Settings: one table (config.c) gives each setting's name, type, default, bounds, environment
 * override and description; it is the parser, the defaults and `usersigd --help-config` at once.
 * The result is a plain struct the caller fills once and passes down as const; no globals.
 * No setting holds a secret: a password inside database_url is shown only through the store's
 * store_conninfo_redacted(), which parses it with libpq.
 */
#ifndef CONFIG_H
#define CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "log.h"

#define CONFIG_WUR __attribute__((warn_unused_result))

#define CONFIG_STRING_MAX 1024 /* bytes of a string setting, with its NUL */
#define CONFIG_LINE_MAX 4096   /* bytes of a config file line */
#define CONFIG_ERR_BUF 512     /* fits config_load() messages (a very long path truncates) */

enum config_rc {
    CONFIG_OK = 0,
    CONFIG_CANNOT_READ, /* the file named does not open or read */
    CONFIG_INVALID,     /* a line, a value or an environment variable is wrong */
    CONFIG_NO_MEMORY,
};

struct config {
    char listen[CONFIG_STRING_MAX];          /* "host:port" as given */
    char listen_host[CONFIG_STRING_MAX];     /* its host, brackets of an IPv6 address removed */
    uint16_t listen_port;                    /* its port, 1..65535 */
    char database_url[CONFIG_STRING_MAX];    /* empty: the embedded private PostgreSQL */
    char master_key_file[CONFIG_STRING_MAX]; /* never empty: <data_dir>/master.key by default */
    char data_dir[CONFIG_STRING_MAX];
    char migrations_dir[CONFIG_STRING_MAX]; /* default: config_default_migrations_dir() */
    char ui_dir[CONFIG_STRING_MAX];         /* default: config_default_ui_dir(); empty: off */
    char cors_origins[CONFIG_STRING_MAX];   /* comma-separated origins; empty: CORS off */
    int tencent_allow_insecure_base_url;    /* 1: tests: any http(s) tencent_base_url */
    uint64_t max_body_size;                 /* bytes */
    uint64_t batch_max_body_size;           /* bytes */
    enum log_level log_level;
    enum log_format log_format; /* applied with log_set_format() */
    int64_t request_timeout_ms;
    int workers;              /* 0: one per online CPU, see config_workers() */
    int batch_max_running;    /* batch requests signed at once; one more is 429 */
    int rate_limit_processes; /* serve processes sharing the database: each takes rate / this */
    int db_connections;       /* the database pool's size, 1..64 */
    /* TLS on the listener: both files, or neither (config_check_listener). */
    char tls_cert_file[CONFIG_STRING_MAX];      /* PEM chain, the server's certificate first */
    char tls_key_file[CONFIG_STRING_MAX];       /* PEM private key of that certificate */
    char tls_client_ca_file[CONFIG_STRING_MAX]; /* empty: no client certificates asked for */
    int allow_plain_http; /* 1: plain HTTP also on an address other than loopback */
    /* Calls to Tencent's REST API (server/tencent/outbound.c). */
    char tencent_ca_file[CONFIG_STRING_MAX]; /* empty: the system's CA store */
    int64_t tencent_connect_timeout_ms;
    int64_t tencent_timeout_ms;
    int tencent_rate; /* calls a second per app (the gateway's token bucket) */
    /* Audit checkpoints (server/core/checkpoint.h): every this many events, every this many
     * seconds (0: not by that); the verify counts' flush (server/core/usage.h), in seconds. */
    int audit_checkpoint_events;
    int audit_checkpoint_seconds;
    int verify_counts_flush_seconds;
    /* Webhooks (server/core/webhooks.h). */
    int webhook_allow_insecure_url; /* 1: tests: http:// and loopback webhook URLs */
    int64_t webhook_timeout_ms;
    int64_t webhook_retry_min_ms, webhook_retry_max_ms;
    int webhook_max_attempts;
};

/* Fills *out with the defaults, then the settings of the file at path (NULL: no file), then the
 * USERSIGD_* environment variables, which win over the file. On failure err (CONFIG_ERR_BUF
 * bytes is enough) gets one line naming the file and line (or the environment variable), the
 * setting and what is allowed, and *out is unspecified. The values of string settings are
 * never quoted back, as database_url may hold a password. */
enum config_rc config_load(const char *path, struct config *out, char *err,
                           size_t errlen) CONFIG_WUR;

/* Prints the table as documentation: every setting with its type and bounds, environment
 * variable, description and default, in the form of a commented config file. */
void config_describe(FILE *f);

/* SIGHUP: copies into *cur the settings of fresh (a config_load() just done) that may change
 * while serving (log_level), and writes into restart (cap bytes, may be NULL) the names of the
 * others whose value differs, comma-separated; those stay as they are in *cur. Returns how many
 * such restart-only settings differ. */
int config_apply_live(struct config *cur, const struct config *fresh, char *restart, size_t cap);

/* The default of migrations_dir: <directory of /proc/self/exe>/../USERSIGD_MIGRATIONS_REL when
 * that is a directory (an installed usersigd), else the compile-time USERSIGD_MIGRATIONS_DIR
 * (the source tree's). Writes it into out (CONFIG_STRING_MAX is enough) and returns out. */
const char *config_default_migrations_dir(char *out, size_t cap);

/* The first half of that: the migrations directory beside the binary at exe (an absolute path),
 * resolved, into out. 0, or -1 when there is none or it does not fit. */
int config_migrations_dir_beside(const char *exe, char *out, size_t cap) CONFIG_WUR;

/* The default of ui_dir (the dashboard's files), found as migrations_dir's is:
 * <directory of /proc/self/exe>/../USERSIGD_UI_REL when that is a directory, else the
 * compile-time USERSIGD_UI_DIR (the source tree's admin-api/ui). Into out; returns out. */
const char *config_default_ui_dir(char *out, size_t cap);

/* The listener's settings together, for `usersigd serve`: a certificate file needs its key file
 * and the reverse, a client CA file needs both, and without TLS the listen address must be a
 * loopback one (127.0.0.0/8, ::1, localhost) unless allow_plain_http is set. 0, or -1 with err
 * saying which settings to change. */
int config_check_listener(const struct config *cfg, char *err, size_t errlen) CONFIG_WUR;

/* 1 when host (an address without brackets, or "localhost") is a loopback address. */
int config_host_is_loopback(const char *host);

/* The number of signing workers: cfg->workers, or the number of online CPUs when it is 0. */
int config_workers(const struct config *cfg);

/* The value parsers the table uses, for other code that reads the same notations.
 * Size: a decimal number of bytes, optionally followed by k, M or G (also K, m, g: powers of
 * 1024). Duration: a decimal number followed by ms, s, m, h or d (a bare number is seconds),
 * in milliseconds. Bool: true/false, on/off, yes/no, 1/0. Each returns 0, or -1 when s is not
 * of the form or overflows. */
int config_parse_size(const char *s, uint64_t *out) CONFIG_WUR;
int config_parse_duration(const char *s, int64_t *out_ms) CONFIG_WUR;
int config_parse_bool(const char *s, int *out) CONFIG_WUR;

#endif
