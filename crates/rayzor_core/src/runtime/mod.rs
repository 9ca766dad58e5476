//! The tiered runtime: dispatch table, entry from the host, per-function
//! compilation, code reclamation, and host helpers for generated code.

pub mod helpers;
pub mod jit;
pub mod stack;

pub use jit::{FunctionInfo, Jit, JitError};
