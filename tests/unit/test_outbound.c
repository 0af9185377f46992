/*
 * server/tencent/outbound.c against the Tencent REST stand-in over real HTTPS with a test CA, on
 * a real libevent loop (tencent_fixture.h): replies passed through, http:// and other schemes
 * refused, the loop kept running during a slow call, a slow server as a timeout, a reply over
 * the size bound refused (or read and dropped with discard_response), no connection to an
 * internal address with refuse_internal, the internal-address table, the wrong CA and the system
 * store refused as TLS errors, cancelled calls at free, the URL as logged. tim on top of it is
 * test_tencent.c.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "outbound.h"
#include "tencent_fixture.h"
#include "testlib.h"

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

int main(void)
{
    if (fixture_begin() != 0)
        return 1;
    test_outbound();
    return fixture_end("outbound");
}
