//! Which loops the top tier strip-mines, and the loop versioning that lets a
//! loop with a run-time step be strip-mined in its counted form.
//!
//! The top tier counts no back-edges, so its loops poll for interrupts.
//! Polling at every back-edge costs up to 9x on tight loops; a strip-mined
//! loop polls once per chunk of iterations instead (`Lower::strip_brif`):
//! - the *counted* form (HotSpot's): the header compares its induction
//!   variable with a chunk limit instead of the loop's bound, so the inner
//!   loop keeps a single exit on a single compare and LLVM unrolls and
//!   vectorises it as without polls;
//! - the *budget* form for other pure-header loops: the header also counts a
//!   budget down, one more add and test per iteration.
//!
//! The counted form needs a step the chunk bound can rely on: positive and at
//! most `MAX_STEP`. A constant step is checked here; a loop-invariant step
//! known only at run time (`j += i` in a sieve) is made checkable by
//! `version_strided_loops`: the loop is cloned, a guard before it takes the
//! original when the step is in range and the clone (budget form) otherwise,
//! and the original's step is rewritten to a value that is the step whenever
//! the guard passes and provably in range always (`bounded_step`).

use crate::mir::osr;
use crate::mir::{
    BinOp, Block, BlockCall, CmpOp, Function, Inst, InstData, InstKind, Scalar, Type, Value, ValueData,
    ValueDef,
};

/// MIR instructions a strip-mined loop runs between two interrupt polls, at
/// most: its budget is this divided by the loop's size (inner loops and calls
/// poll on their own), rounded down to a power of two (a multiple of every
/// vector width times unroll factor, so a vectorised loop's remainder is empty
/// but in the last chunk) and at most `STRIP_MAX_ITERATIONS`. 2^20 instructions
/// take well under 50 ms even at one instruction per nanosecond.
pub const STRIP_WORK: u64 = 1 << 20;
/// The largest budget: a chunk's own cost (the poll, a vectorised loop's set-up
/// and reduction) is then a fraction of a percent of even the smallest loop's.
pub const STRIP_MAX_ITERATIONS: u64 = 1 << 16;
/// The largest step of a counted loop's induction variable (constant, or
/// bounded by `bounded_step`).
pub const MAX_STEP: u64 = 1 << 16;
/// Loops of at most this many instructions are versioned (the clone doubles them).
const VERSION_MAX_INSTS: usize = 256;

/// A loop the top tier strip-mines.
#[derive(Clone, Copy, Debug)]
pub struct StripLoop {
    pub header: Block,
    /// Whether the header's `brif` stays in the loop on its then-edge.
    pub stay_then: bool,
    /// Iterations per poll (from `STRIP_WORK`), a power of two.
    pub iterations: u64,
    pub counted: Option<Counted>,
}

/// A strip-mined counted loop, HotSpot's shape: the header's `brif` stays in
/// the loop on `cmp: lt i, n` (`i` the header's parameter leaf `leaf`, 64-bit,
/// `n` defined outside the loop, `cmp` used by the `brif` only), and every
/// back-edge passes `i + step`. The header compares `i` with a limit
/// `m = min(n, i + iterations * step)` instead, set on entry and at each
/// chunk's end.
#[derive(Clone, Copy, Debug)]
pub struct Counted {
    pub cmp: Value,
    pub leaf: usize,
    pub n: Value,
    pub signed: bool,
    /// `None`: constant steps in 1..=MAX_STEP (the limit moves by
    /// `iterations`); `Some(s)`: every back-edge adds `s`, a value defined
    /// outside the loop that `bounded_step` puts in 1..=MAX_STEP (the limit
    /// moves by `iterations * s`, so a chunk is `iterations` iterations).
    pub step: Option<Value>,
}

/// The natural loop of header `h`: the blocks that reach one of its
/// back-edges' sources without passing `h`; and whether only `h` is entered
/// from outside it.
fn natural_loop(func: &Function, preds: &[Vec<Block>], rpo: &[usize], h: Block) -> (Vec<bool>, bool) {
    let reachable = |b: Block| rpo[b.index()] != usize::MAX;
    let mut body = vec![false; func.blocks.len()];
    body[h.index()] = true;
    let mut stack: Vec<Block> =
        preds[h.index()].iter().copied().filter(|&p| reachable(p) && osr::is_back_edge(rpo, p, h)).collect();
    while let Some(b) = stack.pop() {
        if !std::mem::replace(&mut body[b.index()], true) {
            stack.extend(preds[b.index()].iter().copied().filter(|&p| reachable(p)));
        }
    }
    let single_entry = func
        .block_ids()
        .filter(|b| body[b.index()] && *b != h)
        .all(|b| preds[b.index()].iter().all(|p| !reachable(*p) || body[p.index()]));
    (body, single_entry)
}

