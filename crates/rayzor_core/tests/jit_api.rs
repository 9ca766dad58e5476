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

const SPIN: &str = "
fn spin(i64) -> i64 {
block0(v0: i64):
  jump block1(v0)
block1(v1: i64):
  v2: i64 = add v1, v0
  jump block1(v2)
}
fn add1(i64) -> i64 {
block0(v0: i64):
  v1: i64 = const 1
  v2: i64 = add v0, v1
  ret v2
}
";

/// `Jit::interrupt` from another thread stops an endless loop at every tier,
/// with and without profiling code; the jit keeps working.
#[test]
fn interrupt_stops_an_endless_loop_at_every_tier() {
    use rayzor_core::mir::TrapKind;
    use rayzor_core::runtime::Tier;
    use std::sync::Arc;
    let tiers: &[Tier] = if cfg!(feature = "llvm") { &Tier::ALL } else { &[Tier::T0, Tier::T1, Tier::T2] };
    for sample_rate in [0, 1, 16] {
        let jit = Arc::new(Jit::new(parse_module(SPIN).unwrap(), vec![], sample_rate).unwrap());
        let (spin, add1) = (jit.func_id("spin").unwrap(), jit.func_id("add1").unwrap());
        for &tier in tiers {
            jit.compile(spin, tier).unwrap();
            let j = jit.clone();
            let returned = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let done = returned.clone();
            // An interrupt only stops calls running when it comes: on a loaded machine
            // the call may start more than 20 ms after this thread, so it interrupts
            // every 20 ms until the call has returned.
            let stopper = std::thread::spawn(move || {
                while !done.load(std::sync::atomic::Ordering::SeqCst) {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                    j.interrupt();
                }
            });
            let mut rets = [0u64; 1];
            let outcome = jit.call(spin, &[1], &mut rets);
            returned.store(true, std::sync::atomic::Ordering::SeqCst);
            stopper.join().unwrap();
            match outcome {
                Err(RunError::Trap(t)) => {
                    assert_eq!(t.kind, TrapKind::Interrupted, "{tier} sample_rate {sample_rate}");
                    assert_eq!(t.function.as_deref(), Some("spin"));
                }
                other => panic!("{tier}: {other:?}"),
            }
            jit.call(add1, &[41], &mut rets).unwrap();
            assert_eq!(rets[0], 42);
        }
    }
}

/// `burn(n)`: 2^n - 1 calls, no loop: only entries poll.
const BURN: &str = include_str!("../../../tests/mir/burn.mir");

/// A thread that finds every context slot taken (`interrupt::CTX_SLOTS`)
/// runs with a context of its own (every entry takes the slow path): results
/// and interrupts at entries still work there, at every tier; a thread that
/// got a slot before is not affected.
#[test]
fn a_thread_without_a_context_slot_still_runs_and_stops() {
    use rayzor_core::mir::interrupt::CtxSlot;
    use rayzor_core::mir::TrapKind;
    use rayzor_core::runtime::Tier;
    use std::sync::Arc;
    let tiers: &[Tier] = if cfg!(feature = "llvm") { &Tier::ALL } else { &[Tier::T0, Tier::T1, Tier::T2] };
    let jit = Arc::new(Jit::new(parse_module(BURN).unwrap(), vec![], 0).unwrap());
    let burn = jit.func_id("burn").unwrap();
    let j = jit.clone();
    // Started (and given its slot) before the slots run out: the control.
    let (release, released) = std::sync::mpsc::channel::<()>();
    let control = std::thread::spawn(move || {
        let mut rets = [0u64; 1];
        j.call(burn, &[3], &mut rets).unwrap();
        released.recv().unwrap();
        j.call(burn, &[10], &mut rets).unwrap();
        rets[0]
    });
    let taken: Vec<CtxSlot> = std::iter::from_fn(CtxSlot::claim).collect();
    for &tier in tiers {
        jit.compile(burn, tier).unwrap();
        let j = jit.clone();
        let slotless = std::thread::spawn(move || {
            let mut rets = [0u64; 1];
            j.call(burn, &[12], &mut rets).unwrap();
            assert_eq!(rets[0], (1 << 12) - 1);
            j.call(burn, &[62], &mut rets)
        });
        // Interrupted until it stops: it may start its endless call after an interrupt.
        while !slotless.is_finished() {
            std::thread::sleep(std::time::Duration::from_millis(20));
            jit.interrupt();
        }
        match slotless.join().unwrap() {
            Err(RunError::Trap(t)) => assert_eq!(t.kind, TrapKind::Interrupted, "{tier}"),
            other => panic!("{tier}: {other:?}"),
        }
    }
    drop(taken);
    release.send(()).unwrap();
    assert_eq!(control.join().unwrap(), (1 << 10) - 1);
}

#[test]
fn ir_and_machine_code_are_inspected_without_installing_anything() {
    use rayzor_core::runtime::Tier;
    let jit = Jit::new(parse_module(FIB).unwrap(), vec![], 1).unwrap();
    let fib = jit.func_id("fib").unwrap();
    let stages: Vec<String> = jit.ir(fib, Tier::T1).unwrap().into_iter().map(|(k, _)| k).collect();
    assert_eq!(stages, ["mir", "clif", "clif_opt"]);
    assert_eq!(jit.tier_of(fib), Some(Tier::T0));
    let installed = jit.code_copy(fib, None).unwrap();
    assert!(installed.installed && installed.tier == Tier::T0);
    assert_eq!(installed.bytes.len(), jit.info(fib).code_size[0]);
    let other = jit.code_copy(fib, Some(Tier::T1)).unwrap();
    assert!(!other.installed && other.tier == Tier::T1);
    assert_eq!(jit.tier_of(fib), Some(Tier::T0));
    let text = jit.disassemble(fib, None).unwrap();
    assert!(text.starts_with("; 'fib' at T0: "), "{text}");
    assert!(text.lines().nth(1).unwrap().starts_with(&format!("{:#014x}:", installed.address)), "{text}");
}

/// A function a tier cannot compile starts in the next tier that can (an event,
/// not an error); only when no tier can is `Jit::new` an error.
#[test]
fn initial_compile_falls_back_to_the_next_tier() {
    use rayzor_core::runtime::{CompileReason, JitError, Tier};
    let m = parse_module(SPIN).unwrap();
    let jit = Jit::with_failing_tiers(m.clone(), vec![], 1, 0b0001).unwrap();
    let add1 = jit.func_id("add1").unwrap();
    assert_eq!(jit.tier_of(add1), Some(Tier::T1));
    let ev: Vec<_> = jit.events_since(0).into_iter().filter(|e| e.function == add1).collect();
    assert_eq!(ev.len(), 2);
    assert!(ev[0].to == Tier::T0 && ev[0].result.is_err() && ev[0].reason == CompileReason::Initial);
    assert!(ev[1].to == Tier::T1 && ev[1].result.is_ok());
    let mut rets = [0u64; 1];
    jit.call(add1, &[1], &mut rets).unwrap();
    assert_eq!(rets[0], 2);
    let all = if cfg!(feature = "llvm") { 0b1111 } else { 0b0111 };
    match Jit::with_failing_tiers(m, vec![], 1, all) {
        Err(JitError::Compile { tier, message, .. }) => {
            assert_eq!(tier, Tier::T0);
            assert!(message.contains("failure injected"), "{message}");
        }
        other => panic!("expected a compile error, got {:?}", other.map(|_| ())),
    }
}
