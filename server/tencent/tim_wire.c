/*
 * Tencent's REST wire format, pure: names and identifiers checked, the request URL built (the
 * identifier and the admin UserSig percent-encoded), a reply's ActionStatus / ErrorCode /
 * ErrorInfo read. No I/O; tim.c sends what this builds.
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

#include "tim.h"

int tim_name_valid(const char *s)
{
    size_t n = 0;
    for (; s[n] != '\0'; n++) {
        char ch = s[n];
        if (n >= TIM_MAX_NAME ||
            !((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_'))
            return 0;
    }
    return n > 0;
}

int tim_identifier_valid(const char *s)
{
    size_t n = strnlen(s, TIM_MAX_IDENTIFIER + 1);
    if (n == 0 || n > TIM_MAX_IDENTIFIER)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return 0;
    return 1;
}

/* Appends s percent-encoded (RFC 3986 unreserved characters kept); -1 when it does not fit. */
static int put_encoded(char *out, size_t cap, size_t *n, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s != '\0'; s++) {
        unsigned char ch = (unsigned char)*s;
        int keep = (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') ||
                   (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_' || ch == '~';
        if (*n + (keep ? 1 : 3) >= cap)
            return -1;
        if (keep) {
            out[(*n)++] = (char)ch;
        } else {
            out[(*n)++] = '%';
            out[(*n)++] = hex[ch >> 4];
            out[(*n)++] = hex[ch & 15];
        }
    }
    out[*n] = '\0';
    return 0;
}

static int put_raw(char *out, size_t cap, size_t *n, const char *s)
{
    size_t l = strlen(s);
    if (*n + l >= cap)
        return -1;
    memcpy(out + *n, s, l + 1);
    *n += l;
    return 0;
}

size_t tim_base_url_valid(const char *base, int allow_http)
{
    size_t skip;
    if (strncmp(base, "https://", 8) == 0)
        skip = 8;
    else if (allow_http && strncmp(base, "http://", 7) == 0)
        skip = 7;
    else
        return 0;
    size_t i = skip, host = 0;
    if (base[i] == '[') {
        for (i++; base[i] != ']'; i++)
            if (!((base[i] >= '0' && base[i] <= '9') || (base[i] >= 'a' && base[i] <= 'f') ||
                  (base[i] >= 'A' && base[i] <= 'F') || base[i] == ':' || base[i] == '.'))
                return 0;
        i++;
        host = 1;
    } else {
        for (; (base[i] >= 'a' && base[i] <= 'z') || (base[i] >= 'A' && base[i] <= 'Z') ||
               (base[i] >= '0' && base[i] <= '9') || base[i] == '-' || base[i] == '.';
             i++)
            host++;
    }
    if (host == 0 || i - skip > 253)
        return 0;
    if (base[i] == ':') {
        size_t d = 0;
        unsigned long port = 0;
        for (i++; base[i] >= '0' && base[i] <= '9' && d < 6; i++, d++)
            port = port * 10 + (unsigned long)(base[i] - '0');
        if (d == 0 || port == 0 || port > 65535)
            return 0;
    }
    size_t keep = i;
    if (base[i] == '/')
        i++;
    return base[i] == '\0' ? keep : 0;
}

int tim_build_url(const char *base_url, int allow_http, const char *service, const char *command,
                  uint32_t sdkappid, const char *identifier, const char *usersig, uint32_t random,
                  char *out, size_t cap)
{
    if (base_url == NULL)
        base_url = TIM_DEFAULT_BASE_URL;
    size_t keep = tim_base_url_valid(base_url, allow_http);
    if (keep == 0 || !tim_name_valid(service) || !tim_name_valid(command) ||
        !tim_identifier_valid(identifier) || usersig == NULL || usersig[0] == '\0' || cap == 0 ||
        keep >= cap)
        return -1;
    size_t n = keep;
    memcpy(out, base_url, keep);
    out[n] = '\0';
    char num[64];
    snprintf(num, sizeof num, "%u", sdkappid);
    char rnd[32];
    snprintf(rnd, sizeof rnd, "%u", random);
    if (put_raw(out, cap, &n, "/v4/") || put_raw(out, cap, &n, service) ||
        put_raw(out, cap, &n, "/") || put_raw(out, cap, &n, command) ||
        put_raw(out, cap, &n, "?sdkappid=") || put_raw(out, cap, &n, num) ||
        put_raw(out, cap, &n, "&identifier=") || put_encoded(out, cap, &n, identifier) ||
        put_raw(out, cap, &n, "&usersig=") || put_encoded(out, cap, &n, usersig) ||
        put_raw(out, cap, &n, "&random=") || put_raw(out, cap, &n, rnd) ||
        put_raw(out, cap, &n, "&contenttype=json")) {
        OPENSSL_cleanse(out, cap);
        out[0] = '\0';
        return -1;
    }
    return 0;
}

int tim_parse_reply(const char *body, size_t len, json_t **reply, int *action_ok, long long *code,
                    const char **info)
{
    *reply = NULL;
    json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    if (j == NULL || !json_is_object(j))
        goto bad;
    json_t *st = json_object_get(j, "ActionStatus");
    json_t *ec = json_object_get(j, "ErrorCode");
    json_t *ei = json_object_get(j, "ErrorInfo");
    if (!json_is_string(st) || !json_is_integer(ec) || (ei != NULL && !json_is_string(ei)))
        goto bad;
    const char *s = json_string_value(st);
    if (strcmp(s, "OK") == 0)
        *action_ok = 1;
    else if (strcmp(s, "FAIL") == 0)
        *action_ok = 0;
    else
        goto bad;
    *code = (long long)json_integer_value(ec);
    *info = ei != NULL ? json_string_value(ei) : "";
    *reply = j;
    return 0;
bad:
    json_decref(j);
    return -1;
}

int tim_code_is_rate_limit(long long code)
{
    return code == 60007 || code == 60011;
}
