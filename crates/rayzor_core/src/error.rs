//! The core's error types, gathered for users of the crate. Each lives beside
//! the code that raises it; this module only re-exports them.

pub use crate::mir::builder::UsageError;
pub use crate::mir::interp::{RunError, Trap};
pub use crate::mir::text::ParseError;
pub use crate::mir::verify::VerifyError;

/// `n` and `word`, plural unless `n` is 1: `count(1, "argument")` is "1 argument".
pub fn count(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}
