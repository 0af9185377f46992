/*
 * Config unit tests: the defaults, the file's syntax, the environment winning over the file, every
 * error naming file:line (or the variable), the setting and what is allowed, the size, duration
 * and bool notations at their bounds, --help-config as a loadable file, migrations_dir found
 * beside an installed binary, what SIGHUP applies live.
 */
#include "config.h"
#include "testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const ENV_NAMES[] = {
    "USERSIGD_LISTEN",
    "USERSIGD_DATABASE_URL",
    "USERSIGD_MASTER_KEY_FILE",
    "USERSIGD_DATA_DIR",
    "USERSIGD_MIGRATIONS_DIR",
    "USERSIGD_MAX_BODY_SIZE",
    "USERSIGD_BATCH_MAX_BODY_SIZE",
    "USERSIGD_LOG_LEVEL",
    "USERSIGD_REQUEST_TIMEOUT",
    "USERSIGD_WORKERS",
};

static char dir[64], conf_path[128];

static void clear_env(void)
{
    for (size_t i = 0; i < sizeof ENV_NAMES / sizeof ENV_NAMES[0]; i++)
        unsetenv(ENV_NAMES[i]);
}

static void write_conf(const char *text)
{
    FILE *f = fopen(conf_path, "w");
    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0)
        abort();
}

/* Loads text as the config file. */
static enum config_rc load_text(const char *text, struct config *cfg, char *err, size_t errlen)
{
    write_conf(text);
    return config_load(conf_path, cfg, err, errlen);
}

static void test_defaults(void)
{
    struct config c;
    char err[CONFIG_ERR_BUF] = "";
    CHECK(config_load(NULL, &c, err, sizeof err) == CONFIG_OK, "defaults load: %s", err);
    CHECK(strcmp(c.listen, "127.0.0.1:8080") == 0, "listen %s", c.listen);
    CHECK(strcmp(c.listen_host, "127.0.0.1") == 0 && c.listen_port == 8080, "listen parts");
    CHECK(c.database_url[0] == '\0', "database_url empty: embedded PostgreSQL");
    CHECK(strcmp(c.data_dir, ".usersigd") == 0, "data_dir %s", c.data_dir);
    CHECK(strcmp(c.master_key_file, ".usersigd/master.key") == 0, "master_key_file %s",
          c.master_key_file);
    CHECK(c.max_body_size == 1024 * 1024, "max_body_size %llu",
          (unsigned long long)c.max_body_size);
    CHECK(c.batch_max_body_size == 64 * 1024 * 1024, "batch_max_body_size");
    CHECK(c.log_level == LOG_INFO, "log_level %d", (int)c.log_level);
    CHECK(c.request_timeout_ms == 30000, "request_timeout %lld", (long long)c.request_timeout_ms);
    CHECK(c.workers == 0, "workers %d", c.workers);
    CHECK(config_workers(&c) >= 1 && config_workers(&c) <= 256, "workers from CPUs: %d",
          config_workers(&c));
    c.workers = 3;
    CHECK(config_workers(&c) == 3, "workers as set");
}

