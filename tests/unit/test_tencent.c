/*
 * server/tencent/ against the Tencent REST stand-in (tests/tencent/standin.js) over real HTTPS
 * with a test CA (tests/tencent/make_ca.sh), on a real libevent loop: replies passed through
 * (OK and FAIL), 60007 retried then OK and retried to its bound, the wrong CA and the system
 * store refused as TLS errors, a slow server as a timeout, a reply over the size bound refused,
 * the loop kept running during a slow call, the rate limiter's queue and its refusal with a retry
 * time, admin UserSig caching and renewal (an injected clock), no URL query in the log. The
 * pieces that need no server (settings, URLs, replies) are test_tim_pieces.c.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "outbound.h"
#include "testlib.h"
#include "tim.h"
#include "usersig.h"

extern char **environ;

#define APP1 1400000001u /* keys match: the admin is "administrator" */
#define APP2 1400000002u /* the stand-in holds KEY2, the signer signs with KEY1: 70009 */
#define KEY1 "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
#define KEY2 "0000000000000000000000000000000000000000000000000000000000000002"

static struct event_base *base;
static char ca_dir[512], ca_file[600], other_ca[600], base_url[64];
static int port;
static pid_t standin_pid = -1;

/* ---- the stand-in -----------------------------------------------------------------------------
 */

static int run(char *const argv[])
{
    pid_t pid;
    if (posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ) != 0)
        return -1;
    int st;
    if (waitpid(pid, &st, 0) < 0)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int standin_start(void)
{
    snprintf(ca_dir, sizeof ca_dir, "%s", test_tmp_path("ca"));
    snprintf(ca_file, sizeof ca_file, "%s/ca.pem", ca_dir);
    snprintf(other_ca, sizeof other_ca, "%s/other-ca.pem", ca_dir);
    char *mk[] = {"bash", USERSIGD_SOURCE_DIR "/tests/tencent/make_ca.sh", ca_dir, NULL};
    if (run(mk) != 0)
        return -1;
    const char *cfg = test_tmp_path("standin.json");
    FILE *f = fopen(cfg, "w");
    if (f == NULL)
        return -1;
    fprintf(f,
            "{\"apps\":{\"%u\":{\"key\":\"%s\",\"admins\":[\"administrator\",\"ops\"]},"
            "\"%u\":{\"key\":\"%s\",\"admins\":[\"administrator\"]}}}\n",
            APP1, KEY1, APP2, KEY2);
    fclose(f);
    int out[2];
    if (pipe(out) != 0)
        return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    char *argv[] = {"node",      USERSIGD_SOURCE_DIR "/tests/tencent/standin.js",
                    "--config",  (char *)cfg,
                    "--tls-dir", ca_dir,
                    "--port",    "0",
                    NULL};
    int rc = posix_spawnp(&standin_pid, "node", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    if (rc != 0) {
        close(out[0]);
        return -1;
    }
    char line[128];
    size_t n = 0;
    while (n + 1 < sizeof line) {
        ssize_t r = read(out[0], line + n, 1);
        if (r <= 0 || line[n] == '\n')
            break;
        n++;
    }
    line[n] = '\0';
    close(out[0]);
    if (sscanf(line, "{\"port\":%d}", &port) != 1)
        return -1;
    snprintf(base_url, sizeof base_url, "https://127.0.0.1:%d", port);
    return 0;
}

static void standin_stop(void)
{
    if (standin_pid > 0) {
        kill(standin_pid, SIGTERM);
        waitpid(standin_pid, NULL, 0);
    }
    static const char *files[] = {"ca.pem",     "ca.key",     "other-ca.pem",   "other-ca.key",
                                  "server.pem", "server.key", "wrong-name.pem", "wrong-name.key"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char p[700];
        snprintf(p, sizeof p, "%s/%s", ca_dir, files[i]);
        unlink(p);
    }
    rmdir(ca_dir);
}

/* ---- the loop ---------------------------------------------------------------------------------
 */

/* Runs the loop until *flag is set or 15 s have passed. */
static void run_until(const int *flag)
{
    time_t end = time(NULL) + 15;
    while (!*flag && time(NULL) < end)
        event_base_loop(base, EVLOOP_ONCE);
    CHECK(*flag, "the loop finished what it waited for");
}

static double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* ---- outbound ---------------------------------------------------------------------------------
 */

struct ob_wait {
    int done;
    enum outbound_rc rc;
    long status;
    char body[8192];
    size_t len;
    double ms;
    char error[OUTBOUND_ERR_MAX];
};

static void ob_done(const struct outbound_result *r, void *arg)
{
    struct ob_wait *w = arg;
    w->done = 1;
    w->rc = r->rc;
    w->status = r->status;
    w->len = r->body_len;
    snprintf(w->body, sizeof w->body, "%.*s", (int)r->body_len, r->body);
    w->ms = r->duration_ms;
    snprintf(w->error, sizeof w->error, "%s", r->error);
}

static struct outbound *ob_make(const char *ca, int64_t timeout_ms, size_t max_response)
{
    struct outbound_options o = {0};
    o.ca_file = ca;
    o.timeout_ms = timeout_ms;
    o.connect_timeout_ms = 2000;
    o.max_response = max_response;
    char err[256];
    struct outbound *ob = outbound_new(base, &o, err, sizeof err);
    CHECK(ob != NULL, "outbound_new: %s", err);
    return ob;
}

/* One POST through ob, waited for. */
static void ob_post(struct outbound *ob, const char *path, const char *body, struct ob_wait *w)
{
    memset(w, 0, sizeof *w);
    char url[512];
    snprintf(url, sizeof url, "%s%s", base_url, path);
    enum outbound_rc rc = outbound_post_json(ob, url, body, strlen(body), ob_done, w);
    CHECK(rc == OUTBOUND_OK, "%s: started (%s)", path, outbound_rc_name(rc));
    if (rc == OUTBOUND_OK)
        run_until(&w->done);
}

/* The stand-in's test endpoint: queue replies for the next calls of a command. */
static void inject(struct outbound *ob, uint32_t app, const char *cmd, const char *replies)
{
    char body[2048];
    snprintf(body, sizeof body, "{\"sdkappid\":\"%u\",\"command\":\"%s\",\"replies\":%s}", app, cmd,
             replies);
    struct ob_wait w;
    ob_post(ob, "/__standin/inject", body, &w);
    CHECK(w.rc == OUTBOUND_OK && w.status == 200, "inject: %ld %s", w.status, w.body);
}

static int ticks;
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    ticks++;
}

