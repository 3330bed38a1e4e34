/*
 * ember.h - the public API of ember's runtime layer.
 *
 * A node runs one scheduler thread per core. Processes are C functions with their
 * own mailbox and memory; they talk only by copying messages, which are terms:
 * msgpack's data model (nil, booleans, integers, floats, strings, binaries, arrays,
 * maps) plus pids, references and atoms.
 *
 * Conventions, for every function below:
 *  - Functions that can fail return 0 or a negative EM_E* code; em_strerror() names it.
 *  - "Process only" means the call must be made from inside a process (a function
 *    started by em_spawn or em_run); elsewhere it returns EM_ENOTPROC.
 *  - "May switch" means the calling process can be suspended inside the call and
 *    resumed on another scheduler thread: do not keep pointers to thread-local data
 *    (errno included) across such a call. Every call that counts reductions may
 *    switch when the time slice runs out: em_send, em_send_named, em_spawn,
 *    em_send_after, em_yield and the receive and sleep calls.
 *  - Terms built by a process live in that process's heap until it releases them
 *    (em_heap_release) or exits. Terms are immutable once built.
 */
#ifndef EMBER_H
#define EMBER_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- errors */

enum {
    EM_OK = 0,
    EM_EINVAL = -1,      /* an argument is malformed (NULL function, forged pid, ...) */
    EM_ENOMEM = -2,      /* out of memory */
    EM_ESYSLIMIT = -3,   /* a configured limit is reached (Erlang's system_limit) */
    EM_ETIMEDOUT = -4,   /* a receive timed out */
    EM_ENOPROC = -5,     /* no such process */
    EM_EBADTERM = -6,    /* a term (or term text) is malformed */
    EM_ETOOBIG = -7,     /* a term is larger than the configured maximum */
    EM_ENOTPROC = -8,    /* called outside a process */
    EM_EEXIST = -9,      /* a name is already registered, or a process already has one */
    EM_ENOTFOUND = -10,  /* no such name, timer or entry */
    EM_ESTATE = -11,     /* the runtime is not in a state that allows the call */
};

/* em_strerror returns a static, human-readable description of an EM_E* code. */
const char *em_strerror(int err);

/* ----------------------------------------------------------------- terms */

/* A term is a 64-bit word: small integers, nil, booleans and atoms are held in the
 * word itself; everything else points into a process heap or a message block. */
typedef uint64_t em_term;

/* A pid: bits 0-27 index, 28-47 serial, 48-63 node (0 is this node). Plain value. */
typedef uint64_t em_pid_t;

#define EM_NONE ((em_term)0)     /* "no term": returned by failed builders */
#define EM_NIL ((em_term)0x02)
#define EM_FALSE ((em_term)0x0A)
#define EM_TRUE ((em_term)0x12)

typedef enum em_type {
    EM_T_NONE = 0,
    EM_T_NIL,
    EM_T_BOOL,
    EM_T_INT,    /* fits int64_t */
    EM_T_UINT,   /* above INT64_MAX, fits uint64_t */
    EM_T_FLOAT,
    EM_T_STR,    /* UTF-8 text (msgpack str) */
    EM_T_BIN,    /* bytes (msgpack bin); above 64 bytes shared and reference-counted */
    EM_T_ARRAY,
    EM_T_MAP,
    EM_T_ATOM,
    EM_T_PID,
    EM_T_REF,
} em_type;

/* Builders allocate in the calling process's heap (outside a process: in the heap
 * installed by em_heap_use). They return EM_NONE when memory is exhausted or when an
 * element is EM_NONE, so a nested build fails as a whole. */
em_term em_int(int64_t v);
em_term em_uint(uint64_t v);
em_term em_float(double v);
em_term em_bool(bool v);
em_term em_str(const char *s);                /* NUL-terminated */
em_term em_strn(const char *s, size_t len);
em_term em_bin(const void *data, size_t len);
em_term em_atom(const char *name);            /* interned, never freed, no heap */
em_term em_atomn(const char *name, size_t len);
em_term em_pid(em_pid_t pid);
em_term em_array(size_t n, const em_term *items);
em_term em_map(size_t npairs, const em_term *kv);   /* k0, v0, k1, v1, ... */
em_term em_make_ref(void);                    /* a reference unique on this node */

/* EM_ARR(a, b, c): an array of its arguments, e.g. EM_ARR(em_atom("ping"), em_pid(me)). */
#define EM_ARR(...) \
    em_array(sizeof((em_term[]){__VA_ARGS__}) / sizeof(em_term), (em_term[]){__VA_ARGS__})