static void test_file(void)
{
    struct config c;
    char err[CONFIG_ERR_BUF] = "";
    const char *text = "# usersigd test config\n"
                       "\n"
                       "listen = [::1]:9443\n"
                       "   # an indented comment\n"
                       "database_url=postgresql://app@db.internal:5432/usersigd\n"
                       "\tdata_dir\t=\t/var/lib/usersigd   \n"
                       "max_body_size = 512k\r\n"
                       "batch_max_body_size = 1G\n"
                       "log_level = debug\n"
                       "request_timeout = 5m\n"
                       "workers = 16\n"
                       "master_key_file = \"/etc/usersigd/master key\"\n"
                       "\n";
    CHECK(load_text(text, &c, err, sizeof err) == CONFIG_OK, "load: %s", err);
    CHECK(strcmp(c.listen, "[::1]:9443") == 0 && strcmp(c.listen_host, "::1") == 0 &&
              c.listen_port == 9443,
          "IPv6 listen: %s %s %u", c.listen, c.listen_host, c.listen_port);
    CHECK(strcmp(c.database_url, "postgresql://app@db.internal:5432/usersigd") == 0,
          "database_url");
    CHECK(strcmp(c.data_dir, "/var/lib/usersigd") == 0, "tabs and trailing spaces trimmed");
    CHECK(c.max_body_size == 512 * 1024, "512k, CRLF line");
    CHECK(c.batch_max_body_size == 1024ull * 1024 * 1024, "1G");
    CHECK(c.log_level == LOG_DEBUG, "debug");
    CHECK(c.request_timeout_ms == 5 * 60 * 1000, "5m");
    CHECK(c.workers == 16, "workers");
    CHECK(strcmp(c.master_key_file, "/etc/usersigd/master key") == 0, "quoted value: %s",
          c.master_key_file);

    /* master_key_file follows data_dir unless set; an empty file is all defaults. */
    CHECK(load_text("data_dir = /srv/u\n", &c, err, sizeof err) == CONFIG_OK &&
              strcmp(c.master_key_file, "/srv/u/master.key") == 0,
          "derived master_key_file: %s", c.master_key_file);
    CHECK(load_text("", &c, err, sizeof err) == CONFIG_OK && c.workers == 0 &&
              strcmp(c.listen, "127.0.0.1:8080") == 0,
          "empty file");
    CHECK(load_text("database_url =\n", &c, err, sizeof err) == CONFIG_OK &&
              c.database_url[0] == '\0',
          "empty string value");
    CHECK(load_text("log_level = error", &c, err, sizeof err) == CONFIG_OK &&
              c.log_level == LOG_ERROR,
          "no final newline");

    CHECK(config_load("/nonexistent/usersigd.conf", &c, err, sizeof err) == CONFIG_CANNOT_READ,
          "missing file");
    CHECK(strstr(err, "/nonexistent/usersigd.conf") != NULL, "names the file: %s", err);
}

