//! The tiered runtime: dispatch table, entry from the host, per-function
//! compilation, code reclamation, and host helpers for generated code.

pub mod helpers;
pub mod jit;
pub mod profile;
pub mod stack;
pub mod worker;

pub use jit::{CompileEvent, CompileReason, FunctionInfo, Jit, JitError};

/// Why T3 cannot be used in this build (until the LLVM backend lands).
pub const T3_UNAVAILABLE: &str = "this build of rayzor has no LLVM backend (T3)";
