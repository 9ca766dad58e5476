//! On-stack replacement in MIR: loop headers, the values live at them, and
//! *continuation* functions that resume a function at a loop header.
//!
//! As in OSRKit (D'Elia & Demetrescu, CGO 2016), an OSR entry is an ordinary
//! MIR function, compiled by the ordinary backends: its parameters are the
//! values live at the header (the header's block parameters, then every other
//! value live there, in value order) and its entry jumps to the header. So a
//! frame that has run `k` iterations of a loop can call the continuation with
//! its current values and return the continuation's result as its own.
//!
//! Construction: the continuation keeps the blocks reachable from the header.
//! In it, every block takes the values live into it as extra block
//! parameters (and every branch passes them), so no value is used outside the
//! block that defines it except through parameters: that keeps SSA valid even
//! when the code after an inner loop re-executes the definitions of values the
//! continuation received as parameters (nested loops). Values with no operands
//! and no effects (constants, `zero`, `str.const`, `func.addr`) are not passed
//! but re-emitted in the continuation's entry block.

use super::{Block, Function, InstKind, Signature, Value, ValueDef};
use std::collections::HashMap;

/// The blocks that are targets of back-edges (a successor not after its
/// source in reverse postorder), in block order.
pub fn loop_headers(func: &Function) -> Vec<Block> {
    let rpo = rpo_index(func);
    let mut headers: Vec<Block> = Vec::new();
    for b in func.block_ids() {
        if rpo[b.index()] == usize::MAX {
            continue;
        }
        if let Some(t) = func.terminator(b) {
            for s in t.successors() {
                if is_back_edge(&rpo, b, s.block) && !headers.contains(&s.block) {
                    headers.push(s.block);
                }
            }
        }
    }
    headers.sort();
    headers
}

/// The headers of the outermost loops: loop headers that lie in no other
/// loop's body. OSR points go there (one per loop nest, as HotSpot places OSR
/// entries at the outermost loop): a transfer happens at the next iteration of
/// the outer loop, and the inner loops' code stays exactly as without OSR.
pub fn outermost_loop_headers(func: &Function) -> Vec<Block> {
    let rpo = rpo_index(func);
    let preds = func.predecessors();
    let headers = loop_headers(func);
    // Natural loop bodies: the blocks that reach a back-edge's source without
    // passing through its header.
    let mut inner = vec![false; func.blocks.len()];
    for &h in &headers {
        let mut seen = vec![false; func.blocks.len()];
        seen[h.index()] = true;
        let mut stack: Vec<Block> = preds[h.index()]
            .iter()
            .copied()
            .filter(|p| rpo[p.index()] != usize::MAX && is_back_edge(&rpo, *p, h))
            .collect();
        while let Some(b) = stack.pop() {
            if seen[b.index()] {
                continue;
            }
            seen[b.index()] = true;
            if b != h && headers.contains(&b) {
                inner[b.index()] = true;
            }
            stack.extend(preds[b.index()].iter().copied().filter(|p| rpo[p.index()] != usize::MAX));
        }
    }
    headers.into_iter().filter(|h| !inner[h.index()]).collect()
}

/// Position of each block in reverse postorder (`usize::MAX` if unreachable).
pub fn rpo_index(func: &Function) -> Vec<usize> {
    let mut index = vec![usize::MAX; func.blocks.len()];
    for (i, b) in func.reverse_postorder().into_iter().enumerate() {
        index[b.index()] = i;
    }
    index
}

/// Whether the edge `from -> to` goes backwards (to a loop header).
pub fn is_back_edge(rpo_index: &[usize], from: Block, to: Block) -> bool {
    rpo_index[to.index()] <= rpo_index[from.index()]
}

/// Values defined by an instruction with no operands and no effects: a
/// continuation re-creates them instead of taking them as parameters.
fn rematerializable(kind: &InstKind) -> bool {
    matches!(
        kind,
        InstKind::Const { .. }
            | InstKind::Zero { .. }
            | InstKind::StrConst { .. }
            | InstKind::FuncAddr { .. }
    )
}

/// Which values are live into each block (sorted by value; rematerialisable
/// values are left out, block parameters are defined by their block).
pub struct Liveness {
    live_in: Vec<Vec<Value>>,
}

