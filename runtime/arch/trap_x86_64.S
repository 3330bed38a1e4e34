/*
 * trap_x86_64.S - where a signal handler sends an interrupted process.
 *
 * Neither trampoline is ever called: a handler (fault/fault.c, sched/preempt.c)
 * edits the interrupted context so that returning from the signal resumes here,
 * and the kernel restores the signal mask on the way, as it would for any return
 * from a handler.
 *
 * emi_fault_tramp: the process is to end. The handler has set the stack pointer
 * to the top of the process's own stack; align and end the process in C.
 *
 * emi_preempt_tramp: the process is to yield and later resume exactly where it
 * was. The handler pushed the interrupted instruction address 128 bytes below
 * the interrupted stack pointer (the System V red zone, which a leaf function may
 * be using, stays untouched), as if that code had called us. We save everything
 * the interrupted code may have live -- every general register, the flags, and
 * the vector and x87 state with XSAVE (the components in emi_xsave_mask) -- call
 * emi_preempt_entry, restore,
 * and `ret $128` returns to the instruction with the stack pointer as it was.
 */
#if defined(__x86_64__)
    .text

    .globl emi_fault_tramp
    .hidden emi_fault_tramp
    .type emi_fault_tramp, @function
emi_fault_tramp:
    .cfi_startproc
    .cfi_undefined rip
    andq $-16, %rsp
    call emi_fault_entry
    ud2
    .cfi_endproc
    .size emi_fault_tramp, .-emi_fault_tramp

    .globl emi_preempt_tramp
    .hidden emi_preempt_tramp
    .type emi_preempt_tramp, @function
emi_preempt_tramp:
    .cfi_startproc
    pushfq
    pushq %rax
    pushq %rcx
    pushq %rdx
    pushq %rbx
    pushq %rbp
    pushq %rsi
    pushq %rdi
    pushq %r8
    pushq %r9
    pushq %r10
    pushq %r11
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, %rbx                 /* callee-saved: finds the pushes again */
    movl emi_xsave_size(%rip), %eax
    subq %rax, %rsp
    andq $-64, %rsp                 /* XSAVE needs 64-byte alignment */
    xorl %eax, %eax                 /* and a zeroed header (bytes 512-575) */
    movq %rax, 512(%rsp)
    movq %rax, 520(%rsp)
    movq %rax, 528(%rsp)
    movq %rax, 536(%rsp)
    movq %rax, 544(%rsp)
    movq %rax, 552(%rsp)
    movq %rax, 560(%rsp)
    movq %rax, 568(%rsp)
    movl emi_xsave_mask(%rip), %eax
    movl emi_xsave_mask+4(%rip), %edx
    xsave64 (%rsp)
    cld                             /* the ABI's direction flag for C */
    call emi_preempt_entry
    movl emi_xsave_mask(%rip), %eax
    movl emi_xsave_mask+4(%rip), %edx
    xrstor64 (%rsp)
    movq %rbx, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %r11
    popq %r10
    popq %r9
    popq %r8
    popq %rdi
    popq %rsi
    popq %rbp
    popq %rbx
    popq %rdx
    popq %rcx
    popq %rax
    popfq
    ret $128
    .cfi_endproc
    .size emi_preempt_tramp, .-emi_preempt_tramp
    .globl emi_preempt_tramp_end
    .hidden emi_preempt_tramp_end
emi_preempt_tramp_end:
#endif
    .section .note.GNU-stack,"",@progbits
