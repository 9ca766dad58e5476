//! The tiered runtime: dispatch table, entry from the host, per-function
//! compilation, code reclamation, and host helpers for generated code.

pub mod jit;
pub mod osr;
pub mod perf_map;
pub mod policy;
pub mod profile;
pub mod reclaim;
pub mod stack;
pub mod tier;
pub mod worker;

pub use jit::{CompileEvent, CompileReason, FunctionInfo, Jit, JitError};
pub use tier::Tier;

/// Why T3 cannot be used in this build.
pub use crate::codegen::NO_LLVM as T3_UNAVAILABLE;

/// Executable C-ABI code with the host signature of `sig` (scalars only) that
/// calls `handler(context, args)`, for standing behind an extern (see
/// `codegen::thunk`). The code lives as long as the returned blob.
pub fn host_thunk(
    sig: &crate::mir::Signature,
    context: usize,
    handler: crate::codegen::thunk::ThunkHandler,
) -> Result<crate::codegen::code_memory::CodeBlob, String> {
    crate::codegen::cranelift::CraneliftBackend::shared()?.compile_host_thunk(sig, context, handler)
}
