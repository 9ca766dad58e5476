//! `rayzor._rayzor.Jit` and `JitFunction`: native execution from Python.

use crate::convert::{self, PinnedBuffer};
use crate::errors;
use crate::interp::{extern_addresses, lookup};
use crate::module::PyMirModule;
use parking_lot::Mutex;
use pyo3::exceptions::PyValueError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyInt, PyTuple};
use rayzor_core::mir::{ExternId, FuncId, Scalar, Type};
use rayzor_core::runtime::osr::OsrMode;
use rayzor_core::runtime::profile::{ProfileConfig, TieredConfig};
use rayzor_core::runtime::worker::Promoter;
use rayzor_core::runtime::Tier;
use rayzor_core::runtime::{CompileReason, Jit, JitError};
use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::Arc;
#[cfg(not(feature = "abi3"))]
use std::sync::OnceLock;
use std::time::Instant;

pub fn jit_error(py: Python<'_>, e: JitError) -> PyErr {
    match e {
        JitError::Usage(m) => errors::argument_error(py, m),
        JitError::Closed => errors::closed_error(py),
        other => errors::compile_error(py, other.to_string()),
    }
}

pub fn tier_from_int(py: Python<'_>, tier: u8) -> PyResult<Tier> {
    Tier::from_index(tier as usize)
        .ok_or_else(|| errors::argument_error(py, format!("no tier {tier}: tiers are 0 (T0) to 3 (T3)")))
}

/// (source tier, loop header, back-edges counted, tier of the published entry).
type OsrPointRow = (u8, u32, u64, Option<u8>);

/// One profiled site: (instruction, its block, kind, switch case keys, names,
/// counts). `branch`: names the then/else blocks, counts taken, not taken;
/// `switch`: counts per case key, then the default; `indirect`: names and
/// counts the targets (most frequent first), then the misses; `call`: names
/// the callee, counts its calls.
type ProfileRow = (u32, u32, &'static str, Vec<i128>, Vec<String>, Vec<u64>);

/// A tier given from Python: an int (or `rayzor.Tier`) from 0 to 3, nothing else.
pub fn tier_arg(py: Python<'_>, tier: &Bound<'_, PyAny>) -> PyResult<Tier> {
    let bad = || {
        let shown = tier.repr().map(|r| r.to_string()).unwrap_or_default();
        errors::argument_error(py, format!("no tier {shown}: a tier is an int from 0 (T0) to 3 (T3)"))
    };
    if !tier.is_instance_of::<PyInt>() || tier.is_instance_of::<pyo3::types::PyBool>() {
        return Err(bad());
    }
    match tier.extract::<i64>() {
        Ok(t) if (0..4).contains(&t) => Tier::from_index(t as usize).ok_or_else(bad),
        _ => Err(bad()),
    }
}

/// Compiled code for a module: the dispatch table and every function's code.
#[pyclass(name = "Jit", module = "rayzor._rayzor", frozen)]
pub struct PyJit {
    pub core: Arc<Jit>,
    promoter: Mutex<Option<Promoter>>,
    config: TieredConfig,
    /// The host objects (ctypes functions, thunks) the code calls: kept alive as long as the code.
    /// Shared with every `JitFunction`, which may outlive this object.
    host_objects: Arc<crate::interp::HostObjects>,
}

/// The tiering configuration in the core's terms; `rayzor.TieredConfig` builds
/// one (by keyword) to pass in, and presets come back as one.
#[pyclass(name = "RawConfig", module = "rayzor._rayzor", frozen, eq)]
#[derive(PartialEq)]
pub struct RawConfig {
    #[pyo3(get)]
    enable_background_optimization: bool,
    #[pyo3(get)]
    optimization_check_interval_ms: u64,
    #[pyo3(get)]
    max_parallel_optimizations: usize,
    #[pyo3(get)]
    warm_threshold: u64,
    #[pyo3(get)]
    hot_threshold: u64,
    #[pyo3(get)]
    blazing_threshold: u64,
    #[pyo3(get)]
    sample_rate: u64,
    #[pyo3(get)]
    osr_threshold: u64,
    #[pyo3(get)]
    osr: bool,
    #[pyo3(get)]
    verbosity: u8,
    #[pyo3(get)]
    demotion_margin_pct: u32,
    #[pyo3(get)]
    demotion_backoff_ms: u64,
}

impl RawConfig {
    fn to_core(&self) -> TieredConfig {
        TieredConfig {
            enable_background_optimization: self.enable_background_optimization,
            optimization_check_interval_ms: self.optimization_check_interval_ms,
            max_parallel_optimizations: self.max_parallel_optimizations,
            profile: ProfileConfig {
                warm_threshold: self.warm_threshold,
                hot_threshold: self.hot_threshold,
                blazing_threshold: self.blazing_threshold,
                sample_rate: self.sample_rate,
                osr_threshold: self.osr_threshold,
            },
            osr: self.osr,
            verbosity: self.verbosity,
            demotion_margin_pct: self.demotion_margin_pct,
            demotion_backoff_ms: self.demotion_backoff_ms,
        }
    }

    fn from_core(c: &TieredConfig) -> RawConfig {
        RawConfig {
            enable_background_optimization: c.enable_background_optimization,
            optimization_check_interval_ms: c.optimization_check_interval_ms,
            max_parallel_optimizations: c.max_parallel_optimizations,
            warm_threshold: c.profile.warm_threshold,
            hot_threshold: c.profile.hot_threshold,
            blazing_threshold: c.profile.blazing_threshold,
            sample_rate: c.profile.sample_rate,
            osr_threshold: c.profile.osr_threshold,
            osr: c.osr,
            verbosity: c.verbosity,
            demotion_margin_pct: c.demotion_margin_pct,
            demotion_backoff_ms: c.demotion_backoff_ms,
        }
    }
}

#[pymethods]
impl RawConfig {
    #[new]
    #[pyo3(signature = (
        *,
        enable_background_optimization,
        optimization_check_interval_ms,
        max_parallel_optimizations,
        warm_threshold,
        hot_threshold,
        blazing_threshold,
        sample_rate,
        osr_threshold,
        osr,
        verbosity,
        demotion_margin_pct,
        demotion_backoff_ms,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        enable_background_optimization: bool,
        optimization_check_interval_ms: u64,
        max_parallel_optimizations: usize,
        warm_threshold: u64,
        hot_threshold: u64,
        blazing_threshold: u64,
        sample_rate: u64,
        osr_threshold: u64,
        osr: bool,
        verbosity: u8,
        demotion_margin_pct: u32,
        demotion_backoff_ms: u64,
    ) -> Self {
        RawConfig {
            enable_background_optimization,
            optimization_check_interval_ms,
            max_parallel_optimizations,
            warm_threshold,
            hot_threshold,
            blazing_threshold,
            sample_rate,
            osr_threshold,
            osr,
            verbosity,
            demotion_margin_pct,
            demotion_backoff_ms,
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "RawConfig(enable_background_optimization={}, optimization_check_interval_ms={}, \
             max_parallel_optimizations={}, warm_threshold={}, hot_threshold={}, blazing_threshold={}, \
             sample_rate={}, verbosity={}, demotion_margin_pct={}, demotion_backoff_ms={})",
            if self.enable_background_optimization { "True" } else { "False" },
            self.optimization_check_interval_ms,
            self.max_parallel_optimizations,
            self.warm_threshold,
            self.hot_threshold,
            self.blazing_threshold,
            self.sample_rate,
            self.verbosity,
            self.demotion_margin_pct,
            self.demotion_backoff_ms,
        )
    }
}

