//! The native stack compiled code runs on.
//!
//! MIR promises that 10,000 nested calls work in every tier, but T0 frames
//! can be a kilobyte or more (every live value spilled), more than a Python
//! thread's 8 MiB stack holds. So each thread that calls into compiled code
//! gets its own large stack, reserved (not committed) once with `mmap` and
//! entered with `psm::on_stack` for the duration of the outermost host call.
//! Prologues check the stack pointer against a limit near its bottom and
//! trap `stack_overflow` rather than touch the guard page.

use std::cell::Cell;

/// Virtual size of each thread's compiled-code stack. Pages are committed
/// only when touched.
pub const JIT_STACK_BYTES: usize = 256 << 20;
/// Room kept free below the limit for host helpers (alloc, memmove) and callbacks.
const HEADROOM: usize = 256 << 10;
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

thread_local! {
    static STACK: Cell<Option<*mut u8>> = const { Cell::new(None) };
    static OWNER: std::cell::RefCell<Option<JitStack>> = const { std::cell::RefCell::new(None) };
    /// Limit of the stack compiled code is running on now (0: not inside compiled code).
    static ACTIVE_LIMIT: Cell<u64> = const { Cell::new(0) };
    static THREAD_LIMIT: Cell<u64> = const { Cell::new(0) };
}

fn jit_stack() -> Option<*mut u8> {
    if let Some(p) = STACK.with(Cell::get) {
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
    OWNER.with(|o| *o.borrow_mut() = Some(JitStack { base }));
    STACK.with(|s| s.set(Some(base)));
    Some(base)
}

/// Run `f` (a call into compiled code) on this thread's compiled-code stack;
/// `f` gets the stack limit its prologues must respect. Nested calls (compiled
/// code -> host -> compiled code) stay on the stack they are on.
pub fn on_jit_stack<R>(f: impl FnOnce(u64) -> R) -> R {
    let active = ACTIVE_LIMIT.with(Cell::get);
    if active != 0 {
        return f(active);
    }
    let Some(base) = jit_stack() else {
        // No memory for a private stack: run here, with this thread's limit.
        return f(thread_stack_limit());
    };
    let limit = base as u64 + (GUARD + HEADROOM) as u64;
    ACTIVE_LIMIT.with(|a| a.set(limit));
    // SAFETY: `base..base + JIT_STACK_BYTES` is a live mapping owned by this
    // thread and not in use (ACTIVE_LIMIT was 0); `f` does not unwind (it only
    // calls compiled code, which never panics or unwinds).
    let r = unsafe { psm::on_stack(base, JIT_STACK_BYTES, || f(limit)) };
    ACTIVE_LIMIT.with(|a| a.set(0));
    r
}

/// Lowest address frames may reach on this thread's own stack.
pub fn thread_stack_limit() -> u64 {
    THREAD_LIMIT.with(|l| {
        if l.get() == 0 {
            l.set(compute());
        }
        l.get()
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
        let margin = (size / 8).clamp(64 << 10, 256 << 10);
        addr as u64 + margin as u64
    }
}
