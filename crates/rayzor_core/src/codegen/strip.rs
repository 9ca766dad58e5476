//! Which loops the top tier strip-mines, the loop versioning that lets a
//! loop with a run-time step be strip-mined in its counted form, and the
//! short-trip clones that need no polls at all.
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
//!
//! Most counted loops run fewer iterations per entry than a chunk (a matrix
//! row, a pixel's escape loop): `version_short_trips` gives each innermost one
//! a clone without polls, taken when the trip fits in a chunk and cannot wrap,
//! so the loop LLVM optimises is the loop as written. Only innermost loops are
//! strip-mined; enclosing loops poll at every back-edge, so between two polls
//! at most one chunk (or one short trip) of each inner loop runs.

use crate::mir::osr;
use crate::mir::{
    BinOp, Block, BlockCall, CmpOp, Function, Inst, InstData, InstKind, Scalar, Type, Value, ValueData,
    ValueDef,
};

/// MIR instructions a strip-mined loop runs between two interrupt polls, at
/// most: its budget is this divided by the loop's size (it contains no loop,
/// and calls poll on their own) and by the number of strip-mined loops of its
/// function (several may run one after another between two polls, a chunk or a
/// short trip each), rounded down to a power of two (a multiple of every
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
/// The largest bound `n` of a counted loop (`i64` if `signed`, else `u64`)
/// below which `i + step` cannot wrap while `i < n`: `MAX - MAX_STEP`.
pub fn no_wrap_bound(signed: bool) -> u64 {
    let max = if signed { i64::MAX as u64 } else { u64::MAX };
    max - MAX_STEP
}

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
/// qualifies when its header is not the entry block, it contains no other
/// loop (an enclosing loop polls at every back-edge, so between two polls at
/// most one chunk of each inner loop runs), only the header is entered from
/// outside the loop (so the header dominates every back-edge, which uses the
/// budget it defines), the header's terminator is a `brif` with one edge in
/// the loop and one out, and its other instructions are pure and cannot trap.
/// Headers in `unpolled` (short-trip clones, `plan_loops`) are left alone;
/// other loops poll at every back-edge.
pub fn strip_mined_loops(func: &Function, rpo: &[usize], unpolled: &[Block]) -> Vec<StripLoop> {
    let preds = func.predecessors();
    let headers = osr::loop_headers(func);
    let mut out = Vec::new();
    for &h in &headers {
        if h == Block(0) || unpolled.contains(&h) {
            continue;
        }
        let (body, single_entry) = natural_loop(func, &preds, rpo, h);
        if !innermost(&headers, h, &body) {
            continue;
        }
        let Some((cond, stay_then)) = strip_exit(func, h, &body, single_entry) else { continue };
        let counted = if stay_then { counted_loop(func, &preds, h, cond, &body) } else { None };
        out.push((StripLoop { header: h, stay_then, iterations: 0, counted }, loop_size(func, &body)));
    }
    // Loops one after another (none contains another) each run a chunk between
    // two polls, so they share `STRIP_WORK`.
    let shares = out.len() as u64;
    out.into_iter().map(|(l, size)| StripLoop { iterations: chunk_iterations(size, shares), ..l }).collect()
}

/// Whether the loop `body` of header `h` contains no other loop header.
fn innermost(headers: &[Block], h: Block, body: &[bool]) -> bool {
    headers.iter().all(|&g| g == h || !body[g.index()])
}

/// The instructions of loop `body`.
fn loop_size(func: &Function, body: &[bool]) -> usize {
    func.block_ids().filter(|b| body[b.index()]).map(|b| func.blocks[b.index()].insts.len()).sum()
}