/// One compile, as `Jit.events` reports it; `rayzor.CompileEvent` is built from it.
#[pyclass(name = "RawEvent", module = "rayzor._rayzor", frozen)]
pub struct RawEvent {
    #[pyo3(get)]
    function: String,
    /// The tier the function ran before (None for its first compile).
    #[pyo3(get)]
    from_tier: Option<u8>,
    #[pyo3(get)]
    to_tier: u8,
    /// Seconds since the jit was created when the code was published (or failed).
    #[pyo3(get)]
    at_seconds: f64,
    #[pyo3(get)]
    compile_seconds: f64,
    /// "initial", "requested", "promotion", "osr" (an OSR entry for a loop of the
    /// function's code at `from_tier`, published in the loop's OSR point) or
    /// "size_limit" (not compiled: over the tier's size limit) or "demoted" (the
    /// tier policy put `to_tier`'s code back: `from_tier`'s was measured slower).
    #[pyo3(get)]
    reason: &'static str,
    /// For demotions: median nanoseconds of a timed host call with the demoted
    /// code and with the code put back, and seconds until the tier is retried
    /// (None: never).
    #[pyo3(get)]
    new_cost_ns: Option<u64>,
    #[pyo3(get)]
    old_cost_ns: Option<u64>,
    #[pyo3(get)]
    retry_seconds: Option<f64>,
    /// For OSR entries: the loop header block and the back-edges its loop had counted.
    #[pyo3(get)]
    loop_header: Option<u32>,
    #[pyo3(get)]
    backedges: Option<u64>,
    /// For promotions: the heat that triggered it and its hotness class.
    #[pyo3(get)]
    heat: Option<u64>,
    #[pyo3(get)]
    hotness: Option<&'static str>,
    /// The backend's message when the compile failed.
    #[pyo3(get)]
    error: Option<String>,
    /// Calls of the function (all tiers) when the code was published.
    #[pyo3(get)]
    calls_at: u64,
}

/// Facts about one function's code, as `Jit.info` reports them; lists are indexed by tier.
#[pyclass(name = "RawFunctionInfo", module = "rayzor._rayzor", frozen)]
pub struct RawFunctionInfo {
    /// The current tier.
    #[pyo3(get)]
    tier: u8,
    /// Latest compile time in seconds per tier, None where the tier never compiled it.
    #[pyo3(get)]
    compile_seconds: Vec<Option<f64>>,
    /// Machine-code bytes per tier.
    #[pyo3(get)]
    code_bytes: Vec<usize>,
    /// Entries into each tier's code.
    #[pyo3(get)]
    calls: Vec<u64>,
    /// Loop back-edges taken, all tiers together.
    #[pyo3(get)]
    backedges: u64,
}

/// Check a config; raises ValueError saying what is wrong.
#[pyfunction]
pub fn validate_config(config: &Bound<'_, RawConfig>) -> PyResult<()> {
    config.get().to_core().validate().map_err(PyValueError::new_err)
}

/// The values of a preset: "development" or "production".
#[pyfunction]
pub fn preset(name: &str) -> PyResult<RawConfig> {
    match name {
        "development" => Ok(RawConfig::from_core(&TieredConfig::development())),
        "production" => Ok(RawConfig::from_core(&TieredConfig::production())),
        _ => Err(PyValueError::new_err(format!("no preset '{name}': use 'development' or 'production'"))),
    }
}

/// The highest tier this build can compile, and why it is not T3 if it is not.
pub fn top_tier() -> (Tier, Option<&'static str>) {
    if cfg!(feature = "llvm") {
        (Tier::T3, None)
    } else {
        (Tier::T2, Some(rayzor_core::runtime::T3_UNAVAILABLE))
    }
}

/// Whether this build has the LLVM backend (tier T3).
#[pyfunction]
pub fn llvm_available() -> bool {
    cfg!(feature = "llvm")
}

/// The interpreter is exiting (called from `atexit`): closing a jit waits for
/// no compile, and compiles still running drop to the lowest priority.
#[pyfunction]
pub fn _process_exiting() {
    rayzor_core::codegen::quiesce::process_exiting();
}

