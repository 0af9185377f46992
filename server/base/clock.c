/*
 * The wall and monotonic clocks (clock.h). The bottom of the tree: it calls only the C library.
 */
#include "clock.h"

#include <time.h>

int64_t clock_realtime_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t clock_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t clock_monotonic_ms(void)
{
    return clock_monotonic_ns() / 1000000;
}

double clock_monotonic_msf(void)
{
    return (double)clock_monotonic_ns() / 1e6;
}
