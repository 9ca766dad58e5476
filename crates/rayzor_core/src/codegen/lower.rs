//! The one lowering of MIR to machine code, for every backend.
//!
//! `Lower` walks a verified MIR function and drives an `Emitter`. Every
//! decision the semantics contract (docs/mir.md) makes about generated code is
//! made here, once: values are lists of native scalar leaves (bool as an `I8`
//! 0/1, `ptr` as an `I64`), converted to the canonical ABI form
//! (`codegen::abi`) only at call boundaries; every operation that could fault
//! (division, tag checks, bad function tokens) is guarded by an explicit check
//! that stores the trap in `VmCtx` and unwinds to the host entry
//! (`codegen::unwind`), so calls into MIR code need no check after them; the
//! prologue counts the entry (sampled), checks the call depth (an argument)
//! and the native stack limit; loop back-edges are counted unless the options
//! say not to.

use super::abi::{
    self, abi_ty, host_signature, jit_signature, native_ty, COUNTERS_STRIDE, COUNTER_BACKEDGES,
    COUNTER_CALLS, OSR_BACKEDGES, OSR_ENTRY, VMCTX_CALL_TICKS, VMCTX_EDGE_TICKS, VMCTX_ENTRY_LIMIT,
    VMCTX_ENTRY_SLOW, VMCTX_EPOCH, VMCTX_EPOCH_ADDR, VMCTX_GENERATION, VMCTX_GENERATION_MARK, VMCTX_RESUME,
    VMCTX_SIGINT_COUNTER, VMCTX_SIGINT_MARK, VMCTX_STACK_LIMIT, VMCTX_TRAP, VMCTX_TRAP_FUNC, VMCTX_UNWIND,
};
use super::builtins::{entry_slow_signature, Builtin};
use super::cast::{cast_plan, CastPlan};
use super::emit::{Conv, Emitter, FloatCC, FloatOp, IntCC, IntOp, Mem, Native, NativeSig, Ty, UnaryOp};
use super::strip::{self, strip_mined_loops, Counted, StripLoop};
use super::{CodegenEnv, CodegenOptions, CompileUnit, OsrSites};
use crate::mir::layout::{self, low_mask, payload_slots};
use crate::mir::osr::{self, Liveness};
use crate::mir::profile::{FunctionProfile, ProfileLayout, SiteKind};
use crate::mir::{
    BinOp, Block, BlockCall, Callee, CmpOp, FuncId, Function, Inst, InstKind, Scalar, Signature, TrapKind,
    Type, UnOp, Value, MAX_CALL_DEPTH,
};

/// Lower `unit` into `e`, which is positioned in the entry block of a function with signature
/// `abi::jit_signature(&func.sig)`.
pub fn lower_function<E: Emitter>(e: &mut E, unit: &CompileUnit<'_>) -> Result<(), String> {
    let CompileUnit { env, id, func, opts, osr, profile: pgo } = *unit;
    let params = e.params();
    let vmctx = params[0];
    let osr = osr.filter(|sites| !sites.points.is_empty());
    // Only code of the function as written profiles: the slots are laid out by its instructions.
    let slots = env.profiles.get(id.index()).copied().unwrap_or(0);
    let profile =
        (opts.profile && env.sample_rate != 0 && slots != 0 && std::ptr::eq(func, env.module.func(id)))
            .then(|| (slots, ProfileLayout::of(func)));
    // Code that polls in its loops gets counted strip-mined loops for run-time
    // steps too (`strip`); not code whose profile slots or OSR points are laid
    // out by the function's blocks and instructions (versioning adds some).
    let plan = (!opts.count_backedges && profile.is_none() && osr.is_none()).then(|| strip::plan_loops(func));
    let (versioned, unpolled) = plan.map_or((None, Vec::new()), |p| (p.func, p.unpolled));
    let func = versioned.as_ref().unwrap_or(func);
    let osr = osr.map(|sites| (sites, Liveness::new(func)));
    let mut l = Lower {
        e,
        env,
        id,
        func,
        opts,
        osr,
        rpo: osr::rpo_index(func),
        current: Block(0),
        pending_edges: Vec::new(),
        cold_path: false,
        osr_points: Vec::new(),
        blocks: Vec::with_capacity(func.blocks.len()),
        vals: vec![Vec::new(); func.values.len()],
        vmctx,
        ret_area: None,
        depth: vmctx,
        callee_depth: vmctx,
        depth_slot: None,
        counters: vmctx,
        exit_block: None,
        trap_blocks: Vec::new(),
        origin: id,
        origin_exits: Vec::new(),
        profile,
        pgo,
        inst_id: Inst(0),
        strips: Vec::new(),
        unpolled,
    };
    l.run(&params)
}

/// Lower the host entry of function `id` into `e` (signature
/// `abi::host_entry_signature()`): load the argument leaves from `args`, call
/// the function's current code through its slot, store a register result to `rets`.
pub fn lower_host_entry<E: Emitter>(e: &mut E, env: &CodegenEnv<'_>, id: FuncId) {
    let sig = &env.module.func(id).sig;
    let p = e.params();
    let (vmctx, args, rets) = (p[0], p[1], p[2]);
    let mut call_args = vec![vmctx];
    if abi::uses_ret_area(&sig.ret) {
        call_args.push(rets);
    }
    call_args.push(e.constant(Ty::I64, 0)); // depth: no MIR frame below
    for (k, leaf) in abi::param_leaves(sig).into_iter().enumerate() {
        call_args.push(e.load(Mem::Vm, abi_ty(leaf), args, 8 * k as i32));
    }
    let slot = e.constant(Ty::Addr, (env.slots_base + 8 * id.index()) as u64);
    let code = e.load(Mem::Slot, Ty::Addr, slot, 0);
    if let Some(r) = e.call(&jit_signature(sig), code, &call_args) {
        e.store(Mem::Vm, r, rets, 0);
    }
    e.ret(None);
}

struct Lower<'e, 'a, E: Emitter> {
    e: &'e mut E,
    env: &'a CodegenEnv<'a>,
    id: FuncId,
    func: &'a Function,
    opts: CodegenOptions,
    /// OSR transfer points, and what is live at each loop header.
    osr: Option<(&'a OsrSites<'a>, Liveness)>,
    /// The address of each loop header's `OsrPoint`, materialised once in the entry block.
    osr_points: Vec<(Block, E::Value)>,
    /// Reverse-postorder position of each block (for back-edges).
    rpo: Vec<usize>,
    /// The MIR block being lowered.
    current: Block,
    /// Counted back-edges of the current terminator, to fill once it is emitted.
    pending_edges: Vec<(E::Block, BlockCall)>,
    /// Emitting a rarely run path (a sampled count): blocks made now are cold
    /// too, so the layout keeps them away from the hot code.
    cold_path: bool,
    blocks: Vec<E::Block>,
    /// The native leaves of every MIR value defined so far.
    vals: Vec<Vec<E::Value>>,
    vmctx: E::Value,
    ret_area: Option<E::Value>,
    /// The call depth on entry (MIR frames below this one).
    depth: E::Value,
    /// `depth + 1`: what calls from this frame pass.
    callee_depth: E::Value,
    /// A frame slot holding `depth` for OSR transfers: kept in memory, so the
    /// cold transfer path does not keep it live in a register through the loops.
    depth_slot: Option<E::Value>,
    /// Address of this function's `FunctionCounters`.
    counters: E::Value,
    /// Unwinds to the host entry (a trap is pending).
    exit_block: Option<E::Block>,
    /// Trap blocks by (kind, MIR function the trap is reported from).
    trap_blocks: Vec<(TrapKind, FuncId, E::Block)>,
    /// The MIR function the instruction being lowered came from (`id` unless
    /// inlining moved it here): traps name it in `VmCtx::trap_func`.
    origin: FuncId,
    /// Blocks that record `trap_func` for a trap a builtin set, then exit.
    origin_exits: Vec<(FuncId, E::Block)>,
    /// How the function ran, if known (branch weights, switch case order).
    pgo: Option<&'a FunctionProfile>,
    /// Profiling code: the address of the function's profile slots and their layout.
    profile: Option<(usize, ProfileLayout)>,
    /// The instruction being lowered.
    inst_id: Inst,
    /// Strip-mined loops (`strip_mined_loops`): header, whether its `brif`
    /// stays in the loop on the then-edge, the header's iteration budget (an
    /// extra block parameter), and the block that polls and refills it.
    strips: Vec<Strip<E>>,
    /// Headers of loops that do not poll (short-trip clones, `strip::plan_loops`).
    unpolled: Vec<Block>,
}

/// A loop whose back-edges do not poll: its header counts a budget down and the
/// loop polls once per `iterations` iterations (see `Lower::strip_brif`).
struct Strip<E: Emitter> {
    header: Block,
    stay_then: bool,
    iterations: u64,
    /// A counted loop (`Counted`): the budget parameter is then a limit.
    counted: Option<Counted>,
    budget: E::Value,
    /// Where a used-up budget goes: computes a new one, then `poll`.
    refill: E::Block,
    /// Where edges from outside the loop go: computes the first budget, then
    /// `poll`. A block of its own (not `refill`) so that the first limit of a
    /// counted loop entered with a loop-invariant `i` (`k = 0` in a pixel
    /// loop) depends on invariants only and LLVM hoists it out of the
    /// enclosing loop.
    enter: E::Block,
    /// Polls and enters the header with the budget: the one block both paths
    /// join (so the header keeps a single preheader and the loop nest stays
    /// the shape LLVM vectorises).
    poll: E::Block,
}

