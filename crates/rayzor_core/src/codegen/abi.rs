//! The calling convention every tier's code follows, so code of any tier can
//! call code of any other through the dispatch table.
//!
//! A compiled MIR function is a System V function
//! `fn(vmctx: *mut VmCtx, [ret_area: *mut u64,] depth: i64, leaves...) -> [leaf]`:
//! - `depth` is the number of MIR frames below the new one (0 for a call
//!   from the host): the prologue traps `stack_overflow` when it reaches
//!   `MAX_CALL_DEPTH`, and calls pass `depth + 1`. A register, not a `VmCtx`
//!   field, so a call costs no load and store of it;
//! - every integer-class leaf (ints, bool, ptr) is passed as an `i64` in
//!   canonical form (`Scalar::canon`), floats as `f32`/`f64`;
//! - a result with exactly one leaf is returned in a register (same rule);
//!   a result with two or more leaves is written to `ret_area`, leaf `k` at
//!   byte `8 * k` (`f32` in the low 4 bytes);
//! - on a trap, the code stores the trap code in `VmCtx::trap` and does not
//!   return: it resumes the host entry's `unwind::protected_call` at once
//!   (`codegen::unwind`), so no caller checks for a trap after a call.
//!
//! Python enters through a per-function *host entry* with the signature
//! `extern "C" fn(*mut VmCtx, args: *const u64, rets: *mut u64)`.

use crate::codegen::emit::{Ext, NativeSig, Ty};
use crate::mir::interrupt::Marks;
use crate::mir::layout;
use crate::mir::{Scalar, Signature, Type};

/// Per-call state shared by all frames of one native call. It lives in the
/// thread's context slot (`interrupt::CtxSlot`; a nested call saves and
/// restores the outer call's fields around itself), so that interrupts can
/// reach `entry_limit` from any thread; only the owning thread touches the
/// other fields, through raw pointers.
#[repr(C)]
#[derive(Debug)]
pub struct VmCtx {
    /// The stack limit, or `interrupt::INTERRUPTING` when an interrupt asks
    /// every entry to look: prologues that do not poll check the stack
    /// against it (first, so that it is the slot's first word).
    pub entry_limit: std::sync::atomic::AtomicU64,
    /// Where a trap resumes (`unwind::protected_call` sets it).
    pub resume: usize,
    /// `unwind::unwind_address()`: trap paths call it through here rather than
    /// as a constant, so no constant of a cold path is hoisted into a register
    /// the hot code must save and restore.
    pub unwind: usize,
    /// Address of `interrupt::EPOCH` (`interrupt::epoch_address()`), for the same
    /// reason: a constant in a loop is hoisted into a callee-saved register.
    pub epoch_addr: usize,
    /// `TrapKind::code()` of a pending trap, 0 when none.
    pub trap: u64,
    /// The lowest stack address frames may use; prologues trap below it.
    pub stack_limit: u64,
    /// 1 when this context is in a thread's slot (interrupts reach
    /// `entry_limit`, so the slow path restores it), 0 for the context of a
    /// thread without a slot (its `entry_limit` stays `INTERRUPTING`).
    pub in_slot: u64,
    /// `builtins::rayzor_entry_slow`, called through here for the reason `unwind` is.
    pub entry_slow: usize,
    /// Index + 1 of the function that trapped (0 when unknown).
    pub trap_func: u64,
    /// Sampling countdowns (see `ProfileConfig::sample_rate`) for the entries of
    /// code that samples them (`CodegenOptions::sample_entries`: T0) and for back-edges.
    pub call_ticks: u64,
    pub edge_ticks: u64,
    /// The `interrupt::EPOCH` this call last saw; polls take the slow path when it moved.
    pub epoch: u64,
    /// What may interrupt this call (`interrupt::Marks`), captured when it started.
    pub interrupts: Marks,
}