/* Accessors. em_get_* return false when the term is of another type. Strings and
 * binaries are not NUL-terminated; their bytes live as long as the term. */
em_type em_typeof(em_term t);
const char *em_type_name(em_type t);
bool em_get_int(em_term t, int64_t *out);     /* INT, or UINT that fits */
bool em_get_uint(em_term t, uint64_t *out);   /* non-negative INT or UINT */
bool em_get_float(em_term t, double *out);    /* FLOAT, or an integer converted */
bool em_get_bool(em_term t, bool *out);
bool em_get_str(em_term t, const char **s, size_t *len);
bool em_get_bin(em_term t, const void **data, size_t *len);
bool em_get_pid(em_term t, em_pid_t *out);
const char *em_atom_name(em_term atom);       /* NULL if not an atom */
size_t em_len(em_term t);                     /* elements of an array, pairs of a map, bytes of str/bin */
em_term em_at(em_term array, size_t i);       /* EM_NONE when out of range */
em_term em_map_key(em_term map, size_t i);
em_term em_map_value(em_term map, size_t i);
em_term em_map_get(em_term map, em_term key); /* EM_NONE when absent */
bool em_is_atom(em_term t, const char *name);
bool em_equal(em_term a, em_term b);          /* structural equality */
int em_compare(em_term a, em_term b);         /* total order, Erlang-like */

/* Text form, Erlang-like: 42, -7, 1.5, nil, true, false, ok, 'Quoted atom',
 * "string", <<1,2,255>>, <<"bytes">>, [1, two, "three"], #{k => v},
 * <0.12.1> (pid), #Ref<0.1.5>. Arrays print as [..]; the parser also takes {..}
 * as an array, so Erlang tuples read naturally.
 *
 * em_format writes at most cap bytes including the NUL and returns the length the
 * full text needs (snprintf's contract), or a negative EM_E* code. */
int em_format(em_term t, char *buf, size_t cap);
/* em_parse builds the term described by text in the current heap. On a syntax
 * error it returns EM_EBADTERM and, if errpos is not NULL, the byte offset. */
int em_parse(const char *text, em_term *out, size_t *errpos);

/* Matching. A pattern is term text plus: _ (anything), ~i (int64_t *), ~u
 * (uint64_t *), ~f (double *), ~a / ~s / ~b / ~t (em_term *: atom, string, binary,
 * any term), ~p (em_pid_t *). Captures are written only when the whole term
 * matches. Example: em_match(msg, "{ping, ~p}", &from).
 * em_match returns true on a match, false otherwise (including a bad pattern;
 * em_match_check tells pattern errors apart: EM_EBADTERM). */
bool em_match(em_term t, const char *pattern, ...);
bool em_vmatch(em_term t, const char *pattern, va_list ap);
int em_match_check(const char *pattern);

/* ------------------------------------------------------------ the heap */

/* A mark in the calling process's heap. em_heap_release(m) frees everything the
 * process allocated or received since the mark (terms, em_alloc blocks, messages);
 * terms from before the mark stay valid. */
typedef struct em_mark {
    void *head, *chunk, *offheap;
    size_t used;
} em_mark;
em_mark em_heap_mark(void);
void em_heap_release(em_mark m);
/* em_alloc: raw memory owned by the calling process, freed by em_heap_release or
 * at exit. 16-byte aligned. NULL when out of memory. */
void *em_alloc(size_t bytes);
/* Bytes the calling process's heap holds. */
size_t em_heap_bytes(void);

/* Outside a process (tests, tools), terms need a heap of their own: em_heap_new
 * makes one, em_heap_use installs it for the calling thread (NULL uninstalls), and
 * em_heap_free frees it with every term in it. */
typedef struct em_heap em_heap;
em_heap *em_heap_new(void);
void em_heap_use(em_heap *h);
void em_heap_free(em_heap *h);

/* ------------------------------------------------------------ runtime */

typedef struct em_config {
    int schedulers;            /* scheduler threads; 0 = one per online core */
    uint32_t max_processes;    /* default 4,194,304 */
    uint32_t reductions;       /* per time slice; default 4,000 */
    uint32_t time_slice_us;    /* a process running C code that never calls ember is
                                  interrupted after between 1 and 1.5 of these;
                                  default 1,000 (1 ms); 0 turns that off; else
                                  100 to 1,000,000 */
    size_t stack_size;         /* bytes of stack a running process may use; default 1 MiB */
    size_t max_term_bytes;     /* largest message, in bytes copied (a shared binary
                                  counts as its 24-byte box); default 64 MiB */
} em_config;

