//! Profile-guided T2/T3 (issue 12.2): what a profile changes in the code, and
//! that it changes nothing in the results, also when later inputs contradict it.

use rayzor_core::mir::opt::optimize_function_with_profile;
use rayzor_core::mir::text::parse_module;
use rayzor_core::mir::{Callee, FuncId, InstKind, Module};
use rayzor_core::runtime::{Jit, Tier};

const ICALL: &str = include_str!("../../../tests/mir/pgo_icall.mir");
const BRANCH: &str = include_str!("../../../tests/mir/pgo_branch.mir");
const DISPATCH: &str = include_str!("../../../tests/mir/call_indirect.mir");

fn llvm() -> bool {
    rayzor_core::codegen::llvm_backend().is_ok()
}

fn call(jit: &Jit, name: &str, args: &[u64]) -> u64 {
    let mut rets = [0u64];
    jit.call(jit.func_id(name).unwrap(), args, &mut rets).unwrap();
    rets[0]
}

fn interp(m: &Module, name: &str, args: &[u64]) -> u64 {
    let mut i = rayzor_core::mir::interp::Interpreter::new(m);
    i.call(m.func_by_name(name).unwrap(), args).unwrap()[0]
}

/// The kinds of the instructions of `f` as compiled at T2 with its given profile.
fn optimised(jit: &Jit, name: &str) -> Vec<InstKind> {
    let f = jit.func_id(name).unwrap();
    let p = jit.profile_for(f);
    let (func, _) = optimize_function_with_profile(jit.module(), f, p.as_deref());
    func.blocks.iter().flat_map(|b| b.insts.iter().map(|i| func.insts[i.index()].kind.clone())).collect()
}

fn count(kinds: &[InstKind], pick: impl Fn(&InstKind) -> bool) -> usize {
    kinds.iter().filter(|k| pick(k)).count()
}

fn is_indirect(k: &InstKind) -> bool {
    matches!(k, InstKind::CallIndirect { .. })
}

fn addr_of(k: &InstKind, g: FuncId) -> bool {
    matches!(k, InstKind::FuncAddr { callee: Callee::Func(h) } if *h == g)
}

#[test]
fn hot_indirect_targets_are_guarded_and_inlined() {
    let m = parse_module(ICALL).unwrap();
    let jit = Jit::new(m.clone(), vec![], 1).unwrap();
    let (f0, f1, f2) =
        (m.func_by_name("f0").unwrap(), m.func_by_name("f1").unwrap(), m.func_by_name("f2").unwrap());
    let before = optimised(&jit, "icall");
    assert_eq!(count(&before, is_indirect), 1);
    assert_eq!(count(&before, |k| addr_of(k, f0)), 1, "the table store only");

    jit.train_profile(jit.func_id("icall").unwrap(), &[vec![1000]]).unwrap();
    let after = optimised(&jit, "icall");
    // Guards for f0 (95%) and f1 (80% of the rest), both inlined; f2 (1%) takes the fallback.
    assert_eq!(count(&after, is_indirect), 1, "the fallback stays");
    assert_eq!(count(&after, |k| addr_of(k, f0)), 2, "table store + guard");
    assert_eq!(count(&after, |k| addr_of(k, f1)), 2, "table store + guard");
    assert_eq!(count(&after, |k| addr_of(k, f2)), 1, "no guard for a 1% target");
    assert_eq!(count(&after, |k| matches!(k, InstKind::Call { .. })), 0, "guarded calls are inlined");
    let _ = f2;
}

