//! Interrupting running code, in the style of wasmtime's epoch interruption.
//!
//! Compiled code polls at every function entry and loop back-edge
//! (`codegen::lower`'s `poll_interrupt`): it compares the process-wide `EPOCH`
//! with the epoch its call last saw (`VmCtx::epoch`), a load, a compare and a
//! branch not taken. Anything that wants running code to stop bumps `EPOCH`;
//! the poll's slow path (inline, cold, loads only) then records the new epoch
//! and checks the call's `Marks` (as `Marks::interrupted` does) whether *this* call is meant: a
//! SIGINT that arrived since the call started, on the main thread, or an
//! `interrupt` of the jit the call runs in since it started. If so the call
//! traps with `TrapKind::Interrupted` like any other trap; otherwise it goes on.
//! The interpreter polls the same way every `INTERP_POLL_STEPS` instructions.
//!
//! Entries of code that counts no calls (the top tier) do not poll: their
//! prologue's stack-limit check reads the *entry limit* (`VmCtx::entry_limit`),
//! which holds the real stack limit, and every interrupt request sets every
//! thread's entry limit to `INTERRUPTING` (V8's stack guard), so one compare
//! covers both. The check's slow path (`codegen::builtins::rayzor_entry_slow`)
//! tells a real overflow from an interrupt, restores the limit, then polls as
//! above. For interrupts to reach them, each thread's `VmCtx` lives in a slot
//! of a fixed array (`CTX_SLOTS`, claimed by threads as they first run compiled
//! code, given back when they exit; nested calls save and restore the outer
//! call's context in it): an interrupt writes every slot's first word without a
//! lock or a registry, which a signal handler may do and a fork cannot leave locked.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

/// Bumped by every interrupt request; generated code embeds its address.
pub static EPOCH: AtomicU64 = AtomicU64::new(0);
/// SIGINTs received since the handler was installed.
static SIGINTS: AtomicU64 = AtomicU64::new(0);

/// The interpreter polls once per this many instructions.
pub const INTERP_POLL_STEPS: u64 = 1024;

/// Address of `EPOCH`, for generated code.
pub fn epoch_address() -> usize {
    &EPOCH as *const AtomicU64 as usize
}

/// Never bumped: the counter a call watches for what cannot interrupt it.
static NEVER: AtomicU64 = AtomicU64::new(0);

/// What may interrupt one call, captured when it starts: the call is to stop
/// once either counter differs from its mark. Generated code reads these
/// fields itself (offsets in `codegen::abi`), so a poll's slow path is a few
/// loads and no call.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Marks {
    /// Address of the SIGINT counter (of `NEVER` off the main thread) and its value at the start.
    pub sigint_counter: usize,
    pub sigint_mark: u64,
    /// Address of the jit's interrupt generation (`NEVER` for the interpreter) and its value at the start.
    pub generation: usize,
    pub generation_mark: u64,
}

impl Marks {
    /// Marks for a call starting now on this thread, in a jit whose
    /// interrupt generation is `generation` (None: the interpreter).
    pub fn now(generation: Option<&AtomicU64>) -> Marks {
        Marks::watching(thread_sigints(), generation.unwrap_or(&NEVER))
    }

    /// Marks for a call starting now, watching `sigints` (this thread's
    /// `thread_sigints`, kept by the caller) and the jit's `generation`.
    #[inline]
    pub fn watching(sigints: &'static AtomicU64, generation: &AtomicU64) -> Marks {
        Marks {
            sigint_counter: sigints as *const AtomicU64 as usize,
            sigint_mark: sigints.load(Ordering::SeqCst),
            generation: generation as *const AtomicU64 as usize,
            generation_mark: generation.load(Ordering::SeqCst),
        }
    }

    /// Whether the call these marks belong to should stop.
    pub fn interrupted(&self) -> bool {
        // SAFETY: both point to statics or to the jit's counter, alive while its calls run.
        let (s, g) =
            unsafe { (&*(self.sigint_counter as *const AtomicU64), &*(self.generation as *const AtomicU64)) };
        s.load(Ordering::SeqCst) != self.sigint_mark || g.load(Ordering::SeqCst) != self.generation_mark
    }
}

/// The interpreter's poll: whether the call with `marks`, which last saw
/// epoch `seen`, is to stop.
pub fn poll(marks: &Marks, seen: &mut u64) -> bool {
    let now = EPOCH.load(Ordering::Relaxed);
    if now == *seen {
        return false;
    }
    *seen = now;
    marks.interrupted()
}