/// The iterations of a chunk of a loop of `size` instructions, one of
/// `shares` strip-mined loops of its function (`STRIP_WORK`), a power of two.
fn chunk_iterations(size: usize, shares: u64) -> u64 {
    let per =
        (STRIP_WORK / (size.max(1) as u64).saturating_mul(shares.max(1))).clamp(1, STRIP_MAX_ITERATIONS);
    1 << per.ilog2()
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
        if !innermost(&headers, h, &body)
            || loop_size(func, &body) > VERSION_MAX_INSTS
            || used_outside(func, &body)
        {
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

/// Clone the loop `body` of header `h` in `func` and put a guard block in
/// front of it: every edge from outside the loop into `h` goes to the guard
/// instead, whose parameters are `h`'s. Returns the guard, its parameters and
/// the clone's header; the caller fills the guard (its instructions, then a
/// branch to `h` or the clone with the guard's parameters). `body` covers the
/// blocks of the analysis: loops versioned before appended blocks, values and
/// instructions only.
fn clone_with_guard(func: &mut Function, h: Block, body: &[bool]) -> (Block, Vec<Value>, Block) {
    let in_loop = |b: Block| b.index() < body.len() && body[b.index()];
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
    let params: Vec<Value> = func.blocks[h.index()]
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
            if c.block == h {
                c.block = guard;
            }
        }
    }
    (guard, params, block_map[h.index()].expect("cloned"))
}

/// Append `kind` (of result type `ty`) to `block`, returning its result.
fn push(func: &mut Function, block: Block, kind: InstKind, ty: Scalar) -> Value {
    func.push_inst(block, kind, Some(Type::Scalar(ty))).1.expect("a value")
}

