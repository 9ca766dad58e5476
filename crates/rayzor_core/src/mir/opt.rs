//! MIR-level optimisation for T2: inlining of small leaf callees, constant
//! folding and dead-code elimination; with a profile (`mir::profile`) also
//! guarded devirtualisation of hot `call_indirect` sites and profile-driven
//! inlining (hot call sites first and with a larger size limit, cold ones never).
//!
//! Every transformation keeps the function's observable behaviour under the
//! reference interpreter exactly: same result bits or same trap kind for every
//! input. Constant folding evaluates with the interpreter's own scalar
//! functions (`interp::eval_*`) and never folds an operation that traps.
//! Inlined calls leave a `depth.check` behind, so the call depth limit is hit
//! at exactly the same point as before.

use super::function::{
    BinOp, Block, BlockCall, Callee, FuncId, Function, Inst, InstData, InstKind, Module, ValueData, ValueDef,
};
use super::interp::{eval_binary, eval_bitcast, eval_cast, eval_cmp, eval_fma, eval_unary};
use super::profile::{BranchCounts, FunctionProfile, IndirectTargets, SiteCounts};
use super::types::{Scalar, Type};
use super::{CmpOp, Value};

/// Callees with at most this many instructions are inlined.
const INLINE_MAX_INSTS: usize = 40;
/// Stop inlining once the function has this many instructions.
const INLINE_BUDGET: usize = 20_000;
/// Rounds of folding and dead-code elimination.
const MAX_ROUNDS: usize = 8;

/// With a profile: callees of at most this many instructions are inlined at hot sites.
const HOT_INLINE_MAX_INSTS: usize = 4 * INLINE_MAX_INSTS;
/// A `call_indirect` site is devirtualised for its most frequent target when
/// that target took at least this share of the site's calls.
const DEVIRT_MIN_SHARE: f64 = 0.5;

/// An optimised copy of function `f` (inlining, constant folding, dead code).
pub fn optimize_function(module: &Module, f: FuncId) -> Function {
    optimize(module, f, module.func(f).clone())
}

/// `func` optimised as a version of function `f` of `module` (e.g. an OSR
/// continuation of it: it is not inlined into itself).
pub fn optimize(module: &Module, f: FuncId, func: Function) -> Function {
    optimize_with_profile(module, f, func, None).0
}

/// An optimised copy of function `f` guided by `profile` (keyed by the
/// instructions of `module.func(f)`), and the profile re-keyed by the
/// instructions of the optimised function, for the code generator. Without a
/// profile this is `optimize_function`.
pub fn optimize_function_with_profile(
    module: &Module,
    f: FuncId,
    profile: Option<&FunctionProfile>,
) -> (Function, Option<FunctionProfile>) {
    optimize_with_profile(module, f, module.func(f).clone(), profile)
}

/// The counts of each instruction of the function being optimised, by index
/// (kept in step with the instructions as passes add, move and drop them).
type Sites = Vec<Option<SiteCounts>>;

fn optimize_with_profile(
    module: &Module,
    f: FuncId,
    mut func: Function,
    profile: Option<&FunctionProfile>,
) -> (Function, Option<FunctionProfile>) {
    if func.blocks.is_empty() {
        return (func, profile.cloned());
    }
    let mut sites: Option<Sites> = profile.map(|p| {
        let mut v: Sites = vec![None; func.insts.len()];
        for (i, c) in &p.sites {
            if let Some(slot) = v.get_mut(i.index()) {
                *slot = Some(c.clone());
            }
        }
        v
    });
    if let Some(sites) = sites.as_mut() {
        devirtualize(module, &mut func, sites);
    }
    inline_calls(module, f, &mut func, sites.as_mut());
    for _ in 0..MAX_ROUNDS {
        let mut changed = fold_constants(&mut func);
        changed |= merge_blocks(&mut func);
        let (next, shrunk, kept) = eliminate_dead_code(&func);
        if let Some(s) = sites.as_mut() {
            *s = kept.iter().map(|old| s.get(old.index()).cloned().flatten()).collect();
        }
        func = next;
        if !(changed || shrunk) {
            break;
        }
    }
    let out = profile.zip(sites).map(|(p, sites)| FunctionProfile {
        entries: p.entries,
        sites: sites.into_iter().enumerate().filter_map(|(i, c)| c.map(|c| (Inst(i as u32), c))).collect(),
    });
    (func, out)
}

// ---------------------------------------------------------------------------
// Guarded devirtualisation
// ---------------------------------------------------------------------------

/// Replace each `call_indirect` of a MIR function pointer whose profile names
/// a dominant target `g` (of the site's signature) by
///
/// ```text
///   %t = func.addr @g ; %hit = cmp eq %callee, %t ; brif %hit, direct, indirect
/// direct:   %r1 = call @g(args)            ; jump cont(%r1)
/// indirect: %r2 = call_indirect %callee(args) ; jump cont(%r2)
/// ```
///
/// The direct call is what the indirect one does for that token (same
/// function, same depth, same traps), so a wrong guess only costs the
/// compare; the inliner may then inline `@g`. The guard and the direct call
/// get counts from the profile, so they are laid out as the hot path.
fn devirtualize(module: &Module, func: &mut Function, sites: &mut Sites) {
    // New blocks are visited too: the continuation holds the rest of a split
    // block, and the fallback call may be guarded again for the next target.
    let mut b = 0;
    while b < func.blocks.len() {
        let mut pos = 0;
        while pos < func.blocks[b].insts.len() {
            let inst = func.blocks[b].insts[pos];
            pos += 1;
            let InstKind::CallIndirect { callee, args } = &func.insts[inst.index()].kind else { continue };
            let Some(SiteCounts::Indirect(t)) = sites.get(inst.index()).cloned().flatten() else { continue };
            let (callee, args) = (*callee, args.clone());
            let Type::FnPtr { sig, host: false } = func.value_type(callee).clone() else { continue };
            let total = super::profile_record::site_total(&SiteCounts::Indirect(t.clone()));
            let Some(&(g, hits)) = t.targets.first() else { continue };
            let fits = module.functions.get(g.index()).is_some_and(|gf| gf.sig == *sig);
            if !fits || hits == 0 || (hits as f64) < DEVIRT_MIN_SHARE * total as f64 {
                continue;
            }
            let rest = IndirectTargets { targets: t.targets[1..].to_vec(), misses: t.misses };
            split_indirect_call(
                func,
                Block(b as u32),
                pos - 1,
                (g, hits, total.saturating_sub(hits)),
                callee,
                &args,
                sites,
            );
            // The fallback keeps the other targets' counts (a guard for the next one, if it dominates them).
            sites[inst.index()] = Some(SiteCounts::Indirect(rest));
            // The rest of the block moved to the continuation (visited later: it is a new block).
            break;
        }
        b += 1;
    }
}

