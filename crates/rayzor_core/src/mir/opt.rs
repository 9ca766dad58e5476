//! MIR-level optimisation for T2 (in progress).

use super::{FuncId, Function, Module};

/// An optimised copy of function `f` (inlining, constant folding, dead code).
pub fn optimize_function(module: &Module, f: FuncId) -> Function {
    module.func(f).clone()
}
