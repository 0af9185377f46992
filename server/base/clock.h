/*
 * The daemon's two clocks, read one way everywhere: the wall clock (for timestamps that are stored,
 * compared with the database's or shown to people) and the monotonic clock (for intervals,
 * deadlines and rates, which a wall-clock step must not bend). Pure; no allocation.
 */
#ifndef CLOCK_H
#define CLOCK_H

#include <stdint.h>

/* Microseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t clock_realtime_us(void);

/* Nanoseconds, and milliseconds, on CLOCK_MONOTONIC: meaningful only as differences. */
int64_t clock_monotonic_ns(void);
int64_t clock_monotonic_ms(void);
/* Milliseconds on CLOCK_MONOTONIC with their fraction (durations shown in ms, token buckets). */
double clock_monotonic_msf(void);

#endif
