/*
 * node_log.h - ember-node's log: one line per event on stderr, in the form the
 * library's own lines take ("HH:MM:SS.mmm ember node@host: message", UTC), so
 * that the node's lines and the distribution layer's read as one log.
 */
#ifndef EMBER_NODE_LOG_H
#define EMBER_NODE_LOG_H

/* Levels, as em_dist_config.log_level: 0 quiet, then errors, events, debug. */
enum { LOG_ERROR = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* node_log_init sets the level and the name the lines carry (copied). */
void node_log_init(int level, const char *node);
int node_log_level(void);
void node_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif /* EMBER_NODE_LOG_H */
