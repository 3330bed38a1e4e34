/*
 * ctl_argterm.h - terms from ember-ctl's command line: pids as the node prints
 * them, process names, and TERM arguments in ember's text form.
 */
#ifndef EMBER_CTL_ARGTERM_H
#define EMBER_CTL_ARGTERM_H

#include "ctl.h"

/* ctl_arg_process reads a process given as "<0.I.S>", "<I.S>" (a pid of the
 * node whose index in our table is home) or a registered name (an atom, quoted
 * as 'Name' if need be). CTL_OK with *out set, or CTL_USAGE (reported; what
 * names the argument in the message). Process only. */
int ctl_arg_process(const char *text, uint32_t home, const char *what, em_term *out);

/* ctl_arg_term parses TERM text with em_parse, and turns every pid <0.I.S> in
 * it into the same pid of the node home: the operator writes the pids the node
 * prints. CTL_OK or CTL_USAGE (reported). Process only. */
int ctl_arg_term(const char *text, uint32_t home, const char *what, em_term *out);

#endif