impl VmCtx {
    /// Every field 0 but the interrupt marks (`Marks` has no zero value).
    pub fn zeroed(interrupts: Marks) -> VmCtx {
        VmCtx {
            entry_limit: std::sync::atomic::AtomicU64::new(0),
            resume: 0,
            unwind: 0,
            epoch_addr: 0,
            trap: 0,
            stack_limit: 0,
            in_slot: 0,
            entry_slow: 0,
            trap_func: 0,
            call_ticks: 0,
            edge_ticks: 0,
            epoch: 0,
            interrupts,
        }
    }
}

/// Byte offsets of `VmCtx` fields, for generated code.
pub const VMCTX_RESUME: i32 = std::mem::offset_of!(VmCtx, resume) as i32;
pub const VMCTX_UNWIND: i32 = std::mem::offset_of!(VmCtx, unwind) as i32;
pub const VMCTX_EPOCH_ADDR: i32 = std::mem::offset_of!(VmCtx, epoch_addr) as i32;
pub const VMCTX_TRAP: i32 = std::mem::offset_of!(VmCtx, trap) as i32;
pub const VMCTX_STACK_LIMIT: i32 = std::mem::offset_of!(VmCtx, stack_limit) as i32;
pub const VMCTX_ENTRY_LIMIT: i32 = std::mem::offset_of!(VmCtx, entry_limit) as i32;
/// The words of a `VmCtx` after its entry limit: what a nested call saves.
const CTX_TAIL_WORDS: usize = std::mem::size_of::<VmCtx>() / 8 - 1;
pub type SavedContext = [u64; CTX_TAIL_WORDS];

/// The fields of the context at `ctxp` but its entry limit.
///
/// # Safety
/// `ctxp` points to a live `VmCtx` whose fields but `entry_limit` only the
/// calling thread accesses (its context slot, or its own).
pub unsafe fn save_context(ctxp: *const VmCtx) -> SavedContext {
    let mut words = [0u64; CTX_TAIL_WORDS];
    // SAFETY: the caller's contract; `VmCtx` is all 8-byte words (checked below).
    unsafe { std::ptr::copy_nonoverlapping((ctxp as *const u64).add(1), words.as_mut_ptr(), CTX_TAIL_WORDS) };
    words
}

/// Put back what `save_context` returned.
///
/// # Safety
/// As for `save_context`.
pub unsafe fn restore_context(ctxp: *mut VmCtx, words: &SavedContext) {
    // SAFETY: as in `save_context`.
    unsafe { std::ptr::copy_nonoverlapping(words.as_ptr(), (ctxp as *mut u64).add(1), CTX_TAIL_WORDS) };
}

/// Write every field of `ctx` but its entry limit to the context at `ctxp`.
///
/// # Safety
/// As for `save_context`.
pub unsafe fn write_context(ctxp: *mut VmCtx, ctx: &VmCtx) {
    // SAFETY: as in `save_context`.
    unsafe {
        std::ptr::copy_nonoverlapping(
            (ctx as *const VmCtx as *const u64).add(1),
            (ctxp as *mut u64).add(1),
            CTX_TAIL_WORDS,
        )
    };
}

const _: () = {
    use crate::mir::interrupt::CALLS_WORD;
    assert!(std::mem::size_of::<VmCtx>().is_multiple_of(8), "VmCtx is all 8-byte words");
    assert!(std::mem::offset_of!(VmCtx, entry_limit) == 0, "the word interrupts store to");
    assert!(
        std::mem::size_of::<VmCtx>() <= 8 * (CALLS_WORD / 8 * 8),
        "VmCtx fits a context slot, below the call word's cache line"
    );
    assert!(std::mem::align_of::<VmCtx>() <= 64);
};
pub const VMCTX_ENTRY_SLOW: i32 = std::mem::offset_of!(VmCtx, entry_slow) as i32;
pub const VMCTX_TRAP_FUNC: i32 = std::mem::offset_of!(VmCtx, trap_func) as i32;
pub const VMCTX_CALL_TICKS: i32 = std::mem::offset_of!(VmCtx, call_ticks) as i32;
pub const VMCTX_EDGE_TICKS: i32 = std::mem::offset_of!(VmCtx, edge_ticks) as i32;
pub const VMCTX_EPOCH: i32 = std::mem::offset_of!(VmCtx, epoch) as i32;
/// `VmCtx::interrupts` fields (`interrupt::Marks`).
pub const VMCTX_SIGINT_COUNTER: i32 =
    (std::mem::offset_of!(VmCtx, interrupts) + std::mem::offset_of!(Marks, sigint_counter)) as i32;