impl Liveness {
    pub fn new(func: &Function) -> Liveness {
        let n = func.blocks.len();
        let remat: Vec<bool> = func
            .values
            .iter()
            .map(|v| matches!(v.def, ValueDef::Result(i) if rematerializable(&func.inst(i).kind)))
            .collect();
        // The block defining each value (as a parameter or an instruction result).
        let mut def_block = vec![u32::MAX; func.values.len()];
        for b in func.block_ids() {
            let bd = &func.blocks[b.index()];
            for &p in &bd.params {
                def_block[p.index()] = b.0;
            }
            for &i in &bd.insts {
                if let Some(r) = func.inst(i).result {
                    def_block[r.index()] = b.0;
                }
            }
        }
        // Upward-exposed uses of each block: in SSA, a value defined in the block
        // is defined before its uses there.
        let mut gen: Vec<Vec<Value>> = vec![Vec::new(); n];
        for b in func.block_ids() {
            let mut uses = Vec::new();
            for &i in &func.blocks[b.index()].insts {
                func.inst(i).kind.for_each_operand(|v| {
                    if !remat[v.index()] && def_block[v.index()] != b.0 {
                        uses.push(v);
                    }
                });
            }
            uses.sort();
            uses.dedup();
            gen[b.index()] = uses;
        }
        let succs: Vec<Vec<Block>> = func
            .block_ids()
            .map(|b| {
                func.terminator(b)
                    .map(|t| t.successors().iter().map(|c| c.block).collect())
                    .unwrap_or_default()
            })
            .collect();
        let mut post = func.reverse_postorder();
        post.reverse();
        let mut live_in: Vec<Vec<Value>> = gen.clone();
        loop {
            let mut changed = false;
            for &b in &post {
                let mut set = gen[b.index()].clone();
                for s in &succs[b.index()] {
                    set.extend(live_in[s.index()].iter().filter(|v| def_block[v.index()] != b.0));
                }
                set.sort();
                set.dedup();
                if set != live_in[b.index()] {
                    live_in[b.index()] = set;
                    changed = true;
                }
            }
            if !changed {
                return Liveness { live_in };
            }
        }
    }

    /// The values live into `block` (other than its own parameters).
    pub fn live_in(&self, block: Block) -> &[Value] {
        &self.live_in[block.index()]
    }
}

/// The continuation of `func` at loop header `header`: a function taking the
/// header's parameters and then `Liveness::live_in(header)`, which runs `func`
/// from the header on and returns what `func` would.
pub fn continuation(func: &Function, header: Block) -> Function {
    let live = Liveness::new(func);
    let state = live.live_in(header);
    let hdr = &func.blocks[header.index()];
    let params = hdr.params.iter().chain(state).map(|v| func.value_type(*v).clone()).collect();
    let sig = Signature { params, ret: func.sig.ret.clone() };
    let mut c = Function::new(format!("{}$osr{}", func.name, header.0), sig);
    let entry = c.entry();

    // Blocks reachable from the header, each with its live-ins as extra parameters.
    let region = reachable_from(func, header);
    let mut new_block = HashMap::new();
    for &b in &region {
        let nb = c.add_block();
        new_block.insert(b, nb);
    }
    // Rematerialisable values used in the region, re-created in the entry block.
    let mut remat: HashMap<Value, Value> = HashMap::new();
    for &b in &region {
        for &i in &func.blocks[b.index()].insts {
            func.inst(i).kind.for_each_operand(|v| {
                if let ValueDef::Result(d) = func.values[v.index()].def {
                    let kind = &func.inst(d).kind;
                    if rematerializable(kind) && !remat.contains_key(&v) {
                        let (_, r) = c.push_inst(entry, kind.clone(), Some(func.value_type(v).clone()));
                        remat.insert(v, r.expect("a rematerialised instruction defines a value"));
                    }
                }
            });
        }
    }
    for &b in &region {
        let nb = new_block[&b];
        let mut local: HashMap<Value, Value> = HashMap::new();
        for &p in func.blocks[b.index()].params.iter().chain(live.live_in(b)) {
            let np = c.add_block_param(nb, func.value_type(p).clone());
            local.insert(p, np);
        }
        for &i in &func.blocks[b.index()].insts {
            let data = func.inst(i);
            let lookup = |v: Value| local.get(&v).or_else(|| remat.get(&v)).copied().expect("value in scope");
            let mut kind = data.kind.clone();
            kind.map_operands(lookup);
            for call in kind.successors_mut() {
                let extra: Vec<Value> = live.live_in(call.block).iter().map(|v| lookup(*v)).collect();
                call.args.extend(extra);
                call.block = new_block[&call.block];
            }
            let ty = data.result.map(|r| func.value_type(r).clone());
            let (_, r) = c.push_inst(nb, kind, ty);
            if let (Some(old), Some(new)) = (data.result, r) {
                local.insert(old, new);
            }
        }
    }
    let args = c.blocks[entry.index()].params.clone();
    c.push_inst(entry, InstKind::Jump { dest: super::BlockCall { block: new_block[&header], args } }, None);
    c
}

