//! The tiered runtime: dispatch table, entry from the host, per-function
//! compilation, code reclamation, and host helpers for generated code.

pub mod jit;
pub mod osr;
pub mod perf_map;
pub mod profile;
pub mod stack;
pub mod tier;
pub mod worker;

pub use jit::{CompileEvent, CompileReason, FunctionInfo, Jit, JitError};
pub use tier::Tier;

/// Why T3 cannot be used in this build.
pub use crate::codegen::NO_LLVM as T3_UNAVAILABLE;
