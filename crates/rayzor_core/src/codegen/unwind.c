/*
 * Traps leave generated code in one jump, as wasmtime's helpers.c does: the
 * host entry runs inside rayzor_protected_call, which records a resume point
 * (GCC/Clang's __builtin_setjmp: frame, stack pointer and resume address
 * only, a few instructions, no signal mask); a trapping function stores the
 * trap in VmCtx and calls rayzor_unwind, which resumes there. Only frames of
 * generated code lie between the two (builtins and host calls return before
 * their caller unwinds), and those hold nothing to clean up. This cannot be
 * written in Rust: a function that returns twice is not expressible there.
 */
#include <stdint.h>

typedef void (*rayzor_host_entry)(void *vmctx, const uint64_t *args, uint64_t *rets);

/* Call entry(vmctx, args, rets) with *resume set to a resume point for
 * rayzor_unwind. Returns 0 when the entry returned, 1 when the code unwound. */
int rayzor_protected_call(rayzor_host_entry entry, void *vmctx, const uint64_t *args, uint64_t *rets,
                          void **resume) {
    void *buf[5];
    *resume = buf;
    if (__builtin_setjmp(buf) != 0) {
        return 1;
    }
    entry(vmctx, args, rets);
    return 0;
}

/* Resume at the point rayzor_protected_call recorded in `buf` (never returns). */
void rayzor_unwind(void **buf) {
    __builtin_longjmp(buf, 1);
}
