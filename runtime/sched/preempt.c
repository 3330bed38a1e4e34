/*
 * preempt.c - a process that runs C code for longer than its time slice is
 * interrupted, so that a loop that never calls ember cannot keep a core.
 *
 * Reductions make every process that calls the runtime yield on its own; this is
 * for the ones that do not. A monitor thread looks at each scheduler every half
 * slice: a scheduler whose run_epoch (bumped each time a process takes the core)
 * has not moved for two looks has run one process for between one and one and a
 * half slices, and is sent SIGURG (as Go does). The handler, on the scheduler's
 * own thread, interrupts the process only at a safe point: the interrupted
 * instruction must be the program's own code (fault/code.c), never libc, another
 * library or the runtime, any of which may hold a lock or be halfway through an
 * update. Otherwise the process goes on and the monitor asks again later, less
 * and less often (a process blocked in a system call sees EINTR for every ask).
 *
 * To interrupt, the handler makes the process "call" emi_preempt_tramp (arch/),
 * which saves every register and yields; the process is queued on this same
 * scheduler (its code may hold addresses of this thread's thread-locals, errno
 * among them) and later resumes exactly where it was.
 *
 * An exit signal to a running process asks for the same interruption at once, so
 * that em_exit_pid(pid, kill) ends a spinning process in microseconds.
 */
#include <cpuid.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>

#include "core/rt.h"

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

#define PREEMPT_SIGNAL SIGURG
#define XSAVE_MAX (16 * 1024)
#define TRAMP_ROOM (EMI_STACK_RESERVE + 4096)   /* the trampoline, a switch, and the
                                                   reserve emi_current checks */

uint32_t emi_xsave_size;           /* read by emi_preempt_tramp */
uint64_t emi_xsave_mask;           /* the state components it saves (EDX:EAX) */
static struct sigaction previous;
static bool handler_installed;

/* Which state components to save, and the room they need: everything the OS
 * enabled (XCR0) except AMX tiles (bits 17-18), which ember processes do not use,
 * which are large, and whose restore can trap where the kernel arms them lazily. */
static bool xsave_init(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE))
        return false;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    uint64_t mask = ((uint64_t)hi << 32 | lo) & ~((1ull << 17) | (1ull << 18));
    uint32_t size = 576;            /* legacy area and header */
    for (unsigned i = 2; i < 63; i++) {
        if (!(mask & (1ull << i)) || !__get_cpuid_count(0xD, i, &a, &b, &c, &d))
            continue;
        if (b + a > size)
            size = b + a;           /* offset + size of component i */
    }
    if (size > XSAVE_MAX)
        return false;
    emi_xsave_mask = mask;
    emi_xsave_size = size + 64;     /* room to align the area to 64 bytes */
    return true;
}

