//! Execution profiles: how one MIR function ran, as the profiling tiers
//! observed it, for the optimising tiers to use (branch weights, guarded
//! devirtualisation, profile-driven inlining, switch case order).
//!
//! A profile only ever changes *how fast* code runs, never what it computes:
//! every use of it must stay correct when later inputs contradict it (a
//! wrong guess is slower, never wrong). Counts cover only the time the
//! function ran in profiling code (T0 by default; it counts every event)
//! and may lose an update under contention: use them as relative frequencies.
//!
//! Sites are named by the `Inst` of the instruction in the function as the
//! user wrote it (before the MIR optimiser), so a profile collected by T0 (or T1)
//! code still names the right instructions when T2/T3 compile the function.

use super::interp::FUNC_TOKEN_BASE;
use super::{Callee, FuncId, Function, Inst, InstKind, Type};

/// Taken / not-taken counts of one `brif` (`taken`: to `then_dest`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BranchCounts {
    pub taken: u64,
    pub not_taken: u64,
}

impl BranchCounts {
    /// The probability the branch is taken, if it was seen at all.
    pub fn taken_probability(&self) -> Option<f64> {
        let n = self.taken + self.not_taken;
        (n > 0).then(|| self.taken as f64 / n as f64)
    }
}

/// Hit counts of one `switch`: per case (in the instruction's case order) and the default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SwitchCounts {
    pub cases: Vec<u64>,
    pub default: u64,
}

/// The most frequent MIR targets of one `call_indirect` site (most frequent
/// first), and how many calls went to a target not in the list.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndirectTargets {
    pub targets: Vec<(FuncId, u64)>,
    pub misses: u64,
}

/// One site's counts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SiteCounts {
    Branch(BranchCounts),
    Switch(SwitchCounts),
    Indirect(IndirectTargets),
    /// Calls made by a direct `call` site.
    Call(u64),
}

/// The profile of one function: its (sampled) entry count and its sites.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FunctionProfile {
    pub entries: u64,
    /// Sorted by `Inst`, at most one entry per instruction.
    pub sites: Vec<(Inst, SiteCounts)>,
}

impl FunctionProfile {
    /// The counts recorded for instruction `inst`, if any.
    pub fn site(&self, inst: Inst) -> Option<&SiteCounts> {
        self.sites.binary_search_by_key(&inst, |(i, _)| *i).ok().map(|k| &self.sites[k].1)
    }

    pub fn branch(&self, inst: Inst) -> Option<BranchCounts> {
        match self.site(inst) {
            Some(SiteCounts::Branch(b)) => Some(*b),
            _ => None,
        }
    }

    pub fn switch(&self, inst: Inst) -> Option<&SwitchCounts> {
        match self.site(inst) {
            Some(SiteCounts::Switch(s)) => Some(s),
            _ => None,
        }
    }

    pub fn indirect(&self, inst: Inst) -> Option<&IndirectTargets> {
        match self.site(inst) {
            Some(SiteCounts::Indirect(t)) => Some(t),
            _ => None,
        }
    }

    pub fn calls(&self, inst: Inst) -> Option<u64> {
        match self.site(inst) {
            Some(SiteCounts::Call(n)) => Some(*n),
            _ => None,
        }
    }
}

/// The most cases a profiled `switch` has. Counting a case costs a block on
/// its edge, so a bigger switch (100k cases: +0.35 s of T0 compile, doubling
/// it) is not profiled: case frequencies order the compares of small
/// switches, and big ones are jump tables whatever the profile.
pub const MAX_PROFILED_CASES: usize = 1024;

/// How many (target, count) rows a `call_indirect` site keeps (HotSpot's
/// `TypeProfileWidth` is 2); calls to other targets count as misses.
pub const INDIRECT_ROWS: usize = 2;

/// What is counted at one profiled site, and so how many slots it has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SiteKind {
    /// Slots `[not_taken, taken]`: generated code adds to slot `cond`.
    Branch,
    /// Slots `[case 0, .., case n-1, default]` in the instruction's case order.
    Switch { cases: usize },
    /// `INDIRECT_ROWS` rows `[token, count]` (token 0: an empty row; tokens are
    /// `func.addr` tokens, `FUNC_TOKEN_BASE + index`), then the miss count and
    /// the misses since a row was last replaced (`codegen::builtins::rayzor_profile_target`).
    Indirect,
    /// Slot `[calls]` of a direct `call` of a module function.
    Call,
}

