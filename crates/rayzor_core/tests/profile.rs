//! Execution profiles collected by the profiling tiers (T0, T1): branch,
//! switch, indirect-target and call-site counts, exact with every event
//! counted (`sample_rate` 1) and close to the true frequencies when sampled.

use rayzor_core::mir::profile::{FunctionProfile, IndirectTargets, SwitchCounts};
use rayzor_core::mir::text::parse_module;
use rayzor_core::mir::{Callee, FuncId, Inst, InstKind, Module};
use rayzor_core::runtime::{Jit, Tier};

const SITES: &str = include_str!("../../../tests/mir/profile_sites.mir");

/// A jit over the profile-site program, every function compiled at `tier`.
fn jit_at(tier: Tier, sample_rate: u64) -> Jit {
    let jit = Jit::new(parse_module(SITES).unwrap(), vec![], sample_rate).unwrap();
    for i in 0..jit.module().functions.len() {
        jit.compile(FuncId(i as u32), tier).unwrap();
    }
    jit
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
fn every_event_counted_gives_exact_counts_at_t0_and_t1() {
    for tier in [Tier::T0, Tier::T1] {
        let jit = jit_at(tier, 1);
        let m = jit.module();
        assert_eq!(run(&jit, "branchy", 1000), 50400);
        let p = profile(&jit, "branchy");
        let [loop_br, body_br] = brifs(m, "branchy")[..] else { panic!("two brifs") };
        let b = p.branch(loop_br).unwrap();
        assert_eq!((b.taken, b.not_taken), (1000, 1), "{tier}");
        let b = p.branch(body_br).unwrap();
        assert_eq!((b.taken, b.not_taken), (900, 100), "{tier}");
        assert_eq!(b.taken_probability(), Some(0.9));
        assert_eq!(p.entries, 1);

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

/// |got - want| <= tol, with a message.
fn close(got: f64, want: f64, tol: f64, what: &str) {
    assert!((got - want).abs() <= tol, "{what}: {got:.4}, expected {want} +- {tol}");
}

#[test]
fn sampled_profiles_give_the_frequencies() {
    // Rate 2 and 4: with a fixed sampling period, the two brifs of each
    // iteration of `branchy` (plus the loop's own) would alias with it and
    // one site would get every sample; the jittered period samples both.
    for (tier, rate) in [(Tier::T0, 16), (Tier::T1, 16), (Tier::T1, 2), (Tier::T1, 4), (Tier::T0, 3)] {
        let what = format!("{tier} sample_rate {rate}");
        let jit = jit_at(tier, rate);
        let m = jit.module();
        for _ in 0..10 {
            run(&jit, "branchy", 20_000);
        }
        let [loop_br, body_br] = brifs(m, "branchy")[..] else { panic!("two brifs") };
        let p = profile(&jit, "branchy");
        let b = p.branch(body_br).unwrap();
        close(b.taken_probability().unwrap(), 0.9, 0.02, &what);
        // Sampled counts are scaled by the rate: about the number of events.
        close((b.taken + b.not_taken) as f64 / 200_000.0, 1.0, 0.1, &what);
        let l = p.branch(loop_br).unwrap();
        close(l.taken_probability().unwrap(), 1.0, 0.001, &what);

        for _ in 0..10 {
            run(&jit, "switchy", 20_000);
        }
        let sw = sites(m, "switchy", |k| matches!(k, InstKind::Switch { .. }))[0];
        let p = profile(&jit, "switchy");
        let s = p.switch(sw).unwrap();
        let total = (s.cases.iter().sum::<u64>() + s.default) as f64;
        close(s.cases[0] as f64 / total, 0.3, 0.02, &what);
        close(s.cases[1] as f64 / total, 0.1, 0.02, &what);
        close(s.default as f64 / total, 0.6, 0.02, &what);

        for _ in 0..10 {
            run(&jit, "indirect", 20_000);
        }
        let ci = sites(m, "indirect", |k| matches!(k, InstKind::CallIndirect { .. }))[0];
        let p = profile(&jit, "indirect");
        let t = p.indirect(ci).unwrap();
        let names: Vec<&str> = t.targets.iter().map(|(f, _)| m.func(*f).name.as_str()).collect();
        assert_eq!(names, ["inc", "twice"], "{what}");
        let total = (t.targets.iter().map(|(_, n)| n).sum::<u64>() + t.misses) as f64;
        close(t.targets[0].1 as f64 / total, 0.95, 0.02, &what);
        close(t.misses as f64 / total, 0.01, 0.01, &what);
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
    for tier in [Tier::T2, Tier::T3] {
        if tier == Tier::T3 && rayzor_core::codegen::llvm_backend().is_err() {
            continue;
        }
        let jit = jit_at(tier, 1);
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
