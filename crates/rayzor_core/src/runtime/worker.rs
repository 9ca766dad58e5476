//! The background promoter: a monitor thread that reads the profiling
//! counters every check interval and queues promotions, and up to
//! `max_parallel_optimizations` compile threads that carry them out.
//!
//! A (function, tier) pair is queued at most once in the jit's lifetime (once
//! per attempt when the tier policy demoted it: `runtime::policy`); a
//! failed compile is recorded and never retried, and the function keeps its
//! current code. A climb steps from T0 to T1, then straight to the tier the
//! function deserves (`tier::climb_order`), each step judged on the
//! function's heat at the time; a compile thread that finished a step queues
//! the next one itself, so a climb does not wait for the monitor between steps.
//!
//! OSR: a loop whose OSR point has counted `ProfileConfig::osr_threshold`
//! back-edges, and counted some since the monitor's last pass (a frame is
//! running it), gets a continuation compiled at the tier its function deserves
//! (at least one above the code the loop runs in), queued and de-duplicated
//! per (point, tier) like promotions; frames running the loop transfer into
//! it at their next check.

use super::jit::{CompileReason, Jit, JitError};
use super::osr::{OsrMode, OsrPointState};
use super::profile::TieredConfig;
use crate::mir::FuncId;
use crate::runtime::Tier;
use parking_lot::{Condvar, Mutex};
use std::collections::{HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

enum Job {
    /// Promote the function to the tier (its heat when queued).
    Promote(FuncId, Tier, u64),
    /// Compile an OSR entry for the point at the tier.
    Osr(Arc<OsrPointState>, Tier),
}

struct Queue {
    pending: VecDeque<Job>,
    /// Every (function, tier, attempt) ever queued; the attempt is the
    /// function's demotions so far (`runtime::policy`), so after a demotion
    /// its climb can be queued again.
    seen: HashSet<(FuncId, Tier, u32)>,
    /// Functions with a promotion queued or compiling: one at a time per
    /// function, so a retried tier and the tier above it (`runtime::policy`)
    /// never publish over each other.
    promoting: HashSet<FuncId>,
    /// Every (OSR point, tier) ever queued (points live as long as the jit).
    osr_seen: HashSet<(usize, Tier)>,
    /// Compiles running now.
    running: usize,
    stop: bool,
}

struct Shared {
    jit: Arc<Jit>,
    config: TieredConfig,
    top_tier: Tier,
    queue: Mutex<Queue>,
    /// Wakes compile threads (work or stop) and the monitor (stop).
    wake: Condvar,
    /// Monitor passes completed, and the number of the last one that found
    /// nothing to queue while nothing was queued or compiling.
    passes: AtomicU64,
    quiet_pass: AtomicU64,
    /// Signalled when a compile finishes (for `stop`).
    idle: Condvar,
}

/// How long `Promoter::stop` waits for a compile in progress before leaving it
/// to finish in the background.
pub const STOP_WAIT: Duration = Duration::from_millis(20);

/// Owns the promoter threads; stopping (or dropping) joins them.
pub struct Promoter {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    /// The process that started the threads: after `fork` the child has none
    /// of them (and may have inherited a held lock), so it must not touch them.
    pid: u32,
}

impl Promoter {
    /// Start promoting functions of `jit` up to `top_tier` under `config`.
    pub fn start(jit: Arc<Jit>, config: TieredConfig, top_tier: Tier) -> std::io::Result<Promoter> {
        jit.policy().configure(super::policy::PolicyConfig { top_tier, ..config.policy() });
        let shared = Arc::new(Shared {
            jit,
            config,
            top_tier,
            queue: Mutex::new(Queue {
                pending: VecDeque::new(),
                seen: HashSet::new(),
                promoting: HashSet::new(),
                osr_seen: HashSet::new(),
                running: 0,
                stop: false,
            }),
            wake: Condvar::new(),
            passes: AtomicU64::new(0),
            quiet_pass: AtomicU64::new(0),
            idle: Condvar::new(),
        });
        let mut threads = Vec::new();
        let s = shared.clone();
        threads.push(std::thread::Builder::new().name("rayzor-monitor".into()).spawn(move || monitor(&s))?);
        for i in 0..config.max_parallel_optimizations {
            let s = shared.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("rayzor-compile-{i}"))
                    .spawn(move || compiler(&s))?,
            );
        }
        Ok(Promoter { shared, threads, pid: std::process::id() })
    }

    /// Ask the threads to stop and wait for them, but not for a compile in
    /// progress for longer than `STOP_WAIT`: such a compile is abandoned to
    /// finish in the background (its thread then exits), and the jit, closed
    /// first by the caller, discards its code instead of publishing it.
    pub fn stop(&mut self) {
        if std::process::id() != self.pid {
            // A forked child: the threads do not exist here; joining would panic.
            for t in self.threads.drain(..) {
                std::mem::forget(t);
            }
            return;
        }
        if self.threads.is_empty() {
            return; // stopped already
        }
        // At process exit nothing compiled now will run: wait for nothing.
        let wait = if crate::codegen::quiesce::exiting() { Duration::ZERO } else { STOP_WAIT };
        let deadline = std::time::Instant::now() + wait;
        let mut q = self.shared.queue.lock();
        q.stop = true;
        self.shared.wake.notify_all();
        while q.running > 0 && !self.shared.idle.wait_until(&mut q, deadline).timed_out() {}
        let idle = q.running == 0;
        drop(q);
        for t in self.threads.drain(..) {
            if idle {
                let _ = t.join();
            } // else: dropping the handle detaches the thread
        }
    }

    /// (monitor passes completed, number of the last quiet pass): a pass is
    /// quiet when it queued nothing and nothing was queued, compiling or on
    /// probation (`runtime::policy`) at its
    /// end. A quiet pass numbered `n + 2` or later, where `n` was read before,
    /// looked at the counters as they were when `n` was read, or later.
    /// `None` in a forked child (no promoter runs there).
    pub fn passes(&self) -> Option<(u64, u64)> {
        if std::process::id() != self.pid {
            return None;
        }
        Some((self.shared.passes.load(Ordering::Acquire), self.shared.quiet_pass.load(Ordering::Acquire)))
    }

    /// Promotions waiting or running, and probations of the tier policy.
    pub fn busy(&self) -> usize {
        if std::process::id() != self.pid {
            return 0;
        }
        let q = self.shared.queue.lock();
        // Probations are work in progress too: the tier of a function on one may still change.
        q.pending.len() + q.running + self.shared.jit.policy().pending()
    }
}

