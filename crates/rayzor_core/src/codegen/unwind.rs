//! Non-local exit from generated code on a trap (`unwind.c`).
//!
//! Generated code never returns from a trap: it stores the trap in `VmCtx`
//! and calls `rayzor_unwind(VmCtx::resume)`, which resumes the host entry's
//! `protected_call` at once, however many frames deep. So no call site checks
//! for a pending trap after a call into MIR code (the check wasmtime's and
//! numba's callers would otherwise pay on every call).

use super::abi::VmCtx;

pub type HostEntry = unsafe extern "C" fn(*mut VmCtx, *const u64, *mut u64);

extern "C" {
    fn rayzor_protected_call(
        entry: HostEntry,
        vmctx: *mut VmCtx,
        args: *const u64,
        rets: *mut u64,
        resume: *mut usize,
    ) -> i32;
    fn rayzor_unwind(resume: usize) -> !;
}

/// Address of `rayzor_unwind(resume)`, which trap paths call (`VmCtx::unwind`).
pub fn unwind_address() -> usize {
    rayzor_unwind as *const () as usize
}

/// Leave the generated code of the call `vmctx` belongs to, from a builtin it
/// called, with the trap stored in it: resumes the host entry's
/// `protected_call`, like a trap path.
///
/// # Safety
/// Called only from a builtin that generated code called, with no value with
/// a destructor live in the builtin (its frame is left without unwinding).
pub unsafe fn leave(vmctx: *mut VmCtx) -> ! {
    // SAFETY: the caller's contract; `resume` was set by `protected_call`.
    unsafe { rayzor_unwind((*vmctx).resume) }
}

/// Run `entry(vmctx, args, rets)`; returns false when the code unwound (a
/// trap is pending in `*vmctx`).
///
/// # Safety
/// `entry` must be a host entry compiled for `vmctx`'s jit, with buffers as
/// long as it reads and writes; `vmctx` must outlive the call.
pub unsafe fn protected_call(entry: HostEntry, vmctx: *mut VmCtx, args: *const u64, rets: *mut u64) -> bool {
    // SAFETY: the caller's contract; `resume` is a field of the live VmCtx,
    // set here before any code that could unwind runs.
    unsafe {
        let resume = std::ptr::addr_of_mut!((*vmctx).resume);
        rayzor_protected_call(entry, vmctx, args, rets, resume) == 0
    }
}
