//! Rayzor's mid-level IR: types, instructions, builder, verifier, text format
//! and the reference interpreter that defines what every tier must compute.

pub mod builder;
pub mod function;
pub mod host_abort;
pub mod interp;
pub mod interrupt;
pub mod layout;
pub mod opt;
pub mod osr;
pub mod profile;
pub mod profile_record;
pub mod text;
pub mod types;
pub mod verify;

pub use function::*;
pub use types::{Scalar, Signature, Type};
