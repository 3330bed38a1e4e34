/*
 * node_log.c - ember-node's one-line-per-event log on stderr.
 *
 * Each line is written with a single fprintf, which holds stderr's lock, so
 * lines from processes on different scheduler threads never interleave.
 */
#include "node_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static int level = LOG_INFO;
static char self[256] = "ember-node";

void node_log_init(int lvl, const char *node)
{
    level = lvl;
    if (node)
        snprintf(self, sizeof self, "%s", node);
}

int node_log_level(void) { return level; }

void node_log(int lvl, const char *fmt, ...)
{
    if (lvl > level)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    fprintf(stderr, "%02d:%02d:%02d.%03ld ember %s: %s\n", tm.tm_hour, tm.tm_min, tm.tm_sec,
            ts.tv_nsec / 1000000, self, line);
}