/// The transformation of `devirtualize` at `pos` of `block`.
fn split_indirect_call(
    func: &mut Function,
    block: Block,
    pos: usize,
    (g, hits, others): (FuncId, u64, u64),
    callee: Value,
    args: &[Value],
    sites: &mut Sites,
) {
    let call = func.blocks[block.index()].insts[pos];
    let result = func.insts[call.index()].result;
    let ret_ty = result.map(|r| func.value_type(r).clone());
    let mut tail: Vec<Inst> = func.blocks[block.index()].insts.split_off(pos);
    tail.remove(0); // the call itself moves to the indirect block
    let cont = func.add_block();
    func.blocks[cont.index()].insts = tail;
    if let Some(r) = result {
        func.values[r.index()].def = ValueDef::Param(cont, 0);
        func.blocks[cont.index()].params.push(r);
    }
    let direct = func.add_block();
    let indirect = func.add_block();
    let fp_ty = func.value_type(callee).clone();
    let (_, tok) = func.push_inst(block, InstKind::FuncAddr { callee: Callee::Func(g) }, Some(fp_ty));
    let tok = tok.expect("func.addr defines a value");
    let (_, hit) =
        func.push_inst(block, InstKind::Cmp { op: CmpOp::Eq, lhs: callee, rhs: tok }, Some(Type::BOOL));
    let hit = hit.expect("cmp defines a value");
    let to = |b: Block| BlockCall { block: b, args: vec![] };
    let (guard, _) = func.push_inst(
        block,
        InstKind::Brif { cond: hit, then_dest: to(direct), else_dest: to(indirect) },
        None,
    );
    let (dcall, r1) = func.push_inst(
        direct,
        InstKind::Call { callee: Callee::Func(g), args: args.to_vec() },
        ret_ty.clone(),
    );
    func.push_inst(
        direct,
        InstKind::Jump { dest: BlockCall { block: cont, args: r1.into_iter().collect() } },
        None,
    );
    // The original instruction (and its profile) becomes the fallback call, with a new result.
    let r2 = ret_ty.map(|ty| {
        let v = Value(func.values.len() as u32);
        func.values.push(ValueData { ty, def: ValueDef::Result(call) });
        v
    });
    func.insts[call.index()].result = r2;
    func.blocks[indirect.index()].insts.push(call);
    func.push_inst(
        indirect,
        InstKind::Jump { dest: BlockCall { block: cont, args: r2.into_iter().collect() } },
        None,
    );
    sites.resize(func.insts.len(), None);
    sites[guard.index()] = Some(SiteCounts::Branch(BranchCounts { taken: hits, not_taken: others }));
    sites[dcall.index()] = Some(SiteCounts::Call(hits));
}

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn resolve(alias: &[Option<Value>], mut v: Value) -> Value {
    while let Some(a) = alias.get(v.index()).copied().flatten() {
        v = a;
    }
    v
}

fn apply_aliases(func: &mut Function, alias: &[Option<Value>]) {
    for data in &mut func.insts {
        data.kind.map_operands(|v| resolve(alias, v));
    }
}

/// The scalar type and canonical bits of `v` if a `const` defines it.
fn const_of(func: &Function, v: Value) -> Option<(Scalar, u64)> {
    let vd = func.values.get(v.index())?;
    let ValueDef::Result(i) = vd.def else { return None };
    match func.insts.get(i.index())?.kind {
        InstKind::Const { ty, bits } => {
            let s = vd.ty.scalar()?;
            (s == ty).then_some((s, ty.canon(bits)))
        }
        _ => None,
    }
}

/// May this integer `div`/`rem` trap? Float ones never do.
fn division_may_trap(func: &Function, op: BinOp, rhs: Value) -> bool {
    let Some(s) = func.values.get(rhs.index()).and_then(|vd| vd.ty.scalar()) else { return true };
    if s.is_float() {
        return false;
    }
    match const_of(func, rhs) {
        None => true,
        Some((_, 0)) => true,
        // Signed `MIN / -1` overflows; `MIN % -1` is 0.
        Some((_, c)) => op == BinOp::Div && s.is_signed() && c == s.canon(u64::MAX),
    }
}

/// Must the instruction stay even if its result is unused? (Side effects,
/// possible traps, control flow.)
fn is_root(func: &Function, kind: &InstKind) -> bool {
    use InstKind::*;
    match kind {
        Const { .. }
        | Zero { .. }
        | Unary { .. }
        | Cmp { .. }
        | Select { .. }
        | Fma { .. }
        | Cast { .. }
        | Bitcast { .. }
        | FieldAddr { .. }
        | ElemAddr { .. }
        | ExtractValue { .. }
        | InsertValue { .. }
        | UnionMake { .. }
        | UnionTag { .. }
        | AnyMake { .. }
        | AnyTag { .. }
        | StrConst { .. }
        | FuncAddr { callee: Callee::Func(_) } => false,
        Binary { op: op @ (BinOp::Div | BinOp::Rem), rhs, .. } => division_may_trap(func, *op, *rhs),
        Binary { .. } => false,
        // Loads may fault in the interpreter; an unbound extern's address is an error there.
        Load { .. }
        | Store { .. }
        | Alloc { .. }
        | Free { .. }
        | MemCopy { .. }
        | MemSet { .. }
        | UnionGet { .. }
        | AnyGet { .. }
        | FuncAddr { callee: Callee::Extern(_) }
        | Call { .. }
        | CallIndirect { .. }
        | DepthCheck => true,
        Jump { .. } | Brif { .. } | Switch { .. } | Return { .. } | Trap | Unreachable => true,
    }
}

