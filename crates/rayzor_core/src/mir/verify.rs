//! The MIR verifier.
//!
//! Every tier (interpreter, code generators) assumes that a module accepted
//! here is fully well-formed, so the verifier is thorough and total: it never
//! panics and never recurses without bound, whatever `Module` value it is
//! given. Indices are checked before they are used, and type nesting is
//! checked with a bounded walk before any recursive function (`size_of`,
//! `leaf_count`, `Display`, `==`, `clone`) touches a type.
//!
//! Checks run in a fixed order: module-level checks (names, signatures), then
//! each function in order: block structure, value definitions, value types,
//! entry parameters, control flow (targets, reachability), then every
//! instruction in block order.

use crate::error::count;
use crate::mir::layout::{leaf_count, size_of, MAX_TYPE_DEPTH, MAX_TYPE_SIZE, MAX_VALUE_LEAVES};
use crate::mir::{
    Block, Callee, CmpOp, Function, Inst, InstKind, Module, Scalar, Signature, Type, Value, ValueDef,
};
use std::collections::{HashMap, HashSet};
use std::fmt::{self, Write as _};

/// Most integer-class (integer, bool, pointer) parameters an extern may take.
pub const MAX_EXTERN_INT_PARAMS: usize = 6;
/// Most float parameters an extern may take.
pub const MAX_EXTERN_FLOAT_PARAMS: usize = 8;

/// Verify `m`, returning the first error in the verifier's fixed order.
pub fn verify_module(m: &Module) -> Result<(), VerifyError> {
    match Verifier::new(m, true).run().into_iter().next() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Verify `m`, returning every error found (empty if the module is valid).
///
/// Once a function has a structural error (bad blocks, value definitions,
/// value types or control flow), its later checks are skipped, since they
/// would only report consequences of it.
pub fn verify_all(m: &Module) -> Vec<VerifyError> {
    Verifier::new(m, false).run()
}

// ---------------------------------------------------------------------------
// Bounded type helpers
// ---------------------------------------------------------------------------

/// `t.depth() <= budget`, without recursing deeper than `budget + 1` frames.
fn depth_le(t: &Type, budget: usize) -> bool {
    match t {
        Type::Array(e, _) | Type::Slice(e) => budget >= 1 && depth_le(e, budget - 1),
        Type::Struct(fs) | Type::Union(fs) => budget >= 1 && fs.iter().all(|f| depth_le(f, budget - 1)),
        Type::FnPtr { sig, .. } => {
            budget >= 1 && sig.params.iter().chain(std::iter::once(&sig.ret)).all(|x| depth_le(x, budget - 1))
        }
        Type::Void | Type::Scalar(_) | Type::Any | Type::Str => true,
    }
}

const MAX_SHOWN: usize = 160;

/// A writer that stops (with an error, which ends formatting) once full.
struct Limited {
    buf: String,
    full: bool,
}

impl fmt::Write for Limited {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let room = MAX_SHOWN.saturating_sub(self.buf.len());
        if s.len() <= room {
            self.buf.push_str(s);
            Ok(())
        } else {
            let mut cut = room;
            while cut > 0 && !s.is_char_boundary(cut) {
                cut -= 1;
            }
            self.buf.push_str(&s[..cut]);
            self.full = true;
            Err(fmt::Error)
        }
    }
}

/// Display anything, truncated to a bounded length.
fn bounded(x: &dyn fmt::Display) -> String {
    let mut w = Limited { buf: String::new(), full: false };
    let _ = write!(w, "{x}");
    if w.full {
        w.buf.push_str("...");
    }
    w.buf
}

/// A type for a message: safe for any type (too-deep types are not walked).
fn show(t: &Type) -> String {
    if depth_le(t, MAX_TYPE_DEPTH + 2) {
        bounded(t)
    } else {
        format!("<type nested deeper than {MAX_TYPE_DEPTH} levels>")
    }
}

fn show_list(ts: &[Type]) -> String {
    let mut s = String::from("(");
    for (i, t) in ts.iter().enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        if s.len() > MAX_SHOWN {
            s.push_str("...");
            break;
        }
        s.push_str(&show(t));
    }
    s.push(')');
    s
}

type Problem = (&'static str, String);

/// Check a type is valid. `void_ok`: it is a function return type.
/// `value`: values of this type exist, so its leaf count is limited.
fn check_type(t: &Type, void_ok: bool, value: bool) -> Result<(), Problem> {
    if !depth_le(t, MAX_TYPE_DEPTH) {
        return Err((
            "type-too-deep",
            format!("expected a type nested at most {MAX_TYPE_DEPTH} levels deep, found a deeper one"),
        ));
    }
    if t.is_void() {
        if void_ok {
            return Ok(());
        }
        return Err(("void-type", "expected a non-void type, found void".to_string()));
    }
    check_node(t, true)?;
    if value {
        let n = leaf_count(t);
        if n > MAX_VALUE_LEAVES {
            return Err((
                "too-many-leaves",
                format!(
                    "expected a value type with at most {MAX_VALUE_LEAVES} scalar leaves, found {} with {n}",
                    show(t)
                ),
            ));
        }
    }
    Ok(())
}

/// Check a non-void type whose depth is already known to be bounded.
///
/// `sized`: whether the size of `t` must be checked here. A struct or a
/// non-empty array is at least as large as each of its parts (sizes
/// saturate), so a part's size only needs its own check below a slice (whose
/// size does not depend on its element), an empty array or a union (whose
/// payload word count is capped). This avoids computing `size_of` at every
/// node.
fn check_node(t: &Type, sized: bool) -> Result<(), Problem> {
    let child = |c: &Type, sized: bool| -> Result<(), Problem> {
        if c.is_void() {
            return Err((
                "void-type",
                format!("expected void only as a function return type, found it inside {}", show(t)),
            ));
        }
        check_node(c, sized)
    };
    match t {
        Type::Void => return Err(("void-type", "expected a non-void type, found void".to_string())),
        Type::Scalar(_) | Type::Any | Type::Str => {}
        Type::Array(e, n) => child(e, *n == 0)?,
        Type::Slice(e) => child(e, true)?,
        Type::Struct(fs) => {
            for f in fs {
                child(f, false)?;
            }
        }
        Type::Union(vs) => {
            if vs.is_empty() {
                return Err((
                    "empty-union",
                    "expected a union with at least one variant, found union<>".to_string(),
                ));
            }
            for v in vs {
                child(v, true)?;
            }
        }
        // `check_sig` checks each parameter and the return type in full.
        Type::FnPtr { sig, host } => check_sig(sig, *host)?,
    }
    if sized {
        let size = size_of(t);
        if size > MAX_TYPE_SIZE {
            return Err((
                "type-too-large",
                format!(
                    "expected a type of at most {MAX_TYPE_SIZE} bytes, found {} of {size} bytes",
                    show(t)
                ),
            ));
        }
    }
    Ok(())
}

/// Check a signature; `host` signatures (externs, `extern fn` pointers) take
/// and return scalars only, within the register budget of the C convention.
fn check_sig(sig: &Signature, host: bool) -> Result<(), Problem> {
    for (i, p) in sig.params.iter().enumerate() {
        check_type(p, false, true).map_err(|(r, msg)| (r, format!("parameter {i}: {msg}")))?;
    }
    check_type(&sig.ret, true, true).map_err(|(r, msg)| (r, format!("return type: {msg}")))?;
    if host {
        let (mut ints, mut floats) = (0usize, 0usize);
        for (i, p) in sig.params.iter().enumerate() {
            match p {
                Type::Scalar(s) if s.is_float() => floats += 1,
                Type::Scalar(_) => ints += 1,
                other => {
                    return Err((
                        "extern-signature",
                        format!("expected a scalar type for host parameter {i}, found {}", show(other)),
                    ))
                }
            }
        }
        if !matches!(sig.ret, Type::Void | Type::Scalar(_)) {
            return Err((
                "extern-signature",
                format!("expected a scalar or void host return type, found {}", show(&sig.ret)),
            ));
        }
        if ints > MAX_EXTERN_INT_PARAMS {
            return Err((
                "extern-signature",
                format!(
                    "expected at most {MAX_EXTERN_INT_PARAMS} integer-class host parameters, found {ints}"
                ),
            ));
        }
        if floats > MAX_EXTERN_FLOAT_PARAMS {
            return Err((
                "extern-signature",
                format!("expected at most {MAX_EXTERN_FLOAT_PARAMS} float host parameters, found {floats}"),
            ));
        }
    }
    Ok(())
}

fn cast_ok(from: Scalar, to: Scalar) -> bool {
    use Scalar::*;
    if from == to {
        return true;
    }
    let num = |s: Scalar| s.is_int() || s.is_float();
    match (from, to) {
        (Ptr, I64 | U64) | (I64 | U64, Ptr) => true,
        (Ptr, _) | (_, Ptr) => false,
        (Bool, t) => num(t),
        (f, Bool) => num(f),
        (f, t) => num(f) && num(t),
    }
}

fn kind_name(k: &InstKind) -> &'static str {
    use InstKind::*;
    match k {
        Const { .. } => "const",
        Zero { .. } => "zero",
        Binary { op, .. } => op.name(),
        Unary { op, .. } => op.name(),
        Cmp { .. } => "cmp",
        Select { .. } => "select",
        Fma { .. } => "fma",
        Cast { .. } => "cast",
        Bitcast { .. } => "bitcast",
        Load { .. } => "load",
        Store { .. } => "store",
        Alloc { .. } => "alloc",
        Free { .. } => "free",
        MemCopy { .. } => "memcopy",
        MemSet { .. } => "memset",
        FieldAddr { .. } => "field_addr",
        ElemAddr { .. } => "elem_addr",
        ExtractValue { .. } => "extract",
        InsertValue { .. } => "insert",
        UnionMake { .. } => "union.make",
        UnionTag { .. } => "union.tag",
        UnionGet { .. } => "union.get",
        AnyMake { .. } => "any.make",
        AnyTag { .. } => "any.tag",
        AnyGet { .. } => "any.get",
        StrConst { .. } => "str",
        FuncAddr { .. } => "func_addr",
        Call { .. } => "call",
        CallIndirect { .. } => "call_indirect",
        DepthCheck => "depth.check",
        Jump { .. } => "jump",
        Brif { .. } => "brif",
        Switch { .. } => "switch",
        Return { .. } => "return",
        Trap => "trap",
        Unreachable => "unreachable",
    }
}

