/*
 * Settings: the value notations (sizes with k/M/G, durations with ms/s/m/h/d, booleans,
 * integers, host:port), parsed and formatted for config.c and the callers of config.h.
 */
#include "config.h"
#include "config_int.h"
#include "decimal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The decimal digits *s starts with (no sign, no space), into *out, *s past them; -1 when there
 * are none or on overflow. */
static int parse_digits(const char **s, uint64_t *out)
{
    size_t n = decimal_span(*s, strlen(*s));
    if (decimal_parse(*s, n, UINT64_MAX, 0, out) != 0)
        return -1;
    *s += n;
    return 0;
}

int config_parse_size(const char *s, uint64_t *out)
{
    uint64_t v, mult = 1;
    if (s == NULL || parse_digits(&s, &v) != 0)
        return -1;
    if (*s == 'k' || *s == 'K')
        mult = KB;
    else if (*s == 'm' || *s == 'M')
        mult = MB;
    else if (*s == 'g' || *s == 'G')
        mult = GB;
    if (mult != 1)
        s++;
    if (*s != '\0' || v > UINT64_MAX / mult)
        return -1;
    *out = v * mult;
    return 0;
}

int config_parse_duration(const char *s, int64_t *out_ms)
{
    static const struct {
        const char *unit;
        int64_t ms;
    } units[] = {{"ms", 1}, {"s", SEC}, {"m", MIN}, {"h", HOUR}, {"d", DAY}, {"", SEC}};
    uint64_t v;
    if (s == NULL || parse_digits(&s, &v) != 0)
        return -1;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(s, units[i].unit) == 0) {
            if (v > (uint64_t)(INT64_MAX / units[i].ms))
                return -1;
            *out_ms = (int64_t)v * units[i].ms;
            return 0;
        }
    }
    return -1;
}

int config_parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"true", "on", "yes", "1"}, *const no[] = {"false", "off",
                                                                                "no", "0"};
    if (s == NULL)
        return -1;
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = 1;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = 0;
            return 0;
        }
    }
    return -1;
}

int config_parse_int(const char *s, int64_t *out)
{
    uint64_t v;
    int neg = *s == '-';
    if (neg)
        s++;
    if (parse_digits(&s, &v) != 0 || *s != '\0' || v > (uint64_t)INT64_MAX)
        return -1;
    *out = neg ? -(int64_t)v : (int64_t)v;
    return 0;
}

/* host:port, or [v6]:port. On success copies the host (no brackets) and sets *port. */
int config_parse_address(const char *s, char *host, size_t host_cap, uint16_t *port)
{
    const char *colon, *h = s;
    size_t hlen;
    int64_t p;

    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':')
            return -1;
        h = s + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL)
            return -1; /* no port, or an IPv6 address without brackets */
        hlen = (size_t)(colon - s);
    }
    if (hlen == 0 || hlen >= host_cap || config_parse_int(colon + 1, &p) != 0 || colon[1] == '-' ||
        p < 0 || p > 65535)
        return -1;
    for (size_t i = 0; i < hlen; i++)
        if (isspace((unsigned char)h[i]) || h[i] == '/' || h[i] == '[' || h[i] == ']')
            return -1;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (uint16_t)p;
    return 0;
}

void config_format_size(int64_t v, char *out, size_t cap)
{
    if (v != 0 && v % GB == 0)
        snprintf(out, cap, "%" PRId64 "G", v / GB);
    else if (v != 0 && v % MB == 0)
        snprintf(out, cap, "%" PRId64 "M", v / MB);
    else if (v != 0 && v % KB == 0)
        snprintf(out, cap, "%" PRId64 "k", v / KB);
    else
        snprintf(out, cap, "%" PRId64, v);
}

void config_format_duration(int64_t ms, char *out, size_t cap)
{
    if (ms != 0 && ms % DAY == 0)
        snprintf(out, cap, "%" PRId64 "d", ms / DAY);
    else if (ms != 0 && ms % HOUR == 0)
        snprintf(out, cap, "%" PRId64 "h", ms / HOUR);
    else if (ms != 0 && ms % MIN == 0)
        snprintf(out, cap, "%" PRId64 "m", ms / MIN);
    else if (ms % SEC == 0)
        snprintf(out, cap, "%" PRId64 "s", ms / SEC);
    else
        snprintf(out, cap, "%" PRId64 "ms", ms);
}
