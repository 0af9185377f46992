/*
 * The test harness behind testlib.h: checks and their count, JSONL readers, and the plain-socket
 * HTTP client the server tests share.
 */
#include "testlib.h"
#include "usersig.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <zlib.h>

long test_passed, test_failed;

void test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    test_failed++;
    if (test_failed > 50)
        return; /* the count still tells how many */
    fprintf(stderr, "FAIL %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int test_done(const char *name)
{
    printf("%s: %ld passed, %ld failed\n", name, test_passed, test_failed);
    return test_failed == 0 && test_passed > 0 ? 0 : 1;
}

long test_each_jsonl(const char *path, void (*fn)(json_t *obj, void *arg), void *arg)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    long n = 0;
    if (f == NULL) {
        test_fail(__FILE__, __LINE__, "cannot open %s", path);
        return -1;
    }
    while (getline(&line, &cap, f) != -1) {
        json_error_t err;
        if (line[0] == '\n' || line[0] == '\0')
            continue;
        json_t *obj = json_loads(line, 0, &err);
        if (obj == NULL || !json_is_object(obj)) {
            test_fail(__FILE__, __LINE__, "%s: line %ld is not a JSON object: %s", path, n + 1,
                      err.text);
            json_decref(obj);
            continue;
        }
        fn(obj, arg);
        json_decref(obj);
        n++;
    }
    free(line);
    fclose(f);
    return n;
}

const char *test_str(json_t *obj, const char *field)
{
    json_t *v = json_object_get(obj, field);
    if (!json_is_string(v)) {
        test_fail(__FILE__, __LINE__, "field %s missing or not a string", field);
        return "";
    }
    return json_string_value(v);
}

long long test_int(json_t *obj, const char *field)
{
    json_t *v = json_object_get(obj, field);
    if (!json_is_integer(v)) {
        test_fail(__FILE__, __LINE__, "field %s missing or not an integer", field);
        return 0;
    }
    return json_integer_value(v);
}

/* Decoded without the codec (OpenSSL's base64, zlib's uncompress), so that a test of the signer
 * does not lean on the codec's own decoder. */
json_t *test_token_json(const char *token)
{
    size_t n = strlen(token), pad = 0;
    unsigned char *b64 = malloc(n + 1), *raw = malloc(n + 1);
    unsigned char doc[8192];
    uLongf doc_len = sizeof doc;
    json_t *out = NULL;

    if (b64 == NULL || raw == NULL || n == 0 || n % 4 != 0)
        goto done;
    for (size_t i = 0; i < n; i++) {
        char c = token[i];
        b64[i] = (unsigned char)(c == '*' ? '+' : c == '-' ? '/' : c == '_' ? '=' : c);
    }
    pad = (b64[n - 1] == '=') + (b64[n - 2] == '=');
    int raw_len = EVP_DecodeBlock(raw, b64, (int)n);
    if (raw_len < 0)
        goto done;
    if (uncompress(doc, &doc_len, raw, (uLong)raw_len - pad) != Z_OK)
        goto done;
    out = json_loadb((const char *)doc, doc_len, 0, NULL);
done:
    free(b64);
    free(raw);
    return out;
}

/* ---- the HTTP client --------------------------------------------------------------------------
 */

