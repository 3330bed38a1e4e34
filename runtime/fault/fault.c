/*
 * fault.c - a process that faults dies alone.
 *
 * SIGSEGV, SIGBUS, SIGFPE, SIGILL and SIGABRT are caught on an alternate signal
 * stack (a process that overflowed its stack has none left). When the thread is a
 * scheduler running a process, on that process's stack, and the faulting
 * instruction is not the runtime's own (code.c), the fault is the process's: the
 * handler records it and returns into emi_fault_tramp (arch/), placed at the top of
 * the process's stack, which ends the process with a reason that names the fault.
 * Returning from the handler, instead of jumping out of it, lets the kernel restore
 * the signal mask. Its links and monitors are told, its heap is freed, and every
 * other process goes on.
 *
 * Anything else -- a fault in the runtime's code, on a scheduler's own stack, on a
 * thread that is not a scheduler -- is not containable: the handler prints what it
 * knows and hands the signal to whatever handler was there before (a debugger's, a
 * sanitizer's, or the default, which stops the node).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>

#include "core/rt.h"

#define ALT_STACK_BYTES (64 * 1024)

static const int fault_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
#define NFAULT (int)(sizeof fault_signals / sizeof fault_signals[0])

static struct sigaction previous[NFAULT];
static int installed;
static _Thread_local void *alt_stack;

/* Set by emi_fatal: the runtime is aborting on purpose, not a process. */
static atomic_int runtime_aborting;

static int slot_of(int sig)
{
    for (int i = 0; i < NFAULT; i++)
        if (fault_signals[i] == sig)
            return i;
    return 0;
}

/* Async-signal-safe formatting: write(2) only. */
static size_t put_str(char *b, size_t at, size_t cap, const char *s)
{
    while (s && *s && at < cap)
        b[at++] = *s++;
    return at;
}

