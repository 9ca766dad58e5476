//! Native execution at every Cranelift tier agrees with the interpreter.

use rayzor_core::codegen::Tier;
use rayzor_core::mir::interp::Interpreter;
use rayzor_core::mir::text::parse_module;
use rayzor_core::mir::TrapKind;
use rayzor_core::runtime::Jit;

const FIB: &str = r#"
fn fib(i64) -> i64 {
block0(v0: i64):
  v1: i64 = const 2
  v2: bool = lt v0, v1
  brif v2, block1, block2
block1:
  ret v0
block2:
  v3: i64 = const 1
  v4: i64 = sub v0, v3
  v5: i64 = call fib(v4)
  v6: i64 = const 2
  v7: i64 = sub v0, v6
  v8: i64 = call fib(v7)
  v9: i64 = add v5, v8
  ret v9
}

fn div(i32, i32) -> i32 {
block0(v0: i32, v1: i32):
  v2: i32 = div v0, v1
  ret v2
}

fn down(i64) -> i64 {
block0(v0: i64):
  v1: i64 = const 0
  v2: bool = eq v0, v1
  brif v2, block1, block2
block1:
  ret v0
block2:
  v3: i64 = const 1
  v4: i64 = sub v0, v3
  v5: i64 = call down(v4)
  v6: i64 = add v5, v3
  ret v6
}
"#;

fn run(jit: &Jit, name: &str, args: &[u64]) -> Result<u64, TrapKind> {
    let f = jit.func_id(name).unwrap();
    let mut rets = [0u64; 1];
    jit.call(f, args, &mut rets).map_err(|t| t.kind)?;
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