/// Version loop `l` of `func` (`version_strided_loops`).
fn version(func: &mut Function, l: &Strided) {
    let s = func.value_type(l.step).scalar().expect("a scalar step");
    let (guard, params, clone) = clone_with_guard(func, l.header, &l.body);
    let one = push(func, guard, InstKind::Const { ty: s, bits: 1 }, s);
    let m = push(func, guard, InstKind::Binary { op: BinOp::Sub, lhs: l.step, rhs: one }, s);
    let um = push(func, guard, InstKind::Bitcast { to: Scalar::U64, arg: m }, Scalar::U64);
    let max = push(func, guard, InstKind::Const { ty: Scalar::U64, bits: MAX_STEP }, Scalar::U64);
    let ok = push(func, guard, InstKind::Cmp { op: CmpOp::Lt, lhs: um, rhs: max }, Scalar::Bool);
    let mask = push(func, guard, InstKind::Const { ty: s, bits: MAX_STEP - 1 }, s);
    let low = push(func, guard, InstKind::Binary { op: BinOp::And, lhs: m, rhs: mask }, s);
    let bounded = push(func, guard, InstKind::Binary { op: BinOp::Add, lhs: low, rhs: one }, s);
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

/// The top tier's loops, as `plan_loops` leaves them.
pub struct LoopPlan {
    /// The function to lower, if versioning changed it.
    pub func: Option<Function>,
    /// Headers of short-trip clones: loops whose back-edges do not poll.
    pub unpolled: Vec<Block>,
}

/// Version `func`'s loops for the top tier: loops with a run-time step
/// (`version_strided_loops`), then every innermost counted loop that would be
/// strip-mined gets a short-trip clone (`version_short_trips`).
pub fn plan_loops(func: &Function) -> LoopPlan {
    let strided = version_strided_loops(func);
    let (short, unpolled) = version_short_trips(strided.as_ref().unwrap_or(func));
    LoopPlan { func: short.or(strided), unpolled }
}

/// `func` with every innermost counted loop that `strip_mined_loops` would
/// strip-mine (and that is versionable: at most `VERSION_MAX_INSTS`
/// instructions, no value defined in it used outside it) versioned on its
/// trip count at entry:
///
/// ```text
/// guard(params):  %fits = le n, MAX - MAX_STEP  and  (ge i, n  or  (n - i) <=u span)
///                 brif %fits, header'(params), header(params)
/// ```
///
/// `span` is a chunk (`iterations` units of `i`, or `iterations` steps of a
/// run-time one). A loop that fits runs at most one chunk's iterations and
/// cannot wrap (`i < n <= MAX - MAX_STEP` and every step is at most
/// `MAX_STEP`), so its clone `header'...` needs no polls, and nothing of the
/// strip-mining either: it is the loop as written, which LLVM unrolls and
/// vectorises as without polls. Returns the new function (`None` if no loop
/// qualifies) and the clones' headers.
pub fn version_short_trips(func: &Function) -> (Option<Function>, Vec<Block>) {
    let rpo = osr::rpo_index(func);
    let preds = func.predecessors();
    let mut found = Vec::new();
    for l in strip_mined_loops(func, &rpo, &[]) {
        let Some(ct) = l.counted else { continue };
        let (body, _) = natural_loop(func, &preds, &rpo, l.header);
        let Some((_, _, param, _)) = exit_test(func, l.header, ct.cmp, &body) else { continue };
        if loop_size(func, &body) <= VERSION_MAX_INSTS && !used_outside(func, &body) {
            found.push((l, ct, param, body));
        }
    }
    if found.is_empty() {
        return (None, Vec::new());
    }
    let mut out = func.clone();
    let mut unpolled = Vec::new();
    for (l, ct, param, body) in &found {
        let (guard, params, clone) = clone_with_guard(&mut out, l.header, body);
        let i = params[*param];
        let s = if ct.signed { Scalar::I64 } else { Scalar::U64 };
        let f = &mut out;
        let as_u64 = |f: &mut Function, v: Value| {
            if ct.signed {
                push(f, guard, InstKind::Bitcast { to: Scalar::U64, arg: v }, Scalar::U64)
            } else {
                v
            }
        };
        let top = push(f, guard, InstKind::Const { ty: s, bits: no_wrap_bound(ct.signed) }, s);
        let safe = push(f, guard, InstKind::Cmp { op: CmpOp::Le, lhs: ct.n, rhs: top }, Scalar::Bool);
        let done = push(f, guard, InstKind::Cmp { op: CmpOp::Ge, lhs: i, rhs: ct.n }, Scalar::Bool);
        let rest = push(f, guard, InstKind::Binary { op: BinOp::Sub, lhs: ct.n, rhs: i }, s);
        let rest = as_u64(f, rest);
        let chunk = push(f, guard, InstKind::Const { ty: Scalar::U64, bits: l.iterations }, Scalar::U64);
        let span = match ct.step {
            None => chunk,
            Some(k) => {
                let k = as_u64(f, k);
                push(f, guard, InstKind::Binary { op: BinOp::Mul, lhs: k, rhs: chunk }, Scalar::U64)
            }
        };
        let short = push(f, guard, InstKind::Cmp { op: CmpOp::Le, lhs: rest, rhs: span }, Scalar::Bool);
        let few = push(f, guard, InstKind::Binary { op: BinOp::Or, lhs: done, rhs: short }, Scalar::Bool);
        let fits = push(f, guard, InstKind::Binary { op: BinOp::And, lhs: safe, rhs: few }, Scalar::Bool);
        let then_dest = BlockCall { block: clone, args: params.clone() };
        let else_dest = BlockCall { block: l.header, args: params };
        f.push_inst(guard, InstKind::Brif { cond: fits, then_dest, else_dest }, None);
        unpolled.push(clone);
    }
    (Some(out), unpolled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mir::text::parse_module;

    /// The loops `strip_mined_loops` picks in `f`: (header, counted, run-time step).
    fn strips_of(f: &Function) -> Vec<(u32, bool, bool)> {
        let rpo = osr::rpo_index(f);
        strip_mined_loops(f, &rpo, &[])
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

    /// A counted loop starting at `v1` up to `v0` (signed and unsigned), and a nest.
    const SHORT: &str = "
fn from_to(i64, i64) -> i64 {
block0(v0: i64, v1: i64):
  v2: i64 = const 0
  jump block1(v1, v2)
block1(v3: i64, v4: i64):
  v5: bool = lt v3, v0
  brif v5, block2(v3, v4), block3(v4)
block2(v6: i64, v7: i64):
  v8: i64 = add v7, v6
  v9: i64 = const 3
  v10: i64 = add v6, v9
  jump block1(v10, v8)
block3(v11: i64):
  ret v11
}
fn from_to_u(u64, u64) -> u64 {
block0(v0: u64, v1: u64):
  v2: u64 = const 0
  jump block1(v1, v2)
block1(v3: u64, v4: u64):
  v5: bool = lt v3, v0
  brif v5, block2(v3, v4), block3(v4)
block2(v6: u64, v7: u64):
  v8: u64 = add v7, v6
  v9: u64 = const 1
  v10: u64 = add v6, v9
  jump block1(v10, v8)
block3(v11: u64):
  ret v11
}
fn nest(i64) -> i64 {
block0(v0: i64):
  v1: i64 = const 0
  jump block1(v1, v1)
block1(v2: i64, v3: i64):
  v4: bool = lt v2, v0
  brif v4, block2(v2, v3), block5(v3)
block2(v5: i64, v6: i64):
  jump block3(v1, v6)
block3(v7: i64, v8: i64):
  v9: bool = lt v7, v5
  brif v9, block4(v7, v8), block6(v8)
block4(v10: i64, v11: i64):
  v12: i64 = add v11, v10
  v13: i64 = const 1
  v14: i64 = add v10, v13
  jump block3(v14, v12)
block6(v15: i64):
  v16: i64 = const 1
  v17: i64 = add v5, v16
  jump block1(v17, v15)
block5(v18: i64):
  ret v18
}
";

    #[test]
    fn short_trip_clones_verify_agree_and_are_the_only_unpolled_loops() {
        use crate::mir::interp::Interpreter;
        let m = parse_module(SHORT).expect("parses");
        let max = i64::MAX;
        let signed: &[(i64, i64)] = &[
            (10, 0),
            (0, 10),
            (-5, -5),
            (1 << 20, 0),
            (65536, 0),
            (65537, 0),
            (max - 65536, max - 100),
            (max - 65535, max - 100),
            (max, max - 7),
            (i64::MIN + 5, i64::MIN),
        ];
        let unsigned: &[(u64, u64)] =
            &[(10, 0), (0, 10), (1 << 20, 0), (u64::MAX - 65536, u64::MAX - 90), (u64::MAX, u64::MAX - 3)];
        for name in ["from_to", "from_to_u", "nest"] {
            let id = m.func_by_name(name).expect("defined");
            let plan = plan_loops(m.func(id));
            let f = plan.func.expect("versioned");
            let mut versioned = m.clone();
            versioned.functions[id.index()] = f;
            crate::mir::verify::verify_module(&versioned).expect("the versioned function verifies");
            // One clone per innermost counted loop; strip-mining skips it and, in
            // the nest, the outer loop (it polls at every back-edge).
            assert_eq!(plan.unpolled.len(), 1, "{name}");
            let rpo = osr::rpo_index(versioned.func(id));
            let strips = strip_mined_loops(versioned.func(id), &rpo, &plan.unpolled);
            assert_eq!(strips.len(), 1, "{name}: {strips:?}");
            assert!(strips.iter().all(|l| !plan.unpolled.contains(&l.header)));
            let cases: Vec<[u64; 2]> = match name {
                "from_to" => signed.iter().map(|&(n, i)| [n as u64, i as u64]).collect(),
                "from_to_u" => unsigned.iter().map(|&(n, i)| [n, i]).collect(),
                _ => vec![[0, 0], [1, 0], [300, 0]],
            };
            for args in cases {
                let args = if name == "nest" { vec![args[0]] } else { args.to_vec() };
                let mut want = Interpreter::new(&m);
                want.set_step_limit(Some(1 << 24));
                let mut got = Interpreter::new(&versioned);
                got.set_step_limit(Some(1 << 25));
                let want = want.call(id, &args);
                if let Ok(w) = want {
                    assert_eq!(got.call(id, &args).expect("runs"), w, "{name}{args:?}");
                }
            }
        }
    }

    #[test]
    fn loops_of_one_function_share_the_work_between_two_polls() {
        // However many loops run one after another, their chunks add up to at
        // most STRIP_WORK instructions (each clone runs at most its original's chunk).
        let m = parse_module(&format!("{TWO}{SHORT}{LOOPS}")).expect("parses");
        for f in &m.functions {
            let plan = plan_loops(f);
            let g = plan.func.as_ref().unwrap_or(f);
            let rpo = osr::rpo_index(g);
            let preds = g.predecessors();
            let work: u64 = strip_mined_loops(g, &rpo, &plan.unpolled)
                .iter()
                .map(|l| l.iterations * loop_size(g, &natural_loop(g, &preds, &rpo, l.header).0) as u64)
                .sum();
            assert!(work <= STRIP_WORK, "{}: {work}", f.name);
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
