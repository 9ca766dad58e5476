//! The never-slower tier policy: a promotion is on probation until the
//! runtime has measured that the new code is not slower than the code it
//! replaced; code that is consistently slower is demoted (the function's slot
//! goes back to the previous code) and the tier is retried later with
//! exponential back-off, as JavaScriptCore does when optimised code keeps
//! losing, or never once it has lost `MAX_DEMOTIONS` times. Meanwhile the
//! next promotion skips the losing tier (T1 -> T3 when T2 lost).
//!
//! What is measured: the CPU time of host calls (`Jit::call`) while a
//! probation runs, keyed by the called function and a hash of its argument
//! leaves. Two calls with the same key do the same work whatever tier runs
//! it, so their times compare directly, and a host call's time includes every
//! JIT-to-JIT call under it: a promoted callee is judged by what it does to
//! its callers. Counter-based costs (time per counted call or back-edge) were
//! rejected because they do not measure the same work at every tier: T2 and
//! T3 inline calls away (their calls are no longer counted) and T3 counts no
//! back-edges.
//!
//! A/B: during a probation the function's slot alternates between the new
//! and the previous code (both kept alive: the one not installed is the
//! probation's `spare`), one timed call at a time, so both arms are measured
//! under the same load and the same other code; a call during which the slot
//! changed (another thread's swap, or any publish) is discarded. Both arms
//! are correct code for the same MIR, so which one a call runs never changes a
//! result. The verdict comes from the pairs of neighbouring calls of one key
//! (see `judge`): keep as soon as the new code won two pairs (two calls per
//! arm), or one by 1.5x (`DECISIVE_PCT`: one call of the old code); demote
//! when it lost every one of the first `PROBATION_SAMPLES` pairs by more than
//! the margin (consistently slower, not one outlier); after one
//! win, more pairs decide (up to `MAX_PAIRS`), so one preempted call on either
//! arm does not. A probation without that evidence (no repeated host calls)
//! ends after `probation_timeout` keeping the new code, which is what
//! happened before this policy existed.
//!
//! Cost on the fast path: with no probation running, one relaxed load of an
//! `AtomicBool` per host call. During a probation, calls are timed (two clock
//! reads, a hash, a lock); once timed calls are seen to be short
//! (`SHORT_CALL_NANOS`), only one in `SHORT_CALL_STRIDE` per thread is.
//!
//! OSR: the arms must run their own code, so a probation withdraws the OSR
//! entries of the function's loops in the code of both tiers (otherwise the
//! old arm's loops would transfer into continuations of the new tier or
//! above), and the promoter compiles no OSR entry at a tier the function is
//! backing off from.
//!
//! Fork: the policy's lock is only taken inside a `quiesce` section, so a
//! forked child never inherits it held by a thread it does not have.
//!
//! Climbs: a promotion the function climbs on from (it deserves a higher,
//! open tier) is not judged; the code it ran before the climb is kept as the
//! baseline and the tier the climb ends at is judged against it (`begin`).
//! T0 is never a baseline: it is unoptimised code that exists to be replaced,
//! and measuring it would only delay tier-up.

use super::jit::{CompileEvent, CompileReason, Jit};
use super::reclaim::retire;
use super::tier::climb_order;
use super::Tier;
use crate::codegen::{quiesce, MachineCode};
use crate::mir::FuncId;
use parking_lot::Mutex;
use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A pair the new code won by this factor (old at least 1.5 x new), with no
/// pair lost, keeps it at once: no further call of the old code is worth
/// another pair when the new code is that much faster. Calls are timed in
/// CPU time (`thread_cpu_nanos`), so a preempted call of the old code does
/// not look 1.5x slower; a wrong keep keeps what the promoter published, as
/// before the policy.
pub const DECISIVE_PCT: u128 = 150;
/// Timed calls per arm (for one argument key) before a verdict.
pub const PROBATION_SAMPLES: usize = 3;
/// Pairs a verdict waits for at most when the first ones disagree.
pub const MAX_PAIRS: usize = 7;
/// Demotions of one (function, tier) after which the tier is never tried again.
pub const MAX_DEMOTIONS: u32 = 3;
/// Timed calls shorter than this make the probation time one call in
/// `SHORT_CALL_STRIDE` per thread, so timing stays a small part of short calls.
pub const SHORT_CALL_NANOS: u64 = 20_000;
pub const SHORT_CALL_STRIDE: u32 = 64;
/// Argument keys one probation keeps samples for.
const MAX_KEYS: usize = 16;