/// Whether header `h`'s instructions but its terminator are pure and cannot
/// trap (re-running them when a budget is used up changes nothing).
fn pure_header(func: &Function, h: Block) -> bool {
    let insts = &func.blocks[h.index()].insts;
    insts.split_last().is_some_and(|(_, rest)| {
        rest.iter().all(|&i| {
            matches!(
                func.inst(i).kind,
                InstKind::Const { .. }
                    | InstKind::Zero { .. }
                    | InstKind::Unary { .. }
                    | InstKind::Cmp { .. }
                    | InstKind::Fma { .. }
                    | InstKind::Select { .. }
                    | InstKind::Cast { .. }
                    | InstKind::Bitcast { .. }
                    | InstKind::FieldAddr { .. }
                    | InstKind::ElemAddr { .. }
                    | InstKind::ExtractValue { .. }
                    | InstKind::InsertValue { .. }
            ) || matches!(func.inst(i).kind, InstKind::Binary { op, .. } if !matches!(op, BinOp::Div | BinOp::Rem))
        })
    })
}

/// The header's exit `brif` if the loop qualifies for strip-mining: (cond,
/// whether it stays in the loop on the then-edge).
fn strip_exit(func: &Function, h: Block, body: &[bool], single_entry: bool) -> Option<(Value, bool)> {
    let last = *func.blocks[h.index()].insts.last()?;
    let InstKind::Brif { cond, then_dest, else_dest } = &func.inst(last).kind else { return None };
    let (t, e) = (body[then_dest.block.index()], body[else_dest.block.index()]);
    (single_entry && pure_header(func, h) && t != e).then_some((*cond, t))
}

/// The loops the top tier strip-mines (`Lower::strip_brif`). A loop
/// qualifies when its header is not the entry block, only the header is entered
/// from outside the loop (so the header dominates every back-edge, which uses
/// the budget it defines), the header's terminator is a `brif` with one edge in
/// the loop and one out, and its other instructions are pure and cannot trap.
/// Other loops poll at every back-edge.
pub fn strip_mined_loops(func: &Function, rpo: &[usize]) -> Vec<StripLoop> {
    let preds = func.predecessors();
    let mut out = Vec::new();
    for h in osr::loop_headers(func) {
        if h == Block(0) {
            continue;
        }
        let (body, single_entry) = natural_loop(func, &preds, rpo, h);
        let Some((cond, stay_then)) = strip_exit(func, h, &body, single_entry) else { continue };
        let size: usize =
            func.block_ids().filter(|b| body[b.index()]).map(|b| func.blocks[b.index()].insts.len()).sum();
        let per = (STRIP_WORK / size.max(1) as u64).clamp(1, STRIP_MAX_ITERATIONS);
        let counted = if stay_then { counted_loop(func, &preds, h, cond, &body) } else { None };
        out.push(StripLoop { header: h, stay_then, iterations: 1 << per.ilog2(), counted });
    }
    out
}

/// The shape of a counted loop's exit test `cond` in header `h`, whatever its
/// steps: (the `lt` instruction's operands `i`, `n`, the index of `i` among
/// the header's parameters, its scalar), when `i` is a 64-bit integer
/// parameter of `h`, `n` is defined outside the loop and `cond` has no other use.
fn exit_test(func: &Function, h: Block, cond: Value, body: &[bool]) -> Option<(Value, Value, usize, Scalar)> {
    let hb = &func.blocks[h.index()];
    let &cmp_inst = hb.insts.iter().find(|&&i| func.inst(i).result == Some(cond))?;
    let InstKind::Cmp { op: CmpOp::Lt, lhs, rhs } = func.inst(cmp_inst).kind else { return None };
    let param = hb.params.iter().position(|p| *p == lhs)?;
    let s = func.value_type(lhs).scalar()?;
    if !s.is_int() || s.bits() != 64 || !defined_outside(func, rhs, body) {
        return None;
    }
    let mut uses = 0;
    for b in func.block_ids() {
        for &i in &func.blocks[b.index()].insts {
            func.inst(i).kind.for_each_operand(|v| uses += (v == cond) as usize);
        }
    }
    (uses == 1).then_some((lhs, rhs, param, s))
}