/* em_config_init fills c with the defaults. */
void em_config_init(em_config *c);

typedef void (*em_proc_fn)(em_term arg);

/* em_run starts a runtime (cfg may be NULL for the defaults), spawns root(arg) and
 * blocks the calling thread until every process has ended or em_halt is called.
 * It returns the halt status (0 when all processes ended), or a negative EM_E* code
 * if the runtime could not start. Only one runtime runs per OS process at a time.
 * All memory the runtime took is returned before em_run returns. */
int em_run(const em_config *cfg, em_proc_fn root, em_term arg);
/* em_halt ends the runtime: each process is stopped at its next switch (a
 * process running on another scheduler finishes its slice first), its memory is
 * reclaimed with no unwinding of C code, and em_run returns status. Process only. */
void em_halt(int status);

/* ---------------------------------------------------------- processes */

/* em_spawn starts fn(arg) in a new process; arg is copied into it. Process only;
 * may switch. Returns EM_EINVAL for a NULL fn or an EM_NONE arg, EM_ESYSLIMIT past
 * max_processes, EM_EBADTERM / EM_ETOOBIG for an arg that cannot be copied,
 * EM_ENOMEM, EM_ENOTPROC. The macro records the function's name for
 * introspection. em_spawn_named keeps the name pointer, not a copy: pass a
 * string that lives as long as em_run (a literal). Each distinct pair of fn and
 * name pointer is kept until em_run returns; past 16 million distinct pairs,
 * spawning returns EM_ESYSLIMIT. */
int em_spawn_named(em_proc_fn fn, const char *name, em_term arg, em_pid_t *out);
#define em_spawn(fn, arg, out) em_spawn_named((fn), #fn, (arg), (out))

/* em_self: the calling process's pid (0 outside a process). */
em_pid_t em_self(void);
/* em_exit ends the calling process with reason (any term; the atom normal is a
 * normal end, as is returning from the process function); never returns. Links
 * and monitors are told the reason (a malformed term becomes badarg). Memory the
 * process took with malloc is not reclaimed: only its ember heap is. */
_Noreturn void em_exit(em_term reason);
/* em_yield lets other runnable processes run. May switch. */
void em_yield(void);
/* em_is_alive: true while pid names a live local process. */
bool em_is_alive(em_pid_t pid);
/* em_pid_node / em_pid_index / em_pid_serial take a pid apart. */
static inline uint32_t em_pid_node(em_pid_t p) { return (uint32_t)(p >> 48); }
static inline uint32_t em_pid_index(em_pid_t p) { return (uint32_t)(p & 0x0FFFFFFFu); }
static inline uint32_t em_pid_serial(em_pid_t p) { return (uint32_t)((p >> 28) & 0xFFFFFu); }

/* ------------------------------------------- links, monitors and exits */

/* Erlang's semantics throughout (its reference manual, "Processes", is the spec).
 *
 * A link joins two processes both ways: when one ends with a reason other than
 * normal, the other is sent an exit signal with that reason and ends too, unless
 * it traps exits, in which case it receives the message ['EXIT', Pid, Reason].
 * A monitor is one way: when the monitored process ends, the monitoring process
 * receives ['DOWN', Ref, process, Pid, Reason]; a monitor of a process that does
 * not exist fires at once with reason noproc. Exit signals and DOWN messages keep
 * their order with the messages the same process sent.
 *
 * A process ended by an exit signal has its C stack discarded without unwinding:
 * keep resources that must be released (files, locks, malloc'd memory) in a
 * process that traps exits, or release them from a monitoring process. */

/* em_spawn_link: em_spawn, with a link between caller and child made before the
 * child runs, so no exit can be missed. Process only; may switch. */
int em_spawn_link_named(em_proc_fn fn, const char *name, em_term arg, em_pid_t *out);
#define em_spawn_link(fn, arg, out) em_spawn_link_named((fn), #fn, (arg), (out))
/* em_spawn_monitor: em_spawn with a monitor of the child set before it runs; *ref
 * (may be NULL) is the monitor's reference, in the caller's heap. */
int em_spawn_monitor_named(em_proc_fn fn, const char *name, em_term arg, em_pid_t *out,
                           em_term *ref);
#define em_spawn_monitor(fn, arg, out, ref) em_spawn_monitor_named((fn), #fn, (arg), (out), (ref))