/// The policy's settings (from `TieredConfig`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PolicyConfig {
    /// Demote when the new code is slower by more than this many percent; 0: no policy.
    pub margin_pct: u32,
    /// Wait before the first retry of a demoted tier; doubled after each demotion.
    pub backoff: Duration,
    /// A probation without a verdict by then keeps the new code.
    pub probation_timeout: Duration,
    /// The promoter's highest tier.
    pub top_tier: Tier,
}

impl PolicyConfig {
    pub const OFF: PolicyConfig = PolicyConfig {
        margin_pct: 0,
        backoff: Duration::ZERO,
        probation_timeout: Duration::ZERO,
        top_tier: Tier::T3,
    };
}

/// A host call being timed (`Policy::enter`).
pub struct Probe {
    func: FuncId,
    key: u64,
    stamp: u64,
    /// The thread's CPU time at the start (`thread_cpu_nanos`).
    start: u64,
}

/// This thread's CPU time in nanoseconds. Calls are timed in CPU time, not
/// wall time: a call preempted for a time slice would otherwise look many
/// times slower than it ran, and one such call of the old code used to keep
/// new code that was slower (one decisive pair decides, see `judge`). A
/// host call runs on one thread from start to end (`stack::on_jit_stack`
/// switches stacks, not threads), so the difference is the call's own CPU
/// time; what an extern does off the CPU (sleeping, waiting) is not counted.
fn thread_cpu_nanos() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid timespec to write; the clock exists on every Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (ts.tv_sec as u64).wrapping_mul(1_000_000_000).wrapping_add(ts.tv_nsec as u64)
}

/// The two arms of a probation.
const OLD: usize = 0;
const NEW: usize = 1;

struct Probation {
    func: FuncId,
    tiers: [Tier; 2],
    /// The code not installed now (of arm `1 - installed`).
    spare: Box<dyn MachineCode>,
    installed: usize,
    /// Address of the installed code: anything else there means someone else published.
    installed_addr: usize,
    /// Per (called function, argument hash): timed nanoseconds of each arm.
    samples: HashMap<(FuncId, u64), [Vec<u64>; 2]>,
    started: Instant,
    /// The longest timed call: the timeout leaves room for the calls a verdict needs.
    longest: Duration,
}

#[derive(Clone, Copy, Default)]
struct Demotions {
    count: u32,
    /// No promotion of the function above `to` before then (None: banned for good).
    until: Option<Instant>,
    /// The tier it was demoted to.
    to: Option<Tier>,
}

struct State {
    config: PolicyConfig,
    probation: Option<Probation>,
    /// Promotions published while another was on probation, in order: each
    /// runs its new code until its turn (one probation at a time, so that the
    /// time of a call is down to one function's two arms).
    waiting: std::collections::VecDeque<Probation>,
    /// Per (function, tier it was demoted from).
    demotions: HashMap<(FuncId, Tier), Demotions>,
    /// (function, tier) pairs whose promotion failed: never tried again.
    failed: HashSet<(FuncId, Tier)>,
    /// Per function climbing on through intermediate tiers: the code (and
    /// tier) it ran before the climb, the old arm of the probation at its end.
    baselines: HashMap<FuncId, (Tier, Box<dyn MachineCode>)>,
}