static size_t put_num(char *b, size_t at, size_t cap, uint64_t v, unsigned base)
{
    char d[24];
    int n = 0;
    do {
        d[n++] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    if (base == 16)
        at = put_str(b, at, cap, "0x");
    while (n && at < cap)
        b[at++] = d[--n];
    return at;
}

static const char *sig_name(int sig)
{
    switch (sig) {
    case SIGSEGV: return "SIGSEGV";
    case SIGBUS: return "SIGBUS";
    case SIGFPE: return "SIGFPE";
    case SIGILL: return "SIGILL";
    case SIGABRT: return "SIGABRT";
    default: return "signal";
    }
}

/* Not containable: say so, then let the previous handler (or the default) act. */
static void fatal(int sig, siginfo_t *si, uintptr_t pc, emi_proc *p, const char *where)
{
    char msg[320];
    size_t n = put_str(msg, 0, sizeof msg, "ember: ");
    n = put_str(msg, n, sizeof msg, sig_name(sig));
    if (sig != SIGABRT) {
        n = put_str(msg, n, sizeof msg, " at address ");
        n = put_num(msg, n, sizeof msg, (uintptr_t)si->si_addr, 16);
    }
    n = put_str(msg, n, sizeof msg, " (pc ");
    n = put_num(msg, n, sizeof msg, pc, 16);
    n = put_str(msg, n, sizeof msg, ") ");
    n = put_str(msg, n, sizeof msg, where);
    if (p) {
        n = put_str(msg, n, sizeof msg, " while process <0.");
        n = put_num(msg, n, sizeof msg, em_pid_index(p->pid), 10);
        n = put_str(msg, n, sizeof msg, ".");
        n = put_num(msg, n, sizeof msg, em_pid_serial(p->pid), 10);
        n = put_str(msg, n, sizeof msg, "> (");
        n = put_str(msg, n, sizeof msg, emi_entry_name(p->entry));
        n = put_str(msg, n, sizeof msg, ") ran");
    }
    n = put_str(msg, n, sizeof msg, ": the node stops\n");
    ssize_t w = write(2, msg, n);
    (void)w;
}

static void chain(int sig)
{
    /* Re-arm the previous disposition: returning re-executes the faulting
     * instruction under it. abort() would raise again only after resetting
     * SIGABRT to the default, past the previous handler (a sanitizer's, a
     * fuzzer's): raise it now, to be taken as this handler returns. */
    sigaction(sig, &previous[slot_of(sig)], NULL);
    if (sig == SIGABRT)
        raise(sig);
}

static void on_fault(int sig, siginfo_t *si, void *uctx)
{
    /* Sent with kill() or sigqueue() -- by an operator (kill -ABRT for a core)
     * or by any thread -- rather than raised by the faulting code or by its own
     * raise() or abort() (SI_TKILL from this process). */
    if (si->si_code <= 0 && !(si->si_code == SI_TKILL && si->si_pid == getpid())) {
        /* Not a fault of whatever runs here: do what the signal would have done
         * without us. It is blocked while we run, so it lands when we return. */
        char msg[96];
        size_t n = put_str(msg, 0, sizeof msg, "ember: ");
        n = put_str(msg, n, sizeof msg, sig_name(sig));
        n = put_str(msg, n, sizeof msg, " sent by process ");
        n = put_num(msg, n, sizeof msg, (uint64_t)si->si_pid, 10);
        n = put_str(msg, n, sizeof msg, "\n");
        ssize_t w = write(2, msg, n);
        (void)w;
        sigaction(sig, &previous[slot_of(sig)], NULL);
        raise(sig);
        return;
    }
    ucontext_t *uc = uctx;
    uintptr_t pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    uintptr_t sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
    emi_sched *s = emi_sched_self();
    if (!s) {
        chain(sig);   /* not a scheduler thread: not ours */
        return;
    }
    emi_proc *p = s->current;
    emi_xstack *x = p ? p->xs : NULL;
    if (atomic_load_explicit(&runtime_aborting, memory_order_relaxed)) {
        chain(sig);   /* emi_fatal already said why */
        return;
    }
    if (!p || !x) {
        fatal(sig, si, pc, NULL, "in a scheduler");
        chain(sig);
        return;
    }
    uintptr_t addr = (uintptr_t)si->si_addr;
    bool overflow = (sig == SIGSEGV || sig == SIGBUS) && addr >= (uintptr_t)x->map &&
                    addr < (uintptr_t)x->lo;
    bool on_stack = sp >= (uintptr_t)x->map && sp <= (uintptr_t)x->hi;
    if (!on_stack || (emi_code_in_runtime(pc) && !emi_code_in_preempt_tramp(pc))) {
        fatal(sig, si, pc, p, on_stack ? "in the runtime" : "off the process's stack");
        chain(sig);
        return;
    }
    s->fault_sig = sig;
    s->fault_addr = sig == SIGABRT ? 0 : addr;
    s->fault_pc = pc;
    s->fault_overflow = overflow;
    /* Enter the trampoline as if called, at the top of the process's own stack:
     * its frames are dead, and after an overflow there is no room anywhere else. */
    uintptr_t top = (((uintptr_t)x->hi - 256) & ~(uintptr_t)15) - 8;
    uc->uc_mcontext.gregs[REG_RSP] = (greg_t)top;
    uc->uc_mcontext.gregs[REG_RIP] = (greg_t)(uintptr_t)emi_fault_tramp;
}

void emi_fault_entry(void)
{
    emi_sched *s = emi_sched_self();
    emi_proc *p = s->current;
    char pid[48];
    em_format(em_pid(p->pid), pid, sizeof pid);
    em_term reason;
    if (s->fault_overflow) {
        fprintf(stderr, "ember: process %s (%s) overflowed its stack of %zu bytes and ends\n", pid,
                emi_entry_name(p->entry), (size_t)(p->xs->hi - p->xs->lo));
        reason = emi_atom_stack_overflow();
    } else {
        char lower[16];
        const char *name = sig_name(s->fault_sig);
        size_t i = 0;
        for (; name[i] && i + 1 < sizeof lower; i++)
            lower[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] + 32 : name[i]);
        lower[i] = 0;
        if (s->fault_sig == SIGABRT)
            fprintf(stderr, "ember: process %s (%s) aborted (pc %#lx) and ends\n", pid, emi_entry_name(p->entry),
                    (unsigned long)s->fault_pc);
        else
            fprintf(stderr, "ember: process %s (%s) crashed: %s at address %#lx (pc %#lx) and ends\n",
                    pid, emi_entry_name(p->entry), name, (unsigned long)s->fault_addr, (unsigned long)s->fault_pc);
        reason = EM_ARR(em_atom("fault"), em_atom(lower),
                        s->fault_sig == SIGABRT ? EM_NIL : em_uint(s->fault_addr));
        if (reason == EM_NONE)
            reason = em_atom("fault");   /* no memory for the details */
    }
    emi_proc_end(p, reason);
}

_Noreturn void emi_fatal(const char *what)
{
    atomic_store_explicit(&runtime_aborting, 1, memory_order_relaxed);
    fprintf(stderr, "ember: internal error: %s; the node stops\n", what);
    abort();
}

void emi_fault_install(void)
{
    if (installed++)
        return;
    emi_code_init();
    atomic_store_explicit(&runtime_aborting, 0, memory_order_relaxed);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < NFAULT; i++)
        sigaction(fault_signals[i], &sa, &previous[i]);
}

void emi_fault_uninstall(void)
{
    if (installed && --installed == 0)
        for (int i = 0; i < NFAULT; i++)
            sigaction(fault_signals[i], &previous[i], NULL);
}

void emi_fault_thread_init(void)
{
    stack_t ss;
    alt_stack = malloc(ALT_STACK_BYTES);
    if (!alt_stack)
        return; /* faults then stop the node, as without ember */
    ss.ss_sp = alt_stack;
    ss.ss_size = ALT_STACK_BYTES;
    ss.ss_flags = 0;
    if (sigaltstack(&ss, NULL) != 0) {
        free(alt_stack);
        alt_stack = NULL;
    }
}

void emi_fault_thread_fini(void)
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