pub const VMCTX_SIGINT_MARK: i32 =
    (std::mem::offset_of!(VmCtx, interrupts) + std::mem::offset_of!(Marks, sigint_mark)) as i32;
pub const VMCTX_GENERATION: i32 =
    (std::mem::offset_of!(VmCtx, interrupts) + std::mem::offset_of!(Marks, generation)) as i32;
pub const VMCTX_GENERATION_MARK: i32 =
    (std::mem::offset_of!(VmCtx, interrupts) + std::mem::offset_of!(Marks, generation_mark)) as i32;

/// Largest native stack frame a compiled function may have. Compiled code runs
/// on a stack with `MAX_FRAME_BYTES` (plus room for host helpers) kept free
/// below the limit its prologues check, so a frame, which is allocated before
/// the check runs, can never reach the guard page; and with `MAX_CALL_DEPTH`
/// frames this large the compiled-code stack still suffices.
pub const MAX_FRAME_BYTES: u64 = 256 << 10;

/// Module-function pointers are tokens, not addresses: `FUNC_TOKEN_BASE + index`.
/// Calls through them go through the dispatch table, so they always reach
/// the current code of the function and never keep retired code alive.
pub use crate::mir::interp::FUNC_TOKEN_BASE;

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

/// Byte offsets of `FunctionCounters` fields, and the stride of the counters array.
pub const COUNTER_CALLS: i32 = std::mem::offset_of!(FunctionCounters, calls) as i32;
pub const COUNTER_BACKEDGES: i32 = std::mem::offset_of!(FunctionCounters, backedges) as i32;
pub const COUNTERS_STRIDE: usize = std::mem::size_of::<FunctionCounters>();

/// OSR state of one loop header (beside the function's counters): the
/// continuation entry published for it (0: none yet) and the back-edges
/// counted into it (they replace `FunctionCounters::backedges` for loops that
/// have one).
#[repr(C, align(16))]
#[derive(Debug, Default)]
pub struct OsrPoint {
    pub entry: std::sync::atomic::AtomicUsize,
    pub backedges: std::sync::atomic::AtomicU64,
}

pub const OSR_ENTRY: i32 = std::mem::offset_of!(OsrPoint, entry) as i32;
pub const OSR_BACKEDGES: i32 = std::mem::offset_of!(OsrPoint, backedges) as i32;

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
    sig.params.iter().flat_map(|t| layout::leaves(t).into_iter().map(|l| l.ty)).collect()
}

pub fn ret_leaves(ty: &Type) -> Vec<Scalar> {
    layout::leaves(ty).into_iter().map(|l| l.ty).collect()
}

/// Whether results come back through a `ret_area` pointer.
pub fn uses_ret_area(ty: &Type) -> bool {
    layout::leaf_count(ty) >= 2
}

/// The native type a leaf of scalar type `s` has inside generated code
/// (bool is an `I8` holding 0 or 1; `ptr` is an `I64`).
pub fn native_ty(s: Scalar) -> Ty {
    match s {
        Scalar::Bool | Scalar::I8 | Scalar::U8 => Ty::I8,
        Scalar::I16 | Scalar::U16 => Ty::I16,
        Scalar::I32 | Scalar::U32 => Ty::I32,
        Scalar::F32 => Ty::F32,
        Scalar::F64 => Ty::F64,
        Scalar::I64 | Scalar::U64 | Scalar::Ptr => Ty::I64,
    }
}

