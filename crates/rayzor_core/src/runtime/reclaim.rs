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
//! instead, and freeing goes through crossbeam's deferral, which waits for them
//! (and drops the code once its epoch moved on: see `free`).
//! Retired code waits in a list checked at every retirement, at every pass of
//! the promoter's monitor, and (while some code waits for a call to end) at the
//! end of every host call: code retired while some other thread was in a call
//! is handed to crossbeam when that call or a later one returns.
//!
//! The list's lock is a spin lock on one atomic word, held for a scan only: a fork
//! child resets it with a store (a `Mutex` held by a thread that is not in the
//! child could not be released safely there).

use crate::codegen::MachineCode;
use crate::mir::interrupt;
use std::cell::UnsafeCell;
use std::sync::atomic::{compiler_fence, fence, AtomicBool, AtomicU64, Ordering};
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

/// The retired code not yet freed, behind a spin lock (see the module doc).
struct RetiredList {
    locked: AtomicBool,
    list: UnsafeCell<Vec<Retired>>,
}

// SAFETY: the list is only reached through `lock`/`try_lock`, which hand it to one
// thread at a time.
unsafe impl Sync for RetiredList {}

struct ListGuard(&'static RetiredList);

impl RetiredList {
    fn try_lock(&'static self) -> Option<ListGuard> {
        // `then`, not `then_some`: a guard built for a failed attempt would be
        // dropped, and its drop would release the lock another thread holds (two
        // threads then took the same code out of the list: a double free).
        self.locked
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
            .then(|| ListGuard(self))
    }

    fn lock(&'static self) -> ListGuard {
        loop {
            if let Some(g) = self.try_lock() {
                return g;
            }
            std::thread::yield_now();
        }
    }
}

impl std::ops::Deref for ListGuard {
    type Target = Vec<Retired>;
    fn deref(&self) -> &Vec<Retired> {
        // SAFETY: this guard holds the lock.
        unsafe { &*self.0.list.get() }
    }
}

impl std::ops::DerefMut for ListGuard {
    fn deref_mut(&mut self) -> &mut Vec<Retired> {
        // SAFETY: this guard holds the lock.
        unsafe { &mut *self.0.list.get() }
    }
}

impl Drop for ListGuard {
    fn drop(&mut self) {
        self.0.locked.store(false, Ordering::Release);
    }
}

static RETIRED: RetiredList =
    RetiredList { locked: AtomicBool::new(false), list: UnsafeCell::new(Vec::new()) };
/// Some retired code waits for a call that was running when it was retired:
/// host calls look at the list when they return (`after_call`).
static PARKED: AtomicBool = AtomicBool::new(false);

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
    if RETIRED.locked.load(Ordering::SeqCst) {
        // SAFETY: the lock's owner does not exist in the child and no other
        // thread does; the old list is overwritten without being read or dropped.
        unsafe { std::ptr::write(RETIRED.list.get(), Vec::new()) };
        RETIRED.locked.store(false, Ordering::SeqCst);
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
    retire_all(std::iter::once(code));
}

/// `retire` for several pieces of code at once (one barrier for all).
pub fn retire_all(codes: impl IntoIterator<Item = Box<dyn MachineCode>>) {
    let mut list = RETIRED.lock();
    let before = list.len();
    list.extend(codes.into_iter().map(|code| Retired { code, waits: None }));
    if list.len() != before {
        scan_and_free(list);
    }
}

/// Free what retired code no call can be running any more.
pub fn collect() {
    scan_and_free(RETIRED.lock());
}

/// At the end of a host call: if some code waits for a call to end (maybe this
/// one), look at the list now. One relaxed load otherwise.
#[inline]
pub fn after_call() {
    if PARKED.load(Ordering::Relaxed) {
        collect_parked();
    }
}

#[cold]
fn collect_parked() {
    // Not waiting for the lock on a call's way out: whoever holds it is scanning.
    if let Some(list) = RETIRED.try_lock() {
        scan_and_free(list);
    }
}

/// `scan`, then free what it took out once the lock is released (dropping code
/// may take other locks: LLVM's).
fn scan_and_free(mut list: ListGuard) {
    let done = scan(&mut list);
    drop(list);
    free(done);
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
    let done = list.extract_if(.., |r| r.waits.as_ref().is_some_and(Vec::is_empty)).map(|r| r.code).collect();
    PARKED.store(!list.is_empty(), Ordering::Relaxed);
    done
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
    // Deferred code is dropped two epochs later, once later frees (or calls of
    // threads without a slot) have moved the epoch on: the last few pieces retired
    // wait for the next retirement.
    guard.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mir::interrupt::CtxSlot;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    /// Code that is never run: an address to find it in the list, and a flag set
    /// when it is really dropped (freed).
    struct Fake(usize, std::sync::Arc<AtomicBool>);
    impl Drop for Fake {
        fn drop(&mut self) {
            self.1.store(true, Ordering::SeqCst);
        }
    }
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

    fn fake(address: usize) -> (Box<dyn MachineCode>, std::sync::Arc<AtomicBool>) {
        let dropped = std::sync::Arc::new(AtomicBool::new(false));
        (Box::new(Fake(address, dropped.clone())), dropped)
    }

    /// Collect until the code was dropped (other tests' calls may hold it a moment;
    /// crossbeam drops it once its epoch moved on, which the pin-and-flush here does).
    fn freed_soon(dropped: &AtomicBool) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            collect();
            crossbeam_epoch::pin().flush();
            if dropped.load(Ordering::SeqCst) {
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
        let (code, dropped) = fake(address);
        retire(code);
        for _ in 0..3 {
            collect();
            assert!(is_waiting(address), "freed while a call that may run it is still running");
            assert!(!dropped.load(Ordering::SeqCst));
        }
        leave.send(()).unwrap();
        caller.join().unwrap();
        assert!(freed_soon(&dropped), "still held after the call ended");
    }

    #[test]
    fn the_end_of_a_call_frees_what_waited_for_it() {
        init();
        let slot = CtxSlot::claim().expect("a free context slot");
        let call = Running::enter(slot.calls()).expect("no call runs in a new slot");
        let (code, dropped) = fake(0x5eed_0003);
        retire(code);
        assert!(!dropped.load(Ordering::SeqCst), "freed while this thread's call runs");
        drop(call);
        // No retirement or monitor pass after this: the next call's end looks.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !dropped.load(Ordering::SeqCst) && Instant::now() < deadline {
            let next = Running::enter(slot.calls()).expect("the call ended");
            drop(next);
            after_call();
            crossbeam_epoch::pin().flush();
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(dropped.load(Ordering::SeqCst), "a call's end did not free what waited for the call");
    }

    #[test]
    fn a_failed_try_lock_leaves_the_lock_held() {
        static LIST: RetiredList =
            RetiredList { locked: AtomicBool::new(false), list: UnsafeCell::new(Vec::new()) };
        let held = LIST.lock();
        assert!(LIST.try_lock().is_none());
        assert!(LIST.locked.load(Ordering::SeqCst), "a failed try_lock released the lock");
        drop(held);
        assert!(LIST.try_lock().is_some());
    }

    #[test]
    fn a_thread_gone_mid_call_does_not_hold_code_forever() {
        init();
        let calls = std::thread::spawn(|| {
            let slot = CtxSlot::claim().expect("a free context slot");
            // The call never returns normally (as with `pthread_exit` from an extern).
            std::mem::forget(Running::enter(slot.calls()).expect("no call runs in a new slot"));
            slot.calls()
        })
        .join()
        .unwrap();
        assert_eq!(calls.load(Ordering::SeqCst) & 1, 0, "a released slot shows no running call");
        let (code, dropped) = fake(0x5eed_0004);
        retire(code);
        assert!(freed_soon(&dropped));
    }

    #[test]
    fn a_call_that_starts_after_the_retirement_does_not_hold_it() {
        init();
        let slot = CtxSlot::claim().expect("a free context slot");
        let (code, dropped) = fake(0x5eed_0002);
        retire(code);
        // This thread's call starts after the code left every table: it cannot run it.
        let call = Running::enter(slot.calls()).expect("no call runs in a new slot");
        assert!(freed_soon(&dropped), "held by a call that started after the retirement");
        drop(call);
    }
}