/// Whether `v` is defined outside the loop `body` (then, used in the loop, it
/// dominates the header).
fn defined_outside(func: &Function, v: Value, body: &[bool]) -> bool {
    match func.values[v.index()].def {
        ValueDef::Param(b, _) => !body[b.index()],
        ValueDef::Result(i) => {
            func.block_ids().any(|b| !body[b.index()] && func.blocks[b.index()].insts.contains(&i))
        }
    }
}

/// The steps of induction variable `i` (parameter `param` of header `h`): for
/// every back-edge, the `add` instruction that computes the value it passes
/// (`i + k` or `k + i`) and its step operand `k`; `None` if some back-edge
/// passes anything else.
fn induction_steps(
    func: &Function,
    preds: &[Vec<Block>],
    h: Block,
    i: Value,
    param: usize,
    body: &[bool],
) -> Option<Vec<(Inst, Value)>> {
    let mut steps = Vec::new();
    for &p in preds[h.index()].iter().filter(|p| body[p.index()]) {
        for c in func.terminator(p)?.successors().into_iter().filter(|c| c.block == h) {
            let v = *c.args.get(param)?;
            let ValueDef::Result(add) = func.values[v.index()].def else { return None };
            let InstKind::Binary { op: BinOp::Add, lhs: a, rhs: b } = func.inst(add).kind else {
                return None;
            };
            let k = if same_value(func, preds, h, a, i, 8) {
                b
            } else if same_value(func, preds, h, b, i, 8) {
                a
            } else {
                return None;
            };
            steps.push((add, k));
        }
    }
    Some(steps)
}

/// The constant `v` is, if it is one.
fn constant(func: &Function, v: Value) -> Option<u64> {
    match func.values[v.index()].def {
        ValueDef::Result(i) => match func.inst(i).kind {
            InstKind::Const { bits, .. } => Some(bits),
            _ => None,
        },
        ValueDef::Param(..) => None,
    }
}

/// Whether `v` is `(x & c1) + c2` with constants `c2 >= 1` and
/// `c1 + c2 <= MAX_STEP` (`c1` non-negative): then 1 <= v <= MAX_STEP for any `x`.
fn bounded_step(func: &Function, v: Value) -> bool {
    let ValueDef::Result(add) = func.values[v.index()].def else { return false };
    let InstKind::Binary { op: BinOp::Add, lhs, rhs } = func.inst(add).kind else { return false };
    let Some(c2) = constant(func, rhs) else { return false };
    let ValueDef::Result(and) = func.values[lhs.index()].def else { return false };
    let InstKind::Binary { op: BinOp::And, rhs: mask, .. } = func.inst(and).kind else { return false };
    // (Checked: `add x, -1` is `c2 = u64::MAX`, which a wrapping sum would let through.)
    constant(func, mask).is_some_and(|c1| c2 >= 1 && c1.checked_add(c2).is_some_and(|t| t <= MAX_STEP))
}

/// Whether header `h`'s exit test `cond` makes its loop a counted one (`Counted`).
fn counted_loop(
    func: &Function,
    preds: &[Vec<Block>],
    h: Block,
    cond: Value,
    body: &[bool],
) -> Option<Counted> {
    let (i, n, param, s) = exit_test(func, h, cond, body)?;
    let steps = induction_steps(func, preds, h, i, param, body)?;
    let in_range = |k: Value| constant(func, k).is_some_and(|c| (1..=MAX_STEP).contains(&c));
    let step = if steps.iter().all(|&(_, k)| in_range(k)) {
        None
    } else {
        // One run-time step, the same on every back-edge (so that a chunk of
        // `iterations * k` is `iterations` iterations), bounded and invariant.
        let k = uniform_step(&steps)?;
        (bounded_step(func, k) && defined_outside(func, k, body)).then_some(k)?;
        Some(k)
    };
    let leaf = func.blocks[h.index()].params[..param]
        .iter()
        .map(|p| crate::mir::layout::leaf_count(func.value_type(*p)))
        .sum();
    Some(Counted { cmp: cond, leaf, n, signed: s.is_signed(), step })
}

