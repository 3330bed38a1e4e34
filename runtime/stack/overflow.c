/*
 * overflow.c - say which process ran off its stack before the node dies.
 *
 * A process that overflows faults on the guard page below its execution stack.
 * Until fault isolation turns that into the death of the one process, the node
 * stops; this handler makes it stop with a line that names the process, instead of
 * a bare segmentation fault. It runs on an alternate signal stack (the faulting
 * stack has no room left), writes with write(2) only, then restores the default
 * action so that returning re-executes the fault and the node dies of SIGSEGV as
 * before. Faults that are not a guard-page hit go to whatever handler was there
 * before us (a debugger's, a sanitizer's).
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/rt.h"

#ifndef EMBER_SEPARATE_STACKS

#define ALT_STACK_BYTES (64 * 1024)

static struct sigaction previous;
static int installed;
static _Thread_local void *alt_stack;

static size_t put_str(char *b, size_t at, size_t cap, const char *s)
{
    while (*s && at < cap)
        b[at++] = *s++;
    return at;
}

static size_t put_uint(char *b, size_t at, size_t cap, uint64_t v)
{
    char d[24];
    int n = 0;
    do {
        d[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n && at < cap)
        b[at++] = d[--n];
    return at;
}

static void on_fault(int sig, siginfo_t *si, void *uctx)
{
    (void)uctx;
    emi_sched *s = emi_sched_self();
    emi_proc *p = s ? s->current : NULL;
    unsigned char *addr = si->si_addr;
    if (p && p->xs && p->xs->map && addr >= p->xs->map && addr < p->xs->lo) {
        char msg[256];
        size_t n = put_str(msg, 0, sizeof msg, "ember: process <0.");
        n = put_uint(msg, n, sizeof msg, em_pid_index(p->pid));
        n = put_str(msg, n, sizeof msg, ".");
        n = put_uint(msg, n, sizeof msg, em_pid_serial(p->pid));
        n = put_str(msg, n, sizeof msg, "> (");
        n = put_str(msg, n, sizeof msg, p->entry);
        n = put_str(msg, n, sizeof msg, ") overflowed its stack of ");
        n = put_uint(msg, n, sizeof msg, (uint64_t)(p->xs->hi - p->xs->lo));
        n = put_str(msg, n, sizeof msg, " bytes; the node stops\n");
        ssize_t w = write(2, msg, n);
        (void)w;
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        sigaction(sig, &dfl, NULL);
        return;
    }
    /* Not ours: hand the fault to the previous handler by re-raising under it. */
    sigaction(sig, &previous, NULL);
}

void emi_overflow_install(void)
{
    if (installed++)
        return;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &previous);
}

void emi_overflow_uninstall(void)
{
    if (installed && --installed == 0)
        sigaction(SIGSEGV, &previous, NULL);
}

void emi_overflow_thread_init(void)
{
    stack_t ss;
    alt_stack = malloc(ALT_STACK_BYTES);
    if (!alt_stack)
        return; /* no message on overflow: the fault still stops the node */
    ss.ss_sp = alt_stack;
    ss.ss_size = ALT_STACK_BYTES;
    ss.ss_flags = 0;
    if (sigaltstack(&ss, NULL) != 0) {
        free(alt_stack);
        alt_stack = NULL;
    }
}

void emi_overflow_thread_fini(void)
{
    if (!alt_stack)
        return;
    stack_t ss;
    memset(&ss, 0, sizeof ss);
    ss.ss_flags = SS_DISABLE;
    sigaltstack(&ss, NULL);
    free(alt_stack);
    alt_stack = NULL;
}

#else /* sanitizer builds: their own handlers report faults */

void emi_overflow_install(void) {}
void emi_overflow_uninstall(void) {}
void emi_overflow_thread_init(void) {}
void emi_overflow_thread_fini(void) {}

#endif
