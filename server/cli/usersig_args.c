/*
 * Strict option checking for the usersig subcommands. getopt_long takes any unambiguous prefix
 * of a long option ("--key" for "--key-file") and keeps the last of a repeated one; both turn a
 * typo into a silently different command, and its error paths point at argv entries that may be
 * values. This pass runs first and refuses those cases, naming only the option.
 */
#include "usersig_args.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define MAX_OPTS 64

const char *usersig_args_name(const char *arg, char *out, size_t out_size)
{
    size_t o = 0, shown = 0;
    const char *p = arg;

    for (; *p != '\0' && *p != '=' && shown < USERSIG_ARGS_MAX_NAME; p++, shown++) {
        unsigned char c = (unsigned char)*p;
        if (c >= 0x21 && c <= 0x7e && c != '\\') {
            if (o + 1 >= out_size)
                break;
            out[o++] = (char)c;
        } else {
            if (o + 4 >= out_size)
                break;
            snprintf(out + o, out_size - o, "\\x%02x", c);
            o += 4;
        }
    }
    if (*p != '\0' && *p != '=' && o + 3 < out_size) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}

int usersig_args_check(int argc, char *const *argv, const struct option *opts, const char *shorts,
                       char *why, size_t why_size)
{
    char name[USERSIG_ARGS_MAX_NAME * 4 + 8];
    uint64_t seen = 0;
    size_t nopts = 0;

    while (opts[nopts].name != NULL)
        nopts++;
    if (nopts > MAX_OPTS) {
        snprintf(why, why_size, "internal error: too many options");
        return -1;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || a[1] == '\0')
            return 0; /* the first operand ("-" is stdin): options end here */
        if (strcmp(a, "--") == 0)
            return 0;
        if (a[1] != '-') { /* a cluster of short flags, as "-h" */
            for (const char *c = a + 1; *c != '\0'; c++) {
                unsigned char u = (unsigned char)*c;
                if (strchr(shorts, *c) == NULL) { /* the rest may be a value: name this one */
                    if (u >= 0x21 && u <= 0x7e && u != '\\')
                        snprintf(why, why_size, "unknown option -%c", *c);
                    else
                        snprintf(why, why_size, "unknown option -\\x%02x", u);
                    return -1;
                }
            }
            continue;
        }
        const char *n = a + 2, *eq = strchr(n, '=');
        size_t len = eq != NULL ? (size_t)(eq - n) : strlen(n);
        size_t k = 0;
        while (k < nopts && !(strlen(opts[k].name) == len && memcmp(opts[k].name, n, len) == 0))
            k++;
        if (k == nopts) {
            snprintf(why, why_size, "unknown option %s", usersig_args_name(a, name, sizeof name));
            return -1;
        }
        if (opts[k].has_arg == no_argument) {
            if (eq != NULL) {
                snprintf(why, why_size, "option --%s takes no value", opts[k].name);
                return -1;
            }
            continue;
        }
        if (opts[k].has_arg == required_argument && eq == NULL) {
            if (i + 1 >= argc) {
                snprintf(why, why_size, "option --%s needs a value", opts[k].name);
                return -1;
            }
            i++; /* its value, whatever it looks like, as getopt_long takes it */
        }
        if (seen & ((uint64_t)1 << k)) {
            snprintf(why, why_size, "option --%s is given twice (it takes one value)",
                     opts[k].name);
            return -1;
        }
        seen |= (uint64_t)1 << k;
    }
    return 0;
}

/* ---- the process --------------------------------------------------------------------------- */

static int std_closed; /* what usersig_std_fds found closed */

int usersig_std_fds(void)
{
    int closed = 0;
    for (int fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) != -1 || errno != EBADF)
            continue;
        int k = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
        if (k != fd) { /* the lowest free number: fd itself, unless something is wrong */
            if (k >= 0)
                close(k);
            return -1;
        }
        closed |= 1 << fd;
    }
    std_closed = closed;
    return closed;
}

bool usersig_stdin_refused(const char *what)
{
    if (!(std_closed & USERSIG_STDIN_CLOSED))
        return false;
    fprintf(stderr,
            "usersig: standard input is closed: give the %s on a pipe or from a file "
            "(< FILE)\n",
            what);
    return true;
}

static volatile sig_atomic_t caught;

static void on_signal(int sig)
{
    caught = sig;
}

void usersig_catch_interrupts(void)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP};
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: a blocked read returns EINTR */
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        (void)sigaction(sigs[i], &sa, NULL);
}

int usersig_interrupted(void)
{
    return (int)caught;
}
