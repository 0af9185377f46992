/*
 * A webhook endpoint's URL rule (webhooks_url_ok) and the URL as it is logged
 * (outbound_url_redacted) on any bytes, against libcurl's own reading of the URL: a URL the rule
 * takes without webhook_allow_insecure_url is https, parses in libcurl, and its host, read by
 * libcurl, is no address outbound_addr_internal names in any spelling inet_aton or inet_pton
 * take; with the setting the rule takes at least as much. The logged text holds no query,
 * fragment or user info, and without the path ends in "/" or "/..." (unless cut at its bound).
 */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "outbound.h"
#include "webhooks.h"

#define URL_INPUT_MAX 4096

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        abort();
    return 0;
}

/* The host libcurl reads from url, brackets and a trailing dot off, judged as an address. */
static void check_host(const char *url)
{
    CURLU *u = curl_url();
    char *host = NULL;
    if (u == NULL)
        abort();
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
        abort(); /* the rule took a URL libcurl does not */
    char h[512];
    size_t n = strlen(host);
    if (n >= sizeof h)
        abort();
    memcpy(h, host, n + 1);
    if (h[0] == '[' && n >= 2 && h[n - 1] == ']') {
        memmove(h, h + 1, n - 2);
        h[n -= 2] = '\0';
    }
    if (n > 0 && h[n - 1] == '.')
        h[--n] = '\0';
    struct sockaddr_in a4 = {.sin_family = AF_INET};
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6};
    if (inet_aton(h, &a4.sin_addr) != 0 && outbound_addr_internal((struct sockaddr *)&a4))
        abort();
    if (inet_pton(AF_INET6, h, &a6.sin6_addr) == 1 &&
        outbound_addr_internal((struct sockaddr *)&a6))
        abort();
    if (strcasecmp(h, "localhost") == 0 || (n > 10 && strcasecmp(h + n - 10, ".localhost") == 0))
        abort();
    curl_free(host);
    curl_url_cleanup(u);
}

static void check_redacted(const char *url, bool with_path)
{
    char out[300];
    outbound_url_redacted(url, with_path, out, sizeof out);
    if (strlen(out) >= sizeof out)
        abort();
    if (strcmp(out, "(invalid URL)") == 0)
        return;
    if (strpbrk(out, "?#") != NULL)
        abort(); /* no query, no fragment */
    if (!with_path) {
        size_t n = strlen(out);
        if (strchr(out, '@') != NULL)
            abort(); /* no user info (an '@' could only be a path's) */
        if (n < sizeof out - 1 && !(n >= 1 && out[n - 1] == '/') &&
            !(n >= 4 && strcmp(out + n - 4, "/...") == 0))
            abort(); /* (a text that fills out was cut: its end is the host's) */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char url[URL_INPUT_MAX + 1];
    char why[256];
    if (size > URL_INPUT_MAX)
        return 0;
    memcpy(url, data, size);
    url[size] = '\0';
    if (strlen(url) != size)
        return 0; /* a NUL inside: the API takes C strings */
    bool strict = webhooks_url_ok(url, false, why, sizeof why);
    bool loose = webhooks_url_ok(url, true, why, sizeof why);
    if (strict && !loose)
        abort();
    if (strict) {
        if (strncmp(url, "https://", 8) != 0)
            abort();
        check_host(url);
    }
    check_redacted(url, true);
    check_redacted(url, false);
    return 0;
}
