//! The calling convention every tier's code follows, so code of any tier can
//! call code of any other through the dispatch table.
//!
//! A compiled MIR function is a System V function
//! `fn(vmctx: *mut VmCtx, [ret_area: *mut u64,] leaves...) -> [leaf]`:
//! - every integer-class leaf (ints, bool, ptr) is passed as an `i64` in
//!   canonical form (`Scalar::canon`), floats as `f32`/`f64`;
//! - a result with exactly one leaf is returned in a register (same rule);
//!   a result with two or more leaves is written to `ret_area`, leaf `k` at
//!   byte `8 * k` (`f32` in the low 4 bytes);
//! - on a trap, the callee stores the trap code in `VmCtx::trap` and returns
//!   any value; every caller checks `trap` after each call and returns at once,
//!   so a trap unwinds to the host entry without signals or native unwinding.
//!
//! Python enters through a per-function *host entry* with the signature
//! `extern "C" fn(*mut VmCtx, args: *const u64, rets: *mut u64)`.

use crate::codegen::target;
use crate::mir::{Scalar, Signature, Type};

/// Per-call state shared by all frames of one native call (one per thread).
#[repr(C)]
#[derive(Debug, Default)]
pub struct VmCtx {
    /// Current call depth; a prologue traps when it reaches `MAX_CALL_DEPTH`.
    pub depth: u64,
    /// `TrapKind::code()` of a pending trap, 0 when none.
    pub trap: u64,
    /// The lowest stack address frames may use; prologues trap below it.
    pub stack_limit: u64,
    /// Index + 1 of the function that trapped (0 when unknown).
    pub trap_func: u64,
    /// Sampling countdowns (see `ProfileConfig::sample_rate`) for calls and back-edges.
    pub call_ticks: u64,
    pub edge_ticks: u64,
}

pub const VMCTX_DEPTH: i32 = 0;
pub const VMCTX_TRAP: i32 = 8;
pub const VMCTX_STACK_LIMIT: i32 = 16;
pub const VMCTX_TRAP_FUNC: i32 = 24;
pub const VMCTX_CALL_TICKS: i32 = 32;
pub const VMCTX_EDGE_TICKS: i32 = 40;

/// Largest native stack frame a compiled function may have. Compiled code runs
/// on a stack with `MAX_FRAME_BYTES` (plus room for host helpers) kept free
/// below the limit its prologues check, so a frame, which is allocated before
/// the check runs, can never reach the guard page; and with `MAX_CALL_DEPTH`
/// frames this large the compiled-code stack still suffices.
pub const MAX_FRAME_BYTES: u64 = 256 << 10;

/// Module-function pointers are tokens, not addresses: `FUNC_TOKEN_BASE + index`.
/// Calls through them go through the dispatch table, so they always reach
/// the current code of the function and never keep retired code alive.
pub const FUNC_TOKEN_BASE: u64 = 0x7ead_0000_0000_0000;

/// Profiling counters of one function, written by its code without atomics
/// (increments may occasionally be lost under contention; counts are approximate).
#[repr(C, align(64))]
#[derive(Debug, Default)]
pub struct FunctionCounters {
    /// Entries into the function's code of each tier T0..T3.
    pub calls: [std::sync::atomic::AtomicU64; 4],
    /// Loop back-edges taken in any tier.
    pub backedges: std::sync::atomic::AtomicU64,
}

pub const COUNTER_CALLS: i32 = 0;
pub const COUNTER_BACKEDGES: i32 = 32;

/// How a leaf travels in the native calling convention.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbiClass {
    I64,
    F32,
    F64,
}

pub fn abi_class(s: Scalar) -> AbiClass {
    match s {
        Scalar::F32 => AbiClass::F32,
        Scalar::F64 => AbiClass::F64,
        _ => AbiClass::I64,
    }
}

/// The leaves of every parameter of `sig`, concatenated.
pub fn param_leaves(sig: &Signature) -> Vec<Scalar> {
    sig.params.iter().flat_map(|t| target::leaves(t).into_iter().map(|l| l.ty)).collect()
}

pub fn ret_leaves(ty: &Type) -> Vec<Scalar> {
    target::leaves(ty).into_iter().map(|l| l.ty).collect()
}

/// Whether results come back through a `ret_area` pointer.
pub fn uses_ret_area(ty: &Type) -> bool {
    target::leaf_count(ty) >= 2
}
