//! Execution profiles collected by the profiling tier (T0; T1 on request): branch,
//! switch, indirect-target and call-site counts. Profiling code counts every
//! event whatever the `sample_rate` (which samples the call and loop counters),
//! so the counts are exact.

use rayzor_core::mir::profile::{FunctionProfile, IndirectTargets, SwitchCounts};
use rayzor_core::mir::text::parse_module;
use rayzor_core::mir::{Callee, FuncId, Inst, InstKind, Module};
use rayzor_core::runtime::{Jit, Tier};

const SITES: &str = include_str!("../../../tests/mir/profile_sites.mir");

/// A jit over the profile-site program, every function compiled at `tier`,
/// profiling at the tiers in bit set `profiling`.
fn jit_profiling(tier: Tier, sample_rate: u64, profiling: u8) -> Jit {
    let jit = Jit::new(parse_module(SITES).unwrap(), vec![], sample_rate).unwrap();
    jit.set_profiling_tiers(profiling);
    for i in 0..jit.module().functions.len() {
        jit.compile(FuncId(i as u32), tier).unwrap();
    }
    jit
}

/// As `jit_profiling`, with T0 and T1 profiling (T1 only does when asked to).
fn jit_at(tier: Tier, sample_rate: u64) -> Jit {
    jit_profiling(tier, sample_rate, 0b11)
}

/// Call `name(arg)` and return its single result.
fn run(jit: &Jit, name: &str, arg: u64) -> u64 {
    let mut rets = [0u64];
    jit.call(jit.func_id(name).unwrap(), &[arg], &mut rets).unwrap();
    rets[0]
}

/// The instructions of `name` that `pick` selects, in order.
fn sites(m: &Module, name: &str, pick: impl Fn(&InstKind) -> bool) -> Vec<Inst> {
    let f = m.func(m.functions.iter().position(|f| f.name == name).map(|i| FuncId(i as u32)).unwrap());
    (0..f.insts.len() as u32).map(Inst).filter(|i| pick(&f.inst(*i).kind)).collect()
}

fn brifs(m: &Module, name: &str) -> Vec<Inst> {
    sites(m, name, |k| matches!(k, InstKind::Brif { .. }))
}

fn profile(jit: &Jit, name: &str) -> FunctionProfile {
    jit.profile(jit.func_id(name).unwrap())
}

#[test]
fn exact_counts_at_t0_and_t1_at_every_sample_rate() {
    for (tier, rate) in [(Tier::T0, 1), (Tier::T1, 1), (Tier::T0, 16), (Tier::T1, 16), (Tier::T1, 3)] {
        let jit = jit_at(tier, rate);
        let tier = format!("{tier} sample_rate {rate}");
        let m = jit.module();
        assert_eq!(run(&jit, "branchy", 1000), 50400);
        let p = profile(&jit, "branchy");
        let [loop_br, body_br] = brifs(m, "branchy")[..] else { panic!("two brifs") };
        let b = p.branch(loop_br).unwrap();
        assert_eq!((b.taken, b.not_taken), (1000, 1), "{tier}");
        let b = p.branch(body_br).unwrap();
        assert_eq!((b.taken, b.not_taken), (900, 100), "{tier}");
        assert_eq!(b.taken_probability(), Some(0.9));
        if rate == 1 {
            assert_eq!(p.entries, 1); // the entry counter is sampled like the call counters
        }

        assert_eq!(run(&jit, "switchy", 1000), 302400);
        let p = profile(&jit, "switchy");
        let sw = sites(m, "switchy", |k| matches!(k, InstKind::Switch { .. }))[0];
        // Cases in the instruction's order: key 2 (30%), key 3 (10%); the default 60%.
        assert_eq!(p.switch(sw), Some(&SwitchCounts { cases: vec![300, 100], default: 600 }), "{tier}");

        assert_eq!(run(&jit, "indirect", 1000), 533290);
        let p = profile(&jit, "indirect");
        let ci = sites(m, "indirect", |k| matches!(k, InstKind::CallIndirect { .. }))[0];
        let (inc, twice) = (jit.func_id("inc").unwrap(), jit.func_id("twice").unwrap());
        // 95% inc, 4% twice, and the 1% to thrice counted as misses.
        assert_eq!(
            p.indirect(ci),
            Some(&IndirectTargets { targets: vec![(inc, 950), (twice, 40)], misses: 10 })
        );

        assert_eq!(run(&jit, "calls", 1000), 999500);
        let p = profile(&jit, "calls");
        let calls = sites(m, "calls", |k| matches!(k, InstKind::Call { callee: Callee::Func(_), .. }));
        assert_eq!(calls.iter().map(|c| p.calls(*c)).collect::<Vec<_>>(), [Some(1000), Some(500)], "{tier}");
    }
}

