//! A jit: one verified module, its dispatch table, and the code of each
//! function at its current tier.
//!
//! Every call, from the host or from generated code, loads the function's
//! entry slot and jumps there, so publishing new code is one release store.
//! Code that was replaced is retired through epoch-based reclamation
//! (`crossbeam-epoch`): every host entry pins the epoch for the duration of
//! the native call, and retired code is freed only once no pinned call can
//! still be running it.

use super::osr::{OsrMode, OsrPointState, OsrTable};
use super::reclaim::{self, retire};
use super::Tier;
use crate::codegen::abi::{self, FunctionCounters, VmCtx};
use crate::codegen::builtins::{Builtin, BuiltinTable};
use crate::codegen::code_memory::CodeBlob;
use crate::codegen::cranelift::CraneliftBackend;
use crate::codegen::{interrupt, quiesce, CodegenEnv, CompileUnit, MachineCode, OsrSites};
use crate::mir::builder::UsageError;
use crate::mir::interp::{RunError, Trap};
use crate::mir::profile::{FunctionProfile, ProfileLayout};
use crate::mir::{host_abort, layout, verify, ExternId, FuncId, Module, TrapKind};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

mod inspect;
mod pgo;
pub use inspect::CodeCopy;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JitError {
    /// The module does not verify, or an extern has no address, or a name is unknown.
    Usage(String),
    /// A backend failed; the function keeps running its previous code.
    Compile { function: String, tier: Tier, message: String },
    /// The tier's backend is not part of this build.
    Unavailable { tier: Tier, reason: String },
    /// The jit was closed.
    Closed,
    /// A resource the code needs (its native stack) cannot be had.
    Resources(String),
}

impl std::fmt::Display for JitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JitError::Usage(m) => f.write_str(m),
            JitError::Compile { function, tier, message } => {
                write!(f, "compiling '{function}' at {tier} failed: {message}")
            }
            JitError::Unavailable { tier, reason } => write!(f, "{tier} is not available: {reason}"),
            JitError::Closed => f.write_str("the jit is closed"),
            JitError::Resources(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for JitError {}

/// What is known about one function's compiled code.
#[derive(Clone, Debug, Default)]
pub struct FunctionInfo {
    pub tier: Option<Tier>,
    /// Wall time of the most recent compile at each tier.
    pub compile_time: [Option<Duration>; 4],
    /// Machine-code bytes of the most recent compile at each tier.
    pub code_size: [usize; 4],
    /// Entries into each tier's code, counted by the code itself (approximate).
    pub calls: [u64; 4],
    pub backedges: u64,
}

struct FuncState {
    tier: AtomicU8,
    inner: Mutex<FuncInner>,
}

#[derive(Default)]
struct FuncInner {
    current: Option<Box<dyn MachineCode>>,
    compile_time: [Option<Duration>; 4],
    code_size: [usize; 4],
}

const NO_TIER: u8 = u8::MAX;

pub struct Jit {
    module: Module,
    slots: Box<[AtomicUsize]>,
    counters: Box<[FunctionCounters]>,
    data: Vec<(usize, usize)>,
    extern_addrs: Vec<usize>,
    builtins: BuiltinTable,
    entries: Vec<CodeBlob>,
    /// Leaves each function takes and returns (the host call buffers' lengths).
    arity: Vec<(usize, usize)>,
    funcs: Vec<FuncState>,
    closed: AtomicBool,
    sample_rate: u64,
    /// Bit t set: every compile at tier t fails (to test the failure path).
    failing_tiers: AtomicU8,
    start: std::time::Instant,
    events: Mutex<Vec<CompileEvent>>,
    /// Per-loop OSR state of every function.
    osr: OsrTable,
    /// Append every published code blob to the perf map (`runtime::perf_map`).
    perf_map: AtomicBool,
    /// The code can call host functions (externs or host function pointers),
    /// which may abort the call (`host_abort`): calls set up the abort scope.
    calls_host: bool,
    /// Bumped by `interrupt` (see `codegen::interrupt`).
    interrupt_generation: AtomicU64,
    /// The never-slower tier policy (`runtime::policy`).
    policy: super::policy::Policy,
    /// Profiles given with `set_profile`, by function (`runtime::jit::pgo`).
    given_profiles: Mutex<Vec<Option<std::sync::Arc<crate::mir::profile::FunctionProfile>>>>,
    /// Execution profile slots of each function, beside its counters
    /// (`mir::profile::ProfileLayout`; none when `sample_rate` is 0).
    profiles: Vec<(ProfileLayout, Box<[AtomicU64]>)>,
    /// Address of each function's profile slots (0: none), for `CodegenEnv::profiles`.
    profile_addrs: Vec<usize>,
    /// Bit t set: later compiles at tier t collect profiles (`set_profiling_tiers`).
    profiling_tiers: AtomicU8,
}

use crate::codegen::unwind::{self, HostEntry};

/// Why code was compiled, for stats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompileReason {
    /// Compiled when the jit was created.
    Initial,
    /// Asked for by the user.
    Requested,
    /// The profiler found the function this hot.
    Promotion { heat: u64, hotness: super::profile::Hotness },
    /// An OSR entry for loop header `header` of the function's code at tier
    /// `from` (whose loop had counted `backedges`); published in that loop's
    /// `OsrPoint`, not in the function's slot.
    Osr { header: u32, backedges: u64 },
    /// Not compiled: the function's size (`tier::function_size`) is over the
    /// tier's limit (`Tier::size_limit`), so it stays where it is.
    SizeLimit { size: usize, limit: usize },
    /// Not compiled: the tier policy (`runtime::policy`) measured the promoted
    /// code (`from`) slower than the code it replaced (`to`) and put that back.
    /// Median nanoseconds of a timed host call with each; the tier is retried
    /// after `retry_after` (None: never).
    Demotion { new_ns: u64, old_ns: u64, retry_after: Option<Duration> },
}

