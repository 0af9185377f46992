/*
 * What the tests of server/tencent/ share (test_outbound.c, test_tencent.c): the Tencent REST
 * stand-in (tests/tencent/standin.js) over real HTTPS with a test CA (tests/tencent/make_ca.sh),
 * a libevent loop to run it on, one-POST helpers through outbound, and the log of the run, sent
 * to a file and checked at the end for any UserSig or URL query.
 */
#ifndef TENCENT_FIXTURE_H
#define TENCENT_FIXTURE_H

#include <event2/event.h>
#include <stddef.h>
#include <stdint.h>

#include "outbound.h"

#define APP1 1400000001u /* keys match: the admin is "administrator" */
#define APP2 1400000002u /* the stand-in holds KEY2, the signer signs with KEY1: 70009 */
#define KEY1 "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
#define KEY2 "0000000000000000000000000000000000000000000000000000000000000002"

extern struct event_base *base;
extern char ca_file[600], other_ca[600], base_url[64];
extern int port;

/* The log to a file, a loop, the stand-in up. 0, or -1 (said on stderr: node, openssl needed). */
int fixture_begin(void);

/* The stand-in down, the log checked (the calls logged, no UserSig nor URL query in it, the
 * failures shown), the temporary files removed: test_done(name). */
int fixture_end(const char *name);

/* Runs the loop until *flag is set or 15 s have passed. */
void run_until(const int *flag);

/* Runs the loop for ms milliseconds. */
void run_for(long ms);

double mono_ms(void);

/* One outbound call's result, as ob_done keeps it. */
struct ob_wait {
    int done;
    enum outbound_rc rc;
    long status;
    char body[8192];
    size_t len;
    double ms;
    char error[OUTBOUND_ERR_MAX];
};

void ob_done(const struct outbound_result *r, void *arg);

/* A client trusting ca (NULL: the system store), checked. */
struct outbound *ob_make(const char *ca, int64_t timeout_ms, size_t max_response);

/* One POST of body to the stand-in's path through ob, waited for. */
void ob_post(struct outbound *ob, const char *path, const char *body, struct ob_wait *w);

/* The stand-in's test endpoint: queue replies for the next calls of a command. */
void inject(struct outbound *ob, uint32_t app, const char *cmd, const char *replies);

/* A timer callback counting in ticks. */
extern int ticks;
void on_tick(evutil_socket_t fd, short what, void *arg);

#endif
