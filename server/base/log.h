/*
 * Logging: printf-style, one line per event on stderr, with a level and an optional request id.
 * Log once, where the error is handled, saying why; never log a secret, a token or a key.
 */
#ifndef LOG_H
#define LOG_H

#include <stddef.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Messages below level are dropped (default LOG_INFO). May be called while other threads log. */
void log_set_level(enum log_level level);
/* "debug", "info", "warn", "error" (the names log_level_parse() takes). */
const char *log_level_name(enum log_level level);
/* Parses "debug", "info", "warn", "error"; -1 when unknown. */
int log_level_parse(const char *name);

/* request_id may be NULL. Thread-safe: each line is written with one write(2). */
void log_msg(enum log_level level, const char *request_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Formats a message into a caller's error buffer (err may be NULL or errlen 0: nothing). For
 * functions that report why they failed to a caller who decides whether and how to log it. */
void log_errbuf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(...) log_msg(LOG_DEBUG, NULL, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, NULL, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, NULL, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, NULL, __VA_ARGS__)

#endif