#[pymethods]
impl PyJit {
    /// Verify `module` and compile every function at T0.
    #[new]
    #[pyo3(signature = (module, host = None, config = None))]
    fn new(
        py: Python<'_>,
        module: &Bound<'_, PyMirModule>,
        host: Option<&Bound<'_, PyAny>>,
        config: Option<&Bound<'_, RawConfig>>,
    ) -> PyResult<Self> {
        let config = config.map(|c| c.get().to_core()).unwrap_or_default();
        config.validate().map_err(PyValueError::new_err)?;
        let core = {
            let mut m = errors::borrow_mut(module)?;
            m.finish_and_verify(py)?;
            m.core.clone()
        };
        let (addrs, host_objects) = extern_addresses(py, &core, host)?;
        let mut by_index = vec![0usize; core.externs.len()];
        for (id, a) in addrs {
            by_index[id.index()] = a;
        }
        // An extern no code uses may stay unbound.
        let unbound = by_index.iter().enumerate().filter(|(_, a)| **a == 0);
        if let Some((e, user)) = unbound
            .filter_map(|(i, _)| Some((&core.externs[i].name, core.extern_user(ExternId(i as u32))?)))
            .next()
        {
            return Err(errors::argument_error(
                py,
                format!(
                    "extern '{e}' (used by '{user}') has no host address: \
                     pass host={{'{e}': address_or_ctypes_function}}"
                ),
            ));
        }
        let sample_rate = config.profile.sample_rate;
        rayzor_core::mir::interrupt::install_sigint_handler();
        let osr = if config.osr { OsrMode::Counting } else { OsrMode::Off };
        let jit =
            py.detach(|| Jit::with_osr(core, by_index, sample_rate, osr)).map_err(|e| jit_error(py, e))?;
        let core = Arc::new(jit);
        let promoter = if config.enable_background_optimization {
            let p = Promoter::start(core.clone(), config, top_tier().0)
                .map_err(|e| errors::compile_error(py, format!("cannot start the promoter threads: {e}")))?;
            Some(p)
        } else {
            None
        };
        Ok(PyJit { core, promoter: Mutex::new(promoter), config, host_objects: Arc::new(host_objects) })
    }

    /// (highest tier reachable, reason it is not T3 or None).
    #[staticmethod]
    fn top_tier() -> (u8, Option<&'static str>) {
        let (t, why) = top_tier();
        (t as u8, why)
    }

    /// The config in force.
    #[getter]
    fn config(&self) -> RawConfig {
        RawConfig::from_core(&self.config)
    }

    /// Compile events from index `start` on, in order.
    fn events(&self, start: usize) -> Vec<RawEvent> {
        self.core
            .events_since(start)
            .into_iter()
            .map(|e| {
                let (reason, heat, hotness) = match e.reason {
                    CompileReason::Initial => ("initial", None, None),
                    CompileReason::Requested => ("requested", None, None),
                    CompileReason::Promotion { heat, hotness } => {
                        ("promotion", Some(heat), Some(hotness.name()))
                    }
                    CompileReason::Osr { .. } => ("osr", None, None),
                    CompileReason::SizeLimit { .. } => ("size_limit", None, None),
                    CompileReason::Demotion { .. } => ("demoted", None, None),
                };
                let (new_cost_ns, old_cost_ns, retry_seconds) = match e.reason {
                    CompileReason::Demotion { new_ns, old_ns, retry_after } => {
                        (Some(new_ns), Some(old_ns), retry_after.map(|d| d.as_secs_f64()))
                    }
                    _ => (None, None, None),
                };
                let (loop_header, backedges) = match e.reason {
                    CompileReason::Osr { header, backedges } => (Some(header), Some(backedges)),
                    _ => (None, None),
                };
                RawEvent {
                    function: self.core.module().func(e.function).name.clone(),
                    from_tier: e.from.map(|t| t as u8),
                    to_tier: e.to as u8,
                    at_seconds: e.at.as_secs_f64(),
                    compile_seconds: e.compile_time.as_secs_f64(),
                    reason,
                    new_cost_ns,
                    old_cost_ns,
                    retry_seconds,
                    loop_header,
                    backedges,
                    heat,
                    hotness,
                    error: e.result.err(),
                    calls_at: e.calls_at,
                }
            })
            .collect()
    }

    /// Heat (calls + loop back-edges) counted for `name` so far, and its hotness class.
    fn heat(&self, py: Python<'_>, name: &str) -> PyResult<(u64, &'static str)> {
        let id = lookup(py, self.core.module(), name)?;
        let heat = self.core.heat(id);
        Ok((heat, self.config.profile.classify(heat).name()))
    }

    /// Seconds since the jit was created.
    fn uptime(&self) -> f64 {
        self.core.uptime().as_secs_f64()
    }

    /// The promoter's (passes, last quiet pass), or None without a running promoter.
    fn monitor_passes(&self) -> Option<(u64, u64)> {
        self.promoter.lock().as_ref().and_then(Promoter::passes)
    }

    /// Promotions queued or compiling, and probations of the tier policy.
    fn busy(&self) -> usize {
        self.promoter.lock().as_ref().map_or(0, Promoter::busy)
    }

    /// Tests: transfer at the first back-edge at which a loop has counted
    /// `after` back-edges, into OSR entries compiled at `tier` now (every
    /// function below `tier` is recompiled at its tier; counts start at 0).
    fn _force_osr(&self, py: Python<'_>, after: u64, tier: u8) -> PyResult<()> {
        let tier = tier_from_int(py, tier)?;
        if self.core.osr_mode() == OsrMode::Off {
            return Err(errors::argument_error(py, "this jit was created with osr=False".to_string()));
        }
        let core = &self.core;
        py.detach(|| core.force_osr(after.max(1), tier)).map_err(|e| jit_error(py, e))
    }

    /// OSR points of `name`: (source tier, loop header, back-edges counted, entry tier or None).
    fn osr_points(&self, py: Python<'_>, name: &str) -> PyResult<Vec<OsrPointRow>> {
        let id = lookup(py, self.core.module(), name)?;
        Ok(self
            .core
            .osr_points(id)
            .iter()
            .map(|p| (p.source as u8, p.header.0, p.backedges(), p.entry_tier().map(|t| t as u8)))
            .collect())
    }

    /// The IR of `name` at `tier` (default: its current tier), as (stage, text) pairs.
    #[pyo3(signature = (name, tier = None))]
    fn ir(&self, py: Python<'_>, name: &str, tier: Option<u8>) -> PyResult<Vec<(String, String)>> {
        let id = lookup(py, self.core.module(), name)?;
        let tier = match tier {
            Some(t) => tier_from_int(py, t)?,
            None => self.core.tier_of(id).unwrap_or(Tier::T0),
        };
        let core = self.core.clone();
        py.detach(move || core.ir(id, tier)).map_err(|e| jit_error(py, e))
    }