pub struct Policy {
    /// A probation is running: host calls time themselves.
    active: AtomicBool,
    /// Bumped whenever a timed call could no longer compare (the slot changed).
    stamp: AtomicU64,
    /// 1, or `SHORT_CALL_STRIDE` once timed calls were seen to be short.
    stride: AtomicU32,
    /// Tests: per tier, measured times of that tier's code are multiplied by this.
    slowdown: [AtomicU32; 4],
    /// Per function, which argument leaves are pointers (left out of the key).
    pointer_leaves: std::sync::OnceLock<Vec<Vec<bool>>>,
    state: Mutex<State>,
}

thread_local! {
    static COUNTDOWN: Cell<u32> = const { Cell::new(0) };
}

/// What the promoter may do with a function next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Demote { new_ns: u64, old_ns: u64 },
    Keep,
    Undecided,
}

/// The verdict on one key's samples (`[old, new]` nanoseconds, in the order
/// taken). The arms alternate, so the i-th sample of each was taken next to
/// the other's: pairs compare under the same load, which drifts. A sequential
/// sign test over the pairs: demoted when the new code lost all of the first
/// `PROBATION_SAMPLES` pairs by more than the margin, or all but one of
/// `MAX_PAIRS`; kept as soon as it won two (from the second pair on: no
/// later pair could turn that into a demotion), or won every pair so far and
/// one by `DECISIVE_PCT` (one call of the old code after the swap instead of
/// two: cold production runs of sieve ran calls 6 and 7 in the old T1 code,
/// 19 instead of 6 ms). One outlier (a call preempted on
/// either arm) therefore only makes the verdict wait for more pairs, where
/// with "every pair" alone it decided: a preempted call of the old code kept
/// new code ten times slower (seen in CI). Under equal speed the extra
/// false-demotion chance this adds is 3 p^6 (1-p) (one win among the first
/// three pairs, then four losses) for a pair lost by noise with probability p:
/// under 1% for p = 0.4.
pub fn judge(samples: &[Vec<u64>; 2], margin_pct: u32) -> Verdict {
    let pairs = samples[OLD].len().min(samples[NEW].len());
    let median = |s: &[u64]| {
        let mut v = s.to_vec();
        v.sort_unstable();
        v[v.len() / 2]
    };
    let over = |new: u64, old: u64| new as u128 * 100 > old as u128 * (100 + margin_pct as u128);
    let (old, new) = (&samples[OLD][..pairs], &samples[NEW][..pairs]);
    let won = old.iter().zip(new).filter(|&(&o, &n)| !over(n, o)).count();
    let decisive = old.iter().zip(new).any(|(&o, &n)| n as u128 * DECISIVE_PCT <= o as u128 * 100);
    if won >= 2 || (won == pairs && decisive) {
        // Whatever the later pairs, the verdict would be this one: no need to wait.
        return Verdict::Keep;
    }
    if pairs < PROBATION_SAMPLES {
        return Verdict::Undecided;
    }
    match won {
        0 => Verdict::Demote { new_ns: median(new), old_ns: median(old) },
        1 if pairs < MAX_PAIRS => Verdict::Undecided,
        1 => Verdict::Demote { new_ns: median(new), old_ns: median(old) },
        _ => Verdict::Keep,
    }
}

/// Hash of a call's argument leaves but its pointers (FxHash's mixing step):
/// a buffer made afresh for every call has a new address but, with the same
/// scalar arguments, usually the same work.
fn key_of(args: &[u64], pointers: &[bool]) -> u64 {
    let scalar = |i: &usize| !pointers.get(*i).copied().unwrap_or(false);
    (0..args.len())
        .filter(scalar)
        .fold(args.len() as u64, |h, i| (h.rotate_left(5) ^ args[i]).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95))
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            active: AtomicBool::new(false),
            stamp: AtomicU64::new(0),
            stride: AtomicU32::new(1),
            slowdown: std::array::from_fn(|_| AtomicU32::new(1)),
            pointer_leaves: std::sync::OnceLock::new(),
            state: Mutex::new(State {
                config: PolicyConfig::OFF,
                probation: None,
                waiting: Default::default(),
                demotions: HashMap::new(),
                failed: HashSet::new(),
                baselines: HashMap::new(),
            }),
        }
    }
}

