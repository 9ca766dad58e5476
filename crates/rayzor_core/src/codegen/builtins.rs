//! Builtins: host functions that generated code calls, declared once here
//! (an id, a native signature and the implementation); the addresses reach
//! the code through `CodegenEnv::builtins`, so the lowering embeds whatever
//! the environment supplies. They never panic (a panic must not unwind
//! through JIT frames) and report failures through `VmCtx`.

use crate::codegen::abi::VmCtx;
use crate::codegen::emit::{NativeSig, Ty};
use crate::mir::layout::MAX_TYPE_SIZE;
use crate::mir::TrapKind;

/// Every builtin generated code may call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Builtin {
    Alloc,
    Free,
    MemMove,
    MemSet,
    Fmod,
    Fmodf,
    /// Fallbacks for CPUs without rounding or FMA instructions (see `emit::Native`).
    Floor,
    Floorf,
    Ceil,
    Ceilf,
    Trunc,
    Truncf,
    Nearest,
    Nearestf,
    Fma,
    Fmaf,
    /// Profiling code: count a `call_indirect` target (`rayzor_profile_target`).
    ProfileTarget,
}

/// Address of each builtin, indexed by `Builtin as usize`.
pub type BuiltinTable = [usize; Builtin::COUNT];

impl Builtin {
    pub const COUNT: usize = 17;

    /// Every builtin, in `Builtin as usize` order.
    pub const ALL: [Builtin; Builtin::COUNT] = [
        Builtin::Alloc,
        Builtin::Free,
        Builtin::MemMove,
        Builtin::MemSet,
        Builtin::Fmod,
        Builtin::Fmodf,
        Builtin::Floor,
        Builtin::Floorf,
        Builtin::Ceil,
        Builtin::Ceilf,
        Builtin::Trunc,
        Builtin::Truncf,
        Builtin::Nearest,
        Builtin::Nearestf,
        Builtin::Fma,
        Builtin::Fmaf,
        Builtin::ProfileTarget,
    ];

    pub fn signature(self) -> NativeSig {
        use Ty::*;
        match self {
            Builtin::Alloc => NativeSig::new(&[Addr, I64, I64], Some(I64)),
            Builtin::Free => NativeSig::new(&[I64], None),
            Builtin::MemMove | Builtin::MemSet => NativeSig::new(&[I64, I64, I64], None),
            Builtin::Fmod => NativeSig::new(&[F64, F64], Some(F64)),
            Builtin::Fmodf => NativeSig::new(&[F32, F32], Some(F32)),
            Builtin::Floor | Builtin::Ceil | Builtin::Trunc | Builtin::Nearest => {
                NativeSig::new(&[F64], Some(F64))
            }
            Builtin::Floorf | Builtin::Ceilf | Builtin::Truncf | Builtin::Nearestf => {
                NativeSig::new(&[F32], Some(F32))
            }
            Builtin::Fma => NativeSig::new(&[F64, F64, F64], Some(F64)),
            Builtin::Fmaf => NativeSig::new(&[F32, F32, F32], Some(F32)),
            Builtin::ProfileTarget => NativeSig::new(&[Addr, I64, I64], None),
        }
    }

    /// The in-process implementations, as the runtime supplies them.
    pub fn host_table() -> BuiltinTable {
        [
            rayzor_alloc as *const () as usize,
            rayzor_free as *const () as usize,
            rayzor_memmove as *const () as usize,
            rayzor_memset as *const () as usize,
            rayzor_fmod as *const () as usize,
            rayzor_fmodf as *const () as usize,
            rayzor_floor as *const () as usize,
            rayzor_floorf as *const () as usize,
            rayzor_ceil as *const () as usize,
            rayzor_ceilf as *const () as usize,
            rayzor_trunc as *const () as usize,
            rayzor_truncf as *const () as usize,
            rayzor_nearest as *const () as usize,
            rayzor_nearestf as *const () as usize,
            rayzor_fma as *const () as usize,
            rayzor_fmaf as *const () as usize,
            rayzor_profile_target as *const () as usize,
        ]
    }
}

/// The native signature of `rayzor_entry_slow`.
pub fn entry_slow_signature() -> NativeSig {
    NativeSig::new(&[Ty::Addr, Ty::I64, Ty::I64], None)
}