/* em_link links the caller to pid (no effect if they are linked, or pid is the
 * caller). If pid does not exist: EM_ENOPROC, or, when the caller traps exits,
 * 0 and the message ['EXIT', Pid, noproc]. Process only; may switch. */
int em_link(em_pid_t pid);
/* em_unlink removes the link, if any. Once it returns, the link has no effect on
 * the caller, although an ['EXIT', ...] message it caused may already be queued
 * when the caller traps exits. Process only; may switch. */
int em_unlink(em_pid_t pid);
/* em_monitor starts monitoring pid and returns the monitor's reference in *ref
 * (may be NULL; the ref lives in the caller's heap). Monitoring twice makes two
 * monitors and two DOWN messages. Process only; may switch. */
int em_monitor(em_pid_t pid, em_term *ref);
/* em_demonitor stops a monitor: 1 if it was active, 0 if it had fired or never
 * existed, EM_EINVAL if ref is not a reference. With EM_DEMONITOR_FLUSH, a DOWN
 * message for ref already in the mailbox is removed too. Once it returns, no DOWN
 * for ref arrives any more. Process only; may switch. */
#define EM_DEMONITOR_FLUSH 1
int em_demonitor(em_term ref, int flags);
/* em_exit_pid sends pid an exit signal with reason (Erlang's exit/2). The atom
 * kill ends pid even when it traps exits, with reason killed; normal is ignored
 * by a process that does not trap exits (unless it is the caller); any other
 * reason ends a process that does not trap exits, and reaches one that does as
 * ['EXIT', Caller, Reason]. A dead pid is not an error. A process running C code
 * that never calls ember is interrupted (see preemption in docs/). Process only;
 * may switch. */
int em_exit_pid(em_pid_t pid, em_term reason);
/* em_trap_exit sets whether exit signals become messages; returns the old value. */
bool em_trap_exit(bool on);

/* ----------------------------------------------------------- messages */

#define EM_INFINITY (-1)

/* em_send copies msg into to's mailbox and never blocks. Sending to a dead pid is
 * not an error (it is counted in em_system_info). EM_EINVAL for a forged pid (bad
 * node or index), EM_ETOOBIG past max_term_bytes. Callable from a process. */
int em_send(em_pid_t to, em_term msg);

/* em_send_array sends the array of the n items (what em_send(to, em_array(n,
 * items)) sends) without building it in the caller's heap first: the message is
 * built straight in the receiver's memory. Errors as em_send, and EM_EINVAL for
 * an EM_NONE item. EM_SEND_ARR(to, a, b, c) is the short form, as EM_ARR. */
int em_send_array(em_pid_t to, size_t n, const em_term *items);
#define EM_SEND_ARR(to, ...)                                                                  \
    em_send_array((to), sizeof((em_term[]){__VA_ARGS__}) / sizeof(em_term), (em_term[]){__VA_ARGS__})

/* em_receive takes the oldest message. timeout_ms: 0 polls, EM_INFINITY (any
 * negative value) waits forever. Returns 0 with *out set (out may be NULL), or
 * EM_ETIMEDOUT; EM_ENOMEM if a timer cannot be set, EM_ENOTPROC outside a
 * process. May switch. */
int em_receive(em_term *out, int64_t timeout_ms);
/* em_receive_if takes the oldest message that pred accepts; the others stay in
 * the mailbox in arrival order. */
typedef bool (*em_pred_fn)(em_term msg, void *ctx);
int em_receive_if(em_term *out, int64_t timeout_ms, em_pred_fn pred, void *ctx);
/* em_receive_match takes the oldest message matching pattern (see em_match) and
 * writes its captures. *out may be NULL. EM_EBADTERM for a malformed pattern. */
int em_receive_match(em_term *out, int64_t timeout_ms, const char *pattern, ...);

/* ------------------------------------------------------------- timers */

typedef uint64_t em_timer_t;
/* em_sleep suspends the calling process for ms milliseconds (EM_INFINITY: for
 * ever, as Erlang's timer:sleep(infinity)); messages wait. */
void em_sleep(int64_t ms);
/* em_send_after sends a copy of msg to pid after ms milliseconds. */
int em_send_after(int64_t ms, em_pid_t to, em_term msg, em_timer_t *out);
/* em_cancel_timer: 0 if the timer was cancelled before it fired, EM_ENOTFOUND if
 * it has fired or never existed. */
int em_cancel_timer(em_timer_t t);
/* em_now_ms: monotonic milliseconds. */
int64_t em_now_ms(void);