impl<E: Emitter> Lower<'_, '_, E> {
    fn run(&mut self, params: &[E::Value]) -> Result<(), String> {
        let f = self.func;
        // Uncounted back-edges (the top tier) poll for interrupts: strip-mined
        // loops once per chunk of iterations, other loops at every back-edge.
        let strip = if self.opts.count_backedges {
            Vec::new()
        } else {
            strip_mined_loops(f, &self.rpo, &self.unpolled)
        };
        for (i, bd) in f.blocks.iter().enumerate() {
            let mut tys: Vec<Ty> = bd
                .params
                .iter()
                .flat_map(|p| layout::leaves(f.value_type(*p)).into_iter().map(|l| native_ty(l.ty)))
                .collect();
            let found = strip.iter().find(|l| l.header.index() == i);
            let entries = found.map(|_| (self.e.create_block(&tys), self.e.create_block(&tys)));
            if found.is_some() {
                tys.push(Ty::I64);
            }
            let poll = found.map(|_| self.e.create_block(&tys));
            let b = self.e.create_block(&tys);
            let mut leaves = self.e.block_params(b).into_iter();
            for p in &bd.params {
                let n = layout::leaf_count(f.value_type(*p));
                self.vals[p.index()] = leaves.by_ref().take(n).collect();
            }
            if let (
                Some(&StripLoop { header, stay_then, iterations, counted }),
                Some((refill, enter)),
                Some(poll),
            ) = (found, entries, poll)
            {
                let budget = leaves.next().expect("the budget parameter");
                self.strips.push(Strip {
                    header,
                    stay_then,
                    iterations,
                    counted,
                    budget,
                    refill,
                    enter,
                    poll,
                });
            }
            self.blocks.push(b);
        }
        self.prologue(params);
        for blk in f.reverse_postorder() {
            self.current = blk;
            self.e.switch_to(self.blocks[blk.index()]);
            for &inst in &f.blocks[blk.index()].insts {
                let data = f.inst(inst);
                self.origin = data.origin.unwrap_or(self.id);
                self.inst_id = inst;
                if let (Some(k), InstKind::Brif { cond, then_dest, else_dest }) =
                    (self.strip_of(blk), &data.kind)
                {
                    self.strip_brif(k, *cond, then_dest, else_dest);
                    continue;
                }
                let counted = self.strip_of(blk).and_then(|k| self.strips[k].counted.map(|c| (k, c)));
                if let Some((k, c)) = counted.filter(|(_, c)| data.result == Some(c.cmp)) {
                    // The counted loop's exit test, against the chunk's limit.
                    let i = self.header_leaves(k)[c.leaf];
                    let v =
                        self.e.icmp(if c.signed { IntCC::SLt } else { IntCC::ULt }, i, self.strips[k].budget);
                    self.set(data.result, vec![v]);
                    continue;
                }
                if data.kind.is_terminator()
                    && !self.opts.count_backedges
                    && self.has_polled_back_edge(&data.kind)
                {
                    self.poll_interrupt();
                }
                self.inst(&data.kind, data.result)?;
            }
            for (edge, call) in std::mem::take(&mut self.pending_edges) {
                self.e.switch_to(edge);
                self.back_edge(&call);
            }
        }
        self.fill_refills();
        self.finish_cold_blocks();
        Ok(())
    }

    /// The index in `strips` of the strip-mined loop with header `b`.
    fn strip_of(&self, b: Block) -> Option<usize> {
        self.strips.iter().position(|s| s.header == b)
    }

    /// The terminator `brif cond, then, else` of strip-mined header `k`: stay
    /// in the loop only while the budget lasts, so the loop keeps one exit
    /// whose trip count is known (min(original, budget): LLVM still
    /// vectorises and unrolls it). On that exit, the budget decides: left
    /// over, the loop really ends; used up, `refill` polls and re-enters the
    /// header with a full budget, re-running the header's instructions (pure,
    /// see `strip_mined_loops`), which branch exactly as they did.
    fn strip_brif(&mut self, k: usize, cond: Value, then_dest: &BlockCall, else_dest: &BlockCall) {
        let (stay_then, budget, refill) =
            (self.strips[k].stay_then, self.strips[k].budget, self.strips[k].refill);
        let c = self.one(cond);
        let check = self.e.create_block(&[]);
        let again = self.header_leaves(k);
        if let Some(ct) = self.strips[k].counted {
            // `c` compared `i` with the chunk's limit: the loop goes on (after
            // a poll and a new limit) if `i < n` still holds.
            let (tb, ta) = self.target(then_dest);
            self.e.brif(c, tb, &ta, check, &[]);
            self.e.switch_to(check);
            let n = self.one(ct.n);
            let more = self.e.icmp(if ct.signed { IntCC::SLt } else { IntCC::ULt }, again[ct.leaf], n);
            if self.polled_back_edge(else_dest.block) {
                self.poll_interrupt();
            }
            let (eb, ea) = self.target(else_dest);
            self.e.brif(more, refill, &again, eb, &ea);
            return;
        }
        let spent = self.icmp_const(IntCC::Eq, Scalar::I64, budget, 0);
        // The exit edge may be a polled back-edge of an enclosing loop.
        let exit = if stay_then { else_dest } else { then_dest };
        let exit_polls = self.polled_back_edge(exit.block);
        if stay_then {
            let left = self.icmp_const(IntCC::Ne, Scalar::I64, budget, 0);
            let go = self.e.int_op(IntOp::And, c, left);
            let (tb, ta) = self.target(then_dest);
            self.e.brif(go, tb, &ta, check, &[]);
            self.e.switch_to(check);
            if exit_polls {
                self.poll_interrupt();
            }
            let (eb, ea) = self.target(else_dest);
            self.e.brif(spent, refill, &again, eb, &ea);
        } else {
            let go = self.e.int_op(IntOp::Or, c, spent);
            let (eb, ea) = self.target(else_dest);
            self.e.brif(go, check, &[], eb, &ea);
            self.e.switch_to(check);
            if exit_polls {
                self.poll_interrupt();
            }
            let (tb, ta) = self.target(then_dest);
            self.e.brif(spent, refill, &again, tb, &ta);
        }
    }

    /// The native leaves of strip-mined loop `k`'s header parameters (without the budget).
    fn header_leaves(&self, k: usize) -> Vec<E::Value> {
        let header = &self.func.blocks[self.strips[k].header.index()];
        header.params.iter().flat_map(|p| self.vals[p.index()].clone()).collect()
    }

    /// The blocks before strip-mined loops' headers: `enter` (every entry)
    /// and `refill` (every used-up budget) compute a budget and go to `poll`,
    /// which polls and enters the header with it. (So the poll is in an outer
    /// loop around the header's.)
    fn fill_refills(&mut self) {
        for k in 0..self.strips.len() {
            let Strip { header, refill, enter, poll, .. } = self.strips[k];
            self.origin = self.id;
            for from in [enter, refill] {
                self.e.switch_to(from);
                let mut args = self.e.block_params(from);
                let budget = self.chunk_budget(k, &args);
                args.push(budget);
                self.e.jump(poll, &args);
            }
            self.e.switch_to(poll);
            self.poll_interrupt();
            let args = self.e.block_params(poll);
            self.e.jump(self.blocks[header.index()], &args);
        }
    }

    /// The budget strip-mined loop `k` starts a chunk with, its header's
    /// parameters being `args`: a number of iterations, or for a counted loop
    /// the chunk's limit.
    fn chunk_budget(&mut self, k: usize, args: &[E::Value]) -> E::Value {
        let Strip { iterations, counted, .. } = self.strips[k];
        match counted {
            // m = i + iterations if n - i (exact when i < n) exceeds
            // iterations, else n: no overflow, and i >= n gives n.
            Some(ct) => {
                let (i, n) = (args[ct.leaf], self.one(ct.n));
                let below = self.e.icmp(if ct.signed { IntCC::SLt } else { IntCC::ULt }, i, n);
                let rest = self.e.int_op(IntOp::Sub, n, i);
                // A chunk: `iterations` units of `i` for constant steps, or
                // `iterations` steps of a run-time one (<= 2^32: no overflow).
                let span = match ct.step {
                    None => self.i64c(iterations),
                    Some(s) => {
                        let s = self.one(s);
                        let k = self.i64c(iterations);
                        self.e.int_op(IntOp::Mul, s, k)
                    }
                };
                let far = self.e.icmp(IntCC::UGt, rest, span);
                let chunk = self.e.int_op(IntOp::And, below, far);
                let step = self.e.int_op(IntOp::Add, i, span);
                // Near the top of the range, `i + step` could wrap below the
                // limit: poll at every iteration there (limit i + 1).
                let top = self.konst(
                    if ct.signed { Scalar::I64 } else { Scalar::U64 },
                    strip::no_wrap_bound(ct.signed),
                );
                let safe = self.e.icmp(if ct.signed { IntCC::SLe } else { IntCC::ULe }, n, top);
                let unsafe_ = self.icmp_const(IntCC::Eq, Scalar::Bool, safe, 0);
                let near = self.e.int_op(IntOp::And, below, unsafe_);
                let one = self.add_const(i, 1);
                let last = self.e.select(near, one, n);
                self.e.select(chunk, step, last)
            }
            None => self.e.constant(Ty::I64, iterations),
        }
    }

