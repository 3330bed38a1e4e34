/*
 * epmd_log.h - the daemon's log: one readable line per event on stderr (or in
 * syslog once the daemon has detached from its terminal).
 *
 * Level 0 lines are always written: registrations, unregistrations, refusals,
 * start and stop. Each -d on the command line lets one more level through:
 * level 1 is every request and every connection closed for bad input or
 * idleness, level 2 every connection opened and closed. A negative
 * emi_epmd_log_level silences everything (the fuzz target uses it).
 */
#ifndef EMBER_EPMD_LOG_H
#define EMBER_EPMD_LOG_H

#include <stddef.h>

extern int emi_epmd_log_level;

/* emi_epmd_log writes one line (printf format, no newline needed) if level is at
 * most emi_epmd_log_level. */
void emi_epmd_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* emi_epmd_log_use_syslog sends later lines to syslog instead of stderr. */
void emi_epmd_log_use_syslog(void);

/* emi_epmd_escape writes src (len bytes, untrusted) into dst as printable text:
 * bytes outside printable ASCII become \xHH, so a hostile name cannot forge log
 * lines. dst always ends with a NUL; the text is cut to fit cap. Returns dst. */
char *emi_epmd_escape(char *dst, size_t cap, const void *src, size_t len);

#endif
