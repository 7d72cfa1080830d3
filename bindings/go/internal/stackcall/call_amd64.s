#include "textflag.h"

// func Call(tramp, fn, arg unsafe.Pointer) int32
//
// NOSPLIT with no frame: the trampoline pushes two words on this stack
// (what a NOSPLIT function may use) and switches to the thread's C stack.
// BX is callee-saved in the System V ABI, so it keeps the Go stack
// pointer across the call; the ABI wrapper Go calls this through restores
// the registers Go's internal ABI fixes (R14, X15) after it.
TEXT ·Call(SB), NOSPLIT, $0-28
	MOVQ tramp+0(FP), AX
	MOVQ fn+8(FP), DI
	MOVQ arg+16(FP), SI
	MOVQ SP, BX
	ANDQ $~15, SP
	CALL AX
	MOVQ BX, SP
	MOVL AX, ret+24(FP)
	RET
