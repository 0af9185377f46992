/*
 * The gateway's hold notices (server/core/gateway.h): what one process NOTIFYs the others when
 * Tencent holds an admin account after a 70050. A notice made with one keyring's root parses
 * back to its parts; a change to any part (app, end, identifier, MAC), another root, a cut or
 * malformed notice, the other case of the MAC's hex digits, and the old unsigned form are
 * refused. Then what a process does with the holds told: one account's notices merged (the
 * later end kept), more accounts than there is room for dropped, and how long each is held
 * (none once over, at most a minute when the sender's clock is ahead).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway.h"
#include "keyring.h"
#include "testlib.h"

static struct keyring *keyring_with_root(const char *name)
{
    const char *path = test_tmp_path(name);
    struct keyring *kr = NULL;
    uint8_t *root = NULL;
    size_t n = 0;
    char err[256];
    if (keyring_master_create(path, err, sizeof err) != KEYRING_OK ||
        keyring_master_load(path, &kr, err, sizeof err) != KEYRING_OK ||
        keyring_root_create(kr, &root, &n) != KEYRING_OK ||
        keyring_root_open(kr, root, n) != KEYRING_OK) {
        fprintf(stderr, "keyring: %s\n", err);
        abort();
    }
    free(root);
    return kr;
}

static bool parses(const struct keyring *kr, const char *notice)
{
    uint32_t app = 0;
    int64_t until = 0;
    char id[TIM_MAX_IDENTIFIER + 1];
    return gateway_notice_parse(kr, notice, &app, &until, id);
}

int main(void)
{
    struct keyring *kr = keyring_with_root("a.key"), *other = keyring_with_root("b.key");
    char n[GATEWAY_NOTICE_MAX], m[GATEWAY_NOTICE_MAX + 64], id[TIM_MAX_IDENTIFIER + 1];
    uint32_t app = 0;
    int64_t until = 0;

    CHECK(gateway_notice_make(kr, 1400000001, 1800000000123, "admin:a b", n, sizeof n) == 0,
          "made");
    CHECK(strncmp(n, "v1:1400000001:1800000000123:", 28) == 0 && strlen(n) == 28 + 64 + 1 + 9 &&
              strcmp(n + 28 + 64, ":admin:a b") == 0,
          "its form: %s", n);
    CHECK(gateway_notice_parse(kr, n, &app, &until, id) && app == 1400000001 &&
              until == 1800000000123 && strcmp(id, "admin:a b") == 0,
          "parsed back: %u %" PRId64 " %s", app, until, id);
    CHECK(!parses(other, n), "another root's key refuses it");

    /* Each part changed, the MAC kept. */
    snprintf(m, sizeof m, "v1:1400000002:%s", n + 14);
    CHECK(!parses(kr, m), "another app");
    snprintf(m, sizeof m, "v1:1400000001:1800000000124:%s", n + 28);
    CHECK(!parses(kr, m), "a later end");
    snprintf(m, sizeof m, "%.*s:admin:a c", 28 + 64, n);
    CHECK(!parses(kr, m), "another identifier");
    snprintf(m, sizeof m, "%s", n);
    m[28] = m[28] == '0' ? '1' : '0';
    CHECK(!parses(kr, m), "another MAC");
    snprintf(m, sizeof m, "%s", n);
    for (char *c = m + 28; c < m + 28 + 64; c++)
        if (*c >= 'a' && *c <= 'f')
            *c = (char)(*c - 'a' + 'A');
    CHECK(strcmp(m, n) == 0 || !parses(kr, m), "the MAC in upper case");

    /* Cut anywhere: refused. */
    size_t len = strlen(n);
    int cut_ok = 0;
    for (size_t k = 0; k < len; k++) {
        snprintf(m, sizeof m, "%.*s", (int)k, n);
        cut_ok += parses(kr, m);
    }
    CHECK(cut_ok == 0, "every cut refused (%d parsed)", cut_ok);

    static const char *const bad[] = {
        "",
        "v1:",
        "1400000001:60000:administrator", /* the unsigned form */
        "v2:1:2:" /* another version */,
        "v1:01:2:",
        "v1:1:02:",
        "v1:-1:2:",
        "v1:4294967296:2:",
        "v1:1:9223372036854775808:",
        "v1::2:",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(!parses(kr, bad[i]), "refused: \"%s\"", bad[i]);

    /* What tim would not send is not made, nor parsed. */
    CHECK(gateway_notice_make(kr, 1, 1, "", n, sizeof n) == -1, "an empty identifier");
    CHECK(gateway_notice_make(kr, 1, 1, "0123456789abcdef0123456789abcdefX", n, sizeof n) == -1,
          "an identifier of 33 bytes");
    CHECK(gateway_notice_make(kr, 1, 1, "a\tb", n, sizeof n) == -1, "a control byte");
    CHECK(gateway_notice_make(kr, 1, -1, "a", n, sizeof n) == -1, "a negative end");
    CHECK(gateway_notice_make(kr, 1, 1, "a", n, 40) == -1, "too small a buffer");
    CHECK(gateway_notice_make(kr, 4294967295u, INT64_MAX, "0123456789abcdef0123456789abcdef", n,
                              sizeof n) == 0 &&
              gateway_notice_parse(kr, n, &app, &until, id) && app == 4294967295u &&
              until == INT64_MAX && strlen(id) == 32,
          "the largest parts fit and parse: %s", n);
    snprintf(m, sizeof m, "%sX", n);
    CHECK(!parses(kr, m), "an identifier of 33 bytes, MAC or not");

    /* Merging the holds told between two turns of the loop. */
    struct gateway_told list[3], h = {.until_ms = 100, .sdkappid = 1, .identifier = "a"};
    int count = 0;
    CHECK(gateway_told_add(list, &count, 3, &h) && count == 1, "one");
    h.until_ms = 300;
    CHECK(gateway_told_add(list, &count, 3, &h) && count == 1 && list[0].until_ms == 300,
          "the same account again: merged, the later end kept");
    h.until_ms = 200;
    CHECK(gateway_told_add(list, &count, 3, &h) && count == 1 && list[0].until_ms == 300,
          "an earlier end changes nothing");
    h.sdkappid = 2;
    CHECK(gateway_told_add(list, &count, 3, &h) && count == 2,
          "another app's account of that name");
    snprintf(h.identifier, sizeof h.identifier, "b");
    CHECK(gateway_told_add(list, &count, 3, &h) && count == 3, "another account");
    snprintf(h.identifier, sizeof h.identifier, "c");
    CHECK(!gateway_told_add(list, &count, 3, &h) && count == 3, "a fourth account: dropped");
    snprintf(h.identifier, sizeof h.identifier, "b");
    h.until_ms = 900;
    CHECK(gateway_told_add(list, &count, 3, &h) && count == 3 && list[2].until_ms == 900,
          "a told account still merges when the list is full");

    /* How long each is held. */
    bool ahead = true;
    CHECK(gateway_told_left(1000, 2000, &ahead) == 0 && !ahead, "over: none");
    CHECK(gateway_told_left(2000, 2000, &ahead) == 0 && !ahead, "ending now: none");
    CHECK(gateway_told_left(2000 + GATEWAY_HOLD_MS, 2000, &ahead) == GATEWAY_HOLD_MS && !ahead,
          "a hold from now: all of it");
    CHECK(gateway_told_left(2000 + GATEWAY_HOLD_MS + GATEWAY_HOLD_SLACK_MS, 2000, &ahead) ==
                  GATEWAY_HOLD_MS + GATEWAY_HOLD_SLACK_MS &&
              !ahead,
          "within the slack: to its end");
    CHECK(gateway_told_left(2001 + GATEWAY_HOLD_MS + GATEWAY_HOLD_SLACK_MS, 2000, &ahead) ==
                  GATEWAY_HOLD_MS &&
              ahead,
          "past the slack: the sender's clock is ahead, a minute");
    CHECK(gateway_told_left(INT64_MAX, 0, &ahead) == GATEWAY_HOLD_MS && ahead, "the far future");

    keyring_free(kr);
    keyring_free(other);
    return test_done("gateway_notice");
}