/* -------------------------------------------------------------- names */

/* em_register gives pid a name (an atom). EM_EEXIST if the name is taken or the
 * process already has one; EM_ENOPROC if pid is not alive. Names go with their
 * process when it ends. */
int em_register(em_term name, em_pid_t pid);
int em_unregister(em_term name);
/* em_whereis: the pid registered as name, or 0. */
em_pid_t em_whereis(em_term name);
/* em_send_named sends to a registered name: EM_ENOTFOUND if nothing is registered
 * (Erlang raises badarg). */
int em_send_named(em_term name, em_term msg);

/* -------------------------------------------------------- supervisors */

/* OTP's supervisor (its "supervisor" manual page is the spec; docs/supervisors.md
 * is the guide). A supervisor is a process that traps exits, starts its children
 * in order, each linked to it, and restarts them when they end, according to
 * each child's restart type and its own strategy. It runs with the entry name
 * "em_supervisor" (em_proc_info.entry), so a tool can find supervisors among
 * em_processes and walk the tree with em_supervisor_which_children.
 *
 * Children are stopped in reverse start order, each in turn: the supervisor
 * monitors and unlinks the child, sends it exit(shutdown), waits up to its
 * shutdown time for it to end, and then sends exit(kill). When more than
 * `intensity` restarts happen within `period_ms`, the supervisor stops all its
 * children, prints one line on stderr (reached_max_restart_intensity) and ends
 * with reason shutdown. An exit signal from its parent (the process that
 * started it) makes it stop its children and end with the same reason; so does
 * an exit signal with a reason other than normal from any process that is not
 * one of its children (em_supervisor_stop sends one).
 *
 * A supervisor keeps its state in its own heap, so nothing leaks when it is
 * killed; while it runs, its heap holds its argument and its children table
 * (about 150 bytes a child, plus the child's arg) and at most 64 KiB of restart
 * history. */

typedef enum em_restart {
    EM_PERMANENT = 0,    /* always restarted */
    EM_TRANSIENT,        /* restarted unless it ends with normal, shutdown or [shutdown, _] */
    EM_TEMPORARY,        /* never restarted; forgotten by the supervisor once it ends */
} em_restart;

typedef enum em_strategy {
    EM_ONE_FOR_ONE = 0,  /* restart the child that ended */
    EM_ONE_FOR_ALL,      /* stop every other child, then restart them all in order */
    EM_REST_FOR_ONE,     /* stop the children started after it, then restart it and them */
} em_strategy;

/* Values of em_child_spec.shutdown_ms besides a positive number of ms and
 * EM_INFINITY. The default (0, what a zeroed spec holds) is OTP's: 5,000 ms for a
 * worker, EM_INFINITY for a supervisor. */
#define EM_SHUTDOWN_DEFAULT 0
#define EM_BRUTAL_KILL (-2)      /* exit(kill) at once */

/* The most children one supervisor takes. */
#define EM_SUP_MAX_CHILDREN 65536

/* A child: id names it within its supervisor (1 to 255 bytes, unique; it is
 * interned as an atom, so keep the set of ids small and fixed, and it is also the
 * child's entry name). start(arg) runs as the child process; arg is copied, and
 * EM_NONE (what a zeroed spec holds) is passed as nil. supervisor says the child is
 * itself a supervisor: arg comes from em_supervisor_arg, and start is
 * em_supervisor_main or a function that ends by calling it with its argument (the
 * parent waits for it to report that its children are up). */
typedef struct em_child_spec {
    const char *id;
    em_proc_fn start;
    em_term arg;
    em_restart restart;
    int64_t shutdown_ms;         /* EM_SHUTDOWN_DEFAULT, EM_BRUTAL_KILL, N > 0, EM_INFINITY */
    bool supervisor;
} em_child_spec;

/* At most `intensity` (>= 0) restarts within `period_ms` (> 0). Restart times are
 * kept to the millisecond for periods up to 4,096 ms, and to 1/4,096 of the
 * period beyond. */
typedef struct em_sup_flags {
    em_strategy strategy;
    int intensity;
    int64_t period_ms;
} em_sup_flags;

/* em_sup_flags_init fills f with OTP's defaults: one_for_one, 1 restart in
 * 5,000 ms. Callable anywhere; does not switch. */
void em_sup_flags_init(em_sup_flags *f);

