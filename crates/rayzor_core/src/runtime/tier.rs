//! The tiers a function moves through. Which backend, which codegen options
//! and which MIR optimisation each tier uses is decided here, not in codegen.

use crate::codegen::{self, Backend, CodegenOptions};
use crate::mir::{Function, InstKind};

/// The largest function (`function_size`) T3 compiles. LLVM's code generator is
/// superlinear in function size (a 8k-instruction straight-line function took
/// 3.4 s, 32k took 55 s), so bigger functions stay at T2, whose compile time is
/// linear; the promoter records that as a `size_limit` event.
pub const T3_MAX_SIZE: usize = 4000;

/// The size the tier limits are stated in: MIR instructions plus `switch` cases.
pub fn function_size(f: &Function) -> usize {
    let cases: usize = f
        .insts
        .iter()
        .map(|i| match &i.kind {
            InstKind::Switch { cases, .. } => cases.len(),
            _ => 0,
        })
        .sum();
    f.insts.len() + cases
}

/// Compilation tiers, ordered from quickest to compile to fastest code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tier {
    /// Cranelift, no optimisation, single-pass register allocation.
    T0 = 0,
    /// Cranelift `opt_level=speed`, backtracking register allocation.
    T1 = 1,
    /// T1 plus MIR-level optimisation (inlining, constant folding, dead code).
    T2 = 2,
    /// LLVM at O3.
    T3 = 3,
}

impl Tier {
    pub const ALL: [Tier; 4] = [Tier::T0, Tier::T1, Tier::T2, Tier::T3];

    pub fn from_index(i: usize) -> Option<Tier> {
        Tier::ALL.get(i).copied()
    }

    pub fn name(self) -> &'static str {
        ["T0", "T1", "T2", "T3"][self as usize]
    }

    /// The backend that compiles this tier: Cranelift for T0-T2, LLVM for T3.
    pub fn backend(self) -> Result<&'static dyn Backend, String> {
        match self {
            Tier::T0 | Tier::T1 | Tier::T2 => codegen::cranelift_backend(),
            Tier::T3 => codegen::llvm_backend(),
        }
    }

    /// Whether the tier compiles the MIR after `mir::opt` (inlining, folding, DCE).
    pub fn optimizes_mir(self) -> bool {
        self >= Tier::T2
    }

    /// The largest `function_size` this tier compiles, if it has a limit.
    pub fn size_limit(self) -> Option<usize> {
        (self == Tier::T3).then_some(T3_MAX_SIZE)
    }

    pub fn codegen_options(self) -> CodegenOptions {
        CodegenOptions {
            optimize: self != Tier::T0,
            call_counter: Some(self as usize),
            // T3 is the top tier: nothing is promoted on its loop counts.
            count_backedges: self != Tier::T3,
        }
    }
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