impl Policy {
    pub fn configure(&self, config: PolicyConfig) {
        let _quiet = quiesce::enter(false);
        self.state.lock().config = config;
    }

    pub fn config(&self) -> PolicyConfig {
        let _quiet = quiesce::enter(false);
        let config = self.state.lock().config;
        config
    }

    /// Tests: measured times of code at `tier` count `factor` times.
    pub fn inject_slowdown(&self, tier: Tier, factor: u32) {
        self.slowdown[tier as usize].store(factor.max(1), Ordering::Relaxed);
    }

    /// Start timing a host call of `f`, if a probation wants it. The fast path
    /// (no probation) is one relaxed load.
    #[inline]
    pub fn enter(&self, jit: &Jit, f: FuncId, args: &[u64]) -> Option<Probe> {
        if !self.active.load(Ordering::Relaxed) {
            return None;
        }
        self.enter_slow(jit, f, args)
    }

    #[cold]
    fn enter_slow(&self, jit: &Jit, f: FuncId, args: &[u64]) -> Option<Probe> {
        let stride = self.stride.load(Ordering::Relaxed);
        if stride > 1 {
            let skip = COUNTDOWN.with(|c| {
                let n = c.get();
                c.set(if n == 0 { stride - 1 } else { n - 1 });
                n != 0
            });
            if skip {
                return None;
            }
        }
        let stamp = self.stamp.load(Ordering::Acquire);
        let masks = self.pointer_leaves.get_or_init(|| {
            let leaf_is_ptr = |t: &crate::mir::Type| {
                crate::mir::layout::leaves(t)
                    .into_iter()
                    .map(|l| l.ty == crate::mir::Scalar::Ptr)
                    .collect::<Vec<_>>()
            };
            jit.module()
                .functions
                .iter()
                .map(|g| g.sig.params.iter().flat_map(leaf_is_ptr).collect())
                .collect()
        });
        let key = key_of(args, masks.get(f.index()).map_or(&[][..], Vec::as_slice));
        Some(Probe { func: f, key, stamp, start: thread_cpu_nanos() })
    }

    /// Finish a timed call: record it, then swap the arms or give the verdict.
    pub fn exit(&self, jit: &Jit, probe: Probe) {
        let ns = thread_cpu_nanos().saturating_sub(probe.start);
        if ns < SHORT_CALL_NANOS {
            self.stride.store(SHORT_CALL_STRIDE, Ordering::Relaxed);
        }
        let _quiet = quiesce::enter(false);
        let mut st = self.state.lock();
        let margin = st.config.margin_pct;
        let Some(p) = st.probation.as_mut() else { return };
        if self.stamp.load(Ordering::Acquire) != probe.stamp {
            return; // the slot changed during the call: it ran some of both
        }
        p.longest = p.longest.max(Duration::from_nanos(ns));
        let arm = p.installed;
        let factor = self.slowdown[p.tiers[arm] as usize].load(Ordering::Relaxed) as u64;
        let key = (probe.func, probe.key);
        if !p.samples.contains_key(&key) && p.samples.len() >= MAX_KEYS {
            return;
        }
        let s = p.samples.entry(key).or_default();
        s[arm].push(ns.saturating_mul(factor));
        let verdict = judge(s, margin);
        let other_fewer = s[1 - arm].len() < s[arm].len();
        match verdict {
            Verdict::Undecided if other_fewer => {
                self.swap(jit, &mut st);
            }
            Verdict::Undecided => {}
            Verdict::Keep => self.end(jit, &mut st, NEW, None),
            Verdict::Demote { new_ns, old_ns } => self.end(jit, &mut st, OLD, Some((new_ns, old_ns))),
        }
    }