static void test_env(void)
{
    static const struct {
        const char *env, *value;
    } cases[] = {
        {"USERSIGD_LISTEN", "0.0.0.0:9000"},
        {"USERSIGD_DATABASE_URL", "host=/run/postgresql dbname=u"},
        {"USERSIGD_MASTER_KEY_FILE", "/run/secrets/master.key"},
        {"USERSIGD_DATA_DIR", "/data"},
        {"USERSIGD_MAX_BODY_SIZE", "2M"},
        {"USERSIGD_BATCH_MAX_BODY_SIZE", "128M"},
        {"USERSIGD_LOG_LEVEL", "warn"},
        {"USERSIGD_REQUEST_TIMEOUT", "90s"},
        {"USERSIGD_WORKERS", "8"},
    };
    /* The file sets every setting to something else. */
    const char *text = "listen = 127.0.0.2:1\n"
                       "database_url = postgresql://file/db\n"
                       "master_key_file = /file/master.key\n"
                       "data_dir = /file\n"
                       "max_body_size = 4k\n"
                       "batch_max_body_size = 8k\n"
                       "log_level = error\n"
                       "request_timeout = 10s\n"
                       "workers = 4\n";
    struct config c;
    char err[CONFIG_ERR_BUF] = "";

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        setenv(cases[i].env, cases[i].value, 1);
    CHECK(load_text(text, &c, err, sizeof err) == CONFIG_OK, "load: %s", err);
    CHECK(strcmp(c.listen, "0.0.0.0:9000") == 0 && c.listen_port == 9000, "listen");
    CHECK(strcmp(c.database_url, "host=/run/postgresql dbname=u") == 0, "database_url");
    CHECK(strcmp(c.master_key_file, "/run/secrets/master.key") == 0, "master_key_file");
    CHECK(strcmp(c.data_dir, "/data") == 0, "data_dir");
    CHECK(c.max_body_size == 2 * 1024 * 1024, "max_body_size");
    CHECK(c.batch_max_body_size == 128 * 1024 * 1024, "batch_max_body_size");
    CHECK(c.log_level == LOG_WARN, "log_level");
    CHECK(c.request_timeout_ms == 90000, "request_timeout");
    CHECK(c.workers == 8, "workers");
    clear_env();

    /* Without the environment the file's values stand. */
    CHECK(load_text(text, &c, err, sizeof err) == CONFIG_OK && c.workers == 4 &&
              c.log_level == LOG_ERROR && c.max_body_size == 4096,
          "file values");
    /* An empty variable is a value: here it puts back the embedded PostgreSQL. */
    setenv("USERSIGD_DATABASE_URL", "", 1);
    CHECK(load_text(text, &c, err, sizeof err) == CONFIG_OK && c.database_url[0] == '\0',
          "empty variable overrides");
    clear_env();
    /* data_dir from the environment moves the derived master key file. */
    setenv("USERSIGD_DATA_DIR", "/env", 1);
    CHECK(config_load(NULL, &c, err, sizeof err) == CONFIG_OK &&
              strcmp(c.master_key_file, "/env/master.key") == 0,
          "derived from env data_dir: %s", c.master_key_file);
    clear_env();

    /* Errors name the variable, the setting and what is allowed. */
    static const struct {
        const char *env, *value, *want[3];
    } bad[] = {
        {"USERSIGD_WORKERS", "abc", {"USERSIGD_WORKERS", "workers", "0..256"}},
        {"USERSIGD_WORKERS", "", {"USERSIGD_WORKERS", "workers", "0..256"}},
        {"USERSIGD_MAX_BODY_SIZE", "2G", {"USERSIGD_MAX_BODY_SIZE", "max_body_size", "1k..1G"}},
        {"USERSIGD_REQUEST_TIMEOUT",
         "1d",
         {"USERSIGD_REQUEST_TIMEOUT", "request_timeout", "1s..1h"}},
        {"USERSIGD_LOG_LEVEL",
         "trace",
         {"USERSIGD_LOG_LEVEL", "log_level", "debug|info|warn|error"}},
        {"USERSIGD_LISTEN", "localhost", {"USERSIGD_LISTEN", "listen", "host:port"}},
        {"USERSIGD_DATA_DIR", "", {"USERSIGD_DATA_DIR", "data_dir", "non-empty"}},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv(bad[i].env, bad[i].value, 1);
        err[0] = '\0';
        CHECK(config_load(NULL, &c, err, sizeof err) == CONFIG_INVALID, "%s=%s accepted",
              bad[i].env, bad[i].value);
        for (int w = 0; w < 3; w++)
            CHECK(strstr(err, bad[i].want[w]) != NULL, "%s=%s: \"%s\" not in: %s", bad[i].env,
                  bad[i].value, bad[i].want[w], err);
        clear_env();
    }
    /* An environment error wins over a good file. */
    setenv("USERSIGD_WORKERS", "999", 1);
    CHECK(load_text("workers = 2\n", &c, err, sizeof err) == CONFIG_INVALID, "env checked too");
    clear_env();

    /* A bad database_url is not quoted back: it may hold a password. */
    setenv("USERSIGD_DATABASE_URL", "postgresql://u:hunter2@h/d\x01", 1);
    CHECK(config_load(NULL, &c, err, sizeof err) == CONFIG_INVALID &&
              strstr(err, "database_url") != NULL && strstr(err, "hunter2") == NULL,
          "no password in: %s", err);
    clear_env();
}

