//! Profiling configuration, hotness classes and tiering presets.
//!
//! Generated code counts calls (per tier) and loop back-edges per function.
//! A function's *heat* is calls + back-edges, the measure HotSpot uses for
//! its tier thresholds. Heat classifies it as cold, warm, hot or blazing,
//! which selects T0, T1, T2 or T3.

use crate::runtime::Tier;
use std::fmt;
use std::time::Duration;

/// How hot a function is, by its heat against the thresholds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Hotness {
    Cold,
    Warm,
    Hot,
    Blazing,
}

impl Hotness {
    /// The tier this class of function deserves.
    pub fn tier(self) -> Tier {
        match self {
            Hotness::Cold => Tier::T0,
            Hotness::Warm => Tier::T1,
            Hotness::Hot => Tier::T2,
            Hotness::Blazing => Tier::T3,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Hotness::Cold => "cold",
            Hotness::Warm => "warm",
            Hotness::Hot => "hot",
            Hotness::Blazing => "blazing",
        }
    }
}

impl fmt::Display for Hotness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Thresholds on heat (calls + loop back-edges) and the sampling rate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProfileConfig {
    pub warm_threshold: u64,
    pub hot_threshold: u64,
    pub blazing_threshold: u64,
    /// `0` compiles no counting code at all (only without background
    /// optimisation: nothing could be promoted). `1` counts every event.
    /// `N > 1` samples loop back-edges and T0 entries: each thread keeps a
    /// countdown per event kind and adds `N` to the shared counter on every
    /// N-th event, so shared counters are written N times less often (less
    /// contention between threads) and stay accurate to within `N` per thread.
    /// Countdowns persist across calls from the host. T1 and T2 count every
    /// call whatever `N` (`CodegenOptions::sample_entries` says why).
    pub sample_rate: u64,
    /// Back-edges of one loop (in code of one tier) after which the promoter
    /// compiles an OSR entry for it, so a running frame can move up a tier
    /// inside the loop (HotSpot: 60,000 / 40,000; .NET: ~69,000).
    pub osr_threshold: u64,
}

impl ProfileConfig {
    pub fn classify(&self, heat: u64) -> Hotness {
        if heat >= self.blazing_threshold {
            Hotness::Blazing
        } else if heat >= self.hot_threshold {
            Hotness::Hot
        } else if heat >= self.warm_threshold {
            Hotness::Warm
        } else {
            Hotness::Cold
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.warm_threshold == 0 {
            return Err("warm_threshold must be at least 1".into());
        }
        if !(self.warm_threshold <= self.hot_threshold && self.hot_threshold <= self.blazing_threshold) {
            return Err(format!(
                "thresholds must satisfy warm <= hot <= blazing, got warm={} hot={} blazing={}",
                self.warm_threshold, self.hot_threshold, self.blazing_threshold
            ));
        }
        if self.osr_threshold == 0 || self.osr_threshold > 1 << 40 {
            return Err(format!("osr_threshold must be between 1 and 2^40, got {}", self.osr_threshold));
        }
        if self.sample_rate > 1 << 20 {
            return Err(format!("sample_rate must be between 0 and 1048576, got {}", self.sample_rate));
        }
        Ok(())
    }
}

/// Everything that governs automatic promotion.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TieredConfig {
    pub enable_background_optimization: bool,
    pub optimization_check_interval_ms: u64,
    pub max_parallel_optimizations: usize,
    pub profile: ProfileConfig,
    /// On-stack replacement: hot loops move up the tiers inside a running call.
    pub osr: bool,
    /// 0 silent, 1 promotions and failures, 2 also every compile.
    pub verbosity: u8,
    /// The never-slower policy (`runtime::policy`): a promotion whose code is
    /// measured slower than the code it replaced by more than this many percent
    /// is undone. 0 turns the policy off.
    pub demotion_margin_pct: u32,
    /// Wait before a demoted tier is tried again; doubled after each demotion
    /// (JavaScriptCore's exponential back-off), never again after
    /// `policy::MAX_DEMOTIONS`.
    pub demotion_backoff_ms: u64,
}