static void test_outbound(void)
{
    struct outbound *ob = ob_make(ca_file, 5000, 0);
    struct ob_wait w;
    char url[256];

    /* A reply: the stand-in's answer to a call without its parameters. */
    ob_post(ob, "/v4/im_open_login_svc/account_check", "{}", &w);
    CHECK(w.rc == OUTBOUND_OK && w.status == 200, "reply: %s %ld", outbound_rc_name(w.rc),
          w.status);
    CHECK(strstr(w.body, "\"ErrorCode\":60012") != NULL, "no sdkappid: 60012 (%s)", w.body);

    /* http:// is refused unless allowed; not a URL either. */
    w.done = 0;
    CHECK(outbound_post_json(ob, "http://127.0.0.1:1/x", "{}", 2, ob_done, &w) == OUTBOUND_BAD_URL,
          "http refused");
    CHECK(outbound_post_json(ob, "ftp://127.0.0.1/x", "{}", 2, ob_done, &w) == OUTBOUND_BAD_URL,
          "ftp refused");
    CHECK(outbound_pending(ob) == 0 && !w.done, "nothing started");

    /* The loop keeps running while a slow call is out: a 20 ms timer ticks on. */
    struct event *tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
    struct timeval tv = {0, 20000};
    event_add(tick, &tv);
    ticks = 0;
    double t0 = mono_ms();
    ob_post(ob, "/v4/a/b?__delay=800", "{}", &w);
    double took = mono_ms() - t0;
    event_free(tick);
    CHECK(w.rc == OUTBOUND_OK && took >= 750, "the slow reply came (%.0f ms)", took);
    CHECK(ticks >= 25, "the loop ran during the call: %d ticks of 20 ms in %.0f ms", ticks, took);

    /* Timeout: the stand-in answers after 3 s, the client gives 400 ms. */
    struct outbound *quick = ob_make(ca_file, 400, 0);
    ob_post(quick, "/v4/a/b?__delay=3000", "{}", &w);
    CHECK(w.rc == OUTBOUND_TIMEOUT, "timeout: %s (%s)", outbound_rc_name(w.rc), w.error);
    CHECK(w.ms >= 350 && w.ms < 2500, "timed out after %.0f ms", w.ms);
    CHECK(w.len == 0 && w.status == 0, "no body on a timeout");
    outbound_free(quick);

    /* The size bound: 4 KiB allowed, a 10 KB reply refused, a small one taken. */
    struct outbound *small = ob_make(ca_file, 5000, 4096);
    ob_post(small, "/v4/a/b?__pad=10000", "{}", &w);
    CHECK(w.rc == OUTBOUND_TOO_LARGE, "over the bound: %s", outbound_rc_name(w.rc));
    ob_post(small, "/v4/a/b?__pad=1000", "{}", &w);
    CHECK(w.rc == OUTBOUND_OK && w.len > 1000 && w.len <= 4096, "under the bound: %s %zu",
          outbound_rc_name(w.rc), w.len);
    outbound_free(small);

    /* discard_response (the webhooks'): a 2xx past the bound (its Content-Length too) is still a
     * 2xx, its body dropped. */
    struct outbound_options dopt = {0};
    char derr[256];
    dopt.ca_file = ca_file;
    dopt.max_response = 4096;
    dopt.discard_response = 1;
    struct outbound *drop = outbound_new(base, &dopt, derr, sizeof derr);
    CHECK(drop != NULL, "outbound_new: %s", derr);
    ob_post(drop, "/v4/a/b?__pad=200000", "{}", &w);
    CHECK(w.rc == OUTBOUND_OK && w.status == 200 && w.len == 0,
          "discarded: a large 200 is a 200: %s %ld %zu", outbound_rc_name(w.rc), w.status, w.len);
    ob_post(drop, "/v4/a/b?__pad=100", "{}", &w);
    CHECK(w.rc == OUTBOUND_OK && w.status == 200 && w.len == 0, "discarded, small: %s %ld",
          outbound_rc_name(w.rc), w.status);
    outbound_free(drop);

    /* refuse_internal (the webhooks' unless webhook_allow_insecure_url): no connection to an
     * internal address, named by an address literal or by a name that resolves to one. */
    struct outbound_options ropt = {0};
    ropt.ca_file = ca_file;
    ropt.refuse_internal = 1;
    struct outbound *ext = outbound_new(base, &ropt, derr, sizeof derr);
    CHECK(ext != NULL, "outbound_new: %s", derr);
    const char *internal[] = {"https://127.0.0.1", "https://localhost", "https://2130706433",
                              "https://[::1]"};
    for (size_t i = 0; i < sizeof internal / sizeof internal[0]; i++) {
        memset(&w, 0, sizeof w);
        snprintf(url, sizeof url, "%s:%d/v4/a/b", internal[i], port);
        CHECK(outbound_post_json(ext, url, "{}", 2, ob_done, &w) == OUTBOUND_OK, "started");
        run_until(&w.done);
        CHECK(w.rc == OUTBOUND_CONNECT && strstr(w.error, "is internal") != NULL,
              "%s refused as internal: %s (%s)", url, outbound_rc_name(w.rc), w.error);
    }
    outbound_free(ext);
    struct sockaddr_in s4 = {.sin_family = AF_INET};
    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
    static const struct {
        const char *addr;
        bool internal;
    } addrs[] = {
        {"127.0.0.1", true},
        {"127.255.0.9", true},
        {"10.9.8.7", true},
        {"172.16.0.1", true},
        {"172.31.255.255", true},
        {"172.32.0.1", false},
        {"192.168.0.1", true},
        {"169.254.169.254", true},
        {"100.64.0.1", true},
        {"100.128.0.1", false},
        {"0.0.0.0", true},
        {"203.0.113.7", false},
        {"8.8.8.8", false},
        {"::1", true},
        {"::", true},
        {"fd00::1", true},
        {"fe80::1", true},
        {"::ffff:127.0.0.1", true},
        {"2001:db8::1", false},
        {"192.0.0.8", true},
        {"198.18.0.1", true},
        {"198.19.255.255", true},
        {"198.20.0.1", false},
        {"224.0.0.1", true},
        {"240.0.0.1", true},
        {"255.255.255.255", true},
        {"223.255.255.255", false},
        {"::127.0.0.1", true},       /* IPv4-compatible */
        {"::ffff:0:10.0.0.1", true}, /* SIIT */
        {"64:ff9b::a00:1", true},    /* NAT64 of 10.0.0.1 */
        {"64:ff9b::7f00:1", true},   /* NAT64 of 127.0.0.1 */
        {"64:ff9b::808:808", false}, /* NAT64 of 8.8.8.8: a public address */
        {"64:ff9b:1::1", true},      /* local-use NAT64 */
        {"2002:7f00:1::1", true},    /* 6to4 of 127.0.0.1 */
        {"2002:c0a8:101::1", true},  /* 6to4 of 192.168.1.1 */
        {"2002:808:808::1", false},  /* 6to4 of 8.8.8.8 */
        {"2001::1", true},           /* Teredo */
        {"fec0::1", true},           /* site-local */
        {"ff02::1", true},           /* multicast */
        {"100::1", true},            /* discard-only */
        {"2606:4700::1111", false},
    };
    for (size_t i = 0; i < sizeof addrs / sizeof addrs[0]; i++) {
        const struct sockaddr *sa = (const struct sockaddr *)&s4;
        if (inet_pton(AF_INET, addrs[i].addr, &s4.sin_addr) != 1) {
            CHECK(inet_pton(AF_INET6, addrs[i].addr, &s6.sin6_addr) == 1, "%s", addrs[i].addr);
            sa = (const struct sockaddr *)&s6;
        }
        CHECK(outbound_addr_internal(sa) == addrs[i].internal, "%s internal: %d", addrs[i].addr,
              !addrs[i].internal);
    }

    /* The wrong CA, and the system store (which does not hold the test CA): TLS errors. */
    struct outbound *wrong = ob_make(other_ca, 5000, 0);
    ob_post(wrong, "/v4/a/b", "{}", &w);
    CHECK(w.rc == OUTBOUND_TLS, "wrong CA: %s (%s)", outbound_rc_name(w.rc), w.error);
    CHECK(strstr(w.error, "?") == NULL, "no query in the error: %s", w.error);
    outbound_free(wrong);
    struct outbound *sys = ob_make(NULL, 5000, 0);
    ob_post(sys, "/v4/a/b", "{}", &w);
    CHECK(w.rc == OUTBOUND_TLS, "system store: %s (%s)", outbound_rc_name(w.rc), w.error);
    outbound_free(sys);

    /* The right CA, another name: the stand-in answers SNI "localhost" with a certificate made
     * for wrong-name.invalid. The host name is checked: a TLS error. */
    struct outbound *named = ob_make(ca_file, 5000, 0);
    memset(&w, 0, sizeof w);
    snprintf(url, sizeof url, "https://localhost:%d/v4/a/b", port);
    CHECK(outbound_post_json(named, url, "{}", 2, ob_done, &w) == OUTBOUND_OK, "started");
    run_until(&w.done);
    CHECK(w.rc == OUTBOUND_TLS, "another name: %s (%s)", outbound_rc_name(w.rc), w.error);
    outbound_free(named);

    /* A proxy in the environment is not used (it would refuse: nothing listens on port 1). */
    const char *proxies[] = {"https_proxy", "HTTPS_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"};
    for (size_t i = 0; i < sizeof proxies / sizeof proxies[0]; i++)
        setenv(proxies[i], "http://127.0.0.1:1", 1);
    struct outbound *env = ob_make(ca_file, 5000, 0);
    ob_post(env, "/v4/a/b", "{}", &w);
    CHECK(w.rc == OUTBOUND_OK && w.status == 200, "no proxy from the environment: %s",
          outbound_rc_name(w.rc));
    outbound_free(env);
    for (size_t i = 0; i < sizeof proxies / sizeof proxies[0]; i++)
        unsetenv(proxies[i]);

    /* max_transfers: one connection at a time serializes three 300 ms calls; eight do not. */
    for (int max = 1; max <= 8; max += 7) {
        struct outbound_options o = {0};
        o.ca_file = ca_file;
        o.max_transfers = max;
        char err[256];
        struct outbound *lim = outbound_new(base, &o, err, sizeof err);
        struct ob_wait three[3];
        memset(three, 0, sizeof three);
        snprintf(url, sizeof url, "%s/v4/a/b?__delay=300", base_url);
        double s0 = mono_ms();
        for (int i = 0; i < 3; i++)
            CHECK(outbound_post_json(lim, url, "{}", 2, ob_done, &three[i]) == OUTBOUND_OK,
                  "started");
        CHECK(outbound_pending(lim) == 3, "three pending");
        for (int i = 0; i < 3; i++)
            run_until(&three[i].done);
        double all = mono_ms() - s0;
        CHECK(three[0].rc == OUTBOUND_OK && three[1].rc == OUTBOUND_OK &&
                  three[2].rc == OUTBOUND_OK,
              "all three OK");
        if (max == 1)
            CHECK(all >= 850, "one at a time: %.0f ms", all);
        else
            CHECK(all < 850, "at once: %.0f ms", all);
        outbound_free(lim);
    }

    /* Nothing listening: a connect error. */
    struct outbound *none = ob_make(ca_file, 5000, 0);
    memset(&w, 0, sizeof w);
    CHECK(outbound_post_json(none, "https://127.0.0.1:1/v4/a/b", "{}", 2, ob_done, &w) ==
              OUTBOUND_OK,
          "started");
    run_until(&w.done);
    CHECK(w.rc == OUTBOUND_CONNECT, "connect refused: %s", outbound_rc_name(w.rc));
    outbound_free(none);

    /* outbound_free with a call in flight: it completes as cancelled. */
    struct outbound *gone = ob_make(ca_file, 5000, 0);
    snprintf(url, sizeof url, "%s/v4/a/b?__delay=2000", base_url);
    memset(&w, 0, sizeof w);
    CHECK(outbound_post_json(gone, url, "{}", 2, ob_done, &w) == OUTBOUND_OK, "started");
    event_base_loop(base, EVLOOP_NONBLOCK);
    outbound_free(gone);
    CHECK(w.done && w.rc == OUTBOUND_CANCELLED, "cancelled at free: %s", outbound_rc_name(w.rc));

    char red[128];
    outbound_url_redacted("https://h.example:8443/v4/s/c?usersig=SECRET&x=1#f", true, red,
                          sizeof red);
    CHECK(strcmp(red, "h.example:8443/v4/s/c") == 0, "redacted: %s", red);
    outbound_url_redacted("https://u:pw@h.example/p?usersig=SECRET", true, red, sizeof red);
    CHECK(strcmp(red, "h.example/p") == 0, "redacted without user info: %s", red);
    outbound_url_redacted("https://h.example:8443/T0/B0/SECRET?x=1", false, red, sizeof red);
    CHECK(strcmp(red, "h.example:8443/...") == 0, "without the path: %s", red);
    outbound_url_redacted("https://h.example", false, red, sizeof red);
    CHECK(strcmp(red, "h.example/") == 0, "the root: %s", red);
    outbound_free(ob);
}

