// int spanguard_go_trampoline(void *fn, void *arg): fn(arg) on this
// thread's C stack (hotcall.c), returning 0; 1, running nothing, when the
// thread has no C stack yet. Called by internal/stackcall on a goroutine's
// stack, where it may push no more than the return address and one word.
	.text
	.globl spanguard_go_trampoline
	.type spanguard_go_trampoline, @function
spanguard_go_trampoline:
	movq spanguard_go_stack@gottpoff(%rip), %rax
	movq %fs:(%rax), %rax
	testq %rax, %rax
	jz 1f
	pushq %rbp
	movq %rsp, %rbp          // the goroutine's stack, kept in a callee-saved register
	movq %rax, %rsp          // the C stack's top: 16-byte aligned
	movq %rdi, %rax
	movq %rsi, %rdi
	callq *%rax
	movq %rbp, %rsp
	popq %rbp
	xorl %eax, %eax
	ret
1:
	movl $1, %eax
	ret
	.size spanguard_go_trampoline, .-spanguard_go_trampoline
	.section .note.GNU-stack, "", @progbits
