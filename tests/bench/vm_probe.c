/*
 * vm_probe.c - what fresh memory costs on this machine, the facts behind the
 * spawn and ring figures in docs/performance.md.
 *
 *   ember-vmprobe [IDLE_SECONDS]
 *
 * On the development machine (a paravirtualised guest) the first touch of a
 * page costs about a hundred times a system call, and what it costs depends on
 * how the page is made resident and on whether the host has to back it again.
 * The probe prints one line per fact:
 *
 *   touch    one write to each 4 KiB page of a fresh mapping, at strides of
 *            4 KiB to 4 MiB: past 2 MiB every touch also needs a page-table
 *            page of its own, which is what one execution stack a MiB apart
 *            from the next pays at its first run
 *   stack    an execution stack made as ember makes one (mmap, a guard page by
 *            mprotect, the first write at its top), per stack
 *   populate 256 MiB made resident by MADV_POPULATE_WRITE, then touched; per
 *            4 KiB page: without huge pages; with them (when=first); with them
 *            again at once, in memory the previous line has just freed
 *            (when=again), which the host still backs
 *
 * With IDLE_SECONDS, the huge-page line is measured once more after that many
 * seconds of sleep (when=after_idle), by which time a guest with free page
 * reporting may have handed the freed memory back to its host; then, after
 * another sleep as long, the same 256 MiB made resident by one call from each
 * of two threads, 128 MiB each (when=after_idle threads=2): the most fresh
 * memory this machine's two cores can make resident in a second when they do
 * nothing else, the ceiling of a million spawns on cold memory.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define PAGE 4096u

static double now_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static void *fresh(size_t len, int prot)
{
    void *m = mmap(NULL, len, prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) {
        perror("ember-vmprobe: mmap");
        exit(1);
    }
    return m;
}

/* One write to each of n pages `stride` bytes apart, in a mapping without huge
 * pages (which would hide the per-page cost). */
static void probe_touch(size_t stride, unsigned n)
{
    size_t len = (size_t)n * stride;
    volatile unsigned char *m = fresh(len, PROT_READ | PROT_WRITE);
    madvise((void *)m, len, MADV_NOHUGEPAGE);
    double t0 = now_ns();
    for (unsigned i = 0; i < n; i++)
        m[(size_t)i * stride] = 1;
    printf("touch stride_kib=%zu pages=%u ns_per_page=%.0f\n", stride / 1024, n,
           (now_ns() - t0) / n);
    munmap((void *)m, len);
}

/* n stacks of 1 MiB, each mapped, guarded and first written at its top. */
static void probe_stack(unsigned n)
{
    size_t len = ((size_t)1 << 20) + PAGE;
    double map = 0, guard = 0, touch = 0;
    unsigned char **s = calloc(n, sizeof *s);
    if (!s)
        return;
    for (unsigned i = 0; i < n; i++) {
        double a = now_ns();
        s[i] = fresh(len, PROT_READ | PROT_WRITE);
        double b = now_ns();
        mprotect(s[i], PAGE, PROT_NONE);
        double c = now_ns();
        ((volatile unsigned char *)s[i])[len - 128] = 1;
        double d = now_ns();
        map += b - a;
        guard += c - b;
        touch += d - c;
    }
    printf("stack n=%u ns_mmap=%.0f ns_guard=%.0f ns_first_touch=%.0f ns_per_stack=%.0f\n", n,
           map / n, guard / n, touch / n, (map + guard + touch) / n);
    for (unsigned i = 0; i < n; i++)
        munmap(s[i], len);
    free(s);
}

struct part {
    unsigned char *at;
    size_t len;
    int rc;
};

static void *populate_part(void *arg)
{
    struct part *h = arg;
    h->rc = madvise(h->at, h->len, MADV_POPULATE_WRITE);
    return NULL;
}

/* 256 MiB made resident by one call from each of `threads` threads (1 or 2, an
 * equal part each), then, with one thread, touched page by page. */
static void probe_populate(const char *when, int huge, int threads)
{
    size_t len = (size_t)256 << 20, pages = len / PAGE;
    unsigned char *m = fresh(len, PROT_READ | PROT_WRITE);
    madvise(m, len, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    struct part h[2] = {{m, len / (size_t)threads, 0}, {m + len / 2, len / 2, 0}};
    pthread_t t;
    double t0 = now_ns();
    if (threads == 2 && pthread_create(&t, NULL, populate_part, &h[1]) != 0) {
        perror("ember-vmprobe: pthread_create");
        exit(1);
    }
    populate_part(&h[0]);
    if (threads == 2)
        pthread_join(t, NULL);
    double t1 = now_ns();
    char label[64];
    snprintf(label, sizeof label, "populate when=%s huge=%d%s", when, huge, threads == 2 ? " threads=2" : "");
    if (h[0].rc != 0 || (threads == 2 && h[1].rc != 0)) {
        printf("%s unsupported (the kernel predates 5.14)\n", label);
    } else if (threads == 2) {
        printf("%s ns_per_page=%.0f\n", label, (t1 - t0) / (double)pages);
    } else {
        volatile unsigned char *v = m;
        for (size_t i = 0; i < len; i += PAGE)
            v[i] = 1;
        double t2 = now_ns();
        printf("%s ns_per_page=%.0f then_touch_ns_per_page=%.0f\n", label, (t1 - t0) / (double)pages,
               (t2 - t1) / (double)pages);
    }
    munmap(m, len);
}

int main(int argc, char **argv)
{
    int idle = argc > 1 ? atoi(argv[1]) : 0;
    if (argc > 2 || idle < 0) {
        fprintf(stderr, "usage: ember-vmprobe [IDLE_SECONDS]\n");
        return 2;
    }
    static const size_t strides[] = {4096, 65536, 1u << 20, 2u << 20, 4u << 20};
    for (size_t i = 0; i < sizeof strides / sizeof strides[0]; i++)
        probe_touch(strides[i], 1000);
    probe_stack(1000);
    probe_populate("first", 0, 1);
    probe_populate("first", 1, 1);
    probe_populate("again", 1, 1);
    probe_populate("again", 1, 2);
    if (idle > 0) {
        sleep((unsigned)idle);
        probe_populate("after_idle", 1, 1);
        sleep((unsigned)idle);
        probe_populate("after_idle", 1, 2);
    }
    return 0;
}
