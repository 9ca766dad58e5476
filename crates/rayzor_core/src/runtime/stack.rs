//! The native stack compiled code runs on.
//!
//! MIR promises that 10,000 nested calls work in every tier, but T0 frames
//! can be a kilobyte or more (every live value spilled), more than a Python
//! thread's 8 MiB stack holds. So each thread that calls into compiled code
//! gets its own large stack, reserved (not committed) once with `mmap` and
//! entered with `psm::on_stack` for the duration of the outermost host call.
//! Prologues check the stack pointer against a limit near its bottom and
//! trap `stack_overflow` rather than touch the guard page.
//!
//! The reservation is `JIT_STACK_BYTES` (room for `MAX_CALL_DEPTH` frames of
//! the largest size) when the address space allows; under a limit
//! (`ulimit -v`) it halves until it fits, down to `MIN_STACK_BYTES`, and
//! [`guaranteed_depth`] says how many frames of the largest size it still
//! holds. Compiled code never runs on the thread's own stack: when not even
//! the minimum can be reserved, the call (or `Jit::new`) fails with an error.
//!
//! Pages a deep call committed are given back when the outermost call
//! returns, above a high-water mark of `HIGH_WATER` bytes, cheaply. The fast
//! path reads one word, at the bottom of the stack's top page (which every
//! call touches anyway, so the check costs no cache or TLB miss). Only when a
//! call overwrote it is the canary page just below the mark (4 KiB of canary
//! words, which a frame going deeper must cross) checked, and only a call that
//! went below the mark pays for `madvise(MADV_DONTNEED)`. No system call runs
//! on the way (they are slow in sandboxes). A frame that spans the whole
//! canary page without writing to it would go unnoticed: its pages are then
//! given back after the next deep call instead.

use crate::codegen::abi::MAX_FRAME_BYTES;
use crate::mir::MAX_CALL_DEPTH;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Virtual size of each thread's compiled-code stack when the address space
/// allows: room for `MAX_CALL_DEPTH` levels of two frames of `MAX_FRAME_BYTES`
/// each (with OSR a level holds the frame that transferred and its
/// continuation's). It is only reserved; pages are committed when touched.
pub const JIT_STACK_BYTES: usize = 8 << 30;
/// The smallest reservation accepted under an address-space limit.
pub const MIN_STACK_BYTES: usize = 64 << 20;
/// Room kept free below the limit: one frame of the largest size (allocated
/// before its prologue checks the limit) plus host helpers and callbacks.
const HEADROOM: usize = MAX_FRAME_BYTES as usize + (256 << 10);
const GUARD: usize = 64 << 10;
/// Committed stack kept after a call returns (shallow calls never fault).
pub const HIGH_WATER: usize = 1 << 20;
const CANARY: u64 = 0x5a17_c0de_0bad_f00d;
const PAGE: usize = 4096;

/// The size new reservations try first: lowered when one had to be smaller.
static RESERVE_BYTES: AtomicUsize = AtomicUsize::new(JIT_STACK_BYTES);

/// Levels of two frames of the largest size (`MAX_FRAME_BYTES`) a stack of `bytes` holds,
/// capped at `MAX_CALL_DEPTH`: the call depth that works in every tier.
pub fn guaranteed_depth(bytes: usize) -> u64 {
    let usable = bytes.saturating_sub(GUARD + HEADROOM) as u64;
    // Two frames per level: the one that made an OSR transfer and its continuation's.
    (usable / (2 * MAX_FRAME_BYTES)).min(MAX_CALL_DEPTH as u64)
}

struct JitStack {
    base: *mut u8,
    size: usize,
}

impl JitStack {
    /// The canary page: the page just below the high-water mark.
    fn canary_page(&self) -> *mut u64 {
        (self.base as usize + self.size - HIGH_WATER - PAGE) as *mut u64
    }