/// The native type a leaf travels as across calls between compiled functions.
pub fn abi_ty(s: Scalar) -> Ty {
    match abi_class(s) {
        AbiClass::I64 => Ty::I64,
        AbiClass::F32 => Ty::F32,
        AbiClass::F64 => Ty::F64,
    }
}

/// The native signature of compiled MIR functions: `fn(vmctx, [ret_area,] depth, leaves...) -> [leaf]`.
pub fn jit_signature(sig: &Signature) -> NativeSig {
    let mut params = vec![Ty::Addr];
    if uses_ret_area(&sig.ret) {
        params.push(Ty::Addr);
    }
    params.push(Ty::I64);
    params.extend(param_leaves(sig).into_iter().map(abi_ty));
    let rets = ret_leaves(&sig.ret);
    NativeSig::new(&params, if rets.len() == 1 { Some(abi_ty(rets[0])) } else { None })
}

/// The native signature of an OSR entry for a continuation with signature
/// `sig`: `fn(state: *const u64) -> [leaf]`. The transferring frame writes the
/// values live at the loop header (leaf `k` at byte `8 * k` of `state`,
/// canonical like call arguments) to a buffer in its own frame, as HotSpot's
/// OSR buffer and JavaScriptCore's scratch buffer do, preceded by its frame
/// words (`OSR_STATE_VMCTX`, its call depth at `OSR_STATE_DEPTH`, and
/// `OSR_STATE_RET_AREA` when `sig` returns through a ret area), and passes `state`. That one argument is an address
/// computed just before the call, so the hot loop needs none of its values, not
/// even `vmctx`, in an argument register: a long-lived value with a
/// fixed-register use makes the register allocator split it and move it
/// between registers inside the loop.
pub fn osr_entry_signature(sig: &Signature) -> NativeSig {
    let rets = ret_leaves(&sig.ret);
    NativeSig::new(&[Ty::Addr], if rets.len() == 1 { Some(abi_ty(rets[0])) } else { None })
}

/// Byte offset of `vmctx` from an OSR entry's `state` argument.
pub const OSR_STATE_VMCTX: i32 = -8;
/// Byte offset of the transferring frame's call depth from an OSR entry's `state` argument.
pub const OSR_STATE_DEPTH: i32 = -16;
/// Byte offset of the ret-area pointer from an OSR entry's `state` argument.
pub const OSR_STATE_RET_AREA: i32 = -24;

/// Frame words before an OSR entry's `state` for signature `sig`.
pub fn osr_frame_words(sig: &Signature) -> usize {
    2 + uses_ret_area(&sig.ret) as usize
}

/// The signature code for `unit` is compiled with.
pub fn unit_signature(unit: &super::CompileUnit<'_>) -> NativeSig {
    if unit.opts.osr_entry {
        osr_entry_signature(&unit.func.sig)
    } else {
        jit_signature(&unit.func.sig)
    }
}

/// The C signature of a host function (scalars only; narrow ints extended per the C rules).
pub fn host_signature(sig: &Signature) -> NativeSig {
    let param = |t: &Type| {
        let s = t.scalar().unwrap_or(Scalar::I64);
        let ty = native_ty(s);
        let ext = match s {
            _ if ty == Ty::I64 || s.is_float() => Ext::None,
            _ if s.is_signed() => Ext::Sign,
            _ => Ext::Zero,
        };
        (ty, ext)
    };
    NativeSig {
        params: sig.params.iter().map(param).collect(),
        ret: if sig.ret.is_void() { None } else { Some(param(&sig.ret)) },
    }
}

/// The host entry of every function: `extern "C" fn(*mut VmCtx, args: *const u64, rets: *mut u64)`.
pub fn host_entry_signature() -> NativeSig {
    NativeSig::new(&[Ty::Addr, Ty::Addr, Ty::Addr], None)
}