static void test_file_errors(void)
{
    static const struct {
        const char *text;
        const char *want[4]; /* substrings of the message; "L" entries are ":<line>:" */
    } cases[] = {
        {"workers = 300\n", {":1:", "workers", "300", "0..256"}},
        {"# c\n\nworkers = -1\n", {":3:", "workers", "0..256", NULL}},
        {"workers = 1.5\n", {":1:", "workers", "not an integer", "0..256"}},
        {"workers = 0x10\n", {":1:", "workers", "0..256", NULL}},
        {"workers =\n", {":1:", "workers", "0..256", NULL}},
        {"max_body_size = 1023\n", {":1:", "max_body_size", "1k..1G", NULL}},
        {"max_body_size = 1025M\n", {":1:", "max_body_size", "1k..1G", NULL}},
        {"max_body_size = 12X\n", {":1:", "max_body_size", "not a size", "1k..1G"}},
        {"max_body_size = 1.5M\n", {":1:", "max_body_size", "1k..1G", NULL}},
        {"batch_max_body_size = 2G\n", {":1:", "batch_max_body_size", "1k..1G", NULL}},
        {"request_timeout = 999ms\n", {":1:", "request_timeout", "1s..1h", NULL}},
        {"request_timeout = 61m\n", {":1:", "request_timeout", "1s..1h", NULL}},
        {"request_timeout = 30x\n", {":1:", "request_timeout", "not a duration", "1s..1h"}},
        {"request_timeout = s\n", {":1:", "request_timeout", "1s..1h", NULL}},
        {"log_level = verbose\n", {":1:", "log_level", "debug|info|warn|error", NULL}},
        {"log_level = INFO\n", {":1:", "log_level", "debug|info|warn|error", NULL}},
        {"listen = 8080\n", {":1:", "listen", "host:port", NULL}},
        {"listen = ::1:8080\n", {":1:", "listen", "host:port", NULL}},
        {"listen = [::1]8080\n", {":1:", "listen", "host:port", NULL}},
        {"listen = :8080\n", {":1:", "listen", "host:port", NULL}},
        {"listen = localhost:65536\n", {":1:", "listen", "0..65535", NULL}},
        {"listen = localhost:http\n", {":1:", "listen", "host:port", NULL}},
        {"data_dir =\n", {":1:", "data_dir", "non-empty", NULL}},
        {"bogus = 1\n", {":1:", "unknown setting", "bogus", "--help-config"}},
        {"Workers = 1\n", {":1:", "unknown setting", "Workers", NULL}},
        {"workers = 1\nlog_level = info\nworkers = 2\n", {":3:", "workers", "line 1", NULL}},
        {"workers 4\n", {":1:", "name = value", NULL, NULL}},
        {"= 4\n", {":1:", "unknown setting", NULL, NULL}},
        {"master_key_file = \"/x\n", {":1:", "master_key_file", "quote", NULL}},
        {"listen = 127.0.0.1:8080\nworkers = 1\n\n# x\nwhat\n",
         {":5:", "name = value", NULL, NULL}},
    };
    struct config c;
    char err[CONFIG_ERR_BUF], want_file[160];

    snprintf(want_file, sizeof want_file, "%s:", conf_path);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        err[0] = '\0';
        CHECK(load_text(cases[i].text, &c, err, sizeof err) == CONFIG_INVALID,
              "case %zu accepted: %s", i, cases[i].text);
        CHECK(strncmp(err, want_file, strlen(want_file)) == 0, "case %zu: names the file: %s", i,
              err);
        for (int w = 0; w < 4 && cases[i].want[w] != NULL; w++)
            CHECK(strstr(err, cases[i].want[w]) != NULL, "case %zu: \"%s\" not in: %s", i,
                  cases[i].want[w], err);
    }

    /* A line over the limit, and a NUL byte. */
    {
        char *big = malloc(CONFIG_LINE_MAX + 100);
        if (big == NULL)
            abort();
        memset(big, '#', CONFIG_LINE_MAX + 50);
        strcpy(big + CONFIG_LINE_MAX + 50, "\n");
        CHECK(load_text(big, &c, err, sizeof err) == CONFIG_INVALID && strstr(err, ":1:") != NULL &&
                  strstr(err, "longer") != NULL,
              "long line: %s", err);
        free(big);
        FILE *f = fopen(conf_path, "w");
        if (f == NULL)
            abort();
        fwrite("workers = 1\0\n", 1, 13, f);
        fclose(f);
        CHECK(config_load(conf_path, &c, err, sizeof err) == CONFIG_INVALID &&
                  strstr(err, "NUL") != NULL,
              "NUL byte: %s", err);
    }

    /* A carriage return alone does not end a line: what follows it would join the value (the
     * fuzzer's finding, tests/fuzz/known/config/), and the error must not quote it. */
    CHECK(load_text("listen = 127.0.0.1:8080\rdatabase_url = host=db password=hunter2\n", &c, err,
                    sizeof err) == CONFIG_INVALID &&
              strstr(err, ":1:") != NULL && strstr(err, "control character") != NULL &&
              strstr(err, "hunter2") == NULL && strchr(err, '\r') == NULL,
          "a bare CR: refused, nothing quoted: %s", err);
    setenv("USERSIGD_WORKERS", "4\rpassword=hunter2", 1);
    CHECK(config_load(NULL, &c, err, sizeof err) == CONFIG_INVALID &&
              strstr(err, "hunter2") == NULL && strstr(err, "control character") != NULL,
          "a control character in the environment too: %s", err);
    unsetenv("USERSIGD_WORKERS");

    /* A bad database_url line is not quoted back. */
    CHECK(load_text("database_url = postgresql://u:hunter2@h/\x7f\n", &c, err, sizeof err) ==
                  CONFIG_INVALID &&
              strstr(err, ":1:") != NULL && strstr(err, "hunter2") == NULL,
          "no password in: %s", err);
    /* A too-long string names its bound. */
    {
        char text[CONFIG_STRING_MAX + 64];
        memcpy(text, "data_dir = ", 11);
        memset(text + 11, 'd', CONFIG_STRING_MAX);
        strcpy(text + 11 + CONFIG_STRING_MAX, "\n");
        CHECK(load_text(text, &c, err, sizeof err) == CONFIG_INVALID &&
                  strstr(err, "data_dir") != NULL && strstr(err, "at most") != NULL,
              "long string: %s", err);
    }
}