    /// Count the call, check depth and stack, convert ABI params, enter block 0.
    fn prologue(&mut self, params: &[E::Value]) {
        let mut k = 1;
        if self.opts.osr_entry {
            // Everything comes through the OSR buffer (`abi::osr_entry_signature`).
            let state = params[0];
            self.vmctx = self.e.load(Mem::Vm, Ty::Addr, state, abi::OSR_STATE_VMCTX);
            if abi::uses_ret_area(&self.func.sig.ret) {
                self.ret_area = Some(self.e.load(Mem::Vm, Ty::Addr, state, abi::OSR_STATE_RET_AREA));
            }
        } else if abi::uses_ret_area(&self.func.sig.ret) {
            self.ret_area = Some(params[1]);
            k = 2;
        }
        let counters_addr = self.env.counters_base + COUNTERS_STRIDE * self.id.index();
        self.counters = self.e.constant(Ty::Addr, counters_addr as u64);
        let points: Vec<(Block, usize)> =
            self.osr.as_ref().map(|(s, _)| s.points.to_vec()).unwrap_or_default();
        for (header, addr) in points {
            let p = self.e.constant(Ty::Addr, addr as u64);
            self.osr_points.push((header, p));
        }
        let leaves = abi::param_leaves(&self.func.sig);
        let abi_args: Vec<E::Value> = if self.opts.osr_entry {
            // The transferring frame's depth, then the live values (`abi::osr_entry_signature`).
            let state = params[0];
            self.depth = self.e.load(Mem::Vm, Ty::I64, state, abi::OSR_STATE_DEPTH);
            (0..leaves.len()).map(|i| self.e.load(Mem::Vm, abi_ty(leaves[i]), state, 8 * i as i32)).collect()
        } else {
            self.depth = params[k];
            params[k + 1..].to_vec()
        };
        let counters = self.counters;
        // Sampled only where `sample_entries` says (T0): see there why.
        let ticks = self.opts.sample_entries.then_some(VMCTX_CALL_TICKS);
        let polled = self.opts.call_counter.is_some_and(|counter| {
            self.bump_counter(counters, COUNTER_CALLS + 8 * counter as i32, ticks, None)
        });

        let max = self.e.constant(Ty::I64, MAX_CALL_DEPTH as u64);
        let too_deep = self.e.icmp(IntCC::UGe, self.depth, max);
        self.trap_if(too_deep, TrapKind::StackOverflow);
        let sp = self.e.stack_pointer();
        if polled || !self.opts.entry_limit_poll {
            if !polled {
                self.poll_interrupt();
            }
            let limit = self.e.load(Mem::Vm, Ty::I64, self.vmctx, VMCTX_STACK_LIMIT);
            let low = self.e.icmp(IntCC::ULt, sp, limit);
            self.trap_if(low, TrapKind::StackOverflow);
        } else {
            self.entry_check(sp);
        }
        self.callee_depth = self.add_const(self.depth, 1);
        if !self.osr_points.is_empty() {
            let slot = self.e.stack_slot(8);
            self.e.store(Mem::Vm, self.depth, slot, 0);
            self.depth_slot = Some(slot);
        }

        let args: Vec<E::Value> =
            leaves.into_iter().zip(abi_args).map(|(leaf, v)| self.abi_to_native(leaf, v)).collect();
        self.e.jump(self.blocks[0], &args);
    }

    /// Count one event in the counter at `base + offset`. Sampled (`ticks`: the
    /// countdown's offset in VmCtx), only every `sample_rate`-th event of this
    /// thread adds `sample_rate`, and polls for an interrupt there (returns
    /// true: the fast path then needs no poll of its own); `ticks` None counts
    /// every event. With `osr` (a back-edge to a loop header with an OSR point
    /// at `base`), the counting path also looks for an OSR entry.
    fn bump_counter(
        &mut self,
        base: E::Value,
        offset: i32,
        ticks: Option<i32>,
        osr: Option<&BlockCall>,
    ) -> bool {
        if self.env.sample_rate == 0 {
            return false; // profiling compiled out
        }
        let n = self.env.sample_rate.max(1);
        let Some(ticks) = ticks.filter(|_| n > 1) else {
            let c = self.e.load(Mem::Vm, Ty::I64, base, offset);
            let c1 = self.add_const(c, 1);
            self.e.store(Mem::Vm, c1, base, offset);
            if let Some(call) = osr {
                self.osr_check(base, c1, call, true);
            }
            return false;
        };
        let t = self.e.load(Mem::Vm, Ty::I64, self.vmctx, ticks);
        let t1 = self.add_const(t, u64::MAX);
        self.e.store(Mem::Vm, t1, self.vmctx, ticks);
        let sample = self.e.create_block(&[]);
        let cont = self.e.create_block(&[]);
        self.e.set_cold(sample);
        self.e.brif(t1, cont, &[], sample, &[]);
        self.e.switch_to(sample);
        let outer = std::mem::replace(&mut self.cold_path, true);
        let reload = self.e.constant(Ty::I64, n);
        self.e.store(Mem::Vm, reload, self.vmctx, ticks);
        let c = self.e.load(Mem::Vm, Ty::I64, base, offset);
        let c1 = self.add_const(c, n);
        self.e.store(Mem::Vm, c1, base, offset);
        if let Some(call) = osr {
            self.osr_check(base, c1, call, false);
        }
        self.poll_interrupt();
        self.cold_path = outer;
        self.e.jump(cont, &[]);
        self.e.switch_to(cont);
        true
    }

    /// A new block without parameters (cold on a cold path).
    fn new_block(&mut self) -> E::Block {
        let b = self.e.create_block(&[]);
        if self.cold_path {
            self.e.set_cold(b);
        }
        b
    }

    /// Poll for an interrupt (`codegen::interrupt`), at every tier, with or
    /// without counting code: when the process-wide epoch differs from the one
    /// this call last saw, record it and (cold path, loads only: no call, so
    /// nothing is spilled around it) trap `interrupted` if this call's SIGINT
    /// counter or its jit's interrupt generation moved since the call started.
    fn poll_interrupt(&mut self) {
        let epoch_addr = self.e.load(Mem::Vm, Ty::Addr, self.vmctx, VMCTX_EPOCH_ADDR);
        let epoch = self.e.load(Mem::Slot, Ty::I64, epoch_addr, 0);
        let seen = self.e.load(Mem::Vm, Ty::I64, self.vmctx, VMCTX_EPOCH);
        let moved = self.e.icmp(IntCC::Ne, epoch, seen);
        let slow = self.e.create_block(&[]);
        let cont = self.new_block();
        self.e.set_cold(slow);
        self.e.brif(moved, slow, &[], cont, &[]);
        self.e.switch_to(slow);
        self.e.store(Mem::Vm, epoch, self.vmctx, VMCTX_EPOCH);
        let mut stop = None;
        for (counter, mark) in
            [(VMCTX_SIGINT_COUNTER, VMCTX_SIGINT_MARK), (VMCTX_GENERATION, VMCTX_GENERATION_MARK)]
        {
            let addr = self.e.load(Mem::Vm, Ty::Addr, self.vmctx, counter);
            let now = self.e.load(Mem::Slot, Ty::I64, addr, 0);
            let then = self.e.load(Mem::Vm, Ty::I64, self.vmctx, mark);
            let ne = self.e.icmp(IntCC::Ne, now, then);
            stop = Some(stop.map_or(ne, |s| self.e.int_op(IntOp::Or, s, ne)));
        }
        self.trap_if(stop.expect("two checks"), TrapKind::Interrupted);
        self.e.jump(cont, &[]);
        self.e.switch_to(cont);
    }

    /// The stack check of an entry that does not poll otherwise: against the
    /// entry limit, the stack limit or, when an interrupt asks every entry to
    /// look, above any stack pointer (`interrupt` module doc). So the fast path
    /// is the stack check alone (a load and a compare); the slow path
    /// (cold, a call that leaves the code itself on a trap) tells a real
    /// overflow from an interrupt and polls.
    fn entry_check(&mut self, sp: E::Value) {
        let limit = self.e.load(Mem::Slot, Ty::I64, self.vmctx, VMCTX_ENTRY_LIMIT);
        let low = self.e.icmp(IntCC::ULt, sp, limit);
        let slow = self.e.create_block(&[]);
        let cont = self.new_block();
        self.e.set_cold(slow);
        self.e.brif(low, slow, &[], cont, &[]);
        self.e.switch_to(slow);
        let slow_path = self.e.load(Mem::Vm, Ty::Addr, self.vmctx, VMCTX_ENTRY_SLOW);
        // The function the trap is reported from: at an entry, this one.
        let func = self.e.constant(Ty::I64, self.id.0 as u64 + 1);
        self.e.call(&entry_slow_signature(), slow_path, &[self.vmctx, sp, func]);
        self.e.jump(cont, &[]);
        self.e.switch_to(cont);
    }