#[test]
fn a_hot_target_seen_late_takes_a_row() {
    use rayzor_core::codegen::builtins::rayzor_profile_target;
    use rayzor_core::mir::profile::SiteKind;
    use std::sync::atomic::AtomicU64;
    let rows: Vec<AtomicU64> = (0..SiteKind::Indirect.slots()).map(|_| AtomicU64::new(0)).collect();
    let count = |token: u64| unsafe { rayzor_profile_target(rows.as_ptr(), token, 1) };
    // Two rare targets fill the rows before the hot one is ever seen.
    count(30);
    count(20);
    for i in 0..1000 {
        count(match i % 100 {
            0..=94 => 10,
            95..=98 => 20,
            _ => 30,
        });
    }
    let v: Vec<u64> = rows.iter().map(|a| a.load(std::sync::atomic::Ordering::Relaxed)).collect();
    assert_eq!((v[0], v[2]), (10, 20), "hot target first, then the 4% one: {v:?}");
    assert_eq!(v[1] + v[3] + v[4], 1002, "every call is counted once: {v:?}");
    assert!(v[1] >= 900, "{v:?}");
}

#[test]
fn only_the_profiling_tiers_collect() {
    // By default only T0 profiles; T2 and T3 never do (they compile optimised MIR).
    let default = Jit::new(parse_module(SITES).unwrap(), vec![], 1).unwrap();
    let t0 = default.func_id("branchy").unwrap();
    default.compile(t0, Tier::T0).unwrap();
    run(&default, "branchy", 10);
    assert!(!profile(&default, "branchy").sites.is_empty());
    // Entries are counted at the profiling tiers only, like the sites.
    default.compile(t0, Tier::T1).unwrap();
    run(&default, "branchy", 10);
    let p = profile(&default, "branchy");
    assert_eq!(p.entries, 1);
    assert_eq!(p.branch(brifs(default.module(), "branchy")[1]).map(|b| b.taken), Some(9));
    for (tier, mask) in [(Tier::T1, 0b1), (Tier::T2, 0b1111), (Tier::T3, 0b1111)] {
        if tier == Tier::T3 && rayzor_core::codegen::llvm_backend().is_err() {
            continue;
        }
        let jit = jit_profiling(tier, 1, mask);
        assert_eq!(run(&jit, "branchy", 1000), 50400);
        assert_eq!(run(&jit, "indirect", 1000), 533290);
        assert!(profile(&jit, "branchy").sites.is_empty(), "{tier}");
        assert!(profile(&jit, "indirect").sites.is_empty(), "{tier}");
    }
    // No counting code at all with sample_rate 0.
    let jit = jit_at(Tier::T0, 0);
    assert_eq!(run(&jit, "switchy", 1000), 302400);
    assert!(profile(&jit, "switchy").sites.is_empty());
}

#[test]
fn reset_forgets_the_profile() {
    let jit = jit_at(Tier::T0, 1);
    run(&jit, "branchy", 100);
    assert!(!profile(&jit, "branchy").sites.is_empty());
    jit.reset_profile(jit.func_id("branchy").unwrap());
    assert!(profile(&jit, "branchy").sites.is_empty());
    run(&jit, "branchy", 10);
    let body = brifs(jit.module(), "branchy")[1];
    assert_eq!(profile(&jit, "branchy").branch(body).map(|b| (b.taken, b.not_taken)), Some((9, 1)));
}
