//! The core's error types, gathered for users of the crate. Each lives beside
//! the code that raises it; this module only re-exports them.

pub use crate::mir::builder::UsageError;
pub use crate::mir::interp::{RunError, Trap};
pub use crate::mir::text::ParseError;
pub use crate::mir::verify::VerifyError;