/// One compile, successful or not.
#[derive(Clone, Debug)]
pub struct CompileEvent {
    pub function: FuncId,
    pub from: Option<Tier>,
    pub to: Tier,
    /// When it was published (or failed), since the jit was created.
    pub at: Duration,
    pub compile_time: Duration,
    pub reason: CompileReason,
    /// `Err` with the backend's message when the compile failed.
    pub result: Result<(), String>,
    /// Calls of the function (all tiers) when it was published.
    pub calls_at: u64,
}

impl Jit {
    /// Verify `module`, bind its externs to `extern_addrs` (one per extern, in
    /// order) and compile every function at T0. `sample_rate` as in
    /// `ProfileConfig` (0: no counting code).
    pub fn new(module: Module, extern_addrs: Vec<usize>, sample_rate: u64) -> Result<Jit, JitError> {
        Jit::build(module, extern_addrs, sample_rate, OsrMode::Off, 0)
    }

    /// As `new`, with loops' OSR points as `osr` says (see `runtime::osr`).
    pub fn with_osr(
        module: Module,
        extern_addrs: Vec<usize>,
        sample_rate: u64,
        osr: OsrMode,
    ) -> Result<Jit, JitError> {
        Jit::build(module, extern_addrs, sample_rate, osr, 0)
    }

    /// `new`, with every compile at the tiers in bit set `failing` failing from
    /// the start (to test the initial-compile fallback).
    pub fn with_failing_tiers(
        module: Module,
        extern_addrs: Vec<usize>,
        sample_rate: u64,
        failing: u8,
    ) -> Result<Jit, JitError> {
        Jit::build(module, extern_addrs, sample_rate, OsrMode::Off, failing)
    }

