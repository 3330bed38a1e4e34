/*
 * solo.c - mailboxes without locked instructions while one scheduler is awake.
 *
 * A mailbox word (emi_proc.inbox) can be written by any thread, so every send
 * and every park is a compare-and-swap: a locked instruction, about 6 ns here,
 * two of them on each hop of a ring or leg of a ping-pong. While every other
 * scheduler sleeps and no other thread is inside a mailbox operation, the one
 * awake scheduler is the only thread that can touch any mailbox, and plain
 * loads and stores do the same job. That is "solo" mode: rt->solo holds 1 + the
 * id of that scheduler, or 0.
 *
 * Entering (solo_try, in the owner's loop): set rt->solo, then check that the
 * other schedulers still sleep and that no thread outside the schedulers is in
 * a mailbox operation. Those threads announce themselves in rt->outside_ops
 * before they read rt->solo, and a scheduler leaves the sleeping count before
 * it reads it: seq_cst on both sides, so one side always sees the other.
 *
 * Leaving is done by whoever needs a mailbox: a scheduler that woke up, the
 * distribution thread, or the owner itself before it sleeps. Another thread
 * marks rt->solo as being revoked (EMI_SOLO_REVOKING), waits until the owner is
 * outside any mailbox operation it began in plain mode, and only then stores
 * 0; a third thread that finds the mark waits for that 0, since until then
 * its atomics could race with the owner's plain operation. The owner marks each operation in its
 * in_op flag with a plain store and then reads rt->solo, with no fence in
 * between (a fence would cost what the locked instruction did); the revoker
 * supplies the fence instead, on the owner's CPU, with membarrier(2): after
 * it returns, either the owner's next read of rt->solo sees 0, or its in_op
 * store is visible and the revoker waits for the matching release. Revoking
 * costs a few microseconds, so the owner enters the mode only after the others
 * have slept for SOLO_AFTER_TURNS turns of its loop, and never while
 * distribution runs (its thread delivers every message that comes in).
 */
#include <linux/membarrier.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/rt.h"

#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#else
#define RUNNING_ON_VALGRIND 0
#endif

/* Turns of the loop with every other scheduler asleep before entering. */
#define SOLO_AFTER_TURNS 64

static int membarrier(int cmd) { return (int)syscall(__NR_membarrier, cmd, 0, 0); }

/* A wait's i-th turn: a pause, then the core given up, as the thread waited
 * for may be off its CPU. */
static void pause_or_yield(unsigned i)
{
    if (i < 256)
        emi_cpu_relax();
    else
        sched_yield();
}

unsigned emi_solo_linger;

void emi_solo_linger_now(void)
{
    for (unsigned i = 0; i < emi_solo_linger; i++)
        emi_cpu_relax();
}

void emi_solo_init(emi_rt *rt)
{
    atomic_store_explicit(&rt->solo, 0, memory_order_relaxed);
    atomic_store_explicit(&rt->outside_ops, 0, memory_order_relaxed);
    atomic_store_explicit(&rt->solo_entries, 0, memory_order_relaxed);
    atomic_store_explicit(&rt->solo_revokes, 0, memory_order_relaxed);
    rt->solo_ok = false;
    const char *linger = getenv("EMBER_SOLO_LINGER");
    emi_solo_linger = linger ? (unsigned)strtoul(linger, NULL, 10) : 0;
    /* valgrind runs one thread at a time and does not know membarrier; the
     * environment variable is for measuring with and without. */
    const char *off = getenv("EMBER_NO_SOLO");
    if (RUNNING_ON_VALGRIND || (off && *off && *off != '0'))
        return;
    int cmds = membarrier(MEMBARRIER_CMD_QUERY);
    if (cmds < 0 || !(cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED))
        return;
    rt->solo_ok = membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0;
}

