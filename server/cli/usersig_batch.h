/*
 * usersig batch: the client for bulk-signing jobs against a usersigd server's batch endpoint;
 * usersig import: the same client for its bulk account import and check.
 * Part of the `usersig` executable; usersig_cli.c dispatches to it.
 */
#ifndef USERSIG_BATCH_H
#define USERSIG_BATCH_H

/* One line for `usersig --help`'s command list. */
#define USERSIG_BATCH_SUMMARY "sign many tokens on a usersigd server (stdin to stdout, streamed)"

/* Runs `usersig batch` with argv[0] == "batch". Returns the exit status: 0 every identifier
 * signed, 1 some failed (the lines are named on stderr), 2 usage, connection, HTTP or protocol
 * error. */
int usersig_batch_main(int argc, char **argv);

/* One line for `usersig --help`'s command list. */
#define USERSIG_IMPORT_SUMMARY                                                                     \
    "import accounts into Tencent Cloud Chat (or --check them) on a server"

/* Runs `usersig import` with argv[0] == "import": the same client at the accounts endpoints.
 * Returns 0 every account imported (or checked), 1 some failed (named on stderr), 2 usage,
 * connection, HTTP or protocol error. */
int usersig_import_main(int argc, char **argv);

#endif