/// The slow path of a prologue's check of the stack pointer `sp` against the
/// entry limit (`interrupt` module doc), in function `func_plus_one - 1`:
/// traps `stack_overflow` below the real limit and `interrupted` when an
/// interrupt meant for this call came, leaving the generated code at once
/// (`unwind::leave`), so the code around the call has no trap path of its
/// own; otherwise returns and the entry goes on. Called through
/// `VmCtx::entry_slow`, not as a constant (which LLVM would hoist into a
/// callee-saved register the fast path then saves and restores).
///
/// # Safety
/// `vmctx` must point to the live `VmCtx` of the current call.
pub unsafe extern "C" fn rayzor_entry_slow(vmctx: *mut VmCtx, sp: u64, func_plus_one: u64) {
    // SAFETY: generated code passes its live VmCtx. Fields are accessed
    // through the raw pointer: other threads may store to `entry_limit`.
    // Nothing here has a destructor, so `leave` may skip this frame.
    unsafe {
        let limit = (*vmctx).stack_limit;
        let trap = if sp < limit {
            Some(TrapKind::StackOverflow)
        } else {
            if (*vmctx).in_slot != 0 {
                crate::mir::interrupt::restore_entry_limit(&(*vmctx).entry_limit, limit);
            }
            let marks = (*vmctx).interrupts;
            let mut seen = (*vmctx).epoch;
            let stop = crate::mir::interrupt::poll(&marks, &mut seen);
            (*vmctx).epoch = seen;
            stop.then_some(TrapKind::Interrupted)
        };
        if let Some(kind) = trap {
            (*vmctx).trap = kind.code() as u64;
            (*vmctx).trap_func = func_plus_one;
            crate::codegen::unwind::leave(vmctx);
        }
    }
}

extern "C" {
    fn calloc(n: usize, size: usize) -> *mut u8;
    fn free(p: *mut u8);
}

/// `alloc`: zeroed memory for `count` elements of `elem_size` bytes.
///
/// # Safety
/// `vmctx` must point to the live `VmCtx` of the current call.
pub unsafe extern "C" fn rayzor_alloc(vmctx: *mut VmCtx, elem_size: u64, count: u64) -> u64 {
    let size = match elem_size.checked_mul(count) {
        Some(s) if s <= MAX_TYPE_SIZE => s,
        _ => 0,
    };
    let p = if size == 0 && !(elem_size == 0 || count == 0) {
        std::ptr::null_mut()
    } else {
        // SAFETY: calloc with a non-zero size.
        unsafe { calloc(size.max(1) as usize, 1) }
    };
    if p.is_null() {
        // SAFETY: generated code passes its live VmCtx.
        unsafe { (*vmctx).trap = TrapKind::OutOfMemory.code() as u64 };
    }
    p as u64
}

/// `free`.
///
/// # Safety
/// `p` came from `rayzor_alloc` and was not freed, or is null.
pub unsafe extern "C" fn rayzor_free(p: u64) {
    // SAFETY: the caller's contract (MIR `free` semantics).
    unsafe { free(p as *mut u8) }
}

/// `memcpy` (overlap allowed).
///
/// # Safety
/// `src..src+len` must be readable and `dst..dst+len` writable.
pub unsafe extern "C" fn rayzor_memmove(dst: u64, src: u64, len: u64) {
    if len > 0 {
        // SAFETY: the caller's contract (MIR `memcpy` semantics).
        unsafe { std::ptr::copy(src as *const u8, dst as *mut u8, len as usize) }
    }
}

/// `memset`.
///
/// # Safety
/// `dst..dst+len` must be writable.
pub unsafe extern "C" fn rayzor_memset(dst: u64, byte: u64, len: u64) {
    if len > 0 {
        // SAFETY: the caller's contract.
        unsafe { std::ptr::write_bytes(dst as *mut u8, byte as u8, len as usize) }
    }
}

pub extern "C" fn rayzor_fmod(a: f64, b: f64) -> f64 {
    a % b
}

pub extern "C" fn rayzor_fmodf(a: f32, b: f32) -> f32 {
    a % b
}

// The rounding and FMA fallbacks: the same Rust operations the interpreter uses.

