/*
 * Reading a request for the admin API: the bearer token out of the Authorization header, the
 * request headers and raw body handlers read, and the JSON body (Content-Type, nesting depth,
 * duplicate keys; the raw text wiped once parsed). A handler in capture mode reads no header.
 * Called by the dispatcher (http.c) and by handlers; it calls down only into the replies
 * (http_reply.c) to refuse a body.
 */
#include "http.h"
#include "http_frame.h"
#include "http_int.h"

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "log.h"

const char *api_request_header(const struct api_request *r, const char *name)
{
    if (req_of(r)->cap.on) { /* r->req is the loop thread's (http.h, "Offloaded handlers") */
        log_msg(LOG_WARN, r->request_id,
                "api_request_header(%s) by a handler that runs off the loop thread: none", name);
        return NULL;
    }
    if (r->req == NULL)
        return NULL;
    return evhttp_find_header(evhttp_request_get_input_headers(r->req), name);
}

struct evbuffer *api_request_input(const struct api_request *r)
{
    return r->req && !req_of(r)->cap.on ? evhttp_request_get_input_buffer(r->req) : NULL;
}

struct frame_stream *api_request_stream(struct api_request *r)
{
    struct evhttp_connection *evcon;
    if (r->req == NULL || !req_of(r)->streamed || req_of(r)->cap.on)
        return NULL;
    evcon = evhttp_request_get_connection(r->req);
    return evcon != NULL ? frame_stream_take(evhttp_connection_get_bufferevent(evcon)) : NULL;
}

static bool is_token_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}

/* See http_int.h. Copies the b64token of "Authorization: Bearer <token>" into token; false when
 * absent, given twice or malformed. */
bool api_bearer_token(struct evhttp_request *req, char token[API_TOKEN_MAX + 1])
{
    struct evkeyvalq *h = evhttp_request_get_input_headers(req);
    const char *v = NULL;
    size_t n = 0;
    for (struct evkeyval *kv = h->tqh_first; kv != NULL; kv = kv->next.tqe_next) {
        if (strcasecmp(kv->key, "Authorization") != 0)
            continue;
        if (v != NULL)
            return false;
        v = kv->value;
    }
    if (v == NULL)
        return false;
    while (*v == ' ' || *v == '\t')
        v++;
    if (strncasecmp(v, "Bearer", 6) != 0 || (v[6] != ' ' && v[6] != '\t'))
        return false;
    v += 6;
    while (*v == ' ' || *v == '\t')
        v++;
    while (is_token_char(v[n]) && n < API_TOKEN_MAX)
        n++;
    while (v[n] == '=' && n < API_TOKEN_MAX)
        n++;
    if (n == 0)
        return false;
    memcpy(token, v, n);
    token[n] = '\0';
    for (v += n; *v == ' ' || *v == '\t'; v++)
        ;
    return *v == '\0';
}

static bool json_content_type(const char *ct)
{
    const char *p;
    if (ct == NULL || strncasecmp(ct, "application/json", 16) != 0)
        return false;
    for (p = ct + 16; *p == ' ' || *p == '\t'; p++)
        ;
    if (*p == '\0')
        return true;
    if (*p++ != ';')
        return false;
    while (*p == ' ' || *p == '\t')
        p++;
    return strcasecmp(p, "charset=utf-8") == 0 || strcasecmp(p, "charset=\"utf-8\"") == 0;
}

/* Nesting of [ and { outside strings, before jansson sees the text (it recurses). */
static bool json_depth_ok(const char *p, size_t n, int max)
{
    int depth = 0;
    bool in_string = false, escaped = false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (in_string) {
            if (escaped)
                escaped = false;
            else if (c == '\\')
                escaped = true;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > max)
                return false;
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return true;
}

/* See http_int.h. */
bool api_read_json_body(struct req *f, struct evbuffer *in, size_t len)
{
    struct api_request *r = &f->pub;
    json_error_t jerr;
    const char *data;
    char *near;

    if (len == 0) {
        if (r->route->body == API_BODY_JSON_OPTIONAL)
            return true;
        api_reply_error(r, API_ERR_BAD_JSON, "this route needs a JSON object body");
        return false;
    }
    if (!json_content_type(api_request_header(r, "Content-Type"))) {
        api_reply_error(r, API_ERR_UNSUPPORTED_MEDIA_TYPE,
                        "send the body with Content-Type: application/json");
        return false;
    }
    data = (const char *)evbuffer_pullup(in, -1);
    if (data == NULL) {
        api_reply_error(r, API_ERR_INTERNAL, "out of memory reading the body");
        return false;
    }
    if (!json_depth_ok(data, len, API_JSON_MAX_DEPTH)) {
        api_reply_error(r, API_ERR_BAD_JSON, "the body nests arrays and objects deeper than %d",
                        API_JSON_MAX_DEPTH);
        return false;
    }
    r->body = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
    /* The raw text may hold a key; the parsed object is all a handler reads. */
    OPENSSL_cleanse((void *)data, len);
    if (r->body == NULL) {
        if (json_error_code(&jerr) == json_error_out_of_memory) {
            api_reply_error(r, API_ERR_INTERNAL, "out of memory parsing the body");
            return false;
        }
        /* jansson quotes the text around the error ("near '...'"): it may be a secret, so it
         * goes neither to the log nor back. */
        if ((near = strstr(jerr.text, " near ")) != NULL)
            *near = '\0';
        api_reply_error(r, API_ERR_BAD_JSON, "invalid JSON at line %d, column %d: %s", jerr.line,
                        jerr.column, jerr.text);
        return false;
    }
    if (!json_is_object(r->body)) {
        api_reply_error(r, API_ERR_BAD_JSON, "the body must be a JSON object");
        return false;
    }
    return true;
}
