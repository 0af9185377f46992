/*
 * The admin API's request helpers for handlers: the query string (parsed and percent-decoded
 * once per request by the dispatcher, then read by handlers) and the check of a JSON body
 * against the fields a route takes, with its 400 replies. Called by http.c and handlers; calls
 * down only into the replies (http_reply.c).
 */
#include "http.h"
#include "http_int.h"

#include "hex.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Percent-decodes s in place ('+' is a space). Refuses a bad escape and control characters. */
static bool decode_in_place(char *s)
{
    char *w = s;
    for (const char *p = s; *p != '\0'; p++) {
        int c = (unsigned char)*p;
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            int hi = hex_digit_value(p[1]), lo = hi < 0 ? -1 : hex_digit_value(p[2]);
            if (lo < 0)
                return false;
            c = hi * 16 + lo;
            p += 2;
        }
        if (c < 0x20 || c == 0x7f)
            return false;
        *w++ = (char)c;
    }
    *w = '\0';
    return true;
}

size_t api_printable_copy(char *dst, size_t cap, const char *s, size_t n)
{
    size_t k = 0;
    for (; k < n && k < cap - 1; k++)
        dst[k] = s[k] >= 0x20 && s[k] < 0x7f ? s[k] : '?';
    dst[k] = '\0';
    return k;
}

/* A parameter's name as an error message shows it: its first QUERY_NAME_SHOWN bytes,
 * printable (a name may hold any decoded byte but a control character). */
#define QUERY_NAME_SHOWN 64
static const char *name_shown(char out[QUERY_NAME_SHOWN + 1], const char *name)
{
    api_printable_copy(out, QUERY_NAME_SHOWN + 1, name, strlen(name));
    return out;
}

/* See http_int.h. */
int api_query_parse(struct req *f, const char *q, char *why, size_t whylen)
{
    size_t len = q ? strlen(q) : 0;
    char *save = NULL, shown[QUERY_NAME_SHOWN + 1];
    if (len == 0)
        return 0;
    if (len > API_QUERY_MAX) {
        snprintf(why, whylen, "the query string is over %d bytes", API_QUERY_MAX);
        return -1;
    }
    f->query_buf = malloc(len + 1);
    if (f->query_buf == NULL) {
        snprintf(why, whylen, "out of memory");
        return -2;
    }
    memcpy(f->query_buf, q, len + 1);
    for (char *tok = strtok_r(f->query_buf, "&", &save); tok != NULL;
         tok = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(tok, '=');
        char *value = eq ? eq + 1 : tok + strlen(tok);
        if (eq != NULL)
            *eq = '\0';
        if (!decode_in_place(tok) || !decode_in_place(value) || tok[0] == '\0') {
            snprintf(why, whylen,
                     "the query string is malformed (a bad %%-escape, a control "
                     "character or an empty name)");
            return -1;
        }
        if (strlen(value) > API_QUERY_VALUE_MAX) {
            snprintf(why, whylen, "query parameter \"%s\" is over %d bytes", name_shown(shown, tok),
                     API_QUERY_VALUE_MAX);
            return -1;
        }
        if (api_query(&f->pub, tok) != NULL) {
            snprintf(why, whylen, "query parameter \"%s\" is given twice", name_shown(shown, tok));
            return -1;
        }
        if (f->n_query == API_QUERY_MAX_PARAMS) {
            snprintf(why, whylen, "more than %d query parameters", API_QUERY_MAX_PARAMS);
            return -1;
        }
        f->query[f->n_query].name = tok;
        f->query[f->n_query].value = value;
        f->n_query++;
    }
    return 0;
}

const char *api_query(const struct api_request *r, const char *name)
{
    const struct req *f = req_of(r);
    for (size_t i = 0; i < f->n_query; i++)
        if (strcmp(f->query[i].name, name) == 0)
            return f->query[i].value;
    return NULL;
}

enum api_query_rc api_query_int64(const struct api_request *r, const char *name, int64_t min,
                                  int64_t max, int64_t *out)
{
    const char *v = api_query(r, name);
    char *end;
    long long x;
    if (v == NULL)
        return API_QUERY_ABSENT;
    if (v[0] == '\0' || v[0] == '+' || v[0] == ' ')
        return API_QUERY_INVALID;
    errno = 0;
    x = strtoll(v, &end, 10);
    if (errno != 0 || *end != '\0' || x < min || x > max)
        return API_QUERY_INVALID;
    *out = (int64_t)x;
    return API_QUERY_OK;
}

int api_query_limit(struct api_request *r, int64_t max, size_t *limit)
{
    int64_t v;
    switch (api_query_int64(r, "limit", 1, max, &v)) {
    case API_QUERY_OK:
        *limit = (size_t)v;
        return 0;
    case API_QUERY_ABSENT:
        return 0;
    case API_QUERY_INVALID:
        break;
    }
    api_reply_error(r, API_ERR_INVALID_PARAM, "limit: an integer from 1 to %lld", (long long)max);
    return -1;
}

