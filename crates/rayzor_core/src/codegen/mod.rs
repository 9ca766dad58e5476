//! Machine-code generation. `target` and `abi` are shared by the interpreter
//! and every backend.

pub mod abi;
pub mod cast;
pub mod code_memory;
pub mod cranelift;
#[cfg(feature = "llvm")]
pub mod llvm;
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

/// Executable code of one compiled function, from any backend. Dropping it
/// frees the code; the runtime drops it only when no call can be running it.
pub trait MachineCode: Send + Sync {
    /// Entry address (follows `codegen::abi`).
    fn address(&self) -> usize;
    /// Bytes of machine code.
    fn code_len(&self) -> usize;
    /// Bytes of memory held for it.
    fn held_bytes(&self) -> usize;
}

impl MachineCode for code_memory::CodeBlob {
    fn address(&self) -> usize {
        code_memory::CodeBlob::address(self)
    }
    fn code_len(&self) -> usize {
        self.len()
    }
    fn held_bytes(&self) -> usize {
        self.mapped_bytes()
    }
}
