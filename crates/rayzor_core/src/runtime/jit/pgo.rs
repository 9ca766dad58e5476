//! Profile-guided compiles: the profile each compile at T2 and T3 uses, and
//! ways to give one (tests, benchmarks, or a user who knows how the code runs).
//!
//! T2 and T3 compile with the function's profile: branch weights, switch case
//! order (`codegen::lower`), guarded devirtualisation and profile-driven
//! inlining (`mir::opt`): the profile the function's T0/T1 code collected
//! (`Jit::profile`), or one given with `set_profile`, which takes precedence.
//! T0 and T1 (the profiling tiers) compile without one.

use super::{Jit, JitError};
use crate::mir::interp::{Interpreter, RunError};
use crate::mir::profile::FunctionProfile;
use crate::mir::profile_record::{random_profile, site_total};
use crate::mir::{ExternId, FuncId, Function};
use crate::runtime::Tier;
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

impl Jit {
    /// Use `profile` (keyed by the instructions of `f` as the module has it)
    /// for every later compile of `f` at T2 and T3, promotions included;
    /// `None` forgets a given profile.
    pub fn set_profile(&self, f: FuncId, profile: Option<FunctionProfile>) -> Result<(), JitError> {
        let mut given = self.given_profiles.lock();
        let slot = given
            .get_mut(f.index())
            .ok_or_else(|| JitError::Usage(format!("no function with index {}", f.0)))?;
        *slot = profile.map(Arc::new);
        Ok(())
    }

    /// `set_profile(f, Some(profile))`, then compile `f` at `tier` now.
    pub fn compile_with_profile(
        &self,
        f: FuncId,
        tier: Tier,
        profile: FunctionProfile,
    ) -> Result<Duration, JitError> {
        self.set_profile(f, Some(profile))?;
        self.compile(f, tier)
    }

    /// The profile compiles of `f` at T2 and T3 use, if any: the one given
    /// with `set_profile`, else the one its T0/T1 code collected (`Jit::profile`),
    /// when that saw the function run.
    pub fn profile_for(&self, f: FuncId) -> Option<Arc<FunctionProfile>> {
        if let Some(p) = self.given_profiles.lock().get(f.index()).cloned().flatten() {
            return Some(p);
        }
        if f.index() >= self.module.functions.len() {
            return None;
        }
        let p = self.profile(f);
        let seen = p.entries > 0 || p.sites.iter().any(|(_, c)| site_total(c) > 0);
        seen.then(|| Arc::new(p))
    }

    /// Run `calls` (argument leaves of function `entry`) in the reference
    /// interpreter, recording how every function ran, and give each function
    /// it entered that profile (`set_profile`). Returns the number of calls
    /// that trapped (they still count: a trap is an input like any other).
    pub fn train_profile(&self, entry: FuncId, calls: &[Vec<u64>]) -> Result<usize, JitError> {
        let mut interp = Interpreter::new(&self.module);
        for (i, addr) in self.extern_addrs.iter().enumerate() {
            interp.bind_extern(ExternId(i as u32), *addr);
        }
        interp.record_profile();
        let mut trapped = 0;
        for args in calls {
            match interp.call(entry, args) {
                Ok(_) => {}
                Err(RunError::Trap(_)) => trapped += 1,
                Err(e) => return Err(JitError::Usage(format!("training run failed: {e:?}"))),
            }
        }
        let rec = interp.take_profile().expect("recording");
        for i in 0..self.module.functions.len() {
            let p = rec.profile(FuncId(i as u32));
            if p.entries > 0 {
                self.set_profile(FuncId(i as u32), Some(p))?;
            }
        }
        Ok(trapped)
    }

    /// Give every function a made-up profile (`mir::profile_record::random_profile`).
    pub fn set_random_profiles(&self, seed: u64) {
        let mut given = self.given_profiles.lock();
        for (i, slot) in given.iter_mut().enumerate() {
            *slot = Some(Arc::new(random_profile(&self.module, FuncId(i as u32), seed)));
        }
    }

    /// The MIR `tier` compiles for `f` (after `mir::opt` from T2 on) and the
    /// profile to compile it with, keyed by that MIR's instructions.
    pub(super) fn mir_and_profile(
        &self,
        f: FuncId,
        tier: Tier,
    ) -> (Cow<'_, Function>, Option<FunctionProfile>) {
        if !tier.optimizes_mir() {
            return (Cow::Borrowed(self.module.func(f)), None);
        }
        let profile = self.profile_for(f);
        let (func, profile) =
            crate::mir::opt::optimize_function_with_profile(&self.module, f, profile.as_deref());
        (Cow::Owned(func), profile)
    }
}
