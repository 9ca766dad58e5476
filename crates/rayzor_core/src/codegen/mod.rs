//! Machine-code generation. `target` and `abi` are shared by the interpreter
//! and every backend.

pub mod abi;
pub mod code_memory;
pub mod cranelift;
pub mod target;

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
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
