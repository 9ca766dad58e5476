//! The background promoter: a monitor thread that reads the profiling
//! counters every check interval and queues promotions, and up to
//! `max_parallel_optimizations` compile threads that carry them out.
//!
//! A (function, tier) pair is queued at most once in the jit's lifetime; a
//! failed compile is recorded and never retried, and the function keeps its
//! current code. Promotion goes one tier at a time (T0 -> T1 -> T2 -> T3),
//! each step judged on the function's heat at the time.

use super::jit::{CompileReason, Jit, JitError};
use super::profile::TieredConfig;
use crate::mir::FuncId;
use crate::runtime::Tier;
use parking_lot::{Condvar, Mutex};
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

struct Queue {
    pending: VecDeque<(FuncId, Tier, u64)>,
    /// Every (function, tier) ever queued.
    seen: HashSet<(FuncId, Tier)>,
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
        let shared = Arc::new(Shared {
            jit,
            config,
            top_tier,
            queue: Mutex::new(Queue {
                pending: VecDeque::new(),
                seen: HashSet::new(),
                running: 0,
                stop: false,
            }),
            wake: Condvar::new(),
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
        let deadline = std::time::Instant::now() + STOP_WAIT;
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

    /// Promotions waiting or running.
    pub fn busy(&self) -> usize {
        if std::process::id() != self.pid {
            return 0;
        }
        let q = self.shared.queue.lock();
        q.pending.len() + q.running
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
        let mut wanted = Vec::new();
        for i in 0..n {
            let f = FuncId(i as u32);
            let heat = s.jit.heat(f);
            let deserved = s.config.profile.classify(heat).tier().min(s.top_tier);
            let current = s.jit.tier_of(f).unwrap_or(Tier::T0);
            if deserved > current {
                if let Some(next) = Tier::from_index(current as usize + 1) {
                    wanted.push((f, next, heat));
                }
            }
        }
        if wanted.is_empty() {
            continue;
        }
        let mut q = s.queue.lock();
        let mut added = false;
        for (f, t, heat) in wanted {
            if q.seen.insert((f, t)) {
                q.pending.push_back((f, t, heat));
                added = true;
            }
        }
        if added {
            s.wake.notify_all();
        }
    }
}

fn compiler(s: &Shared) {
    loop {
        let (f, tier, heat) = {
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
        let hotness = s.config.profile.classify(heat);
        let result = s.jit.compile_for(f, tier, CompileReason::Promotion { heat, hotness }, true);
        s.queue.lock().running -= 1;
        s.idle.notify_all();
        if let Err(JitError::Closed) = result {
            return;
        }
    }
}