    /// Install the spare arm.
    fn swap(&self, jit: &Jit, st: &mut State) {
        let Some(mut p) = st.probation.take() else { return };
        let arm = 1 - p.installed;
        self.stamp.fetch_add(1, Ordering::AcqRel);
        let addr = p.spare.address();
        match jit.swap_code(p.func, p.installed_addr, p.tiers[arm], p.spare) {
            Ok(old) => {
                p.installed = arm;
                p.installed_addr = addr;
                p.spare = old;
                st.probation = Some(p);
            }
            Err(spare) => {
                // Someone else published: their code stays; the probation is over.
                retire(spare);
                self.active.store(false, Ordering::Release);
                self.activate_next(jit, st);
            }
        }
    }

    /// Start the first waiting probation whose new code is still installed.
    fn activate_next(&self, jit: &Jit, st: &mut State) {
        while let Some(mut p) = st.waiting.pop_front() {
            if jit.is_closed() || jit.installed_address(p.func) != Some(p.installed_addr) {
                retire(p.spare);
                continue;
            }
            jit.withdraw_osr_entries(p.func, p.tiers[OLD]);
            self.stamp.fetch_add(1, Ordering::AcqRel);
            p.started = Instant::now();
            st.probation = Some(p);
            self.stride.store(1, Ordering::Relaxed);
            self.active.store(true, Ordering::Release);
            return;
        }
    }

    /// End the probation with arm `keep` installed; `demoted`: (new, old) ns.
    fn end(&self, jit: &Jit, st: &mut State, keep: usize, demoted: Option<(u64, u64)>) {
        let Some(p) = st.probation.take() else { return };
        self.active.store(false, Ordering::Release);
        self.stamp.fetch_add(1, Ordering::AcqRel);
        self.finish(jit, st, p, keep, demoted);
        self.activate_next(jit, st);
    }

    fn finish(&self, jit: &Jit, st: &mut State, mut p: Probation, keep: usize, demoted: Option<(u64, u64)>) {
        if p.installed != keep {
            match jit.swap_code(p.func, p.installed_addr, p.tiers[keep], p.spare) {
                Ok(old) => p.spare = old,
                Err(spare) => {
                    retire(spare);
                    return; // someone else published meanwhile: theirs stays
                }
            }
        }
        retire(p.spare);
        let Some((new_ns, old_ns)) = demoted else { return };
        let (from, to) = (p.tiers[NEW], p.tiers[OLD]);
        let d = st.demotions.entry((p.func, from)).or_default();
        d.count += 1;
        d.to = Some(to);
        let retry = (d.count < MAX_DEMOTIONS).then(|| st.config.backoff.saturating_mul(1 << (d.count - 1)));
        d.until = retry.map(|r| Instant::now() + r);
        jit.record_event(CompileEvent {
            function: p.func,
            from: Some(from),
            to,
            at: Duration::ZERO,
            compile_time: Duration::ZERO,
            reason: CompileReason::Demotion { new_ns, old_ns, retry_after: retry },
            result: Ok(()),
            calls_at: 0,
        });
    }