    /// Whether the terminator `kind` of the block being lowered has a back-edge
    /// that polls (one to a loop that is not strip-mined).
    fn has_polled_back_edge(&self, kind: &InstKind) -> bool {
        kind.successors().iter().any(|c| self.polled_back_edge(c.block))
    }

    /// Whether an edge from the block being lowered to `to` is a back-edge
    /// that polls: one to a loop that is neither strip-mined nor unpolled.
    fn polled_back_edge(&self, to: Block) -> bool {
        osr::is_back_edge(&self.rpo, self.current, to)
            && self.strip_of(to).is_none()
            && !self.unpolled.contains(&to)
    }

    /// The branch target for `call` from the block being lowered: its block,
    /// or for a counted back-edge a new edge block (filled by `back_edge` once
    /// the terminator is emitted).
    fn target(&mut self, call: &BlockCall) -> (E::Block, Vec<E::Value>) {
        let back = osr::is_back_edge(&self.rpo, self.current, call.block);
        if self.opts.count_backedges && back {
            let edge = self.e.create_block(&[]);
            self.pending_edges.push((edge, call.clone()));
            return (edge, Vec::new());
        }
        if let Some(k) = self.strip_of(call.block) {
            // A strip-mined loop: entered through its refill block; a back-edge
            // spends one iteration of the budget.
            let mut args = self.block_args(call);
            if !back {
                return (self.strips[k].enter, args);
            }
            let budget = self.strips[k].budget;
            args.push(if self.strips[k].counted.is_some() {
                budget
            } else {
                self.add_const(budget, u64::MAX)
            });
            return (self.blocks[call.block.index()], args);
        }
        (self.blocks[call.block.index()], self.block_args(call))
    }

    /// A taken back-edge: count it (in the header's OSR point if it has one,
    /// where the counting path may transfer), then jump to the header.
    fn back_edge(&mut self, call: &BlockCall) {
        let point = self.osr_points.iter().find(|(h, _)| *h == call.block).map(|(_, p)| *p);
        let polled = match point {
            Some(p) => self.bump_counter(p, OSR_BACKEDGES, Some(VMCTX_EDGE_TICKS), Some(call)),
            None => self.bump_counter(self.counters, COUNTER_BACKEDGES, Some(VMCTX_EDGE_TICKS), None),
        };
        if !polled {
            self.poll_interrupt();
        }
        let args = self.block_args(call);
        self.e.jump(self.blocks[call.block.index()], &args);
    }

    /// On the counting path of a back-edge into the OSR point at `point`,
    /// whose count is now `count`: when due, load the point's entry and, if
    /// one is published, transfer to it.
    fn osr_check(&mut self, point: E::Value, count: E::Value, call: &BlockCall, every_event: bool) {
        let (mask, min) = match &self.osr {
            Some((sites, _)) => (if every_event { sites.check_mask } else { 0 }, sites.min_count),
            None => return,
        };
        let look = self.e.create_block(&[]);
        let cont = self.new_block();
        self.e.set_cold(look);
        let mut due = None;
        if mask != 0 {
            let m = self.i64c(mask);
            let low = self.e.int_op(IntOp::And, count, m);
            due = Some(self.icmp_const(IntCC::Eq, Scalar::U64, low, 0));
        }
        if min != 0 {
            let enough = self.icmp_const(IntCC::UGe, Scalar::U64, count, min);
            due = Some(match due {
                Some(d) => self.e.int_op(IntOp::And, d, enough),
                None => enough,
            });
        }
        match due {
            Some(d) => self.e.brif(d, look, &[], cont, &[]),
            None => self.e.jump(look, &[]),
        }
        self.e.switch_to(look);
        let entry = self.e.load(Mem::Slot, Ty::Addr, point, OSR_ENTRY);
        let transfer = self.e.create_block(&[]);
        self.e.set_cold(transfer);
        self.e.brif(entry, transfer, &[], cont, &[]);
        self.e.switch_to(transfer);
        self.osr_transfer(entry, call);
        self.e.switch_to(cont);
    }

    /// Call the continuation at `entry` with the values live at `call`'s
    /// header (its arguments, then `Liveness::live_in`) and return its result
    /// as this function's. The continuation takes this frame's place in the
    /// call depth, so recursion traps at the same depth with or without OSR.
    fn osr_transfer(&mut self, entry: E::Value, call: &BlockCall) {
        let Some((_, live)) = &self.osr else { return };
        let state: Vec<Value> = live.live_in(call.block).to_vec();
        let header = &self.func.blocks[call.block.index()];
        let mut params: Vec<Type> = header.params.iter().map(|p| self.func.value_type(*p).clone()).collect();
        params.extend(state.iter().map(|v| self.func.value_type(*v).clone()));
        let sig = Signature { params, ret: self.func.sig.ret.clone() };
        let mut leaves: Vec<(Scalar, E::Value)> = Vec::new();
        for (p, a) in header.params.iter().zip(&call.args).chain(state.iter().zip(&state)) {
            let tys = layout::leaves(self.func.value_type(*p));
            leaves.extend(tys.into_iter().map(|l| l.ty).zip(self.leaves_of(*a).to_vec()));
        }
        // The frame words (this frame's depth among them: the continuation takes
        // its place in the call depth) and the live values go through a buffer in
        // this frame (`abi::osr_entry_signature`): [frame words | state].
        let h = abi::osr_frame_words(&sig);
        let buf = self.e.stack_slot(8 * (h + leaves.len()) as u32);
        let words = (8 * h) as i32;
        self.e.store(Mem::Vm, self.vmctx, buf, words + abi::OSR_STATE_VMCTX);
        let depth = match self.depth_slot {
            Some(slot) => self.e.load(Mem::Vm, Ty::I64, slot, 0),
            None => self.depth,
        };
        self.e.store(Mem::Vm, depth, buf, words + abi::OSR_STATE_DEPTH);
        if let Some(ra) = self.ret_area {
            self.e.store(Mem::Vm, ra, buf, words + abi::OSR_STATE_RET_AREA);
        }
        for (k, (s, v)) in leaves.into_iter().enumerate() {
            let v = self.native_to_abi(s, v);
            self.e.store(Mem::Vm, v, buf, words + 8 * k as i32);
        }
        // `state` is computed from `buf` after the stores, not the slot address
        // the stores use: the one fixed-register value is then born at the call.
        let state = self.add_const(buf, words as u64);
        let args = [state];
        let r = self.e.call(&abi::osr_entry_signature(&sig), entry, &args);
        self.e.ret(r);
    }

    fn add_const(&mut self, x: E::Value, c: u64) -> E::Value {
        let k = self.e.constant(Ty::I64, c);
        self.e.int_op(IntOp::Add, x, k)
    }

    /// The block that leaves for the host entry with the pending trap (filled
    /// by `finish_cold_blocks`).
    fn exit_block(&mut self) -> E::Block {
        if let Some(b) = self.exit_block {
            return b;
        }
        let b = self.e.create_block(&[]);
        self.e.set_cold(b);
        self.exit_block = Some(b);
        b
    }

    fn trap_block(&mut self, kind: TrapKind) -> E::Block {
        let origin = self.origin;
        if let Some((_, _, b)) = self.trap_blocks.iter().find(|(k, o, _)| *k == kind && *o == origin) {
            return *b;
        }
        let b = self.e.create_block(&[]);
        self.e.set_cold(b);
        self.trap_blocks.push((kind, origin, b));
        b
    }

    /// After a builtin that reports failure by setting `VmCtx::trap` (not
    /// `trap_func`): leave at once if it did, naming the current origin.
    fn check_builtin_trap(&mut self) {
        let origin = self.origin;
        let blk = match self.origin_exits.iter().find(|(o, _)| *o == origin) {
            Some((_, b)) => *b,
            None => {
                let b = self.e.create_block(&[]);
                self.e.set_cold(b);
                self.origin_exits.push((origin, b));
                b
            }
        };
        let t = self.e.load(Mem::Vm, Ty::I64, self.vmctx, VMCTX_TRAP);
        let cont = self.e.create_block(&[]);
        self.e.brif(t, blk, &[], cont, &[]);
        self.e.switch_to(cont);
    }

    /// Branch to a trap of `kind` when the bool `cond` is set; continue otherwise.
    fn trap_if(&mut self, cond: E::Value, kind: TrapKind) {
        let trap = self.trap_block(kind);
        let cont = self.new_block();
        self.e.brif(cond, trap, &[], cont, &[]);
        self.e.switch_to(cont);
    }

    /// After a host call: leave at once if it failed (a trap is pending).
    /// (Calls into MIR code need no check: a trap there unwinds past this frame.)
    fn check_pending_trap(&mut self) {
        let t = self.e.load(Mem::Vm, Ty::I64, self.vmctx, VMCTX_TRAP);
        let exit = self.exit_block();
        let cont = self.e.create_block(&[]);
        self.e.brif(t, exit, &[], cont, &[]);
        self.e.switch_to(cont);
    }