    /// The lowest word of the stack's top page, which every call touches: a
    /// call that used more than a page of stack probably overwrote it.
    fn near_canary(&self) -> *mut u64 {
        (self.base as usize + self.size - PAGE) as *mut u64
    }

    /// Whether a call since the last trim wrote below the high-water mark.
    fn went_deep(&self) -> bool {
        let page = self.canary_page();
        // SAFETY: the canary page lies inside our mapping, above the guard.
        (0..PAGE / 8).any(|k| unsafe { std::ptr::read_volatile(page.add(k)) } != CANARY)
    }

    /// Give back the pages below the mark.
    fn trim(&self) {
        let start = self.base as usize + GUARD;
        let end = self.base as usize + self.size - HIGH_WATER;
        // SAFETY: a range of our own mapping that nothing runs on now.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
    }

    /// (Re)write the canaries.
    fn arm(&self) {
        let page = self.canary_page();
        // SAFETY: both canaries lie inside our mapping, above the guard.
        unsafe {
            for k in 0..PAGE / 8 {
                std::ptr::write_volatile(page.add(k), CANARY);
            }
            std::ptr::write_volatile(self.near_canary(), CANARY);
        }
    }
}

impl Drop for JitStack {
    fn drop(&mut self) {
        // SAFETY: we own the mapping; the thread is exiting, so nothing runs on it.
        unsafe {
            libc::munmap(self.base as *mut libc::c_void, self.size);
        }
    }
}

/// Reserve a stack, halving the size while the address space refuses it.
fn reserve() -> Option<JitStack> {
    let mut size = RESERVE_BYTES.load(Ordering::Relaxed);
    while size >= MIN_STACK_BYTES {
        // SAFETY: anonymous private reservation; checked for failure; the lowest
        // GUARD bytes are made inaccessible as a guard.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p != libc::MAP_FAILED {
            // SAFETY: the first GUARD bytes of the new mapping.
            unsafe { libc::mprotect(p, GUARD, libc::PROT_NONE) };
            RESERVE_BYTES.fetch_min(size, Ordering::Relaxed);
            let s = JitStack { base: p as *mut u8, size };
            s.arm();
            return Some(s);
        }
        size /= 2;
    }
    None
}

/// Everything a host call needs from thread-local storage, in one place: in a
/// shared library every distinct thread-local costs a `__tls_get_addr` call.
pub struct ThreadState {
    stack: Cell<*mut u8>,
    size: Cell<usize>,
    owner: std::cell::RefCell<Option<JitStack>>,
    /// Limit of the stack compiled code is running on now (0: not inside compiled code).
    active_limit: Cell<u64>,
    /// Address of the stack's near canary word (0: no stack yet).
    canary: Cell<usize>,
    /// Sampling countdowns (entries, back-edges), carried from one host call to
    /// the next of a thread without a context slot (a slot keeps its own).
    pub ticks: Cell<(u64, u64)>,
    /// `interrupt::thread_sigints()`, looked up once (it is a thread-local of its own).
    sigints: Cell<Option<&'static AtomicU64>>,
    /// The thread's context slot (claimed at its first call; None: none was free).
    ctx: std::cell::RefCell<Option<crate::mir::interrupt::CtxSlot>>,
}

thread_local! {
    static STATE: ThreadState = const {
        ThreadState {
            stack: Cell::new(std::ptr::null_mut()),
            size: Cell::new(0),
            owner: std::cell::RefCell::new(None),
            active_limit: Cell::new(0),
            canary: Cell::new(0),
            ticks: Cell::new((1, 1)),
            sigints: Cell::new(None),
            ctx: std::cell::RefCell::new(None),
        }
    };
}

fn no_stack() -> String {
    format!(
        "cannot reserve a compiled-code stack of even {} MiB (address space exhausted or limited, \
         e.g. by `ulimit -v`); compiled code does not run on the thread's own stack",
        MIN_STACK_BYTES >> 20
    )
}