/* ---- tim against the stand-in -----------------------------------------------------------------
 */

static int64_t fake_now;
static int64_t fake_clock(void *arg)
{
    (void)arg;
    return fake_now;
}

struct signer {
    int calls;
    int fail; /* 1: the next signing fails */
    int64_t expire_seen;
};

/* The core's part, done here with the codec: always KEY1 (so APP2's stand-in key differs). */
static void test_sign(void *signer_arg, uint32_t sdkappid, const char *identifier,
                      uint32_t key_version, int64_t expire, tim_signed_fn done, void *ctx)
{
    (void)key_version;
    struct signer *s = signer_arg;
    s->calls++;
    s->expire_seen = expire;
    if (s->fail) {
        s->fail = 0;
        done(ctx, NULL, 0, 0);
        return;
    }
    struct usersig_key *key = NULL;
    struct usersig_signer *sg = NULL;
    char tok[USERSIG_TOKEN_BUF];
    size_t len = 0;
    struct usersig_params p = {0};
    p.identifier = identifier;
    p.identifier_len = strlen(identifier);
    p.expire = (uint32_t)expire;
    p.time = fake_now;
    int ok = usersig_key_new_hmac(KEY1, strlen(KEY1), &key) == USERSIG_OK &&
             usersig_signer_new(key, sdkappid, USERSIG_DEFAULT_LEVEL, USERSIG_ID_PRINTABLE, &sg) ==
                 USERSIG_OK &&
             usersig_sign(sg, &p, tok, sizeof tok, &len) == USERSIG_OK;
    usersig_signer_free(sg);
    usersig_key_free(key);
    done(ctx, ok ? tok : NULL, fake_now, expire);
}