// ---------------------------------------------------------------------------
// Inlining
// ---------------------------------------------------------------------------

/// Is `g` a small leaf function that can be inlined (at most `max` instructions)?
fn inlinable(g: &Function, max: usize) -> bool {
    let mut count = 0;
    for bd in &g.blocks {
        for &i in &bd.insts {
            count += 1;
            let Some(d) = g.insts.get(i.index()) else { return false };
            // A depth check in the callee runs one frame deeper: not movable.
            if matches!(d.kind, InstKind::Call { .. } | InstKind::CallIndirect { .. } | InstKind::DepthCheck)
            {
                return false;
            }
        }
    }
    !g.blocks.is_empty() && count <= max
}

/// How a profile rates a direct call site.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Heat {
    /// Ran at most 1% as often as the hottest site of the function: never inlined.
    Cold,
    /// No profile for the site: the size rule alone.
    Unknown,
    /// Ran at least as often as the function was entered: inlined first, and
    /// with the larger size limit.
    Hot,
}

fn heat(sites: Option<&Sites>, inst: Inst) -> (Heat, u64) {
    let Some(sites) = sites else { return (Heat::Unknown, 0) };
    let Some(Some(SiteCounts::Call(n))) = sites.get(inst.index()) else { return (Heat::Unknown, 0) };
    let top = sites.iter().flatten().map(super::profile_record::site_total).max().unwrap_or(0);
    if top > 0 && n.saturating_mul(100) <= top {
        (Heat::Cold, *n)
    } else if *n > 0 && n.saturating_mul(4) >= top {
        (Heat::Hot, *n)
    } else {
        (Heat::Unknown, *n)
    }
}

/// Inline direct calls of small leaf functions (other than `self_id`). With
/// a profile, hot sites go first (so the budget goes to them) and may inline
/// larger callees; cold ones are never inlined.
fn inline_calls(
    module: &Module,
    self_id: FuncId,
    func: &mut Function,
    mut sites: Option<&mut Sites>,
) -> bool {
    let mut changed = false;
    // Candidate sites, hottest first (a stable sort: program order otherwise).
    let mut cands: Vec<(Heat, u64, Inst)> = Vec::new();
    for bd in &func.blocks {
        for &inst in &bd.insts {
            if matches!(func.insts[inst.index()].kind, InstKind::Call { callee: Callee::Func(_), .. }) {
                let (h, n) = heat(sites.as_deref(), inst);
                cands.push((h, n, inst));
            }
        }
    }
    cands.sort_by_key(|c| std::cmp::Reverse((c.0, c.1)));
    // The block of each candidate, updated as inlining moves block tails.
    let mut home: std::collections::HashMap<Inst, Block> = std::collections::HashMap::new();
    for (b, bd) in func.blocks.iter().enumerate() {
        for &i in &bd.insts {
            home.insert(i, Block(b as u32));
        }
    }
    for (h, _, inst) in cands {
        if h == Heat::Cold || func.insts.len() >= INLINE_BUDGET {
            continue;
        }
        let data = &func.insts[inst.index()];
        let InstKind::Call { callee: Callee::Func(g), args } = &data.kind else { continue };
        let (g, args, result) = (*g, args.clone(), data.result);
        let max = if h == Heat::Hot { HOT_INLINE_MAX_INSTS } else { INLINE_MAX_INSTS };
        let ok = g != self_id
            && module.functions.get(g.index()).is_some_and(|gf| {
                inlinable(gf, max)
                    && gf.blocks[0].params.len() == args.len()
                    && result.is_some() != gf.sig.ret.is_void()
            });
        if !ok {
            continue;
        }
        let Some(&b) = home.get(&inst) else { continue };
        let Some(pos) = func.blocks[b.index()].insts.iter().position(|i| *i == inst) else { continue };
        let cont = Block(func.blocks.len() as u32); // `inline_one` makes the continuation first
        inline_one(func, b, pos, (g, module.func(g)), &args, result);
        for &i in &func.blocks[cont.index()].insts {
            home.insert(i, cont);
        }
        if let Some(s) = sites.as_deref_mut() {
            s[inst.index()] = None; // now a depth check
            s.resize(func.insts.len(), None);
        }
        changed = true;
    }
    changed
}