/// Interrupt every call running now in the jit whose generation is `generation`.
pub fn interrupt(generation: &AtomicU64) {
    generation.fetch_add(1, Ordering::SeqCst);
    EPOCH.fetch_add(1, Ordering::SeqCst);
    interrupt_entries();
}

/// Threads that can have a context slot at once; a thread beyond them runs
/// with a context of its own whose entry limit is always `INTERRUPTING`
/// (correct; every entry on it takes the slow path).
pub const CTX_SLOTS: usize = 1024;
/// Words of one slot: `codegen::abi::VmCtx` is laid out in it (checked there),
/// its first word the entry limit.
pub const CTX_SLOT_WORDS: usize = 32;
/// An entry limit no stack pointer is above: the next entry takes the slow path.
pub const INTERRUPTING: u64 = u64::MAX;

#[repr(C, align(64))]
struct Slot([AtomicU64; CTX_SLOT_WORDS]);

/// Zero-initialised (so it costs no file space): a slot's entry limit is set when it is claimed.
static CTX_ARENA: [Slot; CTX_SLOTS] =
    [const { Slot([const { AtomicU64::new(0) }; CTX_SLOT_WORDS]) }; CTX_SLOTS];
static CTX_OWNED: [AtomicBool; CTX_SLOTS] = [const { AtomicBool::new(false) }; CTX_SLOTS];
/// How many slots are owned (a thread without one retries only when some is free).
static CTX_CLAIMED: AtomicUsize = AtomicUsize::new(0);
/// One past the highest slot index ever claimed: scans of the call words stop there.
static CTX_HIGH: AtomicUsize = AtomicUsize::new(0);
/// The slot word counting the outermost calls that ran in the slot, twice each:
/// odd while one runs (`runtime::reclaim` reads it). Its own cache line, away from
/// the `VmCtx` (checked in `codegen::abi`), so scans do not disturb running code.
pub const CALLS_WORD: usize = CTX_SLOT_WORDS - 1;

thread_local! {
    /// The slot this thread owns (for `release_other_slots_after_fork`).
    static OWN_SLOT: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Make every thread's next compiled entry check for an interrupt (after the
/// request's counters were bumped: a thread that sees `INTERRUPTING` then
/// sees them too). Async-signal-safe: plain atomic stores, no lock.
fn interrupt_entries() {
    for s in &CTX_ARENA {
        s.0[0].store(INTERRUPTING, Ordering::Release);
    }
}

/// One thread's context slot (see the module doc), released when dropped.
#[derive(Debug)]
pub struct CtxSlot {
    index: usize,
}

impl CtxSlot {
    /// Claim a free slot; its entry limit reads `INTERRUPTING` (the first entry
    /// puts the real limit in).
    pub fn claim() -> Option<CtxSlot> {
        if CTX_CLAIMED.load(Ordering::Relaxed) >= CTX_SLOTS {
            return None;
        }
        let index = (0..CTX_SLOTS).find(|&i| {
            CTX_OWNED[i].compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed).is_ok()
        })?;
        CTX_CLAIMED.fetch_add(1, Ordering::Relaxed);
        CTX_HIGH.fetch_max(index + 1, Ordering::SeqCst);
        CTX_ARENA[index].0[0].store(INTERRUPTING, Ordering::SeqCst);
        OWN_SLOT.with(|s| s.set(Some(index)));
        Some(CtxSlot { index })
    }

    /// The slot's memory: `CTX_SLOT_WORDS` words, 64-byte aligned, that only
    /// the owning thread uses, but for the first word, which interrupts store to.
    pub fn address(&self) -> *mut u64 {
        CTX_ARENA[self.index].0.as_ptr() as *mut u64
    }

    /// The slot's call word (`CALLS_WORD`).
    pub fn calls(&self) -> &'static AtomicU64 {
        &CTX_ARENA[self.index].0[CALLS_WORD]
    }
}

/// Mark the call running in a slot whose thread is gone (if any) as ended: the
/// call word even, and changed if it was odd. Async-signal-safe.
fn end_dead_call(calls: &AtomicU64) {
    calls.store((calls.load(Ordering::SeqCst) + 1) & !1, Ordering::SeqCst);
}

/// The call words of every slot claimed so far (owned or not), in index order.
pub fn slot_call_words() -> impl Iterator<Item = &'static AtomicU64> {
    CTX_ARENA[..CTX_HIGH.load(Ordering::SeqCst)].iter().map(|s| &s.0[CALLS_WORD])
}

