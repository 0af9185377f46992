/*
 * Logging to stderr: "2026-11-26T07:40:59.123Z LEVEL [request-id] message". Each line goes out
 * in one write(2) so lines from threads do not interleave; control characters in a message are
 * replaced so a logged value cannot forge a line. There is no log file of our own to re-open on
 * SIGHUP: where stderr goes (a journal, a file) is the service manager's choice.
 */
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* Atomic: SIGHUP changes it on the loop thread while worker threads log. */
static _Atomic int min_level = LOG_INFO;
static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

void log_set_level(enum log_level level)
{
    atomic_store(&min_level, (int)level);
}

const char *log_level_name(enum log_level level)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    return (int)level >= 0 && level <= LOG_ERROR ? names[level] : "?";
}

int log_level_parse(const char *name)
{
    static const char *const names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

void log_msg(enum log_level level, const char *request_id, const char *fmt, ...)
{
    char line[2048];
    struct timeval tv;
    struct tm tm;
    size_t n;
    va_list ap;

    if ((int)level < atomic_load(&min_level))
        return;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof line - n, ".%03ldZ %s ", (long)(tv.tv_usec / 1000),
                          level_names[level]);
    if (request_id != NULL && n < sizeof line)
        n += (size_t)snprintf(line + n, sizeof line - n, "[%s] ", request_id);
    if (n < sizeof line) {
        size_t start = n;
        va_start(ap, fmt);
        int m = vsnprintf(line + n, sizeof line - n, fmt, ap);
        va_end(ap);
        if (m > 0)
            n += (size_t)m < sizeof line - n ? (size_t)m : sizeof line - n - 1;
        for (size_t i = start; i < n; i++)
            if ((unsigned char)line[i] < 0x20)
                line[i] = ' ';
    }
    if (n >= sizeof line - 1)
        n = sizeof line - 2;
    line[n++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}

void log_errbuf(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}