    /// (tier, address, bytes, installed) of the machine code of `name` at `tier`
    /// (default: the code installed now).
    #[pyo3(signature = (name, tier = None))]
    fn code(&self, py: Python<'_>, name: &str, tier: Option<u8>) -> PyResult<(u8, usize, Vec<u8>, bool)> {
        let id = lookup(py, self.core.module(), name)?;
        let tier = tier.map(|t| tier_from_int(py, t)).transpose()?;
        let core = self.core.clone();
        let c = py.detach(move || core.code_copy(id, tier)).map_err(|e| jit_error(py, e))?;
        Ok((c.tier as u8, c.address, c.bytes, c.installed))
    }

    /// The disassembly of `code(name, tier)`.
    #[pyo3(signature = (name, tier = None))]
    fn disassemble(&self, py: Python<'_>, name: &str, tier: Option<u8>) -> PyResult<String> {
        let id = lookup(py, self.core.module(), name)?;
        let tier = tier.map(|t| tier_from_int(py, t)).transpose()?;
        let core = self.core.clone();
        py.detach(move || core.disassemble(id, tier)).map_err(|e| jit_error(py, e))
    }

    /// Append this jit's code to `/tmp/perf-<pid>.map` from now on (see `perf_map_path`).
    fn enable_perf_map(&self, py: Python<'_>) -> PyResult<()> {
        let path = rayzor_core::runtime::perf_map::path();
        self.core.enable_perf_map().map_err(|e| {
            errors::config_error(py, format!("cannot write the perf map {}: {e}", path.display()))
        })
    }

    /// The perf map of this process, `/tmp/perf-<pid>.map`.
    #[staticmethod]
    fn perf_map_path() -> String {
        rayzor_core::runtime::perf_map::path().display().to_string()
    }

    /// Make every compile of `tier` fail (testing the failure path).
    fn _inject_slowdown(&self, py: Python<'_>, tier: u8, factor: u32) -> PyResult<()> {
        self.core.policy().inject_slowdown(tier_from_int(py, tier)?, factor);
        Ok(())
    }

    fn _inject_compile_failure(&self, py: Python<'_>, tier: u8) -> PyResult<()> {
        self.core.inject_failure(tier_from_int(py, tier)?);
        Ok(())
    }

    /// Record how `name` and everything it calls run on `calls` (argument
    /// tuples) in the reference interpreter, and compile those functions with
    /// that profile at T2 and T3 from now on. Returns how many calls trapped.
    fn train_profile(&self, py: Python<'_>, name: &str, calls: Vec<Bound<'_, PyTuple>>) -> PyResult<usize> {
        let module = self.core.module();
        let id = lookup(py, module, name)?;
        let mut pins = Vec::new();
        let leaves = calls
            .iter()
            .map(|args| crate::interp::convert_args(py, module, id, args, &mut pins))
            .collect::<PyResult<Vec<_>>>()?;
        let r = self.core.train_profile(id, &leaves).map_err(|e| jit_error(py, e));
        drop(pins);
        r
    }

    /// Testing aid: give every function a made-up profile (from `seed`) for its T2/T3 compiles.
    fn _random_profiles(&self, seed: u64) {
        self.core.set_random_profiles(seed);
    }

    /// Forget the profile given to `name` (by `train_profile` or `_random_profiles`).
    fn clear_profile(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        let id = lookup(py, self.core.module(), name)?;
        self.core.set_profile(id, None).map_err(|e| jit_error(py, e))
    }

    /// The callable for function `name`.
    fn function(&self, py: Python<'_>, name: &str) -> PyResult<Py<JitFunction>> {
        let id = lookup(py, self.core.module(), name)?;
        let f = Bound::new(py, JitFunction::new(self.core.clone(), id, self.host_objects.clone()))?;
        enable_vectorcall(&f);
        Ok(f.unbind())
    }

    /// Compile `name` at `tier` (0..3) and publish it; returns the compile time in seconds.
    fn compile(&self, py: Python<'_>, name: &str, tier: &Bound<'_, PyAny>) -> PyResult<f64> {
        let id = lookup(py, self.core.module(), name)?;
        let tier = tier_arg(py, tier)?;
        let core = self.core.clone();
        let t = py.detach(move || core.compile(id, tier)).map_err(|e| jit_error(py, e))?;
        Ok(t.as_secs_f64())
    }

    /// Current tier of `name` as an int (0..3).
    fn tier_of(&self, py: Python<'_>, name: &str) -> PyResult<u8> {
        let id = lookup(py, self.core.module(), name)?;
        Ok(self.core.tier_of(id).map_or(0, |t| t as u8))
    }

    /// Per-function facts: tier, and compile time, code size and calls per tier.
    fn info(&self, py: Python<'_>, name: &str) -> PyResult<RawFunctionInfo> {
        let id = lookup(py, self.core.module(), name)?;
        let i = self.core.info(id);
        Ok(RawFunctionInfo {
            tier: i.tier.map_or(0, |t| t as u8),
            compile_seconds: i.compile_time.iter().map(|t| t.map(|d| d.as_secs_f64())).collect(),
            code_bytes: i.code_size.to_vec(),
            calls: i.calls.to_vec(),
            backedges: i.backedges,
        })
    }