/* See http_int.h. */
int api_query_check_names(const struct req *f, const char *const *allowed, char *why, size_t whylen)
{
    char shown[QUERY_NAME_SHOWN + 1];
    for (size_t i = 0; i < f->n_query; i++) {
        size_t k = 0, used;
        while (allowed != NULL && allowed[k] != NULL && strcmp(allowed[k], f->query[i].name) != 0)
            k++;
        if (allowed != NULL && allowed[k] != NULL)
            continue;
        name_shown(shown, f->query[i].name);
        if (allowed == NULL) {
            snprintf(why, whylen, "query parameter \"%s\": this route takes no query parameters",
                     shown);
            return -1;
        }
        used = (size_t)snprintf(why, whylen,
                                "unknown query parameter \"%s\" (this route takes: ", shown);
        for (k = 0; allowed[k] != NULL && used < whylen; k++)
            used +=
                (size_t)snprintf(why + used, whylen - used, "%s%s", k > 0 ? ", " : "", allowed[k]);
        if (used < whylen)
            snprintf(why + used, whylen - used, ")");
        return -1;
    }
    return 0;
}

static bool field_type_ok(const json_t *v, const struct api_field *f)
{
    size_t i;
    json_t *e;
    if (json_is_null(v))
        return (f->flags & API_FIELD_NULLABLE) != 0;
    switch (f->type) {
    case API_FIELD_STRING:
        return json_is_string(v);
    case API_FIELD_INTEGER:
        return json_is_integer(v);
    case API_FIELD_BOOLEAN:
        return json_is_boolean(v);
    case API_FIELD_OBJECT:
        return json_is_object(v);
    case API_FIELD_INT_ARRAY:
    case API_FIELD_STRING_ARRAY:
        if (!json_is_array(v))
            return false;
        json_array_foreach(v, i, e)
        {
            if (f->type == API_FIELD_INT_ARRAY ? !json_is_integer(e) : !json_is_string(e))
                return false;
        }
        return true;
    }
    return false;
}

enum api_fields_rc api_fields_check(const json_t *body, const struct api_field *fields,
                                    const char **which)
{
    const char *key;
    json_t *v;
    *which = NULL;
    if (body != NULL) {
        json_object_foreach((json_t *)body, key, v)
        {
            const struct api_field *f = fields;
            while (f->name != NULL && strcmp(f->name, key) != 0)
                f++;
            *which = key;
            if (f->name == NULL)
                return API_FIELDS_UNKNOWN;
            if (!field_type_ok(v, f))
                return API_FIELDS_INVALID;
        }
    }
    for (const struct api_field *f = fields; f->name != NULL; f++) {
        if ((f->flags & API_FIELD_REQUIRED) && (body == NULL || !json_object_get(body, f->name))) {
            *which = f->name;
            return API_FIELDS_MISSING;
        }
    }
    *which = NULL;
    return API_FIELDS_OK;
}

int api_require_fields(struct api_request *r, const struct api_field *fields)
{
    static const char *const type_names[] = {
        "a string",  "an integer",           "a boolean",
        "an object", "an array of integers", "an array of strings",
    };
    const char *which;
    char names[256];
    size_t used = 0;

    switch (api_fields_check(r->body, fields, &which)) {
    case API_FIELDS_OK:
        return 0;
    case API_FIELDS_UNKNOWN:
        names[0] = '\0';
        for (const struct api_field *f = fields; f->name != NULL && used < sizeof names; f++) {
            int m = snprintf(names + used, sizeof names - used, "%s%s", used ? ", " : "", f->name);
            if (m > 0)
                used += (size_t)m;
        }
        api_reply_error(r, API_ERR_UNKNOWN_FIELD, "unknown field \"%.64s\" (this route takes: %s)",
                        which, names);
        return -1;
    case API_FIELDS_INVALID:
        for (const struct api_field *f = fields; f->name != NULL; f++)
            if (strcmp(f->name, which) == 0 && (unsigned)f->type <= API_FIELD_STRING_ARRAY) {
                api_reply_error(r, API_ERR_INVALID_FIELD, "field \"%s\" must be %s%s", f->name,
                                type_names[f->type],
                                (f->flags & API_FIELD_NULLABLE) ? " or null" : "");
                return -1;
            }
        break;
    case API_FIELDS_MISSING:
        api_reply_error(r, API_ERR_MISSING_FIELD, "field \"%s\" is required", which);
        return -1;
    }
    api_reply_error(r, API_ERR_INTERNAL, NULL);
    return -1;
}
