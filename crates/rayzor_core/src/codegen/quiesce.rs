//! Process-wide quiescence of compiles around `fork()` and process exit.
//!
//! Every compile, and every removal of LLVM code, runs inside a `Section`.
//! A `pthread_atfork` prepare handler stops new sections from starting and
//! waits (at most `FORK_WAIT`) until none is running, so the child never
//! inherits a lock (LLVM's ORC session lock, a function's publish lock, the
//! event log) held by a compile thread that does not exist in the child. In
//! the child compiles work as usual; only if the wait timed out (a compile
//! was still running when the process forked) is the child *poisoned*:
//! compiles fail with a clear error and LLVM code is leaked instead of
//! removed. At exit, a handler that runs before LLVM's static destructors ends
//! the process at once (`_exit` with the exit status) if an LLVM compile is
//! still running on an abandoned compile thread: the destructors would pull
//! LLVM's global state from under it.
//!
//! Before that, when the embedder starts shutting down (Python's `atexit`
//! calls `process_exiting`), compiles still running are doomed: their code
//! will never run. Closing a jit then waits for none of them, and their
//! threads drop to the lowest priority (nice 19), so they stop competing for
//! the CPU with the interpreter's own finalisation, which is what exit time is
//! made of (a multi-second T3 compile otherwise runs on, at full priority,
//! until `_exit`). Not `SCHED_IDLE`: on a busy machine a `SCHED_IDLE` thread
//! can wait 100 ms to be scheduled, and every thread must run once to die
//! before the process counts as exited.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicUsize, Ordering::SeqCst};
use std::sync::Once;
use std::time::{Duration, Instant};

/// How long `fork()` waits for running compiles before forking anyway.
pub const FORK_WAIT: Duration = Duration::from_secs(5);

static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
static LLVM_IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
/// Set while forking (and from exit on): no section may start.
static BLOCKED: AtomicBool = AtomicBool::new(false);
static POISONED: AtomicBool = AtomicBool::new(false);
/// Set by `process_exiting`.
static EXITING: AtomicBool = AtomicBool::new(false);

/// Kernel thread ids of the threads inside a section (0: free slot), so that
/// `process_exiting` can find them. Lock-free: a lock here could be inherited
/// held by a fork child. A thread finding no free slot is simply not tracked.
const SLOTS: usize = 64;
static THREADS: [AtomicI32; SLOTS] = [const { AtomicI32::new(0) }; SLOTS];

thread_local! {
    /// Sections this thread is inside (a compile may drop retired code, which is a section too).
    static DEPTH: Cell<usize> = const { Cell::new(0) };
    /// This thread's slot in `THREADS` while it is inside a section.
    static SLOT: Cell<Option<usize>> = const { Cell::new(None) };
}

/// A compile (or an LLVM code removal) in progress; see the module docs.
pub struct Section {
    llvm: bool,
    /// Ends on the thread that entered it (the depth is per thread).
    _not_send: std::marker::PhantomData<*const ()>,
}

/// Enter a section (`llvm`: it uses LLVM). Waits while a fork is being prepared.
pub fn enter(llvm: bool) -> Section {
    install();
    if DEPTH.with(|d| d.get()) == 0 {
        loop {
            while BLOCKED.load(SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
            IN_FLIGHT.fetch_add(1, SeqCst);
            if !BLOCKED.load(SeqCst) {
                break;
            }
            IN_FLIGHT.fetch_sub(1, SeqCst);
        }
        track_this_thread();
    } else {
        IN_FLIGHT.fetch_add(1, SeqCst);
    }
    DEPTH.with(|d| d.set(d.get() + 1));
    if llvm {
        LLVM_IN_FLIGHT.fetch_add(1, SeqCst);
    }
    Section { llvm, _not_send: std::marker::PhantomData }
}

impl Drop for Section {
    fn drop(&mut self) {
        if self.llvm {
            LLVM_IN_FLIGHT.fetch_sub(1, SeqCst);
            static AFTER_FIRST_LLVM: Once = Once::new();
            // LLVM builds some statics lazily during its first compile; their
            // destructors are registered then. Register the exit handler again
            // after them, so it runs before them too.
            AFTER_FIRST_LLVM.call_once(register_exit_handler);
        }
        if DEPTH.with(|d| d.replace(d.get() - 1)) == 1 {
            if let Some(i) = SLOT.with(Cell::take) {
                THREADS[i].store(0, SeqCst);
            }
        }
        IN_FLIGHT.fetch_sub(1, SeqCst);
    }
}

fn gettid() -> libc::pid_t {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

fn track_this_thread() {
    let tid = gettid();
    let slot = THREADS.iter().position(|t| t.compare_exchange(0, tid, SeqCst, SeqCst).is_ok());
    SLOT.with(|s| s.set(slot));
}

/// The embedder is shutting down the process (Python: at `atexit`): from now
/// on closing a jit does not wait for a compile in progress (see `exiting`),
/// and every thread compiling now, except the caller, drops to nice 19: its
/// code will never be used, and it must not slow down the exit.
pub fn process_exiting() {
    EXITING.store(true, SeqCst);
    let me = gettid();
    for t in &THREADS {
        let tid = t.load(SeqCst);
        if tid != 0 && tid != me {
            demote(tid);
        }
    }
}

/// Whether `process_exiting` was called: nothing compiled now will be used.
pub fn exiting() -> bool {
    EXITING.load(SeqCst)
}

#[cfg(target_os = "linux")]
fn demote(tid: libc::pid_t) {
    // SAFETY: plain syscall on a thread id of this process (Linux applies
    // PRIO_PROCESS with a thread id to that thread); raising a nice value needs
    // no privilege. A thread that has just left its section (and maybe exited)
    // makes this fail harmlessly, or demotes a thread that is about to be torn
    // down with the process anyway.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19);
    }
}

#[cfg(not(target_os = "linux"))]
fn demote(_tid: libc::pid_t) {}

/// Whether this process was forked while a compile was running in another
/// thread: compiling is then refused (the compile's locks may be held forever).
pub fn poisoned() -> bool {
    POISONED.load(SeqCst)
}

/// Why compiling is refused in a poisoned process.
pub const POISONED_MESSAGE: &str = "this process was forked while a compile was running in another thread \
     (for longer than the fork wait); compiling is disabled here, calls still work";

fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // SAFETY: registering plain extern "C" handlers.
        unsafe {
            libc::pthread_atfork(Some(prepare), Some(parent), Some(child));
        }
        register_exit_handler();
    });
}

