/*
 * Internals of the signing pipeline, shared by its files and included by nothing else:
 * pipeline.c (the pool, the jobs, the workers' loop) and pipeline_items.c (a block's items: how
 * the owner fills them, how a worker reads each one and writes its output line).
 */
#ifndef PIPELINE_INT_H
#define PIPELINE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pipeline.h"
#include "usersig.h"

#define PIPELINE_MSG_BUF 320 /* an error line's message */
/* The most one output line takes: the JSON punctuation, an identifier of PIPELINE_ECHO_MAX
 * bytes escaped (6 bytes each at worst), a token, a message escaped. */
#define PIPELINE_OUT_LINE_MAX                                                                      \
    (128 + 6 * PIPELINE_ECHO_MAX + USERSIG_TOKEN_BUF + 6 * PIPELINE_MSG_BUF)

struct item {
    uint32_t off, len; /* in items.buf */
    bool too_long;
    /* refused in place by the owner (pipeline_items_refuse): "code\0message\0" at ref_off in
     * items.buf, ref_len bytes; 0: not refused */
    uint32_t ref_off, ref_len;
};

struct pipeline_items {
    char *buf;
    size_t len, cap;
    struct item *v;
    size_t n;
    bool open;      /* between begin and end */
    bool oom;       /* an append failed: the block is unusable */
    size_t dropped; /* bytes of the open item past PIPELINE_ITEM_MAX */
};

/* Grows *buf (realloc) to at least need bytes, doubling from 4096. 0, or -1 when out of memory
 * (*buf and *cap unchanged). */
int pipeline_grow(char **buf, size_t *cap, size_t need);

/* Writes the output line of one item (s, n bytes, as the owner gave it; too_long when bytes past
 * PIPELINE_ITEM_MAX were dropped) at line, which has PIPELINE_OUT_LINE_MAX bytes of room: the
 * item signed with signer at time now, or its error line. idbuf is PIPELINE_ITEM_MAX bytes of
 * scratch. Returns the end of the line, *failed telling an error line; NULL when the codec failed
 * where it should not (the block fails). Worker threads: touches only its arguments. */
char *pipeline_item_line(const struct pipeline_job_config *cfg, struct usersig_signer *signer,
                         int64_t now, const char *s, size_t n, bool too_long, char *idbuf,
                         char *line, bool *failed);

/* Why a line failed, as far as the counts of a job care. */
enum pipeline_refusal {
    PIPELINE_REFUSED_NONE = 0,
    PIPELINE_REFUSED_ADMIN,  /* admin_identifier; *admin_index is which of rules.admin_ids */
    PIPELINE_REFUSED_PREFIX, /* identifier_prefix */
};
/* pipeline_item_line, also telling a refusal of the rules (cfg->rules). */
char *pipeline_item_line_why(const struct pipeline_job_config *cfg, struct usersig_signer *signer,
                             int64_t now, const char *s, size_t n, bool too_long, char *idbuf,
                             char *line, bool *failed, enum pipeline_refusal *why,
                             size_t *admin_index);

/* The error line of an item with code and message (at most PIPELINE_MSG_BUF - 1 bytes of it),
 * written at line as pipeline_item_line would write an error line; returns its end: an item
 * past cfg->max_items (batch_quota), or one the owner refused. Worker threads. */
char *pipeline_item_error_line(const struct pipeline_job_config *cfg, const char *s, size_t n,
                               bool too_long, char *idbuf, char *line, const char *code,
                               const char *msg);

#endif