static void test_bounds(void)
{
    static const struct {
        const char *text;
        int ok;
    } cases[] = {
        {"max_body_size = 1k", 1},
        {"max_body_size = 1024", 1},
        {"max_body_size = 1023", 0},
        {"max_body_size = 1G", 1},
        {"max_body_size = 1073741824", 1},
        {"max_body_size = 1073741825", 0},
        {"request_timeout = 1s", 1},
        {"request_timeout = 1000ms", 1},
        {"request_timeout = 999ms", 0},
        {"request_timeout = 1h", 1},
        {"request_timeout = 3600", 1},
        {"request_timeout = 3601s", 0},
        {"request_timeout = 60m", 1},
        {"workers = 0", 1},
        {"workers = 256", 1},
        {"workers = 257", 0},
        {"listen = h:1", 1},
        {"listen = h:65535", 1},
        {"listen = 0.0.0.0:8080", 1},
        {"listen = usersigd.example.com:443", 1},
    };
    struct config c;
    char err[CONFIG_ERR_BUF];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        enum config_rc rc = load_text(cases[i].text, &c, err, sizeof err);
        CHECK((rc == CONFIG_OK) == cases[i].ok, "%s: %s", cases[i].text,
              rc == CONFIG_OK ? "accepted" : err);
    }
}

