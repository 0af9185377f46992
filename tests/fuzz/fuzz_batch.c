/*
 * The batch body scanners: the application/json body's validating scan and its cutting into
 * elements (admin-api/batch_json.c), and what a worker reads from each item, text, NDJSON or a
 * JSON array element, and writes as its line, NDJSON or CSV (server/pipeline/pipeline_items.c).
 * The first byte chooses the form; the rest is the body. A body the scan accepts is JSON with an
 * identifiers array of as many elements as were cut (jansson agrees); every line is whole and
 * within PIPELINE_OUT_LINE_MAX, an NDJSON line is an object with an identifier and either a
 * token that verifies for it or an error code.
 */
#include <event2/buffer.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "batch_json.h"
#include "pipeline.h"
#include "pipeline_int.h"
#include "usersig.h"

#define APP 1400000000u
#define SECRET "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
#define NOW 1700000000

static struct usersig_key *key;
static struct usersig_signer *signer;
static char idbuf[PIPELINE_ITEM_MAX];
static char line[PIPELINE_OUT_LINE_MAX + 1];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (usersig_key_new_hmac(SECRET, strlen(SECRET), &key) != USERSIG_OK ||
        usersig_signer_new(key, APP, 1, USERSIG_ID_PRINTABLE, &signer) != USERSIG_OK)
        abort();
    return 0;
}

static void check_item(const struct pipeline_job_config *cfg, const char *s, size_t n,
                       bool too_long)
{
    bool failed = false;
    char *end =
        pipeline_item_line(cfg, signer, NOW, n > 0 ? s : "", n, too_long, idbuf, line, &failed);
    if (end == NULL)
        abort();
    size_t len = (size_t)(end - line);
    if (len == 0 || len > PIPELINE_OUT_LINE_MAX || line[len - 1] != '\n' ||
        memchr(line, '\n', len - 1) != NULL)
        abort();
    if (cfg->output != PIPELINE_OUT_NDJSON)
        return;
    json_error_t jerr;
    json_t *o = json_loadb(line, len, JSON_ALLOW_NUL, &jerr);
    json_t *jid = json_object_get(o, "identifier");
    const char *id = json_string_value(jid);
    json_t *tok = json_object_get(o, "usersig"), *err = json_object_get(o, "error");
    if (o == NULL || id == NULL || (tok == NULL) == (err == NULL) || (err != NULL) != failed)
        abort();
    if (tok != NULL) {
        struct usersig_expect ex = {
            .identifier = id, .identifier_len = json_string_length(jid), .sdkappid = APP};
        const char *t = json_string_value(tok);
        if (t == NULL || usersig_verify(t, strlen(t), &ex, key, NOW, NULL) != USERSIG_VALID)
            abort();
    } else if (json_string_value(json_object_get(err, "code")) == NULL) {
        abort();
    }
    json_decref(o);
}

static void lines(const struct pipeline_job_config *cfg, const char *s, size_t n)
{
    while (n > 0) {
        const char *nl = memchr(s, '\n', n);
        size_t len = nl != NULL ? (size_t)(nl - s) : n;
        check_item(cfg, s, len > PIPELINE_ITEM_MAX ? PIPELINE_ITEM_MAX : len,
                   len > PIPELINE_ITEM_MAX);
        if (nl == NULL)
            break;
        s += len + 1;
        n -= len + 1;
    }
}

static void json_body(const struct pipeline_job_config *cfg, const char *s, size_t n)
{
    struct evbuffer *in = evbuffer_new();
    struct batch_json_cut cut = {0};
    struct pipeline_items it = {0};
    bool has_expire = false;
    int64_t expire = 0;
    char msg[512];
    size_t count = 0;

    if (in == NULL || evbuffer_add(in, s, n) != 0)
        abort();
    if (batch_json_check(in, &cut, &has_expire, &expire, msg, sizeof msg) != API_OK) {
        if (memchr(msg, '\0', sizeof msg) == NULL)
            abort();
        evbuffer_free(in);
        return;
    }
    for (;;) {
        enum pipeline_fill f = batch_json_fill(&cut, in, &it);
        if (f == PIPELINE_FILL_ERROR || it.oom)
            abort();
        for (size_t i = 0; i < it.n; i++)
            check_item(cfg, it.buf + it.v[i].off, it.v[i].len, it.v[i].too_long);
        count += it.n;
        bool more = f == PIPELINE_FILL_MORE;
        if (!more && it.n == 0)
            break;
        it.n = it.len = 0;
        if (!more)
            break;
    }
    free(it.buf);
    free(it.v);
    evbuffer_free(in);

    /* jansson reads the same body as an object whose identifiers array has count elements. */
    json_error_t jerr;
    json_t *doc = json_loadb(s, n, JSON_ALLOW_NUL, &jerr);
    json_t *ids = json_object_get(doc, "identifiers");
    /* Where the two differ by design: numbers jansson cannot hold (the scan checks only their
     * syntax), and bytes that are not UTF-8 (the scan passes them on: their item becomes an
     * error line). */
    if (doc == NULL && (strstr(jerr.text, "too big") != NULL || strstr(jerr.text, "overflow") ||
                        strstr(jerr.text, "UTF-8") != NULL || strstr(jerr.text, "byte 0x")))
        return;
    if (doc == NULL || !json_is_array(ids) || json_array_size(ids) != count)
        abort();
    if (has_expire && json_integer_value(json_object_get(doc, "expire")) != expire)
        abort();
    json_decref(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned sel = data[0];
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    struct pipeline_job_config cfg = {
        .sdkappid = APP,
        .level = 1,
        .policy = USERSIG_ID_PRINTABLE,
        .expire = 86400,
        .max_expire = 315360000,
        .output = (sel & 4) ? PIPELINE_OUT_CSV : PIPELINE_OUT_NDJSON,
    };
    switch (sel % 4) {
    case 0:
        cfg.input = PIPELINE_IN_TEXT;
        lines(&cfg, s, n);
        break;
    case 1:
        cfg.input = PIPELINE_IN_NDJSON;
        lines(&cfg, s, n);
        break;
    default:
        cfg.input = PIPELINE_IN_JSON_VALUE;
        json_body(&cfg, s, n);
        break;
    }
    return 0;
}