pub extern "C" fn rayzor_floor(a: f64) -> f64 {
    a.floor()
}

pub extern "C" fn rayzor_floorf(a: f32) -> f32 {
    a.floor()
}

pub extern "C" fn rayzor_ceil(a: f64) -> f64 {
    a.ceil()
}

pub extern "C" fn rayzor_ceilf(a: f32) -> f32 {
    a.ceil()
}

pub extern "C" fn rayzor_trunc(a: f64) -> f64 {
    a.trunc()
}

pub extern "C" fn rayzor_truncf(a: f32) -> f32 {
    a.trunc()
}

pub extern "C" fn rayzor_nearest(a: f64) -> f64 {
    a.round_ties_even()
}

pub extern "C" fn rayzor_nearestf(a: f32) -> f32 {
    a.round_ties_even()
}

pub extern "C" fn rayzor_fma(a: f64, b: f64, c: f64) -> f64 {
    a.mul_add(b, c)
}

pub extern "C" fn rayzor_fmaf(a: f32, b: f32, c: f32) -> f32 {
    a.mul_add(b, c)
}

/// Count `n` calls to function token `token` in the `call_indirect` profile
/// rows at `rows` (`mir::profile::SiteKind::Indirect`: `INDIRECT_ROWS` rows of
/// (token, count), the miss count, the misses since the last replacement). A
/// token in a row adds to it (and a row that overtakes the first swaps with
/// it: generated code checks the first row inline); otherwise an empty row
/// takes it; otherwise it is a miss, and once the misses since the last
/// replacement outnumber the least frequent row, that row is given to this
/// token (its count moves to the misses): a hot target seen late still gets
/// a row, and two rare ones do not keep taking it from each other. Threads
/// race on the rows without locks: counts are approximate, every access is an
/// atomic word access, so nothing worse.
///
/// # Safety
/// `rows` must point to the profile slots of one `call_indirect` site.
pub unsafe extern "C" fn rayzor_profile_target(
    rows: *const std::sync::atomic::AtomicU64,
    token: u64,
    n: u64,
) {
    use crate::mir::profile::{SiteKind, INDIRECT_ROWS};
    use std::sync::atomic::Ordering::Relaxed;
    // SAFETY: the caller passes the site's slots, which live as long as the jit.
    let s = unsafe { std::slice::from_raw_parts(rows, SiteKind::Indirect.slots()) };
    let (tok, cnt) = (|r: usize| &s[2 * r], |r: usize| &s[2 * r + 1]);
    for r in 0..INDIRECT_ROWS {
        let t = tok(r).load(Relaxed);
        if t == token {
            let c = cnt(r).load(Relaxed).saturating_add(n);
            cnt(r).store(c, Relaxed);
            if r > 0 && c > cnt(0).load(Relaxed) {
                let (t0, c0) = (tok(0).load(Relaxed), cnt(0).load(Relaxed));
                tok(0).store(token, Relaxed);
                cnt(0).store(c, Relaxed);
                tok(r).store(t0, Relaxed);
                cnt(r).store(c0, Relaxed);
            }
            return;
        }
        if t == 0 {
            tok(r).store(token, Relaxed);
            cnt(r).store(n, Relaxed);
            return;
        }
    }
    let (misses, recent) = (&s[2 * INDIRECT_ROWS], &s[2 * INDIRECT_ROWS + 1]);
    let m = misses.load(Relaxed).saturating_add(n);
    let since = recent.load(Relaxed).saturating_add(n);
    let (row, least) =
        (0..INDIRECT_ROWS).map(|r| (r, cnt(r).load(Relaxed))).min_by_key(|&(_, c)| c).unwrap_or((0, 0));
    if since > least {
        // This call goes to the new row; the replaced row's calls become misses.
        misses.store((m - n).saturating_add(least), Relaxed);
        recent.store(0, Relaxed);
        tok(row).store(token, Relaxed);
        cnt(row).store(n, Relaxed);
    } else {
        misses.store(m, Relaxed);
        recent.store(since, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_discriminant_order() {
        for (i, b) in Builtin::ALL.iter().enumerate() {
            assert_eq!(*b as usize, i);
        }
    }
}