    /// Fill the trap and exit blocks; called after all other code.
    fn finish_cold_blocks(&mut self) {
        let mut traps = std::mem::take(&mut self.trap_blocks);
        traps.sort_by_key(|(k, o, _)| (k.code(), o.0));
        for (kind, origin, blk) in traps {
            let exit = self.exit_block();
            self.e.switch_to(blk);
            let code = self.e.constant(Ty::I64, kind.code() as u64);
            self.e.store(Mem::Vm, code, self.vmctx, VMCTX_TRAP);
            let fid = self.e.constant(Ty::I64, origin.0 as u64 + 1);
            self.e.store(Mem::Vm, fid, self.vmctx, VMCTX_TRAP_FUNC);
            self.e.jump(exit, &[]);
        }
        for (origin, blk) in std::mem::take(&mut self.origin_exits) {
            let exit = self.exit_block();
            self.e.switch_to(blk);
            let fid = self.e.constant(Ty::I64, origin.0 as u64 + 1);
            self.e.store(Mem::Vm, fid, self.vmctx, VMCTX_TRAP_FUNC);
            self.e.jump(exit, &[]);
        }
        if let Some(blk) = self.exit_block {
            self.e.switch_to(blk);
            let resume = self.e.load(Mem::Vm, Ty::Addr, self.vmctx, VMCTX_RESUME);
            let unwind = self.e.load(Mem::Vm, Ty::Addr, self.vmctx, VMCTX_UNWIND);
            self.e.call(&NativeSig::new(&[Ty::Addr], None), unwind, &[resume]);
            self.e.unreachable();
        }
    }

    fn leaves_of(&self, v: Value) -> &[E::Value] {
        &self.vals[v.index()]
    }

    fn one(&self, v: Value) -> E::Value {
        self.vals[v.index()][0]
    }

    fn scalar_of(&self, v: Value) -> Scalar {
        self.func.value_type(v).scalar().unwrap_or(Scalar::I64)
    }

    /// A constant of scalar type `s` from its bits (masked to the width).
    fn konst(&mut self, s: Scalar, bits: u64) -> E::Value {
        let bits = if s.is_float() { bits } else { bits & low_mask(s.bits()) };
        self.e.constant(native_ty(s), bits)
    }

    fn i64c(&mut self, x: u64) -> E::Value {
        self.e.constant(Ty::I64, x)
    }

    /// `x <cc> c` for `x` of scalar type `s` and a constant given by its bits.
    fn icmp_const(&mut self, cc: IntCC, s: Scalar, x: E::Value, bits: u64) -> E::Value {
        let c = self.konst(s, bits);
        self.e.icmp(cc, x, c)
    }

    fn mask_bool(&mut self, v: E::Value) -> E::Value {
        let one = self.e.constant(Ty::I8, 1);
        self.e.int_op(IntOp::And, v, one)
    }

    /// ABI (canonical i64/f32/f64) to native form.
    fn abi_to_native(&mut self, s: Scalar, v: E::Value) -> E::Value {
        let t = native_ty(s);
        if s.is_float() || t == Ty::I64 {
            return v;
        }
        let r = self.e.convert(Conv::Trunc, t, v);
        if s == Scalar::Bool {
            self.mask_bool(r)
        } else {
            r
        }
    }

    /// Native to ABI form: integers extended to i64 by their own signedness.
    fn native_to_abi(&mut self, s: Scalar, v: E::Value) -> E::Value {
        if s.is_float() || native_ty(s) == Ty::I64 {
            v
        } else if s.is_signed() {
            self.e.convert(Conv::SExt, Ty::I64, v)
        } else {
            self.e.convert(Conv::ZExt, Ty::I64, v)
        }
    }

    /// The raw bits of a leaf, zero-extended to 64 (for union payload packing).
    fn bits_u64(&mut self, s: Scalar, v: E::Value) -> E::Value {
        match s {
            Scalar::F32 => {
                let i = self.e.convert(Conv::Bitcast, Ty::I32, v);
                self.e.convert(Conv::ZExt, Ty::I64, i)
            }
            Scalar::F64 => self.e.convert(Conv::Bitcast, Ty::I64, v),
            _ if native_ty(s) == Ty::I64 => v,
            _ => self.e.convert(Conv::ZExt, Ty::I64, v),
        }
    }

    /// A leaf of type `s` from the low bits of a 64-bit word (canonicalised).
    fn leaf_from_word(&mut self, s: Scalar, w: E::Value) -> E::Value {
        match s {
            Scalar::F32 => {
                let i = self.e.convert(Conv::Trunc, Ty::I32, w);
                self.e.convert(Conv::Bitcast, Ty::F32, i)
            }
            Scalar::F64 => self.e.convert(Conv::Bitcast, Ty::F64, w),
            _ if native_ty(s) == Ty::I64 => w,
            Scalar::Bool => {
                let r = self.e.convert(Conv::Trunc, Ty::I8, w);
                self.mask_bool(r)
            }
            _ => self.e.convert(Conv::Trunc, native_ty(s), w),
        }
    }

    /// (base, offset) for an access at `p + offset`, folding offsets that fit.
    fn addr(&mut self, p: E::Value, offset: u64) -> (E::Value, i32) {
        if offset <= i32::MAX as u64 {
            (p, offset as i32)
        } else {
            (self.add_const(p, offset), 0)
        }
    }

    fn load_leaves(&mut self, ty: &Type, p: E::Value) -> Vec<E::Value> {
        layout::leaves(ty)
            .into_iter()
            .map(|l| {
                let (base, off) = self.addr(p, l.offset as u64);
                let v = self.e.load(Mem::Heap, native_ty(l.ty), base, off);
                if l.ty == Scalar::Bool {
                    self.mask_bool(v)
                } else {
                    v
                }
            })
            .collect()
    }

    fn store_leaf(&mut self, s: Scalar, v: E::Value, p: E::Value, offset: u64) {
        let (base, off) = self.addr(p, offset);
        let v = if s == Scalar::Bool { self.mask_bool(v) } else { v };
        self.e.store(Mem::Heap, v, base, off);
    }

    fn call_builtin(&mut self, b: Builtin, args: &[E::Value]) -> Option<E::Value> {
        let addr = self.e.constant(Ty::Addr, self.env.builtins[b as usize] as u64);
        self.e.call(&b.signature(), addr, args)
    }

    /// Call compiled MIR code at `code` with MIR arguments; returns the result leaves.
    fn call_mir(&mut self, sig: &Signature, code: E::Value, args: &[Value]) -> Vec<E::Value> {
        let mut call_args = vec![self.vmctx];
        let ret_leaves = abi::ret_leaves(&sig.ret);
        let area = (ret_leaves.len() >= 2).then(|| self.e.stack_slot(8 * ret_leaves.len() as u32));
        call_args.extend(area);
        call_args.push(self.callee_depth);
        for a in args {
            let tys = layout::leaves(self.func.value_type(*a));
            for (l, v) in tys.into_iter().zip(self.leaves_of(*a).to_vec()) {
                let v = self.native_to_abi(l.ty, v);
                call_args.push(v);
            }
        }
        let r = self.e.call(&jit_signature(sig), code, &call_args);
        match area {
            None => r.into_iter().zip(&ret_leaves).map(|(v, s)| self.abi_to_native(*s, v)).collect(),
            Some(a) => ret_leaves
                .iter()
                .enumerate()
                .map(|(k, s)| {
                    let v = self.e.load(Mem::Vm, abi_ty(*s), a, 8 * k as i32);
                    self.abi_to_native(*s, v)
                })
                .collect(),
        }
    }

    fn call_host(&mut self, sig: &Signature, addr: E::Value, args: &[Value]) -> Vec<E::Value> {
        let vals: Vec<E::Value> = args.iter().map(|a| self.one(*a)).collect();
        let r = self.e.call(&host_signature(sig), addr, &vals);
        // A host function that failed (a Python exception) aborted the call.
        self.check_pending_trap();
        match (sig.ret.scalar(), r) {
            (Some(Scalar::Bool), Some(v)) => vec![self.mask_bool(v)],
            (_, r) => r.into_iter().collect(),
        }
    }

    /// The current code of module function `func`, from its slot.
    fn slot_code(&mut self, func: FuncId) -> E::Value {
        let slot = self.e.constant(Ty::Addr, (self.env.slots_base + 8 * func.index()) as u64);
        self.e.load(Mem::Slot, Ty::Addr, slot, 0)
    }

    fn block_args(&self, call: &BlockCall) -> Vec<E::Value> {
        call.args.iter().flat_map(|a| self.leaves_of(*a).iter().copied()).collect()
    }

    fn set(&mut self, result: Option<Value>, leaves: Vec<E::Value>) {
        if let Some(r) = result {
            self.vals[r.index()] = leaves;
        }
    }

