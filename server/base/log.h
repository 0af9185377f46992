/*
 * Logging: printf-style, one line per event on stderr, with a level and an optional request id,
 * as text or as JSON lines (log_set_format). Log once, where the error is handled, saying why;
 * never log a secret, a token or a key.
 */
#ifndef LOG_H
#define LOG_H

#include <stddef.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

/* text: "2026-11-26T07:40:59.123Z INFO [request-id] message"; json: one object a line,
 * {"time","level","request_id"?,"message"} and, for access lines, the request's fields. */
enum log_format { LOG_FORMAT_TEXT = 0, LOG_FORMAT_JSON };

/* Messages below level are dropped (default LOG_INFO). May be called while other threads log. */
void log_set_level(enum log_level level);
/* The line format (default LOG_FORMAT_TEXT). May be called while other threads log. */
void log_set_format(enum log_format format);
/* "debug", "info", "warn", "error" (the names log_level_parse() takes). */
const char *log_level_name(enum log_level level);
/* Parses "debug", "info", "warn", "error"; -1 when unknown. */
int log_level_parse(const char *name);

/* request_id may be NULL. Thread-safe: each line is written with one write(2). */
void log_msg(enum log_level level, const char *request_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* One request's access line: its fields, and a message (fmt NULL: none). In text, the same
 * line as log_msg of "METHOD PATH STATUS CODE[: message] (D ms, token ACTOR)"; in JSON the
 * fields are members of their own (route: the pattern; actor: the token's name, or absent). */
struct log_access {
    const char *method;
    const char *path;  /* as received, without the query */
    const char *route; /* the route pattern, NULL when none matched */
    int status;
    const char *code; /* the result's stable code ("ok", "not_found") */
    double duration_ms;
    const char *actor; /* the API token's name, NULL without one */
};
void log_access(enum log_level level, const char *request_id, const struct log_access *a,
                const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Appends s (len bytes) to out[*n..cap) as the inside of a JSON string: quote, backslash and
 * control characters escaped, each invalid UTF-8 byte as U+FFFD. Never splits an escape or a
 * character; stops when the next would not fit (room is kept for the NUL). Returns the bytes of
 * s consumed. */
size_t log_json_escape(char *out, size_t cap, size_t *n, const char *s, size_t len);

/* Formats a message into a caller's error buffer (err may be NULL or errlen 0: nothing). For
 * functions that report why they failed to a caller who decides whether and how to log it. */
void log_errbuf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(...) log_msg(LOG_DEBUG, NULL, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, NULL, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, NULL, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, NULL, __VA_ARGS__)

#endif