impl SiteKind {
    pub fn slots(self) -> usize {
        match self {
            SiteKind::Branch => 2,
            SiteKind::Switch { cases } => cases + 1,
            SiteKind::Indirect => 2 * INDIRECT_ROWS + 2,
            SiteKind::Call => 1,
        }
    }
}

/// Where each profiled site of a function keeps its counts: one array of
/// `u64` slots per function, sites in instruction order. Derived from the
/// function alone, so the code that counts and the runtime that reads agree.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProfileLayout {
    /// (instruction, what it counts, index of its first slot), sorted by `Inst`.
    pub sites: Vec<(Inst, SiteKind, usize)>,
    /// Total slots.
    pub slots: usize,
}

impl ProfileLayout {
    /// The profiled sites of `func`: every `brif`, `switch` (of at most
    /// `MAX_PROFILED_CASES` cases), `call_indirect`
    /// through a MIR function pointer (host pointers have no MIR target to
    /// devirtualise to) and direct `call` of a module function.
    pub fn of(func: &Function) -> ProfileLayout {
        let mut sites = Vec::new();
        let mut slots = 0;
        for (i, data) in func.insts.iter().enumerate() {
            let kind = match &data.kind {
                InstKind::Brif { .. } => SiteKind::Branch,
                InstKind::Switch { cases, .. } if cases.len() <= MAX_PROFILED_CASES => {
                    SiteKind::Switch { cases: cases.len() }
                }
                InstKind::Switch { .. } => continue,
                InstKind::CallIndirect { callee, .. } => match func.value_type(*callee) {
                    Type::FnPtr { host: false, .. } => SiteKind::Indirect,
                    _ => continue,
                },
                InstKind::Call { callee: Callee::Func(_), .. } => SiteKind::Call,
                _ => continue,
            };
            sites.push((Inst(i as u32), kind, slots));
            slots += kind.slots();
        }
        ProfileLayout { sites, slots }
    }

    /// The site of instruction `inst`: what it counts and its first slot.
    pub fn site(&self, inst: Inst) -> Option<(SiteKind, usize)> {
        let k = self.sites.binary_search_by_key(&inst, |(i, _, _)| *i).ok()?;
        Some((self.sites[k].1, self.sites[k].2))
    }

    /// The profile these slot values (`slots.len() == self.slots`) describe.
    /// Sites never reached are left out.
    pub fn read(&self, slots: &[u64], entries: u64) -> FunctionProfile {
        let mut out = FunctionProfile { entries, sites: Vec::new() };
        for &(inst, kind, first) in &self.sites {
            let s = &slots[first..first + kind.slots()];
            let counts = match kind {
                SiteKind::Branch => SiteCounts::Branch(BranchCounts { taken: s[1], not_taken: s[0] }),
                SiteKind::Switch { cases } => {
                    SiteCounts::Switch(SwitchCounts { cases: s[..cases].to_vec(), default: s[cases] })
                }
                SiteKind::Indirect => {
                    let mut targets: Vec<(FuncId, u64)> = (0..INDIRECT_ROWS)
                        .filter_map(|r| {
                            let (token, n) = (s[2 * r], s[2 * r + 1]);
                            let f = token.checked_sub(FUNC_TOKEN_BASE)?;
                            (token != 0 && n > 0).then_some((FuncId(f as u32), n))
                        })
                        .collect();
                    // Most frequent first; ties by function index, so the order is stable.
                    targets.sort_by_key(|&(f, n)| (std::cmp::Reverse(n), f));
                    SiteCounts::Indirect(IndirectTargets { targets, misses: s[2 * INDIRECT_ROWS] })
                }
                SiteKind::Call => SiteCounts::Call(s[0]),
            };
            if s.iter().any(|&v| v != 0) {
                out.sites.push((inst, counts));
            }
        }
        out
    }
}
