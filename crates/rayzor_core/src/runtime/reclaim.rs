//! Freeing code that calls may still be running: grace periods over the
//! threads' context slots.
//!
//! Promotion, the tier policy and OSR replace code while other threads may be
//! running it, so replaced code is *retired* and freed only when no call that
//! could have read its address is still running. An outermost host call marks
//! its thread's context slot busy for its whole duration: the slot's call word
//! (`interrupt::CALLS_WORD`) is odd while a call runs. The mark is a plain
//! store: the cost of the protection sits on the retiring side, which is rare
//! (a compile), not on the call path (crossbeam-epoch's `pin`, used before,
//! cost ~15 ns of a ~65 ns Python call: a locked instruction for its fence).
//!
//! The ordering argument is the asymmetric fence of liburcu's membarrier flavour
//! and folly's `asymmetricHeavyBarrier`. The retiring side has already swapped
//! the code's address out of every table; it then runs
//! `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`, which makes every running
//! thread of the process execute a full fence. A call whose busy mark precedes
//! its thread's fence is seen busy by the scan after it, and waited for; a call
//! whose mark follows it loads code addresses after it, so it sees the new ones.
//! Retired code is freed once each slot seen busy has changed its call word
//! (that call ended). Where the system call is unavailable, calls fence after
//! their mark instead (`fence(SeqCst)`, what `pin` paid) and so does the scan.
//!
//! Threads without a slot (more than `CTX_SLOTS` at once) pin crossbeam-epoch
//! instead, and freeing goes through crossbeam's deferral, which waits for them.
//! Retired code waits in a list checked at every retirement and at every pass of
//! the promoter's monitor (`collect`): code retired while some other thread was
//! in a call is freed at the first check after that call ended.

use crate::codegen::MachineCode;
use crate::mir::interrupt;
use parking_lot::Mutex;
use std::sync::atomic::{compiler_fence, fence, AtomicU64, Ordering};
use std::sync::{Once, OnceLock};

/// From `linux/membarrier.h`.
const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

/// Whether retiring fences every running thread with `membarrier` (registered
/// for this process): calls then mark their slot without a fence. Decided once,
/// before the first call of the process (`init`, from `Jit::new`), never changed.
static ASYMMETRIC: OnceLock<bool> = OnceLock::new();

/// Retired code and the slots whose calls it waits for (None: not yet scanned).
struct Retired {
    code: Box<dyn MachineCode>,
    waits: Option<Vec<(&'static AtomicU64, u64)>>,
}

static RETIRED: Mutex<Vec<Retired>> = Mutex::new(Vec::new());

/// Choose the protocol (before any call into compiled code can run).
pub fn init() {
    ASYMMETRIC.get_or_init(|| {
        // SAFETY: a system call without pointer arguments.
        unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0 }
    });
    static FORK: Once = Once::new();
    FORK.call_once(|| {
        // SAFETY: registering a plain extern "C" handler.
        unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
    });
}

/// A fork child has only the forking thread: a list another thread was changing is
/// left behind (leaked, never read: it may be half-written) and the lock freed.
extern "C" fn after_fork_in_child() {
    if RETIRED.is_locked() {
        // SAFETY: the lock's owner does not exist in the child; the old list is
        // overwritten without being read or dropped.
        unsafe {
            std::ptr::write(RETIRED.data_ptr(), Vec::new());
            RETIRED.force_unlock();
        }
    }
}

/// An outermost host call running in a thread's slot: the slot's call word is
/// odd until this is dropped.
pub struct Running {
    calls: &'static AtomicU64,
    after: u64,
}

impl Running {
    /// Mark the slot with call word `calls` busy; None when a call already runs
    /// in it (a nested call: compiled code -> host -> here), which protects this one.
    #[inline]
    pub fn enter(calls: &'static AtomicU64) -> Option<Running> {
        // Only this thread writes its slot's call word (and a fork child's handler).
        let w = calls.load(Ordering::Relaxed);
        if w & 1 != 0 {
            return None;
        }
        calls.store(w + 1, Ordering::Relaxed);
        if ASYMMETRIC.get() == Some(&true) {
            // The retiring side's barrier orders the mark before this call's loads.
            compiler_fence(Ordering::SeqCst);
        } else {
            fence(Ordering::SeqCst);
        }
        Some(Running { calls, after: w + 2 })
    }
}

impl Drop for Running {
    #[inline]
    fn drop(&mut self) {
        // Release: everything the call read of the code happens before the scan sees this.
        self.calls.store(self.after, Ordering::Release);
    }
}