extern "C" fn prepare() {
    BLOCKED.store(true, SeqCst);
    let deadline = Instant::now() + FORK_WAIT;
    while IN_FLIGHT.load(SeqCst) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}

extern "C" fn parent() {
    BLOCKED.store(false, SeqCst);
}

extern "C" fn child() {
    // Only this thread exists in the child.
    let outside = DEPTH.with(|d| d.get());
    if IN_FLIGHT.load(SeqCst) > outside {
        POISONED.store(true, SeqCst);
    }
    IN_FLIGHT.store(outside, SeqCst);
    LLVM_IN_FLIGHT.store(0, SeqCst);
    for t in &THREADS {
        t.store(0, SeqCst);
    }
    if let Some(i) = SLOT.with(Cell::get) {
        THREADS[i].store(gettid(), SeqCst); // this thread, inside a section, has a new id
    }
    crate::mir::interrupt::release_other_slots_after_fork();
    BLOCKED.store(false, SeqCst);
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn register_exit_handler() {
    extern "C" {
        fn on_exit(f: extern "C" fn(libc::c_int, *mut libc::c_void), arg: *mut libc::c_void) -> libc::c_int;
    }
    extern "C" fn at_exit(status: libc::c_int, _: *mut libc::c_void) {
        BLOCKED.store(true, SeqCst);
        if LLVM_IN_FLIGHT.load(SeqCst) > 0 {
            // SAFETY: flushing C stdio and ending the process, as exit would.
            unsafe {
                libc::fflush(std::ptr::null_mut());
                libc::_exit(status);
            }
        }
    }
    // SAFETY: registers a handler that only touches atomics and ends the process.
    unsafe {
        on_exit(at_exit, std::ptr::null_mut());
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn register_exit_handler() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fork_prepare_waits_for_sections_and_blocks_new_ones() {
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            let held = enter(false);
            tx.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(50));
            drop(held);
        });
        rx.recv().unwrap();
        prepare(); // returns once the section in the other thread has ended
        assert_eq!(IN_FLIGHT.load(SeqCst), 0);
        let entered = std::sync::Arc::new(AtomicBool::new(false));
        let e = entered.clone();
        let u = std::thread::spawn(move || {
            let _s = enter(true);
            e.store(true, SeqCst);
        });
        std::thread::sleep(Duration::from_millis(30));
        assert!(!entered.load(SeqCst), "a section started while a fork was being prepared");
        parent();
        u.join().unwrap();
        t.join().unwrap();
        assert!(entered.load(SeqCst));
        assert!(!poisoned());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn threads_in_sections_are_tracked_and_can_be_demoted() {
        // What process_exiting does to each tracked thread, without setting the
        // process-wide exiting flag (other tests in this binary stop promoters).
        let (tx, rx) = std::sync::mpsc::channel();
        let (go, wait) = std::sync::mpsc::channel::<()>();
        let t = std::thread::spawn(move || {
            let s = enter(false);
            let inner = enter(true); // nested: still one slot
            tx.send(gettid()).unwrap();
            wait.recv().unwrap();
            // SAFETY: querying this thread's own nice value.
            let nice = unsafe { libc::getpriority(libc::PRIO_PROCESS, gettid() as libc::id_t) };
            drop(inner);
            let tracked_after_inner = THREADS.iter().any(|t| t.load(SeqCst) == gettid());
            drop(s);
            let tracked_after_outer = THREADS.iter().any(|t| t.load(SeqCst) == gettid());
            (nice, tracked_after_inner, tracked_after_outer)
        });
        let tid = rx.recv().unwrap();
        assert_eq!(THREADS.iter().filter(|t| t.load(SeqCst) == tid).count(), 1);
        demote(tid);
        go.send(()).unwrap();
        let (nice, after_inner, after_outer) = t.join().unwrap();
        assert_eq!(nice, 19);
        assert!(after_inner && !after_outer, "the slot is freed when the outermost section ends");
    }
}