    fn inst(&mut self, kind: &InstKind, result: Option<Value>) -> Result<(), String> {
        use InstKind::*;
        let out: Vec<E::Value> = match kind {
            Const { ty, bits } => vec![self.konst(*ty, *bits)],
            Zero { ty } => layout::leaves(ty).into_iter().map(|l| self.konst(l.ty, 0)).collect(),
            Binary { op, lhs, rhs } => {
                let s = self.scalar_of(*lhs);
                let (a, b) = (self.one(*lhs), self.one(*rhs));
                vec![self.binary(*op, s, a, b)]
            }
            Unary { op, arg } => {
                let s = self.scalar_of(*arg);
                let a = self.one(*arg);
                vec![self.unary(*op, s, a)]
            }
            Cmp { op, lhs, rhs } => {
                let s = self.scalar_of(*lhs);
                let (a, b) = (self.one(*lhs), self.one(*rhs));
                vec![self.compare(*op, s, a, b)]
            }
            Fma { a, b, c } => {
                let s = self.scalar_of(*a);
                let (x, y, z) = (self.one(*a), self.one(*b), self.one(*c));
                vec![self.fma(s, x, y, z)]
            }
            Select { cond, if_true, if_false } => {
                let c = self.one(*cond);
                let t = self.leaves_of(*if_true).to_vec();
                let f = self.leaves_of(*if_false).to_vec();
                t.into_iter().zip(f).map(|(x, y)| self.e.select(c, x, y)).collect()
            }
            Cast { to, arg } => {
                let from = self.scalar_of(*arg);
                let a = self.one(*arg);
                vec![self.cast(from, *to, a)]
            }
            Bitcast { to, arg } => {
                let from = self.scalar_of(*arg);
                let a = self.one(*arg);
                let (ft, tt) = (native_ty(from), native_ty(*to));
                vec![if ft == tt { a } else { self.e.convert(Conv::Bitcast, tt, a) }]
            }
            Load { ty, ptr } => {
                let p = self.one(*ptr);
                self.load_leaves(ty, p)
            }
            Store { ptr, value } => {
                let p = self.one(*ptr);
                let tys = layout::leaves(self.func.value_type(*value));
                for (l, v) in tys.into_iter().zip(self.leaves_of(*value).to_vec()) {
                    self.store_leaf(l.ty, v, p, l.offset as u64);
                }
                vec![]
            }
            Alloc { ty, count } => {
                let size = self.i64c(layout::size_of(ty));
                let n = self.one(*count);
                let p = self.call_builtin(Builtin::Alloc, &[self.vmctx, size, n]).ok_or("alloc returns")?;
                self.check_builtin_trap();
                vec![p]
            }
            Free { ptr } => {
                let p = self.one(*ptr);
                self.call_builtin(Builtin::Free, &[p]);
                vec![]
            }
            MemCopy { dst, src, len } => {
                let a = [self.one(*dst), self.one(*src), self.one(*len)];
                self.call_builtin(Builtin::MemMove, &a);
                vec![]
            }
            MemSet { dst, byte, len } => {
                let byte = self.e.convert(Conv::ZExt, Ty::I64, self.one(*byte));
                let a = [self.one(*dst), byte, self.one(*len)];
                self.call_builtin(Builtin::MemSet, &a);
                vec![]
            }
            FieldAddr { ty, ptr, field } => {
                let off = match ty {
                    Type::Struct(fields) => layout::field_offset(fields, *field as usize),
                    _ => return Err("field on a non-struct type".into()),
                };
                let p = self.one(*ptr);
                vec![self.add_const(p, off)]
            }
            ElemAddr { elem, ptr, index } => {
                let s = self.scalar_of(*index);
                let i = self.one(*index);
                let i = self.native_to_abi(s, i);
                let size = self.i64c(layout::size_of(elem));
                let scaled = self.e.int_op(IntOp::Mul, i, size);
                vec![self.e.int_op(IntOp::Add, self.one(*ptr), scaled)]
            }
            ExtractValue { agg, index } => {
                let ty = self.func.value_type(*agg);
                let r = layout::field_leaf_range(ty, *index).ok_or("extract of a missing field")?;
                self.leaves_of(*agg)[r].to_vec()
            }
            InsertValue { agg, index, value } => {
                let ty = self.func.value_type(*agg);
                let r = layout::field_leaf_range(ty, *index).ok_or("insert into a missing field")?;
                let mut leaves = self.leaves_of(*agg).to_vec();
                leaves.splice(r, self.leaves_of(*value).iter().copied());
                leaves
            }
            UnionMake { ty, variant, value } => {
                let Type::Union(vs) = ty else { return Err("union.make of a non-union".into()) };
                let words = layout::union_payload_words(vs) as usize;
                let mut out = vec![self.e.constant(Ty::I32, *variant as u64)];
                let mut w: Vec<E::Value> = (0..words).map(|_| self.i64c(0)).collect();
                let leaves = self.leaves_of(*value).to_vec();
                for (slot, v) in payload_slots(&vs[*variant as usize]).into_iter().zip(leaves) {
                    let bits = self.bits_u64(slot.ty, v);
                    let shifted = if slot.shift == 0 {
                        bits
                    } else {
                        let sh = self.i64c(slot.shift as u64);
                        self.e.int_op(IntOp::Shl, bits, sh)
                    };
                    w[slot.word as usize] = self.e.int_op(IntOp::Or, w[slot.word as usize], shifted);
                }
                out.extend(w);
                out
            }
            UnionTag { arg } | AnyTag { arg } => vec![self.leaves_of(*arg)[0]],
            UnionGet { variant, arg } => {
                let Type::Union(vs) = self.func.value_type(*arg).clone() else {
                    return Err("union.get of a non-union".into());
                };
                let leaves = self.leaves_of(*arg).to_vec();
                let bad = self.icmp_const(IntCC::Ne, Scalar::U32, leaves[0], *variant as u64);
                self.trap_if(bad, TrapKind::BadTag);
                payload_slots(&vs[*variant as usize])
                    .into_iter()
                    .map(|slot| {
                        let w = leaves[1 + slot.word as usize];
                        let w = if slot.shift == 0 {
                            w
                        } else {
                            let sh = self.i64c(slot.shift as u64);
                            self.e.int_op(IntOp::UShr, w, sh)
                        };
                        self.leaf_from_word(slot.ty, w)
                    })
                    .collect()
            }
            AnyMake { arg } => {
                let s = self.scalar_of(*arg);
                let tag = self.e.constant(Ty::I32, s.any_tag() as u64);
                let v = self.one(*arg);
                let payload = if s.is_float() { self.bits_u64(s, v) } else { self.native_to_abi(s, v) };
                vec![tag, payload]
            }
            AnyGet { ty, arg } => {
                let leaves = self.leaves_of(*arg).to_vec();
                let bad = self.icmp_const(IntCC::Ne, Scalar::U32, leaves[0], ty.any_tag() as u64);
                self.trap_if(bad, TrapKind::BadTag);
                vec![self.leaf_from_word(*ty, leaves[1])]
            }
            StrConst { data } => {
                let (p, n) = self.env.data[data.index()];
                vec![self.i64c(p as u64), self.i64c(n as u64)]
            }
            FuncAddr { callee } => match callee {
                Callee::Func(f) => vec![self.i64c(abi::FUNC_TOKEN_BASE + f.0 as u64)],
                Callee::Extern(e) => vec![self.i64c(self.env.extern_addrs[e.index()] as u64)],
            },
            Call { callee, args } => match callee {
                Callee::Func(f) => {
                    if let Some((_, slot)) = self.profile_site() {
                        self.add_to_slot(slot, None);
                    }
                    let sig = &self.env.module.func(*f).sig;
                    // A self-call of code that is not replaced any more goes
                    // straight to this code (the backend sees the recursion);
                    // every other call reaches the callee's current code.
                    let direct = *f == self.id && self.opts.direct_self_calls && !self.opts.osr_entry;
                    let code = match direct.then(|| self.e.self_address()).flatten() {
                        Some(code) => code,
                        None => self.slot_code(*f),
                    };
                    self.call_mir(sig, code, args)
                }
                Callee::Extern(e) => {
                    let sig = &self.env.module.externs[e.index()].sig;
                    let addr = self.e.constant(Ty::Addr, self.env.extern_addrs[e.index()] as u64);
                    self.call_host(sig, addr, args)
                }
            },
            CallIndirect { callee, args } => {
                let Type::FnPtr { sig, host } = self.func.value_type(*callee).clone() else {
                    return Err("call_indirect through a non-function type".into());
                };
                let p = self.one(*callee);
                if host {
                    let bad = self.icmp_const(IntCC::ULt, Scalar::U64, p, 4096);
                    self.trap_if(bad, TrapKind::MemoryFault);
                    self.call_host(&sig, p, args)
                } else {
                    let code = self.token_code(&sig, p);
                    if let Some((_, rows)) = self.profile_site() {
                        self.count_target(rows, p);
                    }
                    self.call_mir(&sig, code, args)
                }
            }
            DepthCheck => {
                // A call from this frame would enter with depth + 1 and trap if that reaches the limit.
                let d1 = self.add_const(self.depth, 1);
                let too_deep = self.icmp_const(IntCC::UGe, Scalar::U64, d1, MAX_CALL_DEPTH as u64);
                self.trap_if(too_deep, TrapKind::StackOverflow);
                vec![]
            }
            Jump { dest } => {
                let (b, args) = self.target(dest);
                self.e.jump(b, &args);
                vec![]
            }
            Brif { cond, then_dest, else_dest } => {
                let c = self.one(*cond);
                if let Some((_, slots)) = self.profile_site() {
                    // Slot 0 counts not-taken, slot 1 taken: add 1 at `slots + 8 * cond`
                    // (no extra branch; the compare still fuses with the branch).
                    let k = self.e.convert(Conv::ZExt, Ty::I64, c);
                    self.add_to_slot(slots, Some(k));
                }
                let (tb, ta) = self.target(then_dest);
                let (eb, ea) = self.target(else_dest);
                if let Some(b) = self.pgo.and_then(|p| p.branch(self.inst_id)) {
                    self.e.set_weights(&[b.taken, b.not_taken]);
                }
                self.e.brif(c, tb, &ta, eb, &ea);
                vec![]
            }
            Switch { value, cases, default } => {
                self.switch(*value, cases, default);
                vec![]
            }
            Return { value } => {
                let rets = abi::ret_leaves(&self.func.sig.ret);
                let leaves = value.map(|v| self.leaves_of(v).to_vec()).unwrap_or_default();
                if rets.len() == 1 {
                    let v = self.native_to_abi(rets[0], leaves[0]);
                    self.e.ret(Some(v));
                } else {
                    for (k, (s, v)) in rets.iter().zip(leaves).enumerate() {
                        let area = self.ret_area.ok_or("internal error: no return area")?;
                        let v = self.native_to_abi(*s, v);
                        self.e.store(Mem::Vm, v, area, 8 * k as i32);
                    }
                    self.e.ret(None);
                }
                vec![]
            }
            Trap => {
                let t = self.trap_block(TrapKind::User);
                self.e.jump(t, &[]);
                vec![]
            }
            Unreachable => {
                let t = self.trap_block(TrapKind::Unreachable);
                self.e.jump(t, &[]);
                vec![]
            }
        };
        self.set(result, out);
        Ok(())
    }

