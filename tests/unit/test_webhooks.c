/*
 * The pure parts of webhooks (server/core/webhooks.c): the URL rule (https, no user info or
 * fragment, no loopback, private or link-local host unless allowed), the signature against
 * OpenSSL's HMAC computed here from the same bytes, the backoff, the event types.
 */
#include "testlib.h"
#include "webhooks.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

int main(void)
{
    static const struct {
        const char *url;
        bool ok, ok_insecure;
    } urls[] = {
        {"https://hooks.example.com/usersigd", true, true},
        {"https://hooks.example.com:8443/a/b?token=x", true, true},
        {"https://203.0.113.7/hook", true, true},
        {"https://[2001:db8::1]:443/hook", true, true},
        {"http://hooks.example.com/x", false, true},
        {"http://127.0.0.1:8080/x", false, true},
        {"https://127.0.0.1/x", false, true},
        {"https://localhost/x", false, true},
        {"https://a.localhost/x", false, true},
        {"https://10.1.2.3/x", false, true},
        {"https://172.16.0.1/x", false, true},
        {"https://172.32.0.1/x", true, true},
        {"https://192.168.1.1/x", false, true},
        {"https://169.254.169.254/latest/meta-data", false, true},
        {"https://100.64.0.1/x", false, true},
        {"https://0.0.0.0/x", false, true},
        {"https://[::1]/x", false, true},
        {"https://[fd00::1]/x", false, true},
        {"https://[fe80::1]/x", false, true},
        {"https://[::ffff:127.0.0.1]/x", false, true},
        /* other spellings of internal addresses, as libcurl reads them */
        {"https://2130706433/x", false, true},
        {"https://127.1/x", false, true},
        {"https://0x7f.0.0.1/x", false, true},
        {"https://0177.0.0.1/x", false, true},
        {"https://0x7f000001/x", false, true},
        {"https://0/x", false, true},
        {"https://10.1/x", false, true},
        {"https://169.254.43518/latest/meta-data", false, true},
        {"https://%31%32%37.0.0.1/x", false, true},
        {"https://[0:0:0:0:0:0:0:1]/x", false, true},
        {"https://[::ffff:7f00:1]/x", false, true},
        {"https://LOCALHOST/x", false, true},
        {"https://localhost./x", false, true},
        {"https://a.localhost./x", false, true},
        {"https://3405803786/x", true, true}, /* 203.0.113.10 */
        /* IPv6 forms that carry an internal IPv4 address, multicast, reserved */
        {"https://[64:ff9b::a00:1]/x", false, true},
        {"https://[2002:7f00:1::1]/x", false, true},
        {"https://[::127.0.0.1]/x", false, true},
        {"https://[2001::1]/x", false, true},
        {"https://[ff02::1]/x", false, true},
        {"https://224.0.0.1/x", false, true},
        {"https://255.255.255.255/x", false, true},
        {"https://[64:ff9b::808:808]/x", true, true},
        /* zone IDs, and IP addresses with a trailing dot: refused */
        {"https://[::1%25lo]/x", false, false},
        {"https://[fe80::1%25eth0]/x", false, false},
        {"https://127.0.0.1./x", false, false},
        {"https://127.1./x", false, false},
        {"https://203.0.113.7./x", false, false},
        {"https://hooks.example.com./x", true, true},
        {"https://hooks.example.com:99999/x", false, false},
        {"https://user:pw@hooks.example.com/x", false, false},
        {"https://hooks.example.com/x#frag", false, false},
        {"https://hooks.example.com/a b", false, false},
        {"ftp://hooks.example.com/x", false, false},
        {"https://", false, false},
        {"https:///x", false, false},
        {"https://[::1/x", false, false},
        {"", false, false},
    };
    char why[256];
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        why[0] = '\0';
        bool got = webhooks_url_ok(urls[i].url, false, why, sizeof why);
        CHECK(got == urls[i].ok, "%s: %d (%s)", urls[i].url, got, why);
        CHECK(got || strncmp(why, "url: ", 5) == 0, "%s: the reason names the field: %s",
              urls[i].url, why);
        got = webhooks_url_ok(urls[i].url, true, why, sizeof why);
        CHECK(got == urls[i].ok_insecure, "%s, insecure allowed: %d (%s)", urls[i].url, got, why);
    }
    char long_url[2100];
    memset(long_url, 'a', sizeof long_url - 1);
    long_url[sizeof long_url - 1] = '\0';
    memcpy(long_url, "https://x.example/", 18);
    CHECK(!webhooks_url_ok(long_url, true, why, sizeof why), "over 2048 bytes");

    /* The signature: HMAC-SHA256(secret, "ts.body"), as a receiver computes it. */
    uint8_t secret[KEYRING_WEBHOOK_SECRET_BYTES];
    for (size_t i = 0; i < sizeof secret; i++)
        secret[i] = (uint8_t)(i * 7 + 1);
    const char *body = "{\"type\":\"key.rotated\",\"details\":{\"from\":1,\"to\":2}}";
    char hex[WEBHOOKS_SIG_HEX + 1], want[WEBHOOKS_SIG_HEX + 1];
    CHECK(webhooks_sign(secret, 1796000000, body, strlen(body), hex) == 0, "sign");
    char msg[128];
    int n = snprintf(msg, sizeof msg, "1796000000.%s", body);
    uint8_t mac[32];
    unsigned len = 0;
    HMAC(EVP_sha256(), secret, sizeof secret, (const uint8_t *)msg, (size_t)n, mac, &len);
    for (unsigned i = 0; i < len; i++)
        snprintf(want + 2 * i, 3, "%02x", mac[i]);
    CHECK(len == 32 && strcmp(hex, want) == 0, "the signature is HMAC-SHA256 of ts.body: %s vs %s",
          hex, want);
    CHECK(webhooks_sign(secret, 1796000001, body, strlen(body), hex) == 0 && strcmp(hex, want) != 0,
          "another timestamp, another signature");

    /* Backoff: doubling from min, capped, -1 at max_attempts. */
    CHECK(webhooks_retry_ms(1, 5, 1000, 60000) == 1000, "first retry after min");
    CHECK(webhooks_retry_ms(2, 5, 1000, 60000) == 2000, "then doubled");
    CHECK(webhooks_retry_ms(4, 5, 1000, 60000) == 8000, "2^3 min");
    CHECK(webhooks_retry_ms(5, 5, 1000, 60000) == -1, "max attempts reached: failed");
    CHECK(webhooks_retry_ms(30, 100, 1000, 60000) == 60000, "capped at max");

    CHECK(webhooks_type_valid("key.rotated") && webhooks_type_valid("audit.checkpoint") &&
              webhooks_type_valid("key.rotation_due") && !webhooks_type_valid("key.rotate") &&
              !webhooks_type_valid("") && !webhooks_type_valid(NULL),
          "event types");
    return test_done("webhooks");
}
