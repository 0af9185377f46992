/*
 * Settings: reading and writing their values (sizes, durations, integers, host:port), for
 * config.c. Internal to server/base.
 */
#ifndef USERSIGD_CONFIG_INT_H
#define USERSIGD_CONFIG_INT_H

#include <stddef.h>
#include <stdint.h>

#define KB INT64_C(1024)
#define MB (1024 * KB)
#define GB (1024 * MB)
#define SEC INT64_C(1000)
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)

/* A decimal int64 (an optional '-', digits); -1 on anything else or overflow. */
int config_parse_int(const char *s, int64_t *out);
/* host:port, [v6]:port; -1 when malformed. */
int config_parse_address(const char *s, char *host, size_t host_cap, uint16_t *port);
/* A size in the largest unit that divides it (k, M, G), a duration in ms, s, m, h or d. */
void config_format_size(int64_t v, char *out, size_t cap);
void config_format_duration(int64_t ms, char *out, size_t cap);

#endif