impl Drop for CtxSlot {
    fn drop(&mut self) {
        // (At thread exit the thread-local may be gone already: nothing to clear then.)
        let _ = OWN_SLOT.try_with(|s| s.set(None));
        // A call that never returned (its thread left through `pthread_exit` or a
        // longjmp from an extern) must not look like one still running in the slot.
        end_dead_call(self.calls());
        CTX_OWNED[self.index].store(false, Ordering::Release);
        CTX_CLAIMED.fetch_sub(1, Ordering::Relaxed);
    }
}

/// In a fork child: only the forking thread exists, so every slot but its own
/// is free again (their owners' `CtxSlot`s are never dropped there).
/// Async-signal-safe (atomic stores and a const thread-local): for an atfork child handler.
pub fn release_other_slots_after_fork() {
    let own = OWN_SLOT.with(Cell::get);
    for (i, owned) in CTX_OWNED.iter().enumerate() {
        if Some(i) != own {
            owned.store(false, Ordering::SeqCst);
            // A call that was running there ended with its thread.
            end_dead_call(&CTX_ARENA[i].0[CALLS_WORD]);
        }
    }
    CTX_CLAIMED.store(own.is_some() as usize, Ordering::SeqCst);
}

/// An entry's slow path found the entry limit above the stack pointer but the
/// stack not exhausted (`limit`, the real one, is below it): an interrupt
/// asked every entry to look. Put the limit back (a request that comes after
/// this sets it again; one that came before bumped its counters before its
/// store, so the caller's poll, after this, sees them).
pub fn restore_entry_limit(entry_limit: &AtomicU64, limit: u64) {
    let _ = entry_limit.compare_exchange(INTERRUPTING, limit, Ordering::SeqCst, Ordering::SeqCst);
}

/// The SIGINT counter calls on this thread watch: the real one on the main
/// thread (where Python runs signal handlers), one never bumped elsewhere.
pub fn thread_sigints() -> &'static AtomicU64 {
    if is_main_thread() {
        &SIGINTS
    } else {
        &NEVER
    }
}

/// Whether this is the process's main thread (the one Python runs signal handlers on).
pub fn is_main_thread() -> bool {
    thread_local! {
        static MAIN: Cell<Option<bool>> = const { Cell::new(None) };
    }
    MAIN.with(|m| {
        m.get().unwrap_or_else(|| {
            // SAFETY: plain syscalls without arguments.
            let main = unsafe { libc::gettid() == libc::getpid() };
            m.set(Some(main));
            main
        })
    })
}

/// The SIGINT handler that was installed before ours (chained to).
static PREVIOUS: AtomicUsize = AtomicUsize::new(0);
static PREVIOUS_SIGINFO: AtomicUsize = AtomicUsize::new(0);

extern "C" fn on_sigint(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    SIGINTS.fetch_add(1, Ordering::SeqCst);
    EPOCH.fetch_add(1, Ordering::SeqCst);
    interrupt_entries();
    let prev = PREVIOUS.load(Ordering::SeqCst);
    if prev == 0 {
        return;
    }
    // SAFETY: `prev` is the handler that was installed, with the calling convention its flags say.
    unsafe {
        if PREVIOUS_SIGINFO.load(Ordering::SeqCst) != 0 {
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                std::mem::transmute(prev);
            f(sig, info, ctx);
        } else {
            let f: extern "C" fn(libc::c_int) = std::mem::transmute(prev);
            f(sig);
        }
    }
}

/// Make SIGINT interrupt running code: install a handler that counts the
/// signal, bumps `EPOCH` and then runs the handler that was there (Python's,
/// which raises KeyboardInterrupt once the call has returned). Done only when
/// the current handler is a function (not SIG_DFL or SIG_IGN); idempotent, so
/// it is called again whenever a jit is created or `interpret` runs, which
/// re-installs it after a `signal.signal(SIGINT, ...)` replaced it.
pub fn install_sigint_handler() {
    // SAFETY: querying and installing a signal action with valid structures.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        if libc::sigaction(libc::SIGINT, std::ptr::null(), &mut old) != 0 {
            return;
        }
        let current = old.sa_sigaction;
        if current == on_sigint as *const () as usize || current == libc::SIG_DFL || current == libc::SIG_IGN
        {
            return;
        }
        PREVIOUS_SIGINFO.store((old.sa_flags & libc::SA_SIGINFO != 0) as usize, Ordering::SeqCst);
        PREVIOUS.store(current, Ordering::SeqCst);
        let mut new: libc::sigaction = std::mem::zeroed();
        new.sa_sigaction = on_sigint as *const () as usize;
        new.sa_flags = (old.sa_flags | libc::SA_SIGINFO) & !libc::SA_RESETHAND;
        new.sa_mask = old.sa_mask;
        libc::sigaction(libc::SIGINT, &new, std::ptr::null_mut());
    }
}