    fn build(
        module: Module,
        extern_addrs: Vec<usize>,
        sample_rate: u64,
        osr: OsrMode,
        failing: u8,
    ) -> Result<Jit, JitError> {
        verify::verify_module(&module).map_err(|e| JitError::Usage(e.to_string()))?;
        reclaim::init();
        if extern_addrs.len() != module.externs.len() {
            return Err(JitError::Usage(format!(
                "{} host addresses given for {} externs",
                extern_addrs.len(),
                module.externs.len()
            )));
        }
        // Externs no code uses may stay unbound (address 0): nothing embeds their address.
        for (i, (e, _)) in module.externs.iter().zip(&extern_addrs).enumerate().filter(|(_, (_, a))| **a == 0)
        {
            if let Some(user) = module.extern_user(ExternId(i as u32)) {
                return Err(JitError::Usage(format!(
                    "extern '{}' (used by '{user}') has no host address",
                    e.name
                )));
            }
        }
        // Fail here, clearly, rather than on the first call.
        super::stack::thread_stack_bytes().map_err(JitError::Resources)?;
        let n = module.functions.len();
        let calls_host = !module.externs.is_empty()
            || module
                .functions
                .iter()
                .any(|f| f.insts.iter().any(|d| matches!(d.kind, crate::mir::InstKind::CallIndirect { .. })));
        let data = module.data.iter().map(|d| (d.as_ptr() as usize, d.len())).collect();
        let profiles: Vec<(ProfileLayout, Box<[AtomicU64]>)> = module
            .functions
            .iter()
            .map(|f| {
                let layout = if sample_rate == 0 { ProfileLayout::default() } else { ProfileLayout::of(f) };
                let slots = (0..layout.slots).map(|_| AtomicU64::new(0)).collect();
                (layout, slots)
            })
            .collect();
        let profile_addrs =
            profiles.iter().map(|(l, s)| if l.slots == 0 { 0 } else { s.as_ptr() as usize }).collect();
        let mut jit = Jit {
            slots: (0..n).map(|_| AtomicUsize::new(0)).collect(),
            counters: (0..n).map(|_| FunctionCounters::default()).collect(),
            data,
            extern_addrs,
            builtins: Builtin::host_table(),
            entries: Vec::with_capacity(n),
            arity: module
                .functions
                .iter()
                .map(|f| (f.sig.params.iter().map(layout::leaf_count).sum(), layout::leaf_count(&f.sig.ret)))
                .collect(),
            funcs: (0..n)
                .map(|_| FuncState { tier: AtomicU8::new(NO_TIER), inner: Mutex::new(FuncInner::default()) })
                .collect(),
            closed: AtomicBool::new(false),
            sample_rate,
            failing_tiers: AtomicU8::new(failing),
            start: std::time::Instant::now(),
            events: Mutex::new(Vec::new()),
            osr: OsrTable::new(n, osr),
            perf_map: AtomicBool::new(false),
            calls_host,
            interrupt_generation: AtomicU64::new(0),
            policy: super::policy::Policy::default(),
            given_profiles: Mutex::new(vec![None; n]),
            profiles,
            profile_addrs,
            profiling_tiers: AtomicU8::new(
                Tier::ALL.iter().filter(|t| t.profiles()).map(|t| 1 << *t as u8).sum(),
            ),
            module,
        };
        let backend =
            CraneliftBackend::shared().map_err(|reason| JitError::Unavailable { tier: Tier::T0, reason })?;
        let section = quiesce::enter(false);
        for i in 0..n {
            let entry = backend
                .compile_host_entry(&jit.env(), FuncId(i as u32))
                .map_err(|m| jit.compile_error(FuncId(i as u32), Tier::T0, m))?;
            jit.entries.push(entry);
        }
        drop(section);
        for i in 0..n {
            jit.compile_initial(FuncId(i as u32))?;
        }
        Ok(jit)
    }

    /// The first compile of `f`: T0, or, when T0 cannot compile it (a frame over
    /// the limit, say), the next tier that can. Each failure is recorded as an
    /// event; only when no tier can compile `f` is it an error (T0's).
    fn compile_initial(&self, f: FuncId) -> Result<(), JitError> {
        let mut first_error = None;
        for tier in Tier::ALL {
            match self.compile_for(f, tier, CompileReason::Initial, false) {
                Ok(_) => return Ok(()),
                Err(e @ JitError::Compile { .. }) => {
                    first_error.get_or_insert(e);
                }
                // A tier this build lacks: the ones above it are no different.
                Err(JitError::Unavailable { .. }) => break,
                Err(e) => return Err(e),
            }
        }
        Err(first_error.unwrap_or(JitError::Closed))
    }

