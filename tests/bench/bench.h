/*
 * bench.h - the workloads of ember-bench that live in files of their own.
 */
#ifndef EMBER_BENCH_H
#define EMBER_BENCH_H

/* bench_dist_run runs "dist" or "distbulk" with n messages (bench_dist.c): two
 * node processes on loopback, each with busy_wait_us (em_dist_config; negative:
 * the default). Returns the exit status. */
int bench_dist_run(const char *name, long n, int scheds, int busy_wait_us);

#endif