/// Replace the call at `pos` of `block` by the body of `g`: the call becomes a
/// `depth.check`, the block jumps to the copy of `g`'s entry, and every `ret`
/// of `g` jumps to a continuation block that takes over the rest of `block`
/// (its parameter is the call's old result value).
fn inline_one(
    func: &mut Function,
    block: Block,
    pos: usize,
    (g_id, g): (FuncId, &Function),
    args: &[Value],
    result: Option<Value>,
) {
    let call = func.blocks[block.index()].insts[pos];
    // A trap in the inlined body (and the depth check standing in for the
    // call, which the callee's prologue used to make) is reported from `g`.
    let origin = Some(g_id);
    let tail: Vec<Inst> = func.blocks[block.index()].insts.split_off(pos + 1);

    // Continuation block: the rest of the block; the call's result becomes its parameter.
    let cont = func.add_block();
    func.blocks[cont.index()].insts = tail;
    if let Some(r) = result {
        func.values[r.index()].def = ValueDef::Param(cont, 0);
        func.blocks[cont.index()].params.push(r);
    }
    func.insts[call.index()] = InstData { kind: InstKind::DepthCheck, result: None, origin: Some(g_id) };

    // Blocks and values of the callee; its entry parameters are the arguments.
    let block_map: Vec<Block> = (0..g.blocks.len()).map(|_| func.add_block()).collect();
    let mut value_map: Vec<Option<Value>> = vec![None; g.values.len()];
    for (p, a) in g.blocks[0].params.iter().zip(args) {
        value_map[p.index()] = Some(*a);
    }
    for (gi, bd) in g.blocks.iter().enumerate().skip(1) {
        for p in &bd.params {
            let v = func.add_block_param(block_map[gi], g.values[p.index()].ty.clone());
            value_map[p.index()] = Some(v);
        }
    }
    // Result values get ids before any instruction is copied, so that uses
    // ahead of their definition in block order (loops) map too.
    let order: Vec<(usize, Inst)> =
        g.blocks.iter().enumerate().flat_map(|(gi, bd)| bd.insts.iter().map(move |&i| (gi, i))).collect();
    let first_inst = func.insts.len();
    for (k, (_, i)) in order.iter().enumerate() {
        if let Some(r) = g.insts[i.index()].result {
            let v = Value(func.values.len() as u32);
            let def = ValueDef::Result(Inst((first_inst + k) as u32));
            func.values.push(ValueData { ty: g.values[r.index()].ty.clone(), def });
            value_map[r.index()] = Some(v);
        }
    }
    let map = |v: Value| value_map[v.index()].expect("callee value is mapped");
    for (gi, i) in order {
        let gd = &g.insts[i.index()];
        let kind = match &gd.kind {
            InstKind::Return { value } => InstKind::Jump {
                dest: BlockCall { block: cont, args: value.iter().map(|v| map(*v)).collect() },
            },
            k => {
                let mut k = k.clone();
                k.map_operands(map);
                for s in k.successors_mut() {
                    s.block = block_map[s.block.index()];
                }
                k
            }
        };
        let new = Inst(func.insts.len() as u32);
        func.insts.push(InstData { kind, result: gd.result.map(map), origin: gd.origin.or(origin) });
        func.blocks[block_map[gi].index()].insts.push(new);
    }
    // The calling block checks the depth, then enters the callee's copy.
    func.push_inst(block, InstKind::Jump { dest: BlockCall { block: block_map[0], args: vec![] } }, None);
}

// ---------------------------------------------------------------------------
// Constant folding
// ---------------------------------------------------------------------------

/// Fold instructions whose operands are constants, branches on constants and
/// selects with a known arm; drop `depth.check`s made redundant by an earlier
/// check or call in the same block. Returns whether anything changed.
fn fold_constants(func: &mut Function) -> bool {
    let mut alias: Vec<Option<Value>> = vec![None; func.values.len()];
    let mut changed = false;
    let checked_in = depth_checked_on_entry(func);
    for b in func.reverse_postorder() {
        let mut depth_checked = checked_in[b.index()];
        let mut drop: Vec<Inst> = Vec::new();
        for k in 0..func.blocks[b.index()].insts.len() {
            let inst = func.blocks[b.index()].insts[k];
            let mut kind = func.insts[inst.index()].kind.clone();
            kind.map_operands(|v| resolve(&alias, v));
            let result = func.insts[inst.index()].result;
            let folded: Option<(Scalar, Result<u64, _>)> = match &kind {
                InstKind::Binary { op, lhs, rhs } => match (const_of(func, *lhs), const_of(func, *rhs)) {
                    (Some((s, a)), Some((_, c))) => Some((s, eval_binary(*op, s, a, c))),
                    _ => None,
                },
                InstKind::Unary { op, arg } => const_of(func, *arg).map(|(s, a)| (s, eval_unary(*op, s, a))),
                InstKind::Fma { a, b, c } => {
                    match (const_of(func, *a), const_of(func, *b), const_of(func, *c)) {
                        (Some((s, x)), Some((_, y)), Some((_, z))) => Some((s, eval_fma(s, x, y, z))),
                        _ => None,
                    }
                }
                InstKind::Cmp { op, lhs, rhs } => match (const_of(func, *lhs), const_of(func, *rhs)) {
                    (Some((s, a)), Some((_, c))) => Some((Scalar::Bool, eval_cmp(*op, s, a, c))),
                    _ => None,
                },
                InstKind::Cast { to, arg } => const_of(func, *arg).map(|(s, a)| (*to, eval_cast(s, *to, a))),
                InstKind::Bitcast { to, arg } => {
                    const_of(func, *arg).map(|(_, a)| (*to, eval_bitcast(*to, a)))
                }
                _ => None,
            };
            let mut new_kind = None;
            if let (None, Some(r), Some(v)) = (&folded, result, identity_operand(func, &kind)) {
                alias[r.index()] = Some(v);
                changed = true;
            }
            if let (Some((ty, Ok(bits))), Some(r)) = (folded, result) {
                // Only when the result is exactly a constant of that type.
                if ty.canon(bits) == bits && func.values[r.index()].ty == Type::Scalar(ty) {
                    new_kind = Some(InstKind::Const { ty, bits });
                }
            }
            match &kind {
                InstKind::Select { cond, if_true, if_false } => {
                    let pick = if if_true == if_false {
                        Some(*if_true)
                    } else {
                        const_of(func, *cond).map(|(_, c)| if c & 1 != 0 { *if_true } else { *if_false })
                    };
                    if let (Some(v), Some(r)) = (pick, result) {
                        alias[r.index()] = Some(v);
                        changed = true;
                    }
                }
                InstKind::Brif { cond, then_dest, else_dest } => {
                    if let Some((_, c)) = const_of(func, *cond) {
                        let dest = if c & 1 != 0 { then_dest.clone() } else { else_dest.clone() };
                        new_kind = Some(InstKind::Jump { dest });
                    } else if then_dest == else_dest {
                        new_kind = Some(InstKind::Jump { dest: then_dest.clone() });
                    }
                }
                InstKind::Switch { value, cases, default } => {
                    if let Some((_, v)) = const_of(func, *value) {
                        let dest = cases.iter().find(|(c, _)| *c == v).map(|(_, bc)| bc).unwrap_or(default);
                        new_kind = Some(InstKind::Jump { dest: dest.clone() });
                    }
                }
                InstKind::DepthCheck => {
                    // The depth is fixed within a frame: a second check cannot trap.
                    if depth_checked {
                        drop.push(inst);
                        changed = true;
                    }
                    depth_checked = true;
                }
                InstKind::Call { callee: Callee::Func(_), .. } => depth_checked = true,
                _ => {}
            }
            if let Some(nk) = new_kind {
                changed = true;
                kind = nk;
            }
            func.insts[inst.index()].kind = kind;
        }
        if !drop.is_empty() {
            func.blocks[b.index()].insts.retain(|i| !drop.contains(i));
        }
    }
    apply_aliases(func, &alias);
    changed
}

