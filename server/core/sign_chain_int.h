/*
 * Inside the signing groups (sign.c): the chain's head as this process last wrote it
 * (sign_chain.c; the type and its statistics are in sign.h).
 */
#ifndef USERSIGD_SIGN_CHAIN_INT_H
#define USERSIGD_SIGN_CHAIN_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "audit.h"
#include "sign.h"
#include "store.h"

/* The head to chain a group on before holding the lock, into g (last_seq, last_mac,
 * last_at_us) with the group's time by the database's clock in g->now_us: false when this
 * process's last event is not known to be the last (c NULL: never). */
bool sign_chain_head(struct sign_chain *c, struct store_group *g);

/* After a group committed: last (NULL: it wrote no event) is the head. read: the group read the
 * head under the lock (two round trips; g holds what it read, offset_us the database's clock
 * minus this host's then), and the head is the process's own again only if that was its last
 * event. */
void sign_chain_wrote(struct sign_chain *c, const struct store_group *g, bool read,
                      int64_t offset_us, const struct audit_event *last);

/* The head is no longer known to be the process's own: a one-round-trip group met a change
 * (head_moved), or a group failed (whether it committed is not known). */
void sign_chain_lost(struct sign_chain *c, bool head_moved);

#endif