/// The value every back-edge adds to the induction variable, if they all add the same one.
fn uniform_step(steps: &[(Inst, Value)]) -> Option<Value> {
    let k = steps.first()?.1;
    steps.iter().all(|&(_, k2)| k2 == k).then_some(k)
}

/// Whether `v` is `i` (a parameter of header `h`) or a block parameter that
/// every edge into its block (none of them `h`'s back-edges) sets to such a value:
/// the builder passes the header's parameters on to the body's blocks.
fn same_value(func: &Function, preds: &[Vec<Block>], h: Block, v: Value, i: Value, depth: u32) -> bool {
    if v == i {
        return true;
    }
    let ValueDef::Param(b, k) = func.values[v.index()].def else { return false };
    if b == h || depth == 0 || preds[b.index()].is_empty() {
        return false;
    }
    preds[b.index()].iter().all(|&p| {
        func.terminator(p).is_some_and(|t| {
            t.successors()
                .iter()
                .filter(|c| c.block == b)
                .all(|c| c.args.get(k as usize).is_some_and(|&a| same_value(func, preds, h, a, i, depth - 1)))
        })
    })
}

/// A strip-minable loop whose counted form only lacks a checkable step.
struct Strided {
    header: Block,
    body: Vec<bool>,
    /// The loop-invariant step.
    step: Value,
    /// The `add`s of the back-edges (their step operand is rewritten).
    adds: Vec<Inst>,
}

/// `func` with every innermost loop that would be a counted strip-mined loop
/// but for its run-time step versioned (see the module doc):
///
/// ```text
/// guard(params):  %m = sub %s, 1 ; %ok = lt (bitcast.u64 %m), MAX_STEP
///                 %s2 = add (and %m, MAX_STEP - 1), 1   ; == %s when %ok
///                 brif %ok, header(params), header'(params)
/// ```
///
/// The original loop adds `%s2` (counted form), its clone `header'...`
/// adds `%s` (budget form). Both are the same code for every step the guard
/// sends them, so results are unchanged. `None` when no loop qualifies.
/// Loops are versioned only when no value defined in them is used outside
/// them (the clone defines its own copies, and nothing would merge them).
pub fn version_strided_loops(func: &Function) -> Option<Function> {
    let rpo = osr::rpo_index(func);
    let preds = func.predecessors();
    let headers = osr::loop_headers(func);
    let mut found = Vec::new();
    for &h in &headers {
        if h == Block(0) {
            continue;
        }
        let (body, single_entry) = natural_loop(func, &preds, &rpo, h);
        let Some((cond, true)) = strip_exit(func, h, &body, single_entry) else { continue };
        if counted_loop(func, &preds, h, cond, &body).is_some() {
            continue; // counted already
        }
        let innermost = headers.iter().all(|&g| g == h || !body[g.index()]);
        let size: usize =
            func.block_ids().filter(|b| body[b.index()]).map(|b| func.blocks[b.index()].insts.len()).sum();
        if !innermost || size > VERSION_MAX_INSTS || used_outside(func, &body) {
            continue;
        }
        let Some((i, _, param, s)) = exit_test(func, h, cond, &body) else { continue };
        let Some(steps) = induction_steps(func, &preds, h, i, param, &body) else { continue };
        let Some(k) = uniform_step(&steps) else { continue };
        if func.value_type(k).scalar() == Some(s) && defined_outside(func, k, &body) {
            found.push(Strided { header: h, body, step: k, adds: steps.iter().map(|&(a, _)| a).collect() });
        }
    }
    if found.is_empty() {
        return None;
    }
    let mut out = func.clone();
    for l in &found {
        version(&mut out, l);
    }
    Some(out)
}

/// Whether a value defined in the loop `body` is used outside it.
fn used_outside(func: &Function, body: &[bool]) -> bool {
    let mut inside = vec![false; func.values.len()];
    for b in func.block_ids().filter(|b| body[b.index()]) {
        let bd = &func.blocks[b.index()];
        for p in &bd.params {
            inside[p.index()] = true;
        }
        for &i in &bd.insts {
            if let Some(r) = func.inst(i).result {
                inside[r.index()] = true;
            }
        }
    }
    let mut used = false;
    for b in func.block_ids().filter(|b| !body[b.index()]) {
        for &i in &func.blocks[b.index()].insts {
            func.inst(i).kind.for_each_operand(|v| used |= inside[v.index()]);
        }
    }
    used
}

