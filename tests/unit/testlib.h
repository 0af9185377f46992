/*
 * A small test harness: CHECK records a failure with its place and goes on; test_done() prints
 * the closing "N passed, N failed" line and returns the exit status. Plus helpers to read the
 * JSONL files the tests are driven by.
 */
#ifndef TESTLIB_H
#define TESTLIB_H

#include <jansson.h>
#include <stddef.h>

extern long test_passed, test_failed;

void test_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (cond)                                                                                  \
            test_passed++;                                                                         \
        else                                                                                       \
            test_fail(__FILE__, __LINE__, __VA_ARGS__);                                            \
    } while (0)

int test_done(const char *name);

/* Calls fn for each JSON object line of path; returns the number of lines or -1. */
long test_each_jsonl(const char *path, void (*fn)(json_t *obj, void *arg), void *arg);

/* Field accessors that fail the test (and return a safe default) when the field is missing. */
const char *test_str(json_t *obj, const char *field);
long long test_int(json_t *obj, const char *field);

/* Decodes a token's JSON document into a jansson object (NULL when it does not decode). */
json_t *test_token_json(const char *token);

#endif
