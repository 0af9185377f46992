/*
 * usersig batch: the client for bulk-signing jobs against a usersigd server's batch endpoint.
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

#endif