    /// The code of the module function a `func.addr` token `p` names, checked:
    /// a token `FUNC_TOKEN_BASE + i` with `i < #functions` whose signature is
    /// `sig`; anything else traps with `memory_fault`.
    fn token_code(&mut self, sig: &Signature, p: E::Value) -> E::Value {
        let base = self.i64c(abi::FUNC_TOKEN_BASE);
        let idx = self.e.int_op(IntOp::Sub, p, base);
        let functions = &self.env.module.functions;
        let bad = self.icmp_const(IntCC::UGe, Scalar::U64, idx, functions.len() as u64);
        self.trap_if(bad, TrapKind::MemoryFault);
        let matching: Vec<u64> =
            functions.iter().enumerate().filter(|(_, f)| f.sig == *sig).map(|(i, _)| i as u64).collect();
        if matching.len() < functions.len() {
            let mut ok = self.e.constant(Ty::I8, 0);
            for i in matching {
                let eq = self.icmp_const(IntCC::Eq, Scalar::U64, idx, i);
                ok = self.e.int_op(IntOp::Or, ok, eq);
            }
            let one = self.e.constant(Ty::I8, 1);
            let mismatch = self.e.int_op(IntOp::Xor, ok, one);
            self.trap_if(mismatch, TrapKind::MemoryFault);
        }
        let three = self.i64c(3);
        let off = self.e.int_op(IntOp::Shl, idx, three);
        let slots = self.i64c(self.env.slots_base as u64);
        let slot = self.e.int_op(IntOp::Add, slots, off);
        self.e.load(Mem::Slot, Ty::Addr, slot, 0)
    }

    fn switch(&mut self, value: Value, cases: &[(u64, BlockCall)], default: &BlockCall) {
        let s = self.scalar_of(value);
        let v = self.one(value);
        let counted = self.profile_site().map(|(_, slots)| slots);
        let mut seen = std::collections::HashSet::new();
        let mut keys = Vec::new();
        let mut pads = Vec::new();
        // A case that passes no arguments branches straight to its block (or its
        // back-edge's edge block); others go through a pad block that passes
        // them (one per case, so linear). Profiling code gives every case a pad
        // that counts it (the `k`-th slot: the case's index, the default last).
        let mut target = |l: &mut Self, call: &BlockCall, k: usize| {
            let slot = counted.map(|slots| slots + 8 * k);
            if call.args.is_empty() && slot.is_none() {
                l.target(call).0
            } else {
                let pad = l.e.create_block(&[]);
                pads.push((pad, call.clone(), slot));
                pad
            }
        };
        let counts = self.pgo.and_then(|p| p.switch(self.inst_id)).filter(|c| c.cases.len() == cases.len());
        let mut weights = Vec::new();
        for (i, (k, call)) in cases.iter().enumerate() {
            let key = k & low_mask(s.bits());
            if seen.insert(key) {
                let b = target(self, call, i);
                keys.push((key, b, counts.map_or(0, |c| c.cases[i])));
            }
        }
        let dflt = target(self, default, cases.len());
        if let Some(c) = counts {
            // Cases ordered by frequency: a case that takes most of what is
            // left is tested first with a compare and branch (predicted, and
            // cheaper than the table jump); the rest stay a `switch`.
            let mut left: u64 = keys.iter().fold(c.default, |a, k| a.saturating_add(k.2));
            for _ in 0..2 {
                let Some(top) = (0..keys.len()).max_by_key(|&i| keys[i].2) else { break };
                let n = keys[top].2;
                if keys.len() < 2 || n == 0 || n.saturating_mul(2) < left.saturating_add(1) {
                    break;
                }
                let (key, b, _) = keys.remove(top);
                let hit = self.icmp_const(IntCC::Eq, s, v, key);
                let rest = self.new_block();
                self.e.set_weights(&[n, left.saturating_sub(n)]);
                self.e.brif(hit, b, &[], rest, &[]);
                self.e.switch_to(rest);
                left = left.saturating_sub(n);
            }
            weights.push(c.default);
            weights.extend(keys.iter().map(|k| k.2));
            self.e.set_weights(&weights);
        }
        let keys: Vec<(u64, E::Block)> = keys.into_iter().map(|(k, b, _)| (k, b)).collect();
        self.e.switch(v, native_ty(s), &keys, dflt);
        for (pad, call, slot) in pads {
            self.e.switch_to(pad);
            if let Some(slot) = slot {
                self.add_to_slot(slot, None);
            }
            let (b, args) = self.target(&call);
            self.e.jump(b, &args);
        }
    }

    /// The profile site of the instruction being lowered, when this code
    /// profiles: what it counts and the address of its first slot.
    fn profile_site(&self) -> Option<(SiteKind, usize)> {
        let (base, layout) = self.profile.as_ref()?;
        layout.site(self.inst_id).map(|(kind, first)| (kind, base + 8 * first))
    }

    /// Add 1 to the profile slot at `addr` (+ 8 * `index` when given).
    ///
    /// Profiles count every event, whatever `sample_rate` (which only says
    /// whether there is counting code at all): a sampling countdown costs a
    /// load, a store and a branch per event, as much as the increment it would
    /// save (measured: sampled collection at rate 16 was slower than counting
    /// every event), so the profiling tiers count as HotSpot's profiling tier
    /// does, and the time spent in them is what bounds the cost.
    fn add_to_slot(&mut self, addr: usize, index: Option<E::Value>) {
        let mut p = self.e.constant(Ty::Addr, addr as u64);
        if let Some(k) = index {
            let three = self.i64c(3);
            let off = self.e.int_op(IntOp::Shl, k, three);
            p = self.e.int_op(IntOp::Add, p, off);
        }
        let c = self.e.load(Mem::Vm, Ty::I64, p, 0);
        let c1 = self.add_const(c, 1);
        self.e.store(Mem::Vm, c1, p, 0);
    }

    /// Count a call through token `token` into the `call_indirect` rows at
    /// `rows` (`SiteKind::Indirect`): the first row (the builtin keeps the most
    /// frequent target there) inline, anything else in `Builtin::ProfileTarget`.
    fn count_target(&mut self, rows: usize, token: E::Value) {
        let base = self.e.constant(Ty::Addr, rows as u64);
        let first = self.e.load(Mem::Vm, Ty::I64, base, 0);
        let hit = self.e.icmp(IntCC::Eq, first, token);
        let (inline, slow, join) = (self.new_block(), self.new_block(), self.new_block());
        self.e.set_cold(slow);
        self.e.brif(hit, inline, &[], slow, &[]);
        self.e.switch_to(inline);
        self.add_to_slot(rows + 8, None);
        self.e.jump(join, &[]);
        self.e.switch_to(slow);
        let one = self.i64c(1);
        self.call_builtin(Builtin::ProfileTarget, &[base, token, one]);
        self.e.jump(join, &[]);
        self.e.switch_to(join);
    }

