/*
 * The items of a pipeline block (pipeline_int.h): the buffer the owner fills through
 * pipeline_items_*, and what a worker makes of each item: its request read from text, an NDJSON
 * object or a JSON array element (checked as the single-sign route checks its body), and its
 * output line, NDJSON or CSV, signed or the error.
 */
#include "pipeline_int.h"
#include "hex.h"
#include "utf8.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the items of a block (the owner's fill callback) -------------------------------------- */

int pipeline_grow(char **buf, size_t *cap, size_t need)
{
    size_t n = *cap ? *cap : 4096;
    while (n < need)
        n *= 2;
    char *b = realloc(*buf, n);
    if (b == NULL)
        return -1;
    *buf = b;
    *cap = n;
    return 0;
}

void pipeline_items_begin(struct pipeline_items *it)
{
    if (it->v == NULL && !it->oom) {
        it->v = malloc(PIPELINE_BLOCK_ITEMS * sizeof *it->v);
        it->oom = it->v == NULL;
    }
    it->open = true;
    it->dropped = 0;
    if (!it->oom && it->n < PIPELINE_BLOCK_ITEMS)
        it->v[it->n] = (struct item){.off = (uint32_t)it->len};
}

int pipeline_items_append(struct pipeline_items *it, const char *data, size_t len)
{
    if (it->oom || !it->open || it->n >= PIPELINE_BLOCK_ITEMS)
        return -1;
    struct item *cur = &it->v[it->n];
    size_t room = PIPELINE_ITEM_MAX - cur->len, take = len < room ? len : room;
    it->dropped += len - take;
    if (take == 0)
        return 0;
    if (it->len + take > it->cap && pipeline_grow(&it->buf, &it->cap, it->len + take) != 0) {
        it->oom = true;
        return -1;
    }
    memcpy(it->buf + it->len, data, take);
    it->len += take;
    cur->len += (uint32_t)take;
    return 0;
}

void pipeline_items_end(struct pipeline_items *it)
{
    if (!it->open)
        return;
    it->open = false;
    if (it->oom || it->n >= PIPELINE_BLOCK_ITEMS) {
        it->oom = true;
        return;
    }
    it->v[it->n].too_long = it->dropped > 0;
    it->n++;
}

int pipeline_items_add(struct pipeline_items *it, const char *data, size_t len)
{
    pipeline_items_begin(it);
    int rc = pipeline_items_append(it, data, len);
    pipeline_items_end(it);
    return rc != 0 || it->oom ? -1 : 0;
}

int pipeline_items_refuse(struct pipeline_items *it, const char *code, const char *msg)
{
    if (it->oom || it->open || it->n == 0)
        return -1;
    size_t lc = strnlen(code, PIPELINE_CODE_MAX), lm = strnlen(msg, PIPELINE_MSG_BUF - 1);
    for (size_t i = 0; i < lc; i++) /* written as it is into JSON and CSV */
        if (!((code[i] >= 'a' && code[i] <= 'z') || (code[i] >= '0' && code[i] <= '9') ||
              code[i] == '_'))
            return -1;
    if (lc == 0)
        return -1;
    size_t need = lc + 1 + lm + 1;
    if (it->len + need > it->cap && pipeline_grow(&it->buf, &it->cap, it->len + need) != 0) {
        it->oom = true;
        return -1;
    }
    struct item *last = &it->v[it->n - 1];
    last->ref_off = (uint32_t)it->len;
    last->ref_len = (uint32_t)need;
    memcpy(it->buf + it->len, code, lc);
    it->buf[it->len + lc] = '\0';
    memcpy(it->buf + it->len + lc + 1, msg, lm);
    it->buf[it->len + need - 1] = '\0';
    it->len += need;
    return 0;
}

bool pipeline_items_full(const struct pipeline_items *it)
{
    return it->n >= PIPELINE_BLOCK_ITEMS || it->len >= PIPELINE_BLOCK_BYTES;
}

size_t pipeline_items_count(const struct pipeline_items *it)
{
    return it->n;
}

/* ---- output text ---------------------------------------------------------------------------- */

static char *put(char *o, const char *s)
{
    size_t n = strlen(s);
    memcpy(o, s, n);
    return o + n;
}

/* s as the inside of a JSON string: '"', '\' and controls escaped, UTF-8 kept, other bytes as
 * U+FFFD. At most 6 bytes out per byte in. */
