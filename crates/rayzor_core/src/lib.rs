//! Rayzor core: MIR, its reference interpreter, code generators and the tiered
//! runtime. Nothing here knows about Python.

pub mod codegen;
pub mod error;
pub mod mir;
pub mod runtime;