/// `x` for integer `x + 0`, `x - 0`, `x * 1`, `x / 1`, `x | 0`, `x ^ 0`,
/// `x & -1`, shifts and rotates by 0 (and the commuted forms): the result is
/// exactly the canonical bits of `x`.
fn identity_operand(func: &Function, kind: &InstKind) -> Option<Value> {
    let InstKind::Binary { op, lhs, rhs } = kind else { return None };
    let s = func.values.get(lhs.index())?.ty.scalar()?;
    if !s.is_int() {
        return None;
    }
    let all = s.canon(u64::MAX);
    let unit = |c: u64| match op {
        BinOp::Add | BinOp::Or | BinOp::Xor => c == 0,
        BinOp::Mul => c == 1,
        BinOp::And => c == all,
        _ => false,
    };
    if let Some((_, c)) = const_of(func, *rhs) {
        let right_unit = match op {
            BinOp::Sub | BinOp::Shl | BinOp::Shr | BinOp::Rotl | BinOp::Rotr => c == 0,
            BinOp::Div => c == 1,
            _ => unit(c),
        };
        if right_unit {
            return Some(*lhs);
        }
    }
    match const_of(func, *lhs) {
        Some((_, c)) if unit(c) => Some(*rhs),
        _ => None,
    }
}

/// For each block: is the call depth certainly checked (by a `depth.check`
/// or a call of a module function) on every path from the entry to it?
fn depth_checked_on_entry(func: &Function) -> Vec<bool> {
    let order = func.reverse_postorder();
    let nb = func.blocks.len();
    let checks = |b: Block| {
        func.blocks[b.index()].insts.iter().any(|i| {
            matches!(
                func.insts[i.index()].kind,
                InstKind::DepthCheck | InstKind::Call { callee: Callee::Func(_), .. }
            )
        })
    };
    let local: Vec<bool> = (0..nb).map(|b| checks(Block(b as u32))).collect();
    // A must-analysis: start optimistic, the entry false, and iterate down.
    let mut in_: Vec<bool> = vec![true; nb];
    in_[0] = false;
    let preds = func.predecessors();
    let mut reachable = vec![false; nb];
    for b in &order {
        reachable[b.index()] = true;
    }
    loop {
        let mut changed = false;
        for &b in order.iter().skip(1) {
            let v = preds[b.index()]
                .iter()
                .filter(|p| reachable[p.index()])
                .all(|p| in_[p.index()] || local[p.index()]);
            if v != in_[b.index()] {
                in_[b.index()] = v;
                changed = true;
            }
        }
        if !changed {
            return in_;
        }
    }
}

// ---------------------------------------------------------------------------
// Block merging
// ---------------------------------------------------------------------------

/// Merge a block into its predecessor when that predecessor is its only one
/// and ends in a `jump` to it; the block's parameters become the jump's
/// arguments. Returns whether anything changed.
fn merge_blocks(func: &mut Function) -> bool {
    let nb = func.blocks.len();
    let mut preds: Vec<Vec<Block>> = func.predecessors();
    // Only edges from reachable blocks count.
    let order = func.reverse_postorder();
    let mut reachable = vec![false; nb];
    for b in &order {
        reachable[b.index()] = true;
    }
    for p in preds.iter_mut() {
        p.retain(|b| reachable[b.index()]);
    }
    let mut alias: Vec<Option<Value>> = vec![None; func.values.len()];
    let mut changed = false;
    for a in order {
        while let Some(&last) = func.blocks[a.index()].insts.last() {
            let InstKind::Jump { dest } = &func.insts[last.index()].kind else { break };
            let b = dest.block;
            if b == a || b.index() == 0 || b.index() >= nb || preds[b.index()].as_slice() != [a] {
                break;
            }
            let args = dest.args.clone();
            let params = std::mem::take(&mut func.blocks[b.index()].params);
            if params.len() != args.len() {
                func.blocks[b.index()].params = params;
                break;
            }
            for (p, v) in params.iter().zip(&args) {
                alias[p.index()] = Some(*v);
            }
            // Keep the (now unreachable) block's parameter list consistent with value defs.
            func.blocks[b.index()].params = params;
            let moved = std::mem::take(&mut func.blocks[b.index()].insts);
            func.blocks[a.index()].insts.pop();
            func.blocks[a.index()].insts.extend(moved);
            preds[b.index()].clear();
            if let Some(t) = func.terminator(a) {
                for s in t.successors().iter().map(|c| c.block).collect::<Vec<_>>() {
                    for p in preds[s.index()].iter_mut() {
                        if *p == b {
                            *p = a;
                        }
                    }
                }
            }
            changed = true;
        }
    }
    apply_aliases(func, &alias);
    changed
}

// ---------------------------------------------------------------------------
// Dead-code elimination
// ---------------------------------------------------------------------------