    /// A promotion of `f` from `old` to `new` was published, replacing
    /// `old_code`; the function deserved `deserved` when it was queued. If it
    /// climbs on from `new` (it deserves more and the tier above is open), no
    /// probation yet: the code it ran before the climb is kept as the baseline
    /// (one probation per climb, so a climb of several tiers does not spend
    /// several probations' calls on the way). At the end of the climb the new
    /// code is on probation against the baseline (or `old_code`). Returns
    /// code for the caller to retire.
    pub fn begin(
        &self,
        jit: &Jit,
        f: FuncId,
        old: Tier,
        new: Tier,
        old_code: Box<dyn MachineCode>,
        deserved: Tier,
    ) -> Option<Box<dyn MachineCode>> {
        let _quiet = quiesce::enter(false);
        let mut st = self.state.lock();
        if st.config.margin_pct == 0 || jit.is_closed() {
            return Some(old_code);
        }
        let top = st.config.top_tier;
        if deserved.min(top) > new && Self::open_tier(&st, f, new, deserved.min(top)).is_some() {
            if old == Tier::T0 || st.baselines.contains_key(&f) {
                return Some(old_code);
            }
            st.baselines.insert(f, (old, old_code));
            return None;
        }
        let (old, spare) = match st.baselines.remove(&f) {
            Some((tier, code)) => {
                retire(old_code);
                (tier, code)
            }
            None => (old, old_code),
        };
        if old == Tier::T0 {
            return Some(spare);
        }
        self.start(jit, &mut st, f, old, new, spare)
    }

    /// A promotion of `f` to `tier` failed (or was refused by a size limit):
    /// the tier is never tried again (the climb may go on to another,
    /// `open_tier`), and the code installed now goes on probation against
    /// the baseline, if there is one.
    pub fn climb_ended(&self, jit: &Jit, f: FuncId, tier: Tier) {
        let _quiet = quiesce::enter(false);
        let mut st = self.state.lock();
        st.failed.insert((f, tier));
        let Some((old, spare)) = st.baselines.remove(&f) else { return };
        match jit.tier_of(f) {
            Some(new) if new > old && st.config.margin_pct != 0 => {
                if let Some(code) = self.start(jit, &mut st, f, old, new, spare) {
                    retire(code);
                }
            }
            _ => retire(spare),
        }
    }

    /// Put `f`'s installed code (at `new`) on probation against `spare` (at `old`).
    fn start(
        &self,
        jit: &Jit,
        st: &mut State,
        f: FuncId,
        old: Tier,
        new: Tier,
        spare: Box<dyn MachineCode>,
    ) -> Option<Box<dyn MachineCode>> {
        let Some(addr) = jit.installed_address(f) else { return Some(spare) };
        let p = Probation {
            func: f,
            tiers: [old, new],
            spare,
            installed: NEW,
            installed_addr: addr,
            samples: HashMap::new(),
            started: Instant::now(),
            longest: Duration::ZERO,
        };
        if st.probation.is_some() {
            // Another function's probation runs: the arms' code of other functions
            // must not change under it, so this one waits its turn.
            if let Some(cur) = st.probation.as_mut() {
                cur.samples.clear();
            }
            self.stamp.fetch_add(1, Ordering::AcqRel);
            st.waiting.push_back(p);
            return None;
        }
        st.waiting.push_front(p);
        self.activate_next(jit, st);
        None
    }

    /// Code of `f` was published outside the probation: if `f` is on
    /// probation, the new code wins and the probation is over; otherwise the
    /// other code changed under the arms, so their samples start again.
    pub fn published(&self, jit: &Jit, f: FuncId) {
        let _quiet = quiesce::enter(false);
        let mut st = self.state.lock();
        if let Some((_, code)) = st.baselines.remove(&f) {
            retire(code);
        }
        if let Some(i) = st.waiting.iter().position(|p| p.func == f) {
            if let Some(p) = st.waiting.remove(i) {
                retire(p.spare);
            }
        }
        let Some(p) = st.probation.as_mut() else { return };
        self.stamp.fetch_add(1, Ordering::AcqRel);
        if p.func == f {
            if let Some(p) = st.probation.take() {
                retire(p.spare);
            }
            self.active.store(false, Ordering::Release);
            self.activate_next(jit, &mut st);
        } else {
            p.samples.clear();
        }
    }

    /// The monitor's pass: a probation past its timeout keeps the new code.
    pub fn tick(&self, jit: &Jit) {
        let _quiet = quiesce::enter(false);
        let mut st = self.state.lock();
        let timeout = st.config.probation_timeout;
        // Long calls get the time a verdict needs (2 x MAX_PAIRS calls, and some).
        let over =
            |p: &Probation| p.started.elapsed() >= timeout + p.longest.saturating_mul(3 * MAX_PAIRS as u32);
        if st.probation.as_ref().is_some_and(over) {
            self.end(jit, &mut st, NEW, None);
        }
    }

