/*
 * The test harness behind testlib.h.
 */
#include "testlib.h"
#include "usersig.h"

#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

long test_passed, test_failed;

void test_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    test_failed++;
    if (test_failed > 50)
        return; /* the count still tells how many */
    fprintf(stderr, "FAIL %s:%d: ", file, line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int test_done(const char *name)
{
    printf("%s: %ld passed, %ld failed\n", name, test_passed, test_failed);
    return test_failed == 0 && test_passed > 0 ? 0 : 1;
}

long test_each_jsonl(const char *path, void (*fn)(json_t *obj, void *arg), void *arg)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    long n = 0;
    if (f == NULL) {
        test_fail(__FILE__, __LINE__, "cannot open %s", path);
        return -1;
    }
    while (getline(&line, &cap, f) != -1) {
        json_error_t err;
        if (line[0] == '\n' || line[0] == '\0')
            continue;
        json_t *obj = json_loads(line, 0, &err);
        if (obj == NULL || !json_is_object(obj)) {
            test_fail(__FILE__, __LINE__, "%s: line %ld is not a JSON object: %s", path, n + 1,
                      err.text);
            json_decref(obj);
            continue;
        }
        fn(obj, arg);
        json_decref(obj);
        n++;
    }
    free(line);
    fclose(f);
    return n;
}

const char *test_str(json_t *obj, const char *field)
{
    json_t *v = json_object_get(obj, field);
    if (!json_is_string(v)) {
        test_fail(__FILE__, __LINE__, "field %s missing or not a string", field);
        return "";
    }
    return json_string_value(v);
}

long long test_int(json_t *obj, const char *field)
{
    json_t *v = json_object_get(obj, field);
    if (!json_is_integer(v)) {
        test_fail(__FILE__, __LINE__, "field %s missing or not an integer", field);
        return 0;
    }
    return json_integer_value(v);
}

/* Decoded without the codec (OpenSSL's base64, zlib's uncompress), so that a test of the signer
 * does not lean on the codec's own decoder. */
json_t *test_token_json(const char *token)
{
    size_t n = strlen(token), pad = 0;
    unsigned char *b64 = malloc(n + 1), *raw = malloc(n + 1);
    unsigned char doc[8192];
    uLongf doc_len = sizeof doc;
    json_t *out = NULL;

    if (b64 == NULL || raw == NULL || n == 0 || n % 4 != 0)
        goto done;
    for (size_t i = 0; i < n; i++) {
        char c = token[i];
        b64[i] = (unsigned char)(c == '*' ? '+' : c == '-' ? '/' : c == '_' ? '=' : c);
    }
    pad = (b64[n - 1] == '=') + (b64[n - 2] == '=');
    int raw_len = EVP_DecodeBlock(raw, b64, (int)n);
    if (raw_len < 0)
        goto done;
    if (uncompress(doc, &doc_len, raw, (uLong)raw_len - pad) != Z_OK)
        goto done;
    out = json_loadb((const char *)doc, doc_len, 0, NULL);
done:
    free(b64);
    free(raw);
    return out;
}
