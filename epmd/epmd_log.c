/*
 * epmd_log.c - one line per event, with a UTC timestamp, written with a single
 * write so that lines from a daemon and its tests never interleave mid-line.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "epmd_log.h"

int emi_epmd_log_level = 0;
static bool to_syslog;

void emi_epmd_log_use_syslog(void)
{
    openlog("ember-epmd", LOG_PID, LOG_DAEMON);
    to_syslog = true;
}

void emi_epmd_log(int level, const char *fmt, ...)
{
    if (level > emi_epmd_log_level)
        return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (to_syslog) {
        syslog(level == 0 ? LOG_NOTICE : LOG_DEBUG, "%s", msg);
        return;
    }
    char line[1200];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ ember-epmd: %s\n",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, msg);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line) {
        n = (int)sizeof line - 1;
        line[n - 1] = '\n';
    }
    /* A log line that cannot be written is dropped: the daemon must not stop
     * serving because stderr went away. */
    ssize_t w = write(STDERR_FILENO, line, (size_t)n);
    (void)w;
}

char *emi_epmd_escape(char *dst, size_t cap, const void *src, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = src;
    size_t o = 0;
    if (cap == 0)
        return dst;
    for (size_t i = 0; i < len; i++) {
        unsigned c = s[i];
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            if (o + 1 >= cap)
                break;
            dst[o++] = (char)c;
        } else {
            if (o + 4 >= cap)
                break;
            dst[o++] = '\\';
            dst[o++] = 'x';
            dst[o++] = hex[c >> 4];
            dst[o++] = hex[c & 15];
        }
    }
    dst[o] = '\0';
    return dst;
}
