/*
 * ctl_epmd.h - ember-ctl epmd-names: what a port mapper has registered.
 */
#ifndef EMBER_CTL_EPMD_H
#define EMBER_CTL_EPMD_H

#include "ctl.h"

/* ctl_epmd_names lists the names registered with the port mapper of HOST
 * (o->args[0], default 127.0.0.1). No runtime needed. Returns the exit code. */
int ctl_epmd_names(const ctl_opts *o);

#endif