/// The blocks reachable from `start` (itself first), in depth-first preorder.
fn reachable_from(func: &Function, start: Block) -> Vec<Block> {
    let mut seen = vec![false; func.blocks.len()];
    let mut order = Vec::new();
    let mut stack = vec![start];
    seen[start.index()] = true;
    while let Some(b) = stack.pop() {
        order.push(b);
        if let Some(t) = func.terminator(b) {
            for s in t.successors().iter().rev() {
                if !seen[s.block.index()] {
                    seen[s.block.index()] = true;
                    stack.push(s.block);
                }
            }
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mir::interp::Interpreter;
    use crate::mir::text::parse_module;
    use crate::mir::verify::verify_module;
    use crate::mir::{FuncId, Module};

    /// Nested loops: the outer body defines `x` and re-enters the inner loop,
    /// so a continuation at the inner header must take `x` (and `i`) as
    /// parameters and still see their new values on the next outer iteration.
    const NESTED: &str = r#"
fn nest(i64, i64) -> i64 {
block0(v0: i64, v1: i64):
  v2: i64 = const 0
  jump block1(v2, v2)
block1(v3: i64, v4: i64):
  v5: bool = lt v3, v0
  brif v5, block2, block5
block2:
  v6: i64 = const 3
  v7: i64 = mul v3, v6
  jump block3(v2, v4)
block3(v8: i64, v9: i64):
  v10: bool = lt v8, v1
  brif v10, block4, block6
block4:
  v11: i64 = add v9, v7
  v12: i64 = add v11, v8
  v13: i64 = const 1
  v14: i64 = add v8, v13
  jump block3(v14, v12)
block6:
  v15: i64 = const 1
  v16: i64 = add v3, v15
  jump block1(v16, v9)
block5:
  ret v4
}
"#;

    fn with(module: &Module, f: Function) -> (Module, FuncId) {
        let mut m = module.clone();
        m.functions.push(f);
        verify_module(&m).unwrap_or_else(|e| panic!("{e}\n{}", crate::mir::text::print_module(&m)));
        let id = FuncId(m.functions.len() as u32 - 1);
        (m, id)
    }

    #[test]
    fn headers_of_nested_loops() {
        let m = parse_module(NESTED).unwrap();
        assert_eq!(loop_headers(&m.functions[0]), vec![Block(1), Block(3)]);
        assert_eq!(outermost_loop_headers(&m.functions[0]), vec![Block(1)]);
    }

    #[test]
    fn inner_continuation_resumes_the_whole_nest() {
        let m = parse_module(NESTED).unwrap();
        let f = &m.functions[0];
        let live = Liveness::new(f);
        // Live at the inner header besides its params: n, m (v0, v1), i (v3), x = 3i (v7).
        assert_eq!(live.live_in(Block(3)), &[Value(0), Value(1), Value(3), Value(7)]);
        let (m2, c) = with(&m, continuation(f, Block(3)));
        let run = |m: &Module, id: FuncId, args: &[u64]| Interpreter::new(m).call(id, args).unwrap();
        // nest(4, 5) with the frame stopped at the inner header after j = 2 of i = 1:
        // acc there is what nest computed so far. Compute it by running the loop by hand.
        let (n, mm) = (4i64, 5i64);
        let mut acc = 0i64;
        let mut state = None;
        for i in 0..n {
            for j in 0..mm {
                if i == 1 && j == 2 {
                    state = Some((j, acc, i));
                }
                acc += 3 * i + j;
            }
        }
        let (j, acc_at, i) = state.unwrap();
        let whole = run(&m, FuncId(0), &[n as u64, mm as u64]);
        assert_eq!(whole, vec![acc as u64]);
        let resumed = run(&m2, c, &[j as u64, acc_at as u64, n as u64, mm as u64, i as u64, (3 * i) as u64]);
        assert_eq!(resumed, whole);
    }

    #[test]
    fn outer_continuation_takes_only_the_live_values() {
        let m = parse_module(NESTED).unwrap();
        let f = &m.functions[0];
        assert_eq!(Liveness::new(f).live_in(Block(1)), &[Value(0), Value(1)]);
        let (m2, c) = with(&m, continuation(f, Block(1)));
        // From i = 2, acc = 7: the rest of the nest.
        let got = Interpreter::new(&m2).call(c, &[2, 7, 4, 5]).unwrap();
        let want = 7 + (2..4).map(|i| (0..5).map(|j| 3 * i + j).sum::<i64>()).sum::<i64>();
        assert_eq!(got, vec![want as u64]);
    }
}
