//! T3 (LLVM) agrees with the interpreter bit for bit (NaN payloads aside),
//! traps included, on host calls and on generated edge cases of every
//! instruction at every width; T3's counters, recompiles and concurrent
//! compiles. Programs with fixed expected values are run-test files
//! (`tests/mir/*.mir`, run at every tier by `runtests.rs`).
#![cfg(feature = "llvm")]
#![allow(unused_must_use)] // `check` asserts; its result is only sometimes inspected

use rayzor_core::codegen::abi;
use rayzor_core::error::RunError;
use rayzor_core::mir::interp::Interpreter;
use rayzor_core::mir::text::parse_module;
use rayzor_core::mir::{BinOp, CmpOp, ExternId, Module, Scalar, UnOp};
use rayzor_core::runtime::Jit;
use rayzor_core::runtime::Tier;
use std::fmt::Write;

mod common;
use common::FIB;

type Outcome = Result<Vec<u64>, String>;

fn interp_run(i: &mut Interpreter<'_>, m: &Module, name: &str, args: &[u64]) -> Outcome {
    i.call(m.func_by_name(name).unwrap(), args).map_err(|e| match e {
        RunError::Trap(t) => t.kind.name().to_string(),
        RunError::Usage(u) => format!("usage error: {u}"),
        other => other.to_string(),
    })
}

fn jit_run(jit: &Jit, name: &str, args: &[u64]) -> Outcome {
    let f = jit.func_id(name).unwrap();
    let (_, nret) = jit.arity(f);
    let mut rets = vec![0u64; nret.max(1)];
    jit.call(f, args, &mut rets).map_err(|e| match e {
        RunError::Trap(t) => t.kind.name().to_string(),
        RunError::Usage(u) => u.0,
        other => other.to_string(),
    })?;
    rets.truncate(nret);
    Ok(rets)
}

/// Equal, treating any two NaNs of the same float leaf as equal.
fn same(m: &Module, name: &str, a: &Outcome, b: &Outcome) -> bool {
    match (a, b) {
        (Ok(x), Ok(y)) if x.len() == y.len() => {
            let f = m.func_by_name(name).unwrap();
            let leaves = abi::ret_leaves(&m.func(f).sig.ret);
            x.iter().zip(y).zip(leaves).all(|((p, q), s)| match s {
                Scalar::F32 => {
                    p == q || (f32::from_bits(*p as u32).is_nan() && f32::from_bits(*q as u32).is_nan())
                }
                Scalar::F64 => p == q || (f64::from_bits(*p).is_nan() && f64::from_bits(*q).is_nan()),
                _ => p == q,
            })
        }
        _ => a == b,
    }
}

/// Build a jit, compile every function at T3 and compare each call with the interpreter.
struct Harness {
    m: &'static Module,
    jit: Jit,
    interp: std::cell::RefCell<Interpreter<'static>>,
}

impl Harness {
    fn new(src: &str, hosts: Vec<usize>) -> Harness {
        let m = parse_module(src).unwrap_or_else(|e| panic!("{e:?}\n{src}"));
        let jit = Jit::new(m.clone(), hosts.clone(), 1).unwrap();
        for i in 0..m.functions.len() {
            let f = rayzor_core::mir::FuncId(i as u32);
            jit.compile(f, Tier::T3).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(jit.tier_of(f), Some(Tier::T3));
        }
        let m: &'static Module = Box::leak(Box::new(m));
        let mut interp = Interpreter::new(m);
        for (k, a) in hosts.iter().enumerate() {
            interp.bind_extern(ExternId(k as u32), *a);
        }
        Harness { m, jit, interp: std::cell::RefCell::new(interp) }
    }

    fn check(&self, name: &str, args: &[u64]) -> Outcome {
        let want = interp_run(&mut self.interp.borrow_mut(), self.m, name, args);
        let got = jit_run(&self.jit, name, args);
        assert!(same(self.m, name, &want, &got), "{name}{args:x?}: interpreter {want:x?}, T3 {got:x?}");
        got
    }
}

// ---------------------------------------------------------------------------
// Programs
// ---------------------------------------------------------------------------

