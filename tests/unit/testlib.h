/*
 * A small test harness: CHECK records a failure with its place and goes on; test_done() prints
 * the closing "N passed, N failed" line and returns the exit status. Plus helpers to read the
 * JSONL files the tests are driven by, and a small HTTP/1.1 client over plain sockets (one
 * request per connection) for the tests that talk to a real admin API server.
 */
#ifndef TESTLIB_H
#define TESTLIB_H

#include <jansson.h>
#include <stddef.h>

extern long test_passed, test_failed;

void test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (cond)                                                                                  \
            test_passed++;                                                                         \
        else                                                                                       \
            test_fail(__FILE__, __LINE__, __VA_ARGS__);                                            \
    } while (0)

int test_done(const char *name);

/* Calls fn for each JSON object line of path; returns the number of lines or -1. */
long test_each_jsonl(const char *path, void (*fn)(json_t *obj, void *arg), void *arg);

/* Field accessors that fail the test (and return a safe default) when the field is missing. */
const char *test_str(json_t *obj, const char *field);
long long test_int(json_t *obj, const char *field);

/* Decodes a token's JSON document into a jansson object (NULL when it does not decode). */
json_t *test_token_json(const char *token);

/* ---- a small HTTP client on 127.0.0.1 / ::1 ---------------------------------------------- */

struct test_resp {
    int status; /* -1: no HTTP response */
    char *raw;  /* everything received, NUL-terminated */
    size_t raw_len;
    char head[8192]; /* the status line and headers */
    char *body;      /* de-chunked, NUL-terminated */
    size_t body_len;
    json_t *json; /* the body parsed, or NULL */
};

/* A connected socket to the loopback address of family (AF_INET, AF_INET6) and port, with 20 s
 * send and receive timeouts; -1 when it cannot connect. */
int test_http_connect(int family, int port);
int test_http_send_all(int fd, const char *p, size_t n); /* 0, or -1 */
/* Everything until the peer closes (or the timeout): a new string (caller free()s), *len set. */
char *test_http_read_all(int fd, size_t *len);
/* Sends len raw bytes on a new connection, reads until the server closes it, parses the first
 * reply. 0, or -1 when no HTTP reply came. */
struct test_resp;
int test_http_raw(struct test_resp *out, int port, const char *raw, size_t len);
/* One request on its own connection to 127.0.0.1:port (Connection: close): headers are extra
 * "Name: value\r\n" lines (or NULL); body_len < 0 sends no body and no Content-Length. Fills
 * *out (test_resp_free() it, also on failure). Returns 0, or -1 when no HTTP response came. */
int test_http_request(struct test_resp *out, int port, const char *method, const char *path,
                      const char *headers, const char *body, long body_len);
void test_resp_free(struct test_resp *r);
/* A response header's value copied into out, or NULL when absent. */
const char *test_resp_header(const struct test_resp *r, const char *name, char *out, size_t cap);
/* The error body's code and message ("(none)" and "" when absent). */
const char *test_resp_error_code(const struct test_resp *r);
const char *test_resp_error_message(const struct test_resp *r);
/* CHECKs r's status, its JSON error code (code NULL: not checked), and the headers every reply
 * of the admin API carries (X-Request-Id, Content-Type, Cache-Control); what names the case. */
void test_http_expect(const char *what, struct test_resp *r, int status, const char *code);

/* ---- temporary files ---------------------------------------------------------------------- */

#include <stdint.h>

/* A path NAME in this process's temporary directory (made on first use, under $TMPDIR or /tmp);
 * at most 64 paths. Aborts when the directory cannot be made. test_tmp_remove() unlinks every
 * path handed out, then the directory. */
const char *test_tmp_path(const char *name);
/* The directory itself, or NULL before the first test_tmp_path(). */
const char *test_tmp_dir(void);
void test_tmp_remove(void);
/* Reads a whole small file into buf (NUL-terminated, at most cap - 1 bytes); returns its length
 * or -1 when it cannot be opened. */
long test_read_file(const char *path, char *buf, size_t cap);
/* Lower-case hex of b[0..n) into out (2n + 1 bytes). */
void test_hex(const uint8_t *b, size_t n, char *out);

/* Runs fn(arg) on the thread running base's loop and waits for it (at most 10 s; a CHECK
 * fails when it did not run). For tests whose loop runs on a thread of its own. */
struct event_base;
void test_on_loop(struct event_base *base, void (*fn)(void *arg), void *arg);
/* A pthread start routine that runs the event_base given as arg until event_base_loopbreak:
 * pthread_create(&t, NULL, test_loop_thread, base). */
void *test_loop_thread(void *base);

#endif
