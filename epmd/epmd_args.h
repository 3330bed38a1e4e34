/*
 * epmd_args.h - ember-epmd's command line: Erlang epmd's flags (-daemon,
 * -names, -kill, -stop, -port, -address, -relaxed_command_check, -d/-debug,
 * -packet_timeout), ember's -max_names, and the environment variables that
 * Erlang's epmd reads (ERL_EPMD_PORT, ERL_EPMD_ADDRESS,
 * ERL_EPMD_RELAXED_COMMAND_CHECK).
 */
#ifndef EMBER_EPMD_ARGS_H
#define EMBER_EPMD_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum emi_epmd_mode { EMI_EPMD_SERVE, EMI_EPMD_NAMES, EMI_EPMD_KILL, EMI_EPMD_STOP, EMI_EPMD_HELP };

typedef struct emi_epmd_args {
    enum emi_epmd_mode mode;
    uint16_t port;
    const char *addresses; /* NULL: every address */
    bool relaxed;
    bool daemon;
    int debug;
    int packet_timeout_s;
    size_t max_names;
    const char *stop_name;
} emi_epmd_args;

/* The text --help prints; docs/epmd.md carries the same text. */
extern const char emi_epmd_help[];

/* emi_epmd_parse_args reads argv (and the environment) into *a. Returns 0, or
 * -EINVAL with a one-line reason in err. */
int emi_epmd_parse_args(int argc, char **argv, emi_epmd_args *a, char *err, size_t errcap);

#endif
