/*
 * usersig batch and import: what they say on stderr. Messages ("usersig: ..."), and, when stderr is
 * a terminal, the progress line (done, failed, rate, ETA) they clear first. The bottom of the batch
 * client: usersig_batch.c and usersig_batch_out.c call it; it calls nothing of theirs.
 */
#include "usersig_batch_int.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#define PROGRESS_EVERY_NS 250000000LL

const char *usersig_batch_job_name(const struct batch *b)
{
    return b->job == USERSIG_JOB_IMPORT  ? "import"
           : b->job == USERSIG_JOB_CHECK ? "check"
                                         : "batch";
}

int64_t usersig_batch_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void usersig_batch_progress_clear(struct batch *b)
{
    if (b->progress_shown) {
        fputs("\r\033[K", stderr);
        b->progress_shown = 0;
    }
}

/* The connection's reports (usersig_http_hooks.vsay), as usersig_batch_say. */
void usersig_batch_vsay(void *arg, const char *fmt, va_list ap)
{
    struct batch *b = arg;
    usersig_batch_progress_clear(b);
    fputs("usersig: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void usersig_batch_say(struct batch *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    usersig_batch_vsay(b, fmt, ap);
    va_end(ap);
}

/* The stdin bytes answered so far, estimated within the current request. */
static uint64_t answered_bytes(const struct batch *b, size_t body_off)
{
    const struct request *r = &b->req;
    if (b->streaming)
        return b->answered_in;
    if (r->len == 0)
        return r->in_start;
    return r->in_start + (uint64_t)((double)(r->in_end - r->in_start) * body_off / r->len);
}

void usersig_batch_progress(struct batch *b, size_t body_off, int force)
{
    if (!b->tty)
        return;
    int64_t now = usersig_batch_now_ns();
    if (!force && now - b->last_draw < PROGRESS_EVERY_NS)
        return;
    b->last_draw = now;
    double secs = (double)(now - b->t0) / 1e9;
    char eta[48] = "";
    if (b->input_size > 0) {
        uint64_t done = answered_bytes(b, body_off);
        if (done > b->input_size)
            done = b->input_size;
        if (done > 0) {
            double left = secs * (double)(b->input_size - done) / (double)done;
            long s = (long)(left + 0.5);
            snprintf(eta, sizeof eta, " (%.0f%%), ETA %ld:%02ld:%02ld",
                     100.0 * (double)done / (double)b->input_size, s / 3600, s / 60 % 60, s % 60);
        }
    }
    fprintf(stderr, "\rusersig %s: %" PRIu64 " done, %" PRIu64 " failed, %.0f/s%s\033[K",
            b->job == USERSIG_JOB_BATCH ? "batch" : "import", b->done, b->failed,
            secs > 0 ? (double)b->done / secs : 0.0, eta);
    b->progress_shown = 1;
}
