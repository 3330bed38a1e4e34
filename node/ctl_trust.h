/*
 * ctl_trust.h - where ember-ctl's secret comes from: a cookie (flag, file,
 * environment, or ~/.ember/cookie) or a keyring directory.
 */
#ifndef EMBER_CTL_TRUST_H
#define EMBER_CTL_TRUST_H

#include "ctl.h"

/* ctl_trust_prepare settles o->cookie / o->cookie_file / o->keyring: --cookie,
 * else --cookie-file, else $EMBER_COOKIE, else ~/.ember/cookie (which must
 * exist: a fresh random cookie could never match a node's). It checks that the
 * files can be read, so that a missing one is a clear usage error rather than a
 * node that does not start. In keyring mode without --name it also finds this
 * tool's name: the one DIR/peers lists for DIR/key.pub, written to name (cap
 * bytes); name is left empty otherwise. Returns CTL_OK or CTL_USAGE (reported). */
int ctl_trust_prepare(ctl_opts *o, char *name, size_t cap);

/* ctl_trust_forget wipes our copy of a --cookie value once the node has taken
 * its keys from it. */
void ctl_trust_forget(ctl_opts *o);

#endif
