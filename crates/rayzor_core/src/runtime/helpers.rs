//! Host functions that generated code calls. They never panic (a panic must
//! not unwind through JIT frames) and report failures through `VmCtx`.

use crate::codegen::abi::VmCtx;
use crate::codegen::target::MAX_TYPE_SIZE;
use crate::mir::TrapKind;

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

pub extern "C" fn rayzor_free(p: u64) {
    // SAFETY: MIR `free` semantics: p came from `alloc` (or is null).
    unsafe { free(p as *mut u8) }
}

pub extern "C" fn rayzor_memmove(dst: u64, src: u64, len: u64) {
    if len > 0 {
        // SAFETY: MIR `memcpy` semantics; validity is the program's contract.
        unsafe { std::ptr::copy(src as *const u8, dst as *mut u8, len as usize) }
    }
}

pub extern "C" fn rayzor_memset(dst: u64, byte: u64, len: u64) {
    if len > 0 {
        // SAFETY: as for memmove.
        unsafe { std::ptr::write_bytes(dst as *mut u8, byte as u8, len as usize) }
    }
}

pub extern "C" fn rayzor_fmod(a: f64, b: f64) -> f64 {
    a % b
}

pub extern "C" fn rayzor_fmodf(a: f32, b: f32) -> f32 {
    a % b
}