static void test_notations(void)
{
    static const struct {
        const char *s;
        int ok;
        uint64_t v;
    } sizes[] = {
        {"0", 1, 0},
        {"10", 1, 10},
        {"1k", 1, 1024},
        {"1K", 1, 1024},
        {"3M", 1, 3 << 20},
        {"3m", 1, 3 << 20},
        {"2G", 1, 2ull << 30},
        {"2g", 1, 2ull << 30},
        {"18446744073709551615", 1, UINT64_MAX},
        {"18446744073709551616", 0, 0},
        {"17179869184G", 0, 0},
        {"", 0, 0},
        {"k", 0, 0},
        {"1kb", 0, 0},
        {"1KiB", 0, 0},
        {"1T", 0, 0},
        {" 1k", 0, 0},
        {"1k ", 0, 0},
        {"1 k", 0, 0},
        {"-1", 0, 0},
        {"+1", 0, 0},
        {"1.5M", 0, 0},
    };
    static const struct {
        const char *s;
        int ok;
        int64_t ms;
    } durations[] = {
        {"30s", 1, 30000},
        {"5m", 1, 300000},
        {"2h", 1, 7200000},
        {"1d", 1, 86400000},
        {"250ms", 1, 250},
        {"30", 1, 30000},
        {"0", 1, 0},
        {"0ms", 1, 0},
        {"1w", 0, 0},
        {"s", 0, 0},
        {"", 0, 0},
        {"-5s", 0, 0},
        {"5 s", 0, 0},
        {"5S", 0, 0},
        {"1.5s", 0, 0},
        {"5sec", 0, 0},
        {"9223372036854775807ms", 1, INT64_MAX},
        {"9223372036854775807s", 0, 0},
        {"106751991167d", 1, 106751991167 * 86400000LL},
        {"106751991168d", 0, 0},
    };
    static const struct {
        const char *s;
        int ok, v;
    } bools[] = {
        {"true", 1, 1},  {"on", 1, 1},  {"yes", 1, 1},   {"1", 1, 1},   {"TRUE", 1, 1},
        {"false", 1, 0}, {"off", 1, 0}, {"no", 1, 0},    {"0", 1, 0},   {"Off", 1, 0},
        {"2", 0, 0},     {"", 0, 0},    {"truth", 0, 0}, {" on", 0, 0}, {"y", 0, 0},
    };
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        uint64_t v = 12345;
        int rc = config_parse_size(sizes[i].s, &v);
        CHECK((rc == 0) == sizes[i].ok && (!sizes[i].ok || v == sizes[i].v), "size \"%s\"",
              sizes[i].s);
    }
    for (size_t i = 0; i < sizeof durations / sizeof durations[0]; i++) {
        int64_t v = 12345;
        int rc = config_parse_duration(durations[i].s, &v);
        CHECK((rc == 0) == durations[i].ok && (!durations[i].ok || v == durations[i].ms),
              "duration \"%s\": rc %d, %lld", durations[i].s, rc, (long long)v);
    }
    for (size_t i = 0; i < sizeof bools / sizeof bools[0]; i++) {
        int v = 7;
        int rc = config_parse_bool(bools[i].s, &v);
        CHECK((rc == 0) == bools[i].ok && (!bools[i].ok || v == bools[i].v), "bool \"%s\"",
              bools[i].s);
    }
}

