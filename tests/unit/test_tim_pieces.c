/*
 * server/tencent/ without a server: the outbound settings from the config, base URLs and the
 * built request URL (bad bases refused), and the other pure pieces of tim.h (test_tencent.c
 * runs the calls against the Tencent REST stand-in).
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "outbound.h"
#include "testlib.h"
#include "tim.h"

static void test_pieces(void)
{
    struct config cfg;
    char err[CONFIG_ERR_BUF];
    struct outbound_options oo;
    setenv("USERSIGD_TENCENT_TIMEOUT", "3s", 1);
    setenv("USERSIGD_TENCENT_CA_FILE", "/etc/ca.pem", 1);
    CHECK(config_load(NULL, &cfg, err, sizeof err) == CONFIG_OK, "config: %s", err);
    unsetenv("USERSIGD_TENCENT_TIMEOUT");
    unsetenv("USERSIGD_TENCENT_CA_FILE");
    outbound_options_from_config(&cfg, &oo);
    CHECK(oo.connect_timeout_ms == 5000 && oo.timeout_ms == 3000 && oo.allow_insecure == 0 &&
              oo.ca_file != NULL && strcmp(oo.ca_file, "/etc/ca.pem") == 0 &&
              oo.max_transfers == 0 && oo.proxy == NULL,
          "options from the config: %lld %lld", (long long)oo.connect_timeout_ms,
          (long long)oo.timeout_ms);
    CHECK(config_load(NULL, &cfg, err, sizeof err) == CONFIG_OK, "config: %s", err);
    outbound_options_from_config(&cfg, &oo);
    CHECK(oo.ca_file == NULL && oo.timeout_ms == 10000, "defaults: the system store, 10 s");

    CHECK(tim_name_valid("im_open_login_svc") && tim_name_valid("a0_"), "names");
    CHECK(!tim_name_valid("") && !tim_name_valid("Account") && !tim_name_valid("a/b") &&
              !tim_name_valid("a.b") && !tim_name_valid("a b"),
          "bad names");
    char long_name[80];
    memset(long_name, 'a', 65);
    long_name[65] = '\0';
    CHECK(!tim_name_valid(long_name) && (long_name[64] = '\0', tim_name_valid(long_name)),
          "64 bytes at most");

    CHECK(tim_base_url_valid("https://console.tim.qq.com", 0) == 26 &&
              tim_base_url_valid("https://adminapisgp.im.qcloud.com/", 0) == 33 &&
              tim_base_url_valid("https://[::1]:8443", 0) == 18 &&
              tim_base_url_valid("http://127.0.0.1:8080", 0) == 0 &&
              tim_base_url_valid("http://127.0.0.1:8080", 1) == 21,
          "base URLs");
    CHECK(tim_identifier_valid("administrator") && tim_identifier_valid("a b") &&
              !tim_identifier_valid("") && !tim_identifier_valid("caf\xc3\xa9") &&
              !tim_identifier_valid("123456789012345678901234567890123"),
          "identifiers");
    char url[TIM_MAX_URL];
    CHECK(tim_build_url("https://console.tim.qq.com", 0, "im_open_login_svc", "account_check",
                        1400000001u, "a b&c", "eJw*ab-c_", 4294967295u, url, sizeof url) == 0,
          "url built");
    CHECK(strcmp(url, "https://console.tim.qq.com/v4/im_open_login_svc/account_check?sdkappid="
                      "1400000001&identifier=a%20b%26c&usersig=eJw%2Aab-c_&random=4294967295&"
                      "contenttype=json") == 0,
          "url: %s", url);
    CHECK(tim_build_url("https://127.0.0.1:8443/", 0, "s", "c", 1, "admin", "x", 0, url,
                        sizeof url) == 0 &&
              strncmp(url, "https://127.0.0.1:8443/v4/s/c?", 30) == 0,
          "a port and a trailing slash: %s", url);
    const char *bad_bases[] = {"http://console.tim.qq.com",
                               "https://",
                               "https://h/p",
                               "https://h?x=1",
                               "https://u@h",
                               "https://h:0",
                               "https://h:70000",
                               "https://h#f",
                               "console.tim.qq.com",
                               "https://h:"};
    for (size_t i = 0; i < sizeof bad_bases / sizeof bad_bases[0]; i++)
        CHECK(tim_build_url(bad_bases[i], 0, "s", "c", 1, "admin", "x", 0, url, sizeof url) != 0,
              "base %s refused", bad_bases[i]);
    CHECK(tim_build_url("http://127.0.0.1:1", 1, "s", "c", 1, "admin", "x", 0, url, sizeof url) ==
              0,
          "http allowed when asked");
    CHECK(tim_build_url(NULL, 0, "s", "c", 1, "", "x", 0, url, sizeof url) != 0 &&
              tim_build_url(NULL, 0, "s", "c", 1, "a\nb", "x", 0, url, sizeof url) != 0 &&
              tim_build_url(NULL, 0, "s", "c", 1, "123456789012345678901234567890123", "x", 0, url,
                            sizeof url) != 0,
          "bad identifiers refused");
    CHECK(tim_build_url(NULL, 0, "s", "c", 1, "admin", "x", 0, url, 40) != 0 && url[0] == '\0',
          "too long for the buffer: refused, nothing left");

    json_t *j;
    int ok;
    long long code;
    const char *info;
    const char *good = "{\"ActionStatus\":\"FAIL\",\"ErrorCode\":70402,\"ErrorInfo\":\"bad\"}";
    CHECK(tim_parse_reply(good, strlen(good), &j, &ok, &code, &info) == 0 && !ok && code == 70402 &&
              strcmp(info, "bad") == 0,
          "FAIL parsed");
    json_decref(j);
    const char *bad[] = {"",
                         "[]",
                         "{\"ActionStatus\":\"OK\"}",
                         "{\"ErrorCode\":0}",
                         "{\"ActionStatus\":\"MAYBE\",\"ErrorCode\":0}",
                         "{\"ActionStatus\":\"OK\",\"ErrorCode\":\"0\"}",
                         "{\"ActionStatus\":\"OK\",\"ErrorCode\":0,\"ErrorInfo\":1}",
                         "{\"ActionStatus\":\"OK\",\"ActionStatus\":\"OK\",\"ErrorCode\":0}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(tim_parse_reply(bad[i], strlen(bad[i]), &j, &ok, &code, &info) != 0 && j == NULL,
              "bad reply %zu refused", i);
    }
    CHECK(tim_code_is_rate_limit(60007) && tim_code_is_rate_limit(60011) &&
              !tim_code_is_rate_limit(60010) && !tim_code_is_rate_limit(70001),
          "rate-limit codes");
}

int main(void)
{
    test_pieces();
    return test_done("tim_pieces");
}