impl TieredConfig {
    /// Fast tier-up for interactive work: .NET's 30-call tier-up for warm,
    /// then 10x per class; every event counted; checks every 10 ms.
    pub fn development() -> Self {
        TieredConfig {
            enable_background_optimization: true,
            optimization_check_interval_ms: 10,
            max_parallel_optimizations: 2,
            profile: ProfileConfig {
                warm_threshold: 30,
                hot_threshold: 300,
                blazing_threshold: 3_000,
                sample_rate: 1,
                osr_threshold: 10_000,
            },
            osr: true,
            verbosity: 1,
            demotion_margin_pct: 4,
            demotion_backoff_ms: 2_000,
        }
    }

    /// Conservative: HotSpot's thresholds on invocations + back-edges (our
    /// heat): C1 at 2,000 and C2 at 15,000; blazing (LLVM) at 100,000, near
    /// JavaScriptCore's FTL threshold (~64,000). Counters sampled 1 in 16.
    /// Checks every 50 ms; one compile thread.
    pub fn production() -> Self {
        TieredConfig {
            enable_background_optimization: true,
            optimization_check_interval_ms: 50,
            max_parallel_optimizations: 1,
            profile: ProfileConfig {
                warm_threshold: 2_000,
                hot_threshold: 15_000,
                blazing_threshold: 100_000,
                sample_rate: 16,
                osr_threshold: 60_000,
            },
            osr: true,
            verbosity: 0,
            demotion_margin_pct: 4,
            demotion_backoff_ms: 10_000,
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        self.profile.validate()?;
        if self.profile.sample_rate == 0 && self.enable_background_optimization {
            return Err("sample_rate=0 compiles no counters, so nothing could be promoted: \
                        it needs enable_background_optimization=False"
                .into());
        }
        if self.optimization_check_interval_ms == 0 || self.optimization_check_interval_ms > 3_600_000 {
            return Err(format!(
                "optimization_check_interval_ms must be between 1 and 3600000, got {}",
                self.optimization_check_interval_ms
            ));
        }
        if self.max_parallel_optimizations == 0 || self.max_parallel_optimizations > 64 {
            return Err(format!(
                "max_parallel_optimizations must be between 1 and 64, got {}",
                self.max_parallel_optimizations
            ));
        }
        if self.verbosity > 2 {
            return Err(format!("verbosity must be 0, 1 or 2, got {}", self.verbosity));
        }
        if self.demotion_margin_pct > 1_000 {
            return Err(format!(
                "demotion_margin_pct must be between 0 and 1000, got {}",
                self.demotion_margin_pct
            ));
        }
        if self.demotion_backoff_ms == 0 || self.demotion_backoff_ms > 86_400_000 {
            return Err(format!(
                "demotion_backoff_ms must be between 1 and 86400000, got {}",
                self.demotion_backoff_ms
            ));
        }
        Ok(())
    }
}

impl TieredConfig {
    /// The tier policy's settings. A probation without a verdict gives up
    /// after 100 monitor passes (at least a second).
    pub fn policy(&self) -> super::policy::PolicyConfig {
        super::policy::PolicyConfig {
            margin_pct: self.demotion_margin_pct,
            backoff: Duration::from_millis(self.demotion_backoff_ms),
            probation_timeout: Duration::from_millis((100 * self.optimization_check_interval_ms).max(1_000)),
            top_tier: Tier::T3,
        }
    }
}

impl Default for TieredConfig {
    fn default() -> Self {
        TieredConfig::production()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_ordered() {
        for c in [TieredConfig::development(), TieredConfig::production()] {
            c.validate().unwrap();
            assert_eq!(c.profile.classify(0), Hotness::Cold);
            assert_eq!(c.profile.classify(c.profile.warm_threshold), Hotness::Warm);
            assert_eq!(c.profile.classify(c.profile.hot_threshold), Hotness::Hot);
            assert_eq!(c.profile.classify(u64::MAX), Hotness::Blazing);
        }
    }

    #[test]
    fn nonsense_is_rejected() {
        let mut c = TieredConfig::development();
        c.profile.hot_threshold = 1;
        assert!(c.validate().unwrap_err().contains("warm <= hot"));
        let mut c = TieredConfig::development();
        c.profile.sample_rate = 0;
        assert!(c.validate().unwrap_err().contains("enable_background_optimization=False"));
        c.enable_background_optimization = false;
        c.validate().unwrap();
        let mut c = TieredConfig::development();
        c.max_parallel_optimizations = 0;
        assert!(c.validate().is_err());
        let mut c = TieredConfig::development();
        c.demotion_backoff_ms = 0;
        assert!(c.validate().unwrap_err().contains("demotion_backoff_ms"));
    }
}