/* em_supervisor_start_link starts a supervisor linked to the caller and returns
 * once it has started all its children, in order, each with em_spawn_link (a
 * child that is a supervisor has started its own children by then). flags and
 * children are copied: the caller may free them on return, and the caller's heap
 * is left as it was. *out (may be NULL) receives the supervisor's pid. If a child
 * cannot be started, the supervisor stops the children it started and ends
 * without signalling the caller, and the call returns the spawn's error.
 * EM_EINVAL for a NULL flags, a flag out of range, n > EM_SUP_MAX_CHILDREN,
 * children NULL with n > 0, a NULL, empty, too long or repeated id, a NULL start,
 * a bad restart or shutdown_ms, supervisor set with an arg that does not come
 * from em_supervisor_arg (or unset with start = em_supervisor_main); EM_ESYSLIMIT,
 * EM_ENOMEM, EM_ETOOBIG; EM_ENOPROC if the supervisor was killed before its
 * children were up. Process only; may switch. */
int em_supervisor_start_link(const em_sup_flags *flags, const em_child_spec *children,
                             size_t n, em_pid_t *out);

/* em_supervisor_arg checks flags and children as em_supervisor_start_link does
 * and builds, in the current heap, the argument of a supervisor that is a child of
 * another: {.start = em_supervisor_main, .arg = <*out>, .supervisor = true}. The
 * parent supervisor starts it like em_supervisor_start_link: it waits for the
 * nested supervisor's children to be up before it starts its next child. Works
 * wherever terms can be built; does not switch. */
int em_supervisor_arg(const em_sup_flags *flags, const em_child_spec *children, size_t n,
                      em_term *out);

/* em_supervisor_main is the supervisor process's function; it never returns (a
 * supervisor ends with em_exit). Its argument must come from em_supervisor_arg:
 * a malformed one ends it with reason badarg, after one line on stderr. Spawned
 * by hand (em_spawn_link(em_supervisor_main, arg, &pid)) it does not know its
 * parent, and only exit signals with reasons other than normal stop it. */
void em_supervisor_main(em_term arg);

/* What em_supervisor_which_children reports of a child. id is the interned atom's
 * name: it lives until the program ends. pid is 0 while the child is not running. */
typedef struct em_child_info {
    const char *id;
    em_pid_t pid;
    em_restart restart;
    bool supervisor;
} em_child_info;

/* em_supervisor_which_children asks sup for its children, in start order: up to
 * cap go to out (may be NULL when cap is 0), and *count (may be NULL) is how many
 * there are. A synchronous call: it monitors sup, sends a request and waits up to
 * timeout_ms (EM_INFINITY: for ever) for the reply. EM_ENOPROC if sup is not
 * running or ends before it replies, EM_ETIMEDOUT (a reply that comes later is
 * left in the mailbox as ['$em_sup_reply', Ref, Result]; a process that is not
 * a supervisor never replies), EM_EINVAL for a pid that cannot be local or the
 * caller's own, EM_ENOMEM. The caller's heap is left as it was. Process only;
 * may switch. */
int em_supervisor_which_children(em_pid_t sup, em_child_info *out, size_t cap, size_t *count,
                                 int64_t timeout_ms);

/* em_supervisor_terminate_child stops child id as the supervisor stops children
 * and keeps its spec (a temporary child is forgotten); it is not restarted until
 * em_supervisor_restart_child, or until a one_for_all or rest_for_one restart
 * takes it along. 0 (also if it was not running), EM_ENOTFOUND for an unknown id,
 * and the errors of em_supervisor_which_children. Process only; may switch. */
int em_supervisor_terminate_child(em_pid_t sup, const char *id, int64_t timeout_ms);

/* em_supervisor_restart_child starts child id again after
 * em_supervisor_terminate_child (or after a transient child ended normally). It
 * does not count as a restart for the intensity. 0, EM_EEXIST if it is running,
 * EM_ENOTFOUND for an unknown id, the spawn's error, and the errors of
 * em_supervisor_which_children. Process only; may switch. */
int em_supervisor_restart_child(em_pid_t sup, const char *id, int64_t timeout_ms);

/* em_supervisor_stop unlinks the caller from sup (so the caller is not taken down
 * with it), sends sup exit(shutdown) and waits up to timeout_ms for it to end,
 * which it does after stopping its children. 0 once it has ended, EM_ENOPROC if
 * it was not running, EM_ETIMEDOUT (it goes on stopping). Not for a child of sup:
 * its exit signal would read as its own end. Process only; may switch. */
int em_supervisor_stop(em_pid_t sup, int64_t timeout_ms);

/* ------------------------------------------------------- distribution */

