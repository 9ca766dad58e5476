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
