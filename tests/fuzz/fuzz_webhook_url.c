/*
 * A webhook endpoint's URL rule (webhooks_url_ok) and the URL as it is logged
 * (outbound_url_redacted) on any bytes, against libcurl's own reading of the URL: a URL the rule
 * takes without webhook_allow_insecure_url is https, parses in libcurl, and its host, read by
 * libcurl, is in no internal range (a list of CIDRs of this file's own, the NAT64 and 6to4
 * forms judged by the IPv4 address they carry) in any spelling inet_aton or inet_pton take; with
 * the setting the rule takes at least as much. The logged text holds no query, fragment or user
 * info, and without the path ends in "/" or "/..." (unless cut at its bound).
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

/* The internal ranges, written here as CIDR text on their own (not through the server's
 * outbound_addr_internal), so that a range the server forgets is a finding. */
static const char *const V4[] = {"0.0.0.0/8",
                                 "10.0.0.0/8",
                                 "100.64.0.0/10",
                                 "127.0.0.0/8",
                                 "169.254.0.0/16",
                                 "172.16.0.0/12",
                                 "192.0.0.0/24",
                                 "192.168.0.0/16",
                                 "198.18.0.0/15",
                                 "224.0.0.0/3",
                                 NULL};
static const char *const V6[] = {
    "::/96",     "::ffff:0:0/96", "::ffff:0:0:0/96", "64:ff9b:1::/48", "2001::/32", "fc00::/7",
    "fe80::/10", "fec0::/10",     "ff00::/8",        "100::/64",       NULL};

struct cidr {
    uint8_t addr[16];
    int bits;
};
static struct cidr v4[16], v6[16];

static int parse_all(const char *const *list, int family, struct cidr *out)
{
    int n = 0;
    for (; list[n] != NULL; n++) {
        char text[64];
        const char *slash = strchr(list[n], '/');
        memcpy(text, list[n], (size_t)(slash - list[n]));
        text[slash - list[n]] = '\0';
        if (inet_pton(family, text, out[n].addr) != 1)
            abort();
        out[n].bits = atoi(slash + 1);
    }
    return n;
}

static int n_v4, n_v6;

static bool in_list(const uint8_t *a, const struct cidr *list, int n)
{
    for (int i = 0; i < n; i++) {
        int full = list[i].bits / 8, rest = list[i].bits % 8;
        if (memcmp(a, list[i].addr, (size_t)full) != 0)
            continue;
        if (rest == 0 || ((a[full] ^ list[i].addr[full]) & (0xff << (8 - rest))) == 0)
            return true;
    }
    return false;
}

static bool v6_internal(const uint8_t *a)
{
    static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b};
    if (memcmp(a, nat64, 12) == 0)
        return in_list(a + 12, v4, n_v4);
    if (a[0] == 0x20 && a[1] == 0x02)
        return in_list(a + 2, v4, n_v4);
    return in_list(a, v6, n_v6);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        abort();
    n_v4 = parse_all(V4, AF_INET, v4);
    n_v6 = parse_all(V6, AF_INET6, v6);
    /* The server's function agrees with this list on a few of each. */
    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
    if (inet_pton(AF_INET6, "64:ff9b::a00:1", &s6.sin6_addr) != 1 ||
        !outbound_addr_internal((struct sockaddr *)&s6) || !v6_internal(s6.sin6_addr.s6_addr))
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
    if (inet_aton(h, &a4.sin_addr) != 0 && in_list((const uint8_t *)&a4.sin_addr, v4, n_v4))
        abort();
    if (inet_pton(AF_INET6, h, &a6.sin6_addr) == 1 && v6_internal(a6.sin6_addr.s6_addr))
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
