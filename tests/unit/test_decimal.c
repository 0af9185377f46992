/*
 * The shared decimal parser (server/base/decimal.c): fixed cases at the edges (empty, signs,
 * spaces, leading zeros, the largest values, one past them), then random strings against
 * libc's strtoull, which this project did not write.
 */
#include "decimal.h"
#include "testlib.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static void check(const char *s, uint64_t max, unsigned flags, int want_rc, uint64_t want)
{
    uint64_t v = 7;
    int rc = decimal_parse(s, strlen(s), max, flags, &v);
    CHECK(rc == want_rc && v == (rc == 0 ? want : 7), "\"%s\" max %llu flags %u: rc %d, %llu", s,
          (unsigned long long)max, flags, rc, (unsigned long long)v);
}

int main(void)
{
    check("0", 0, 0, 0, 0);
    check("0", 0, DECIMAL_CANONICAL, 0, 0);
    check("00", 10, 0, 0, 0);
    check("00", 10, DECIMAL_CANONICAL, -1, 0);
    check("007", 10, 0, 0, 7);
    check("007", 10, DECIMAL_CANONICAL, -1, 0);
    check("10", 10, DECIMAL_CANONICAL, 0, 10);
    check("11", 10, 0, -1, 0);
    check("7", 5, 0, -1, 0); /* a digit over a max below 9 */
    check("5", 5, 0, 0, 5);
    check("", 10, 0, -1, 0);
    check("-1", UINT64_MAX, 0, -1, 0);
    check("+1", UINT64_MAX, 0, -1, 0);
    check(" 1", UINT64_MAX, 0, -1, 0);
    check("1 ", UINT64_MAX, 0, -1, 0);
    check("1a", UINT64_MAX, 0, -1, 0);
    check("0x10", UINT64_MAX, 0, -1, 0);
    check("18446744073709551615", UINT64_MAX, DECIMAL_CANONICAL, 0, UINT64_MAX);
    check("18446744073709551616", UINT64_MAX, 0, -1, 0);
    check("99999999999999999999", UINT64_MAX, 0, -1, 0);
    check("000000000000000000000000000018446744073709551615", UINT64_MAX, 0, 0, UINT64_MAX);
    check("4294967295", UINT32_MAX, 0, 0, UINT32_MAX);
    check("4294967296", UINT32_MAX, 0, -1, 0);
    check("9223372036854775807", INT64_MAX, 0, 0, INT64_MAX);
    check("9223372036854775808", INT64_MAX, 0, -1, 0);

    /* The span stops at the first byte that is no digit, NUL included, and at n. */
    CHECK(decimal_span("123:4", 5) == 3 && decimal_span(":1", 2) == 0 &&
              decimal_span("12\0"
                           "3",
                           4) == 2 &&
              decimal_span("1234", 2) == 2 && decimal_span("", 0) == 0,
          "span");
    /* n bounds the parse: the bytes after it are not read as digits. */
    uint64_t v = 0;
    CHECK(decimal_parse("12345", 2, UINT64_MAX, 0, &v) == 0 && v == 12, "a prefix: %llu",
          (unsigned long long)v);

    /* Random strings of digits (and now and then another byte) against strtoull, for several
     * maxima. */
    static const uint64_t maxima[] = {0, 9, 10, 255, UINT32_MAX, INT64_MAX, UINT64_MAX};
    static const char alphabet[] = "0123456789000000000 +-x";
    int accepted = 0;
    srand(20261208);
    for (int i = 0; i < 200000; i++) {
        char s[32];
        size_t n = (size_t)(rand() % 25);
        bool digits_only = true;
        for (size_t k = 0; k < n; k++) {
            s[k] =
                rand() % 50 ? (char)('0' + rand() % 10) : alphabet[rand() % (sizeof alphabet - 1)];
            digits_only &= s[k] >= '0' && s[k] <= '9';
        }
        s[n] = '\0';
        uint64_t max = maxima[(size_t)rand() % (sizeof maxima / sizeof *maxima)];
        unsigned flags = rand() % 2 ? DECIMAL_CANONICAL : 0;
        char *end;
        errno = 0;
        unsigned long long ref = strtoull(s, &end, 10);
        bool want = n > 0 && digits_only && errno == 0 && *end == '\0' && ref <= max &&
                    !((flags & DECIMAL_CANONICAL) && n > 1 && s[0] == '0');
        v = 0;
        int rc = decimal_parse(s, n, max, flags, &v);
        bool ok = (rc == 0) == want && (rc != 0 || v == ref);
        CHECK(ok, "\"%s\" max %llu flags %u: rc %d", s, (unsigned long long)max, flags, rc);
        if (!ok)
            break; /* one report is enough */
        accepted += rc == 0;
    }
    /* The random strings reach both verdicts often. */
    CHECK(accepted > 20000 && accepted < 180000, "%d of 200000 accepted", accepted);
    return test_done("decimal");
}
