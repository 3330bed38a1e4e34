/*
 * code.c - whose code an instruction address belongs to.
 *
 * A fault or a preemption signal interrupts a thread at some instruction. What
 * may be done about it depends on whose instruction it is: the runtime's own
 * (libember, which may hold locks or be halfway through an update: a fault there
 * stops the node, and a process is never preempted there), the program's (the
 * code of processes: safe to preempt, and a fault there is that process's), or a
 * library's (libc and the rest: a fault is the process's, but preemption must
 * wait, because a library may hold a lock). The address ranges are read once,
 * from the loaded objects' executable segments, before any scheduler starts.
 */
#include <link.h>
#include <stdint.h>
#include <string.h>

/* <elf.h> names machine type 0 EM_NONE, as ember names its "no term" value. */
#undef EM_NONE
#include "core/rt.h"

#define MAX_RANGES 16

typedef struct range {
    uintptr_t lo, hi;
} range;

/* Written before the schedulers start (and by emi_code_add_program, before the
 * code it adds runs); read by signal handlers. */
static range runtime_ranges[MAX_RANGES], program_ranges[MAX_RANGES];
static int n_runtime, n_program;

struct scan {
    uintptr_t probe;    /* an address inside the runtime */
    int index;
};

static int visit(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct scan *sc = arg;
    range segs[MAX_RANGES];
    int n = 0;
    bool has_probe = false;
    for (int i = 0; i < info->dlpi_phnum && n < MAX_RANGES; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X))
            continue;
        segs[n].lo = info->dlpi_addr + ph->p_vaddr;
        segs[n].hi = segs[n].lo + ph->p_memsz;
        if (sc->probe >= segs[n].lo && sc->probe < segs[n].hi)
            has_probe = true;
        n++;
    }
    /* The first object is the program itself. */
    bool program = sc->index++ == 0;
    for (int i = 0; i < n; i++) {
        if (has_probe && n_runtime < MAX_RANGES)
            runtime_ranges[n_runtime++] = segs[i];
        else if (program && !has_probe && n_program < MAX_RANGES)
            program_ranges[n_program++] = segs[i];
    }
    return 0;
}

void emi_code_init(void)
{
    if (n_runtime)
        return;
    struct scan sc = {.probe = (uintptr_t)&emi_code_init, .index = 0};
    dl_iterate_phdr(visit, &sc);
}

int emi_code_add_program(const void *lo, const void *hi)
{
    if (n_program == MAX_RANGES)
        return EM_ESYSLIMIT;
    program_ranges[n_program].lo = (uintptr_t)lo;
    program_ranges[n_program].hi = (uintptr_t)hi;
    n_program++;
    return 0;
}

static bool in(const range *r, int n, uintptr_t pc)
{
    for (int i = 0; i < n; i++)
        if (pc >= r[i].lo && pc < r[i].hi)
            return true;
    return false;
}

bool emi_code_in_runtime(uintptr_t pc) { return in(runtime_ranges, n_runtime, pc); }

bool emi_code_in_program(uintptr_t pc) { return in(program_ranges, n_program, pc); }
