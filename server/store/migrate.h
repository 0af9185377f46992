/*
 * Schema migrations: migrations/NNNN_name.sql, forward-only, applied in number order, each in
 * one transaction together with its schema_migrations row, serialized across processes by an
 * advisory lock (a second migrator waits, then finds nothing to do).
 */
#ifndef MIGRATE_H
#define MIGRATE_H

#include "store.h"

#include <stdbool.h>

#define MIGRATE_WUR __attribute__((warn_unused_result))

#define MIGRATE_MAX_FILES 1000
#define MIGRATE_MAX_FILE_BYTES (1024 * 1024)
#define MIGRATE_MAX_NAME 64 /* bytes of the name part of NNNN_name.sql */

enum migrate_rc {
    MIGRATE_OK = 0,
    MIGRATE_BAD_DIR, /* the folder cannot be read, or a *.sql file in it is not NNNN_name.sql
                      * (lower case, digits, '_'), is too large, holds a NUL, or shares its
                      * number with another */
    MIGRATE_FAILED,  /* a migration's SQL failed: it was rolled back, the ones before it stay */
    MIGRATE_ERROR,   /* the store failed (logged) */
};

/* Applies every migration of dir not yet recorded, in number order. *applied (may be NULL)
 * receives how many this call applied (0 when the schema was current). Call with no
 * transaction open. Each failure is logged with the file's name. */
enum migrate_rc migrate_apply(struct store *st, const char *dir, int *applied) MIGRATE_WUR;

struct migrate_status {
    bool current;       /* nothing pending and nothing unknown: serve may run */
    int pending;        /* files of dir not applied */
    int unknown;        /* versions applied that dir has no file for (a newer usersigd's) */
    int latest_file;    /* the highest number in dir (0 when none) */
    int latest_applied; /* the highest number recorded (0 when none) */
};

/* Compares dir with what the database records; changes nothing. When !current the caller says
 * "run usersigd migrate" (pending) or that the database is newer than this binary (unknown). */
enum migrate_rc migrate_status(struct store *st, const char *dir,
                               struct migrate_status *out) MIGRATE_WUR;

#endif
