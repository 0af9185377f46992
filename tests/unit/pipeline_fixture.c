/*
 * The fake batch of the pipeline's tests (test_pipeline.c, test_pipeline_cancel.c): a source of
 * items, an emitter whose "connection" drains on a timer, the shared event loop and pool, and
 * the helpers that run a job and read what it wrote.
 */
#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pipeline_fixture.h"
#include "testlib.h"

struct event_base *base;
struct pipeline *pool;

/* ---- a fake batch: items in, lines out --------------------------------------------------- */

static enum pipeline_fill fake_fill(void *arg, struct pipeline_items *it)
{
    struct fake *f = arg;
    if (f->undrained)
        f->cut_while_undrained = true;
    while (f->next_item < f->n_items && !pipeline_items_full(it)) {
        const char *s = f->items[f->next_item++];
        /* In two pieces, as a line split across two evbuffer chains would come. */
        size_t n = strlen(s), half = n / 2;
        pipeline_items_begin(it);
        if (pipeline_items_append(it, s, half) != 0 ||
            pipeline_items_append(it, s + half, n - half) != 0)
            return PIPELINE_FILL_ERROR;
        pipeline_items_end(it);
        if (f->refuse_odd && f->next_item % 2 == 0 &&
            pipeline_items_refuse(it, "import_failed", "not \"imported\"\n") != 0)
            return PIPELINE_FILL_ERROR;
    }
    if (pipeline_items_count(it) > 0)
        f->blocks_cut++;
    if (f->blocks_cut - f->blocks_emitted > f->max_out)
        f->max_out = f->blocks_cut - f->blocks_emitted;
    return f->next_item < f->n_items ? PIPELINE_FILL_MORE : PIPELINE_FILL_END;
}

static void drain_cb(evutil_socket_t fd, short what, void *arg)
{
    struct fake *f = arg;
    (void)fd;
    (void)what;
    f->drains_pending--;
    if (f->job == NULL || !f->undrained)
        return;
    f->undrained = false;
    pipeline_job_drained(f->job);
}

static int fake_emit(void *arg, const char *data, size_t len)
{
    struct fake *f = arg;
    f->emits++;
    if (f->fail_emit_at > 0 && f->emits == (size_t)f->fail_emit_at)
        return -1;
    CHECK(len > 0 && data[len - 1] == '\n', "emit of whole lines");
    if (f->out_len + len > f->out_cap) {
        f->out_cap = (f->out_len + len) * 2;
        f->out = realloc(f->out, f->out_cap);
        if (f->out == NULL)
            abort();
    }
    memcpy(f->out + f->out_len, data, len);
    f->out_len += len;
    f->blocks_emitted++;
    /* The blocks ready together go out in one round; the connection drains after it. */
    if (!f->undrained && f->drain_delay_us >= 0) {
        struct timeval tv = {f->drain_delay_us / 1000000, f->drain_delay_us % 1000000};
        if (event_base_once(base, -1, EV_TIMEOUT, drain_cb, f, &tv) == 0)
            f->drains_pending++;
    }
    f->undrained = true;
    return 0;
}

static void fake_done(void *arg, const struct pipeline_result *res)
{
    struct fake *f = arg;
    CHECK(!f->done, "done called twice");
    f->done = true;
    f->res = *res;
    f->job = NULL;
}

void fake_init(struct fake *f, enum pipeline_input in, enum pipeline_output out, size_t n)
{
    memset(f, 0, sizeof *f);
    f->items = calloc(n + 1, sizeof *f->items);
    f->n_items = n;
    f->cfg = (struct pipeline_job_config){
        .sdkappid = APP,
        .level = 6,
        .policy = USERSIG_ID_PRINTABLE,
        .expire = EXPIRE,
        .max_expire = MAX_EXPIRE,
        .input = in,
        .output = out,
        .arg = f,
        .fill = fake_fill,
        .emit = fake_emit,
        .done = fake_done,
    };
}

void fake_free(struct fake *f)
{
    while (f->drains_pending > 0)
        event_base_loop(base, EVLOOP_ONCE);
    for (size_t i = 0; i < f->n_items; i++)
        free(f->items[i]);
    free(f->items);
    free(f->out);
}

struct usersig_key *new_key(void)
{
    struct usersig_key *k = NULL;
    if (usersig_key_new_hmac(SECRET, strlen(SECRET), &k) != USERSIG_OK)
        abort();
    return k;
}

void keepalive_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

/* Runs the loop until *flag or the deadline; a periodic timer keeps it waiting for the
 * workers' wake-ups. */
bool run_until(const bool *flag)
{
    struct event *keep = event_new(base, -1, EV_PERSIST, keepalive_cb, NULL);
    struct timeval tv = {0, 10000};
    time_t deadline = time(NULL) + DEADLINE_S;
    event_add(keep, &tv);
    while (!*flag && time(NULL) < deadline)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(keep);
    return *flag;
}

void start(struct fake *f)
{
    f->cfg.key = new_key();
    enum pipeline_rc rc = pipeline_job_new(pool, &f->cfg, &f->job);
    CHECK(rc == PIPELINE_OK, "pipeline_job_new: %d", (int)rc);
    if (rc == PIPELINE_OK)
        pipeline_job_start(f->job);
}

void sha256_hex(const char *data, size_t len, char out[65])
{
    unsigned char md[32];
    unsigned int n = 0;
    EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* The output as lines (pointers into f->out, each NUL-terminated in place). */
char **split_lines(struct fake *f, size_t *n)
{
    char **lines = calloc(f->out_len + 1, sizeof *lines);
    size_t k = 0;
    for (char *p = f->out, *end = f->out + f->out_len; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL)
            break;
        *nl = '\0';
        lines[k++] = p;
        p = nl + 1;
    }
    *n = k;
    return lines;
}

bool token_ok(struct usersig_key *key, const char *token, const char *id)
{
    struct usersig_expect e = {.identifier = id, .identifier_len = strlen(id), .sdkappid = APP};
    return usersig_verify(token, strlen(token), &e, key, (int64_t)time(NULL), NULL) ==
           USERSIG_VALID;
}

static bool stats_settled;

static void check_settled_cb(evutil_socket_t fd, short what, void *arg)
{
    struct pipeline_stats st;
    (void)fd;
    (void)what;
    (void)arg;
    pipeline_get_stats(pool, &st);
    stats_settled = st.jobs == 0 && st.blocks == 0;
}

/* Waits for the pool to hold no job and no block (cancelled jobs freed once their blocks came
 * back from the workers). */
bool pool_settles(void)
{
    struct event *ev = event_new(base, -1, EV_PERSIST, check_settled_cb, NULL);
    struct timeval tv = {0, 2000};
    stats_settled = false;
    event_add(ev, &tv);
    bool ok = run_until(&stats_settled);
    event_free(ev);
    return ok;
}

int fixture_begin(void)
{
    char err[256];
    if (evthread_use_pthreads() != 0 || (base = event_base_new()) == NULL) {
        fprintf(stderr, "cannot make a thread-enabled event loop\n");
        return 1;
    }
    pool = pipeline_new(base, 4, err, sizeof err);
    if (pool == NULL) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    return 0;
}

int fixture_end(const char *name)
{
    CHECK(pool_settles(), "nothing left in the pool");

    pipeline_free(pool);
    event_base_free(base);
    libevent_global_shutdown();
    return test_done(name);
}
