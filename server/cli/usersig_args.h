/*
 * Strict checking of a subcommand's options, ahead of getopt_long: exact names only, no option
 * that takes a value given twice, and error messages that name an option but never repeat a
 * value (which may be a secret typed in the wrong place). Used by usersig_cli.c and
 * usersig_batch_main.c. Also the process's standard streams and interruptions, which both use.
 */
#ifndef USERSIG_ARGS_H
#define USERSIG_ARGS_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>

/* The longest option or command name an error message shows; longer ones end in "...". */
#define USERSIG_ARGS_MAX_NAME 40

/* Checks argv[1..argc-1] against opts (a getopt_long table ended by a zero entry, at most 64
 * options) and shorts (short options without values, e.g. "h"), before getopt_long parses them:
 *  - a long option is recognised only by its exact name, never by an abbreviation;
 *  - one that takes a value has one (inline "--opt=V" or the next argument), one that takes
 *    none has no "=V";
 *  - one that takes a value appears at most once (flags may repeat).
 * Stops at "--" or the first argument that is not an option, as getopt_long with optstring
 * "+..." does. Returns 0, or -1 with a one-line message in why (NUL-terminated, truncated to
 * why_size) that names the option and nothing else of argv. */
int usersig_args_check(int argc, char *const *argv, const struct option *opts, const char *shorts,
                       char *why, size_t why_size);

/* Copies into out (out_size > 0) the name part of an argument for a message: up to the first
 * '=', at most USERSIG_ARGS_MAX_NAME bytes (then "..."), bytes outside printable ASCII as \xHH.
 * Returns out. */
const char *usersig_args_name(const char *arg, char *out, size_t out_size);

/* ---- the process ---- */

#define USERSIG_STDIN_CLOSED 1
#define USERSIG_STDOUT_CLOSED 2
#define USERSIG_STDERR_CLOSED 4

/* Opens /dev/null on each of fds 0, 1 and 2 that is closed, so that no later descriptor (a file,
 * libcurl's socket pair) takes its number and receives what is meant for it. Returns the
 * USERSIG_*_CLOSED bits of those that were closed, or -1 when one could not be filled. */
int usersig_std_fds(void);

/* For a command about to read stdin: true, with a message naming what it reads (what), when
 * stdin was closed at the start (usersig_std_fds filled it with /dev/null): an empty input would
 * pass for success. */
bool usersig_stdin_refused(const char *what);

/* SIGINT, SIGTERM and SIGHUP set a flag instead of ending the process (without SA_RESTART, so a
 * blocked read returns EINTR): the loops check usersig_interrupted() and stop after a whole
 * line, saying where to resume. */
void usersig_catch_interrupts(void);
/* The signal caught, or 0. */
int usersig_interrupted(void);

#endif