static char *put_json(char *o, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            *o++ = (char)c;
            i++;
        } else if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
            i++;
        } else if (c < 0x20) {
            o = put(o, c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : "\\u00");
            if (c != '\n' && c != '\r' && c != '\t') {
                char h[3]; /* not straight into o: hex_encode's NUL would pass the 6 bytes */
                hex_encode(&c, 1, h);
                *o++ = h[0];
                *o++ = h[1];
            }
            i++;
        } else {
            size_t l = utf8_seq_len(s + i, n - i);
            if (l == 0) {
                o = put(o, "\xef\xbf\xbd");
                i++;
            } else {
                memcpy(o, s + i, l);
                o += l;
                i += l;
            }
        }
    }
    return o;
}

/* s as a CSV field (RFC 4180): quoted, quotes doubled, when it holds a comma or quote or starts
 * with '#'; a CR or LF (possible from a JSON body's escapes) written as U+FFFD, so that every row
 * is one line (NDJSON keeps them, escaped); other bytes as put_json keeps them. At most 3 bytes
 * out per byte in, + 2. */
static char *put_csv(char *o, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    bool quote = n > 0 && s[0] == '#';
    for (size_t i = 0; i < n && !quote; i++)
        quote = s[i] == ',' || s[i] == '"';
    if (quote)
        *o++ = '"';
    for (size_t i = 0; i < n;) {
        size_t l = utf8_seq_len(s + i, n - i);
        if (l == 0 || s[i] == '\r' || s[i] == '\n') {
            o = put(o, "\xef\xbf\xbd");
            i++;
            continue;
        }
        if (l == 1 && s[i] == '"')
            *o++ = '"';
        memcpy(o, s + i, l);
        o += l;
        i += l;
    }
    if (quote)
        *o++ = '"';
    return o;
}

/* ---- reading an item (worker threads) ------------------------------------------------------- */

struct item_req {
    const char *id; /* to sign, and to repeat in the line ("" when the item has none) */
    size_t id_len;
    uint32_t expire;
    bool own_expire; /* the item gave its expire */
    struct usersig_room room;
};

struct line_error {
    const char *code; /* NULL: no error */
    char msg[PIPELINE_MSG_BUF];
};

