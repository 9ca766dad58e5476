//! The `Jit` API itself (what run-test files cannot express).

mod common;

use common::FIB;
use rayzor_core::error::RunError;
use rayzor_core::mir::text::parse_module;
use rayzor_core::runtime::Jit;

#[test]
fn call_buffers_of_the_wrong_length_are_refused() {
    let jit = Jit::new(parse_module(FIB).unwrap(), vec![], 1).unwrap();
    let div = jit.func_id("div").unwrap();
    let mut rets = [0u64; 1];
    let refused =
        |r: Result<(), RunError>| matches!(r, Err(RunError::Usage(u)) if u.0.contains("argument leaves"));
    assert!(refused(jit.call(div, &[7], &mut rets)), "too few arguments");
    assert!(refused(jit.call(div, &[7, 1, 2], &mut rets)), "too many arguments");
    assert!(refused(jit.call(div, &[7, 1], &mut [])), "no room for the result");
    assert!(matches!(jit.call(rayzor_core::mir::FuncId(99), &[], &mut rets), Err(RunError::Usage(_))));
    assert!(jit.call(div, &[7, 1], &mut rets).is_ok());
    assert_eq!(rets[0], 7);
}

/// `sum(n)`: one loop of n iterations.
const SUM: &str = include_str!("../../../tests/mir/osr_sum.mir");

#[test]
fn forced_osr_transfers_after_exactly_k_back_edges() {
    use rayzor_core::runtime::osr::OsrMode;
    use rayzor_core::runtime::{CompileReason, Tier};
    for (source, target) in
        [(Tier::T0, Tier::T1), (Tier::T0, Tier::T3), (Tier::T1, Tier::T2), (Tier::T2, Tier::T3)]
    {
        let jit = Jit::with_osr(parse_module(SUM).unwrap(), vec![], 1, OsrMode::Counting).unwrap();
        let f = jit.func_id("sum").unwrap();
        jit.compile(f, source).unwrap();
        jit.force_osr(5, target).unwrap();
        let points = jit.osr_points(f);
        let point = points.iter().find(|p| p.source == source).expect("the loop has an OSR point");
        assert_eq!(point.entry_tier(), Some(target));
        let mut rets = [0u64];
        jit.call(f, &[1000], &mut rets).unwrap();
        assert_eq!(rets[0], 499_500, "{source}->{target}");
        // The source code counted 5 back-edges, then the continuation ran the other 995.
        assert_eq!(point.backedges(), 5, "{source}->{target}");
        let osr_events = jit
            .events_since(0)
            .into_iter()
            .filter(|e| matches!(e.reason, CompileReason::Osr { .. }) && e.result.is_ok())
            .count();
        assert_eq!(osr_events, 1);
        // A loop shorter than k never transfers.
        jit.call(f, &[3], &mut rets).unwrap();
        assert_eq!(rets[0], 3);
    }
}

#[test]
fn without_osr_the_loop_runs_in_its_own_code() {
    let jit = Jit::new(parse_module(SUM).unwrap(), vec![], 1).unwrap();
    let f = jit.func_id("sum").unwrap();
    assert!(jit.osr_points(f).is_empty());
    let mut rets = [0u64];
    jit.call(f, &[1000], &mut rets).unwrap();
    assert_eq!((rets[0], jit.info(f).backedges), (499_500, 1000));
}