struct tim_wait {
    int done;
    struct tim_result r;
    char info[256];
    char reply[4096];
};

static void tim_done(const struct tim_result *r, void *arg)
{
    struct tim_wait *w = arg;
    w->done = 1;
    w->r = *r;
    snprintf(w->info, sizeof w->info, "%s", r->error_info ? r->error_info : "");
    w->r.error_info = w->info;
    w->reply[0] = '\0';
    if (r->reply != NULL) {
        char *s = json_dumps(r->reply, JSON_COMPACT | JSON_SORT_KEYS);
        if (s != NULL)
            snprintf(w->reply, sizeof w->reply, "%s", s);
        free(s);
    }
    w->r.reply = NULL;
}

static int make_attempts = 3;
static int64_t make_backoff_ms = 60;
static int64_t make_sig_expire = 300;

static struct tim *tim_make(struct signer *s, double rate, double burst, int64_t max_wait_ms)
{
    struct tim_options o = {0};
    o.outbound.ca_file = ca_file;
    o.outbound.timeout_ms = 5000;
    o.sign = test_sign;
    o.sign_arg = s;
    o.clock = fake_clock;
    o.sig_expire = make_sig_expire;
    o.rate = rate;
    o.burst = burst;
    o.max_wait_ms = max_wait_ms;
    o.max_queue = 10;
    o.max_attempts = make_attempts;
    o.backoff_base_ms = make_backoff_ms;
    o.backoff_max_ms = 8 * make_backoff_ms;
    char err[256];
    struct tim *t = tim_new(base, &o, err, sizeof err);
    CHECK(t != NULL, "tim_new: %s", err);
    return t;
}