/* --help-config prints every setting, and its "#name = default" lines load as the defaults. */
static void test_describe(void)
{
    static const char *const names[] = {
        "listen",          "database_url",  "master_key_file",     "data_dir",
        "migrations_dir",  "max_body_size", "batch_max_body_size", "log_level",
        "request_timeout", "workers"};
    char *text = NULL, *conf = NULL, err[CONFIG_ERR_BUF];
    size_t text_len = 0;
    struct config from_defaults, from_doc;
    FILE *f = open_memstream(&text, &text_len);

    if (f == NULL)
        abort();
    config_describe(f);
    fclose(f);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char want[64];
        snprintf(want, sizeof want, "\n#%s =", names[i]);
        CHECK(strstr(text, want) != NULL, "describes %s", names[i]);
        CHECK(strstr(text, ENV_NAMES[i]) != NULL, "names %s", ENV_NAMES[i]);
    }
    CHECK(strstr(text, "#max_body_size = 1M\n") != NULL, "max_body_size default 1M");
    CHECK(strstr(text, "a size 1k..1G") != NULL, "size bounds");
    CHECK(strstr(text, "an integer 0..256") != NULL, "int bounds");
    CHECK(strstr(text, "a duration 1s..1h") != NULL, "duration bounds");
    CHECK(strstr(text, "one of debug|info|warn|error; SIGHUP applies a change") != NULL,
          "choices, and log_level changes live");
    CHECK(strstr(text, "workers = 0\n") != NULL && strstr(text, "256; SIGHUP") == NULL,
          "workers needs a restart");
    /* The environment variables read beside the table's. */
    CHECK(strstr(text, "#   PATH ") != NULL && strstr(text, "#   TZ ") != NULL &&
              strstr(text, "PGPASSWORD") != NULL,
          "other environment variables");

    /* Uncomment the "#name = value" lines; the rest stays comments. */
    conf = malloc(text_len + 1);
    if (conf == NULL)
        abort();
    {
        size_t o = 0;
        for (const char *line = text; *line != '\0';) {
            const char *end = strchr(line, '\n');
            size_t len = end != NULL ? (size_t)(end - line) + 1 : strlen(line);
            if (line[0] == '#' && line[1] != ' ' && memchr(line, '=', len) != NULL) {
                line++;
                len--;
            }
            memcpy(conf + o, line, len);
            o += len;
            line += len;
        }
        conf[o] = '\0';
    }
    CHECK(config_load(NULL, &from_defaults, err, sizeof err) == CONFIG_OK, "defaults");
    CHECK(load_text(conf, &from_doc, err, sizeof err) == CONFIG_OK, "doc loads: %s", err);
    CHECK(memcmp(&from_defaults, &from_doc, sizeof from_doc) == 0, "doc = defaults");
    free(conf);
    free(text);
}

/* migrations_dir: found beside an installed binary, else the compile-time directory; the
 * environment wins. */
static void test_migrations_dir(void)
{
    char root[128], path[256], exe[256], out[CONFIG_STRING_MAX], real[4096], err[CONFIG_ERR_BUF];
    struct config c;

    snprintf(root, sizeof root, "%s/prefix", dir);
    snprintf(exe, sizeof exe, "%s/bin/usersigd", root);
    CHECK(config_migrations_dir_beside(exe, out, sizeof out) == -1, "no prefix: none beside");
    CHECK(config_migrations_dir_beside("usersigd", out, sizeof out) == -1, "no directory in exe");
    CHECK(config_migrations_dir_beside(NULL, out, sizeof out) == -1, "NULL exe");
    const char *const parts[] = {"", "/bin", "/share", "/share/usersigd",
                                 "/share/usersigd/migrations"};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        snprintf(path, sizeof path, "%s%s", root, parts[i]);
        if (mkdir(path, 0700) != 0)
            abort();
    }
    CHECK(strcmp(USERSIGD_MIGRATIONS_REL, "share/usersigd/migrations") == 0, "REL %s",
          USERSIGD_MIGRATIONS_REL);
    CHECK(realpath(path, real) != NULL, "realpath");
    CHECK(config_migrations_dir_beside(exe, out, sizeof out) == 0 && strcmp(out, real) == 0,
          "installed: %s", out);
    CHECK(config_migrations_dir_beside(exe, out, 4) == -1, "does not fit");
    /* A file where the directory should be is not it. */
    for (size_t i = sizeof parts / sizeof parts[0]; i-- > 1;) {
        snprintf(path, sizeof path, "%s%s", root, parts[i]);
        rmdir(path);
    }
    snprintf(path, sizeof path, "%s/share", root);
    write_conf("");
    CHECK(rename(conf_path, path) == 0, "a file as share");
    CHECK(config_migrations_dir_beside(exe, out, sizeof out) == -1, "share a file: none beside");
    unlink(path);
    rmdir(root);

    /* The test binary is not installed: the default is the source tree's. */
    CHECK(strcmp(config_default_migrations_dir(out, sizeof out), USERSIGD_MIGRATIONS_DIR) == 0,
          "default %s", out);
    CHECK(config_load(NULL, &c, err, sizeof err) == CONFIG_OK, "load: %s", err);
    CHECK(strcmp(c.migrations_dir, USERSIGD_MIGRATIONS_DIR) == 0, "loaded %s", c.migrations_dir);
    CHECK(load_text("migrations_dir = /srv/m\n", &c, err, sizeof err) == CONFIG_OK &&
              strcmp(c.migrations_dir, "/srv/m") == 0,
          "from the file");
    /* The dashboard's folder is found the same way; "" turns it off. */
    CHECK(strcmp(config_default_ui_dir(out, sizeof out), USERSIGD_UI_DIR) == 0, "ui default %s",
          out);
    CHECK(strcmp(c.ui_dir, USERSIGD_UI_DIR) == 0, "ui_dir loaded %s", c.ui_dir);
    CHECK(load_text("ui_dir = \"\"\n", &c, err, sizeof err) == CONFIG_OK && c.ui_dir[0] == '\0',
          "ui_dir off: %s", err);
    setenv("USERSIGD_MIGRATIONS_DIR", "/opt/m", 1);
    CHECK(load_text("migrations_dir = /srv/m\n", &c, err, sizeof err) == CONFIG_OK &&
              strcmp(c.migrations_dir, "/opt/m") == 0,
          "the environment wins");
    setenv("USERSIGD_MIGRATIONS_DIR", "", 1);
    CHECK(config_load(NULL, &c, err, sizeof err) == CONFIG_INVALID &&
              strstr(err, "USERSIGD_MIGRATIONS_DIR") != NULL,
          "empty is refused: %s", err);
    unsetenv("USERSIGD_MIGRATIONS_DIR");
}

