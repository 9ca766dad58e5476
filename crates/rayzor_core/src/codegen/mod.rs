//! Machine-code generation: one lowering of MIR (`lower`) over a narrow
//! emitter interface (`emit`), with one emitter per backend: Cranelift
//! (`cranelift`) and LLVM (`llvm`, cargo feature `llvm`). Codegen knows
//! nothing of tiers: the runtime's tier policy picks a backend and options.

pub mod abi;
pub mod builtins;
pub mod cast;
pub mod code_memory;
pub mod cranelift;
pub mod disasm;
pub mod emit;
/// Interrupt polling lives with the interpreter (the lowest layer); generated code uses it too.
pub use crate::mir::interrupt;
#[cfg(feature = "llvm")]
pub mod llvm;
pub mod lower;
pub mod placement;
pub mod quiesce;
pub mod strip;
pub mod thunk;
pub mod unwind;

use crate::mir::profile::FunctionProfile;
use crate::mir::{Block, FuncId, Function, Module};

/// Addresses the generated code embeds: they live as long as the jit.
pub struct CodegenEnv<'a> {
    pub module: &'a Module,
    /// `AtomicUsize` entry slot of function `i` is at `slots_base + 8 * i`.
    pub slots_base: usize,
    /// `FunctionCounters` of function `i` at `counters_base + COUNTERS_STRIDE * i`.
    pub counters_base: usize,
    /// Host address of each extern.
    pub extern_addrs: &'a [usize],
    /// (pointer, length) of each static data item.
    pub data: &'a [(usize, usize)],
    /// `ProfileConfig::sample_rate` the counting code implements (0: no counting code).
    pub sample_rate: u64,
    /// Address of each builtin, indexed by `Builtin as usize`.
    pub builtins: &'a builtins::BuiltinTable,
    /// Address of the profile slots of function `i` (laid out by
    /// `mir::profile::ProfileLayout::of` its MIR; 0: it has none).
    pub profiles: &'a [usize],
}

/// How to compile one function (chosen by the runtime's tier policy).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CodegenOptions {
    /// Optimise (Cranelift `speed`, LLVM O3) or compile as fast as possible.
    pub optimize: bool,
    /// Which of `FunctionCounters::calls` the prologue counts entries in (none
    /// for OSR continuations: entering one is not a call).
    pub call_counter: Option<usize>,
    /// Count loop back-edges (code that may still be promoted) or not (the
    /// top tier: a counter store per iteration keeps LLVM from vectorising).
    pub count_backedges: bool,
    /// An OSR entry: the parameters come in a buffer (`abi::osr_entry_signature`).
    pub osr_entry: bool,
    /// Calls of the function to itself go straight to the code being compiled
    /// instead of through its slot (code that will not be replaced: the top
    /// tier), so the backend can inline and transform the recursion.
    pub direct_self_calls: bool,
    /// Collect an execution profile (`mir::profile`) into the function's
    /// profile slots (`CodegenEnv::profiles`), counting every event (see
    /// `lower::Lower::add_to_slot` for why not sampled); none with `sample_rate` 0.
    /// Only for code of the function as written (its `Inst`s name the sites).
    pub profile: bool,
    /// Entries that do not poll on a counting path poll in their stack check
    /// (against `VmCtx::entry_limit`, with a call on the cold path) instead of
    /// with an inline poll of loads only: for a backend that keeps the cold
    /// call off the fast path (LLVM splits live ranges around it; Cranelift
    /// keeps the parameters in callee-saved registers or spilled for the whole
    /// function: T1 n-body +8 %, matmul +13 % measured).
    pub entry_limit_poll: bool,
    /// With `sample_rate > 1`, count entries on a sampling countdown (as back-edges
    /// are) instead of every one. Only T0: in its slow code the countdown, whose
    /// sampled path polls, costs less than a count and a poll per entry; in
    /// optimised code the countdown's branch, taken once per `sample_rate` calls
    /// and mispredicted by recursion, costs more (T1 fib(30): +29 % against no
    /// counting code at rate 16, +6.6 % counting every call).
    pub sample_entries: bool,
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

/// One function to compile: `func` is function `id` of `env.module`,
/// possibly optimised (or an OSR continuation of it).
pub struct CompileUnit<'a> {
    pub env: &'a CodegenEnv<'a>,
    pub id: FuncId,
    pub func: &'a Function,
    pub opts: CodegenOptions,
    /// Where the code may transfer into OSR entries (none: no OSR checks).
    pub osr: Option<&'a OsrSites<'a>>,
    /// How `func` ran (keyed by its own instructions): branch weights and
    /// switch case order. A hint only: the code is correct whatever it says.
    pub profile: Option<&'a FunctionProfile>,
}

/// The OSR transfer points of one compile: at each counted back-edge to a
/// listed loop header, the code looks up the header's `abi::OsrPoint` and,
/// when an entry is published there, calls it with the values live at the
/// header and returns its result (`codegen::lower`, `mir::osr`).
pub struct OsrSites<'a> {
    /// The `OsrPoint` address of each loop header of `CompileUnit::func`.
    pub points: &'a [(Block, usize)],
    /// With every event counted (`sample_rate` 1), look at the entry only
    /// when the loop's count is a multiple of `check_mask + 1` (a power of
    /// two); sampled counting looks on every sample.
    pub check_mask: u64,
    /// Look only once the loop's count is at least this (0: always). Tests
    /// force transfers after exactly k back-edges with `check_mask` 0.
    pub min_count: u64,
}

/// A code generator: compiles one MIR function to machine code following `codegen::abi`.
pub trait Backend: Send + Sync {
    fn name(&self) -> &'static str;
    fn compile(&self, unit: &CompileUnit<'_>) -> Result<Box<dyn MachineCode>, String>;
    /// The backend's IR of `unit`, as (stage, text) in pipeline order, from a
    /// compile that installs nothing (for inspection; nothing is kept otherwise).
    fn ir(&self, unit: &CompileUnit<'_>) -> Result<Vec<(&'static str, String)>, String>;
}

/// The Cranelift backend (its ISAs are built once per process).
pub fn cranelift_backend() -> Result<&'static dyn Backend, String> {
    cranelift::CraneliftBackend::shared().map(|b| b as &dyn Backend)
}

/// The LLVM backend (one process-wide LLJIT), or why this build has none.
pub fn llvm_backend() -> Result<&'static dyn Backend, String> {
    #[cfg(feature = "llvm")]
    {
        static BACKEND: std::sync::OnceLock<Result<llvm::LlvmBackend, String>> = std::sync::OnceLock::new();
        BACKEND.get_or_init(llvm::LlvmBackend::new).as_ref().map(|b| b as &dyn Backend).map_err(Clone::clone)
    }
    #[cfg(not(feature = "llvm"))]
    {
        Err(NO_LLVM.into())
    }
}

/// Why T3 cannot be used in a build without the `llvm` feature.
pub const NO_LLVM: &str = "this build of rayzor has no LLVM backend (T3)";

/// The error message a frame-size check reports (the same for every backend).
pub fn frame_too_large(name: &str, frame: u64) -> String {
    format!(
        "'{name}' needs a {} KiB stack frame, over the {} KiB limit: split the function or \
         keep fewer large aggregate values live at once",
        frame.div_ceil(1024),
        abi::MAX_FRAME_BYTES >> 10
    )
}