impl Drop for Promoter {
    fn drop(&mut self) {
        self.stop();
    }
}

fn monitor(s: &Shared) {
    let interval = Duration::from_millis(s.config.optimization_check_interval_ms);
    let n = s.jit.module().functions.len();
    loop {
        {
            let mut q = s.queue.lock();
            if q.stop {
                return;
            }
            s.wake.wait_for(&mut q, interval);
            if q.stop {
                return;
            }
        }
        let osr = s.config.osr && s.jit.osr_mode() == OsrMode::Counting;
        let policy = s.jit.policy();
        policy.tick(&s.jit);
        // Retired code that waited for a call: the end of a later call looks too
        // (`reclaim::after_call`), but may find the list busy; this is the backstop.
        super::reclaim::collect();
        let mut wanted = Vec::new();
        let mut osr_wanted = Vec::new();
        for i in 0..n {
            let f = FuncId(i as u32);
            let heat = s.jit.heat(f);
            let deserved = deserved_tier(s, heat);
            if let Some(step) = next_step(s, f, heat) {
                wanted.push(step);
            }
            if !osr {
                continue;
            }
            for p in s.jit.osr_points(f) {
                // Asked of every point on every pass, so "since" is one pass.
                if !p.counted_since_last_look() {
                    continue;
                }
                let target = deserved.max(Tier::from_index(p.source as usize + 1).unwrap_or(Tier::T3));
                let better = p.entry_tier().is_none_or(|t| t < target);
                if target > p.source
                    && target <= s.top_tier
                    && better
                    && p.backedges() >= s.config.profile.osr_threshold
                    && policy.osr_allowed(f, target)
                {
                    osr_wanted.push((p, target));
                }
            }
        }
        let mut q = s.queue.lock();
        let mut added = false;
        for step in wanted {
            if !q.promoting.contains(&step.func) && q.seen.insert((step.func, step.tier, step.attempt)) {
                q.promoting.insert(step.func);
                q.pending.push_back(Job::Promote(step.func, step.tier, step.heat));
                added = true;
            }
        }
        for (p, t) in osr_wanted {
            if q.osr_seen.insert((Arc::as_ptr(&p) as usize, t)) {
                // A hot loop in a running frame waits for nothing else: it goes first.
                q.pending.push_front(Job::Osr(p, t));
                added = true;
            }
        }
        if added {
            s.wake.notify_all();
        }
        let quiet = !added && q.pending.is_empty() && q.running == 0 && policy.pending() == 0;
        drop(q);
        // Only this thread writes the pass counters.
        let pass = s.passes.load(Ordering::Relaxed) + 1;
        if quiet {
            s.quiet_pass.store(pass, Ordering::Release);
        }
        s.passes.store(pass, Ordering::Release);
    }
}

