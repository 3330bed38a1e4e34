/*
 * ctl_cmds.h - ember-ctl's commands that talk to a node's ember_ctl service.
 */
#ifndef EMBER_CTL_CMDS_H
#define EMBER_CTL_CMDS_H

#include "ctl.h"

/* ctl_run_command runs o->command against n, to which we are connected, and
 * prints the result. Returns the exit code. Process only. */
int ctl_run_command(const ctl_opts *o, ctl_node *n);

#endif
