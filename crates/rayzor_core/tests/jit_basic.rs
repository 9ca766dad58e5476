//! Native execution at every Cranelift tier agrees with the interpreter.

use rayzor_core::error::RunError;
use rayzor_core::mir::interp::Interpreter;
use rayzor_core::mir::text::parse_module;
use rayzor_core::mir::TrapKind;
use rayzor_core::runtime::Jit;
use rayzor_core::runtime::Tier;

mod common;
use common::FIB;

fn run(jit: &Jit, name: &str, args: &[u64]) -> Result<u64, TrapKind> {
    let f = jit.func_id(name).unwrap();
    let mut rets = [0u64; 1];
    jit.call(f, args, &mut rets).map_err(|e| match e {
        RunError::Trap(t) => t.kind,
        RunError::Usage(u) => panic!("{u}"),
    })?;
    Ok(rets[0])
}

#[test]
fn fib_divide_and_recursion_at_every_cranelift_tier() {
    let m = parse_module(FIB).unwrap();
    let jit = Jit::new(m.clone(), vec![], 1).unwrap();
    for tier in [Tier::T0, Tier::T1, Tier::T2] {
        for name in ["fib", "div", "down"] {
            jit.compile(jit.func_id(name).unwrap(), tier).unwrap();
            assert_eq!(jit.tier_of(jit.func_id(name).unwrap()), Some(tier));
        }
        assert_eq!(run(&jit, "fib", &[20]), Ok(6765), "{tier}");
        assert_eq!(run(&jit, "div", &[7, (-2i64) as u64]), Ok((-3i64) as u64), "{tier}");
        assert_eq!(run(&jit, "div", &[7, 0]), Err(TrapKind::DivisionByZero), "{tier}");
        assert_eq!(run(&jit, "div", &[i32::MIN as i64 as u64, u64::MAX]), Err(TrapKind::IntegerOverflow));
        // down(n) recurses n+1 deep: 10_000 frames succeed, 10_001 trap.
        assert_eq!(run(&jit, "down", &[9_999]), Ok(9_999), "{tier}");
        assert_eq!(run(&jit, "down", &[10_000]), Err(TrapKind::StackOverflow), "{tier}");
        assert_eq!(run(&jit, "fib", &[10]), Ok(55), "{tier}: a call after a trap works");
    }
    let mut interp = Interpreter::new(&m);
    assert_eq!(interp.call(m.func_by_name("down").unwrap(), &[9_999]).unwrap(), vec![9_999]);
    assert!(interp.call(m.func_by_name("down").unwrap(), &[10_000]).is_err());
}

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
