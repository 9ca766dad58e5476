//! Host thunks: C-ABI functions with an extern's signature that forward to
//! one generic handler, so the embedding (the Python glue) can stand behind
//! an extern without knowing its signature at compile time.
//!
//! A thunk for `sig` is `extern "C" fn(params of host_signature(sig)) -> ret`:
//! it stores each argument as a 64-bit word (integers extended by their
//! signedness, bool 0/1, `f32` in the low 4 bytes, `f64` as its bits) in a
//! frame array, calls `handler(context, words)`, and returns the handler's
//! 64-bit result as the extern's result type (low bits for narrow types).

use super::abi::{host_signature, native_ty};
use super::emit::{Conv, Emitter, Mem, NativeSig, Ty};
use crate::mir::{Scalar, Signature};

/// What a thunk calls: `handler(context, args)` returns the result's bits.
pub type ThunkHandler = unsafe extern "C" fn(context: usize, args: *const u64) -> u64;

/// Lower a thunk for `sig` (scalars only) into `e`, whose signature is
/// `host_signature(sig)`.
pub fn lower_host_thunk<E: Emitter>(e: &mut E, sig: &Signature, context: usize, handler: usize) {
    let params = e.params();
    let n = sig.params.len().max(1) as u32;
    let words = e.stack_slot(8 * n);
    for (k, (t, v)) in sig.params.iter().zip(params).enumerate() {
        let s = t.scalar().unwrap_or(Scalar::I64);
        let w = match native_ty(s) {
            Ty::I64 | Ty::Addr | Ty::F32 | Ty::F64 => v,
            _ if s.is_signed() => e.convert(Conv::SExt, Ty::I64, v),
            _ => e.convert(Conv::ZExt, Ty::I64, v),
        };
        e.store(Mem::Vm, w, words, 8 * k as i32);
    }
    let ctx = e.constant(Ty::Addr, context as u64);
    let target = e.constant(Ty::Addr, handler as u64);
    let bits = e
        .call(&NativeSig::new(&[Ty::Addr, Ty::Addr], Some(Ty::I64)), target, &[ctx, words])
        .expect("the handler returns a word");
    let ret = sig.ret.scalar().map(|s| match native_ty(s) {
        Ty::I64 | Ty::Addr => bits,
        Ty::F64 => e.convert(Conv::Bitcast, Ty::F64, bits),
        Ty::F32 => {
            let low = e.convert(Conv::Trunc, Ty::I32, bits);
            e.convert(Conv::Bitcast, Ty::F32, low)
        }
        t => e.convert(Conv::Trunc, t, bits),
    });
    e.ret(if sig.ret.is_void() { None } else { ret });
}

/// The native signature of the thunk for `sig`.
pub fn thunk_signature(sig: &Signature) -> NativeSig {
    host_signature(sig)
}