#[test]
fn cold_call_sites_are_not_inlined() {
    // `rare` calls the small leaf `mix` on 1 iteration in 100, `hot` on every one.
    let text = r"
fn mix(i64, i64) -> i64 {
block0(v0: i64, v1: i64):
  v2: i64 = mul v0, v1
  ret v2
}

fn rare(i64) -> i64 {
block0(v0: i64):
  v1: i64 = const 0
  jump block1(v1, v1)
block1(v2: i64, v3: i64):
  v4: bool = lt v2, v0
  brif v4, block2, block5
block2:
  v5: i64 = const 100
  v6: i64 = rem v2, v5
  v7: bool = eq v6, v1
  brif v7, block3, block4
block3:
  v8: i64 = call mix(v3, v2)
  v9: i64 = const 1
  v10: i64 = add v2, v9
  jump block1(v10, v8)
block4:
  v11: i64 = call mix(v2, v2)
  v12: i64 = add v3, v11
  v13: i64 = const 1
  v14: i64 = add v2, v13
  jump block1(v14, v12)
block5:
  ret v3
}
";
    let m = parse_module(text).unwrap();
    let jit = Jit::new(m.clone(), vec![], 1).unwrap();
    let calls = |k: &InstKind| matches!(k, InstKind::Call { .. });
    assert_eq!(count(&optimised(&jit, "rare"), calls), 0, "without a profile both sites are inlined");
    jit.train_profile(jit.func_id("rare").unwrap(), &[vec![10_000]]).unwrap();
    assert_eq!(count(&optimised(&jit, "rare"), calls), 1, "the 1% site stays a call");
    for tier in [Tier::T2, Tier::T3] {
        if tier == Tier::T3 && !llvm() {
            continue;
        }
        jit.compile(jit.func_id("rare").unwrap(), tier).unwrap();
        for n in [0, 1, 99, 100, 101, 5000] {
            assert_eq!(call(&jit, "rare", &[n]), interp(&m, "rare", &[n]), "rare({n}) at {tier}");
        }
    }
}

#[test]
fn profile_weights_reach_llvm() {
    if !llvm() {
        return;
    }
    let m = parse_module(BRANCH).unwrap();
    let jit = Jit::new(m, vec![], 1).unwrap();
    let f = jit.func_id("bias").unwrap();
    let ir = |jit: &Jit| jit.ir(f, Tier::T3).unwrap().into_iter().find(|(k, _)| k == "llvm").unwrap().1;
    // The 99:1 branch (i % 100 == 0): 100 taken, 9900 not taken.
    assert!(!ir(&jit).contains("i32 100, i32 9900"));
    jit.train_profile(f, &[vec![10_000]]).unwrap();
    let text = ir(&jit);
    assert!(text.contains("!{!\"branch_weights\", i32 100, i32 9900}"), "{text}");
}

#[test]
fn contradicted_profiles_give_the_interpreters_results() {
    // Trained on `dispatch(0, _)` (target `inc`), run on every selector.
    let m = parse_module(DISPATCH).unwrap();
    for tier in [Tier::T2, Tier::T3] {
        if tier == Tier::T3 && !llvm() {
            continue;
        }
        let jit = Jit::new(m.clone(), vec![], 1).unwrap();
        let d = jit.func_id("dispatch").unwrap();
        jit.train_profile(d, &[vec![0, 7], vec![0, 8], vec![0, 9]]).unwrap();
        let kinds = optimised(&jit, "dispatch");
        assert!(count(&kinds, |k| addr_of(k, m.func_by_name("inc").unwrap())) >= 2, "a guard for inc");
        jit.compile(d, tier).unwrap();
        for sel in 0..4u64 {
            for x in [-7i64 as u64, 0, 7, 1 << 40] {
                assert_eq!(
                    call(&jit, "dispatch", &[sel, x]),
                    interp(&m, "dispatch", &[sel, x]),
                    "{sel} {x} {tier}"
                );
            }
        }
        // Adversarial profiles (targets of other signatures, zero and huge counts).
        for seed in 0..20 {
            jit.set_random_profiles(seed);
            for i in 0..m.functions.len() {
                jit.compile(FuncId(i as u32), tier).unwrap();
            }
            for sel in 0..4u64 {
                assert_eq!(
                    call(&jit, "dispatch", &[sel, 5]),
                    interp(&m, "dispatch", &[sel, 5]),
                    "seed {seed}"
                );
            }
        }
    }
}
