//! Per-loop OSR state (`abi::OsrPoint`, beside the function's counters) and
//! the mode that decides when compiled code looks for an OSR entry.
//!
//! A point exists for each loop header of each function's code at each tier
//! T0-T2 (T2 code runs the optimised MIR, whose headers differ). Its counter
//! takes that loop's back-edges (they count towards the function's heat), and
//! its entry, once published, is the address of a continuation
//! (`mir::osr::continuation`) compiled at a higher tier. Entries are replaced
//! only by entries of a higher tier and retired like other code.

use super::reclaim::retire;
use super::Tier;
use crate::codegen::abi::OsrPoint;
use crate::codegen::MachineCode;
use crate::mir::{Block, FuncId};
use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// When compiled code looks at its loops' OSR entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OsrMode {
    /// No OSR points: loops count into `FunctionCounters::backedges`.
    Off,
    /// Every `CHECK_EVERY` counted back-edges (or on every sample when sampled).
    Counting,
    /// Tests: transfer at the first back-edge at which the loop's count has
    /// reached `after`, to entries published up front (`Jit::force_osr`).
    Forced { after: u64 },
}

/// With every event counted, code looks at a loop's entry once per this many back-edges.
pub const CHECK_EVERY: u64 = 1024;

impl OsrMode {
    /// (`OsrSites::check_mask`, `OsrSites::min_count`) for code compiled in this mode.
    pub fn check(self) -> (u64, u64) {
        match self {
            OsrMode::Off | OsrMode::Counting => (CHECK_EVERY - 1, 0),
            OsrMode::Forced { after } => (0, after.max(1)),
        }
    }
}

/// One loop header of one function's code at one tier.
pub struct OsrPointState {
    pub func: FuncId,
    /// The tier of the code that counts into this point and transfers from it.
    pub source: Tier,
    pub header: Block,
    point: Box<OsrPoint>,
    code: Mutex<Option<(Tier, Box<dyn MachineCode>)>>,
    /// The count at the promoter's last look (`counted_since_last_look`).
    looked: AtomicU64,
}

impl OsrPointState {
    pub fn backedges(&self) -> u64 {
        self.point.backedges.load(Ordering::Relaxed)
    }

    /// Whether the loop counted back-edges since the last time this was asked
    /// (the promoter asks once per pass): whether some frame is running it.
    /// An entry is worth compiling only then: once a function's slot holds
    /// newer code, its old code's loops keep their counts but nothing runs
    /// them, and compiling entries for them would only delay other work.
    pub fn counted_since_last_look(&self) -> bool {
        let now = self.backedges();
        now > self.looked.swap(now, Ordering::Relaxed)
    }

    /// The tier of the published entry, if any.
    pub fn entry_tier(&self) -> Option<Tier> {
        self.code.lock().as_ref().map(|(t, _)| *t)
    }

    /// Remove the published entry (the tier policy: the code's loops must not
    /// leave it for a tier on probation or demoted). Frames in the entry now
    /// finish there: it is retired, not freed.
    pub fn withdraw(&self) {
        let mut cur = self.code.lock();
        if let Some((_, old)) = cur.take() {
            self.point.entry.store(0, Ordering::Release);
            retire(old);
        }
    }

    /// Publish `code` as the entry unless one of `tier` or higher already is.
    pub fn publish(&self, tier: Tier, code: Box<dyn MachineCode>) -> bool {
        let mut cur = self.code.lock();
        if cur.as_ref().is_some_and(|(t, _)| *t >= tier) {
            retire(code);
            return false;
        }
        self.point.entry.store(code.address(), Ordering::Release);
        if let Some((_, old)) = cur.replace((tier, code)) {
            retire(old);
        }
        true
    }
}

/// Every OSR point of a jit, by function.
pub struct OsrTable {
    mode: Mutex<OsrMode>,
    per_func: Vec<Mutex<Vec<Arc<OsrPointState>>>>,
}

impl OsrTable {
    pub fn new(functions: usize, mode: OsrMode) -> OsrTable {
        OsrTable {
            mode: Mutex::new(mode),
            per_func: (0..functions).map(|_| Mutex::new(Vec::new())).collect(),
        }
    }

    pub fn mode(&self) -> OsrMode {
        *self.mode.lock()
    }

    pub fn set_mode(&self, mode: OsrMode) {
        *self.mode.lock() = mode;
    }

    /// The `OsrPoint` addresses for the loop `headers` of `f`'s code at
    /// `source` (made on first use; they live as long as the jit).
    pub fn points_for(&self, f: FuncId, source: Tier, headers: &[Block]) -> Vec<(Block, usize)> {
        let mut points = self.per_func[f.index()].lock();
        headers
            .iter()
            .map(|&header| {
                let existing = points.iter().find(|p| p.source == source && p.header == header);
                let p = match existing {
                    Some(p) => p.clone(),
                    None => {
                        let p = Arc::new(OsrPointState {
                            func: f,
                            source,
                            header,
                            point: Box::default(),
                            code: Mutex::new(None),
                            looked: AtomicU64::new(0),
                        });
                        points.push(p.clone());
                        p
                    }
                };
                (header, &*p.point as *const OsrPoint as usize)
            })
            .collect()
    }

    /// The points of `f`.
    pub fn points(&self, f: FuncId) -> Vec<Arc<OsrPointState>> {
        self.per_func[f.index()].lock().clone()
    }

    /// Back-edges counted into `f`'s points.
    pub fn backedges(&self, f: FuncId) -> u64 {
        self.per_func[f.index()].lock().iter().map(|p| p.backedges()).fold(0, u64::saturating_add)
    }

    /// Zero the counts of `f`'s points (forced OSR counts from a known start).
    pub fn reset_counts(&self, f: FuncId) {
        for p in self.per_func[f.index()].lock().iter() {
            p.point.backedges.store(0, Ordering::Relaxed);
        }
    }
}

impl Drop for OsrTable {
    fn drop(&mut self) {
        for points in &self.per_func {
            for p in points.lock().iter() {
                if let Some((_, code)) = p.code.lock().take() {
                    retire(code);
                }
            }
        }
    }
}