    /// Probations running or waiting (the promoter counts them as work in progress).
    pub fn pending(&self) -> usize {
        let _quiet = quiesce::enter(false);
        let st = self.state.lock();
        st.probation.iter().count() + st.waiting.len()
    }

    /// Whether `f` is on probation now.
    pub fn on_probation(&self, f: FuncId) -> bool {
        let _quiet = quiesce::enter(false);
        let st = self.state.lock();
        st.probation.iter().chain(&st.waiting).any(|p| p.func == f)
    }

    /// The tier to promote `f` (at `current`, deserving `deserved`) to next,
    /// if any: none while it is on probation; tiers it is backing off from (or
    /// was demoted from `MAX_DEMOTIONS` times) are skipped, so a tier that lost
    /// does not keep the function from the one above it.
    pub fn next_tier(&self, f: FuncId, current: Tier, deserved: Tier) -> Option<Tier> {
        let _quiet = quiesce::enter(false);
        let st = self.state.lock();
        if st.probation.iter().chain(&st.waiting).any(|p| p.func == f) {
            return None;
        }
        Self::open_tier(&st, f, current, deserved)
    }

    /// The next step of `f`'s climb from `current` towards `deserved`
    /// (`runtime::tier::climb_order`): the first of its candidate tiers that
    /// `f` is neither backing off from nor banned from, and whose compile has
    /// not failed.
    fn open_tier(st: &State, f: FuncId, current: Tier, deserved: Tier) -> Option<Tier> {
        let now = Instant::now();
        let open = |t: &Tier| !st.failed.contains(&(f, *t));
        climb_order(current, deserved).filter(open).find(|t| {
            match st.demotions.get(&(f, *t)).map(|d| d.until) {
                // Banned, or backing off: try the next candidate.
                Some(None) => false,
                Some(Some(until)) => until <= now,
                None => true,
            }
        })
    }

    /// Whether an OSR entry at `target` for a loop of `f` may be compiled:
    /// not while `f` is on probation, nor at a tier it is backing off from or
    /// banned from.
    pub fn osr_allowed(&self, f: FuncId, target: Tier) -> bool {
        let _quiet = quiesce::enter(false);
        let st = self.state.lock();
        if st.probation.iter().chain(&st.waiting).any(|p| p.func == f) {
            return false;
        }
        let now = Instant::now();
        !st.demotions
            .iter()
            .any(|(&(g, from), d)| g == f && from == target && d.until.is_none_or(|until| until > now))
    }

    /// How many times `f` was demoted, from any tier: the promoter queues a
    /// (function, tier) once per attempt, and each demotion starts a new one
    /// (the climb after a demotion may pass through tiers it passed before).
    pub fn attempt(&self, f: FuncId) -> u32 {
        let _quiet = quiesce::enter(false);
        let st = self.state.lock();
        st.demotions.iter().filter(|((g, _), _)| *g == f).map(|(_, d)| d.count).sum()
    }

    /// How many times `f` was demoted from `tier`.
    pub fn demotions(&self, f: FuncId, tier: Tier) -> u32 {
        let _quiet = quiesce::enter(false);
        let n = self.state.lock().demotions.get(&(f, tier)).map_or(0, |d| d.count);
        n
    }

