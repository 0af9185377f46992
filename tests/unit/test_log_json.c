/*
 * JSON log lines (log_format = json): whatever a message holds (quotes, backslashes, newlines,
 * control characters, invalid UTF-8, more than a line's room), each call writes exactly one
 * line that jansson parses, with the message intact or cut on a character boundary; access
 * lines carry their fields as members. stderr is captured through a temporary file.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "testlib.h"

static int saved_stderr = -1;
static FILE *capture;

static void capture_start(void)
{
    capture = tmpfile();
    CHECK(capture != NULL, "tmpfile");
    fflush(stderr);
    saved_stderr = dup(STDERR_FILENO);
    CHECK(dup2(fileno(capture), STDERR_FILENO) >= 0, "dup2");
}

/* Everything written since capture_start, NUL-terminated; caller frees. */
static char *capture_end(size_t *len)
{
    char *buf;
    long n;
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    fseek(capture, 0, SEEK_END);
    n = ftell(capture);
    rewind(capture);
    buf = calloc(1, (size_t)n + 1);
    CHECK(buf != NULL && fread(buf, 1, (size_t)n, capture) == (size_t)n, "read back");
    fclose(capture);
    *len = (size_t)n;
    return buf;
}

/* The one line written, parsed; NULL (a failure recorded) unless exactly one valid line. */
static json_t *one_line(const char *what, const char *text, size_t len)
{
    json_error_t e;
    json_t *o;
    CHECK(len > 0 && text[len - 1] == '\n', "%s: ends with a newline", what);
    CHECK(memchr(text, '\n', len) == text + len - 1, "%s: exactly one line: %s", what, text);
    o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &e);
    CHECK(o != NULL && json_is_object(o), "%s: not a JSON object (%s): %s", what, o ? "" : e.text,
          text);
    return o;
}

static json_t *log_one(const char *what, const char *request_id, const char *message)
{
    size_t len;
    char *text;
    json_t *o;
    capture_start();
    log_msg(LOG_WARN, request_id, "%s", message);
    text = capture_end(&len);
    o = one_line(what, text, len);
    free(text);
    return o;
}

static const char *member(const json_t *o, const char *name)
{
    return json_string_value(json_object_get(o, name));
}

static void test_messages(void)
{
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"plain", "plain"},
        {"say \"hi\" \\ bye", "say \"hi\" \\ bye"},
        {"two\nlines\r\nand a\ttab", "two\nlines\r\nand a\ttab"},
        {"bell\x07 esc\x1b del\x7f unit\x1f", "bell\x07 esc\x1b del\x7f unit\x1f"},
        {"bad \xff byte", "bad \xef\xbf\xbd byte"},
        {"cut \xc3", "cut \xef\xbf\xbd"},
        {"overlong \xc0\xaf", "overlong \xef\xbf\xbd\xef\xbf\xbd"},
        {"surrogate \xed\xa0\x80", "surrogate \xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
        {"emoji \xf0\x9f\x98\x80 and \xc3\xa9", "emoji \xf0\x9f\x98\x80 and \xc3\xa9"},
        {"{\"forged\":1}\n{\"level\":\"error\"}", "{\"forged\":1}\n{\"level\":\"error\"}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char what[32];
        snprintf(what, sizeof what, "case %zu", i);
        json_t *o = log_one(what, "req-1.A_b", cases[i].in);
        if (o == NULL)
            continue;
        CHECK(member(o, "message") && strcmp(member(o, "message"), cases[i].want) == 0,
              "%s: message %s", what, member(o, "message") ? member(o, "message") : "(none)");
        CHECK(member(o, "level") && strcmp(member(o, "level"), "warn") == 0, "%s: level", what);
        CHECK(member(o, "request_id") && strcmp(member(o, "request_id"), "req-1.A_b") == 0,
              "%s: request_id", what);
        CHECK(member(o, "time") && strlen(member(o, "time")) == 24 && member(o, "time")[23] == 'Z',
              "%s: time %s", what, member(o, "time") ? member(o, "time") : "(none)");
        json_decref(o);
    }
    /* No request id: no member. */
    json_t *o = log_one("no id", NULL, "x");
    CHECK(o != NULL && json_object_get(o, "request_id") == NULL, "no request_id member");
    json_decref(o);
}

