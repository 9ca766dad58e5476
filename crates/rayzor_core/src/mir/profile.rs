//! Execution profiles: how one MIR function ran, as the profiling tiers
//! observed it, for the optimising tiers to use (branch weights, guarded
//! devirtualisation, profile-driven inlining, switch case order).
//!
//! A profile only ever changes *how fast* code runs, never what it computes:
//! every use of it must stay correct when later inputs contradict it (a
//! wrong guess is slower, never wrong). Counts are sampled, so they are
//! relative frequencies, not exact event counts.
//!
//! Sites are named by the `Inst` of the instruction in the function as the
//! user wrote it (before the MIR optimiser), so a profile collected by T0/T1
//! code still names the right instructions when T2/T3 compile the function.

use super::{FuncId, Inst};

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