    fn binary(&mut self, op: BinOp, s: Scalar, a: E::Value, b: E::Value) -> E::Value {
        if s.is_float() {
            let fop = match op {
                BinOp::Add => FloatOp::Add,
                BinOp::Sub => FloatOp::Sub,
                BinOp::Mul => FloatOp::Mul,
                BinOp::Div => FloatOp::Div,
                BinOp::Min => FloatOp::Min,
                BinOp::Max => FloatOp::Max,
                BinOp::Copysign => FloatOp::Copysign,
                // Rem: the same Rust `%` (fmod) the interpreter uses.
                _ => {
                    let f = if s == Scalar::F32 { Builtin::Fmodf } else { Builtin::Fmod };
                    return self.call_builtin(f, &[a, b]).expect("fmod returns");
                }
            };
            return self.e.float_op(fop, a, b);
        }
        let signed = s.is_signed();
        let iop = match op {
            BinOp::Add => IntOp::Add,
            BinOp::Sub => IntOp::Sub,
            BinOp::Mul => IntOp::Mul,
            BinOp::And => IntOp::And,
            BinOp::Or => IntOp::Or,
            BinOp::Xor => IntOp::Xor,
            BinOp::Shl => IntOp::Shl,
            BinOp::Shr if signed => IntOp::SShr,
            BinOp::Shr => IntOp::UShr,
            BinOp::Rotl => IntOp::Rotl,
            BinOp::Rotr => IntOp::Rotr,
            BinOp::Min if signed => IntOp::SMin,
            BinOp::Min => IntOp::UMin,
            BinOp::Max if signed => IntOp::SMax,
            BinOp::Max => IntOp::UMax,
            BinOp::Div | BinOp::Rem => return self.divide(op, s, a, b),
            // A float operation (the verifier rejects it on integers), as in the interpreter.
            BinOp::Copysign => return a,
        };
        self.e.int_op(iop, a, b)
    }

    /// Integer division and remainder, with the checks the contract asks for.
    fn divide(&mut self, op: BinOp, s: Scalar, a: E::Value, b: E::Value) -> E::Value {
        let zero = self.icmp_const(IntCC::Eq, s, b, 0);
        self.trap_if(zero, TrapKind::DivisionByZero);
        if !s.is_signed() {
            let iop = if op == BinOp::Div { IntOp::UDiv } else { IntOp::URem };
            return self.e.int_op(iop, a, b);
        }
        let minus_one = self.icmp_const(IntCC::Eq, s, b, u64::MAX);
        if op == BinOp::Div {
            let is_min = self.icmp_const(IntCC::Eq, s, a, 1 << (s.bits() - 1));
            let overflow = self.e.int_op(IntOp::And, is_min, minus_one);
            self.trap_if(overflow, TrapKind::IntegerOverflow);
            self.e.int_op(IntOp::SDiv, a, b)
        } else {
            // x % -1 == 0 for every x; avoid the hardware fault on MIN % -1.
            let one = self.konst(s, 1);
            let safe = self.e.select(minus_one, one, b);
            self.e.int_op(IntOp::SRem, a, safe)
        }
    }

    fn unary(&mut self, op: UnOp, s: Scalar, a: E::Value) -> E::Value {
        let uop = match (op, s.is_float()) {
            (UnOp::Neg, true) => UnaryOp::FNeg,
            (UnOp::Neg, false) => UnaryOp::INeg,
            (UnOp::Abs, true) => UnaryOp::FAbs,
            // Unsigned values are their own absolute value.
            (UnOp::Abs, false) if !s.is_signed() => return a,
            (UnOp::Abs, false) => UnaryOp::IAbs,
            (UnOp::Sqrt, _) => UnaryOp::Sqrt,
            (UnOp::Not, _) if s == Scalar::Bool => {
                let one = self.e.constant(Ty::I8, 1);
                return self.e.int_op(IntOp::Xor, a, one);
            }
            (UnOp::Not, _) => UnaryOp::Not,
            (UnOp::Clz, _) => UnaryOp::Clz,
            (UnOp::Ctz, _) => UnaryOp::Ctz,
            (UnOp::Popcnt, _) => UnaryOp::Popcnt,
            (UnOp::Floor | UnOp::Ceil | UnOp::Trunc | UnOp::Nearest, _) => return self.round(op, s, a),
        };
        self.e.unary(uop, a)
    }

    /// `floor ceil trunc nearest` of a float: the emitter's instruction, or
    /// (on a CPU without one) the builtin computing what the interpreter does.
    fn round(&mut self, op: UnOp, s: Scalar, a: E::Value) -> E::Value {
        let f32 = s == Scalar::F32;
        let (uop, builtin) = match op {
            UnOp::Floor => (UnaryOp::Floor, if f32 { Builtin::Floorf } else { Builtin::Floor }),
            UnOp::Ceil => (UnaryOp::Ceil, if f32 { Builtin::Ceilf } else { Builtin::Ceil }),
            UnOp::Trunc => (UnaryOp::Trunc, if f32 { Builtin::Truncf } else { Builtin::Trunc }),
            _ => (UnaryOp::Nearest, if f32 { Builtin::Nearestf } else { Builtin::Nearest }),
        };
        if self.e.has_native(Native::Round) {
            self.e.unary(uop, a)
        } else {
            self.call_builtin(builtin, &[a]).expect("rounding builtins return")
        }
    }

    /// `fma` (one rounding): the emitter's instruction or the builtin.
    fn fma(&mut self, s: Scalar, a: E::Value, b: E::Value, c: E::Value) -> E::Value {
        if self.e.has_native(Native::Fma) {
            self.e.fma(a, b, c)
        } else {
            let f = if s == Scalar::F32 { Builtin::Fmaf } else { Builtin::Fma };
            self.call_builtin(f, &[a, b, c]).expect("fma returns")
        }
    }

    fn compare(&mut self, op: CmpOp, s: Scalar, a: E::Value, b: E::Value) -> E::Value {
        if s.is_float() {
            let cc = match op {
                CmpOp::Eq => FloatCC::Eq,
                CmpOp::Ne => FloatCC::Une,
                CmpOp::Lt => FloatCC::Lt,
                CmpOp::Le => FloatCC::Le,
                CmpOp::Gt => FloatCC::Gt,
                CmpOp::Ge => FloatCC::Ge,
            };
            return self.e.fcmp(cc, a, b);
        }
        let signed = s.is_signed();
        let cc = match op {
            CmpOp::Eq => IntCC::Eq,
            CmpOp::Ne => IntCC::Ne,
            CmpOp::Lt if signed => IntCC::SLt,
            CmpOp::Le if signed => IntCC::SLe,
            CmpOp::Gt if signed => IntCC::SGt,
            CmpOp::Ge if signed => IntCC::SGe,
            CmpOp::Lt => IntCC::ULt,
            CmpOp::Le => IntCC::ULe,
            CmpOp::Gt => IntCC::UGt,
            CmpOp::Ge => IntCC::UGe,
        };
        self.e.icmp(cc, a, b)
    }

    fn cast(&mut self, from: Scalar, to: Scalar, x: E::Value) -> E::Value {
        let tt = native_ty(to);
        match cast_plan(from, to) {
            CastPlan::Same => x,
            CastPlan::Truncate => self.e.convert(Conv::Trunc, tt, x),
            CastPlan::SignExtend => self.e.convert(Conv::SExt, tt, x),
            CastPlan::ZeroExtend => self.e.convert(Conv::ZExt, tt, x),
            CastPlan::IntToBool => self.icmp_const(IntCC::Ne, from, x, 0),
            CastPlan::FloatToBool => {
                let z = self.konst(from, 0);
                self.e.fcmp(FloatCC::Une, x, z)
            }
            CastPlan::FloatWiden => self.e.convert(Conv::FPromote, tt, x),
            CastPlan::FloatNarrow => self.e.convert(Conv::FDemote, tt, x),
            // The emitters saturate to 32 or 64 bits; narrower targets clamp after.
            CastPlan::FloatToSignedSat if to.bits() < 32 => {
                let w = self.e.convert(Conv::FToSSat, Ty::I32, x);
                let lo = self.e.constant(Ty::I32, (-(1i64 << (to.bits() - 1))) as u64);
                let hi = self.e.constant(Ty::I32, (1u64 << (to.bits() - 1)) - 1);
                let w = self.e.int_op(IntOp::SMax, w, lo);
                let w = self.e.int_op(IntOp::SMin, w, hi);
                self.e.convert(Conv::Trunc, tt, w)
            }
            CastPlan::FloatToUnsignedSat if to.bits() < 32 => {
                let w = self.e.convert(Conv::FToUSat, Ty::I32, x);
                let hi = self.e.constant(Ty::I32, (1u64 << to.bits()) - 1);
                let w = self.e.int_op(IntOp::UMin, w, hi);
                self.e.convert(Conv::Trunc, tt, w)
            }
            CastPlan::FloatToSignedSat => self.e.convert(Conv::FToSSat, tt, x),
            CastPlan::FloatToUnsignedSat => self.e.convert(Conv::FToUSat, tt, x),
            CastPlan::Int64ToFloat => {
                let wide = self.native_to_abi(from, x);
                self.e.convert(Conv::SToF, tt, wide)
            }
            CastPlan::U64ToFloat => self.e.convert(Conv::UToF, tt, x),
        }
    }
}
