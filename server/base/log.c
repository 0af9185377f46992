/*
 * Logging to stderr: "2026-11-26T07:40:59.123Z LEVEL [request-id] message", or one JSON object
 * a line. Each line goes out in one write(2) so lines from threads do not interleave; control
 * characters in a message are replaced (text) or escaped (JSON, invalid UTF-8 too) so a logged
 * value cannot forge a line, and a line cut to fit stays one well-formed line. There is no log file
 * of our own to re-open on SIGHUP: where stderr goes (a journal, a file) is the service manager's
 * choice.
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
static _Atomic int json_format = 0;
static const char *const level_names[] = {"DEBUG", "INFO", "WARN", "ERROR"};

#define LINE_MAX_BYTES 2048

void log_set_format(enum log_format format)
{
    atomic_store(&json_format, format == LOG_FORMAT_JSON);
}

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

/* One line being built; put_* write whole pieces or nothing, so a cut line stays well formed. */
struct line {
    char buf[LINE_MAX_BYTES];
    size_t n;
};

/* Room kept at the end for the closing "}\n" of a JSON line (and the text line's "\n"). */
#define LINE_TAIL 3

static void put_raw(struct line *l, const char *s)
{
    size_t len = strlen(s);
    if (l->n + len + LINE_TAIL <= sizeof l->buf) {
        memcpy(l->buf + l->n, s, len);
        l->n += len;
    }
}

/* The length of the valid UTF-8 sequence at s (len bytes available), or 0. */
static size_t utf8_len(const unsigned char *s, size_t len)
{
    unsigned c = s[0];
    size_t need;
    unsigned min, cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        need = 2;
        min = 0x80;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        min = 0x800;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        min = 0x10000;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (len < need)
        return 0;
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return need;
}

size_t log_json_escape(char *out, size_t cap, size_t *n, const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        char esc[8];
        const char *piece = esc;
        size_t plen, step = 1;
        unsigned char c = u[i];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            plen = 2;
        } else if (c == '\n' || c == '\r' || c == '\t') {
            esc[0] = '\\';
            esc[1] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
            plen = 2;
        } else if (c < 0x20 || c == 0x7F) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            plen = 6;
        } else if (c < 0x80) {
            piece = (const char *)u + i;
            plen = 1;
        } else if ((step = utf8_len(u + i, len - i)) > 0) {
            piece = (const char *)u + i;
            plen = step;
        } else {
            piece = "\xEF\xBF\xBD"; /* U+FFFD for the one bad byte */
            plen = 3;
            step = 1;
        }
        if (*n + plen + 1 > cap)
            break;
        memcpy(out + *n, piece, plen);
        *n += plen;
        i += step;
    }
    if (*n < cap)
        out[*n] = '\0';
    return i;
}

static void put_json_string(struct line *l, const char *key, const char *value)
{
    size_t save = l->n;
    char head[64];
    snprintf(head, sizeof head, ",\"%s\":\"", key);
    put_raw(l, l->n == 1 ? head + 1 : head); /* the first member after "{" has no comma */
    if (l->n == save)
        return;
    /* Room for the closing quote and the tail. */
    log_json_escape(l->buf, sizeof l->buf - LINE_TAIL - 1, &l->n, value, strlen(value));
    l->buf[l->n++] = '"';
}

static void put_json_number(struct line *l, const char *key, const char *number)
{
    char piece[96];
    snprintf(piece, sizeof piece, ",\"%s\":%s", key, number);
    put_raw(l, piece);
}

static void emit_line(struct line *l)
{
    l->buf[l->n++] = '\n';
    ssize_t w = write(STDERR_FILENO, l->buf, l->n);
    (void)w;
}

static void format_time(char *out, size_t cap)
{
    struct timeval tv;
    struct tm tm;
    size_t n;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, cap - n, ".%03ldZ", (long)(tv.tv_usec / 1000));
}

/* Writes one line: message is the formatted text (NUL-terminated), a the access fields or NULL. */
static void write_line(enum log_level level, const char *request_id, const char *message,
                       const struct log_access *a)
{
    struct line l;
    char when[40];

    l.n = 0;
    format_time(when, sizeof when);
    if (atomic_load(&json_format)) {
        put_raw(&l, "{");
        put_json_string(&l, "time", when);
        put_json_string(&l, "level", log_level_name(level));
        if (request_id != NULL)
            put_json_string(&l, "request_id", request_id);
        if (a != NULL) {
            char num[48];
            put_json_string(&l, "method", a->method != NULL ? a->method : "");
            put_json_string(&l, "path", a->path != NULL ? a->path : "");
            if (a->route != NULL)
                put_json_string(&l, "route", a->route);
            snprintf(num, sizeof num, "%d", a->status);
            put_json_number(&l, "status", num);
            put_json_string(&l, "code", a->code != NULL ? a->code : "");
            snprintf(num, sizeof num, "%.3f", a->duration_ms >= 0 ? a->duration_ms : 0.0);
            put_json_number(&l, "duration_ms", num);
            if (a->actor != NULL)
                put_json_string(&l, "actor", a->actor);
        }
        if (message != NULL)
            put_json_string(&l, "message", message);
        l.buf[l.n++] = '}';
        emit_line(&l);
        return;
    }
    put_raw(&l, when);
    put_raw(&l, " ");
    put_raw(&l, level_names[level]);
    put_raw(&l, " ");
    if (request_id != NULL) {
        put_raw(&l, "[");
        put_raw(&l, request_id);
        put_raw(&l, "] ");
    }
    /* The message, cut to fit, with control characters replaced so it cannot forge a line. */
    for (size_t i = 0; message != NULL && message[i] != '\0' && l.n + LINE_TAIL < sizeof l.buf; i++)
        l.buf[l.n++] = (unsigned char)message[i] < 0x20 ? ' ' : message[i];
    emit_line(&l);
}

void log_msg(enum log_level level, const char *request_id, const char *fmt, ...)
{
    char message[LINE_MAX_BYTES];
    va_list ap;

    if ((int)level < atomic_load(&min_level) || (unsigned)level > LOG_ERROR)
        return;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    write_line(level, request_id, message, NULL);
}

void log_access(enum log_level level, const char *request_id, const struct log_access *a,
                const char *fmt, ...)
{
    char message[LINE_MAX_BYTES / 2] = "", text[LINE_MAX_BYTES];
    va_list ap;

    if ((int)level < atomic_load(&min_level) || (unsigned)level > LOG_ERROR)
        return;
    if (fmt != NULL) {
        va_start(ap, fmt);
        vsnprintf(message, sizeof message, fmt, ap);
        va_end(ap);
    }
    if (atomic_load(&json_format)) {
        write_line(level, request_id, fmt != NULL ? message : NULL, a);
        return;
    }
    snprintf(text, sizeof text, "%s %s %d %s%s%s (%.1f ms, token %s)", a->method, a->path,
             a->status, a->code, fmt != NULL ? ": " : "", message, a->duration_ms,
             a->actor != NULL ? a->actor : "-");
    write_line(level, request_id, text, NULL);
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