    /// Retire the spare code (the jit is being dropped).
    pub fn clear(&self) {
        self.active.store(false, Ordering::Release);
        // No section: only the jit's drop calls this, when no other thread can hold the lock
        // (and a section could not start during process exit).
        let mut st = self.state.lock();
        for p in st.probation.take().into_iter().chain(st.waiting.drain(..)) {
            retire(p.spare);
        }
        for (_, (_, code)) in st.baselines.drain() {
            retire(code);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judge_needs_samples_and_consistency() {
        let s = |a: &[u64], b: &[u64]| [a.to_vec(), b.to_vec()];
        assert_eq!(judge(&s(&[100, 100], &[200, 200, 200]), 5), Verdict::Undecided);
        // Two pairs won decide at once (the third could not change the verdict).
        assert_eq!(judge(&s(&[100, 100], &[70, 70, 70]), 5), Verdict::Keep);
        assert_eq!(judge(&s(&[100], &[70]), 5), Verdict::Undecided);
        // One pair won by 1.5x or more decides too, unless a pair was lost.
        assert_eq!(judge(&s(&[100], &[66]), 5), Verdict::Keep);
        assert_eq!(judge(&s(&[100, 100], &[200, 50]), 5), Verdict::Undecided);
        assert_eq!(judge(&s(&[100, 100], &[50, 200]), 5), Verdict::Undecided);
        assert_eq!(
            judge(&s(&[100, 101, 99], &[120, 121, 119]), 5),
            Verdict::Demote { new_ns: 120, old_ns: 100 }
        );
        // Pairs, not arms: the load drifted (old 100 -> 200), the new code lost every pair.
        assert_eq!(
            judge(&s(&[100, 150, 200], &[120, 180, 240]), 5),
            Verdict::Demote { new_ns: 180, old_ns: 150 }
        );
        // Within the margin: kept.
        assert_eq!(judge(&s(&[100, 101, 99], &[104, 103, 104]), 5), Verdict::Keep);
        // One pair the new code won: more pairs decide.
        assert_eq!(judge(&s(&[100, 101, 99], &[98, 130, 131]), 5), Verdict::Undecided);
        // ... one outlier (the old code's call preempted), then six lost: demoted.
        let old = [900, 100, 101, 99, 100, 102, 98];
        assert_eq!(
            judge(&s(&old, &[130, 130, 131, 129, 130, 128, 132]), 5),
            Verdict::Demote { new_ns: 130, old_ns: 100 }
        );
        assert_eq!(judge(&s(&old[..6], &[130, 130, 131, 129, 130, 128]), 5), Verdict::Undecided);
        // ... a second win: not consistently slower, kept.
        assert_eq!(judge(&s(&[100, 101, 99, 100], &[98, 130, 131, 99]), 5), Verdict::Keep);
        assert_eq!(judge(&s(&[100, 101, 99], &[98, 99, 131]), 5), Verdict::Keep);
        // Faster: kept.
        assert_eq!(judge(&s(&[100, 101, 99], &[50, 50, 50]), 5), Verdict::Keep);
    }

    #[test]
    fn calls_are_timed_in_cpu_time() {
        // Off the CPU (as when preempted) counts nothing; wall time would count 50 ms.
        let t = thread_cpu_nanos();
        std::thread::sleep(Duration::from_millis(50));
        let off_cpu = thread_cpu_nanos() - t;
        assert!(off_cpu < 10_000_000, "50 ms asleep counted {off_cpu} ns");
        // On the CPU it advances.
        let t = thread_cpu_nanos();
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(20) {
            std::hint::spin_loop();
        }
        assert!(thread_cpu_nanos() - t > 1_000_000);
    }

    #[test]
    fn keys_differ_by_arguments() {
        assert_ne!(key_of(&[1], &[]), key_of(&[2], &[]));
        assert_ne!(key_of(&[], &[]), key_of(&[0], &[]));
        assert_eq!(key_of(&[7, 8], &[]), key_of(&[7, 8], &[false, false]));
        // Pointers are left out: fresh buffers, same work.
        assert_eq!(key_of(&[0x1000, 8], &[true, false]), key_of(&[0x2000, 8], &[true, false]));
        assert_ne!(key_of(&[0x1000, 8], &[true, false]), key_of(&[0x1000, 9], &[true, false]));
    }
}
