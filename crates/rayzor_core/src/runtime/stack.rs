//! The native stack limit of the calling thread, so generated code can trap
//! `stack_overflow` before it runs off the end of the stack.

use std::cell::Cell;

thread_local! {
    static LIMIT: Cell<u64> = const { Cell::new(0) };
}

/// Lowest address compiled code may push frames to on this thread.
pub fn stack_limit() -> u64 {
    LIMIT.with(|l| {
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
        // Leave headroom for the host frames below us and for signal handlers.
        let margin = (size / 8).clamp(64 << 10, 256 << 10);
        addr as u64 + margin as u64
    }
}