    /// The execution profile of `name` collected at its profiling tiers: (entries, sites).
    fn profile(&self, py: Python<'_>, name: &str) -> PyResult<(u64, Vec<ProfileRow>)> {
        use rayzor_core::mir::profile::SiteCounts;
        use rayzor_core::mir::InstKind;
        let m = self.core.module();
        let id = lookup(py, m, name)?;
        let f = m.func(id);
        let p = self.core.profile(id);
        let mut block_of = vec![0u32; f.insts.len()];
        for (b, bd) in f.blocks.iter().enumerate() {
            for i in &bd.insts {
                block_of[i.index()] = b as u32;
            }
        }
        let fname = |g: FuncId| m.func(g).name.clone();
        let rows = p
            .sites
            .iter()
            .map(|(inst, counts)| {
                let kind = &f.inst(*inst).kind;
                let (what, keys, names, counts): (_, Vec<i128>, Vec<String>, Vec<u64>) = match (counts, kind)
                {
                    (SiteCounts::Branch(b), InstKind::Brif { then_dest, else_dest, .. }) => (
                        "branch",
                        vec![],
                        vec![then_dest.block.to_string(), else_dest.block.to_string()],
                        vec![b.taken, b.not_taken],
                    ),
                    (SiteCounts::Switch(s), InstKind::Switch { value, cases, .. }) => {
                        // The keys as the user wrote them: signed types' keys sign-extended.
                        let sc = f.value_type(*value).scalar().unwrap_or(Scalar::I64);
                        let shift = 128 - sc.bits();
                        let key = |k: u64| {
                            let k = k as i128 & ((1i128 << sc.bits()) - 1);
                            if sc.is_signed() {
                                (k << shift) >> shift
                            } else {
                                k
                            }
                        };
                        let keys = cases.iter().map(|(k, _)| key(*k)).collect();
                        ("switch", keys, vec![], s.cases.iter().copied().chain([s.default]).collect())
                    }
                    (SiteCounts::Indirect(t), _) => (
                        "indirect",
                        vec![],
                        t.targets.iter().map(|(g, _)| fname(*g)).collect(),
                        t.targets.iter().map(|(_, n)| *n).chain([t.misses]).collect(),
                    ),
                    (
                        SiteCounts::Call(n),
                        InstKind::Call { callee: rayzor_core::mir::Callee::Func(g), .. },
                    ) => ("call", vec![], vec![fname(*g)], vec![*n]),
                    _ => ("unknown", vec![], vec![], vec![]),
                };
                (inst.0, block_of[inst.index()], what, keys, names, counts)
            })
            .collect();
        Ok((p.entries, rows))
    }

    /// Which tiers' code compiled from now on collects profiles, bit t for tier t
    /// (benchmarks: what collection costs).
    fn _set_profiling_tiers(&self, mask: u8) {
        self.core.set_profiling_tiers(mask);
    }

    /// Names of the functions, in module order.
    #[getter]
    fn functions(&self) -> Vec<String> {
        self.core.module().functions.iter().map(|f| f.name.clone()).collect()
    }

    /// (bytes of this thread's compiled-code stack, call depth it guarantees
    /// for frames of the largest size).
    fn stack(&self, py: Python<'_>) -> PyResult<(usize, u64)> {
        let bytes =
            rayzor_core::runtime::stack::thread_stack_bytes().map_err(|e| errors::compile_error(py, e))?;
        Ok((bytes, rayzor_core::runtime::stack::guaranteed_depth(bytes)))
    }

    /// Bytes of executable memory held by current code.
    fn code_bytes(&self) -> usize {
        self.core.code_bytes()
    }

    /// Stop the promoter (not waiting for a compile in progress: its code is discarded) and refuse further work.
    fn close(&self, py: Python<'_>) {
        self.core.close();
        let promoter = self.promoter.lock().take();
        if let Some(mut p) = promoter {
            py.detach(move || p.stop());
        }
    }

    #[getter]
    fn closed(&self) -> bool {
        self.core.is_closed()
    }

    /// Make every call of this jit running now (any thread) raise Trap(interrupted);
    /// with `after`, do it that many seconds from now, from a thread of its own.
    #[pyo3(signature = (after = None))]
    fn interrupt(&self, py: Python<'_>, after: Option<f64>) -> PyResult<()> {
        let Some(after) = after else {
            self.core.interrupt();
            return Ok(());
        };
        let delay = std::time::Duration::try_from_secs_f64(after).map_err(|_| {
            errors::argument_error(py, format!("interrupt(after={after}): expected seconds >= 0"))
        })?;
        let core = self.core.clone();
        std::thread::Builder::new()
            .name("rayzor-deadline".into())
            .spawn(move || {
                std::thread::sleep(delay);
                core.interrupt();
            })
            .map_err(|e| errors::compile_error(py, format!("cannot start the deadline thread: {e}")))?;
        Ok(())
    }
}

/// When a call releases the GIL: always, never, or when calls are measured to be long.
#[derive(Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum GilMode {
    Adaptive = 0,
    Release = 1,
    Hold = 2,
}

/// Calls shorter than this keep the GIL: releasing it costs more than it saves.
const LONG_CALL_NANOS: u128 = 20_000;
/// In adaptive mode, one call in this many is timed.
const SAMPLE_EVERY: u32 = 64;

/// How one scalar crosses the boundary without the generic conversion; anything
/// the fast path does not recognise takes the generic path, which also raises
/// the errors, so fast and generic calls fail identically.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Conv {
    I64,
    F64,
    Bool,
    Generic,
}

impl Conv {
    fn of(ty: &Type) -> Conv {
        match ty {
            Type::Scalar(Scalar::I64) => Conv::I64,
            Type::Scalar(Scalar::F64) => Conv::F64,
            Type::Scalar(Scalar::Bool) => Conv::Bool,
            _ => Conv::Generic,
        }
    }
}

/// A compiled function, callable like a Python function.
///
/// Python calls it through the vectorcall protocol (PEP 590): the type's
/// `tp_vectorcall_offset` points at `vectorcall`, so CPython passes the
/// arguments as the array it already has on its stack instead of packing a
/// tuple for `tp_call` (PyO3 offers no vectorcall for `__call__`, so the type is
/// patched once in `enable_vectorcall`). `__call__` stays as `tp_call`, for the
/// rare caller that uses the slot directly, and runs the same code.
#[pyclass(name = "JitFunction", module = "rayzor._rayzor", frozen)]
pub struct JitFunction {
    /// Read by CPython at `tp_vectorcall_offset`; the same for every instance.
    #[cfg(not(feature = "abi3"))]
    vectorcall: ffi::vectorcallfunc,
    jit: Arc<Jit>,
    id: FuncId,
    params: Vec<Type>,
    ret: Type,
    /// The conversion of each parameter and of the result, chosen once per signature.
    param_conv: Vec<Conv>,
    ret_conv: Conv,
    /// Every parameter and the result convert fast, at most `FAST_MAX_ARGS`
    /// scalar arguments, and no extern can call back into Python: calls may
    /// skip PyO3's trampoline (`try_fast_call`).
    #[cfg_attr(feature = "abi3", allow(dead_code))]
    fast_signature: bool,
    n_args: usize,
    n_rets: usize,
    /// Some parameter or the result is an aggregate: not callable from Python.
    aggregate_boundary: bool,
    gil_mode: AtomicU8,
    /// In adaptive mode: score of recent sampled calls, +1 for a long one and
    /// -1 for a short one, kept in 0..=3; the GIL is released at 2 or more, so
    /// one slow outlier (a cold first call) does not flip the mode.
    long_calls: AtomicU8,
    calls: AtomicU32,
    /// The host functions the code may call (thunks, ctypes objects): kept
    /// alive while this function is, even after its `Jit` object is gone.
    _host: Arc<crate::interp::HostObjects>,
}