/// Version loop `l` of `func` (its blocks and values are still those of the
/// analysis: versioning appends blocks, values and instructions only).
fn version(func: &mut Function, l: &Strided) {
    let s = func.value_type(l.step).scalar().expect("a scalar step");
    // (`l.body` covers the blocks of the analysis; loops versioned before added others.)
    let in_loop = |b: Block| b.index() < l.body.len() && l.body[b.index()];
    let blocks: Vec<Block> = func.block_ids().filter(|&b| in_loop(b)).collect();
    // The clone: blocks, parameters, then results (ids first, so that uses
    // ahead of their definition in block order map too).
    let mut block_map: Vec<Option<Block>> = vec![None; func.blocks.len()];
    for &b in &blocks {
        block_map[b.index()] = Some(func.add_block());
    }
    let mut value_map: Vec<Option<Value>> = vec![None; func.values.len()];
    for &b in &blocks {
        let nb = block_map[b.index()].expect("cloned");
        for p in func.blocks[b.index()].params.clone() {
            let ty = func.value_type(p).clone();
            value_map[p.index()] = Some(func.add_block_param(nb, ty));
        }
    }
    let order: Vec<(Block, Inst)> =
        blocks.iter().flat_map(|&b| func.blocks[b.index()].insts.iter().map(move |&i| (b, i))).collect();
    let first = func.insts.len();
    for (k, &(_, i)) in order.iter().enumerate() {
        if let Some(r) = func.inst(i).result {
            let v = Value(func.values.len() as u32);
            let ty = func.value_type(r).clone();
            func.values.push(ValueData { ty, def: ValueDef::Result(Inst((first + k) as u32)) });
            value_map[r.index()] = Some(v);
        }
    }
    for (b, i) in order {
        let InstData { kind, result, origin } = func.inst(i).clone();
        let mut kind = kind;
        kind.map_operands(|v| value_map.get(v.index()).copied().flatten().unwrap_or(v));
        for c in kind.successors_mut() {
            c.block = block_map[c.block.index()].unwrap_or(c.block);
        }
        let result = result.map(|r| value_map[r.index()].expect("mapped"));
        let new = Inst(func.insts.len() as u32);
        func.insts.push(InstData { kind, result, origin });
        let nb = block_map[b.index()].expect("cloned");
        func.blocks[nb.index()].insts.push(new);
    }
    // The guard, entered instead of the header from outside the loop.
    let guard = func.add_block();
    let params: Vec<Value> = func.blocks[l.header.index()]
        .params
        .clone()
        .into_iter()
        .map(|p| {
            let ty = func.value_type(p).clone();
            func.add_block_param(guard, ty)
        })
        .collect();
    // Every edge from outside the loop, including from loops versioned before (an
    // earlier loop's clone may exit straight into this header).
    for b in func.block_ids().filter(|&b| !in_loop(b) && b != guard) {
        let Some(&last) = func.blocks[b.index()].insts.last() else { continue };
        if !func.inst(last).kind.is_terminator() {
            continue;
        }
        for c in func.insts[last.index()].kind.successors_mut() {
            if c.block == l.header {
                c.block = guard;
            }
        }
    }
    let ty = Some(Type::Scalar(s));
    let konst = |func: &mut Function, bits: u64| {
        func.push_inst(guard, InstKind::Const { ty: s, bits }, ty.clone()).1.expect("a value")
    };
    let one = konst(func, 1);
    let m = func.push_inst(guard, InstKind::Binary { op: BinOp::Sub, lhs: l.step, rhs: one }, ty.clone()).1;
    let m = m.expect("a value");
    let um =
        func.push_inst(guard, InstKind::Bitcast { to: Scalar::U64, arg: m }, Some(Type::Scalar(Scalar::U64)));
    let um = um.1.expect("a value");
    let max = func.push_inst(
        guard,
        InstKind::Const { ty: Scalar::U64, bits: MAX_STEP },
        Some(Type::Scalar(Scalar::U64)),
    );
    let max = max.1.expect("a value");
    let ok = func.push_inst(
        guard,
        InstKind::Cmp { op: CmpOp::Lt, lhs: um, rhs: max },
        Some(Type::Scalar(Scalar::Bool)),
    );
    let ok = ok.1.expect("a value");
    let mask = konst(func, MAX_STEP - 1);
    let low = func.push_inst(guard, InstKind::Binary { op: BinOp::And, lhs: m, rhs: mask }, ty.clone()).1;
    let bounded =
        func.push_inst(guard, InstKind::Binary { op: BinOp::Add, lhs: low.expect("a value"), rhs: one }, ty);
    let bounded = bounded.1.expect("a value");
    let clone = block_map[l.header.index()].expect("cloned");
    let then_dest = BlockCall { block: l.header, args: params.clone() };
    let else_dest = BlockCall { block: clone, args: params };
    func.push_inst(guard, InstKind::Brif { cond: ok, then_dest, else_dest }, None);
    // The original loop steps by the bounded value.
    for &add in &l.adds {
        if let InstKind::Binary { lhs, rhs, .. } = &mut func.insts[add.index()].kind {
            for v in [lhs, rhs] {
                if *v == l.step {
                    *v = bounded;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mir::text::parse_module;

    /// The loops `strip_mined_loops` picks in `f`: (header, counted, run-time step).
    fn strips_of(f: &Function) -> Vec<(u32, bool, bool)> {
        let rpo = osr::rpo_index(f);
        strip_mined_loops(f, &rpo)
            .into_iter()
            .map(|l| (l.header.0, l.counted.is_some(), l.counted.is_some_and(|c| c.step.is_some())))
            .collect()
    }

    fn strips(src: &str, name: &str) -> Vec<(u32, bool, bool)> {
        let m = parse_module(src).expect("parses");
        strips_of(m.func(m.func_by_name(name).expect("defined")))
    }

    const LOOPS: &str = "
fn counted(i64) -> i64 {
block0(v0: i64):
  v1: i64 = const 0
  jump block1(v1, v1)
block1(v2: i64, v3: i64):
  v4: bool = lt v2, v0
  brif v4, block2(v2), block3
block2(v5: i64):
  v6: i64 = const 1
  v7: i64 = add v5, v6
  jump block1(v7, v5)
block3:
  ret v3
}
fn variable_step(i64, i64) -> i64 {
block0(v0: i64, v1: i64):
  v2: i64 = const 0
  jump block1(v2)
block1(v3: i64):
  v4: bool = lt v3, v0
  brif v4, block2, block3
block2:
  v5: i64 = add v3, v1
  jump block1(v5)
block3:
  ret v3
}
fn divides_in_header(i64) -> i64 {
block0(v0: i64):
  v1: i64 = const 1
  jump block1(v1)
block1(v2: i64):
  v3: i64 = div v0, v2
  v4: i64 = const 0
  v5: bool = ne v3, v4
  brif v5, block2, block3
block2:
  v6: i64 = add v2, v1
  jump block1(v6)
block3:
  ret v2
}
fn no_exit_in_header(i64) -> i64 {
block0(v0: i64):
  jump block1(v0)
block1(v1: i64):
  v2: i64 = add v1, v0
  jump block1(v2)
}
fn strided(i64, i64) -> i64 {
block0(v0: i64, v1: i64):
  v2: i64 = const 0
  jump block1(v2, v2)
block1(v3: i64, v4: i64):
  v5: bool = lt v3, v0
  brif v5, block2(v3, v4), block3(v4)
block2(v6: i64, v7: i64):
  v8: i64 = add v7, v6
  v9: i64 = add v6, v1
  jump block1(v9, v8)
block3(v10: i64):
  ret v10
}
";

    /// Two loops stepping by `v1`, the first exiting straight into the second's header.
    const TWO: &str = "
fn two(i64, i64) -> i64 {
block0(v0: i64, v1: i64):
  v2: i64 = const 0
  jump block1(v2, v2)
block1(v3: i64, v4: i64):
  v5: bool = lt v3, v0
  brif v5, block2(v3, v4), block3(v2, v4)
block2(v6: i64, v7: i64):
  v8: i64 = add v7, v6
  v9: i64 = add v6, v1
  jump block1(v9, v8)
block3(v10: i64, v11: i64):
  v12: bool = lt v10, v0
  brif v12, block4(v10, v11), block5(v11)
block4(v13: i64, v14: i64):
  v15: i64 = add v14, v13
  v16: i64 = add v13, v1
  jump block3(v16, v15)
block5(v17: i64):
  ret v17
}
fn minus_one(i64, i64) -> i64 {
block0(v0: i64, v1: i64):
  v2: i64 = const 1
  v3: i64 = and v1, v2
  v4: i64 = const -1
  v5: i64 = add v3, v4
  v6: i64 = const 0
  jump block1(v6)
block1(v7: i64):
  v8: bool = lt v7, v0
  brif v8, block2, block3
block2:
  v9: i64 = add v7, v5
  jump block1(v9)
block3:
  ret v6
}
";

    #[test]
    fn loops_versioned_one_after_another_each_keep_their_guard() {
        use crate::mir::interp::Interpreter;
        let m = parse_module(TWO).expect("parses");
        let id = m.func_by_name("two").expect("defined");
        let mut versioned = m.clone();
        versioned.functions[id.index()] = version_strided_loops(m.func(id)).expect("versioned");
        crate::mir::verify::verify_module(&versioned).expect("the versioned function verifies");
        let counted = strips_of(versioned.func(id)).iter().filter(|l| l.1).count();
        assert_eq!(counted, 2, "{:?}", strips_of(versioned.func(id)));
        let cases: [(i64, i64); 6] =
            [(100, 3), (1000, 65536), (1000, 65537), (5, -(1 << 62)), (0, 7), (10, 1 << 32)];
        for (n, s) in cases {
            let args = [n as u64, s as u64];
            let want = Interpreter::new(&m).call(id, &args).expect("runs");
            assert_eq!(Interpreter::new(&versioned).call(id, &args).expect("runs"), want, "n={n} s={s}");
        }
    }

    #[test]
    fn a_step_that_only_looks_bounded_is_not() {
        // (x & 1) + (-1) is -1 or 0: the mask and the addend must not sum with wrap-around.
        assert_eq!(strips(TWO, "minus_one"), vec![(1, false, false)]);
    }

    #[test]
    fn strip_mining_picks_counted_and_pure_header_loops_only() {
        assert_eq!(strips(LOOPS, "counted"), vec![(1, true, false)]);
        // A step that is not a constant could be <= 0: the budget form, not a limit.
        assert_eq!(strips(LOOPS, "variable_step"), vec![(1, false, false)]);
        // Re-running a header that may trap is not allowed; no exit test: poll every back-edge.
        assert_eq!(strips(LOOPS, "divides_in_header"), vec![]);
        assert_eq!(strips(LOOPS, "no_exit_in_header"), vec![]);
    }

    #[test]
    fn a_run_time_step_is_versioned_into_a_counted_loop_and_a_budget_one() {
        use crate::mir::interp::Interpreter;
        let m = parse_module(LOOPS).expect("parses");
        let id = m.func_by_name("strided").expect("defined");
        let f = m.func(id);
        assert_eq!(strips_of(f), vec![(1, false, false)]);
        let mut versioned = m.clone();
        versioned.functions[id.index()] = version_strided_loops(f).expect("versioned");
        crate::mir::verify::verify_module(&versioned).expect("the versioned function verifies");
        // The original loop, now counted with a bounded run-time step; its clone, budget form.
        let got = strips_of(versioned.func(id));
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got.contains(&(1, true, true)), "{got:?}");
        assert!(got.iter().any(|&(h, counted, _)| h != 1 && !counted), "{got:?}");
        // Same results for steps in range (both ends), above it, negative (wrapping
        // past i64::MIN), and for zero-trip loops.
        let cases: [(i64, i64); 8] = [
            (100, 3),
            (100, 1),
            (1000, 65536),
            (1000, 65537),
            (5, -(1 << 62)),
            (0, 7),
            (-5, 2),
            (1 << 40, 1 << 39),
        ];
        for (n, s) in cases {
            let args = [n as u64, s as u64];
            let want = Interpreter::new(&m).call(id, &args).expect("runs");
            assert_eq!(Interpreter::new(&versioned).call(id, &args).expect("runs"), want, "n={n} s={s}");
        }
        // Not versioned: already counted; a loop value used after the loop (no SSA repair here).
        for name in ["counted", "variable_step"] {
            assert!(
                version_strided_loops(m.func(m.func_by_name(name).expect("defined"))).is_none(),
                "{name}"
            );
        }
    }
}