    fn env(&self) -> CodegenEnv<'_> {
        CodegenEnv {
            module: &self.module,
            slots_base: self.slots.as_ptr() as usize,
            counters_base: self.counters.as_ptr() as usize,
            extern_addrs: &self.extern_addrs,
            data: &self.data,
            sample_rate: self.sample_rate,
            builtins: &self.builtins,
            profiles: &self.profile_addrs,
        }
    }

    fn compile_error(&self, f: FuncId, tier: Tier, message: String) -> JitError {
        JitError::Compile { function: self.module.func(f).name.clone(), tier, message }
    }

    pub fn module(&self) -> &Module {
        &self.module
    }

    pub fn func_id(&self, name: &str) -> Option<FuncId> {
        self.module.func_by_name(name)
    }

    /// Compile `f` at `tier` and publish it; returns the compile time. On
    /// failure the function keeps its previous code.
    pub fn compile(&self, f: FuncId, tier: Tier) -> Result<Duration, JitError> {
        self.compile_for(f, tier, CompileReason::Requested, false)
    }

    /// Compile and publish, recording why. With `only_upgrade`, the code is
    /// published only if the function is still below `tier` by then (so a
    /// background promotion never undoes a newer compile).
    pub fn compile_for(
        &self,
        f: FuncId,
        tier: Tier,
        reason: CompileReason,
        only_upgrade: bool,
    ) -> Result<Duration, JitError> {
        if self.is_closed() {
            return Err(JitError::Closed);
        }
        if f.index() >= self.funcs.len() {
            return Err(JitError::Usage(format!("no function with index {}", f.0)));
        }
        // No fork while compiling or publishing (see codegen::quiesce).
        let _section = quiesce::enter(tier == Tier::T3);
        if quiesce::poisoned() {
            return Err(self.compile_error(f, tier, quiesce::POISONED_MESSAGE.into()));
        }
        let from = self.tier_of(f);
        let start = std::time::Instant::now();
        let injected = self.failing_tiers.load(Ordering::Relaxed) & (1 << tier as u8) != 0;
        let mut reason = reason;
        // The size limits bound promotions; an explicit request is compiled as asked.
        let bounded = matches!(reason, CompileReason::Promotion { .. });
        // Checked on the MIR as written and on the MIR the tier compiles (after
        // inlining, branch folding and block merging, which can join blocks).
        let over = if bounded {
            super::tier::over_size_limit(tier, self.module.func(f)).or_else(|| {
                (tier == Tier::T3)
                    .then(|| super::tier::over_size_limit(tier, &self.mir_and_profile(f, tier).0))
                    .flatten()
            })
        } else {
            None
        };
        let compiled = if let Some((size, limit, why)) = over {
            reason = CompileReason::SizeLimit { size, limit };
            let stays = from.map_or("uncompiled".to_string(), |t| format!("at {t}"));
            Err(self.compile_error(f, tier, format!("{why}; it stays {stays}")))
        } else if injected {
            Err(self.compile_error(f, tier, "failure injected for testing".into()))
        } else {
            self.compile_code(f, tier)
        };
        let compile_time = start.elapsed();
        let mut event = CompileEvent {
            function: f,
            from,
            to: tier,
            at: Duration::ZERO,
            compile_time,
            reason,
            result: Ok(()),
            calls_at: 0,
        };
        let deserved = match &event.reason {
            CompileReason::Promotion { hotness, .. } => Some(hotness.tier()),
            _ => None,
        };
        let mut replaced = None;
        let outcome = match compiled {
            Ok(code) => {
                if let Some(old) = self.publish(f, tier, code, compile_time, only_upgrade) {
                    replaced = Some(old);
                    Ok(compile_time)
                } else if self.is_closed() {
                    return Err(JitError::Closed); // closed while compiling: the code was discarded
                } else {
                    return Ok(compile_time); // superseded: nothing happened worth recording
                }
            }
            Err(e) => {
                event.result = Err(e.to_string());
                Err(e)
            }
        };
        // A promotion that failed, or was refused by a size limit, ends the function's climb.
        let failed_promotion = outcome.is_err()
            && (deserved.is_some() || matches!(event.reason, CompileReason::SizeLimit { .. }));
        self.record(event);
        if failed_promotion {
            self.policy.climb_ended(self, f, tier);
        }
        // The code replaced goes to the tier policy, which keeps it while the
        // promotion is on probation, or is retired.
        if let Some(old) = replaced {
            let kept = match (old, from, deserved) {
                (Some(old), Some(from), Some(d)) => self.policy.begin(self, f, from, tier, old, d),
                (old, ..) => old,
            };
            if let Some(old) = kept {
                self.policy.published(self, f);
                retire(old);
            }
        }
        outcome
    }

    /// Record an event of the tier policy.
    pub(super) fn record_event(&self, event: CompileEvent) {
        self.record(event);
    }

    /// The tier policy (`runtime::policy`).
    pub fn policy(&self) -> &super::policy::Policy {
        &self.policy
    }

    /// Address of the code installed for `f`.
    pub(super) fn installed_address(&self, f: FuncId) -> Option<usize> {
        self.funcs[f.index()].inner.lock().current.as_ref().map(|c| c.address())
    }

    /// The tier policy: install `code` (compiled at `tier`) for `f` if the code
    /// installed now is at `expect`, and hand back the code it replaced;
    /// otherwise (someone else published, or the jit closed) hand `code` back.
    pub(super) fn swap_code(
        &self,
        f: FuncId,
        expect: usize,
        tier: Tier,
        code: Box<dyn MachineCode>,
    ) -> Result<Box<dyn MachineCode>, Box<dyn MachineCode>> {
        let state = &self.funcs[f.index()];
        let mut inner = state.inner.lock();
        if self.is_closed() || inner.current.as_ref().map(|c| c.address()) != Some(expect) {
            return Err(code);
        }
        self.slots[f.index()].store(code.address(), Ordering::Release);
        state.tier.store(tier as u8, Ordering::Release);
        match inner.current.replace(code) {
            Some(old) => Ok(old),
            None => unreachable!("checked above: code was installed"),
        }
    }

    /// The tier policy: withdraw the OSR entries of `f`'s loops in its code at
    /// `from` and above (see `runtime::policy`).
    pub(super) fn withdraw_osr_entries(&self, f: FuncId, from: Tier) {
        for p in self.osr.points(f).iter().filter(|p| p.source >= from) {
            p.withdraw();
        }
    }

    /// Append `event`, stamped with the time and the function's calls so far.
    fn record(&self, mut event: CompileEvent) {
        event.at = self.start.elapsed();
        let c = &self.counters[event.function.index()];
        event.calls_at = c.calls.iter().map(|a| a.load(Ordering::Relaxed)).sum();
        self.events.lock().push(event);
    }

    /// Make `code` the entry of `f`; returns the previous code (for the caller
    /// to retire or keep), or None (and drops `code`) if `only_upgrade` and `f`
    /// is already at `tier` or above.
    fn publish(
        &self,
        f: FuncId,
        tier: Tier,
        code: Box<dyn MachineCode>,
        time: Duration,
        only_upgrade: bool,
    ) -> Option<Option<Box<dyn MachineCode>>> {
        let state = &self.funcs[f.index()];
        let mut inner = state.inner.lock();
        // Code compiled by a compile that `close` abandoned is never published.
        if self.is_closed() || (only_upgrade && self.tier_of(f).is_some_and(|t| t >= tier)) {
            return None;
        }
        inner.compile_time[tier as usize] = Some(time);
        inner.code_size[tier as usize] = code.code_len();
        self.slots[f.index()].store(code.address(), Ordering::Release);
        state.tier.store(tier as u8, Ordering::Release);
        if self.perf_map.load(Ordering::Relaxed) {
            self.perf_map_code(f, tier, &*code);
        }
        Some(inner.current.replace(code))
    }

    /// Compile events from index `from` on (events are only ever appended).
    pub fn events_since(&self, from: usize) -> Vec<CompileEvent> {
        let ev = self.events.lock();
        ev.get(from..).map(<[CompileEvent]>::to_vec).unwrap_or_default()
    }

    /// Machine code for `f` at `tier`, from the tier's backend.
    fn compile_code(&self, f: FuncId, tier: Tier) -> Result<Box<dyn MachineCode>, JitError> {
        let backend = tier.backend().map_err(|reason| JitError::Unavailable { tier, reason })?;
        let (func, profile) = self.mir_and_profile(f, tier);
        let func = &*func;
        let env = self.env();
        let mut opts = tier.codegen_options();
        opts.profile = self.profiling_tiers.load(Ordering::Relaxed) & (1 << tier as u8) != 0;
        // Loops of code that may still be promoted get OSR points.
        let mode = self.osr.mode();
        let points = match mode {
            OsrMode::Off => Vec::new(),
            _ if !opts.count_backedges => Vec::new(),
            _ => self.osr.points_for(f, tier, &crate::mir::osr::outermost_loop_headers(func)),
        };
        let (check_mask, min_count) = mode.check();
        let sites = OsrSites { points: &points, check_mask, min_count };
        let unit = CompileUnit { env: &env, id: f, func, opts, osr: Some(&sites), profile: profile.as_ref() };
        backend.compile(&unit).map_err(|m| self.compile_error(f, tier, m))
    }

    /// The MIR `tier` compiles for `f`: after `mir::opt` from T2 on.
    fn mir_for(&self, f: FuncId, tier: Tier) -> std::borrow::Cow<'_, crate::mir::Function> {
        if tier.optimizes_mir() {
            std::borrow::Cow::Owned(crate::mir::opt::optimize_function(&self.module, f))
        } else {
            std::borrow::Cow::Borrowed(self.module.func(f))
        }
    }

    /// The OSR mode code is compiled in.
    pub fn osr_mode(&self) -> OsrMode {
        self.osr.mode()
    }

    /// The OSR points of `f` (one per loop header of its code at each tier it ran at).
    pub fn osr_points(&self, f: FuncId) -> Vec<std::sync::Arc<OsrPointState>> {
        self.osr.points(f)
    }

    /// Compile the continuation of `point`'s loop at `target` and publish it
    /// as the point's entry (unless an entry of `target` or higher is there).
    /// `bounded`: the tier's size limits apply (background compiles).
    pub fn compile_osr(
        &self,
        point: &OsrPointState,
        target: Tier,
        bounded: bool,
    ) -> Result<Duration, JitError> {
        if self.is_closed() {
            return Err(JitError::Closed);
        }
        // As for every compile: no LLVM compile may be in flight across fork().
        let _section = quiesce::enter(target == Tier::T3);
        if quiesce::poisoned() {
            return Err(self.compile_error(point.func, target, quiesce::POISONED_MESSAGE.into()));
        }
        let f = point.func;
        let start = std::time::Instant::now();
        let backedges = point.backedges();
        let injected = self.failing_tiers.load(Ordering::Relaxed) & (1 << target as u8) != 0;
        let compiled = if injected {
            Err(self.compile_error(f, target, "failure injected for testing".into()))
        } else {
            self.compile_continuation(point, target, bounded)
        };
        let compile_time = start.elapsed();
        let result = match compiled {
            Ok(code) => {
                if self.perf_map.load(Ordering::Relaxed) {
                    let name = format!("{}$osr{}[{target}]", self.module.func(f).name, point.header.0);
                    let _ = super::perf_map::append(&[(code.address(), code.code_len(), name)]);
                }
                point.publish(target, code);
                Ok(compile_time)
            }
            Err(e) => Err(e),
        };
        self.record(CompileEvent {
            function: f,
            from: Some(point.source),
            to: target,
            at: Duration::ZERO,
            compile_time,
            reason: CompileReason::Osr { header: point.header.0, backedges },
            result: result.as_ref().map(|_| ()).map_err(ToString::to_string),
            calls_at: 0,
        });
        result
    }

    fn compile_continuation(
        &self,
        point: &OsrPointState,
        target: Tier,
        bounded: bool,
    ) -> Result<Box<dyn MachineCode>, JitError> {
        let f = point.func;
        let backend = target.backend().map_err(|reason| JitError::Unavailable { tier: target, reason })?;
        // The continuation is derived from the MIR the source code runs.
        let mut cont = crate::mir::osr::continuation(&self.mir_for(f, point.source), point.header);
        if let Some((_, _, why)) = bounded.then(|| super::tier::over_size_limit(target, &cont)).flatten() {
            return Err(self.compile_error(f, target, format!("{why}; the loop stays in its code")));
        }
        if target.optimizes_mir() {
            cont = crate::mir::opt::optimize(&self.module, f, cont);
        }
        let mut opts = target.codegen_options();
        opts.call_counter = None;
        opts.osr_entry = true;
        // Its instructions are not the function's: nothing to name profile sites by.
        opts.profile = false;
        let env = self.env();
        let unit = CompileUnit { env: &env, id: f, func: &cont, opts, osr: None, profile: None };
        backend.compile(&unit).map_err(|m| self.compile_error(f, target, m))
    }

    /// Tests: from now on, code transfers at the first back-edge at which its
    /// loop has counted `after` back-edges, into continuations compiled at
    /// `target` now. Every function below `target` is recompiled at its tier
    /// (with OSR checks in this mode, counts from zero).
    pub fn force_osr(&self, after: u64, target: Tier) -> Result<(), JitError> {
        self.osr.set_mode(OsrMode::Forced { after });
        for i in 0..self.funcs.len() {
            let f = FuncId(i as u32);
            let Some(tier) = self.tier_of(f).filter(|t| *t < target) else { continue };
            self.compile(f, tier)?;
            self.osr.reset_counts(f);
            for p in self.osr.points(f).iter().filter(|p| p.source == tier) {
                self.compile_osr(p, target, false)?;
            }
        }
        Ok(())
    }

    /// Make every later compile at `tier` fail, to exercise the failure path.
    pub fn inject_failure(&self, tier: Tier) {
        self.failing_tiers.fetch_or(1 << tier as u8, Ordering::Relaxed);
    }

    /// Time since the jit was created.
    pub fn uptime(&self) -> Duration {
        self.start.elapsed()
    }

    pub fn sample_rate(&self) -> u64 {
        self.sample_rate
    }

    /// Heat (calls in all tiers + back-edges) of `f`, as counted so far.
    pub fn heat(&self, f: FuncId) -> u64 {
        let c = &self.counters[f.index()];
        let calls: u64 = c.calls.iter().map(|a| a.load(Ordering::Relaxed)).sum();
        calls.saturating_add(self.backedges(f))
    }

    /// Loop back-edges of `f` counted so far (in its counters and OSR points).
    fn backedges(&self, f: FuncId) -> u64 {
        self.counters[f.index()].backedges.load(Ordering::Relaxed).saturating_add(self.osr.backedges(f))
    }

    pub fn tier_of(&self, f: FuncId) -> Option<Tier> {
        Tier::from_index(self.funcs.get(f.index())?.tier.load(Ordering::Acquire) as usize)
    }

    pub fn info(&self, f: FuncId) -> FunctionInfo {
        let inner = self.funcs[f.index()].inner.lock();
        let c = &self.counters[f.index()];
        FunctionInfo {
            tier: self.tier_of(f),
            compile_time: inner.compile_time,
            code_size: inner.code_size,
            calls: std::array::from_fn(|t| c.calls[t].load(Ordering::Relaxed)),
            backedges: self.backedges(f),
        }
    }

    /// The execution profile of `f` collected so far by its profiling code
    /// (T0, or the tiers `set_profiling_tiers` names; that code counts every
    /// event; `entries` is the call counters' count at the profiling tiers,
    /// sampled at T0). Empty when `sample_rate` is 0.
    pub fn profile(&self, f: FuncId) -> FunctionProfile {
        let (layout, slots) = &self.profiles[f.index()];
        let values: Vec<u64> = slots.iter().map(|a| a.load(Ordering::Relaxed)).collect();
        let c = &self.counters[f.index()];
        let mask = self.profiling_tiers.load(Ordering::Relaxed);
        let entries = Tier::ALL
            .iter()
            .filter(|t| mask & (1 << **t as u8) != 0)
            .map(|t| c.calls[*t as usize].load(Ordering::Relaxed))
            .sum();
        layout.read(&values, entries)
    }

    /// Which tiers' code compiled from now on collects profiles: bit t for
    /// tier t (default: the tiers whose `Tier::profiles`). Only T0 and T1 can
    /// (they compile the MIR as written); other bits are ignored. For measuring
    /// what collection costs; the call and loop counters stay as they are.
    pub fn set_profiling_tiers(&self, mask: u8) {
        let can = (1 << Tier::T0 as u8) | (1 << Tier::T1 as u8);
        self.profiling_tiers.store(mask & can, Ordering::Relaxed);
    }

    /// Forget the profile of `f` collected so far (its code keeps collecting).
    pub fn reset_profile(&self, f: FuncId) {
        for a in self.profiles[f.index()].1.iter() {
            a.store(0, Ordering::Relaxed);
        }
    }

    /// Number of leaves `f` takes and returns (for sizing call buffers).
    pub fn arity(&self, f: FuncId) -> (usize, usize) {
        self.arity[f.index()]
    }

    /// Run `f` natively. `args` are the canonical leaves of the parameters;
    /// `rets` receives the result leaves and must hold at least one. Buffers
    /// of the wrong length are refused (the code would read or write past them).
    pub fn call(&self, f: FuncId, args: &[u64], rets: &mut [u64]) -> Result<(), RunError> {
        let Some(&(n_args, n_rets)) = self.arity.get(f.index()) else {
            return Err(UsageError(format!("no function with index {}", f.0)).into());
        };
        if args.len() != n_args || rets.len() < n_rets.max(1) {
            return Err(UsageError(format!(
                "'{}' takes {n_args} argument leaves and returns {n_rets}: got buffers of {} and {}",
                self.module.func(f).name,
                args.len(),
                rets.len()
            ))
            .into());
        }
        // The tier policy times some calls while a promotion is on probation.
        let probe = self.policy.enter(self, f, args);
        let n = self.sample_rate.max(1);
        // SAFETY: the entry was compiled for `f` with this signature; the
        // buffers are as long as the entry reads and writes; the call's busy mark
        // (or epoch pin) below keeps the code reachable from the slots alive.
        let entry: HostEntry =
            unsafe { std::mem::transmute::<usize, HostEntry>(self.entries[f.index()].address()) };
        let entered = super::stack::on_jit_stack(|limit, thread| {
            let marks = interrupt::Marks::watching(thread.sigints(), &self.interrupt_generation);
            let epoch = interrupt::EPOCH.load(Ordering::SeqCst);
            // The thread's slot, where interrupts reach the entry limit; without
            // one, a context here whose entry limit always sends entries to the
            // slow path.
            let mut own = None;
            // What keeps the code this call may run from being freed (`reclaim`):
            // its slot's busy mark, or for a thread without a slot an epoch pin.
            let mut _pinned = None;
            let (ctxp, saved, running) = match thread.ctx_slot() {
                Some((slot, calls)) => {
                    let running = reclaim::Running::enter(calls);
                    let ctxp = slot as *mut VmCtx;
                    // SAFETY: the slot is this thread's and holds a VmCtx (see
                    // `VmCtx`); every field but `entry_limit` is this thread's to
                    // write. A nested call (compiled code -> host -> here) keeps the
                    // outer call's context to restore after it. The entry limit is
                    // the thread's stack limit (it never moves), or `INTERRUPTING`
                    // (the slow path puts it back).
                    unsafe {
                        let saved = running.is_none().then(|| abi::save_context(ctxp));
                        begin_call(ctxp, limit, 1, epoch, marks, n);
                        (ctxp, saved, running)
                    }
                }
                None => {
                    _pinned = Some(crossbeam_epoch::pin());
                    let (call_ticks, edge_ticks) = thread.ticks.get();
                    // Zeros, then `begin_call` writes every field but these three.
                    let ctx = own.insert(VmCtx {
                        entry_limit: AtomicU64::new(interrupt::INTERRUPTING),
                        call_ticks,
                        edge_ticks,
                        ..VmCtx::zeroed(marks)
                    });
                    // SAFETY: a context of this call's own.
                    unsafe { begin_call(ctx, limit, 0, epoch, marks, n) };
                    (ctx as *mut VmCtx, None, None)
                }
            };
            if self.calls_host {
                // SAFETY: the context outlives the scope, dropped right after the call.
                let _scope = unsafe { host_abort::Scope::enter(std::ptr::addr_of_mut!((*ctxp).trap)) };
                // SAFETY: as below.
                unsafe { unwind::protected_call(entry, ctxp, args.as_ptr(), rets.as_mut_ptr()) };
            } else {
                // SAFETY: as above; the stack limit keeps frames above the guard page.
                // (A trap unwinds here with `trap` set; checked below.)
                unsafe { unwind::protected_call(entry, ctxp, args.as_ptr(), rets.as_mut_ptr()) };
            }
            // SAFETY: as above.
            unsafe {
                if own.is_some() {
                    thread.ticks.set(((*ctxp).call_ticks, (*ctxp).edge_ticks));
                }
                let out = ((*ctxp).trap, (*ctxp).trap_func);
                match saved {
                    Some(words) => {
                        abi::restore_context(ctxp, &words);
                        // The nested call's first entry may have put the limit back
                        // after an interrupt meant for the outer call (not for it): the
                        // outer call's next entry looks, with its own marks.
                        (*ctxp).entry_limit.store(interrupt::INTERRUPTING, Ordering::SeqCst);
                    }
                    None => drop(running), // no call runs in the slot now
                }
                out
            }
        });
        reclaim::after_call();
        if let Some(p) = probe {
            self.policy.exit(self, p);
        }
        let (trap, trap_func) = entered.map_err(|e| RunError::Usage(UsageError(e)))?;
        if trap != 0 {
            if trap == host_abort::HOST_ABORT {
                return Err(RunError::HostAborted);
            }
            let kind = TrapKind::from_code(trap as u32).unwrap_or(TrapKind::User);
            let function = (trap_func as usize)
                .checked_sub(1)
                .and_then(|i| self.module.functions.get(i))
                .map(|f| f.name.clone());
            return Err(Trap { kind, function }.into());
        }
        Ok(())
    }

    /// Make every call of this jit running now, on any thread, trap with
    /// `interrupted` at its next function entry or loop back-edge. Calls that
    /// start later are not affected.
    pub fn interrupt(&self) {
        interrupt::interrupt(&self.interrupt_generation);
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Stop accepting compiles; a compile still running finishes in the
    /// background and its code is discarded (`publish` refuses it). Code is
    /// freed when the jit is dropped.
    pub fn close(&self) {
        // Under each function's lock, so no publish that saw the jit open is
        // still in progress when this returns.
        self.closed.store(true, Ordering::Release);
        for f in &self.funcs {
            drop(f.inner.lock());
        }
    }

    /// Bytes of executable memory currently held (whole pages).
    pub fn code_bytes(&self) -> usize {
        let entries: usize = self.entries.iter().map(CodeBlob::mapped_bytes).sum();
        let funcs: usize =
            self.funcs.iter().map(|f| f.inner.lock().current.as_ref().map_or(0, |c| c.held_bytes())).sum();
        entries + funcs
    }

    pub fn counters(&self) -> &[FunctionCounters] {
        &self.counters
    }
}