// ---------------------------------------------------------------------------
// Dominators
// ---------------------------------------------------------------------------

/// Dominator tree of a CFG whose blocks are all reachable from block 0,
/// as pre/post DFS numbers for O(1) dominance queries.
struct DomTree {
    pre: Vec<usize>,
    post: Vec<usize>,
}

impl DomTree {
    /// Cooper, Harvey & Kennedy, "A Simple, Fast Dominance Algorithm".
    fn compute(succs: &[Vec<usize>]) -> DomTree {
        const NONE: usize = usize::MAX;
        let n = succs.len();
        // Postorder by iterative DFS.
        let mut po_num = vec![NONE; n];
        let mut order = Vec::with_capacity(n);
        let mut visited = vec![false; n];
        if n > 0 {
            let mut stack: Vec<(usize, usize)> = vec![(0, 0)];
            visited[0] = true;
            while let Some(top) = stack.last_mut() {
                let (node, i) = *top;
                if let Some(&s) = succs[node].get(i) {
                    top.1 += 1;
                    if s < n && !visited[s] {
                        visited[s] = true;
                        stack.push((s, 0));
                    }
                } else {
                    po_num[node] = order.len();
                    order.push(node);
                    stack.pop();
                }
            }
        }
        let mut preds = vec![Vec::new(); n];
        for (b, ss) in succs.iter().enumerate() {
            for &s in ss {
                if s < n {
                    preds[s].push(b);
                }
            }
        }
        let mut idom = vec![NONE; n];
        if n > 0 {
            idom[0] = 0;
        }
        let intersect = |idom: &[usize], mut a: usize, mut b: usize| {
            while a != b {
                while po_num[a] < po_num[b] {
                    a = idom[a];
                }
                while po_num[b] < po_num[a] {
                    b = idom[b];
                }
            }
            a
        };
        let mut changed = true;
        while changed {
            changed = false;
            for &b in order.iter().rev() {
                if b == 0 {
                    continue;
                }
                let mut new = NONE;
                for &p in &preds[b] {
                    if idom[p] == NONE {
                        continue;
                    }
                    new = if new == NONE { p } else { intersect(&idom, p, new) };
                }
                if new != NONE && idom[b] != new {
                    idom[b] = new;
                    changed = true;
                }
            }
        }
        // Number the dominator tree.
        let mut children = vec![Vec::new(); n];
        for b in 1..n {
            if idom[b] != NONE {
                children[idom[b]].push(b);
            }
        }
        let mut pre = vec![NONE; n];
        let mut post = vec![0; n];
        let mut clock = 0;
        if n > 0 {
            let mut stack: Vec<(usize, usize)> = vec![(0, 0)];
            pre[0] = clock;
            clock += 1;
            while let Some(top) = stack.last_mut() {
                let (node, i) = *top;
                if let Some(&c) = children[node].get(i) {
                    top.1 += 1;
                    pre[c] = clock;
                    clock += 1;
                    stack.push((c, 0));
                } else {
                    post[node] = clock;
                    clock += 1;
                    stack.pop();
                }
            }
        }
        DomTree { pre, post }
    }

    /// Whether block `a` dominates block `b` (reflexive).
    fn dominates(&self, a: usize, b: usize) -> bool {
        match (self.pre.get(a), self.pre.get(b), self.post.get(a), self.post.get(b)) {
            (Some(&pa), Some(&pb), Some(&qa), Some(&qb)) => {
                pa != usize::MAX && pb != usize::MAX && pa <= pb && qb <= qa
            }
            _ => false,
        }
    }
}

// ---------------------------------------------------------------------------
// The verifier
// ---------------------------------------------------------------------------

/// Returned to unwind the verifier after the first error in first-only mode.
struct Stop;

type R = Result<(), Stop>;

struct Verifier<'m> {
    m: &'m Module,
    first_only: bool,
    errors: Vec<VerifyError>,
    func_sig_ok: Vec<bool>,
    extern_sig_ok: Vec<bool>,
}

/// Per-function facts established by the structural stages.
struct FnCtx<'f> {
    f: &'f Function,
    /// For every instruction: its block and position there.
    owner: Vec<(usize, usize)>,
    dom: DomTree,
}

impl<'m> Verifier<'m> {
    fn new(m: &'m Module, first_only: bool) -> Self {
        Verifier {
            m,
            first_only,
            errors: Vec::new(),
            func_sig_ok: vec![false; m.functions.len()],
            extern_sig_ok: vec![false; m.externs.len()],
        }
    }

    fn run(mut self) -> Vec<VerifyError> {
        let _ = self.run_inner();
        self.errors
    }

    fn report(
        &mut self,
        function: &str,
        block: Option<Block>,
        inst: Option<Inst>,
        rule: &'static str,
        message: String,
    ) -> R {
        let position = (|| {
            let f = self.m.functions.iter().find(|f| f.name == function)?;
            f.blocks.get(block?.index())?.insts.iter().position(|i| Some(*i) == inst)
        })();
        self.errors.push(VerifyError {
            function: function.to_string(),
            block,
            inst,
            rule,
            message,
            position,
        });
        if self.first_only {
            Err(Stop)
        } else {
            Ok(())
        }
    }

    fn run_inner(&mut self) -> R {
        self.check_module()?;
        for fi in 0..self.m.functions.len() {
            if self.func_sig_ok[fi] {
                self.check_function(fi)?;
            }
        }
        Ok(())
    }

    fn func_label(&self, i: usize) -> String {
        let n = &self.m.functions[i].name;
        if n.is_empty() {
            format!("fn{i}")
        } else {
            n.clone()
        }
    }

    fn extern_label(&self, i: usize) -> String {
        let n = &self.m.externs[i].name;
        if n.is_empty() {
            format!("extern{i}")
        } else {
            n.clone()
        }
    }

    fn check_module(&mut self) -> R {
        let m = self.m;
        // Names.
        let mut seen: HashMap<&str, String> = HashMap::new();
        let names =
            m.functions.iter().enumerate().map(|(i, f)| (f.name.as_str(), format!("fn{i}"), true, i)).chain(
                m.externs.iter().enumerate().map(|(i, e)| (e.name.as_str(), format!("extern{i}"), false, i)),
            );
        for (name, id, is_func, i) in names {
            let label = if is_func { self.func_label(i) } else { self.extern_label(i) };
            if name.is_empty() {
                let what = if is_func { "function" } else { "extern function" };
                self.report(
                    &label,
                    None,
                    None,
                    "empty-name",
                    format!("expected a non-empty name for {what} {id}, found \"\""),
                )?;
            } else if let Some(prev) = seen.get(name) {
                let msg = format!(
                    "expected a unique name, found '{}' used by both {prev} and {id}",
                    bounded(&name)
                );
                self.report(&label, None, None, "duplicate-name", msg)?;
            } else {
                seen.insert(name, id);
            }
        }
        // Signatures.
        for i in 0..m.functions.len() {
            match check_sig(&m.functions[i].sig, false) {
                Ok(()) => self.func_sig_ok[i] = true,
                Err((rule, msg)) => {
                    let label = self.func_label(i);
                    self.report(&label, None, None, rule, format!("in the signature: {msg}"))?;
                }
            }
        }
        for i in 0..m.externs.len() {
            match check_sig(&m.externs[i].sig, true) {
                Ok(()) => self.extern_sig_ok[i] = true,
                Err((rule, msg)) => {
                    let label = self.extern_label(i);
                    self.report(&label, None, None, rule, format!("in the extern signature: {msg}"))?;
                }
            }
        }
        Ok(())
    }

