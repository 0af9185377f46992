/*
 * UTF-8 cleaning of client text echoed in JSON, and the error body that depends on it: a
 * message quoting invalid bytes still makes a JSON error body (a 400 stays a 400).
 */
#include "errors.h"
#include "testlib.h"
#include "utf8.h"

#include <string.h>

int main(void)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"plain", "plain"},
        {"caf\xc3\xa9", "caf\xc3\xa9"},
        {"\xff", "\xef\xbf\xbd"},
        {"a\xc3", "a\xef\xbf\xbd"},                               /* truncated sequence */
        {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},                 /* overlong '/' */
        {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* surrogate */
        {"\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* > 10FFFF */
        {"\xf0\x9f\x98\x80!", "\xf0\x9f\x98\x80!"},
    };
    char out[64];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = utf8_clean(cases[i].in, out, sizeof out);
        CHECK(n == strlen(cases[i].out) && strcmp(out, cases[i].out) == 0, "case %zu", i);
    }
    /* Truncation keeps whole characters. */
    CHECK(utf8_clean("\xc3\xa9\xc3\xa9", out, 4) == 2 && strcmp(out, "\xc3\xa9") == 0,
          "truncated on a boundary");

    json_t *body = api_error_body(API_ERR_INVALID_PARAM, "unknown query parameter \"\xff\"");
    CHECK(body != NULL, "error body with invalid UTF-8 in the message");
    const char *msg = json_string_value(json_object_get(json_object_get(body, "error"), "message"));
    CHECK(msg != NULL && strcmp(msg, "unknown query parameter \"\xef\xbf\xbd\"") == 0,
          "message cleaned: %s", msg ? msg : "(null)");
    json_decref(body);
    return test_done("utf8");
}
