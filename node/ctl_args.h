/*
 * ctl_args.h - ember-ctl's command line: flags, commands, and the help text.
 */
#ifndef EMBER_CTL_ARGS_H
#define EMBER_CTL_ARGS_H

#include "ctl.h"

/* ctl_parse_args fills o from argv. It copies a --cookie value and then wipes
 * it in argv, so that it does not show in ps. Returns CTL_OK, or CTL_USAGE after
 * reporting what is wrong. o->help set means: print the help and exit 0. */
int ctl_parse_args(int argc, char **argv, ctl_opts *o);

/* ctl_print_help writes the --help text to stdout. */
void ctl_print_help(void);

/* Whether a command talks to a node (all but epmd-names). */
bool ctl_command_needs_node(const char *command);

#endif