/// A promotion the monitor (or a finished step of the same climb) queues.
struct Step {
    func: FuncId,
    tier: Tier,
    heat: u64,
    attempt: u32,
}

/// The tier a function of `heat` deserves (its class's, capped at the top tier).
fn deserved_tier(s: &Shared, heat: u64) -> Tier {
    s.config.profile.classify(heat).tier().min(s.top_tier)
}

/// The next promotion of `f` at `heat`, if it deserves a higher tier than it
/// runs and the tier policy lets it climb (`Policy::next_tier`).
fn next_step(s: &Shared, f: FuncId, heat: u64) -> Option<Step> {
    let deserved = deserved_tier(s, heat);
    let current = s.jit.tier_of(f).unwrap_or(Tier::T0);
    if deserved <= current {
        return None;
    }
    let policy = s.jit.policy();
    let tier = policy.next_tier(f, current, deserved)?;
    Some(Step { func: f, tier, heat, attempt: policy.attempt(f) })
}

fn compiler(s: &Shared) {
    loop {
        let job = {
            let mut q = s.queue.lock();
            loop {
                if q.stop {
                    return;
                }
                if let Some(job) = q.pending.pop_front() {
                    q.running += 1;
                    break job;
                }
                s.wake.wait(&mut q);
            }
        };
        let promoted = match job {
            Job::Promote(f, ..) => Some(f),
            Job::Osr(..) => None,
        };
        let result = match job {
            Job::Promote(f, tier, heat) => {
                let hotness = s.config.profile.classify(heat);
                s.jit.compile_for(f, tier, CompileReason::Promotion { heat, hotness }, true).map(|_| ())
            }
            Job::Osr(p, tier) => s.jit.compile_osr(&p, tier, true).map(|_| ()),
        };
        // A climb goes on at once (after a failed step too, to another tier): the
        // next step is queued first, without waiting for the monitor's next pass
        // (an interval, 50 ms in production, per step).
        let next = match promoted {
            Some(f) if !matches!(result, Err(JitError::Closed)) => next_step(s, f, s.jit.heat(f)),
            _ => None,
        };
        {
            let mut q = s.queue.lock();
            q.running -= 1;
            if let Some(f) = promoted {
                match next {
                    Some(step) if !q.stop && q.seen.insert((step.func, step.tier, step.attempt)) => {
                        q.pending.push_front(Job::Promote(step.func, step.tier, step.heat));
                    }
                    _ => {
                        q.promoting.remove(&f);
                    }
                }
            }
        }
        s.idle.notify_all();
        if let Err(JitError::Closed) = result {
            return;
        }
    }
}