    fn check_function(&mut self, fi: usize) -> R {
        let m = self.m;
        let f = &m.functions[fi];
        let name = self.func_label(fi);
        let before = self.errors.len();
        let stages_failed = |v: &Verifier<'_>| v.errors.len() > before;

        // --- Blocks and instruction placement.
        if f.blocks.is_empty() {
            return self.report(
                &name,
                None,
                None,
                "no-blocks",
                "expected at least an entry block, found no blocks".into(),
            );
        }
        const UNOWNED: (usize, usize) = (usize::MAX, usize::MAX);
        let mut owner = vec![UNOWNED; f.insts.len()];
        for (bi, bd) in f.blocks.iter().enumerate() {
            let b = Some(Block(bi as u32));
            if bd.insts.is_empty() {
                self.report(
                    &name,
                    b,
                    None,
                    "empty-block",
                    "expected at least a terminator, found an empty block".into(),
                )?;
                continue;
            }
            let n = bd.insts.len();
            for (pos, &inst) in bd.insts.iter().enumerate() {
                let Some(data) = f.insts.get(inst.index()) else {
                    let msg = format!(
                        "expected an instruction id below {}, found {inst} listed in the block",
                        f.insts.len()
                    );
                    self.report(&name, b, Some(inst), "invalid-inst", msg)?;
                    continue;
                };
                if owner[inst.index()] != UNOWNED {
                    let (ob, opos) = owner[inst.index()];
                    let msg = format!(
                        "expected each instruction in exactly one block, found {inst} also at position {opos} of block{ob}"
                    );
                    self.report(&name, b, Some(inst), "inst-ownership", msg)?;
                    continue;
                }
                owner[inst.index()] = (bi, pos);
                let term = data.kind.is_terminator();
                if term && pos + 1 != n {
                    let msg = format!(
                        "expected a terminator only as the last instruction, found {} at position {pos} of {n}",
                        kind_name(&data.kind)
                    );
                    self.report(&name, b, Some(inst), "terminator-mid-block", msg)?;
                } else if !term && pos + 1 == n {
                    let msg = format!(
                        "expected the block to end with a terminator, found {}",
                        kind_name(&data.kind)
                    );
                    self.report(&name, b, Some(inst), "missing-terminator", msg)?;
                }
            }
        }
        for (i, o) in owner.iter().enumerate() {
            if *o == UNOWNED {
                let msg = format!("expected each instruction in exactly one block, found inst{i} in none");
                self.report(&name, None, Some(Inst(i as u32)), "inst-ownership", msg)?;
            }
        }
        if stages_failed(self) {
            return Ok(());
        }
        let block_of = |i: Inst| -> Option<Block> {
            owner.get(i.index()).filter(|o| **o != UNOWNED).map(|o| Block(o.0 as u32))
        };

        // --- Value definitions: each value is defined at exactly one place.
        for (bi, bd) in f.blocks.iter().enumerate() {
            let b = Block(bi as u32);
            for (i, &p) in bd.params.iter().enumerate() {
                match f.values.get(p.index()) {
                    None => {
                        let msg = format!(
                            "expected parameter {i} to be a value id below {}, found {p}",
                            f.values.len()
                        );
                        self.report(&name, Some(b), None, "invalid-value", msg)?;
                    }
                    Some(vd) if vd.def != ValueDef::Param(b, i as u32) => {
                        let msg =
                            format!("expected {p} to be defined as parameter {i} of {b}, found {:?}", vd.def);
                        self.report(&name, Some(b), None, "value-def", msg)?;
                    }
                    Some(_) => {}
                }
            }
            for &inst in &bd.insts {
                let Some(data) = f.insts.get(inst.index()) else { continue };
                let Some(r) = data.result else { continue };
                match f.values.get(r.index()) {
                    None => {
                        let msg = format!("expected a result value id below {}, found {r}", f.values.len());
                        self.report(&name, Some(b), Some(inst), "invalid-value", msg)?;
                    }
                    Some(vd) if vd.def != ValueDef::Result(inst) => {
                        let msg = format!("expected result {r} to be defined by {inst}, found {:?}", vd.def);
                        self.report(&name, Some(b), Some(inst), "value-def", msg)?;
                    }
                    Some(_) => {}
                }
            }
        }
        for (vi, vd) in f.values.iter().enumerate() {
            let v = Value(vi as u32);
            match vd.def {
                ValueDef::Param(b, i) => {
                    let found = f.blocks.get(b.index()).and_then(|bd| bd.params.get(i as usize));
                    if found != Some(&v) {
                        let blk = (b.index() < f.blocks.len()).then_some(b);
                        let what = match found {
                            Some(o) => format!("{o} there"),
                            None => "no such parameter".to_string(),
                        };
                        let msg = format!("expected {v} at parameter {i} of {b}, found {what}");
                        self.report(&name, blk, None, "value-def", msg)?;
                    }
                }
                ValueDef::Result(inst) => {
                    let found = f.insts.get(inst.index()).map(|d| d.result);
                    if found != Some(Some(v)) {
                        let what = match found {
                            Some(Some(o)) => format!("it defines {o}"),
                            Some(None) => "it defines no value".to_string(),
                            None => "no such instruction".to_string(),
                        };
                        let msg = format!("expected {v} to be the result of {inst}, found {what}");
                        let i = (inst.index() < f.insts.len()).then_some(inst);
                        self.report(&name, block_of(inst), i, "value-def", msg)?;
                    }
                }
            }
        }
        if stages_failed(self) {
            return Ok(());
        }

        // --- Value types (every value is now placed exactly once).
        for (bi, bd) in f.blocks.iter().enumerate() {
            let b = Block(bi as u32);
            for &p in &bd.params {
                if let Err((rule, msg)) = check_type(&f.values[p.index()].ty, false, true) {
                    self.report(&name, Some(b), None, rule, format!("type of parameter {p}: {msg}"))?;
                }
            }
            for &inst in &bd.insts {
                if let Some(r) = f.insts[inst.index()].result {
                    if let Err((rule, msg)) = check_type(&f.values[r.index()].ty, false, true) {
                        self.report(&name, Some(b), Some(inst), rule, format!("type of result {r}: {msg}"))?;
                    }
                }
            }
        }
        if stages_failed(self) {
            return Ok(());
        }

        // --- Entry parameters match the signature.
        let entry_tys: Vec<Type> =
            f.blocks[0].params.iter().map(|p| f.values[p.index()].ty.clone()).collect();
        if entry_tys != f.sig.params {
            let msg = format!(
                "expected entry parameters {} as in the signature, found {}",
                show_list(&f.sig.params),
                show_list(&entry_tys)
            );
            self.report(&name, Some(Block(0)), None, "entry-params", msg)?;
            return Ok(());
        }

        // --- Control flow: targets exist, entry has no predecessors, all reachable.
        let nb = f.blocks.len();
        let mut succs: Vec<Vec<usize>> = vec![Vec::new(); nb];
        for (bi, bd) in f.blocks.iter().enumerate() {
            let b = Block(bi as u32);
            let Some(&last) = bd.insts.last() else { continue };
            for s in f.insts[last.index()].kind.successors() {
                if s.block.index() >= nb {
                    let msg =
                        format!("expected a branch target among block0..block{}, found {}", nb - 1, s.block);
                    self.report(&name, Some(b), Some(last), "invalid-block", msg)?;
                } else if s.block.index() == 0 {
                    let msg = "expected a branch to a non-entry block, found a branch to block0 (the entry has no predecessors)".to_string();
                    self.report(&name, Some(b), Some(last), "branch-to-entry", msg)?;
                } else {
                    succs[bi].push(s.block.index());
                }
            }
        }
        if stages_failed(self) {
            return Ok(());
        }
        let mut reached = vec![false; nb];
        reached[0] = true;
        let mut work = vec![0usize];
        while let Some(b) = work.pop() {
            for &s in &succs[b] {
                if !reached[s] {
                    reached[s] = true;
                    work.push(s);
                }
            }
        }
        for (bi, r) in reached.iter().enumerate() {
            if !r {
                let msg =
                    format!("expected every block to be reachable from block0, found block{bi} unreachable");
                self.report(&name, Some(Block(bi as u32)), None, "unreachable-block", msg)?;
            }
        }
        if stages_failed(self) {
            return Ok(());
        }

        // --- Instructions.
        let ctx = FnCtx { f, owner, dom: DomTree::compute(&succs) };
        for (bi, bd) in f.blocks.iter().enumerate() {
            for (pos, &inst) in bd.insts.iter().enumerate() {
                if let Err((rule, msg)) = self.check_inst(&ctx, bi, pos, inst) {
                    self.report(&name, Some(Block(bi as u32)), Some(inst), rule, msg)?;
                }
            }
        }
        Ok(())
    }