/* SIGHUP: log_level is taken, the others are named and left alone. */
static void test_apply_live(void)
{
    struct config cur, fresh;
    char err[CONFIG_ERR_BUF], names[256];

    CHECK(config_load(NULL, &cur, err, sizeof err) == CONFIG_OK, "load: %s", err);
    fresh = cur;
    CHECK(config_apply_live(&cur, &fresh, names, sizeof names) == 0 && names[0] == '\0',
          "nothing changed: \"%s\"", names);
    CHECK(load_text("log_level = debug\n", &fresh, err, sizeof err) == CONFIG_OK, "%s", err);
    CHECK(config_apply_live(&cur, &fresh, names, sizeof names) == 0 && names[0] == '\0',
          "log_level alone needs no restart: \"%s\"", names);
    CHECK(cur.log_level == LOG_DEBUG, "log_level applied");
    CHECK(load_text("log_level = warn\nworkers = 3\nlisten = 127.0.0.1:9\ndata_dir = /d\n", &fresh,
                    err, sizeof err) == CONFIG_OK,
          "%s", err);
    CHECK(config_apply_live(&cur, &fresh, names, sizeof names) == 4, "four need a restart");
    CHECK(strcmp(names, "listen, master_key_file, data_dir, workers") == 0, "named: \"%s\"", names);
    CHECK(cur.log_level == LOG_WARN, "log_level applied beside them");
    CHECK(cur.workers == 0 && strcmp(cur.listen, "127.0.0.1:8080") == 0 &&
              strcmp(cur.data_dir, ".usersigd") == 0,
          "the others kept");
    CHECK(config_apply_live(&cur, &fresh, names, 8) == 4 && strlen(names) < 8, "short buffer");
    CHECK(config_apply_live(&cur, &fresh, NULL, 0) == 4, "no buffer");
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/test_config.XXXXXX");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(conf_path, sizeof conf_path, "%s/usersigd.conf", dir);
    clear_env();
    test_defaults();
    test_file();
    test_env();
    test_file_errors();
    test_bounds();
    test_notations();
    test_describe();
    test_migrations_dir();
    test_apply_live();
    unlink(conf_path);
    rmdir(dir);
    return test_done("config");
}