impl JitFunction {
    fn new(jit: Arc<Jit>, id: FuncId, host: Arc<crate::interp::HostObjects>) -> Self {
        let f = jit.module().func(id);
        let (params, ret) = (f.sig.params.clone(), f.sig.ret.clone());
        let (n_args, n_rets) = jit.arity(id);
        let aggregate_boundary = n_args > params.len() || n_rets > 1;
        let param_conv: Vec<Conv> = params.iter().map(Conv::of).collect();
        let ret_conv = Conv::of(&ret);
        // Host callbacks re-enter Python through PyO3, which is cheaper from inside its trampoline.
        let fast_signature = !aggregate_boundary
            && n_args == params.len()
            && n_args <= FAST_MAX_ARGS
            && param_conv.iter().all(|c| *c != Conv::Generic)
            && ret_conv != Conv::Generic
            && jit.module().externs.is_empty();
        JitFunction {
            #[cfg(not(feature = "abi3"))]
            vectorcall: jit_function_vectorcall,
            fast_signature,
            jit,
            id,
            param_conv,
            ret_conv,
            params,
            ret,
            aggregate_boundary,
            n_args,
            n_rets,
            gil_mode: AtomicU8::new(GilMode::Adaptive as u8),
            long_calls: AtomicU8::new(0),
            calls: AtomicU32::new(0),
            _host: host,
        }
    }

    fn name(&self) -> &str {
        &self.jit.module().func(self.id).name
    }

    /// The call itself, for both entry points. `args` are borrowed object
    /// pointers that the caller keeps alive for the duration of the call.
    fn call_raw(&self, py: Python<'_>, args: &[*mut ffi::PyObject]) -> PyResult<Py<PyAny>> {
        if args.len() != self.params.len() {
            return Err(errors::argument_error(
                py,
                format!(
                    "function '{}' takes {}, got {}",
                    self.name(),
                    rayzor_core::error::count(self.params.len(), "argument"),
                    args.len()
                ),
            ));
        }
        if self.jit.is_closed() {
            return Err(errors::closed_error(py));
        }
        if self.aggregate_boundary {
            return Err(errors::argument_error(
                py,
                format!("function '{}' has aggregate parameters or results: call it from MIR", self.name()),
            ));
        }
        let mut pins = Vec::new();
        let mut argv = [0u64; 16];
        let mut heap_args;
        let argbuf: &mut [u64] = if self.n_args <= 16 {
            &mut argv[..self.n_args]
        } else {
            heap_args = vec![0u64; self.n_args];
            &mut heap_args
        };
        for (i, (&a, conv)) in args.iter().zip(&self.param_conv).enumerate() {
            // SAFETY: `a` is a live object the caller holds for the call.
            argbuf[i] = match unsafe { fast_arg(a, *conv) } {
                Some(bits) => bits,
                None => {
                    // SAFETY: as above.
                    let obj = unsafe { Borrowed::from_ptr(py, a) };
                    arg_bits(&obj, &self.params[i], i, self.name(), &mut pins)?
                }
            };
        }
        let mut rets = [0u64; 1];
        let release = self.releases_gil();
        let start = self.sample_start();
        let result = if release {
            let (jit, id, args) = (&self.jit, self.id, &*argbuf);
            py.detach(|| jit.call(id, args, &mut rets))
        } else {
            self.jit.call(self.id, argbuf, &mut rets)
        };
        self.sample_end(start);
        drop(pins);
        result.map_err(|e| errors::run(py, e))?;
        if self.ret_conv == Conv::Generic {
            return convert::result_to_py(py, &self.ret, &rets[..self.n_rets]);
        }
        // SAFETY: attached (we hold `py`); the result is a new reference or NULL with an exception set.
        unsafe { Ok(Bound::from_owned_ptr_or_err(py, fast_result(self.ret_conv, rets[0]))?.unbind()) }
    }

    /// Whether this call releases the GIL (no side effects).
    #[inline]
    fn releases_gil(&self) -> bool {
        let mode = self.gil_mode.load(Ordering::Relaxed);
        mode == GilMode::Release as u8
            || (mode == GilMode::Adaptive as u8 && self.long_calls.load(Ordering::Relaxed) >= 2)
    }

    /// In adaptive mode, the start time of one call in `SAMPLE_EVERY`.
    #[inline]
    fn sample_start(&self) -> Option<Instant> {
        if self.gil_mode.load(Ordering::Relaxed) != GilMode::Adaptive as u8 {
            return None;
        }
        // A plain load and store: an occasional lost update only shifts which call is sampled.
        let n = self.calls.load(Ordering::Relaxed).wrapping_add(1);
        self.calls.store(n, Ordering::Relaxed);
        (n % SAMPLE_EVERY == 1).then(Instant::now)
    }

    #[inline]
    fn sample_end(&self, start: Option<Instant>) {
        if let Some(start) = start {
            let long = start.elapsed().as_nanos() > LONG_CALL_NANOS;
            let score = self.long_calls.load(Ordering::Relaxed);
            let score = if long { (score + 1).min(3) } else { score.saturating_sub(1) };
            self.long_calls.store(score, Ordering::Relaxed);
        }
    }

