//! The tiers a function moves through. Which backend, which codegen options
//! and which MIR optimisation each tier uses is decided here, not in codegen.

use crate::codegen::{self, Backend, CodegenOptions};
use crate::mir::{Block, Function, InstKind};

/// The largest function (`function_size`) T3 compiles, and the longest basic
/// block. LLVM's code generator is superlinear in the length of a block (a
/// straight-line 8k-instruction function took 3.4 s at T3, 32k took 55 s) and
/// in `switch` cases (12.5k cases: 34 s), so functions over either limit stay
/// at T2, whose compile time is linear; the promoter records that as a
/// `size_limit` event. The limits bound promotions only: `Jit::compile` at T3
/// compiles what it is asked to. Ordinary code (many short blocks) of up to 20k
/// instructions compiles at T3 in about a second.
pub const T3_MAX_SIZE: usize = 20_000;
pub const T3_MAX_BLOCK: usize = 2_000;

/// The size the tier limits are stated in: MIR instructions, with each `switch`
/// case counted as `SWITCH_CASE_WEIGHT` instructions.
pub fn function_size(f: &Function) -> usize {
    let cases: usize = f
        .insts
        .iter()
        .map(|i| match &i.kind {
            InstKind::Switch { cases, .. } => cases.len(),
            _ => 0,
        })
        .sum();
    f.insts.len() + SWITCH_CASE_WEIGHT * cases
}

/// What one `switch` case costs LLVM, in instructions.
pub const SWITCH_CASE_WEIGHT: usize = 4;

/// Instructions in the longest straight-line run of `f`: a block with its
/// chain of `jump` successors that have no other predecessor, which LLVM
/// merges into one block (nine 1,990-instruction blocks chained by jumps took
/// over 70 s at T3 while every block was under the limit).
pub fn largest_block(f: &Function) -> usize {
    let n = f.blocks.len();
    // The distinct blocks a terminator can go to (a `brif` on a constant: the taken
    // one; LLVM folds it and merges as for a jump).
    let succs = |b: usize| -> Vec<usize> {
        let mut out: Vec<usize> = match f.terminator(Block(b as u32)) {
            Some(InstKind::Brif { cond, then_dest, else_dest }) => match constant_bool(f, *cond) {
                Some(true) => vec![then_dest.block.index()],
                Some(false) => vec![else_dest.block.index()],
                None => vec![then_dest.block.index(), else_dest.block.index()],
            },
            Some(t) => t.successors().iter().map(|c| c.block.index()).collect(),
            None => Vec::new(),
        };
        out.sort_unstable();
        out.dedup();
        out
    };
    let all: Vec<Vec<usize>> = (0..n).map(succs).collect();
    let mut preds = vec![0usize; n];
    for s in all.iter().flatten() {
        preds[*s] += 1;
    }
    // A block whose only successor has no other predecessor is merged with it.
    let next = |b: usize| match all[b][..] {
        [s] if preds[s] == 1 && s != b => Some(s),
        _ => None,
    };
    let nexts: Vec<Option<usize>> = (0..n).map(next).collect();
    let mut continues = vec![false; n];
    for s in nexts.iter().flatten() {
        continues[*s] = true;
    }
    let mut longest = 0;
    // Start only at chain heads (not the single-predecessor jump target of another block).
    for start in (0..n).filter(|b| !continues[*b]) {
        let (mut b, mut len, mut steps) = (start, 0, 0);
        loop {
            len += f.blocks[b].insts.len();
            steps += 1;
            match nexts[b] {
                Some(s) if steps < n => b = s,
                _ => break,
            }
        }
        longest = longest.max(len);
    }
    // Every block is in exactly one chain: a cycle of single-predecessor links
    // cannot exist, since every block is reachable from block0, which nothing targets.
    longest
}

/// The value of `v` if it is a `bool` constant.
fn constant_bool(f: &Function, v: crate::mir::Value) -> Option<bool> {
    match f.values[v.index()].def {
        crate::mir::ValueDef::Result(i) => match f.inst(i).kind {
            InstKind::Const { ty: crate::mir::Scalar::Bool, bits } => Some(bits & 1 != 0),
            _ => None,
        },
        crate::mir::ValueDef::Param(..) => None,
    }
}

/// Why `tier` does not compile `f`, if it does not (over one of its size limits).
pub fn over_size_limit(tier: Tier, f: &Function) -> Option<(usize, usize, String)> {
    if tier != Tier::T3 {
        return None;
    }
    let size = function_size(f);
    if size > T3_MAX_SIZE {
        return Some((size, T3_MAX_SIZE, format!("its size ({size}: instructions, switch cases counted {SWITCH_CASE_WEIGHT}x) is over the {tier} limit of {T3_MAX_SIZE}")));
    }
    let block = largest_block(f);
    (block > T3_MAX_BLOCK).then(|| {
        (
            block,
            T3_MAX_BLOCK,
            format!("its largest block ({block} instructions) is over the {tier} limit of {T3_MAX_BLOCK}"),
        )
    })
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

    /// Whether the tier's code collects the profile T2 and T3 compile with
    /// (`mir::profile`). Only T0: it runs the MIR as written (whose `Inst`s name
    /// the sites) and every function starts there; T1 could (`Jit::set_profiling_tiers`)
    /// but its steady state would pay (measured in docs/benchmarks.md: up to 2x
    /// on tight loops at T1, against up to +50% on T0's slower code), and it is
    /// where a function stays when it is warm but never hot.
    pub fn profiles(self) -> bool {
        self == Tier::T0
    }

    pub fn codegen_options(self) -> CodegenOptions {
        CodegenOptions {
            optimize: self != Tier::T0,
            // T3 is not promoted, so its entries are not counted: a count per call
            // is a serial read-modify-write that call-heavy code pays on every call.
            call_counter: (self != Tier::T3).then_some(self as usize),
            // T3 is the top tier: nothing is promoted on its loop counts.
            count_backedges: self != Tier::T3,
            osr_entry: false,
            // T3 code is not replaced by promotion, so its recursion may stay in it.
            direct_self_calls: self == Tier::T3,
            profile: self.profiles(),
            entry_limit_poll: self == Tier::T3,
            sample_entries: self == Tier::T0,
        }
    }
}

/// The tiers a climb from `current` towards `deserved` may step to next, best
/// first (the policy takes the first it is not backing off from). T0 code
/// steps to T1 first: a Cranelift compile takes about a millisecond, an LLVM
/// one 10-100x that, and T0's unoptimised, profiling code runs 2-7x slower
/// than T1's while it waits. From T1 on, a climb goes straight to the tier
/// the function deserves: T2 is T1's code generator after the MIR optimiser,
/// about as fast as T1 on most code (docs/benchmarks.md), so a function that
/// deserves T3 gains nothing from passing through it, and with one compile
/// thread that pass delays T3 by a monitor interval or more. The tiers between
/// follow, for when the deserved one is backing off.
pub fn climb_order(current: Tier, deserved: Tier) -> impl Iterator<Item = Tier> {
    let mut above: Vec<Tier> = Tier::ALL.into_iter().filter(|t| *t > current && *t <= deserved).collect();
    if current != Tier::T0 {
        above.reverse();
    }
    above.into_iter()
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