/// Remove unreachable blocks, pure instructions whose results are unused and
/// block parameters (except the entry's) that nothing uses, rebuilding the
/// function compactly. Returns the new function, whether it shrank, and the
/// old instruction each new one is (by new index).
fn eliminate_dead_code(func: &Function) -> (Function, bool, Vec<Inst>) {
    let nb = func.blocks.len();
    let nv = func.values.len();
    let ni = func.insts.len();
    let order = func.reverse_postorder();
    let mut reachable = vec![false; nb];
    for b in &order {
        reachable[b.index()] = true;
    }

    // Edges into each block: (terminator, successor index).
    let mut in_edges: Vec<Vec<(Inst, usize)>> = vec![Vec::new(); nb];
    for &b in &order {
        if let Some(&last) = func.blocks[b.index()].insts.last() {
            for (k, s) in func.insts[last.index()].kind.successors().iter().enumerate() {
                in_edges[s.block.index()].push((last, k));
            }
        }
    }

    let mut live_val = vec![false; nv];
    let mut live_inst = vec![false; ni];
    let mut work: Vec<Value> = Vec::new();
    for &b in &order {
        for &i in &func.blocks[b.index()].insts {
            let kind = &func.insts[i.index()].kind;
            if !is_root(func, kind) {
                continue;
            }
            live_inst[i.index()] = true;
            match kind {
                // Branch arguments are live only if their parameter is.
                InstKind::Jump { .. } => {}
                InstKind::Brif { cond, .. } => work.push(*cond),
                InstKind::Switch { value, .. } => work.push(*value),
                k => k.for_each_operand(|v| work.push(v)),
            }
        }
    }
    for &p in &func.blocks[0].params {
        work.push(p);
    }
    while let Some(v) = work.pop() {
        if live_val[v.index()] {
            continue;
        }
        live_val[v.index()] = true;
        match func.values[v.index()].def {
            ValueDef::Result(i) => {
                if !live_inst[i.index()] {
                    live_inst[i.index()] = true;
                    func.insts[i.index()].kind.for_each_operand(|o| work.push(o));
                }
            }
            ValueDef::Param(b, j) => {
                for &(t, k) in &in_edges[b.index()] {
                    if let Some(s) = func.insts[t.index()].kind.successor(k) {
                        if let Some(&a) = s.args.get(j as usize) {
                            work.push(a);
                        }
                    }
                }
            }
        }
    }

    // Rebuild: new ids for reachable blocks, live parameters and live instructions.
    let mut block_map: Vec<Option<Block>> = vec![None; nb];
    let mut nblocks = 0u32;
    for b in 0..nb {
        if reachable[b] {
            block_map[b] = Some(Block(nblocks));
            nblocks += 1;
        }
    }
    let mut out = Function {
        name: func.name.clone(),
        sig: func.sig.clone(),
        blocks: Vec::with_capacity(nblocks as usize),
        insts: Vec::new(),
        values: Vec::new(),
    };
    let mut value_map: Vec<Option<Value>> = vec![None; nv];
    let mut kept: Vec<Inst> = Vec::new();
    for (b, bd) in func.blocks.iter().enumerate() {
        let Some(nbk) = block_map[b] else { continue };
        let mut nbd = super::function::BlockData::default();
        for &p in &bd.params {
            if b == 0 || live_val[p.index()] {
                let v = Value(out.values.len() as u32);
                out.values.push(ValueData {
                    ty: func.values[p.index()].ty.clone(),
                    def: ValueDef::Param(nbk, nbd.params.len() as u32),
                });
                nbd.params.push(v);
                value_map[p.index()] = Some(v);
            }
        }
        for &i in &bd.insts {
            if !live_inst[i.index()] {
                continue;
            }
            let ni = Inst((kept.len()) as u32);
            kept.push(i);
            if let Some(r) = func.insts[i.index()].result {
                let v = Value(out.values.len() as u32);
                out.values
                    .push(ValueData { ty: func.values[r.index()].ty.clone(), def: ValueDef::Result(ni) });
                value_map[r.index()] = Some(v);
            }
            nbd.insts.push(ni);
        }
        out.blocks.push(nbd);
    }
    for &i in &kept {
        let old = &func.insts[i.index()];
        let mut kind = old.kind.clone();
        for s in kind.successors_mut() {
            let params = &func.blocks[s.block.index()].params;
            let args = std::mem::take(&mut s.args);
            s.args = args
                .into_iter()
                .zip(params)
                .filter(|(_, p)| s.block.index() == 0 || live_val[p.index()])
                .map(|(a, _)| a)
                .collect();
            s.block = block_map[s.block.index()].expect("branch to a reachable block");
        }
        kind.map_operands(|v| value_map[v.index()].expect("operand of a live instruction is live"));
        out.insts.push(InstData {
            kind,
            result: old.result.and_then(|r| value_map[r.index()]),
            origin: old.origin,
        });
    }
    let shrunk = out.insts.len() < count_listed(func) || out.values.len() < nv || out.blocks.len() < nb;
    (out, shrunk, kept)
}

