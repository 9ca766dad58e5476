//! Cost of one host-to-JIT call of an identity function, without Python.
use rayzor_core::mir::text::parse_module;
use rayzor_core::runtime::Jit;
use rayzor_core::runtime::Tier;
use std::time::Instant;

fn main() {
    let m = parse_module("fn ident(i64) -> i64 {\nblock0(v0: i64):\n  ret v0\n}\n").unwrap();
    for rate in [1u64, 16] {
        let jit = Jit::new(m.clone(), vec![], rate).unwrap();
        let f = jit.func_id("ident").unwrap();
        jit.compile(f, Tier::T1).unwrap();
        let mut rets = [0u64; 1];
        let n = 2_000_000u64;
        let mut best = f64::MAX;
        for _ in 0..5 {
            let t = Instant::now();
            for i in 0..n {
                jit.call(f, &[i], &mut rets).unwrap();
            }
            best = best.min(t.elapsed().as_nanos() as f64 / n as f64);
        }
        let t = Instant::now();
        for _ in 0..n {
            drop(crossbeam_epoch::pin());
        }
        let pin = t.elapsed().as_nanos() as f64 / n as f64;
        println!("sample_rate {rate}: Jit::call {best:.1} ns; crossbeam pin alone {pin:.1} ns");
    }
}