static enum tim_rc call(struct tim *t, uint32_t app, const char *identifier, const char *cmd,
                        const char *body, struct tim_wait *w, int64_t *retry_after)
{
    memset(w, 0, sizeof *w);
    struct tim_call c = {0};
    c.sdkappid = app;
    c.identifier = identifier;
    c.key_version = 1;
    c.base_url = base_url;
    c.service = "im_open_login_svc";
    c.command = cmd;
    c.body = body;
    c.body_len = strlen(body);
    return tim_call(t, &c, tim_done, w, retry_after);
}

static void call_wait(struct tim *t, uint32_t app, const char *identifier, const char *cmd,
                      const char *body, struct tim_wait *w)
{
    enum tim_rc rc = call(t, app, identifier, cmd, body, w, NULL);
    CHECK(rc == TIM_OK, "%s accepted (%d)", cmd, rc);
    CHECK(!w->done, "%s: not done within tim_call", cmd);
    if (rc == TIM_OK)
        run_until(&w->done);
}

static void test_tim(void)
{
    struct signer s = {0};
    fake_now = (int64_t)time(NULL);
    struct tim *t = tim_make(&s, 100, 100, 2000);
    struct tim_wait w;

    /* OK, and what the stand-in kept agrees. */
    call_wait(t, APP1, "administrator", "account_import", "{\"UserID\":\"alice\",\"Nick\":\"A\"}",
              &w);
    CHECK(w.r.rc == TIM_OK && w.r.action_ok && w.r.error_code == 0 && w.r.attempts == 1 &&
              w.r.http_status == 200,
          "import: rc %d ok %d code %lld (%s)", w.r.rc, w.r.action_ok, w.r.error_code, w.info);
    CHECK(s.calls == 1 && s.expire_seen == 300, "one signing (%d), 300 s asked", s.calls);
    call_wait(t, APP1, "administrator", "multiaccount_import",
              "{\"AccountList\":[{\"UserID\":\"bob\"},{\"UserID\":\"\"},"
              "{\"UserID\":\"123456789012345678901234567890123\"}]}",
              &w);
    CHECK(w.r.rc == TIM_OK && w.r.action_ok &&
              strstr(w.reply, "\"FailAccounts\":[\"\",\"123456789012345678901234567890123\"]"),
          "multiaccount_import: %s", w.reply);
    call_wait(
        t, APP1, "administrator", "account_check",
        "{\"CheckItem\":[{\"UserID\":\"alice\"},{\"UserID\":\"bob\"},{\"UserID\":\"carol\"}]}", &w);
    CHECK(strstr(w.reply, "\"AccountStatus\":\"Imported\",\"ResultCode\":0,\"ResultInfo\":\"\","
                          "\"UserID\":\"alice\"") &&
              strstr(w.reply, "\"AccountStatus\":\"NotImported\",\"ResultCode\":0,"
                              "\"ResultInfo\":\"\",\"UserID\":\"carol\""),
          "account_check: %s", w.reply);
    CHECK(s.calls == 1, "the admin UserSig was cached: %d signings", s.calls);

    /* FAIL passed through, not retried: a bad body, a non-admin, a key Tencent does not hold. */
    call_wait(t, APP1, "administrator", "account_import", "{\"UserID\":\"\"}", &w);
    CHECK(w.r.rc == TIM_OK && !w.r.action_ok && w.r.error_code == 70402 && w.r.attempts == 1,
          "70402 passed through: %lld after %d", w.r.error_code, w.r.attempts);
    call_wait(t, APP1, "alice", "account_check", "{\"CheckItem\":[{\"UserID\":\"a\"}]}", &w);
    CHECK(w.r.rc == TIM_OK && !w.r.action_ok && w.r.error_code == 60010 && w.r.attempts == 1,
          "not an admin: %lld", w.r.error_code);
    call_wait(t, APP2, "administrator", "account_check", "{\"CheckItem\":[{\"UserID\":\"a\"}]}",
              &w);
    CHECK(w.r.rc == TIM_OK && !w.r.action_ok && w.r.error_code == 70009 && w.r.attempts == 1,
          "another key: %lld", w.r.error_code);
    call_wait(t, APP1, "administrator", "no_such_command", "{}", &w);
    CHECK(w.r.rc == TIM_OK && w.r.error_code == 60009, "unknown command: %lld", w.r.error_code);

    /* 60007 twice, then OK: three attempts, with backoffs between them. */
    struct outbound *ob = ob_make(ca_file, 5000, 0);
    inject(ob, APP1, "im_open_login_svc/account_check",
           "[{\"ErrorCode\":60007,\"ErrorInfo\":\"too fast\"},{\"ErrorCode\":60011}]");
    call_wait(t, APP1, "administrator", "account_check", "{\"CheckItem\":[{\"UserID\":\"a\"}]}",
              &w);
    CHECK(w.r.rc == TIM_OK && w.r.action_ok && w.r.attempts == 3, "retried to OK: %d attempts",
          w.r.attempts);
    CHECK(w.r.duration_ms >= 30 + 60, "backed off: %.0f ms", w.r.duration_ms);
    /* 60007 every time: three attempts, then the FAIL with a retry time. */
    inject(ob, APP1, "im_open_login_svc/account_check",
           "[{\"ErrorCode\":60007},{\"ErrorCode\":60007},{\"ErrorCode\":60007}]");
    call_wait(t, APP1, "administrator", "account_check", "{\"CheckItem\":[{\"UserID\":\"a\"}]}",
              &w);
    CHECK(w.r.rc == TIM_OK && !w.r.action_ok && w.r.error_code == 60007 && w.r.attempts == 3 &&
              w.r.retry_after_ms > 0,
          "retries bounded: %d attempts, code %lld, retry after %lld", w.r.attempts, w.r.error_code,
          (long long)w.r.retry_after_ms);
    /* Not retried: another code, and an HTTP error. */
    inject(ob, APP1, "im_open_login_svc/account_check",
           "[{\"ErrorCode\":60008},{\"http_status\":502,\"ErrorCode\":0}]");
    call_wait(t, APP1, "administrator", "account_check", "{\"CheckItem\":[{\"UserID\":\"a\"}]}",
              &w);
    CHECK(w.r.rc == TIM_OK && w.r.error_code == 60008 && w.r.attempts == 1, "60008 not retried");
    call_wait(t, APP1, "administrator", "account_check", "{\"CheckItem\":[{\"UserID\":\"a\"}]}",
              &w);
    CHECK(w.r.rc == TIM_BAD_REPLY && w.r.http_status == 502 && w.r.attempts == 1,
          "HTTP 502: bad reply (%d)", w.r.rc);

    /* Renewal: with less than a third of its 300 s left the UserSig is renewed in the background
     * (this call goes with the old one); past its end, the next call waits for a new one. */
    int before = s.calls;
    fake_now += 150;
    call_wait(t, APP1, "administrator", "account_check", "{\"CheckItem\":[{\"UserID\":\"a\"}]}",
              &w);
    CHECK(w.r.action_ok && s.calls == before, "half its life left: no signing (%d)", s.calls);
    fake_now += 60; /* 210 s of 300: 90 s left, under a third */
    call_wait(t, APP1, "administrator", "account_check", "{\"CheckItem\":[{\"UserID\":\"a\"}]}",
              &w);
    CHECK(w.r.action_ok && s.calls == before + 1, "renewed under a third (%d)", s.calls);
    call_wait(t, APP1, "administrator", "account_check", "{\"CheckItem\":[{\"UserID\":\"a\"}]}",
              &w);
    CHECK(w.r.action_ok && s.calls == before + 1, "the renewed one is used (%d)", s.calls);
    fake_now += 1000; /* past every UserSig made so far */
    s.fail = 1;
    call_wait(t, APP1, "administrator", "account_check", "{\"CheckItem\":[{\"UserID\":\"a\"}]}",
              &w);
    CHECK(w.r.rc == TIM_SIGN_FAILED && w.r.attempts == 0, "signing failed: %d", w.r.rc);
    call_wait(t, APP1, "administrator", "account_check", "{\"CheckItem\":[{\"UserID\":\"a\"}]}",
              &w);
    CHECK(w.r.action_ok && s.calls == before + 3, "signed again after the failure (%d)", s.calls);
    /* Another identifier or key version: an entry of its own. */
    call_wait(t, APP1, "ops", "account_check", "{\"CheckItem\":[{\"UserID\":\"a\"}]}", &w);
    CHECK(w.r.action_ok && s.calls == before + 4, "ops signed for (%d)", s.calls);
    tim_forget_app(t, APP1);
    call_wait(t, APP1, "ops", "account_check", "{\"CheckItem\":[{\"UserID\":\"a\"}]}", &w);
    CHECK(w.r.action_ok && s.calls == before + 5, "forgotten, signed again (%d)", s.calls);

    /* Refused before any call: bad names, a bad base URL. */
    struct tim_call bad = {APP1, "administrator", 1, base_url, "im_open_login_svc", "Bad", "{}", 2};
    CHECK(tim_call(t, &bad, tim_done, &w, NULL) == TIM_INVALID, "bad command refused");
    bad.command = "account_check";
    bad.base_url = "http://127.0.0.1:1";
    CHECK(tim_call(t, &bad, tim_done, &w, NULL) == TIM_INVALID, "http base refused");
    outbound_free(ob);
    tim_free(t);
}