fn count_listed(func: &Function) -> usize {
    func.blocks.iter().map(|b| b.insts.len()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mir::function::{TrapKind, MAX_CALL_DEPTH};
    use crate::mir::interp::{Interpreter, RunError};
    use crate::mir::text::{parse_module, print_function};
    use crate::mir::verify::verify_module;

    /// The module with function `name` replaced by its optimised version (verified).
    fn optimized(m: &Module, name: &str) -> Module {
        let id = m.func_by_name(name).unwrap();
        let mut m2 = m.clone();
        m2.functions[id.index()] = optimize_function(m, id);
        if let Err(e) = verify_module(&m2) {
            panic!(
                "optimised '{name}' does not verify: {e}\n{}",
                print_function(&m2, &m2.functions[id.index()])
            );
        }
        m2
    }

    fn run(m: &Module, name: &str, args: &[u64]) -> Result<Vec<u64>, TrapKind> {
        match Interpreter::new(m).call(m.func_by_name(name).unwrap(), args) {
            Ok(r) => Ok(r),
            Err(RunError::Trap(t)) => Err(t.kind),
            Err(e) => panic!("'{name}'({args:?}): {e:?}"),
        }
    }

    fn kinds(m: &Module, name: &str) -> Vec<InstKind> {
        let f = m.func(m.func_by_name(name).unwrap());
        f.blocks.iter().flat_map(|b| b.insts.iter().map(|i| f.insts[i.index()].kind.clone())).collect()
    }

    fn count(m: &Module, name: &str, pred: impl Fn(&InstKind) -> bool) -> usize {
        kinds(m, name).iter().filter(|k| pred(k)).count()
    }

    fn is_call(k: &InstKind) -> bool {
        matches!(k, InstKind::Call { .. })
    }

    /// Interpreter(original) == interpreter(optimised) on every input.
    fn same(m: &Module, name: &str, inputs: &[Vec<u64>]) -> Module {
        let m2 = optimized(m, name);
        for args in inputs {
            assert_eq!(run(m, name, args), run(&m2, name, args), "'{name}'{args:?}");
        }
        m2
    }

    fn ints(xs: &[i64]) -> Vec<u64> {
        xs.iter().map(|x| *x as u64).collect()
    }

    /// Also a run-test file, so every tier runs it (`T2` through this pass).
    const FIB: &str = include_str!("../../../../tests/mir/opt_fib_leaf.mir");

    #[test]
    fn fib_with_leaf_helper() {
        let m = parse_module(FIB).unwrap();
        let inputs: Vec<Vec<u64>> = (-2..20).map(|n| ints(&[n])).collect();
        let m2 = same(&m, "fib", &inputs);
        // add3 is inlined, the recursive calls stay.
        assert_eq!(count(&m2, "fib", is_call), 2);
        // The recursive calls just before it already checked the depth of this frame.
        assert_eq!(count(&m2, "fib", |k| matches!(k, InstKind::DepthCheck)), 0);
        assert_eq!(run(&m2, "fib", &[20]), Ok(vec![6765]));
    }

    /// Also a run-test file, so every tier runs it (`T2` through this pass).
    const LOOP: &str = include_str!("../../../../tests/mir/opt_loop_leaves.mir");

    #[test]
    fn loop_calling_leaf_helpers() {
        let m = parse_module(LOOP).unwrap();
        let inputs: Vec<Vec<u64>> = [-3, 0, 1, 2, 7, 50, 1000].iter().map(|n| ints(&[*n])).collect();
        let m2 = same(&m, "looper", &inputs);
        assert_eq!(count(&m2, "looper", is_call), 0);
        // The first check dominates the second.
        assert_eq!(count(&m2, "looper", |k| matches!(k, InstKind::DepthCheck)), 1);
    }

    /// Also a run-test file, so every tier runs it (`T2` through this pass).
    const TRAPPY: &str = include_str!("../../../../tests/mir/opt_traps.mir");

    #[test]
    fn traps_are_kept() {
        let m = parse_module(TRAPPY).unwrap();
        let pairs = [(7, 2), (7, 0), (0, 0), (-7, 2), (i32::MIN as i64, -1), (i32::MIN as i64, 1), (5, -1)];
        let inputs: Vec<Vec<u64>> = pairs.iter().map(|(a, b)| ints(&[*a, *b])).collect();
        for name in ["caller", "unused"] {
            let m2 = same(&m, name, &inputs);
            assert_eq!(count(&m2, name, is_call), 0, "{name}");
            assert_eq!(run(&m2, name, &ints(&[1, 0])), Err(TrapKind::DivisionByZero));
            assert_eq!(run(&m2, name, &ints(&[i32::MIN as i64, -1])), Err(TrapKind::IntegerOverflow));
        }
        for (name, kind) in [
            ("const_div", TrapKind::DivisionByZero),
            ("const_overflow", TrapKind::IntegerOverflow),
            ("const_rem_unused", TrapKind::DivisionByZero),
        ] {
            let m2 = same(&m, name, &[vec![]]);
            assert_eq!(run(&m2, name, &[]), Err(kind), "{name}");
            assert!(count(&m2, name, |k| matches!(k, InstKind::Binary { .. })) >= 1, "{name}");
        }
        // `caller` (not a leaf) is not inlined; the call into it still traps.
        let m2 = same(&m, "const_call", &[vec![]]);
        assert_eq!(run(&m2, "const_call", &[]), Err(TrapKind::DivisionByZero));
        assert_eq!(count(&m2, "const_call", is_call), 1);
    }

    /// Also a run-test file, so every tier runs it (`T2` through this pass).
    const DEPTH: &str = include_str!("../../../../tests/mir/opt_depth.mir");

    #[test]
    fn call_depth_stays_exact() {
        let m = parse_module(DEPTH).unwrap();
        let max = MAX_CALL_DEPTH as u64;
        let inputs: Vec<Vec<u64>> =
            [1, 2, 5, max - 2, max - 1, max, max + 1].iter().map(|n| vec![*n]).collect();
        // depth(n) uses n frames and its leaf calls one more.
        assert_eq!(run(&m, "depth", &[max - 1]), Ok(vec![max - 1 + 100]));
        assert_eq!(run(&m, "depth", &[max]), Err(TrapKind::StackOverflow));
        let m2 = same(&m, "depth", &inputs);
        assert_eq!(count(&m2, "depth", is_call), 1);
        assert_eq!(run(&m2, "depth", &[max]), Err(TrapKind::StackOverflow));
        assert_eq!(run(&m2, "depth", &[max - 1]), Ok(vec![max - 1 + 100]));
    }

    #[test]
    fn depth_check_text_roundtrip() {
        let src = "fn f() -> void {\nblock0:\n  depth.check\n  ret\n}\n";
        let m = parse_module(src).unwrap();
        verify_module(&m).unwrap();
        assert_eq!(kinds(&m, "f")[0], InstKind::DepthCheck);
        assert_eq!(format!("{m}").trim(), src.trim());
        assert_eq!(run(&m, "f", &[]), Ok(vec![]));
    }

    const FOLD: &str = include_str!("../../../../tests/mir/opt_fold.mir");

    const DEAD: &str = r#"
fn dead(ptr, i64) -> i64 {
block0(v0: ptr, v1: i64):
  v2: i64 = mul v1, v1
  v3: i64 = const 3
  v4: i64 = div v1, v3
  v5: i64 = div v3, v1
  v6: f64 = const 1.0
  v7: f64 = const 0.0
  v8: f64 = div v6, v7
  v9: i64 = load v0
  v10: bool = eq v2, v4
  ret v1
}
"#;

    #[test]
    fn constants_fold_and_dead_code_goes() {
        let m = parse_module(FOLD).unwrap();
        let m2 = same(&m, "folded", &[vec![]]);
        assert_eq!(run(&m2, "folded", &[]), Ok(vec![112]));
        let f = m2.func(m2.func_by_name("folded").unwrap());
        assert_eq!(f.blocks.len(), 1, "{}", print_function(&m2, f));
        assert_eq!(
            kinds(&m2, "folded"),
            vec![InstKind::Const { ty: Scalar::I64, bits: 112 }, InstKind::Return { value: Some(Value(0)) }]
        );

        // Pure unused values go; the division that may trap and the load stay.
        let m = parse_module(DEAD).unwrap();
        let m2 = optimized(&m, "dead");
        let ks = kinds(&m2, "dead");
        assert_eq!(ks.len(), 4, "{}", print_function(&m2, m2.func(m2.func_by_name("dead").unwrap())));
        assert!(matches!(ks[1], InstKind::Binary { op: BinOp::Div, .. }));
        assert!(matches!(ks[2], InstKind::Load { .. }));
        let mut buf = [0u64; 1];
        let p = buf.as_mut_ptr() as u64;
        assert_eq!(run(&m2, "dead", &[p, 0]), Err(TrapKind::DivisionByZero));
        assert_eq!(run(&m2, "dead", &[p, 5]), Ok(vec![5]));
        assert_eq!(run(&m, "dead", &[p, 5]), Ok(vec![5]));
    }

    /// Random small programs: folding must agree with the interpreter bit for bit.
    #[test]
    fn random_programs_agree() {
        use crate::mir::function::{CmpOp, UnOp};
        use crate::mir::types::Signature;
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rnd = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let tys = [
            Scalar::I8,
            Scalar::U8,
            Scalar::I16,
            Scalar::I32,
            Scalar::U32,
            Scalar::I64,
            Scalar::U64,
            Scalar::F32,
            Scalar::F64,
        ];
        let consts: [u64; 10] = [
            0,
            1,
            u64::MAX,
            2,
            0x80,
            0x8000_0000,
            0x7fff_ffff_ffff_ffff,
            0x3ff0_0000_0000_0000,
            0x7ff8_0000_0000_0000,
            0xbf80_0000,
        ];
        for round in 0..400 {
            let s = tys[rnd(tys.len() as u64) as usize];
            let t = Type::Scalar(s);
            let sig = Signature::new(vec![t.clone(), t.clone()], t.clone());
            let mut m = Module::new();
            let mut h = Function::new("helper", sig.clone());
            let (p0, p1) = (h.blocks[0].params[0], h.blocks[0].params[1]);
            let op = BinOp::ALL[rnd(BinOp::ALL.len() as u64) as usize];
            let op = if op.accepts(s) { op } else { BinOp::Add };
            let r = h.push_inst(Block(0), InstKind::Binary { op, lhs: p0, rhs: p1 }, Some(t.clone())).1;
            h.push_inst(Block(0), InstKind::Return { value: r }, None);
            m.functions.push(h);

            let mut f = Function::new("f", sig.clone());
            let mut vals = f.blocks[0].params.clone();
            for _ in 0..14 {
                let mut pick = || vals[rnd(vals.len() as u64) as usize];
                let (a, b, x, y) = (pick(), pick(), pick(), pick());
                let (kind, ty) = match rnd(7) {
                    0..=2 => (InstKind::Const { ty: s, bits: s.canon(consts[rnd(10) as usize]) }, t.clone()),
                    3 => {
                        let op = BinOp::ALL[rnd(BinOp::ALL.len() as u64) as usize];
                        let op = if op.accepts(s) { op } else { BinOp::Sub };
                        (InstKind::Binary { op, lhs: a, rhs: b }, t.clone())
                    }
                    4 => {
                        let op = UnOp::ALL[rnd(UnOp::ALL.len() as u64) as usize];
                        let op = if op.accepts(s) { op } else { UnOp::Neg };
                        (InstKind::Unary { op, arg: a }, t.clone())
                    }
                    5 => {
                        let op = CmpOp::ALL[rnd(6) as usize];
                        let c =
                            f.push_inst(Block(0), InstKind::Cmp { op, lhs: a, rhs: b }, Some(Type::BOOL)).1;
                        (InstKind::Select { cond: c.unwrap(), if_true: x, if_false: y }, t.clone())
                    }
                    _ => (InstKind::Call { callee: Callee::Func(FuncId(0)), args: vec![a, b] }, t.clone()),
                };
                let v = f.push_inst(Block(0), kind, Some(ty)).1.unwrap();
                // Round trips through casts to a random type and back.
                let v = if rnd(4) == 0 {
                    let to = tys[rnd(tys.len() as u64) as usize];
                    let w = f
                        .push_inst(Block(0), InstKind::Cast { to, arg: v }, Some(Type::Scalar(to)))
                        .1
                        .unwrap();
                    f.push_inst(Block(0), InstKind::Cast { to: s, arg: w }, Some(t.clone())).1.unwrap()
                } else {
                    v
                };
                vals.push(v);
            }
            let last = *vals.last().unwrap();
            f.push_inst(Block(0), InstKind::Return { value: Some(last) }, None);
            m.functions.push(f);
            let text = crate::mir::text::print_module(&m);
            verify_module(&m).unwrap_or_else(|e| panic!("{e}\n{text}"));
            let inputs: Vec<Vec<u64>> = (0..6)
                .map(|_| vec![s.canon(consts[rnd(10) as usize]), s.canon(consts[rnd(10) as usize])])
                .collect();
            let m2 = optimized(&m, "f");
            for args in &inputs {
                assert_eq!(run(&m, "f", args), run(&m2, "f", args), "round {round} {args:?}\n{text}");
            }
            assert_eq!(count(&m2, "f", is_call), 0, "round {round}");
        }
    }
}
