//! A jit: one verified module, its dispatch table, and the code of each
//! function at its current tier.
//!
//! Every call, from the host or from generated code, loads the function's
//! entry slot and jumps there, so publishing new code is one release store.
//! Code that was replaced is retired through epoch-based reclamation
//! (`crossbeam-epoch`): every host entry pins the epoch for the duration of
//! the native call, and retired code is freed only once no pinned call can
//! still be running it.

use super::Tier;
use crate::codegen::abi::{FunctionCounters, VmCtx};
use crate::codegen::builtins::{Builtin, BuiltinTable};
use crate::codegen::code_memory::CodeBlob;
use crate::codegen::cranelift::CraneliftBackend;
use crate::codegen::{interrupt, quiesce, CodegenEnv, CompileUnit, MachineCode};
use crate::mir::builder::UsageError;
use crate::mir::interp::{RunError, Trap};
use crate::mir::{layout, verify, FuncId, Module, TrapKind};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::time::Duration;

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
    /// Bumped by `interrupt` (see `codegen::interrupt`).
    interrupt_generation: AtomicU64,
}

type HostEntry = unsafe extern "C" fn(*mut VmCtx, *const u64, *mut u64);

/// Why code was compiled, for stats.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CompileReason {
    /// Compiled when the jit was created.
    Initial,
    /// Asked for by the user.
    Requested,
    /// The profiler found the function this hot.
    Promotion { heat: u64, hotness: super::profile::Hotness },
    /// Not compiled: the function's size (`tier::function_size`) is over the
    /// tier's limit (`Tier::size_limit`), so it stays where it is.
    SizeLimit { size: usize, limit: usize },
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
        Jit::with_failing_tiers(module, extern_addrs, sample_rate, 0)
    }

    /// `new`, with every compile at the tiers in bit set `failing` failing from
    /// the start (to test the initial-compile fallback).
    pub fn with_failing_tiers(
        module: Module,
        extern_addrs: Vec<usize>,
        sample_rate: u64,
        failing: u8,
    ) -> Result<Jit, JitError> {
        verify::verify_module(&module).map_err(|e| JitError::Usage(e.to_string()))?;
        if extern_addrs.len() != module.externs.len() {
            return Err(JitError::Usage(format!(
                "{} host addresses given for {} externs",
                extern_addrs.len(),
                module.externs.len()
            )));
        }
        if let Some((e, _)) = module.externs.iter().zip(&extern_addrs).find(|(_, a)| **a == 0) {
            return Err(JitError::Usage(format!("extern '{}' has no host address", e.name)));
        }
        let n = module.functions.len();
        let data = module.data.iter().map(|d| (d.as_ptr() as usize, d.len())).collect();
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
            interrupt_generation: AtomicU64::new(0),
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
            interrupt_epoch: interrupt::epoch_address(),
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
        let over = if bounded { super::tier::over_size_limit(tier, self.module.func(f)) } else { None };
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
        let outcome = match compiled {
            Ok(code) => {
                if self.publish(f, tier, code, compile_time, only_upgrade) {
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
        event.at = self.start.elapsed();
        let c = &self.counters[f.index()];
        event.calls_at = c.calls.iter().map(|a| a.load(Ordering::Relaxed)).sum();
        self.events.lock().push(event);
        outcome
    }

    /// Make `code` the entry of `f` and retire the previous code. Returns
    /// false (and drops `code`) if `only_upgrade` and `f` is already at `tier` or above.
    fn publish(
        &self,
        f: FuncId,
        tier: Tier,
        code: Box<dyn MachineCode>,
        time: Duration,
        only_upgrade: bool,
    ) -> bool {
        let state = &self.funcs[f.index()];
        let mut inner = state.inner.lock();
        // Code compiled by a compile that `close` abandoned is never published.
        if self.is_closed() || (only_upgrade && self.tier_of(f).is_some_and(|t| t >= tier)) {
            return false;
        }
        inner.compile_time[tier as usize] = Some(time);
        inner.code_size[tier as usize] = code.code_len();
        self.slots[f.index()].store(code.address(), Ordering::Release);
        state.tier.store(tier as u8, Ordering::Release);
        if let Some(old) = inner.current.replace(code) {
            retire(old);
        }
        true
    }

    /// Compile events from index `from` on (events are only ever appended).
    pub fn events_since(&self, from: usize) -> Vec<CompileEvent> {
        let ev = self.events.lock();
        ev.get(from..).map(<[CompileEvent]>::to_vec).unwrap_or_default()
    }

    /// Machine code for `f` at `tier`, from the tier's backend.
    fn compile_code(&self, f: FuncId, tier: Tier) -> Result<Box<dyn MachineCode>, JitError> {
        let backend = tier.backend().map_err(|reason| JitError::Unavailable { tier, reason })?;
        let optimized;
        let func = if tier.optimizes_mir() {
            optimized = crate::mir::opt::optimize_function(&self.module, f);
            &optimized
        } else {
            self.module.func(f)
        };
        let env = self.env();
        let unit = CompileUnit { env: &env, id: f, func, opts: tier.codegen_options() };
        backend.compile(&unit).map_err(|m| self.compile_error(f, tier, m))
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
        calls.saturating_add(c.backedges.load(Ordering::Relaxed))
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
            backedges: c.backedges.load(Ordering::Relaxed),
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
        let guard = crossbeam_epoch::pin();
        let n = self.sample_rate.max(1);
        let mut ctx = VmCtx {
            depth: 0,
            trap: 0,
            stack_limit: 0,
            trap_func: 0,
            call_ticks: 0,
            edge_ticks: 0,
            epoch: interrupt::EPOCH.load(Ordering::SeqCst),
            interrupts: interrupt::Marks::now(Some(&self.interrupt_generation)),
        };
        // SAFETY: the entry was compiled for `f` with this signature; the
        // buffers are as long as the entry reads and writes; the epoch guard
        // keeps every piece of code reachable from the slots alive.
        let entry: HostEntry =
            unsafe { std::mem::transmute::<usize, HostEntry>(self.entries[f.index()].address()) };
        super::stack::on_jit_stack(|limit, thread| {
            let (call_ticks, edge_ticks) = thread.ticks.get();
            ctx.stack_limit = limit;
            ctx.call_ticks = call_ticks.clamp(1, n);
            ctx.edge_ticks = edge_ticks.clamp(1, n);
            // SAFETY: as above; the stack limit keeps frames above the guard page.
            unsafe { entry(&mut ctx, args.as_ptr(), rets.as_mut_ptr()) };
            thread.ticks.set((ctx.call_ticks, ctx.edge_ticks));
        });
        drop(guard);
        if ctx.trap != 0 {
            let kind = TrapKind::from_code(ctx.trap as u32).unwrap_or(TrapKind::User);
            let function = (ctx.trap_func as usize)
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
        // that started earlier on another thread may still be pinned: retire
        // instead of freeing directly.
        for f in &self.funcs {
            if let Some(code) = f.inner.lock().current.take() {
                retire(code);
            }
        }
        for e in self.entries.drain(..) {
            retire(Box::new(e));
        }
    }
}

/// Free `code` once no pinned host call can still be running it.
fn retire(code: Box<dyn MachineCode>) {
    let guard = crossbeam_epoch::pin();
    guard.defer(move || drop(code));
    guard.flush();
}