#[test]
fn t3_code_reports_its_size_and_does_not_count_calls() {
    // What fib, div and down compute at T3 is in tests/mir (fib.mir, divrem_i32.mir,
    // call_depth.mir); this checks what the jit reports about T3 code.
    let h = Harness::new(FIB, vec![]);
    for n in [0, 1, 2, 15] {
        h.check("fib", &[n]);
    }
    let info = h.jit.info(h.jit.func_id("fib").unwrap());
    // T3 is not promoted: its prologue counts nothing (a serial read-modify-write per call).
    assert_eq!(info.calls[3], 0, "T3 code does not count its calls: {info:?}");
    assert!(info.code_size[3] > 0 && info.compile_time[3].is_some());
}

#[test]
fn mixed_tiers_and_exact_call_counts() {
    let m = parse_module(FIB).unwrap();
    let jit = Jit::new(m, vec![], 8).unwrap();
    let fib = jit.func_id("fib").unwrap();
    jit.compile(fib, Tier::T3).unwrap();
    assert_eq!(jit_run(&jit, "fib", &[25]), Ok(vec![75025]));
    assert_eq!(jit.info(fib).calls[3], 0);
    // Back to T1 and up again: the old T3 code is retired, new code works.
    jit.compile(fib, Tier::T1).unwrap();
    assert_eq!(jit_run(&jit, "fib", &[20]), Ok(vec![6765]));
    let calls = jit.info(fib).calls[1];
    // fib(20) makes 21891 calls: T1 counts every one, whatever the sample rate (8
    // here; it samples back-edges, and T0's entries).
    assert_eq!(calls, 21_891);
    jit.compile(fib, Tier::T3).unwrap();
    let down = jit.func_id("down").unwrap();
    jit.compile(down, Tier::T3).unwrap();
    assert_eq!(jit_run(&jit, "down", &[9_999]), Ok(vec![9_999]));
    assert_eq!(jit_run(&jit, "down", &[10_000]), Err("stack_overflow".into()));
    assert_eq!(jit_run(&jit, "fib", &[20]), Ok(vec![6765]));
}

