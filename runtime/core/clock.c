/*
 * clock.c - the monotonic clock every timer and statistic uses.
 */
#include <time.h>

#include "core/rt.h"

uint64_t emi_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int64_t em_now_ms(void) { return (int64_t)(emi_now_ns() / 1000000u); }