impl Drop for Jit {
    fn drop(&mut self) {
        // Nobody can call in any more (we are being dropped), but a host call
        // that started earlier on another thread may still be running: retire
        // instead of freeing directly.
        self.policy.clear();
        let mut all: Vec<Box<dyn MachineCode>> = Vec::new();
        for f in &self.funcs {
            all.extend(f.inner.lock().current.take());
        }
        all.extend(self.entries.drain(..).map(|e| Box::new(e) as Box<dyn MachineCode>));
        reclaim::retire_all(all);
    }
}

/// Write the fields of the context at `ctxp` a call starting now reads, but
/// its entry limit, one by one: read back as pairs right after, fields just
/// stored as a block stall the load (store forwarding fails), ~5 ns a call.
/// The sampling countdowns go on from the context's last call, within 1..=`n`
/// (`n` is this jit's sample rate: another jit's may be longer).
///
/// # Safety
/// `ctxp` is this thread's context (its slot, or its own) and no call runs in it.
#[inline]
unsafe fn begin_call(
    ctxp: *mut VmCtx,
    stack_limit: u64,
    in_slot: u64,
    epoch: u64,
    marks: interrupt::Marks,
    n: u64,
) {
    // SAFETY: the caller's contract; plain fields, only this thread's.
    unsafe {
        (*ctxp).resume = 0;
        (*ctxp).unwind = unwind::unwind_address();
        (*ctxp).epoch_addr = interrupt::epoch_address();
        (*ctxp).trap = 0;
        (*ctxp).stack_limit = stack_limit;
        (*ctxp).in_slot = in_slot;
        (*ctxp).entry_slow = crate::codegen::builtins::rayzor_entry_slow as *const () as usize;
        (*ctxp).trap_func = 0;
        (*ctxp).call_ticks = (*ctxp).call_ticks.clamp(1, n);
        (*ctxp).edge_ticks = (*ctxp).edge_ticks.clamp(1, n);
        (*ctxp).epoch = epoch;
        (*ctxp).interrupts = marks;
    }
}