static void test_rate_limiter(void)
{
    struct signer s = {0};
    fake_now = (int64_t)time(NULL);
    /* 5 calls a second, a burst of 2, a wait of at most 500 ms: two go at once, the third and
     * fourth wait about 200 and 400 ms, the fifth (600 ms) is refused with that retry time. */
    struct tim *t = tim_make(&s, 5, 2, 500);
    struct tim_wait w[6];
    int64_t retry = -1;
    const char *body = "{\"CheckItem\":[{\"UserID\":\"a\"}]}";
    for (int i = 0; i < 4; i++)
        CHECK(call(t, APP1, "administrator", "account_check", body, &w[i], &retry) == TIM_OK,
              "call %d accepted", i);
    CHECK(call(t, APP1, "administrator", "account_check", body, &w[4], &retry) ==
                  TIM_RATE_LIMITED &&
              retry >= 500 && retry <= 700,
          "the fifth refused, retry after %lld ms", (long long)retry);
    /* Another app has a bucket of its own. */
    CHECK(call(t, APP2, "administrator", "account_check", body, &w[5], &retry) == TIM_OK,
          "another app not limited");
    for (int i = 0; i < 4; i++)
        run_until(&w[i].done);
    run_until(&w[5].done);
    for (int i = 0; i < 4; i++)
        CHECK(w[i].r.rc == TIM_OK && w[i].r.action_ok, "call %d ok (%d %s)", i, w[i].r.rc,
              w[i].info);
    CHECK(w[2].r.duration_ms >= 150 && w[3].r.duration_ms >= 350,
          "queued calls waited: %.0f ms, %.0f ms", w[2].r.duration_ms, w[3].r.duration_ms);
    CHECK(w[0].r.duration_ms < w[2].r.duration_ms, "the first went first");
    CHECK(!w[4].done, "the refused call never completes");

    /* tim_free with calls queued and in flight: each gets TIM_CANCELLED, once. A full bucket
     * first (two go out at once, two wait). */
    usleep(450 * 1000);
    for (int i = 0; i < 4; i++)
        CHECK(call(t, APP1, "administrator", "account_check", body, &w[i], NULL) == TIM_OK,
              "call %d accepted", i);
    event_base_loop(base, EVLOOP_NONBLOCK);
    tim_free(t);
    int cancelled = 0;
    for (int i = 0; i < 4; i++)
        cancelled += w[i].done && (w[i].r.rc == TIM_CANCELLED || w[i].r.rc == TIM_OK);
    CHECK(cancelled == 4, "every call completed at free (%d)", cancelled);
    CHECK(w[2].r.rc == TIM_CANCELLED && w[3].r.rc == TIM_CANCELLED, "the queued ones cancelled");
}

