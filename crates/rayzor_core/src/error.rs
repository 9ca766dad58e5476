//! Errors of the core. Each carries enough location to tell the user exactly
//! what was wrong and where.

use crate::mir::{Block, Inst, TrapKind};
use std::fmt;

/// A rule of the verifier that a module breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyError {
    pub function: String,
    pub block: Option<Block>,
    pub inst: Option<Inst>,
    /// A short stable name of the rule, e.g. `operand-type`, `dominance`.
    pub rule: &'static str,
    pub message: String,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "in function '{}'", self.function)?;
        if let Some(b) = self.block {
            write!(f, ", {b}")?;
        }
        if let Some(i) = self.inst {
            write!(f, ", {i}")?;
        }
        write!(f, ": [{}] {}", self.rule, self.message)
    }
}

impl std::error::Error for VerifyError {}

/// A syntax or name error in MIR text, with a 1-based line and column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}: {}", self.line, self.column, self.message)
    }
}

impl std::error::Error for ParseError {}

/// A program trapped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trap {
    pub kind: TrapKind,
    /// The function the trap happened in, when known.
    pub function: Option<String>,
}

impl fmt::Display for Trap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "trap: {}", self.kind)?;
        if let Some(func) = &self.function {
            write!(f, " in function '{func}'")?;
        }
        Ok(())
    }
}

impl std::error::Error for Trap {}

/// Misuse of the builder or of an entry point (wrong names, arity, kinds of
/// values), reported before anything runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Why a run did not produce a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunError {
    Trap(Trap),
    Usage(UsageError),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Trap(t) => t.fmt(f),
            RunError::Usage(u) => u.fmt(f),
        }
    }
}

impl std::error::Error for RunError {}

impl From<Trap> for RunError {
    fn from(t: Trap) -> Self {
        RunError::Trap(t)
    }
}

impl From<UsageError> for RunError {
    fn from(u: UsageError) -> Self {
        RunError::Usage(u)
    }
}
