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
