/*
 * The Tencent tests' fixture (tencent_fixture.h).
 */
#include "tencent_fixture.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "testlib.h"

extern char **environ;

struct event_base *base;
char ca_file[600], other_ca[600], base_url[64];
int port;
static char ca_dir[512];
static pid_t standin_pid = -1;
static char log_path[700];
static int saved_stderr = -1;

static int run(char *const argv[])
{
    pid_t pid;
    if (posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ) != 0)
        return -1;
    int st;
    if (waitpid(pid, &st, 0) < 0)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int standin_start(void)
{
    snprintf(ca_dir, sizeof ca_dir, "%s", test_tmp_path("ca"));
    snprintf(ca_file, sizeof ca_file, "%s/ca.pem", ca_dir);
    snprintf(other_ca, sizeof other_ca, "%s/other-ca.pem", ca_dir);
    char *mk[] = {"bash", USERSIGD_SOURCE_DIR "/tests/tencent/make_ca.sh", ca_dir, NULL};
    if (run(mk) != 0)
        return -1;
    const char *cfg = test_tmp_path("standin.json");
    FILE *f = fopen(cfg, "w");
    if (f == NULL)
        return -1;
    fprintf(f,
            "{\"apps\":{\"%u\":{\"key\":\"%s\",\"admins\":[\"administrator\",\"ops\"]},"
            "\"%u\":{\"key\":\"%s\",\"admins\":[\"administrator\"]}}}\n",
            APP1, KEY1, APP2, KEY2);
    fclose(f);
    int out[2];
    if (pipe(out) != 0)
        return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addclose(&fa, out[0]);
    char *argv[] = {"node",      USERSIGD_SOURCE_DIR "/tests/tencent/standin.js",
                    "--config",  (char *)cfg,
                    "--tls-dir", ca_dir,
                    "--port",    "0",
                    NULL};
    int rc = posix_spawnp(&standin_pid, "node", &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    if (rc != 0) {
        close(out[0]);
        return -1;
    }
    char line[128];
    size_t n = 0;
    while (n + 1 < sizeof line) {
        ssize_t r = read(out[0], line + n, 1);
        if (r <= 0 || line[n] == '\n')
            break;
        n++;
    }
    line[n] = '\0';
    close(out[0]);
    if (sscanf(line, "{\"port\":%d}", &port) != 1)
        return -1;
    snprintf(base_url, sizeof base_url, "https://127.0.0.1:%d", port);
    return 0;
}

static void standin_stop(void)
{
    if (standin_pid > 0) {
        kill(standin_pid, SIGTERM);
        waitpid(standin_pid, NULL, 0);
    }
    static const char *files[] = {"ca.pem",     "ca.key",     "other-ca.pem",   "other-ca.key",
                                  "server.pem", "server.key", "wrong-name.pem", "wrong-name.key"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char p[700];
        snprintf(p, sizeof p, "%s/%s", ca_dir, files[i]);
        unlink(p);
    }
    rmdir(ca_dir);
}

/* Runs the loop until *flag is set or 15 s have passed. */
void run_until(const int *flag)
{
    time_t end = time(NULL) + 15;
    while (!*flag && time(NULL) < end)
        event_base_loop(base, EVLOOP_ONCE);
    CHECK(*flag, "the loop finished what it waited for");
}

double mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

void ob_done(const struct outbound_result *r, void *arg)
{
    struct ob_wait *w = arg;
    w->done = 1;
    w->rc = r->rc;
    w->status = r->status;
    w->len = r->body_len;
    snprintf(w->body, sizeof w->body, "%.*s", (int)r->body_len, r->body);
    w->ms = r->duration_ms;
    snprintf(w->error, sizeof w->error, "%s", r->error);
}

struct outbound *ob_make(const char *ca, int64_t timeout_ms, size_t max_response)
{
    struct outbound_options o = {0};
    o.ca_file = ca;
    o.timeout_ms = timeout_ms;
    o.connect_timeout_ms = 2000;
    o.max_response = max_response;
    char err[256];
    struct outbound *ob = outbound_new(base, &o, err, sizeof err);
    CHECK(ob != NULL, "outbound_new: %s", err);
    return ob;
}

/* One POST through ob, waited for. */
void ob_post(struct outbound *ob, const char *path, const char *body, struct ob_wait *w)
{
    memset(w, 0, sizeof *w);
    char url[512];
    snprintf(url, sizeof url, "%s%s", base_url, path);
    enum outbound_rc rc = outbound_post_json(ob, url, body, strlen(body), ob_done, w);
    CHECK(rc == OUTBOUND_OK, "%s: started (%s)", path, outbound_rc_name(rc));
    if (rc == OUTBOUND_OK)
        run_until(&w->done);
}

/* The stand-in's test endpoint: queue replies for the next calls of a command. */
void inject(struct outbound *ob, uint32_t app, const char *cmd, const char *replies)
{
    char body[2048];
    snprintf(body, sizeof body, "{\"sdkappid\":\"%u\",\"command\":\"%s\",\"replies\":%s}", app, cmd,
             replies);
    struct ob_wait w;
    ob_post(ob, "/__standin/inject", body, &w);
    CHECK(w.rc == OUTBOUND_OK && w.status == 200, "inject: %ld %s", w.status, w.body);
}

int ticks;
void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    ticks++;
}

void run_for(long ms)
{
    struct event *stop = evtimer_new(base, on_tick, NULL);
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    evtimer_add(stop, &tv);
    ticks = 0;
    while (ticks == 0)
        event_base_loop(base, EVLOOP_ONCE);
    event_free(stop);
}

int fixture_begin(void)
{
    signal(SIGPIPE, SIG_IGN);
    /* Every log line goes to a file, checked at the end for any UserSig. */
    snprintf(log_path, sizeof log_path, "%s", test_tmp_path("log.txt"));
    int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    saved_stderr = dup(2);
    if (fd >= 0)
        dup2(fd, 2);
    log_set_level(LOG_DEBUG);
    base = event_base_new();
    if (base == NULL || standin_start() != 0) {
        dup2(saved_stderr, 2);
        fprintf(stderr, "cannot start the Tencent stand-in (node, openssl needed)\n");
        standin_stop();
        return -1;
    }
    return 0;
}

int fixture_end(const char *name)
{
    standin_stop();
    event_base_free(base);
    dup2(saved_stderr, 2);
    static char log[1 << 20];
    long n = test_read_file(log_path, log, sizeof log);
    CHECK(n > 0 && strstr(log, "outbound POST 127.0.0.1") != NULL, "the calls were logged");
    CHECK(n > 0 && strstr(log, "usersig=") == NULL && strstr(log, "eJ") == NULL &&
              strstr(log, "?sdkappid") == NULL,
          "no URL query, no UserSig in the log");
    /* The failures were written to stderr, into the log: show them. */
    for (char *line = n > 0 ? strtok(log, "\n") : NULL; line != NULL; line = strtok(NULL, "\n"))
        if (strncmp(line, "FAIL", 4) == 0)
            fprintf(stderr, "%s\n", line);
    test_tmp_remove();
    return test_done(name);
}