/* tim_cancel: a queued call and a call in flight end without their done. */
static void test_cancel(void)
{
    struct signer s = {0};
    fake_now = (int64_t)time(NULL);
    struct tim *t = tim_make(&s, 5, 1, 2000);
    const char *body = "{\"CheckItem\":[{\"UserID\":\"a\"}]}";
    struct tim_wait a, b, c;
    CHECK(call(t, APP1, "administrator", "account_check", body, &a, NULL) == TIM_OK, "a sent");
    CHECK(call(t, APP1, "administrator", "account_check", body, &b, NULL) == TIM_OK, "b queued");
    tim_cancel(t, &b);
    run_until(&a.done);
    CHECK(a.r.rc == TIM_OK && a.r.action_ok, "a not cancelled");
    /* c goes out once a token is back; cancelled while in flight. */
    usleep(250 * 1000);
    CHECK(call(t, APP1, "administrator", "account_check", body, &c, NULL) == TIM_OK, "c sent");
    /* Handed to libcurl already (no loop turn here: one could finish it on a fast machine). */
    tim_cancel(t, &c);
    struct event *stop = evtimer_new(base, on_tick, NULL);
    struct timeval tv = {0, 400000};
    evtimer_add(stop, &tv);
    ticks = 0;
    while (ticks == 0)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(stop);
    CHECK(!b.done && !c.done, "the cancelled calls never reported (b %d, c %d rc %d %s)", b.done,
          c.done, c.r.rc, c.info);
    /* The same arg again: reported as usual. */
    call_wait(t, APP1, "administrator", "account_check", body, &b);
    CHECK(b.done && b.r.rc == TIM_OK, "a new call with b's arg reported");
    tim_free(t);
    CHECK(!c.done, "nor at free");
}

/* Runs the loop for ms milliseconds. */
static void run_for(long ms)
{
    struct event *stop = evtimer_new(base, on_tick, NULL);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(stop, &tv);
    ticks = 0;
    while (ticks == 0)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(stop);
}

/* A call cancelled in flight and answered 60007 is not tried again: the second injected reply
 * is still there for the next call. */
static void test_cancel_no_retry(void)
{
    struct signer s = {0};
    fake_now = (int64_t)time(NULL);
    struct tim *t = tim_make(&s, 100, 100, 2000);
    struct outbound *ob = ob_make(ca_file, 5000, 0);
    const char *body = "{\"CheckItem\":[{\"UserID\":\"a\"}]}";
    inject(ob, APP1, "im_open_login_svc/account_check",
           "[{\"ErrorCode\":60007,\"delay_ms\":300},{\"ErrorCode\":60008}]");
    struct tim_wait a, b;
    CHECK(call(t, APP1, "administrator", "account_check", body, &a, NULL) == TIM_OK, "a sent");
    tim_cancel(t, &a);
    run_for(300 + 8 * make_backoff_ms + 500);
    CHECK(!a.done, "the cancelled call never reported");
    call_wait(t, APP1, "administrator", "account_check", body, &b);
    CHECK(b.r.rc == TIM_OK && !b.r.action_ok && b.r.error_code == 60008 && b.r.attempts == 1,
          "the cancelled call was not retried: the next one got the second reply (code %lld, %d "
          "attempts)",
          b.r.error_code, b.r.attempts);
    /* A cancelled call's 70001 still drops the admin UserSig Tencent refused: the next call
     * signs a new one. */
    int signed_before = s.calls;
    inject(ob, APP1, "im_open_login_svc/account_check",
           "[{\"ErrorCode\":70001,\"ErrorInfo\":\"expired\",\"delay_ms\":200}]");
    CHECK(call(t, APP1, "administrator", "account_check", body, &a, NULL) == TIM_OK, "a sent");
    tim_cancel(t, &a);
    run_for(700);
    CHECK(!a.done, "the cancelled call never reported");
    call_wait(t, APP1, "administrator", "account_check", body, &b);
    CHECK(b.r.rc == TIM_OK && b.r.action_ok && s.calls == signed_before + 1,
          "the refused UserSig was dropped: %d signings, before %d", s.calls, signed_before);
    outbound_free(ob);
    tim_free(t);
}

/* A done callback that calls again while tim_free() cancels: refused, nothing started. */
struct reenter {
    struct tim *t;
    int done;
    enum tim_rc rc, again;
    struct tim_wait sink;
};

static void reenter_done(const struct tim_result *r, void *arg)
{
    struct reenter *e = arg;
    e->done++;
    e->rc = r->rc;
    if (e->done == 1)
        e->again = call(e->t, APP1, "administrator", "account_check",
                        "{\"CheckItem\":[{\"UserID\":\"a\"}]}", &e->sink, NULL);
}