/* A message over the line's room: cut, still one valid line, never inside an escape or a
 * character. */
static void test_long(void)
{
    static const char *const units[] = {"\"", "\x01", "\xc3\xa9", "\xf0\x9f\x98\x80", "\xff", "a"};
    for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
        char big[8192] = "";
        size_t n = 0, ul = strlen(units[u]);
        while (n + ul < sizeof big) {
            memcpy(big + n, units[u], ul);
            n += ul;
        }
        big[n] = '\0';
        char what[32];
        snprintf(what, sizeof what, "long %zu", u);
        json_t *o = log_one(what, NULL, big);
        if (o == NULL)
            continue;
        const char *m = member(o, "message");
        CHECK(m != NULL && strlen(m) > 100, "%s: a message kept", what);
        json_decref(o);
    }
}

static void test_access(void)
{
    struct log_access a = {.method = "POST",
                           .path = "/v1/apps/1400000000/usersigs",
                           .route = "/v1/apps/{sdkappid}/usersigs",
                           .status = 403,
                           .code = "forbidden",
                           .duration_ms = 1.25,
                           .actor = "ci \"signer\"\n"};
    size_t len;
    char *text;
    json_t *o;

    capture_start();
    log_access(LOG_INFO, "abc", &a, "role %s may not", "signer");
    text = capture_end(&len);
    o = one_line("access", text, len);
    free(text);
    if (o != NULL) {
        CHECK(strcmp(member(o, "route") ? member(o, "route") : "", a.route) == 0, "route");
        CHECK(json_integer_value(json_object_get(o, "status")) == 403, "status");
        CHECK(json_real_value(json_object_get(o, "duration_ms")) == 1.25, "duration_ms");
        CHECK(strcmp(member(o, "actor") ? member(o, "actor") : "", a.actor) == 0, "actor");
        CHECK(strcmp(member(o, "code") ? member(o, "code") : "", "forbidden") == 0, "code");
        CHECK(strcmp(member(o, "method") ? member(o, "method") : "", "POST") == 0, "method");
        CHECK(strcmp(member(o, "message") ? member(o, "message") : "", "role signer may not") == 0,
              "message");
        json_decref(o);
    }
    /* No token, no route, no message: those members are absent. */
    a.actor = NULL;
    a.route = NULL;
    capture_start();
    log_access(LOG_INFO, "abc", &a, NULL);
    text = capture_end(&len);
    o = one_line("access bare", text, len);
    free(text);
    CHECK(o != NULL && json_object_get(o, "actor") == NULL && json_object_get(o, "route") == NULL &&
              json_object_get(o, "message") == NULL,
          "absent members");
    json_decref(o);

    /* Text: the access line as before. */
    log_set_format(LOG_FORMAT_TEXT);
    a.actor = "t1";
    capture_start();
    log_access(LOG_INFO, "abc", &a, "why");
    text = capture_end(&len);
    CHECK(strstr(text, " INFO [abc] POST /v1/apps/1400000000/usersigs 403 forbidden: why (1.2 ms, "
                       "token t1)\n") != NULL,
          "text access line: %s", text);
    free(text);
    log_set_format(LOG_FORMAT_JSON);
}

static void test_escape_bounds(void)
{
    char out[8];
    size_t n = 0;
    /* Room for 7 bytes and the NUL: "ab" then \u0001 (6) does not fit after 2. */
    size_t used = log_json_escape(out, sizeof out, &n, "ab\x01z", 4);
    CHECK(used == 2 && n == 2 && strcmp(out, "ab") == 0, "stops before an escape that won't fit");
    n = 0;
    used = log_json_escape(out, sizeof out, &n, "\xf0\x9f\x98\x80\xf0\x9f\x98\x80", 8);
    CHECK(used == 4 && n == 4, "stops before a character that won't fit");
}

int main(void)
{
    log_set_level(LOG_DEBUG);
    log_set_format(LOG_FORMAT_JSON);
    test_messages();
    test_long();
    test_access();
    test_escape_bounds();
    return test_done("log_json");
}