    /// The whole call without PyO3's trampoline, for the common case: every
    /// parameter and the result take a fast conversion, no extern can call back
    /// into Python, positional arguments of the right count that all convert.
    /// None (nothing done yet, not even a sampled count) sends the
    /// call through the trampoline and `call_raw`, which handles everything
    /// else and raises the errors. Skipping the trampoline saves its entry
    /// bookkeeping, which locks PyO3's reference-pool mutex on every call.
    ///
    /// # Safety
    /// Attached, with CPython's vectorcall arguments.
    #[cfg(not(feature = "abi3"))]
    #[inline]
    unsafe fn try_fast_call(
        &self,
        args: *const *mut ffi::PyObject,
        nargsf: usize,
        kwnames: *mut ffi::PyObject,
    ) -> Option<*mut ffi::PyObject> {
        if !self.fast_signature {
            return None;
        }
        // SAFETY: per the vectorcall protocol.
        let nargs = unsafe { ffi::PyVectorcall_NARGS(nargsf) } as usize;
        if nargs != self.n_args || (!kwnames.is_null() && unsafe { ffi::PyTuple_GET_SIZE(kwnames) } > 0) {
            return None;
        }
        if self.jit.is_closed() {
            return None;
        }
        let mut argv = [0u64; FAST_MAX_ARGS];
        for (i, conv) in self.param_conv.iter().enumerate() {
            // SAFETY: `nargs` live argument pointers at `args`.
            argv[i] = unsafe { fast_arg(*args.add(i), *conv) }?;
        }
        let release = self.releases_gil();
        let start = self.sample_start();
        let mut rets = [0u64; 1];
        let result = if release {
            // Not `py.detach`: outside PyO3's trampoline there is no attach count to
            // save, and the code cannot call back into Python (no externs).
            // SAFETY: attached; the thread state is restored right after the call.
            let ts = unsafe { ffi::PyEval_SaveThread() };
            let r = call_caught(&self.jit, self.id, &argv[..nargs], &mut rets);
            // SAFETY: `ts` came from PyEval_SaveThread on this thread.
            unsafe { ffi::PyEval_RestoreThread(ts) };
            r
        } else {
            call_caught(&self.jit, self.id, &argv[..nargs], &mut rets)
        };
        self.sample_end(start);
        Some(match result.map_err(|b| *b) {
            // SAFETY: attached; a new reference or NULL with an exception set.
            Ok(()) => unsafe { fast_result(self.ret_conv, rets[0]) },
            // Errors are rare: PyO3's full attach (PyGILState_Ensure on a thread that
            // already holds the GIL) to build and raise them.
            Err(CallFailure::Run(e)) => Python::attach(|py| {
                errors::run(py, e).restore(py);
                std::ptr::null_mut()
            }),
            Err(CallFailure::Panic) => Python::attach(|py| {
                pyo3::panic::PanicException::new_err("rayzor: panic during a compiled call").restore(py);
                std::ptr::null_mut()
            }),
        })
    }

    fn keywords_refused(&self, py: Python<'_>, first: &str) -> PyErr {
        errors::argument_error(
            py,
            format!(
                "function '{}' takes positional arguments only, got keyword argument '{first}'",
                self.name()
            ),
        )
    }
}

/// Arguments the trampoline-free path takes (more go through `call_raw`).
const FAST_MAX_ARGS: usize = 8;

/// Why a fast-path call failed (boxed: rare, and a one-word result stays in registers).
#[cfg(not(feature = "abi3"))]
enum CallFailure {
    Run(rayzor_core::mir::interp::RunError),
    /// `Jit::call` has no panic; should it, the panic is raised, not unwound into CPython.
    Panic,
}

/// `Jit::call` with a panic caught and the result one word. Returned by value
/// (several words in memory), each copy of the result reloaded in pairs what was
/// just stored word by word, a store-forwarding stall each, ~5 ns a call.
#[cfg(not(feature = "abi3"))]
#[inline(never)]
fn call_caught(jit: &Jit, f: FuncId, args: &[u64], rets: &mut [u64]) -> Result<(), Box<CallFailure>> {
    let call = || jit.call(f, args, rets).map_err(|e| Box::new(CallFailure::Run(e)));
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(call))
        .unwrap_or_else(|_| Err(Box::new(CallFailure::Panic)))
}

/// A fast-path result as a new reference (NULL with an exception set if allocation fails).
///
/// # Safety
/// Attached; `conv` is not `Generic`.
#[inline]
unsafe fn fast_result(conv: Conv, bits: u64) -> *mut ffi::PyObject {
    unsafe {
        match conv {
            Conv::I64 => ffi::PyLong_FromLongLong(bits as i64),
            Conv::F64 => ffi::PyFloat_FromDouble(f64::from_bits(bits)),
            _ => {
                let b = if bits & 1 != 0 { ffi::Py_True() } else { ffi::Py_False() };
                ffi::Py_IncRef(b);
                b
            }
        }
    }
}

/// The bits of `obj` for the exact types the fast path knows (`int` for i64,
/// `float` for f64, `True`/`False` for bool), or None for the generic
/// conversion (other types, subclasses, ints out of range: its errors apply).
///
/// # Safety
/// `obj` is a live object and the thread is attached.
#[inline]
unsafe fn fast_arg(obj: *mut ffi::PyObject, conv: Conv) -> Option<u64> {
    unsafe {
        match conv {
            Conv::I64 if ffi::PyLong_CheckExact(obj) != 0 => {
                let mut overflow = 0;
                // Cannot fail on an exact int; out of range sets `overflow` only.
                let v = ffi::PyLong_AsLongLongAndOverflow(obj, &mut overflow);
                (overflow == 0).then_some(v as u64)
            }
            #[cfg(not(feature = "abi3"))]
            Conv::F64 if ffi::PyFloat_CheckExact(obj) != 0 => Some(ffi::PyFloat_AS_DOUBLE(obj).to_bits()),
            #[cfg(feature = "abi3")]
            Conv::F64 if ffi::PyFloat_CheckExact(obj) != 0 => Some(ffi::PyFloat_AsDouble(obj).to_bits()),
            Conv::Bool if obj == ffi::Py_True() => Some(1),
            Conv::Bool if obj == ffi::Py_False() => Some(0),
            _ => None,
        }
    }
}

