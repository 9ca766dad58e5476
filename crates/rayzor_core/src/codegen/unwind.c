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

/* GCC and Clang both have the builtins on x86-64 (the targets this is built and
 * tested for); Clang lacks them on some targets (AArch64), where POSIX _setjmp /
 * _longjmp (no signal mask either) do the same job. */
#if defined(__x86_64__) || (defined(__GNUC__) && !defined(__clang__))
typedef void *rayzor_resume_buf[5];
#define RAYZOR_SETJMP(buf) __builtin_setjmp(buf)
#define RAYZOR_LONGJMP(buf) __builtin_longjmp(buf, 1)
#else
#include <setjmp.h>
typedef jmp_buf rayzor_resume_buf;
#define RAYZOR_SETJMP(buf) _setjmp(buf)
#define RAYZOR_LONGJMP(buf) _longjmp(buf, 1)
#endif

typedef void (*rayzor_host_entry)(void *vmctx, const uint64_t *args, uint64_t *rets);

/* Call entry(vmctx, args, rets) with *resume set to a resume point for
 * rayzor_unwind. Returns 0 when the entry returned, 1 when the code unwound. */
int rayzor_protected_call(rayzor_host_entry entry, void *vmctx, const uint64_t *args, uint64_t *rets,
                          void **resume) {
    rayzor_resume_buf buf;
    *resume = (void *)buf;
    if (RAYZOR_SETJMP(buf) != 0) {
        return 1;
    }
    entry(vmctx, args, rets);
    return 0;
}

/* Resume at the point rayzor_protected_call recorded in `buf` (never returns). */
void rayzor_unwind(void *buf) {
    RAYZOR_LONGJMP(*(rayzor_resume_buf *)buf);
}