static void on_preempt(int sig, siginfo_t *si, void *uctx)
{
    (void)sig, (void)si;
    int saved_errno = errno;
    ucontext_t *uc = uctx;
    emi_sched *s = emi_sched_self();
    emi_proc *p = s ? s->current : NULL;
    if (!p || !p->xs)
        goto out;
    /* Relaxed: both words are this thread's or only compared; a stale ask is
     * harmless (the process yields once more than it had to). */
    uint64_t want = atomic_load_explicit(&s->preempt_req, memory_order_relaxed);
    if (want == 0 || want != atomic_load_explicit(&s->run_epoch, memory_order_relaxed))
        goto out;
    uintptr_t pc = (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
    uintptr_t sp = (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
    if (!emi_code_in_program(pc))
        goto out;   /* not a safe point: libc, another library, or the runtime */
    if (sp > (uintptr_t)p->xs->hi || sp < (uintptr_t)p->xs->lo + TRAMP_ROOM + emi_xsave_size)
        goto out;   /* not on its stack, or too close to its end to save state */
    atomic_store_explicit(&s->preempt_req, 0, memory_order_relaxed);
    uintptr_t nsp = sp - 128 - 8;
    *(uintptr_t *)nsp = pc;
    uc->uc_mcontext.gregs[REG_RSP] = (greg_t)nsp;
    uc->uc_mcontext.gregs[REG_RIP] = (greg_t)(uintptr_t)emi_preempt_tramp;
out:
    errno = saved_errno;
}

void emi_preempt_entry(void)
{
    emi_proc *p = emi_current();
    emi_stat_add(&p->sched->stat_preempted, 1);
    /* An exit signal (a kill, most likely) is what asked: act on it first. */
    emi_signals_check(p);
    emi_switch_out(p, WHY_PREEMPT);
}

void emi_preempt_request(emi_proc *p)
{
    emi_rt *rt = emi_rt_g;
    if (!rt->monitor_running)
        return;
    /* Relaxed reads throughout: if p has moved on meanwhile, the epoch no longer
     * matches and the signal is ignored, or p sees its signal at its next switch. */
    int status = atomic_load_explicit(&p->status, memory_order_relaxed);
    bool pinned = emi_proc_flag(p, EMI_PF_PINNED);
    if (status != EM_RUNNING && !(status == EM_RUNNABLE && pinned))
        return;
    int id = atomic_load_explicit(&p->sched_id, memory_order_relaxed);
    emi_sched *s = rt->scheds[id];
    if (pinned)
        /* Release: the signal we pushed is visible to the owner that sees this. */
        atomic_store_explicit(&s->pinned_kick, 1, memory_order_release);
    if (s == emi_sched_self())
        return;   /* our own scheduler: it looks at the kick when we switch */
    /* Interrupt whatever runs there (p, or the spinner ahead of p). */
    if (!atomic_load_explicit(&s->in_proc, memory_order_relaxed))
        return;
    uint64_t e = atomic_load_explicit(&s->run_epoch, memory_order_relaxed);
    atomic_store_explicit(&s->preempt_req, e, memory_order_relaxed);
    pthread_kill(s->thread, PREEMPT_SIGNAL);
}

/* What the monitor remembers of each scheduler. */
typedef struct watch {
    uint64_t epoch;
    uint32_t looks;     /* consecutive looks at the same epoch */
} watch;

static void nap(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000u), .tv_nsec = (long)(ns % 1000000000u)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static void *monitor_main(void *arg)
{
    emi_rt *rt = arg;
    uint64_t half = (uint64_t)rt->cfg.time_slice_us * 500u;
    watch w[EMI_MAX_SCHEDULERS];
    memset(w, 0, sizeof w);
    /* The monitor never runs processes: keep the preemption signal off it. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, PREEMPT_SIGNAL);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    /* Relaxed: a late stop only costs one more half slice. */
    while (!atomic_load_explicit(&rt->monitor_stop, memory_order_relaxed)) {
        /* Relaxed: a hint; all asleep means nothing to watch for a while. */
        bool idle = atomic_load_explicit(&rt->n_sleeping, memory_order_relaxed) == (unsigned)rt->nsched;
        nap(idle ? 20 * half : half);
        for (int i = 0; i < rt->nsched; i++) {
            emi_sched *s = rt->scheds[i];
            /* Relaxed: samples; the handler checks the epoch again itself. */
            uint64_t e = atomic_load_explicit(&s->run_epoch, memory_order_relaxed);
            if (!atomic_load_explicit(&s->in_proc, memory_order_relaxed) || e != w[i].epoch) {
                w[i].epoch = e;
                w[i].looks = 0;
                continue;
            }
            uint32_t k = ++w[i].looks;
            /* Ask at the 2nd look, then at 4, 8, ... and every 64th: a process
             * that keeps declining is in a library or a system call. */
            if (k >= 2 && ((k & (k - 1)) == 0 || k % 64 == 0)) {
                atomic_store_explicit(&s->preempt_req, e, memory_order_relaxed);
                pthread_kill(s->thread, PREEMPT_SIGNAL);
            }
        }
    }
    return NULL;
}

int emi_preempt_start(emi_rt *rt)
{
    /* Under valgrind, whose threads take turns anyway, writing the trampoline's
     * frame below an interrupted stack pointer reads as a memory error. */
    if (rt->cfg.time_slice_us == 0 || RUNNING_ON_VALGRIND)
        return 0;
#if defined(__SANITIZE_THREAD__)
    /* ThreadSanitizer runs handlers of asynchronous signals late, with the
     * context of when the signal came: editing it would hit a stack that has
     * moved on. */
    return 0;
#endif
    if (!xsave_init()) {
        fprintf(stderr, "ember: this CPU has no usable XSAVE; preemption of C loops is off\n");
        return 0;
    }
    emi_code_init();
    if (!handler_installed) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_preempt;
        /* On the alternate stack: the process's may be nearly full. SA_RESTART:
         * most system calls a process makes resume by themselves. */
        sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_RESTART;
        sigemptyset(&sa.sa_mask);
        if (sigaction(PREEMPT_SIGNAL, &sa, &previous) != 0)
            return 0;
        handler_installed = true;
    }
    atomic_store_explicit(&rt->monitor_stop, 0, memory_order_relaxed);
    if (pthread_create(&rt->monitor, NULL, monitor_main, rt) != 0)
        return 0;   /* the node runs, without preemption of C loops */
    rt->monitor_running = true;
    return 0;
}

void emi_preempt_stop(emi_rt *rt)
{
    if (rt->monitor_running) {
        atomic_store_explicit(&rt->monitor_stop, 1, memory_order_relaxed);
        pthread_join(rt->monitor, NULL);
        rt->monitor_running = false;
    }
    if (handler_installed) {
        sigaction(PREEMPT_SIGNAL, &previous, NULL);
        handler_installed = false;
    }
}