impl ThreadState {
    #[inline]
    fn jit_stack(&self) -> Option<(*mut u8, usize)> {
        let p = self.stack.get();
        if !p.is_null() {
            return Some((p, self.size.get()));
        }
        self.reserve_stack()
    }

    #[cold]
    fn reserve_stack(&self) -> Option<(*mut u8, usize)> {
        let s = reserve()?;
        let (base, size) = (s.base, s.size);
        self.canary.set(s.near_canary() as usize);
        *self.owner.borrow_mut() = Some(s);
        self.stack.set(base);
        self.size.set(size);
        Some((base, size))
    }
}

impl ThreadState {
    /// The SIGINT counter this thread's calls watch (`interrupt::thread_sigints`).
    #[inline]
    pub fn sigints(&self) -> &'static AtomicU64 {
        match self.sigints.get() {
            Some(s) => s,
            None => {
                let s = crate::mir::interrupt::thread_sigints();
                self.sigints.set(Some(s));
                s
            }
        }
    }

    /// The thread's context slot (`VmCtx` lives there) and its call word; None
    /// when every slot is taken.
    #[inline]
    pub fn ctx_slot(&self) -> Option<(*mut u64, &'static AtomicU64)> {
        if let Some(slot) = self.ctx.borrow().as_ref() {
            return Some((slot.address(), slot.calls()));
        }
        self.claim_ctx_slot()
    }

    /// Claimed at the thread's first call; a thread that found every slot taken
    /// tries again at each call (one load while none is free). A nested call
    /// that gets one runs in it as an outermost call would; the calls around it
    /// keep their own contexts.
    #[cold]
    fn claim_ctx_slot(&self) -> Option<(*mut u64, &'static AtomicU64)> {
        let mut ctx = self.ctx.borrow_mut();
        *ctx = crate::mir::interrupt::CtxSlot::claim();
        ctx.as_ref().map(|slot| (slot.address(), slot.calls()))
    }

    /// After a call that used more than a page of stack.
    #[cold]
    fn maybe_trim(&self) {
        if let Some(s) = self.owner.borrow().as_ref() {
            if s.went_deep() {
                s.trim();
                s.arm();
            } else {
                // SAFETY: inside our mapping.
                unsafe { std::ptr::write_volatile(s.near_canary(), CANARY) };
            }
        }
    }
}

/// This thread's compiled-code stack size, reserving it now if needed
/// (`Err` when not even `MIN_STACK_BYTES` can be reserved).
pub fn thread_stack_bytes() -> Result<usize, String> {
    STATE.with(|st| st.jit_stack().map(|(_, size)| size).ok_or_else(no_stack))
}

/// Run `f` (a call into compiled code) on this thread's compiled-code stack;
/// `f` gets the stack limit its prologues must respect and the thread's state.
/// Nested calls (compiled code -> host -> compiled code) stay on the stack
/// they are on. `Err` (and `f` not run) when no stack can be reserved.
pub fn on_jit_stack<R>(f: impl FnOnce(u64, &ThreadState) -> R) -> Result<R, String> {
    STATE.with(|st| {
        let active = st.active_limit.get();
        if active != 0 {
            return Ok(f(active, st));
        }
        let Some((base, size)) = st.jit_stack() else {
            return Err(no_stack());
        };
        let limit = base as u64 + (GUARD + HEADROOM) as u64;
        st.active_limit.set(limit);
        // SAFETY: `base..base + size` is a live mapping owned by this thread
        // and not in use (active_limit was 0); `f` does not unwind (it only
        // calls compiled code, which never panics or unwinds).
        let r = unsafe { psm::on_stack(base, size, || f(limit, st)) };
        st.active_limit.set(0);
        // SAFETY: the near canary lies inside this thread's live mapping.
        if unsafe { std::ptr::read_volatile(st.canary.get() as *const u64) } != CANARY {
            st.maybe_trim();
        }
        Ok(r)
    })
}