void emi_solo_try(emi_rt *rt, emi_sched *s)
{
    unsigned others = (unsigned)rt->nsched - 1;
    /* Relaxed: hints; the seq_cst operations below decide. */
    if (atomic_load_explicit(&rt->n_sleeping, memory_order_relaxed) != others ||
        atomic_load_explicit(&emi_dist_up, memory_order_relaxed) ||
        atomic_load_explicit(&rt->stopping, memory_order_relaxed)) {
        s->solo_turns = 0;
        return;
    }
    if (++s->solo_turns < SOLO_AFTER_TURNS)
        return;
    int zero = 0, mine = s->id + 1;
    /* seq_cst: ordered before the two loads below, against a waking scheduler's
     * decrement of n_sleeping and an outside thread's increment of outside_ops,
     * each followed by its load of rt->solo. */
    if (!atomic_compare_exchange_strong_explicit(&rt->solo, &zero, mine, memory_order_seq_cst,
                                                 memory_order_relaxed))
        return;
    if (atomic_load_explicit(&rt->n_sleeping, memory_order_seq_cst) != others ||
        atomic_load_explicit(&rt->outside_ops, memory_order_seq_cst) != 0 ||
        atomic_load_explicit(&emi_dist_up, memory_order_seq_cst))
        /* No plain operation happened yet; a thread that saw the value and is
         * revoking it finds our in_op at 0. */
        atomic_compare_exchange_strong_explicit(&rt->solo, &mine, 0, memory_order_seq_cst,
                                                memory_order_relaxed);
    else
        /* Relaxed: a figure. */
        atomic_fetch_add_explicit(&rt->solo_entries, 1, memory_order_relaxed);
    s->solo_turns = 0;
}

void emi_solo_leave(emi_rt *rt, emi_sched *s)
{
    int mine = s->id + 1;
    /* Release: a scheduler that reads 0 sees our plain mailbox writes. */
    atomic_compare_exchange_strong_explicit(&rt->solo, &mine, 0, memory_order_seq_cst,
                                            memory_order_relaxed);
    s->solo_turns = 0;
}

void emi_solo_revoke(int v, emi_sched *self)
{
    emi_rt *rt = emi_rt_g;
    for (;;) {
        if (v == 0)
            return;
        int owner = v & ~EMI_SOLO_REVOKING;
        /* The owner, being revoked: atomic operations from now on, and no
         * wait, as the revoker waits for this operation to end. */
        if (self && owner == self->id + 1)
            return;
        if (!(v & EMI_SOLO_REVOKING)) {
            /* seq_cst: the owner's next read of rt->solo after the barrier
             * below sees the flag. Others that see it wait for the 0 below,
             * not only for this store: until the owner is out of its plain
             * operation, atomics would race with it. */
            if (atomic_compare_exchange_strong_explicit(&rt->solo, &v, v | EMI_SOLO_REVOKING,
                                                        memory_order_seq_cst, memory_order_seq_cst)) {
                /* Relaxed: a figure. */
                atomic_fetch_add_explicit(&rt->solo_revokes, 1, memory_order_relaxed);
                /* The owner's fence, run on its CPU: its in_op store before its
                 * read of rt->solo is now visible, or that read comes after our
                 * store. Registration was checked when the mode was allowed. */
                if (membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0)
                    emi_fatal("membarrier failed after it was registered");
                emi_sched *o = rt->scheds[owner - 1];
                /* Acquire pairs with the owner's release as it ends an operation. */
                for (unsigned i = 0; atomic_load_explicit(&o->in_op, memory_order_acquire); i++)
                    pause_or_yield(i);   /* the owner may be off its CPU mid-operation */
                /* seq_cst (a release at least): whoever reads 0 sees what the
                 * owner wrote, through our acquire above. */
                atomic_store_explicit(&rt->solo, 0, memory_order_seq_cst);
                return;
            }
            continue;   /* v is what the CAS found */
        }
        /* Another thread is revoking: wait until it is done. Acquire pairs
         * with its store of 0. */
        for (unsigned i = 0; (v = atomic_load_explicit(&rt->solo, memory_order_acquire)) & EMI_SOLO_REVOKING; i++)
            pause_or_yield(i);
    }
}