/// The body of the vectorcall slot, run inside PyO3's trampoline (which counts
/// the thread as attached for PyO3, catches panics and restores errors).
///
/// # Safety
/// Called by CPython as a `vectorcallfunc` of a `JitFunction`.
#[cfg(not(feature = "abi3"))]
unsafe fn vectorcall_body(
    py: Python<'_>,
    callable: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: ffi::Py_ssize_t,
    kwnames: *mut ffi::PyObject,
) -> PyResult<*mut ffi::PyObject> {
    // SAFETY: CPython only calls this slot on instances of this type, with
    // `nargs` (flag bits masked off) argument pointers at `args` followed by
    // one per name in `kwnames`, all borrowed for the call.
    unsafe {
        let callable = Borrowed::from_ptr(py, callable).cast_unchecked::<JitFunction>();
        let f = callable.get();
        let nargs = ffi::PyVectorcall_NARGS(nargsf as usize) as usize;
        if !kwnames.is_null() && ffi::PyTuple_GET_SIZE(kwnames) > 0 {
            let first = Borrowed::from_ptr(py, ffi::PyTuple_GET_ITEM(kwnames, 0));
            return Err(f.keywords_refused(py, &first.str()?.to_string_lossy()));
        }
        let args = if nargs == 0 { &[][..] } else { std::slice::from_raw_parts(args, nargs) };
        f.call_raw(py, args).map(Py::into_ptr)
    }
}

/// The `vectorcallfunc` every `JitFunction` holds.
///
/// # Safety
/// Called by CPython with the thread attached, per the vectorcall protocol.
#[cfg(not(feature = "abi3"))]
unsafe extern "C" fn jit_function_vectorcall(
    callable: *mut ffi::PyObject,
    args: *const *mut ffi::PyObject,
    nargsf: usize,
    kwnames: *mut ffi::PyObject,
) -> *mut ffi::PyObject {
    // SAFETY: CPython calls this slot only on JitFunction instances, attached;
    // building the borrowed reference touches no reference count.
    let f =
        unsafe { Borrowed::from_ptr(Python::assume_attached(), callable).cast_unchecked::<JitFunction>() };
    // SAFETY: the vectorcall arguments, as received.
    if let Some(result) = unsafe { f.get().try_fast_call(args, nargsf, kwnames) } {
        return result;
    }
    // PyO3's own METH_FASTCALL trampoline has the vectorcall signature but for
    // `nargs` (a Py_ssize_t instead of size_t with flag bits, masked in the body).
    // It is PyO3's doc-hidden `impl_` API (what its generated methods use),
    // pinned by Cargo.lock: a PyO3 upgrade must check it still exists.
    let tramp =
        pyo3::impl_::trampoline::get_trampoline_function!(fastcall_cfunction_with_keywords, vectorcall_body);
    // SAFETY: forwarded as received; the body checks and masks what it needs.
    unsafe { tramp(callable, args, nargsf as ffi::Py_ssize_t, kwnames) }
}

/// The byte offset of `vectorcall` in a `JitFunction` object, set on the type
/// once (PyO3 builds the type without it). The layout is the same for every
/// instance, so the first one created measures it.
#[cfg(not(feature = "abi3"))]
static VECTORCALL_OFFSET: OnceLock<ffi::Py_ssize_t> = OnceLock::new();

/// The stable ABI has no access to the type's fields: calls use `tp_call`.
#[cfg(feature = "abi3")]
fn enable_vectorcall(_: &Bound<'_, JitFunction>) {}

#[cfg(not(feature = "abi3"))]
fn enable_vectorcall(obj: &Bound<'_, JitFunction>) {
    let offset =
        (std::ptr::addr_of!(obj.get().vectorcall) as isize - obj.as_ptr() as isize) as ffi::Py_ssize_t;
    let set = *VECTORCALL_OFFSET.get_or_init(|| {
        let tp = obj.get_type_ptr();
        // SAFETY: attached (we hold a Bound); `tp` is the JitFunction heap type,
        // whose every instance has the field at `offset`; CPython reads both
        // fields on each call, and PyType_Modified drops any cached state.
        unsafe {
            (*tp).tp_vectorcall_offset = offset;
            (*tp).tp_flags |= ffi::Py_TPFLAGS_HAVE_VECTORCALL;
            ffi::PyType_Modified(tp);
        }
        offset
    });
    assert_eq!(set, offset, "JitFunction layout changed between instances");
}

/// The generic conversion of argument `i` (what `fast_arg` does not take), with its errors.
fn arg_bits(
    obj: &Bound<'_, PyAny>,
    ty: &Type,
    i: usize,
    name: &str,
    pins: &mut Vec<PinnedBuffer>,
) -> PyResult<u64> {
    convert::to_arg(obj, ty, &format!("argument {i} of '{name}'"), pins)
}

#[pymethods]
impl JitFunction {
    /// `tp_call`: only reached by callers that use the slot directly (Python
    /// itself uses the vectorcall slot).
    #[pyo3(signature = (*args, **kwargs))]
    fn __call__(
        &self,
        py: Python<'_>,
        args: &Bound<'_, PyTuple>,
        kwargs: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        if let Some((k, _)) = kwargs.and_then(|k| k.iter().next()) {
            return Err(self.keywords_refused(py, &k.str()?.to_string_lossy()));
        }
        let ptrs: Vec<*mut ffi::PyObject> = args.iter_borrowed().map(|a| a.as_ptr()).collect();
        self.call_raw(py, &ptrs)
    }

    /// "adaptive" (default: release the GIL once calls are measured to take over
    /// 20 us), "release" (always) or "hold" (never).
    #[getter]
    fn gil(&self) -> &'static str {
        match self.gil_mode.load(Ordering::Relaxed) {
            1 => "release",
            2 => "hold",
            _ => "adaptive",
        }
    }

    #[setter]
    fn set_gil(&self, mode: &str) -> PyResult<()> {
        let m = match mode {
            "adaptive" => GilMode::Adaptive,
            "release" => GilMode::Release,
            "hold" => GilMode::Hold,
            _ => return Err(PyValueError::new_err("gil must be 'adaptive', 'release' or 'hold'")),
        };
        self.gil_mode.store(m as u8, Ordering::Relaxed);
        Ok(())
    }

    #[getter]
    fn __name__(&self) -> String {
        self.name().to_string()
    }

    fn __repr__(&self) -> String {
        let tier = self.jit.tier_of(self.id).map_or("?", |t| t.name());
        format!("<rayzor.JitFunction {} at {tier}>", self.name())
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyJit>()?;
    m.add_class::<JitFunction>()?;
    m.add_class::<RawConfig>()?;
    m.add_class::<RawEvent>()?;
    m.add_class::<RawFunctionInfo>()?;
    m.add_function(wrap_pyfunction!(validate_config, m)?)?;
    m.add_function(wrap_pyfunction!(preset, m)?)?;
    Ok(())
}