static void test_free_reentry(void)
{
    struct signer s = {0};
    fake_now = (int64_t)time(NULL);
    struct tim *t = tim_make(&s, 5, 1, 2000);
    struct outbound *ob = ob_make(ca_file, 5000, 0);
    inject(ob, APP1, "im_open_login_svc/account_check", "[{\"ErrorCode\":0,\"delay_ms\":3000}]");
    struct reenter e[2];
    memset(e, 0, sizeof e);
    for (int i = 0; i < 2; i++) {
        e[i].t = t;
        struct tim_call c = {APP1,
                             "administrator",
                             1,
                             base_url,
                             "im_open_login_svc",
                             "account_check",
                             "{\"CheckItem\":[{\"UserID\":\"a\"}]}",
                             0};
        c.body_len = strlen(c.body);
        CHECK(tim_call(t, &c, reenter_done, &e[i], NULL) == TIM_OK, "call %d accepted", i);
    }
    run_for(100); /* the first in flight, the second waiting for a token */
    tim_free(t);
    for (int i = 0; i < 2; i++)
        CHECK(e[i].done == 1 && e[i].rc == TIM_CANCELLED && e[i].again == TIM_CANCELLED &&
                  !e[i].sink.done,
              "call %d: cancelled once (%d, rc %d), its new call refused (rc %d)", i, e[i].done,
              e[i].rc, e[i].again);
    outbound_free(ob);
}

/* An app whose admin UserSigs live less than the 60 s margin (admin_max_expire 30): still
 * called, and the UserSig is reused while a quarter of it is left. */
static void test_short_expire(void)
{
    struct signer s = {0};
    fake_now = (int64_t)time(NULL);
    make_sig_expire = 30;
    struct tim *t = tim_make(&s, 100, 100, 2000);
    make_sig_expire = 300;
    struct tim_wait w;
    const char *body = "{\"CheckItem\":[{\"UserID\":\"a\"}]}";
    call_wait(t, APP1, "administrator", "account_check", body, &w);
    CHECK(w.r.rc == TIM_OK && w.r.action_ok && s.calls == 1,
          "a 30 s admin UserSig is used: rc %d (%s), %d signings", w.r.rc, w.info, s.calls);
    fake_now += 15;
    call_wait(t, APP1, "administrator", "account_check", body, &w);
    CHECK(w.r.action_ok && s.calls == 1, "reused with 15 s left (%d signings)", s.calls);
    fake_now += 9; /* 6 s left: under a quarter, a new one first */
    call_wait(t, APP1, "administrator", "account_check", body, &w);
    CHECK(w.r.action_ok && s.calls == 2, "signed again with 6 s left (%d signings)", s.calls);
    tim_free(t);
}

/* The stand-in's own limit (set to 20 account_delete calls a second) answers 60007 past it; the
 * calls over it are retried after backoffs that outlast the second, and all end OK. */
static void test_standin_limit(void)
{
    struct signer s = {0};
    fake_now = (int64_t)time(NULL);
    make_attempts = 6;
    make_backoff_ms = 200;
    struct tim *t = tim_make(&s, 1000, 1000, 2000);
    make_attempts = 3;
    make_backoff_ms = 60;
    struct outbound *ob = ob_make(ca_file, 5000, 0);
    struct ob_wait cw;
    ob_post(ob, "/__standin/config", "{\"limits\":{\"im_open_login_svc/account_delete\":20}}", &cw);
    CHECK(cw.rc == OUTBOUND_OK && cw.status == 200, "limit set: %s", cw.body);
    enum { N = 40 };
    static struct tim_wait w[N];
    const char *body = "{\"DeleteItem\":[{\"UserID\":\"nobody\"}]}";
    for (int i = 0; i < N; i++)
        CHECK(call(t, APP1, "administrator", "account_delete", body, &w[i], NULL) == TIM_OK,
              "call %d accepted", i);
    int ok = 0, retried = 0;
    for (int i = 0; i < N; i++) {
        run_until(&w[i].done);
        ok += w[i].r.rc == TIM_OK && w[i].r.action_ok;
        retried += w[i].r.attempts > 1;
    }
    CHECK(retried > 0, "the stand-in's limit was hit and retried: %d", retried);
    CHECK(ok == N, "%d of %d ended OK", ok, N);
    ob_post(ob, "/__standin/config", "{\"limits\":{\"im_open_login_svc/account_delete\":100}}",
            &cw);
    outbound_free(ob);
    tim_free(t);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    /* Every log line goes to a file, checked at the end for any UserSig. */
    const char *logf = test_tmp_path("log.txt");
    int fd = open(logf, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int saved = dup(2);
    if (fd >= 0)
        dup2(fd, 2);
    log_set_level(LOG_DEBUG);
    base = event_base_new();
    if (base == NULL || standin_start() != 0) {
        dup2(saved, 2);
        fprintf(stderr, "cannot start the Tencent stand-in (node, openssl needed)\n");
        standin_stop();
        return 1;
    }
    test_outbound();
    test_tim();
    test_rate_limiter();
    test_cancel();
    test_cancel_no_retry();
    test_free_reentry();
    test_short_expire();
    test_standin_limit();
    standin_stop();
    event_base_free(base);
    dup2(saved, 2);
    static char log[1 << 20];
    long n = test_read_file(logf, log, sizeof log);
    CHECK(n > 0 && strstr(log, "outbound POST 127.0.0.1") != NULL, "the calls were logged");
    CHECK(n > 0 && strstr(log, "usersig=") == NULL && strstr(log, "eJ") == NULL &&
              strstr(log, "?sdkappid") == NULL,
          "no URL query, no UserSig in the log");
    /* The failures were written to stderr, into the log: show them. */
    for (char *line = n > 0 ? strtok(log, "\n") : NULL; line != NULL; line = strtok(NULL, "\n"))
        if (strncmp(line, "FAIL", 4) == 0)
            fprintf(stderr, "%s\n", line);
    test_tmp_remove();
    return test_done("tencent");
}
