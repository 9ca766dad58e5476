//! Profiles made without the profiling tiers: recorded exactly by the
//! reference interpreter (`Interpreter::record_profile`), or made up
//! (`random_profile`). Tests and benchmarks use them to drive the optimising
//! tiers with a profile of their choosing, including ones that later inputs
//! contradict.

use super::profile::{BranchCounts, FunctionProfile, IndirectTargets, SiteCounts, SwitchCounts};
use super::{FuncId, Inst, InstKind, Module};
use std::collections::BTreeMap;

/// Counts of every function of a module, as the interpreter ran it.
#[derive(Clone, Debug, Default)]
pub struct ProfileRecorder {
    funcs: Vec<Recorded>,
}

#[derive(Clone, Debug, Default)]
struct Recorded {
    entries: u64,
    sites: BTreeMap<Inst, Site>,
}

#[derive(Clone, Debug)]
enum Site {
    Branch(BranchCounts),
    Switch(SwitchCounts),
    Indirect(BTreeMap<FuncId, u64>),
    Call(u64),
}

impl ProfileRecorder {
    pub fn new(module: &Module) -> Self {
        ProfileRecorder { funcs: vec![Recorded::default(); module.functions.len()] }
    }

    pub fn entry(&mut self, f: usize) {
        if let Some(r) = self.funcs.get_mut(f) {
            r.entries += 1;
        }
    }

    fn site(&mut self, f: usize, inst: Inst, new: impl FnOnce() -> Site) -> Option<&mut Site> {
        self.funcs.get_mut(f).map(|r| r.sites.entry(inst).or_insert_with(new))
    }

    pub fn branch(&mut self, f: usize, inst: Inst, taken: bool) {
        if let Some(Site::Branch(b)) = self.site(f, inst, || Site::Branch(BranchCounts::default())) {
            if taken {
                b.taken += 1;
            } else {
                b.not_taken += 1;
            }
        }
    }

    /// Case `case` (an index into the instruction's cases) or the default (`None`) was taken.
    pub fn switch(&mut self, f: usize, inst: Inst, ncases: usize, case: Option<usize>) {
        let new = || Site::Switch(SwitchCounts { cases: vec![0; ncases], default: 0 });
        if let Some(Site::Switch(s)) = self.site(f, inst, new) {
            match case.and_then(|c| s.cases.get_mut(c)) {
                Some(n) => *n += 1,
                None => s.default += 1,
            }
        }
    }

    pub fn indirect(&mut self, f: usize, inst: Inst, target: FuncId) {
        if let Some(Site::Indirect(t)) = self.site(f, inst, || Site::Indirect(BTreeMap::new())) {
            *t.entry(target).or_insert(0) += 1;
        }
    }

    pub fn call(&mut self, f: usize, inst: Inst) {
        if let Some(Site::Call(n)) = self.site(f, inst, || Site::Call(0)) {
            *n += 1;
        }
    }

    /// The profile of function `f` so far (indirect sites: the 2 most
    /// frequent targets, the rest counted as misses, like the profiling tiers).
    pub fn profile(&self, f: FuncId) -> FunctionProfile {
        let Some(r) = self.funcs.get(f.index()) else { return FunctionProfile::default() };
        let sites = r
            .sites
            .iter()
            .map(|(i, s)| {
                let c = match s {
                    Site::Branch(b) => SiteCounts::Branch(*b),
                    Site::Switch(w) => SiteCounts::Switch(w.clone()),
                    Site::Call(n) => SiteCounts::Call(*n),
                    Site::Indirect(t) => {
                        let mut all: Vec<(FuncId, u64)> = t.iter().map(|(g, n)| (*g, *n)).collect();
                        all.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                        let misses = all.iter().skip(2).map(|(_, n)| n).sum();
                        all.truncate(2);
                        SiteCounts::Indirect(IndirectTargets { targets: all, misses })
                    }
                };
                (*i, c)
            })
            .collect();
        FunctionProfile { entries: r.entries, sites }
    }
}

/// Events one site counted (branches taken or not, switch hits, calls).
pub fn site_total(c: &SiteCounts) -> u64 {
    match c {
        SiteCounts::Branch(b) => b.taken.saturating_add(b.not_taken),
        SiteCounts::Switch(w) => w.cases.iter().fold(w.default, |a, n| a.saturating_add(*n)),
        SiteCounts::Indirect(t) => t.targets.iter().fold(t.misses, |a, (_, n)| a.saturating_add(*n)),
        SiteCounts::Call(n) => *n,
    }
}

/// A made-up profile of function `f`: pseudo-random counts (from `seed`) at
/// every branch, switch and call site, often extreme (0 or all), and for
/// `call_indirect` sites targets drawn from all the module's functions,
/// whatever their signature. Code compiled with it must still compute what
/// the interpreter computes.
pub fn random_profile(module: &Module, f: FuncId, seed: u64) -> FunctionProfile {
    let mut x = seed ^ 0x9E37_79B9_7F4A_7C15 ^ ((f.0 as u64) << 32);
    let mut next = move || {
        // splitmix64
        x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let count = |next: &mut dyn FnMut() -> u64| match next() % 4 {
        0 => 0,
        1 => 1_000_000,
        _ => next() % 1000,
    };
    let func = module.func(f);
    let nfuncs = module.functions.len().max(1) as u64;
    let mut sites = Vec::new();
    for (i, d) in func.insts.iter().enumerate() {
        let c = match &d.kind {
            InstKind::Brif { .. } => {
                SiteCounts::Branch(BranchCounts { taken: count(&mut next), not_taken: count(&mut next) })
            }
            InstKind::Switch { cases, .. } => SiteCounts::Switch(SwitchCounts {
                cases: cases.iter().map(|_| count(&mut next)).collect(),
                default: count(&mut next),
            }),
            InstKind::CallIndirect { .. } => {
                let k = next() % 3;
                let targets = (0..k).map(|_| (FuncId((next() % nfuncs) as u32), count(&mut next))).collect();
                SiteCounts::Indirect(IndirectTargets { targets, misses: count(&mut next) })
            }
            InstKind::Call { .. } => SiteCounts::Call(count(&mut next)),
            _ => continue,
        };
        sites.push((Inst(i as u32), c));
    }
    FunctionProfile { entries: count(&mut next), sites }
}