/* Nodes (docs/distribution.md is the guide). A runtime becomes a node with
 * em_dist_start; from then on a pid may name a process on another node, and
 * em_send, em_exit_pid, em_link, em_unlink, em_monitor and em_demonitor work on
 * it as they do locally. Nodes talk over ZeroMQ, CURVE-encrypted, with every
 * message packed with msgpack. A node is named "name@host" and is reached at an
 * address given as "name@host:port" (or learned from a node already connected:
 * the cluster is a full mesh). */

typedef enum em_trust {
    EM_TRUST_COOKIE = 0,     /* a shared secret; the CURVE keys derive from it */
    EM_TRUST_KEYRING,        /* a key pair per node, peers' public keys listed */
} em_trust;

typedef struct em_dist_config {
    const char *name;        /* "name@host"; required */
    uint32_t creation;       /* tells this life of the node from earlier ones;
                                0 = derived from the clock */
    const char *listen;      /* "host:port" or a ZeroMQ endpoint; default
                                "127.0.0.1:0" when host is loopback-like, else
                                "0.0.0.0:0" (port 0 picks a free one) */
    em_trust trust;
    const char *cookie;      /* cookie mode: the secret; NULL reads ~/.ember/cookie,
                                creating it (mode 0400) on first use */
    const char *cookie_file; /* cookie mode: read the secret from this file instead */
    const char *keyring;     /* keyring mode: a directory with this node's key pair
                                (`key`, `key.pub`) and `peers` (one "KEY name" per line) */
    bool hidden;             /* a hidden node (tools): connects only where asked and
                                is not passed on to the mesh */
    uint32_t tick_ms;        /* a silent peer is down after this; default 10,000 */
    size_t peer_buffer;      /* bytes queued per peer before senders wait
                                (Erlang's +zdbbl); default 1 MiB */
    int busy_wait_us;        /* after input from a peer, the scheduler that watches
                                the network keeps polling it this long, giving
                                its core to any other thread that wants it, before
                                it sleeps (Erlang's +sbwt); 0 off, at most
                                1,000,000; default 1,000 */
    int log_level;           /* 0 quiet, 1 errors, 2 connections (default), 3 debug */
    bool epmd;               /* register with this host's port mapper (ember-epmd or
                                Erlang's epmd), and find nodes named without a
                                port through the mapper of their host */
    uint16_t epmd_port;      /* 0: $ERL_EPMD_PORT, else 4369 */
} em_dist_config;

/* em_dist_config_init fills c with the defaults (name NULL). */
void em_dist_config_init(em_dist_config *c);
/* em_dist_start makes the running runtime a node: it binds the listen address,
 * and starts the thread that serves connections. EM_ESTATE if already started,
 * EM_EINVAL for a bad name, address or trust setting (a line on stderr says
 * which), EM_ENOTFOUND for a missing keyring or cookie file. Process only. The
 * node stops with the runtime (peers are told), or with em_dist_stop. */
int em_dist_start(const em_dist_config *c);
/* em_dist_stop says goodbye to the peers and stops the node's thread and its
 * processes; the runtime goes on, local only. From a process or any other
 * thread; EM_ESTATE if distribution is not running. It cannot be started again
 * in the same runtime. */
int em_dist_stop(void);
/* em_node: this node's name as an atom ('nonode@nohost' before em_dist_start);
 * em_node_of: the node of a pid; em_node_port: the port this node listens on. */
em_term em_node(void);
em_term em_node_of(em_pid_t pid);
int em_node_port(void);
/* em_node_connect connects to "name@host:port" (or to a node already known by
 * name) and waits up to timeout_ms until the handshake is done: 0, EM_ETIMEDOUT,
 * EM_EINVAL, EM_ENOTFOUND (no address known), EM_ESTATE (not a node).
 * Process only; may switch. */
int em_node_connect(const char *node, int64_t timeout_ms);
/* em_node_disconnect drops the connection (monitors fire with noconnection). */
int em_node_disconnect(em_term node);
/* em_nodes writes up to cap connected, visible nodes (atoms); returns how many
 * there are. em_nodes_hidden does the same for hidden ones. */
size_t em_nodes(em_term *out, size_t cap);
size_t em_nodes_hidden(em_term *out, size_t cap);
/* em_monitor_node (Erlang's monitor_node/2): while on, the caller gets
 * ['nodeup', Node] and ['nodedown', Node] messages; for a node that is not
 * connected at the call, a nodedown at once (as Erlang). em_monitor_nodes turns
 * on the same messages for every node. Process only. */
