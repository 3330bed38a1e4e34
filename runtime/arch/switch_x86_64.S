/*
 * switch_x86_64.S - the user-space context switch between a scheduler and a process.
 *
 * emi_ctx_switch(void **save, void *to): pushes the callee-saved registers the
 * System V ABI asks us to keep, stores the stack pointer in *save, loads `to` and
 * pops the same registers from there. It costs a few nanoseconds and no system call,
 * unlike swapcontext. emi_ctx_boot is where a new process's first switch lands: the
 * process pointer was planted in rbx's slot, and the stack pointer is the stack's
 * top.
 */
#if defined(__x86_64__)
    .text
    .globl emi_ctx_switch
    .type emi_ctx_switch, @function
emi_ctx_switch:
    .cfi_startproc
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .cfi_endproc
    .size emi_ctx_switch, .-emi_ctx_switch

    .globl emi_ctx_boot
    .type emi_ctx_boot, @function
emi_ctx_boot:
    .cfi_startproc
    .cfi_undefined rip
    /* The stack is at its top, 16-aligned. emi_proc_start returns the function
     * in rax and its argument in rdx; the process pointer stays in rbx, which
     * the function must preserve, for emi_proc_end(p, EM_NONE) when it returns.
     * Only the return address lies above the function's first frame. */
    andq $-16, %rsp
    movq %rbx, %rdi
    call emi_proc_start
    movq %rdx, %rdi
    call *%rax
    movq %rbx, %rdi
    xorl %esi, %esi
    call emi_proc_end
    ud2
    .cfi_endproc
    .size emi_ctx_boot, .-emi_ctx_boot
#else
#error "ember's context switch is written for x86-64 only so far"
#endif
    .section .note.GNU-stack,"",@progbits