#[test]
fn compiles_concurrently_from_several_threads() {
    let m = parse_module(FIB).unwrap();
    let jit = std::sync::Arc::new(Jit::new(m, vec![], 1).unwrap());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let jit = jit.clone();
            std::thread::spawn(move || {
                for k in 0..6 {
                    let name = ["fib", "div", "down"][(t + k) % 3];
                    jit.compile(jit.func_id(name).unwrap(), Tier::T3).unwrap();
                    assert_eq!(jit_run(&jit, "fib", &[15]), Ok(vec![610]));
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(jit_run(&jit, "down", &[500]), Ok(vec![500]));
}

const PROGRAMS: &str = r#"
extern fn host_mix(i8, u16, f32, f64, bool, i64) -> i32
extern fn host_neg(i16) -> i16
extern fn host_not(bool) -> bool

fn hosts(i8, u16, f32, f64, bool, i64) -> i64 {
block0(v0: i8, v1: u16, v2: f32, v3: f64, v4: bool, v5: i64):
  v6: i32 = call host_mix(v0, v1, v2, v3, v4, v5)
  v7: i16 = cast v0
  v8: i16 = call host_neg(v7)
  v9: bool = call host_not(v4)
  v10: extern fn(bool) -> bool = func.addr host_not
  v11: bool = call_indirect v10(v9)
  v12: i64 = cast v6
  v13: i64 = cast v8
  v14: i64 = add v12, v13
  v15: i64 = cast v11
  v16: i64 = const 1000000
  v17: i64 = mul v15, v16
  v18: i64 = add v14, v17
  ret v18
}

fn loop(u32) -> u64 {
block0(v0: u32):
  v1: u64 = const 0
  v2: u32 = const 0
  jump block1(v2, v1)
block1(v3: u32, v4: u64):
  v5: bool = lt v3, v0
  brif v5, block2, block3
block2:
  v6: u64 = cast v3
  v7: u64 = mul v6, v6
  v8: u64 = xor v4, v7
  v9: u64 = const 3
  v10: u64 = rotl v8, v9
  v11: u32 = const 1
  v12: u32 = add v3, v11
  jump block1(v12, v10)
block3:
  ret v4
}
"#;

extern "C" fn host_mix(a: i8, b: u16, c: f32, d: f64, e: bool, f: i64) -> i32 {
    let terms = [(a as i32, 3), (b as i32, 5), (c as i32, 7), (d as i32, 11), (e as i32, 13), (f as i32, 1)];
    terms.iter().fold(0i32, |acc, (x, k)| acc.wrapping_add(x.wrapping_mul(*k)))
}

extern "C" fn host_neg(a: i16) -> i16 {
    a.wrapping_neg()
}

extern "C" fn host_not(a: bool) -> bool {
    !a
}

#[test]
fn host_functions_and_t3_counters() {
    // The other programs that were here are run-test files in tests/mir (memory.mir,
    // struct_return.mir, unions.mir, anys.mir, switch.mir, call_indirect*.mir, traps.mir,
    // depth_check.mir, calls.mir, str_const.mir, block_params.mir, loops.mir): those
    // cannot call host functions, so the externs stay here.
    let hosts =
        vec![host_mix as *const () as usize, host_neg as *const () as usize, host_not as *const () as usize];
    let h = Harness::new(PROGRAMS, hosts);
    for (a, b, c, d, e, f) in
        [(1i8, 2u16, 3.5f32, 4.5f64, true, 6i64), (-128, 65535, -1e10, f64::NAN, false, -7)]
    {
        h.check("hosts", &[a as i64 as u64, b as u64, c.to_bits() as u64, d.to_bits(), e as u64, f as u64]);
    }
    for n in [0u64, 1, 10, 1000] {
        h.check("loop", &[n]);
    }
    // T3 is the top tier: neither its loops nor its calls are counted.
    let info = h.jit.info(h.jit.func_id("loop").unwrap());
    assert_eq!((info.backedges, info.calls[3]), (0, 0));
}

// ---------------------------------------------------------------------------
// Instruction edge cases
// ---------------------------------------------------------------------------

const INTS: [Scalar; 8] =
    [Scalar::I8, Scalar::I16, Scalar::I32, Scalar::I64, Scalar::U8, Scalar::U16, Scalar::U32, Scalar::U64];

fn float_values() -> Vec<f64> {
    vec![
        0.0,
        -0.0,
        1.0,
        -1.0,
        0.5,
        -2.5,
        1.5,
        127.5,
        -128.9,
        255.9,
        256.0,
        -129.0,
        32767.5,
        65535.9,
        65536.0,
        2147483647.5,
        -2147483649.0,
        4294967295.5,
        4294967296.0,
        9.2e18,
        -9.3e18,
        1.8446744073709552e19,
        1e300,
        -1e300,
        3.0e38,
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::NAN,
        -f64::NAN,
        5e-324,
        1e-310,
        0.1,
    ]
}

/// Interesting canonical values of scalar type `s`.
fn values(s: Scalar) -> Vec<u64> {
    let mut v: Vec<u64> = match s {
        Scalar::Bool => vec![0, 1],
        Scalar::F64 => float_values().into_iter().map(f64::to_bits).collect(),
        Scalar::F32 => float_values().into_iter().map(|x| (x as f32).to_bits() as u64).collect(),
        _ => {
            let w = s.bits() as i64;
            let mut raw: Vec<i64> =
                vec![0, 1, 2, 3, 5, 7, 8, 15, 16, 31, 32, 33, 63, 64, 65, 100, 127, 128, 255, 256];
            raw.extend([-1, -2, -3, -8, -100, w - 1, w, w + 1, 2 * w + 3, -w]);
            raw.extend([
                i64::MIN,
                i64::MAX,
                0x5555_5555_5555_5555,
                0x1234_5678_9abc_def0,
                -0x1234_5678_9abc_def0,
            ]);
            let min = if s.is_signed() { (-1i64) << (w - 1) } else { 0 };
            let max = if s.is_signed() { (1i64 << (w - 1)).wrapping_sub(1) } else { -1 };
            raw.extend([min, max, min.wrapping_add(1), max.wrapping_sub(1)]);
            raw.into_iter().map(|x| s.canon(x as u64)).collect()
        }
    };
    v.dedup();
    let mut seen = std::collections::HashSet::new();
    v.retain(|x| seen.insert(*x));
    v
}

fn int_literal(s: Scalar, bits: u64) -> String {
    if s.is_signed() {
        format!("{}", s.canon(bits) as i64)
    } else {
        format!("{}", s.canon(bits))
    }
}

/// Text that defines `v{dst}: s` as the constant with canonical `bits` (floats via bitcast).
fn const_def(out: &mut String, dst: &mut u32, s: Scalar, bits: u64) -> u32 {
    match s {
        Scalar::F32 | Scalar::F64 => {
            let it = if s == Scalar::F32 { Scalar::U32 } else { Scalar::U64 };
            writeln!(out, "  v{}: {} = const {}", *dst, it, int_literal(it, bits)).unwrap();
            writeln!(out, "  v{}: {} = bitcast v{}", *dst + 1, s, *dst).unwrap();
            *dst += 2;
        }
        Scalar::Bool => {
            writeln!(out, "  v{}: bool = const {}", *dst, bits != 0).unwrap();
            *dst += 1;
        }
        _ => {
            writeln!(out, "  v{}: {} = const {}", *dst, s, int_literal(s, bits)).unwrap();
            *dst += 1;
        }
    }
    *dst - 1
}

fn cast_ok(from: Scalar, to: Scalar) -> bool {
    use Scalar::*;
    let num = |s: Scalar| s.is_int() || s.is_float();
    match (from, to) {
        _ if from == to => true,
        (Ptr, I64 | U64) | (I64 | U64, Ptr) => true,
        (Ptr, _) | (_, Ptr) => false,
        (Bool, t) => num(t),
        (f, Bool) => num(f),
        (f, t) => num(f) && num(t),
    }
}

fn all_scalars() -> Vec<Scalar> {
    Scalar::ALL.to_vec()
}

#[test]
fn binary_ops_at_every_width() {
    let mut src = String::new();
    let mut cases: Vec<(String, Vec<Vec<u64>>)> = Vec::new();
    for op in BinOp::ALL {
        for s in all_scalars() {
            if !op.accepts(s) {
                continue;
            }
            // Runtime operands.
            let name = format!("bin_{}_{}", op.name(), s);
            writeln!(src, "fn {name}({s}, {s}) -> {s} {{\nblock0(v0: {s}, v1: {s}):\n  v2: {s} = {} v0, v1\n  ret v2\n}}", op.name()).unwrap();
            let vs = values(s);
            let args: Vec<Vec<u64>> = vs.iter().flat_map(|a| vs.iter().map(move |b| vec![*a, *b])).collect();
            cases.push((name, args));
            // Constant operands (LLVM folds them): every pair whose op does not trap,
            // returned as one array.
            let pairs: Vec<(u64, u64)> = vs
                .iter()
                .flat_map(|a| vs.iter().map(move |b| (*a, *b)))
                .filter(|(a, b)| rayzor_core::mir::interp::eval_binary(op, s, *a, *b).is_ok())
                .collect();
            let name = format!("cbin_{}_{}", op.name(), s);
            let mut body = String::new();
            let mut next = 0u32;
            let ty = format!("[{s}; {}]", pairs.len());
            writeln!(body, "  v{next}: {ty} = zero").unwrap();
            let mut acc = next;
            next += 1;
            for (k, (a, b)) in pairs.iter().enumerate() {
                let x = const_def(&mut body, &mut next, s, *a);
                let y = const_def(&mut body, &mut next, s, *b);
                writeln!(body, "  v{next}: {s} = {} v{x}, v{y}", op.name()).unwrap();
                writeln!(body, "  v{}: {ty} = insert v{acc}, {k}, v{next}", next + 1).unwrap();
                acc = next + 1;
                next += 2;
            }
            writeln!(src, "fn {name}() -> {ty} {{\nblock0:\n{body}  ret v{acc}\n}}").unwrap();
            cases.push((name, vec![vec![]]));
        }
    }
    run_cases(&src, &cases);
}

#[test]
fn unary_compare_select_and_bitcast_at_every_width() {
    let mut src = String::new();
    let mut cases: Vec<(String, Vec<Vec<u64>>)> = Vec::new();
    for s in all_scalars() {
        let vs = values(s);
        for op in UnOp::ALL {
            if !op.accepts(s) {
                continue;
            }
            let name = format!("un_{}_{}", op.name(), s);
            writeln!(
                src,
                "fn {name}({s}) -> {s} {{\nblock0(v0: {s}):\n  v1: {s} = {} v0\n  ret v1\n}}",
                op.name()
            )
            .unwrap();
            cases.push((name, vs.iter().map(|a| vec![*a]).collect()));
            // Folded.
            let name = format!("cun_{}_{}", op.name(), s);
            let ty = format!("[{s}; {}]", vs.len());
            let mut body = format!("  v0: {ty} = zero\n");
            let (mut next, mut acc) = (1u32, 0u32);
            for (k, a) in vs.iter().enumerate() {
                let x = const_def(&mut body, &mut next, s, *a);
                writeln!(body, "  v{next}: {s} = {} v{x}", op.name()).unwrap();
                writeln!(body, "  v{}: {ty} = insert v{acc}, {k}, v{next}", next + 1).unwrap();
                acc = next + 1;
                next += 2;
            }
            writeln!(src, "fn {name}() -> {ty} {{\nblock0:\n{body}  ret v{acc}\n}}").unwrap();
            cases.push((name, vec![vec![]]));
        }
        for op in CmpOp::ALL {
            let name = format!("cmp_{}_{}", op.name(), s);
            writeln!(src, "fn {name}({s}, {s}) -> bool {{\nblock0(v0: {s}, v1: {s}):\n  v2: bool = {} v0, v1\n  ret v2\n}}", op.name()).unwrap();
            cases.push((name, vs.iter().flat_map(|a| vs.iter().map(move |b| vec![*a, *b])).collect()));
        }
        let name = format!("select_{s}");
        writeln!(src, "fn {name}(bool, {s}, {s}) -> {s} {{\nblock0(v0: bool, v1: {s}, v2: {s}):\n  v3: {s} = select v0, v1, v2\n  ret v3\n}}").unwrap();
        cases.push((name, vs.iter().take(6).flat_map(|a| [vec![0, *a, 7 & *a], vec![1, *a, 0]]).collect()));
        for to in all_scalars() {
            if to == Scalar::Bool || s == Scalar::Bool || to.bits() != s.bits() {
                continue;
            }
            let name = format!("bitcast_{s}_{to}");
            writeln!(
                src,
                "fn {name}({s}) -> {to} {{\nblock0(v0: {s}):\n  v1: {to} = bitcast v0\n  ret v1\n}}"
            )
            .unwrap();
            cases.push((name, vs.iter().map(|a| vec![*a]).collect()));
        }
    }
    run_cases(&src, &cases);
}

#[test]
fn casts_between_every_pair_of_scalars() {
    let mut src = String::new();
    let mut cases: Vec<(String, Vec<Vec<u64>>)> = Vec::new();
    for from in all_scalars() {
        let vs = values(from);
        for to in all_scalars() {
            if !cast_ok(from, to) {
                continue;
            }
            let name = format!("cast_{from}_{to}");
            writeln!(
                src,
                "fn {name}({from}) -> {to} {{\nblock0(v0: {from}):\n  v1: {to} = cast v0\n  ret v1\n}}"
            )
            .unwrap();
            cases.push((name, vs.iter().map(|a| vec![*a]).collect()));
            let name = format!("ccast_{from}_{to}");
            let ty = format!("[{to}; {}]", vs.len());
            let mut body = format!("  v0: {ty} = zero\n");
            let (mut next, mut acc) = (1u32, 0u32);
            for (k, a) in vs.iter().enumerate() {
                let x = const_def(&mut body, &mut next, from, *a);
                writeln!(body, "  v{next}: {to} = cast v{x}").unwrap();
                writeln!(body, "  v{}: {ty} = insert v{acc}, {k}, v{next}", next + 1).unwrap();
                acc = next + 1;
                next += 2;
            }
            writeln!(src, "fn {name}() -> {ty} {{\nblock0:\n{body}  ret v{acc}\n}}").unwrap();
            cases.push((name, vec![vec![]]));
        }
    }
    run_cases(&src, &cases);
}

#[test]
fn division_guards_and_shifts_by_constants() {
    // Divisors and shift amounts known at compile time: LLVM must not fold UB.
    let mut src = String::new();
    let mut cases: Vec<(String, Vec<Vec<u64>>)> = Vec::new();
    for s in INTS {
        let w = s.bits() as i64;
        for op in [BinOp::Div, BinOp::Rem, BinOp::Shl, BinOp::Shr, BinOp::Rotl, BinOp::Rotr] {
            for (k, c) in [0i64, -1, 1, w, w + 3, 2 * w - 1, -w, i64::MIN].into_iter().enumerate() {
                let name = format!("k_{}_{}_{k}", op.name(), s);
                let lit = int_literal(s, c as u64);
                writeln!(src, "fn {name}({s}) -> {s} {{\nblock0(v0: {s}):\n  v1: {s} = const {lit}\n  v2: {s} = {} v0, v1\n  ret v2\n}}", op.name()).unwrap();
                cases.push((name, values(s).into_iter().map(|a| vec![a]).collect()));
            }
        }
    }
    run_cases(&src, &cases);
}

fn run_cases(src: &str, cases: &[(String, Vec<Vec<u64>>)]) {
    let h = Harness::new(src, vec![]);
    let mut checked = 0;
    for (name, argsets) in cases {
        for args in argsets {
            h.check(name, args);
            checked += 1;
        }
    }
    assert!(checked > 0);
}
