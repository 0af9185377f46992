/*
 * Strict checking of a subcommand's options, ahead of getopt_long: exact names only, no option
 * that takes a value given twice, and error messages that name an option but never repeat a
 * value (which may be a secret typed in the wrong place). Used by usersig_cli.c and
 * usersig_batch_main.c.
 */
#ifndef USERSIG_ARGS_H
#define USERSIG_ARGS_H

#include <getopt.h>
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

#endif