    /// Check one instruction (all structural facts hold: its operands may
    /// still be out of range).
    fn check_inst(&self, cx: &FnCtx<'_>, bi: usize, pos: usize, inst: Inst) -> Result<(), Problem> {
        use InstKind::*;
        let m = self.m;
        let f = cx.f;
        let data = &f.insts[inst.index()];
        let kind = &data.kind;

        // Type parameters.
        let tparam = |t: &Type, value: bool, what: &str| {
            check_type(t, false, value).map_err(|(r, msg)| (r, format!("{what} type: {msg}")))
        };
        match kind {
            Zero { ty } => tparam(ty, true, "zero")?,
            Load { ty, .. } => tparam(ty, true, "load")?,
            UnionMake { ty, .. } => tparam(ty, true, "union")?,
            Alloc { ty, .. } => tparam(ty, false, "alloc")?,
            FieldAddr { ty, .. } => tparam(ty, false, "struct")?,
            ElemAddr { elem, .. } => tparam(elem, false, "element")?,
            _ => {}
        }

        // Operands exist and their definitions dominate this use. Branch
        // arguments are used at the end of this block, i.e. right here.
        for v in kind.operands() {
            let Some(vd) = f.values.get(v.index()) else {
                return Err((
                    "invalid-value",
                    format!("expected an operand among the function's {} values, found {v}", f.values.len()),
                ));
            };
            let (db, dpos) = match vd.def {
                ValueDef::Param(b, _) => (b.index(), None),
                ValueDef::Result(i) => match cx.owner.get(i.index()) {
                    Some(&(b, p)) => (b, Some(p)),
                    None => {
                        return Err((
                            "value-def",
                            format!("expected {v} to be defined by an existing instruction, found none"),
                        ))
                    }
                },
            };
            if db == bi {
                if let Some(dp) = dpos {
                    if dp >= pos {
                        return Err((
                            "use-before-def",
                            format!(
                                "expected {v} to be defined before its use, found its definition at position {dp} of block{db}, at or after this use at position {pos}"
                            ),
                        ));
                    }
                }
            } else if !cx.dom.dominates(db, bi) {
                return Err((
                    "dominance",
                    format!("expected the definition of {v} (in block{db}) to dominate its use in block{bi}, it does not"),
                ));
            }
        }

        let ty = |v: Value| -> &Type { &f.values[v.index()].ty };
        let desc = |v: Value| format!("{v}: {}", show(ty(v)));
        let expect = |v: Value, want: &Type, what: &str| -> Result<(), Problem> {
            if ty(v) == want {
                Ok(())
            } else {
                Err(("operand-type", format!("expected {what} of type {}, found {}", show(want), desc(v))))
            }
        };
        let scalar_of = |v: Value, what: &str| -> Result<Scalar, Problem> {
            match ty(v) {
                Type::Scalar(s) => Ok(*s),
                _ => Err(("operand-type", format!("expected {what} of a scalar type, found {}", desc(v)))),
            }
        };
        let check_args = |params: &[Type], args: &[Value], what: String| -> Result<(), Problem> {
            if params.len() != args.len() {
                return Err((
                    "call-signature",
                    format!("expected {} for {what}, found {}", count(params.len(), "argument"), args.len()),
                ));
            }
            for (i, (p, &a)) in params.iter().zip(args).enumerate() {
                if ty(a) != p {
                    return Err((
                        "call-signature",
                        format!(
                            "expected argument {i} of {what} to have type {}, found {}",
                            show(p),
                            desc(a)
                        ),
                    ));
                }
            }
            Ok(())
        };
        let check_dest = |bc: &crate::mir::BlockCall| -> Result<(), Problem> {
            let Some(target) = f.blocks.get(bc.block.index()) else {
                return Err((
                    "invalid-block",
                    format!("expected an existing branch target, found {}", bc.block),
                ));
            };
            if bc.block.index() == 0 {
                return Err((
                    "branch-to-entry",
                    "expected a branch to a non-entry block, found block0".into(),
                ));
            }
            if target.params.len() != bc.args.len() {
                return Err((
                    "branch-args",
                    format!(
                        "expected {} for {}'s parameters, found {}",
                        count(target.params.len(), "argument"),
                        bc.block,
                        bc.args.len()
                    ),
                ));
            }
            for (i, (&p, &a)) in target.params.iter().zip(&bc.args).enumerate() {
                let want = ty(p);
                if ty(a) != want {
                    return Err((
                        "branch-args",
                        format!(
                            "expected argument {i} to {} (for {p}) of type {}, found {}",
                            bc.block,
                            show(want),
                            desc(a)
                        ),
                    ));
                }
            }
            Ok(())
        };
        let callee_sig = |c: Callee| -> Result<Option<&Signature>, Problem> {
            match c {
                Callee::Func(id) => match m.functions.get(id.index()) {
                    None => Err((
                        "invalid-callee",
                        format!("expected a function id below {}, found {id}", m.functions.len()),
                    )),
                    Some(g) => Ok(self.func_sig_ok[id.index()].then_some(&g.sig)),
                },
                Callee::Extern(id) => match m.externs.get(id.index()) {
                    None => Err((
                        "invalid-callee",
                        format!("expected an extern id below {}, found {id}", m.externs.len()),
                    )),
                    Some(e) => Ok(self.extern_sig_ok[id.index()].then_some(&e.sig)),
                },
            }
        };
        let union_variants = |v: Value| -> Result<&Vec<Type>, Problem> {
            match ty(v) {
                Type::Union(vs) => Ok(vs),
                _ => Err(("operand-type", format!("expected a union operand, found {}", desc(v)))),
            }
        };
        let ptr = Type::PTR;
        let u64t = Type::U64;

        match kind {
            Const { ty: s, bits } => {
                if s.canon(*bits) != *bits {
                    return Err((
                        "const-canonical",
                        format!(
                            "expected canonical bits {:#x} for a {s} constant, found {bits:#x}",
                            s.canon(*bits)
                        ),
                    ));
                }
            }
            Zero { .. } | DepthCheck | Trap | Unreachable => {}
            Binary { op, lhs, rhs } => {
                let s = scalar_of(*lhs, "a left operand")?;
                expect(*rhs, ty(*lhs), "a right operand matching the left")?;
                if !op.accepts(s) {
                    return Err((
                        "operand-type",
                        format!("expected operands {} accepts, found {s}", op.name()),
                    ));
                }
            }
            Unary { op, arg } => {
                let s = scalar_of(*arg, "an operand")?;
                if !op.accepts(s) {
                    return Err((
                        "operand-type",
                        format!("expected an operand {} accepts, found {s}", op.name()),
                    ));
                }
            }
            Cmp { op, lhs, rhs } => {
                // Function pointers compare for equality too (as `ptr`s): the
                // optimiser's guarded devirtualisation tests a callee this way.
                let fn_eq = matches!(ty(*lhs), Type::FnPtr { .. }) && matches!(op, CmpOp::Eq | CmpOp::Ne);
                if !fn_eq {
                    scalar_of(*lhs, "a left operand")?;
                }
                expect(*rhs, ty(*lhs), "a right operand matching the left")?;
            }
            Fma { a, b, c } => {
                let s = scalar_of(*a, "a first operand")?;
                if !s.is_float() {
                    return Err(("operand-type", format!("expected float operands for fma, found {s}")));
                }
                expect(*b, ty(*a), "a second operand matching the first")?;
                expect(*c, ty(*a), "a third operand matching the first")?;
            }
            Select { cond, if_true, if_false } => {
                expect(*cond, &Type::BOOL, "a condition")?;
                expect(*if_false, ty(*if_true), "a false arm matching the true arm")?;
            }
            Cast { to, arg } => {
                let from = scalar_of(*arg, "an operand")?;
                if !cast_ok(from, *to) {
                    return Err((
                        "bad-cast",
                        format!("expected a supported conversion, found cast from {from} to {to}"),
                    ));
                }
            }
            Bitcast { to, arg } => {
                let from = scalar_of(*arg, "an operand")?;
                if from == Scalar::Bool || *to == Scalar::Bool {
                    return Err((
                        "bitcast-width",
                        format!("expected non-bool types, found bitcast from {from} to {to}"),
                    ));
                }
                if from.bits() != to.bits() {
                    return Err((
                        "bitcast-width",
                        format!(
                            "expected types of equal width, found bitcast from {from} ({} bits) to {to} ({} bits)",
                            from.bits(),
                            to.bits()
                        ),
                    ));
                }
            }
            Load { ptr: p, .. } | Free { ptr: p } => expect(*p, &ptr, "an address")?,
            Store { ptr: p, .. } => expect(*p, &ptr, "an address")?,
            Alloc { count, .. } => expect(*count, &u64t, "a count")?,
            MemCopy { dst, src, len } => {
                expect(*dst, &ptr, "a destination")?;
                expect(*src, &ptr, "a source")?;
                expect(*len, &u64t, "a length")?;
            }
            MemSet { dst, byte, len } => {
                expect(*dst, &ptr, "a destination")?;
                expect(*byte, &Type::U8, "a byte")?;
                expect(*len, &u64t, "a length")?;
            }
            FieldAddr { ty: t, ptr: p, field } => {
                match t {
                    Type::Struct(fs) if (*field as usize) < fs.len() => {}
                    Type::Struct(fs) => {
                        return Err((
                            "field-index",
                            format!(
                                "expected a field index below {}, found {field} for {}",
                                fs.len(),
                                show(t)
                            ),
                        ))
                    }
                    _ => return Err(("operand-type", format!("expected a struct type, found {}", show(t)))),
                }
                expect(*p, &ptr, "an address")?;
            }
            ElemAddr { ptr: p, index, .. } => {
                expect(*p, &ptr, "an address")?;
                if !ty(*index).is_int() {
                    return Err((
                        "operand-type",
                        format!("expected an integer index, found {}", desc(*index)),
                    ));
                }
            }
            ExtractValue { agg, index } => {
                if ty(*agg).field(*index).is_none() {
                    return Err((
                        "field-index",
                        format!("expected a field index valid for {}, found {index}", desc(*agg)),
                    ));
                }
            }
            InsertValue { agg, index, value } => match ty(*agg).field(*index) {
                None => {
                    return Err((
                        "field-index",
                        format!("expected a field index valid for {}, found {index}", desc(*agg)),
                    ))
                }
                Some(ft) => expect(*value, &ft, "an inserted value")?,
            },
            UnionMake { ty: t, variant, value } => match t {
                Type::Union(vs) => match vs.get(*variant as usize) {
                    None => {
                        return Err((
                            "variant-index",
                            format!("expected a variant index below {}, found {variant}", vs.len()),
                        ))
                    }
                    Some(vt) => expect(*value, vt, "a payload")?,
                },
                _ => return Err(("operand-type", format!("expected a union type, found {}", show(t)))),
            },
            UnionTag { arg } => {
                union_variants(*arg)?;
            }
            UnionGet { variant, arg } => {
                let vs = union_variants(*arg)?;
                if *variant as usize >= vs.len() {
                    return Err((
                        "variant-index",
                        format!("expected a variant index below {}, found {variant}", vs.len()),
                    ));
                }
            }
            AnyMake { arg } => {
                scalar_of(*arg, "an operand")?;
            }
            AnyTag { arg } | AnyGet { arg, .. } => expect(*arg, &Type::Any, "an operand")?,
            StrConst { data: d } => {
                if d.index() >= m.data.len() {
                    return Err((
                        "invalid-data",
                        format!("expected a data id below {}, found {d}", m.data.len()),
                    ));
                }
            }
            FuncAddr { callee } => {
                if callee_sig(*callee)?.is_none() {
                    return Ok(()); // signature error already reported
                }
            }
            Call { callee, args } => {
                let Some(sig) = callee_sig(*callee)? else { return Ok(()) };
                let cname = m.callee_name(*callee).unwrap_or("?");
                check_args(&sig.params, args, format!("'{}'", bounded(&cname)))?;
            }
            CallIndirect { callee, args } => match ty(*callee) {
                Type::FnPtr { sig, .. } => check_args(&sig.params, args, format!("the callee {callee}"))?,
                _ => {
                    return Err((
                        "operand-type",
                        format!("expected a callee of a function pointer type, found {}", desc(*callee)),
                    ))
                }
            },
            Jump { dest } => check_dest(dest)?,
            Brif { cond, then_dest, else_dest } => {
                expect(*cond, &Type::BOOL, "a condition")?;
                check_dest(then_dest)?;
                check_dest(else_dest)?;
            }
            Switch { value, cases, default } => {
                let s = match ty(*value) {
                    Type::Scalar(s) if s.is_int() => *s,
                    _ => {
                        return Err((
                            "operand-type",
                            format!("expected an integer switch value, found {}", desc(*value)),
                        ))
                    }
                };
                let mut seen = HashSet::with_capacity(cases.len());
                for (c, bc) in cases {
                    if s.canon(*c) != *c {
                        return Err((
                            "switch-case",
                            format!("expected a case constant canonical for {s}, found {c:#x}"),
                        ));
                    }
                    if !seen.insert(*c) {
                        return Err((
                            "switch-case",
                            format!("expected distinct case constants, found {c:#x} twice"),
                        ));
                    }
                    check_dest(bc)?;
                }
                check_dest(default)?;
            }
            Return { value } => match (&f.sig.ret, value) {
                (Type::Void, None) => {}
                (Type::Void, Some(v)) => {
                    return Err((
                        "return-type",
                        format!("expected no return value (void), found {}", desc(*v)),
                    ))
                }
                (rt, None) => {
                    return Err((
                        "return-type",
                        format!("expected a return value of type {}, found none", show(rt)),
                    ))
                }
                (rt, Some(v)) => {
                    if ty(*v) != rt {
                        return Err((
                            "return-type",
                            format!("expected a return value of type {}, found {}", show(rt), desc(*v)),
                        ));
                    }
                }
            },
        }

        // The result.
        let Some(rt) = m.result_type(f, kind) else {
            return Err(("result-type", "expected an instruction with a result type, found none".into()));
        };
        match (rt.is_void(), data.result) {
            (true, None) => {}
            (true, Some(r)) => {
                return Err((
                    "result-type",
                    format!("expected no result ({} defines none), found {}", kind_name(kind), desc(r)),
                ))
            }
            (false, None) => {
                return Err(("result-type", format!("expected a result of type {}, found none", show(&rt))))
            }
            (false, Some(r)) => {
                if *ty(r) != rt {
                    return Err((
                        "result-type",
                        format!("expected result {r} of type {}, found {}", show(&rt), show(ty(r))),
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A rule of the verifier that a module breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyError {
    pub function: String,
    pub block: Option<Block>,
    pub inst: Option<Inst>,
    /// A short stable name of the rule, e.g. `operand-type`, `dominance`.
    pub rule: &'static str,
    pub message: String,
    /// The 0-based index of `inst` within `block` (`inst` is numbered across the function).
    pub position: Option<usize>,
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "in function '{}'", self.function)?;
        if let Some(b) = self.block {
            write!(f, ", {b}")?;
        }
        if let Some(i) = self.inst {
            write!(f, ", {i}")?;
        }
        write!(f, ": [{}] {}", self.rule, self.message)
    }
}

impl std::error::Error for VerifyError {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mir::{BinOp, BlockCall, CmpOp, DataId, ExternFunc, ExternId, FuncId, UnOp, ValueData};

    fn sig(params: Vec<Type>, ret: Type) -> Signature {
        Signature::new(params, ret)
    }

    fn module(functions: Vec<Function>) -> Module {
        Module { functions, ..Module::default() }
    }

    fn konst(f: &mut Function, b: Block, ty: Scalar, bits: u64) -> Value {
        f.push_inst(b, InstKind::Const { ty, bits }, Some(Type::Scalar(ty))).1.unwrap()
    }

    fn bin(f: &mut Function, b: Block, op: BinOp, lhs: Value, rhs: Value) -> Value {
        let t = f.value_type(lhs).clone();
        f.push_inst(b, InstKind::Binary { op, lhs, rhs }, Some(t)).1.unwrap()
    }

    fn ret(f: &mut Function, b: Block, v: Option<Value>) -> Inst {
        f.push_inst(b, InstKind::Return { value: v }, None).0
    }

    fn jump(f: &mut Function, b: Block, to: Block, args: Vec<Value>) -> Inst {
        f.push_inst(b, InstKind::Jump { dest: BlockCall { block: to, args } }, None).0
    }

    fn call(block: Block, args: Vec<Value>) -> BlockCall {
        BlockCall { block, args }
    }

    /// `fn fib(n: i64) -> i64`, recursive.
    fn fib() -> Function {
        let mut f = Function::new("fib", sig(vec![Type::I64], Type::I64));
        let (b0, b1, b2) = (Block(0), f.add_block(), f.add_block());
        let n = f.blocks[0].params[0];
        let two = konst(&mut f, b0, Scalar::I64, 2);
        let lt =
            f.push_inst(b0, InstKind::Cmp { op: CmpOp::Lt, lhs: n, rhs: two }, Some(Type::BOOL)).1.unwrap();
        f.push_inst(
            b0,
            InstKind::Brif { cond: lt, then_dest: call(b1, vec![]), else_dest: call(b2, vec![]) },
            None,
        );
        ret(&mut f, b1, Some(n));
        let one = konst(&mut f, b2, Scalar::I64, 1);
        let a = bin(&mut f, b2, BinOp::Sub, n, one);
        let fa = f
            .push_inst(b2, InstKind::Call { callee: Callee::Func(FuncId(0)), args: vec![a] }, Some(Type::I64))
            .1
            .unwrap();
        let b = bin(&mut f, b2, BinOp::Sub, n, two);
        let fb = f
            .push_inst(b2, InstKind::Call { callee: Callee::Func(FuncId(0)), args: vec![b] }, Some(Type::I64))
            .1
            .unwrap();
        let s = bin(&mut f, b2, BinOp::Add, fa, fb);
        ret(&mut f, b2, Some(s));
        f
    }

    /// `fn sum(n: i64) -> i64`: sum of 0..n with a loop carrying block params.
    fn sum_loop() -> Function {
        let mut f = Function::new("sum", sig(vec![Type::I64], Type::I64));
        let b0 = Block(0);
        let n = f.blocks[0].params[0];
        let (b1, b2, b3) = (f.add_block(), f.add_block(), f.add_block());
        let i = f.add_block_param(b1, Type::I64);
        let acc = f.add_block_param(b1, Type::I64);
        let r = f.add_block_param(b3, Type::I64);
        let zero = konst(&mut f, b0, Scalar::I64, 0);
        jump(&mut f, b0, b1, vec![zero, zero]);
        let c = f.push_inst(b1, InstKind::Cmp { op: CmpOp::Lt, lhs: i, rhs: n }, Some(Type::BOOL)).1.unwrap();
        f.push_inst(
            b1,
            InstKind::Brif { cond: c, then_dest: call(b2, vec![]), else_dest: call(b3, vec![acc]) },
            None,
        );
        let one = konst(&mut f, b2, Scalar::I64, 1);
        let i2 = bin(&mut f, b2, BinOp::Add, i, one);
        let acc2 = bin(&mut f, b2, BinOp::Add, acc, i);
        jump(&mut f, b2, b1, vec![i2, acc2]);
        ret(&mut f, b3, Some(r));
        f
    }

    /// `fn name() -> void` with an empty entry block.
    fn void_fn(name: &str) -> Function {
        Function::new(name, sig(vec![], Type::Void))
    }

    /// Assert the module is rejected with `rule` at `block`/`inst`, and that
    /// the rendered error names the function and the location.
    fn rejects(m: &Module, func: &str, rule: &str, block: Option<u32>, inst: Option<u32>) -> VerifyError {
        let e = verify_module(m).expect_err("module should be rejected");
        assert_eq!(e.rule, rule, "wrong rule: {e}");
        assert_eq!(e.function, func, "{e}");
        assert_eq!(e.block, block.map(Block), "wrong block: {e}");
        assert_eq!(e.inst, inst.map(Inst), "wrong inst: {e}");
        let s = e.to_string();
        assert!(s.contains(&format!("'{func}'")), "{s}");
        if let Some(b) = block {
            assert!(s.contains(&format!("block{b}")), "{s}");
        }
        if let Some(i) = inst {
            assert!(s.contains(&format!("inst{i}")), "{s}");
        }
        assert!(s.contains("expected"), "message should say what was expected: {s}");
        // verify_all agrees on the first error.
        let all = verify_all(m);
        assert_eq!(all.first(), Some(&e));
        e
    }

    #[test]
    fn valid_programs_pass() {
        let m = module(vec![fib(), sum_loop()]);
        assert_eq!(verify_module(&m), Ok(()));
        assert!(verify_all(&m).is_empty());
    }

    #[test]
    fn valid_misc_instructions_pass() {
        let mut m = module(vec![]);
        let data = m.add_data(b"hi");
        m.externs.push(ExternFunc { name: "puts".into(), sig: sig(vec![Type::PTR, Type::U64], Type::I32) });
        let st = Type::Struct(vec![Type::I32, Type::F64]);
        let un = Type::Union(vec![Type::I64, st.clone()]);
        let mut f = Function::new("misc", sig(vec![Type::PTR, Type::I32], Type::U32));
        let b0 = Block(0);
        let (p, x) = (f.blocks[0].params[0], f.blocks[0].params[1]);
        let s = f.push_inst(b0, InstKind::StrConst { data }, Some(Type::Str)).1.unwrap();
        let sp = f.push_inst(b0, InstKind::ExtractValue { agg: s, index: 0 }, Some(Type::PTR)).1.unwrap();
        let sl = f.push_inst(b0, InstKind::ExtractValue { agg: s, index: 1 }, Some(Type::U64)).1.unwrap();
        f.push_inst(
            b0,
            InstKind::Call { callee: Callee::Extern(ExternId(0)), args: vec![sp, sl] },
            Some(Type::I32),
        );
        let z = f.push_inst(b0, InstKind::Zero { ty: st.clone() }, Some(st.clone())).1.unwrap();
        let z2 = f
            .push_inst(b0, InstKind::InsertValue { agg: z, index: 0, value: x }, Some(st.clone()))
            .1
            .unwrap();
        let u = f
            .push_inst(b0, InstKind::UnionMake { ty: un.clone(), variant: 1, value: z2 }, Some(un.clone()))
            .1
            .unwrap();
        let tag = f.push_inst(b0, InstKind::UnionTag { arg: u }, Some(Type::U32)).1.unwrap();
        f.push_inst(b0, InstKind::UnionGet { variant: 1, arg: u }, Some(st.clone()));
        f.push_inst(b0, InstKind::Store { ptr: p, value: u }, None);
        f.push_inst(b0, InstKind::Load { ty: un.clone(), ptr: p }, Some(un.clone()));
        let fa = f
            .push_inst(b0, InstKind::FieldAddr { ty: st.clone(), ptr: p, field: 1 }, Some(Type::PTR))
            .1
            .unwrap();
        f.push_inst(b0, InstKind::ElemAddr { elem: st.clone(), ptr: fa, index: x }, Some(Type::PTR));
        let xf = f.push_inst(b0, InstKind::Cast { to: Scalar::F64, arg: x }, Some(Type::F64)).1.unwrap();
        f.push_inst(b0, InstKind::Bitcast { to: Scalar::I64, arg: xf }, Some(Type::I64));
        let pi = f.push_inst(b0, InstKind::Cast { to: Scalar::U64, arg: p }, Some(Type::U64)).1.unwrap();
        f.push_inst(b0, InstKind::Alloc { ty: st.clone(), count: pi }, Some(Type::PTR));
        f.push_inst(b0, InstKind::Unary { op: UnOp::Sqrt, arg: xf }, Some(Type::F64));
        let a = f.push_inst(b0, InstKind::AnyMake { arg: xf }, Some(Type::Any)).1.unwrap();
        f.push_inst(b0, InstKind::AnyGet { ty: Scalar::F64, arg: a }, Some(Type::F64));
        let fsig = sig(vec![Type::PTR, Type::I32], Type::U32);
        let fp_ty = Type::FnPtr { sig: Box::new(fsig), host: false };
        let fp =
            f.push_inst(b0, InstKind::FuncAddr { callee: Callee::Func(FuncId(0)) }, Some(fp_ty)).1.unwrap();
        let (b1, b2) = (f.add_block(), f.add_block());
        let k = f.add_block_param(b2, Type::U32);
        f.push_inst(
            b0,
            InstKind::Switch {
                value: x,
                cases: vec![(3, call(b1, vec![])), (u64::MAX, call(b2, vec![tag]))],
                default: call(b2, vec![tag]),
            },
            None,
        );
        let r = f
            .push_inst(b1, InstKind::CallIndirect { callee: fp, args: vec![p, x] }, Some(Type::U32))
            .1
            .unwrap();
        jump(&mut f, b1, b2, vec![r]);
        ret(&mut f, b2, Some(k));
        m.functions.push(f);
        assert_eq!(verify_module(&m), Ok(()));
    }

    #[test]
    fn operand_type_mismatch() {
        let mut f = void_fn("f");
        let a = konst(&mut f, Block(0), Scalar::I32, 1);
        let b = konst(&mut f, Block(0), Scalar::I64, 2);
        bin(&mut f, Block(0), BinOp::Add, a, b);
        ret(&mut f, Block(0), None);
        let e = rejects(&module(vec![f]), "f", "operand-type", Some(0), Some(2));
        assert!(e.message.contains("i32") && e.message.contains("i64"), "{e}");
    }

    #[test]
    fn use_not_dominated() {
        let mut f = Function::new("g", sig(vec![Type::BOOL], Type::I32));
        let c = f.blocks[0].params[0];
        let (b1, b2, b3) = (f.add_block(), f.add_block(), f.add_block());
        f.push_inst(
            Block(0),
            InstKind::Brif { cond: c, then_dest: call(b1, vec![]), else_dest: call(b2, vec![]) },
            None,
        );
        let x = konst(&mut f, b1, Scalar::I32, 7); // inst1
        jump(&mut f, b1, b3, vec![]);
        jump(&mut f, b2, b3, vec![]);
        ret(&mut f, b3, Some(x)); // inst4
        rejects(&module(vec![f]), "g", "dominance", Some(3), Some(4));
    }

    #[test]
    fn use_before_def_in_block() {
        let mut f = void_fn("h");
        let b0 = Block(0);
        // inst0 uses the result of inst1.
        f.push_inst(b0, InstKind::Unary { op: UnOp::Neg, arg: Value(1) }, Some(Type::I32));
        let v = konst(&mut f, b0, Scalar::I32, 1);
        assert_eq!(v, Value(1));
        ret(&mut f, b0, None);
        rejects(&module(vec![f]), "h", "use-before-def", Some(0), Some(0));
    }

    #[test]
    fn missing_terminator() {
        let mut f = void_fn("f");
        konst(&mut f, Block(0), Scalar::I32, 1);
        rejects(&module(vec![f]), "f", "missing-terminator", Some(0), Some(0));
    }

    #[test]
    fn terminator_mid_block() {
        let mut f = void_fn("f");
        ret(&mut f, Block(0), None);
        ret(&mut f, Block(0), None);
        rejects(&module(vec![f]), "f", "terminator-mid-block", Some(0), Some(0));
    }

    #[test]
    fn empty_block() {
        let mut f = void_fn("f");
        let b1 = f.add_block();
        jump(&mut f, Block(0), b1, vec![]);
        rejects(&module(vec![f]), "f", "empty-block", Some(1), None);
    }

    #[test]
    fn no_blocks() {
        let mut f = void_fn("f");
        f.blocks.clear();
        rejects(&module(vec![f]), "f", "no-blocks", None, None);
    }

    #[test]
    fn unreachable_block() {
        let mut f = void_fn("f");
        let b1 = f.add_block();
        ret(&mut f, Block(0), None);
        ret(&mut f, b1, None);
        rejects(&module(vec![f]), "f", "unreachable-block", Some(1), None);
    }

    #[test]
    fn branch_arg_count() {
        let mut f = void_fn("f");
        let b1 = f.add_block();
        f.add_block_param(b1, Type::I32);
        jump(&mut f, Block(0), b1, vec![]);
        ret(&mut f, b1, None);
        let e = rejects(&module(vec![f]), "f", "branch-args", Some(0), Some(0));
        assert!(e.message.contains("expected 1") && e.message.contains("found 0"), "{e}");
    }

    #[test]
    fn branch_arg_type() {
        let mut f = void_fn("f");
        let b1 = f.add_block();
        f.add_block_param(b1, Type::I32);
        let x = konst(&mut f, Block(0), Scalar::F32, 0);
        jump(&mut f, Block(0), b1, vec![x]);
        ret(&mut f, b1, None);
        let e = rejects(&module(vec![f]), "f", "branch-args", Some(0), Some(1));
        assert!(e.message.contains("i32") && e.message.contains("f32"), "{e}");
    }

    #[test]
    fn branch_to_entry() {
        let mut f = void_fn("f");
        let b1 = f.add_block();
        jump(&mut f, Block(0), b1, vec![]);
        jump(&mut f, b1, Block(0), vec![]);
        rejects(&module(vec![f]), "f", "branch-to-entry", Some(1), Some(1));
    }

    #[test]
    fn branch_to_missing_block() {
        let mut f = void_fn("f");
        jump(&mut f, Block(0), Block(9), vec![]);
        rejects(&module(vec![f]), "f", "invalid-block", Some(0), Some(0));
    }

    fn caller(args: Vec<(Scalar, u64)>, callee: Callee) -> Module {
        let callee_fn = Function::new("callee", sig(vec![Type::I32, Type::I32], Type::Void));
        let mut f = void_fn("caller");
        let vals: Vec<Value> = args.into_iter().map(|(t, b)| konst(&mut f, Block(0), t, b)).collect();
        f.push_inst(Block(0), InstKind::Call { callee, args: vals }, None);
        ret(&mut f, Block(0), None);
        let mut callee_fn = callee_fn;
        ret(&mut callee_fn, Block(0), None);
        module(vec![callee_fn, f])
    }

    #[test]
    fn call_arg_count() {
        let m = caller(vec![(Scalar::I32, 1)], Callee::Func(FuncId(0)));
        let e = rejects(&m, "caller", "call-signature", Some(0), Some(1));
        assert!(e.message.contains("callee"), "{e}");
    }

    #[test]
    fn call_arg_type() {
        let m = caller(vec![(Scalar::I32, 1), (Scalar::U32, 1)], Callee::Func(FuncId(0)));
        let e = rejects(&m, "caller", "call-signature", Some(0), Some(2));
        assert!(e.message.contains("u32") && e.message.contains("i32"), "{e}");
    }

    #[test]
    fn unknown_callee() {
        let m = caller(vec![], Callee::Func(FuncId(7)));
        rejects(&m, "caller", "invalid-callee", Some(0), Some(0));
        let m = caller(vec![], Callee::Extern(ExternId(0)));
        rejects(&m, "caller", "invalid-callee", Some(0), Some(0));
    }

    #[test]
    fn return_type_mismatch() {
        let mut f = Function::new("r", sig(vec![], Type::I64));
        let x = konst(&mut f, Block(0), Scalar::I32, 1);
        ret(&mut f, Block(0), Some(x));
        rejects(&module(vec![f]), "r", "return-type", Some(0), Some(1));
        let mut f = Function::new("r", sig(vec![], Type::I64));
        ret(&mut f, Block(0), None);
        rejects(&module(vec![f]), "r", "return-type", Some(0), Some(0));
    }

    #[test]
    fn bad_cast() {
        for (from, to) in
            [(Scalar::Ptr, Scalar::F64), (Scalar::Ptr, Scalar::Bool), (Scalar::I32, Scalar::Ptr)]
        {
            let mut f = void_fn("c");
            let x = konst(&mut f, Block(0), from, 0);
            f.push_inst(Block(0), InstKind::Cast { to, arg: x }, Some(Type::Scalar(to)));
            ret(&mut f, Block(0), None);
            rejects(&module(vec![f]), "c", "bad-cast", Some(0), Some(1));
        }
        for (from, to) in
            [(Scalar::Bool, Scalar::F32), (Scalar::F32, Scalar::Bool), (Scalar::U64, Scalar::Ptr)]
        {
            assert!(cast_ok(from, to));
        }
    }

    #[test]
    fn bitcast_width() {
        let mut f = void_fn("bc");
        let x = konst(&mut f, Block(0), Scalar::I32, 0);
        f.push_inst(Block(0), InstKind::Bitcast { to: Scalar::F64, arg: x }, Some(Type::F64));
        ret(&mut f, Block(0), None);
        let e = rejects(&module(vec![f]), "bc", "bitcast-width", Some(0), Some(1));
        assert!(e.message.contains("32") && e.message.contains("64"), "{e}");
    }

    #[test]
    fn select_arms_differ() {
        let mut f = void_fn("s");
        let c = konst(&mut f, Block(0), Scalar::Bool, 1);
        let a = konst(&mut f, Block(0), Scalar::I32, 1);
        let b = konst(&mut f, Block(0), Scalar::I64, 1);
        f.push_inst(Block(0), InstKind::Select { cond: c, if_true: a, if_false: b }, Some(Type::I32));
        ret(&mut f, Block(0), None);
        rejects(&module(vec![f]), "s", "operand-type", Some(0), Some(3));
    }

    #[test]
    fn brif_cond_not_bool() {
        let mut f = void_fn("b");
        let b1 = f.add_block();
        let c = konst(&mut f, Block(0), Scalar::I32, 1);
        f.push_inst(
            Block(0),
            InstKind::Brif { cond: c, then_dest: call(b1, vec![]), else_dest: call(b1, vec![]) },
            None,
        );
        ret(&mut f, b1, None);
        rejects(&module(vec![f]), "b", "operand-type", Some(0), Some(1));
    }

    #[test]
    fn duplicate_names() {
        let mut a = void_fn("dup");
        ret(&mut a, Block(0), None);
        let m = module(vec![a.clone(), a.clone()]);
        rejects(&m, "dup", "duplicate-name", None, None);
        let mut m = module(vec![a]);
        m.externs.push(ExternFunc { name: "dup".into(), sig: sig(vec![], Type::Void) });
        rejects(&m, "dup", "duplicate-name", None, None);
    }

    #[test]
    fn empty_name() {
        let mut a = void_fn("");
        ret(&mut a, Block(0), None);
        rejects(&module(vec![a]), "fn0", "empty-name", None, None);
    }

    #[test]
    fn const_not_canonical() {
        let mut f = void_fn("k");
        konst(&mut f, Block(0), Scalar::I8, 0x80);
        ret(&mut f, Block(0), None);
        rejects(&module(vec![f]), "k", "const-canonical", Some(0), Some(0));
    }

    #[test]
    fn extract_index_out_of_range() {
        let st = Type::Struct(vec![Type::I32, Type::I32]);
        let mut f = void_fn("x");
        let z = f.push_inst(Block(0), InstKind::Zero { ty: st.clone() }, Some(st)).1.unwrap();
        f.push_inst(Block(0), InstKind::ExtractValue { agg: z, index: 5 }, Some(Type::I32));
        ret(&mut f, Block(0), None);
        rejects(&module(vec![f]), "x", "field-index", Some(0), Some(1));
    }

    #[test]
    fn too_large_type() {
        let big = Type::Array(Box::new(Type::Array(Box::new(Type::U8), u32::MAX)), 1000);
        let mut f = void_fn("big");
        let n = konst(&mut f, Block(0), Scalar::U64, 1);
        f.push_inst(Block(0), InstKind::Alloc { ty: big, count: n }, Some(Type::PTR));
        ret(&mut f, Block(0), None);
        rejects(&module(vec![f]), "big", "type-too-large", Some(0), Some(1));
    }

    #[test]
    fn too_large_nested_types() {
        let huge = Type::Array(Box::new(Type::Array(Box::new(Type::U64), u32::MAX)), u32::MAX);
        for t in [
            Type::Slice(Box::new(huge.clone())),
            Type::Array(Box::new(huge.clone()), 0),
            Type::Struct(vec![Type::I8, Type::Union(vec![huge.clone()])]),
            Type::Struct(vec![Type::Array(Box::new(Type::U8), 1 << 30); 2048]),
        ] {
            assert_eq!(check_type(&t, false, false).map_err(|e| e.0), Err("type-too-large"), "{t}");
        }
        assert!(
            check_type(&Type::Slice(Box::new(Type::Array(Box::new(Type::U8), 1 << 30))), false, true).is_ok()
        );
    }

    #[test]
    fn too_many_leaves() {
        let t = Type::Array(Box::new(Type::I64), 5000);
        let mut f = void_fn("wide");
        f.push_inst(Block(0), InstKind::Zero { ty: t.clone() }, Some(t));
        ret(&mut f, Block(0), None);
        // The result value's type is checked first (value-type stage).
        rejects(&module(vec![f]), "wide", "too-many-leaves", Some(0), Some(0));
    }

    #[test]
    fn too_deep_type() {
        let mut t = Type::I8;
        for _ in 0..(MAX_TYPE_DEPTH + 8) {
            t = Type::Array(Box::new(t), 1);
        }
        let mut f = void_fn("deep");
        f.push_inst(Block(0), InstKind::Zero { ty: t.clone() }, Some(t.clone()));
        ret(&mut f, Block(0), None);
        rejects(&module(vec![f]), "deep", "type-too-deep", Some(0), Some(0));
        // In a signature too, and in a type parameter only.
        let mut f = Function::new("deep_sig", sig(vec![], t.clone()));
        f.push_inst(Block(0), InstKind::Unreachable, None);
        rejects(&module(vec![f]), "deep_sig", "type-too-deep", None, None);
        let mut f = void_fn("deep_param");
        let p = konst(&mut f, Block(0), Scalar::Ptr, 0);
        f.push_inst(Block(0), InstKind::Store { ptr: p, value: p }, None);
        f.push_inst(Block(0), InstKind::Load { ty: t, ptr: p }, Some(Type::I8));
        ret(&mut f, Block(0), None);
        rejects(&module(vec![f]), "deep_param", "type-too-deep", Some(0), Some(2));
    }

    #[test]
    fn exact_max_depth_is_accepted() {
        let mut t = Type::I8;
        for _ in 0..MAX_TYPE_DEPTH {
            t = Type::Array(Box::new(t), 1);
        }
        assert_eq!(t.depth(), MAX_TYPE_DEPTH);
        assert!(check_type(&t, false, true).is_ok());
        let t2 = Type::Slice(Box::new(t));
        assert!(depth_le(&t2, MAX_TYPE_DEPTH + 1) && !depth_le(&t2, MAX_TYPE_DEPTH));
    }

    #[test]
    fn result_type_disagreement() {
        let mut f = void_fn("rt");
        f.push_inst(Block(0), InstKind::Const { ty: Scalar::I32, bits: 1 }, Some(Type::I64));
        ret(&mut f, Block(0), None);
        let e = rejects(&module(vec![f]), "rt", "result-type", Some(0), Some(0));
        assert!(e.message.contains("i32") && e.message.contains("i64"), "{e}");
        // A result on an instruction that defines none.
        let mut f = void_fn("rt");
        let p = konst(&mut f, Block(0), Scalar::Ptr, 0);
        f.push_inst(Block(0), InstKind::Free { ptr: p }, Some(Type::I32));
        ret(&mut f, Block(0), None);
        rejects(&module(vec![f]), "rt", "result-type", Some(0), Some(1));
        // No result on an instruction that defines one.
        let mut f = void_fn("rt");
        f.push_inst(Block(0), InstKind::Const { ty: Scalar::I32, bits: 1 }, None);
        ret(&mut f, Block(0), None);
        rejects(&module(vec![f]), "rt", "result-type", Some(0), Some(0));
    }

    #[test]
    fn out_of_range_value() {
        let mut f = Function::new("oor", sig(vec![], Type::I32));
        ret(&mut f, Block(0), Some(Value(999)));
        rejects(&module(vec![f]), "oor", "invalid-value", Some(0), Some(0));
    }

    #[test]
    fn out_of_range_inst_and_double_listing() {
        let mut f = void_fn("o");
        ret(&mut f, Block(0), None);
        f.blocks[0].insts.insert(0, Inst(42));
        rejects(&module(vec![f]), "o", "invalid-inst", Some(0), Some(42));
        let mut f = void_fn("o");
        let b1 = f.add_block();
        jump(&mut f, Block(0), b1, vec![]);
        ret(&mut f, b1, None);
        f.blocks[1].insts.insert(0, Inst(0)); // inst0 also in block1
        rejects(&module(vec![f]), "o", "inst-ownership", Some(1), Some(0));
        let mut f = void_fn("o");
        ret(&mut f, Block(0), None);
        f.insts.push(f.insts[0].clone()); // in no block
        rejects(&module(vec![f]), "o", "inst-ownership", None, Some(1));
    }

    #[test]
    fn corrupted_value_defs() {
        let mut f = void_fn("vd");
        konst(&mut f, Block(0), Scalar::I32, 1);
        ret(&mut f, Block(0), None);
        let good = f.clone();
        f.values[0].def = ValueDef::Result(Inst(99));
        rejects(&module(vec![f]), "vd", "value-def", Some(0), Some(0));
        let mut f = good.clone();
        f.values.push(ValueData { ty: Type::I32, def: ValueDef::Param(Block(5), 0) });
        rejects(&module(vec![f]), "vd", "value-def", None, None);
        let mut f = good.clone();
        f.insts[0].result = Some(Value(77));
        rejects(&module(vec![f]), "vd", "invalid-value", Some(0), Some(0));
    }

    #[test]
    fn entry_params_mismatch() {
        let mut f = Function::new("e", sig(vec![Type::I32], Type::Void));
        ret(&mut f, Block(0), None);
        f.values[0].ty = Type::I64;
        rejects(&module(vec![f]), "e", "entry-params", Some(0), None);
    }

    #[test]
    fn void_param_and_empty_union() {
        let mut f = Function::new("vp", sig(vec![Type::Void], Type::Void));
        ret(&mut f, Block(0), None);
        rejects(&module(vec![f]), "vp", "void-type", None, None);
        let mut f = Function::new("eu", sig(vec![Type::Union(vec![])], Type::Void));
        ret(&mut f, Block(0), None);
        rejects(&module(vec![f]), "eu", "empty-union", None, None);
        let mut f = Function::new("vs", sig(vec![Type::Struct(vec![Type::Void])], Type::Void));
        ret(&mut f, Block(0), None);
        rejects(&module(vec![f]), "vs", "void-type", None, None);
    }

    #[test]
    fn extern_signature_rules() {
        let mut m = module(vec![]);
        m.externs.push(ExternFunc { name: "ext".into(), sig: sig(vec![Type::Str], Type::Void) });
        rejects(&m, "ext", "extern-signature", None, None);
        m.externs[0].sig = sig(vec![Type::I64; 7], Type::Void);
        rejects(&m, "ext", "extern-signature", None, None);
        m.externs[0].sig = sig(vec![Type::F64; 9], Type::Void);
        rejects(&m, "ext", "extern-signature", None, None);
        m.externs[0].sig = sig([vec![Type::I64; 6], vec![Type::F64; 8]].concat(), Type::F32);
        assert_eq!(verify_module(&m), Ok(()));
    }

    #[test]
    fn switch_cases() {
        let mut f = Function::new("sw", sig(vec![Type::I8], Type::Void));
        let x = f.blocks[0].params[0];
        let b1 = f.add_block();
        f.push_inst(
            Block(0),
            InstKind::Switch {
                value: x,
                cases: vec![(1, call(b1, vec![])), (1, call(b1, vec![]))],
                default: call(b1, vec![]),
            },
            None,
        );
        ret(&mut f, b1, None);
        let good = f.clone();
        rejects(&module(vec![f]), "sw", "switch-case", Some(0), Some(0));
        let mut f = good;
        if let InstKind::Switch { cases, .. } = &mut f.insts[0].kind {
            cases[1].0 = 0xff; // not canonical for i8
        }
        rejects(&module(vec![f]), "sw", "switch-case", Some(0), Some(0));
    }

    #[test]
    fn misc_operand_rules() {
        // str.const with a bad data id
        let mut f = void_fn("m");
        f.push_inst(Block(0), InstKind::StrConst { data: DataId(3) }, Some(Type::Str));
        ret(&mut f, Block(0), None);
        rejects(&module(vec![f]), "m", "invalid-data", Some(0), Some(0));
        // binary op not accepted for the type
        let mut f = void_fn("m");
        let a = konst(&mut f, Block(0), Scalar::F64, 0);
        bin(&mut f, Block(0), BinOp::Shl, a, a);
        ret(&mut f, Block(0), None);
        rejects(&module(vec![f]), "m", "operand-type", Some(0), Some(1));
        // union.get variant out of range
        let u = Type::Union(vec![Type::I32]);
        let mut f = void_fn("m");
        let z = f.push_inst(Block(0), InstKind::Zero { ty: u.clone() }, Some(u)).1.unwrap();
        f.push_inst(Block(0), InstKind::UnionGet { variant: 1, arg: z }, Some(Type::I32));
        ret(&mut f, Block(0), None);
        rejects(&module(vec![f]), "m", "variant-index", Some(0), Some(1));
        // call_indirect on a non-function pointer
        let mut f = void_fn("m");
        let p = konst(&mut f, Block(0), Scalar::Ptr, 0);
        f.push_inst(Block(0), InstKind::CallIndirect { callee: p, args: vec![] }, None);
        ret(&mut f, Block(0), None);
        rejects(&module(vec![f]), "m", "operand-type", Some(0), Some(1));
    }

    #[test]
    fn verify_all_collects_several() {
        let mut a = void_fn("a");
        konst(&mut a, Block(0), Scalar::I8, 0x80);
        konst(&mut a, Block(0), Scalar::U8, 0x180);
        ret(&mut a, Block(0), None);
        let mut b = void_fn("b");
        konst(&mut b, Block(0), Scalar::I32, 1);
        let errs = verify_all(&module(vec![a, b]));
        let rules: Vec<_> = errs.iter().map(|e| (e.function.as_str(), e.rule)).collect();
        assert_eq!(
            rules,
            vec![("a", "const-canonical"), ("a", "const-canonical"), ("b", "missing-terminator")]
        );
    }

    fn random_type(rnd: &mut impl FnMut(u64) -> u64, depth: usize) -> Type {
        if depth == 0 {
            return match rnd(5) {
                0 => Type::Void,
                1 => Type::Any,
                2 => Type::Str,
                _ => Type::Scalar(Scalar::ALL[rnd(12) as usize]),
            };
        }
        let n = rnd(3) as usize;
        // One deep child, the others shallow, so the tree stays small.
        let deep = random_type(rnd, depth - 1);
        let mut ps: Vec<Type> = (0..n).map(|_| random_type(rnd, depth.min(2) - 1)).collect();
        ps.push(deep.clone());

        match rnd(5) {
            0 => Type::Array(Box::new(deep), [0, 1, 3, 1 << 20, u32::MAX][rnd(5) as usize]),
            1 => Type::Slice(Box::new(deep)),
            2 => Type::Struct(ps),
            3 => Type::Union(ps),
            _ => Type::FnPtr {
                sig: Box::new(Signature::new(ps, random_type(rnd, depth.min(2) - 1))),
                host: rnd(2) == 0,
            },
        }
    }

    /// Random corruption of valid modules must never panic.
    #[test]
    fn random_corruption_never_panics() {
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut rnd = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            if n == 0 {
                0
            } else {
                seed % n
            }
        };
        let base = module(vec![fib(), sum_loop()]);
        let mut rejected = 0;
        for _ in 0..4000 {
            let mut m = base.clone();
            for _ in 0..1 + rnd(3) {
                let fi = rnd(2) as usize;
                let f = &mut m.functions[fi];
                let small = |r: u64| if r.is_multiple_of(4) { 1000 + r } else { r % 12 };
                match rnd(10) {
                    0 => {
                        let i = rnd(f.insts.len() as u64) as usize;
                        let r = rnd(1 << 20);
                        f.insts[i].kind.map_operands(|v| if r % 3 == 0 { Value(small(r) as u32) } else { v });
                    }
                    1 => {
                        let i = rnd(f.insts.len() as u64) as usize;
                        let r = rnd(1 << 20);
                        for s in f.insts[i].kind.successors_mut() {
                            s.block = Block(small(r) as u32);
                        }
                    }
                    2 => {
                        let b = rnd(f.blocks.len() as u64) as usize;
                        let r = rnd(1 << 20);
                        f.blocks[b].insts.push(Inst(small(r) as u32));
                    }
                    3 => {
                        let b = rnd(f.blocks.len() as u64) as usize;
                        f.blocks[b].insts.clear();
                    }
                    4 if rnd(2) == 0 => {
                        let depth = rnd(40) as usize;
                        let t = random_type(&mut rnd, depth);
                        let v = rnd(f.values.len() as u64) as usize;
                        match rnd(4) {
                            0 => f.values[v].ty = t,
                            1 => f.sig.ret = t,
                            2 => {
                                m.externs.push(ExternFunc { name: "e".into(), sig: sig(vec![t], Type::Void) })
                            }
                            _ => {
                                let i = rnd(f.insts.len() as u64) as usize;
                                f.insts[i].kind = InstKind::Zero { ty: t };
                            }
                        }
                    }
                    4 => {
                        let v = rnd(f.values.len() as u64) as usize;
                        f.values[v].ty =
                            [Type::I32, Type::Void, Type::Union(vec![]), Type::F64][rnd(4) as usize].clone();
                    }
                    5 => {
                        let v = rnd(f.values.len() as u64) as usize;
                        let r = rnd(1 << 20);
                        f.values[v].def = if r % 2 == 0 {
                            ValueDef::Param(Block(small(r) as u32), (r % 3) as u32)
                        } else {
                            ValueDef::Result(Inst(small(r) as u32))
                        };
                    }
                    6 => {
                        let i = rnd(f.insts.len() as u64) as usize;
                        let r = rnd(1 << 20);
                        f.insts[i].result = if r % 3 == 0 { None } else { Some(Value(small(r) as u32)) };
                    }
                    7 => {
                        let b = rnd(f.blocks.len() as u64) as usize;
                        let r = rnd(1 << 20);
                        f.blocks[b].params.push(Value(small(r) as u32));
                    }
                    8 => {
                        let i = rnd(f.insts.len() as u64) as usize;
                        f.insts[i].kind = match rnd(4) {
                            0 => InstKind::Call {
                                callee: Callee::Func(FuncId(rnd(4) as u32)),
                                args: vec![Value(0)],
                            },
                            1 => InstKind::ExtractValue { agg: Value(0), index: rnd(3) as u32 },
                            2 => InstKind::UnionGet { variant: 0, arg: Value(rnd(5) as u32) },
                            _ => InstKind::FuncAddr { callee: Callee::Extern(ExternId(0)) },
                        };
                    }
                    _ => {
                        let b = rnd(f.blocks.len() as u64) as usize;
                        let n = f.blocks[b].insts.len() as u64;
                        if n > 1 {
                            let (i, j) = (rnd(n) as usize, rnd(n) as usize);
                            f.blocks[b].insts.swap(i, j);
                        }
                    }
                }
            }
            let first = verify_module(&m);
            let all = verify_all(&m);
            assert_eq!(first.clone().err(), all.first().cloned());
            if first.is_err() {
                rejected += 1;
            }
        }
        assert!(rejected > 2000, "{rejected}");
    }
}
