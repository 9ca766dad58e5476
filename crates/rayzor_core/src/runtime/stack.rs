//! The native stack compiled code runs on.
//!
//! MIR promises that 10,000 nested calls work in every tier, but T0 frames
//! can be a kilobyte or more (every live value spilled), more than a Python
//! thread's 8 MiB stack holds. So each thread that calls into compiled code
//! gets its own large stack, reserved (not committed) once with `mmap` and
//! entered with `psm::on_stack` for the duration of the outermost host call.
//! Prologues check the stack pointer against a limit near its bottom and
//! trap `stack_overflow` rather than touch the guard page.

use crate::codegen::abi::MAX_FRAME_BYTES;
use std::cell::Cell;

/// Virtual size of each thread's compiled-code stack: room for
/// `MAX_CALL_DEPTH` levels of two frames of `MAX_FRAME_BYTES` each (with OSR a
/// level holds the frame that transferred and its continuation's). It is only
/// reserved; pages are committed when touched.
pub const JIT_STACK_BYTES: usize = 8 << 30;
/// Room kept free below the limit: one frame of the largest size (allocated
/// before its prologue checks the limit) plus host helpers and callbacks.
const HEADROOM: usize = MAX_FRAME_BYTES as usize + (256 << 10);
const GUARD: usize = 64 << 10;

struct JitStack {
    base: *mut u8,
}

impl Drop for JitStack {
    fn drop(&mut self) {
        // SAFETY: we own the mapping; the thread is exiting, so nothing runs on it.
        unsafe {
            libc::munmap(self.base as *mut libc::c_void, JIT_STACK_BYTES);
        }
    }
}

/// Everything a host call needs from thread-local storage, in one place: in a
/// shared library every distinct thread-local costs a `__tls_get_addr` call.
pub struct ThreadState {
    stack: Cell<*mut u8>,
    owner: std::cell::RefCell<Option<JitStack>>,
    /// Limit of the stack compiled code is running on now (0: not inside compiled code).
    active_limit: Cell<u64>,
    thread_limit: Cell<u64>,
    /// Sampling countdowns (calls, back-edges), carried from one host call to the next.
    pub ticks: Cell<(u64, u64)>,
}

thread_local! {
    static STATE: ThreadState = const {
        ThreadState {
            stack: Cell::new(std::ptr::null_mut()),
            owner: std::cell::RefCell::new(None),
            active_limit: Cell::new(0),
            thread_limit: Cell::new(0),
            ticks: Cell::new((1, 1)),
        }
    };
}

impl ThreadState {
    fn jit_stack(&self) -> Option<*mut u8> {
        let p = self.stack.get();
        if !p.is_null() {
            return Some(p);
        }
        // SAFETY: anonymous private reservation; checked for failure; the lowest
        // GUARD bytes are made inaccessible as a guard.
        let base = unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                JIT_STACK_BYTES,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            );
            if p == libc::MAP_FAILED {
                return None;
            }
            libc::mprotect(p, GUARD, libc::PROT_NONE);
            p as *mut u8
        };
        *self.owner.borrow_mut() = Some(JitStack { base });
        self.stack.set(base);
        Some(base)
    }

    fn thread_stack_limit(&self) -> u64 {
        if self.thread_limit.get() == 0 {
            self.thread_limit.set(compute());
        }
        self.thread_limit.get()
    }
}

/// Run `f` (a call into compiled code) on this thread's compiled-code stack;
/// `f` gets the stack limit its prologues must respect and the thread's state.
/// Nested calls (compiled code -> host -> compiled code) stay on the stack
/// they are on.
pub fn on_jit_stack<R>(f: impl FnOnce(u64, &ThreadState) -> R) -> R {
    STATE.with(|st| {
        let active = st.active_limit.get();
        if active != 0 {
            return f(active, st);
        }
        let Some(base) = st.jit_stack() else {
            // No memory for a private stack: run here, with this thread's limit.
            return f(st.thread_stack_limit(), st);
        };
        let limit = base as u64 + (GUARD + HEADROOM) as u64;
        st.active_limit.set(limit);
        // SAFETY: `base..base + JIT_STACK_BYTES` is a live mapping owned by this
        // thread and not in use (active_limit was 0); `f` does not unwind (it
        // only calls compiled code, which never panics or unwinds).
        let r = unsafe { psm::on_stack(base, JIT_STACK_BYTES, || f(limit, st)) };
        st.active_limit.set(0);
        r
    })
}

fn compute() -> u64 {
    // SAFETY: pthread_getattr_np fills `attr` for the current thread; we
    // destroy it afterwards. On failure, fall back to "no limit".
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_getattr_np(libc::pthread_self(), &mut attr) != 0 {
            return 1;
        }
        let mut addr: *mut libc::c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let rc = libc::pthread_attr_getstack(&attr, &mut addr, &mut size);
        libc::pthread_attr_destroy(&mut attr);
        if rc != 0 || addr.is_null() {
            return 1;
        }
        let margin = HEADROOM + GUARD;
        addr as u64 + margin as u64
    }
}