int em_monitor_node(em_term node, bool on);
int em_monitor_nodes(bool on);
/* em_send_remote sends to {name, node} (Erlang's {Name, Node} ! Msg): the name is
 * looked up there, and a missing name is not an error (nothing happens). A
 * local node sends to a registered name as em_send_named but without the error.
 * Process only. */
int em_send_remote(em_term name, em_term node, em_term msg);
/* Remote spawn. em_register_fn gives fn a name that other nodes can spawn it by
 * (Erlang's Module:Function); call it before em_dist_start, or from a process. */
int em_register_fn(const char *name, em_proc_fn fn);
em_proc_fn em_lookup_fn(const char *name);
/* em_spawn_on spawns the function registered as fn_name on node with a copy of
 * arg, with a link or monitor of it set (EM_SPAWN_LINK, EM_SPAWN_MONITOR; *ref
 * gets the monitor's reference) before it runs, and waits up to timeout_ms for
 * its pid. EM_ENOTFOUND: no such function there; EM_ETIMEDOUT; EM_ENOPROC: the
 * node cannot be reached. On this node it is an ordinary spawn. Process only. */
enum { EM_SPAWN_LINK = 1, EM_SPAWN_MONITOR = 2 };
int em_spawn_on(em_term node, const char *fn_name, em_term arg, int flags, em_pid_t *out,
                em_term *ref, int64_t timeout_ms);

typedef struct em_dist_stats {
    uint64_t msgs_out, msgs_in;          /* messages and signals sent to / received from peers */
    uint64_t bytes_out, bytes_in;        /* after packing, before encryption */
    uint64_t frames_out, frames_in;
    uint64_t dropped;                    /* sent to a node that could not be reached */
    uint64_t bad_frames;                 /* malformed input from a peer, dropped */
    uint64_t refused;                    /* connections refused by the trust check */
    uint64_t sender_waits;               /* times a sender waited for a peer's buffer */
    size_t queued_bytes;                 /* bytes waiting in peer buffers now */
    uint32_t peers;                      /* connected nodes */
} em_dist_stats;
int em_dist_stats_get(em_dist_stats *out);

/* ------------------------------------------------------ introspection */

typedef enum em_status {
    EM_RUNNING,
    EM_RUNNABLE,
    EM_WAITING,
    EM_EXITING,
} em_status;

typedef struct em_proc_info {
    em_pid_t pid;
    em_status status;
    size_t mailbox_len;
    size_t memory_bytes;         /* process struct, saved stack, heap, links and monitors */
    uint64_t reductions;
    const char *entry;           /* name given at spawn (static string) */
    em_term name;                /* registered name, or EM_NONE */
    int scheduler;               /* last scheduler that ran it */
    uint32_t links;              /* processes linked to it */
    uint32_t monitored_by;       /* monitors other processes hold on it */
    bool trap_exit;
} em_proc_info;

typedef struct em_sched_info {
    int id;
    uint64_t preemptions;        /* processes interrupted by a time slice's end */
    uint64_t busy_ns, total_ns;  /* utilisation = busy_ns / total_ns since start */
    uint64_t processes_run;
    uint64_t steals;
    size_t runq_len;
    uint32_t stacks_mapped;      /* execution stacks this scheduler has mapped (shared
                                    among its processes; 0 in the sanitizer builds,
                                    which map one per process) */
} em_sched_info;

typedef struct em_system_info {
    int schedulers;
    uint32_t process_count;
    uint32_t process_limit;
    uint64_t spawned_total;
    uint64_t messages_sent;
    uint64_t sends_to_dead;
    size_t memory_processes;     /* bytes held by processes */
    size_t memory_total;         /* resident memory of the OS process (RSS) */
    uint64_t uptime_ms;
    /* Solo mode: while the other schedulers sleep, the one awake sends and parks
     * without locked instructions (docs/runtime.md). How often it began, and how
     * often another thread had to end it. */
    uint64_t solo_entries;
    uint64_t solo_revocations;
    bool solo_available;         /* false under valgrind, or without membarrier(2) */
} em_system_info;

/* All callable from a process. em_processes writes up to cap live pids and returns
 * how many processes there are (which may exceed cap). */
size_t em_processes(em_pid_t *out, size_t cap);
int em_process_info(em_pid_t pid, em_proc_info *out);
int em_system_info_get(em_system_info *out);
int em_scheduler_info(int id, em_sched_info *out);
const char *em_status_name(em_status s);

#ifdef __cplusplus
}
#endif
#endif /* EMBER_H */
