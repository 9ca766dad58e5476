//! Aborting a running call from inside a host function, without unwinding.
//!
//! A host function (a Python callable behind the package's trampoline, or a
//! ctypes callback whose exception was caught) cannot unwind through the
//! interpreter or through JIT frames. Instead it calls [`abort_current`],
//! which stores [`HOST_ABORT`] in the trap word of the innermost MIR call
//! running on this thread; the interpreter checks that word after each host
//! call, and compiled code checks `VmCtx::trap` after each host call (like a
//! trap), so the call returns at once with [`RunError::HostAborted`]
//! (crate::mir::interp::RunError). The caller that installed the abort (the
//! Python glue) knows why.

use std::cell::Cell;

/// The trap word value of an aborted call; never a `TrapKind` code.
pub const HOST_ABORT: u64 = 0xAB0_0000;

thread_local! {
    static CURRENT: Cell<*mut u64> = const { Cell::new(std::ptr::null_mut()) };
}

/// While alive, `word` is the trap word of the innermost call on this thread.
pub struct Scope {
    prev: *mut u64,
}

impl Scope {
    /// # Safety
    /// `word` must stay valid (and only be read by this thread) until the
    /// scope is dropped; scopes must be dropped in reverse order of creation.
    pub unsafe fn enter(word: *mut u64) -> Scope {
        Scope { prev: CURRENT.with(|c| c.replace(word)) }
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.prev));
    }
}

/// Abort the innermost MIR call running on this thread (it returns
/// `RunError::HostAborted` as soon as the current host function returns).
/// Returns false when no MIR call is running on this thread.
pub fn abort_current() -> bool {
    CURRENT.with(|c| {
        let p = c.get();
        if p.is_null() {
            return false;
        }
        // SAFETY: `Scope::enter`'s contract: the word is live while current.
        unsafe { *p = HOST_ABORT };
        true
    })
}