/// Free `code` once no call that may be running it is still running. Its address
/// must already be out of every table calls read code addresses from.
pub fn retire(code: Box<dyn MachineCode>) {
    let mut list = RETIRED.lock();
    list.push(Retired { code, waits: None });
    let done = scan(&mut list);
    drop(list);
    free(done);
}

/// Free what retired code no call can be running any more.
pub fn collect() {
    let mut list = RETIRED.lock();
    if list.is_empty() {
        return;
    }
    let done = scan(&mut list);
    drop(list);
    free(done);
}

/// Code retired so far and not yet freed (tests).
pub fn waiting() -> usize {
    RETIRED.lock().len()
}

/// Take out of `list` the code no running call can use.
fn scan(list: &mut Vec<Retired>) -> Vec<Box<dyn MachineCode>> {
    if list.iter().any(|r| r.waits.is_none()) {
        if ASYMMETRIC.get() == Some(&true) {
            // SAFETY: a system call without pointer arguments.
            let ok =
                unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) } == 0;
            if !ok {
                // Registered, so this cannot fail; if it ever did, whether a call is
                // running the new code cannot be told: it is never freed.
                for r in list.extract_if(.., |r| r.waits.is_none()) {
                    std::mem::forget(r.code);
                }
            }
        } else {
            fence(Ordering::SeqCst);
        }
        let busy: Vec<(&'static AtomicU64, u64)> = interrupt::slot_call_words()
            .map(|w| (w, w.load(Ordering::SeqCst)))
            .filter(|(_, v)| v & 1 != 0)
            .collect();
        for r in list.iter_mut().filter(|r| r.waits.is_none()) {
            r.waits = Some(busy.clone());
        }
    }
    for r in list.iter_mut() {
        if let Some(waits) = &mut r.waits {
            waits.retain(|(w, v)| w.load(Ordering::Acquire) == *v);
        }
    }
    list.extract_if(.., |r| r.waits.as_ref().is_some_and(Vec::is_empty)).map(|r| r.code).collect()
}

/// Free through crossbeam's deferral: threads without a slot pin it for their calls.
fn free(done: Vec<Box<dyn MachineCode>>) {
    if done.is_empty() {
        return;
    }
    let guard = crossbeam_epoch::pin();
    for code in done {
        guard.defer(move || drop(code));
    }
    guard.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mir::interrupt::CtxSlot;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    /// Code that is never run: only its address, to find it in the list.
    struct Fake(usize);
    impl MachineCode for Fake {
        fn address(&self) -> usize {
            self.0
        }
        fn code_len(&self) -> usize {
            0
        }
        fn held_bytes(&self) -> usize {
            0
        }
    }

    fn is_waiting(address: usize) -> bool {
        RETIRED.lock().iter().any(|r| r.code.address() == address)
    }

    /// Collect until `address` left the list (other tests' calls may hold it a moment).
    fn freed_soon(address: usize) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            collect();
            if !is_waiting(address) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        false
    }

    #[test]
    fn code_retired_during_a_call_waits_for_it_and_no_longer() {
        init();
        let (entered, wait_entered) = mpsc::channel();
        let (leave, wait_leave) = mpsc::channel::<()>();
        let caller = std::thread::spawn(move || {
            let slot = CtxSlot::claim().expect("a free context slot");
            let call = Running::enter(slot.calls()).expect("no call runs in a new slot");
            assert!(Running::enter(slot.calls()).is_none(), "a nested call is not a second mark");
            entered.send(()).unwrap();
            wait_leave.recv().unwrap();
            drop(call);
        });
        wait_entered.recv().unwrap();
        let address = 0x5eed_0001;
        retire(Box::new(Fake(address)));
        for _ in 0..3 {
            collect();
            assert!(is_waiting(address), "freed while a call that may run it is still running");
        }
        leave.send(()).unwrap();
        caller.join().unwrap();
        assert!(freed_soon(address), "still held after the call ended");
    }

    #[test]
    fn a_call_that_starts_after_the_retirement_does_not_hold_it() {
        init();
        let slot = CtxSlot::claim().expect("a free context slot");
        let address = 0x5eed_0002;
        retire(Box::new(Fake(address)));
        // This thread's call starts after the code left every table: it cannot run it.
        let call = Running::enter(slot.calls()).expect("no call runs in a new slot");
        assert!(freed_soon(address), "held by a call that started after the retirement");
        drop(call);
    }
}