int test_http_connect(int family, int port)
{
    int fd = socket(family, SOCK_STREAM, 0);
    struct timeval tv = {20, 0};
    struct sockaddr_storage ss;
    socklen_t len;
    memset(&ss, 0, sizeof ss);
    if (family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        a->sin6_addr = in6addr_loopback;
        len = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        len = sizeof *a;
    }
    if (fd < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&ss, len) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int test_http_send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

char *test_http_read_all(int fd, size_t *len)
{
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap + 1);
    if (buf == NULL) {
        *len = 0;
        return NULL;
    }
    for (;;) {
        ssize_t m;
        if (n == cap) {
            char *nb = realloc(buf, 2 * cap + 1);
            if (nb == NULL)
                break;
            buf = nb;
            cap *= 2;
        }
        m = recv(fd, buf + n, cap - n, 0);
        if (m <= 0)
            break;
        n += (size_t)m;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

const char *test_resp_header(const struct test_resp *r, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *p = strstr(r->head, "\r\n"); p != NULL; p = strstr(p + 2, "\r\n")) {
        if (strncasecmp(p + 2, name, nl) == 0 && p[2 + nl] == ':') {
            const char *v = p + 3 + nl, *e;
            while (*v == ' ')
                v++;
            e = strstr(v, "\r\n");
            snprintf(out, cap, "%.*s", (int)(e ? e - v : (long)strlen(v)), v);
            return out;
        }
    }
    return NULL;
}

/* Splits r->raw into status, head and the (de-chunked) body. */
static void parse_response(struct test_resp *r)
{
    char *end = r->raw ? strstr(r->raw, "\r\n\r\n") : NULL, te[64];
    const char *p;
    if (end == NULL || sscanf(r->raw, "HTTP/1.%*d %d", &r->status) != 1) {
        r->status = -1;
        return;
    }
    snprintf(r->head, sizeof r->head, "%.*s", (int)(end - r->raw + 2), r->raw);
    p = end + 4;
    r->body = malloc(r->raw_len + 1);
    if (r->body == NULL) {
        r->status = -1;
        return;
    }
    if (test_resp_header(r, "Transfer-Encoding", te, sizeof te) && strcasecmp(te, "chunked") == 0) {
        unsigned long n;
        char *next;
        while ((n = strtoul(p, &next, 16)) > 0 && (next = strstr(next, "\r\n")) != NULL) {
            memcpy(r->body + r->body_len, next + 2, n);
            r->body_len += n;
            p = next + 2 + n + 2;
        }
    } else {
        r->body_len = r->raw_len - (size_t)(p - r->raw);
        memcpy(r->body, p, r->body_len);
    }
    r->body[r->body_len] = '\0';
    r->json = json_loadb(r->body, r->body_len, 0, NULL);
}

int test_http_request(struct test_resp *out, int port, const char *method, const char *path,
                      const char *headers, const char *body, long body_len)
{
    char head[8192];
    int fd = test_http_connect(AF_INET, port), n;
    memset(out, 0, sizeof *out);
    out->status = -1;
    if (fd < 0)
        return -1;
    n = snprintf(head, sizeof head, "%s %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n%s",
                 method, path, headers ? headers : "");
    if (body_len >= 0)
        n += snprintf(head + n, sizeof head - (size_t)n, "Content-Length: %ld\r\n", body_len);
    n += snprintf(head + n, sizeof head - (size_t)n, "\r\n");
    if (test_http_send_all(fd, head, (size_t)n) != 0 ||
        (body_len > 0 && test_http_send_all(fd, body, (size_t)body_len) != 0)) {
        /* the server may answer and close before reading everything: read what it sent */
    }
    out->raw = test_http_read_all(fd, &out->raw_len);
    close(fd);
    parse_response(out);
    return out->status > 0 ? 0 : -1;
}

int test_http_raw(struct test_resp *out, int port, const char *raw, size_t len)
{
    int fd = test_http_connect(AF_INET, port);
    memset(out, 0, sizeof *out);
    out->status = -1;
    if (fd < 0)
        return -1;
    (void)test_http_send_all(fd, raw, len); /* the server may answer before it reads it all */
    out->raw = test_http_read_all(fd, &out->raw_len);
    close(fd);
    parse_response(out);
    return out->status > 0 ? 0 : -1;
}

void test_resp_free(struct test_resp *r)
{
    free(r->raw);
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

const char *test_resp_error_code(const struct test_resp *r)
{
    const char *c = json_string_value(json_object_get(json_object_get(r->json, "error"), "code"));
    return c ? c : "(none)";
}

const char *test_resp_error_message(const struct test_resp *r)
{
    const char *m =
        json_string_value(json_object_get(json_object_get(r->json, "error"), "message"));
    return m ? m : "";
}

void test_http_expect(const char *what, struct test_resp *r, int status, const char *code)
{
    char id[64] = "", ct[128] = "", cc[64] = "";
    CHECK(r->status == status, "%s: status %d, want %d (%s)", what, r->status, status, r->body);
    if (code != NULL)
        CHECK(strcmp(test_resp_error_code(r), code) == 0, "%s: code %s, want %s", what,
              test_resp_error_code(r), code);
    CHECK(test_resp_header(r, "X-Request-Id", id, sizeof id) && strlen(id) == 16 &&
              strspn(id, "0123456789abcdef") == 16,
          "%s: X-Request-Id %s", what, id);
    CHECK(test_resp_header(r, "Content-Type", ct, sizeof ct) &&
              (strcmp(ct, "application/json") == 0 || r->status == 200),
          "%s: Content-Type %s", what, ct);
    CHECK(test_resp_header(r, "Cache-Control", cc, sizeof cc) && strcmp(cc, "no-store") == 0,
          "%s: Cache-Control %s", what, cc);
    if (strcmp(ct, "application/json") == 0 || code != NULL)
        CHECK(r->json != NULL, "%s: the body is not JSON: %s", what, r->body);
}

/* ---- temporary files ---------------------------------------------------------------------- */

#define TEST_TMP_MAX 64

static char tmp_dir[256];
static char tmp_paths[TEST_TMP_MAX][512];
static int tmp_n;

const char *test_tmp_dir(void)
{
    return tmp_dir[0] != '\0' ? tmp_dir : NULL;
}

const char *test_tmp_path(const char *name)
{
    if (tmp_dir[0] == '\0') {
        const char *base = getenv("TMPDIR");
        if (base == NULL || *base == '\0')
            base = "/tmp";
        int n = snprintf(tmp_dir, sizeof tmp_dir, "%s/usersigd-test.XXXXXX", base);
        if (n < 0 || (size_t)n >= sizeof tmp_dir || mkdtemp(tmp_dir) == NULL) {
            perror("mkdtemp");
            abort();
        }
    }
    if (tmp_n == TEST_TMP_MAX)
        abort();
    int n = snprintf(tmp_paths[tmp_n], sizeof tmp_paths[tmp_n], "%s/%s", tmp_dir, name);
    if (n < 0 || (size_t)n >= sizeof tmp_paths[tmp_n])
        abort();
    return tmp_paths[tmp_n++];
}

void test_tmp_remove(void)
{
    for (int i = tmp_n - 1; i >= 0; i--)
        unlink(tmp_paths[i]);
    tmp_n = 0;
    if (tmp_dir[0] != '\0')
        rmdir(tmp_dir);
    tmp_dir[0] = '\0';
}

long test_read_file(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    size_t n;
    if (f == NULL)
        return -1;
    n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    return (long)n;
}

void test_hex(const uint8_t *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

struct on_loop_call {
    void (*fn)(void *arg);
    void *arg;
    atomic_int done;
};

static void on_loop_cb(evutil_socket_t fd, short what, void *arg)
{
    struct on_loop_call *c = arg;
    (void)fd;
    (void)what;
    c->fn(c->arg);
    atomic_store(&c->done, 1);
}

void test_on_loop(struct event_base *base, void (*fn)(void *arg), void *arg)
{
    struct on_loop_call c = {fn, arg, 0};
    struct timeval now = {0, 0};
    CHECK(event_base_once(base, -1, EV_TIMEOUT, on_loop_cb, &c, &now) == 0, "event_base_once");
    for (int i = 0; i < 10000 && !atomic_load(&c.done); i++)
        usleep(1000);
    CHECK(atomic_load(&c.done), "the loop ran the call");
}

void *test_loop_thread(void *base)
{
    event_base_loop(base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}