static void set_error(struct line_error *e, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_error(struct line_error *e, const char *code, const char *fmt, ...)
{
    va_list ap;
    e->code = code;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
}

static long hex4(const char *s, size_t n)
{
    long v = 0;
    if (n < 4)
        return -1;
    for (int i = 0; i < 4; i++) {
        int h = hex_digit_value(s[i]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

static size_t put_utf8(char *o, unsigned long cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Decodes the JSON string literal at s[0] == '"' into out (cap >= n bytes: decoding never grows
 * it). Returns the length; *ok says the literal was whole and well-formed and only whitespace
 * follows it. A lone surrogate becomes U+FFFD. */
static size_t json_string_decode(const char *s, size_t n, char *out, bool *ok)
{
    size_t i = 1, o = 0;
    *ok = false;
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"')
            break;
        if (c < 0x20)
            return o;
        if (c != '\\') {
            out[o++] = (char)c;
            i++;
            continue;
        }
        if (i + 1 >= n)
            return o;
        char e = s[i + 1];
        const char *simple = strchr("\"\\/bfnrt", e);
        if (e != '\0' && simple != NULL) {
            out[o++] = "\"\\/\b\f\n\r\t"[simple - "\"\\/bfnrt"];
            i += 2;
            continue;
        }
        long cp = e == 'u' ? hex4(s + i + 2, n - i - 2) : -1;
        if (cp < 0)
            return o;
        i += 6;
        if (cp >= 0xd800 && cp <= 0xdbff && i + 1 < n && s[i] == '\\' && s[i + 1] == 'u') {
            long lo = hex4(s + i + 2, n - i - 2);
            if (lo >= 0xdc00 && lo <= 0xdfff) {
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                i += 6;
            }
        }
        if (cp >= 0xd800 && cp <= 0xdfff)
            cp = 0xfffd;
        o += put_utf8(out + o, (unsigned long)cp);
    }
    if (i >= n)
        return o;
    for (i++; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
            return o;
    *ok = true;
    return o;
}

static void identifier_error(const struct pipeline_job_config *cfg, struct line_error *e)
{
    if (cfg->policy == USERSIG_ID_STRICT)
        set_error(e, "bad_identifier",
                  "identifier must be 1 to %d bytes of A-Z a-z 0-9 _ - (app %u's "
                  "identifier_policy is strict)",
                  USERSIG_MAX_IDENTIFIER, cfg->sdkappid);
    else
        set_error(e, "bad_identifier",
                  "identifier must be 1 to %d bytes of printable ASCII, 0x20 to 0x7e (app %u's "
                  "identifier_policy is printable)",
                  USERSIG_MAX_IDENTIFIER, cfg->sdkappid);
}

static const char ITEM_FIELDS[] = "identifier, expire, room_id, room_str, privilege_map";

/* An NDJSON item, checked as the single-sign route checks its body. *hold keeps the parsed
 * object alive while req points into it (caller json_decref()s it). */
static void read_ndjson(const struct pipeline_job_config *cfg, const char *s, size_t n,
                        bool too_long, struct item_req *req, struct line_error *e, json_t **hold)
{
    json_error_t jerr;
    const char *key;
    json_t *v, *o, *room_id, *room_str, *priv, *expire;

    if (too_long) {
        set_error(e, "bad_json", "the line is over %d bytes", PIPELINE_ITEM_MAX);
        return;
    }
    o = *hold = json_loadb(s, n, JSON_REJECT_DUPLICATES, &jerr);
    if (o == NULL || !json_is_object(o)) {
        set_error(e, "bad_json", "the line must be a JSON object {\"identifier\": ...} (%s)",
                  o == NULL ? "it is not valid JSON" : "it is another JSON value");
        return;
    }
    v = json_object_get(o, "identifier");
    if (json_is_string(v)) {
        req->id = json_string_value(v);
        req->id_len = json_string_length(v);
    }
    json_object_foreach(o, key, v)
    {
        bool str = strcmp(key, "identifier") == 0 || strcmp(key, "room_str") == 0;
        bool num = strcmp(key, "expire") == 0 || strcmp(key, "room_id") == 0 ||
                   strcmp(key, "privilege_map") == 0;
        if (!str && !num) {
            set_error(e, "unknown_field", "unknown field \"%.64s\" (an item takes: %s)", key,
                      ITEM_FIELDS);
            return;
        }
        if (str ? !json_is_string(v) : !json_is_integer(v)) {
            set_error(e, "invalid_field", "field \"%s\" must be %s", key,
                      str ? "a string" : "an integer");
            return;
        }
    }
    if (json_object_get(o, "identifier") == NULL) {
        set_error(e, "missing_field", "field \"identifier\" is required");
        return;
    }
    expire = json_object_get(o, "expire");
    room_id = json_object_get(o, "room_id");
    room_str = json_object_get(o, "room_str");
    priv = json_object_get(o, "privilege_map");
    if (expire != NULL) {
        json_int_t x = json_integer_value(expire);
        if (x < 1 || x > (json_int_t)cfg->max_expire) {
            set_error(e, "bad_expire",
                      "expire must be 1 to %u seconds: at most app %u's max_expire",
                      cfg->max_expire, cfg->sdkappid);
            return;
        }
        req->expire = (uint32_t)x;
        req->own_expire = true;
    }
    if (room_id != NULL && room_str != NULL) {
        set_error(e, "bad_room", "give room_id or room_str, not both");
        return;
    }
    if (room_id != NULL) {
        json_int_t x = json_integer_value(room_id);
        if (x < 1 || x > (json_int_t)UINT32_MAX) {
            set_error(e, "bad_room", "room_id must be an integer from 1 to 4294967295");
            return;
        }
        req->room.kind = USERSIG_ROOM_NUMERIC;
        req->room.room_id = (uint32_t)x;
    } else if (room_str != NULL) {
        size_t len = json_string_length(room_str);
        if (len < 1 || len > USERSIG_MAX_ROOM_STR) {
            set_error(e, "bad_room", "room_str must be 1 to %d bytes", USERSIG_MAX_ROOM_STR);
            return;
        }
        req->room.kind = USERSIG_ROOM_STRING;
        req->room.room_str = json_string_value(room_str);
        req->room.room_str_len = len;
    }
    if (req->room.kind != USERSIG_ROOM_NONE)
        req->room.privilege_map = 255;
    if (priv != NULL) {
        json_int_t x = json_integer_value(priv);
        if (x < 0 || x > 255) {
            set_error(e, "bad_privilege", "privilege_map must be an integer from 0 to 255");
            return;
        }
        if (req->room.kind == USERSIG_ROOM_NONE) {
            set_error(e, "bad_privilege",
                      "privilege_map needs a room: give room_id or room_str with it");
            return;
        }
        req->room.privilege_map = (uint32_t)x;
    }
}

/* One item as its request, or its error. idbuf (PIPELINE_ITEM_MAX bytes) holds a decoded JSON
 * string. */
static void read_item(const struct pipeline_job_config *cfg, const char *s, size_t n, bool too_long,
                      struct item_req *req, struct line_error *e, json_t **hold, char *idbuf)
{
    bool ok;
    memset(req, 0, sizeof *req);
    req->id = "";
    req->expire = cfg->expire;
    e->code = NULL;
    switch (cfg->input) {
    case PIPELINE_IN_TEXT:
        if (!too_long && n > 0 && s[n - 1] == '\r')
            n--;
        req->id = s;
        req->id_len = n;
        break;
    case PIPELINE_IN_NDJSON:
        read_ndjson(cfg, s, n, too_long, req, e, hold);
        break;
    case PIPELINE_IN_JSON_VALUE:
        while (n > 0 && (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n'))
            s++, n--;
        if (n == 0 || *s != '"') {
            set_error(e, "invalid_field", "an identifier must be a JSON string");
            break;
        }
        req->id = idbuf;
        req->id_len = json_string_decode(s, n, idbuf, &ok);
        if (!ok && !too_long)
            set_error(e, "bad_json", "the identifier is not a well-formed JSON string");
        break;
    }
    /* Past PIPELINE_ITEM_MAX bytes (the rest was dropped): far too long for an identifier. */
    if (e->code == NULL && too_long)
        identifier_error(cfg, e);
}

/* ---- an item's output line (worker threads) ------------------------------------------------ */

/* The rules of who signs (pipeline_rules) for a well-formed item: sets e on a refusal (and
 * *why, *admin_index), may lower a defaulted expire to admin_max_expire. */
static void apply_rules(const struct pipeline_job_config *cfg, struct item_req *req,
                        struct line_error *e, enum pipeline_refusal *why, size_t *admin_index)
{
    const struct pipeline_rules *r = &cfg->rules;
    for (size_t i = 0; i < r->n_admin_ids && i < PIPELINE_MAX_ADMIN_IDS; i++) {
        if (strnlen(r->admin_ids[i], sizeof r->admin_ids[i]) != req->id_len ||
            memcmp(r->admin_ids[i], req->id, req->id_len) != 0)
            continue;
        if (!r->admin_allowed) {
            *why = PIPELINE_REFUSED_ADMIN;
            *admin_index = i;
            set_error(e, "admin_identifier",
                      "this is one of app %u's administrator identifiers: only an admin or "
                      "admin_signer token may sign for it",
                      cfg->sdkappid);
            return;
        }
        if (req->expire > r->admin_max_expire) {
            if (req->own_expire || cfg->expire_given) {
                set_error(e, "bad_expire",
                          "expire must be 1 to %u seconds for an administrator identifier: at "
                          "most app %u's admin_max_expire",
                          r->admin_max_expire, cfg->sdkappid);
                return;
            }
            req->expire = r->admin_max_expire;
        }
        break;
    }
    if (r->n_prefixes == 0)
        return;
    for (size_t i = 0; i < r->n_prefixes && i < PIPELINE_MAX_PREFIXES; i++) {
        size_t len = strnlen(r->prefixes[i], sizeof r->prefixes[i]);
        if (len > 0 && len <= req->id_len && memcmp(r->prefixes[i], req->id, len) == 0)
            return;
    }
    *why = PIPELINE_REFUSED_PREFIX;
    set_error(e, "identifier_prefix",
              "this token may sign only identifiers that start with one of its "
              "identifier_prefixes");
}

bool pipeline_rules_permit(const struct pipeline_rules *r, const char *id, size_t len)
{
    for (size_t i = 0; i < r->n_admin_ids && i < PIPELINE_MAX_ADMIN_IDS; i++)
        if (strnlen(r->admin_ids[i], sizeof r->admin_ids[i]) == len &&
            memcmp(r->admin_ids[i], id, len) == 0 && !r->admin_allowed)
            return false;
    if (r->n_prefixes == 0)
        return true;
    for (size_t i = 0; i < r->n_prefixes && i < PIPELINE_MAX_PREFIXES; i++) {
        size_t n = strnlen(r->prefixes[i], sizeof r->prefixes[i]);
        if (n > 0 && n <= len && memcmp(r->prefixes[i], id, n) == 0)
            return true;
    }
    return false;
}

char *pipeline_item_line(const struct pipeline_job_config *cfg, struct usersig_signer *signer,
                         int64_t now, const char *s, size_t n, bool too_long, char *idbuf,
                         char *line, bool *failed)
{
    enum pipeline_refusal why;
    size_t index;
    return pipeline_item_line_why(cfg, signer, now, s, n, too_long, idbuf, line, failed, &why,
                                  &index);
}

char *pipeline_item_line_why(const struct pipeline_job_config *cfg, struct usersig_signer *signer,
                             int64_t now, const char *s, size_t n, bool too_long, char *idbuf,
                             char *line, bool *failed, enum pipeline_refusal *why,
                             size_t *admin_index)
{
    const bool csv = cfg->output == PIPELINE_OUT_CSV;
    struct item_req req;
    struct line_error e;
    json_t *hold = NULL;
    size_t tlen = 0;
    enum usersig_rc rc = USERSIG_OK;
    char *o = line;

    *why = PIPELINE_REFUSED_NONE;
    *admin_index = 0;
    read_item(cfg, s, n, too_long, &req, &e, &hold, idbuf);
    /* The identifier's own rules first (as a single sign checks them): only a valid UserID can
     * be an administrator's or match a prefix. */
    if (e.code == NULL && usersig_identifier_check(req.id, req.id_len, cfg->policy) != USERSIG_OK)
        identifier_error(cfg, &e);
    if (e.code == NULL)
        apply_rules(cfg, &req, &e, why, admin_index);
    size_t echo = req.id_len < PIPELINE_ECHO_MAX ? req.id_len : PIPELINE_ECHO_MAX;
    o = csv ? put_csv(o, req.id, echo) : put_json(put(o, "{\"identifier\":\""), req.id, echo);
    if (e.code == NULL) {
        struct usersig_params params = {
            .identifier = req.id,
            .identifier_len = req.id_len,
            .expire = req.expire,
            .time = now,
            .room = req.room,
        };
        o = put(o, csv ? "," : "\",\"usersig\":\"");
        rc = usersig_sign(signer, &params, o, USERSIG_TOKEN_BUF, &tlen);
        if (rc == USERSIG_OK)
            o = put(o + tlen, csv ? "\n" : "\"}\n");
        else if (rc == USERSIG_BAD_IDENTIFIER)
            identifier_error(cfg, &e);
        else if (rc == USERSIG_BAD_EXPIRE || rc == USERSIG_BAD_TIME)
            set_error(&e, "bad_expire", "%s", usersig_rc_message(rc));
        else if (rc == USERSIG_BAD_ROOM || rc == USERSIG_BAD_PRIVILEGE)
            set_error(&e, usersig_rc_name(rc), "%s", usersig_rc_message(rc));
    }
    if (e.code == NULL && rc != USERSIG_OK) {
        json_decref(hold);
        return NULL;
    }
    if (e.code != NULL) {
        o = line;
        o = csv ? put_csv(o, req.id, echo) : put_json(put(o, "{\"identifier\":\""), req.id, echo);
        if (csv) {
            o = put(put(put(o, ",,"), e.code), "\n");
        } else {
            o = put(put(put(o, "\",\"error\":{\"code\":\""), e.code), "\",\"message\":\"");
            o = put(put_json(o, e.msg, strlen(e.msg)), "\"}}\n");
        }
    }
    *failed = e.code != NULL;
    json_decref(hold); /* req pointed into it */
    return o;
}

char *pipeline_item_error_line(const struct pipeline_job_config *cfg, const char *s, size_t n,
                               bool too_long, char *idbuf, char *line, const char *code,
                               const char *msg)
{
    const bool csv = cfg->output == PIPELINE_OUT_CSV;
    struct item_req req;
    struct line_error e;
    json_t *hold = NULL;
    char *o = line;

    read_item(cfg, s, n, too_long, &req, &e, &hold, idbuf);
    set_error(&e, code, "%s", msg);
    size_t echo = req.id_len < PIPELINE_ECHO_MAX ? req.id_len : PIPELINE_ECHO_MAX;
    o = csv ? put_csv(o, req.id, echo) : put_json(put(o, "{\"identifier\":\""), req.id, echo);
    if (csv) {
        o = put(put(put(o, ",,"), e.code), "\n");
    } else {
        o = put(put(put(o, "\",\"error\":{\"code\":\""), e.code), "\",\"message\":\"");
        o = put(put_json(o, e.msg, strlen(e.msg)), "\"}}\n");
    }
    json_decref(hold);
    return o;
}
