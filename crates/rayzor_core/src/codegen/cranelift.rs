//! Cranelift backend: lowers one MIR function to machine code at T0, T1 or T2.
//!
//! The code follows `codegen::abi`. Values are kept in native Cranelift types
//! (`i8` for bool and 8-bit ints, ..., `i64` for ptr) and converted to the
//! canonical `i64` form only at call boundaries. Every operation whose
//! machine instruction could fault (division) is guarded by an explicit check
//! that reports a trap through `VmCtx` and returns, so no code ever executes
//! `ud2` and no signal handler is needed.

use super::abi::{self, VmCtx, COUNTER_BACKEDGES, COUNTER_CALLS, VMCTX_DEPTH, VMCTX_STACK_LIMIT, VMCTX_TRAP};
use super::cast::{cast_plan, CastPlan};
use super::code_memory::CodeBlob;
use super::target::{self, payload_slots};
use super::Tier;
use crate::mir::{
    BinOp, BlockCall, Callee, CmpOp, FuncId, Function, InstKind, Module, Scalar, Signature, TrapKind, Type,
    UnOp, Value, MAX_CALL_DEPTH,
};
use crate::runtime::helpers;
use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::condcodes::{FloatCC, IntCC};
use cranelift_codegen::ir::immediates::{Ieee32, Ieee64};
use cranelift_codegen::ir::{
    self, types, AbiParam, BlockArg, InstBuilder, MemFlagsData, StackSlotData, StackSlotKind, UserFuncName,
};
use cranelift_codegen::isa::{CallConv, OwnedTargetIsa};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::Context;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Switch};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Addresses the generated code embeds: they live as long as the jit.
pub struct CodegenEnv<'a> {
    pub module: &'a Module,
    /// `AtomicUsize` entry slot of function `i` is at `slots_base + 8 * i`.
    pub slots_base: usize,
    /// `FunctionCounters` of function `i` at `counters_base + 64 * i`.
    pub counters_base: usize,
    /// Host address of each extern.
    pub extern_addrs: &'a [usize],
    /// (pointer, length) of each static data item.
    pub data: &'a [(usize, usize)],
    /// `ProfileConfig::sample_rate` the counting code implements.
    pub sample_rate: u64,
}

pub struct Compiled {
    pub code: CodeBlob,
    pub compile_time: Duration,
}

/// One ISA per Cranelift tier; building an ISA is not free, so they are made once.
pub struct CraneliftBackend {
    isas: [OwnedTargetIsa; 3],
}

fn make_isa(opt_level: &str, regalloc: &str) -> Result<OwnedTargetIsa, String> {
    let mut flags = settings::builder();
    let set = |f: &mut settings::Builder, k: &str, v: &str| {
        f.set(k, v).map_err(|e| format!("cranelift setting {k}={v}: {e}"))
    };
    set(&mut flags, "opt_level", opt_level)?;
    set(&mut flags, "regalloc_algorithm", regalloc)?;
    set(&mut flags, "enable_probestack", "false")?;
    set(&mut flags, "preserve_frame_pointers", "true")?;
    set(&mut flags, "enable_verifier", if cfg!(debug_assertions) { "true" } else { "false" })?;
    let isa_builder = cranelift_native::builder().map_err(|e| format!("host ISA not supported: {e}"))?;
    isa_builder.finish(settings::Flags::new(flags)).map_err(|e| format!("cranelift ISA: {e}"))
}

impl CraneliftBackend {
    pub fn new() -> Result<Self, String> {
        Ok(CraneliftBackend {
            isas: [
                make_isa("none", "single_pass")?,
                make_isa("speed", "backtracking")?,
                make_isa("speed", "backtracking")?,
            ],
        })
    }

    fn isa(&self, tier: Tier) -> &OwnedTargetIsa {
        &self.isas[(tier as usize).min(2)]
    }

    /// Compile `func` (MIR function `id` of `env.module`, possibly optimised) at `tier`.
    pub fn compile_function(
        &self,
        env: &CodegenEnv<'_>,
        id: FuncId,
        func: &Function,
        tier: Tier,
    ) -> Result<Compiled, String> {
        let start = Instant::now();
        let isa = self.isa(tier);
        let mut clif =
            ir::Function::with_name_signature(UserFuncName::user(0, id.0), jit_signature(&func.sig));
        let mut fctx = FunctionBuilderContext::new();
        {
            let b = FunctionBuilder::new(&mut clif, &mut fctx);
            let mut lower = Lower::new(env, id, func, tier, b);
            lower.run()?;
            lower.b.seal_all_blocks();
            lower.b.finalize(isa.frontend_config());
        }
        let code = emit(isa, clif, &func.name)?;
        Ok(Compiled { code, compile_time: start.elapsed() })
    }

    /// The host entry of function `id`: `extern "C" fn(*mut VmCtx, *const u64, *mut u64)`.
    pub fn compile_host_entry(&self, env: &CodegenEnv<'_>, id: FuncId) -> Result<CodeBlob, String> {
        let f = env.module.func(id);
        let mut sig = ir::Signature::new(CallConv::SystemV);
        for _ in 0..3 {
            sig.params.push(AbiParam::new(types::I64));
        }
        let mut clif = ir::Function::with_name_signature(UserFuncName::user(1, id.0), sig);
        let mut fctx = FunctionBuilderContext::new();
        {
            let mut b = FunctionBuilder::new(&mut clif, &mut fctx);
            let entry = b.create_block();
            b.append_block_params_for_function_params(entry);
            b.switch_to_block(entry);
            let (vmctx, args, rets) =
                (b.block_params(entry)[0], b.block_params(entry)[1], b.block_params(entry)[2]);
            let mut call_args = vec![vmctx];
            if abi::uses_ret_area(&f.sig.ret) {
                call_args.push(rets);
            }
            for (k, leaf) in abi::param_leaves(&f.sig).into_iter().enumerate() {
                call_args.push(b.ins().load(abi_ty(leaf), MemFlagsData::trusted(), args, 8 * k as i32));
            }
            let slot = b.ins().iconst(types::I64, (env.slots_base + 8 * id.index()) as i64);
            let code = b.ins().load(types::I64, MemFlagsData::trusted(), slot, 0);
            let sigref = b.import_signature(jit_signature(&f.sig));
            let call = b.ins().call_indirect(sigref, code, &call_args);
            if let Some(&r) = b.inst_results(call).first() {
                b.ins().store(MemFlagsData::trusted(), r, rets, 0);
            }
            b.ins().return_(&[]);
            b.seal_all_blocks();
            b.finalize(self.isa(Tier::T0).frontend_config());
        }
        emit(self.isa(Tier::T0), clif, &f.name)
    }
}

fn emit(isa: &OwnedTargetIsa, clif: ir::Function, name: &str) -> Result<CodeBlob, String> {
    let mut ctx = Context::for_function(clif);
    let compiled = ctx
        .compile(&**isa, &mut ControlPlane::default())
        .map_err(|e| format!("cranelift failed to compile '{name}': {:?}", e.inner))?;
    let frame = compiled.buffer.frame_layout().map_or(0, |l| l.frame_to_fp_offset as u64);
    if frame > abi::MAX_FRAME_BYTES {
        return Err(format!(
            "'{name}' needs a {} KiB stack frame, over the {} KiB limit: split the function or \
             keep fewer large aggregate values live at once",
            frame.div_ceil(1024),
            abi::MAX_FRAME_BYTES >> 10
        ));
    }
    if !compiled.buffer.relocs().is_empty() {
        return Err(format!("internal error: code for '{name}' needs relocations"));
    }
    CodeBlob::new(compiled.code_buffer())
}

pub fn clif_ty(s: Scalar) -> ir::Type {
    match s {
        Scalar::Bool | Scalar::I8 | Scalar::U8 => types::I8,
        Scalar::I16 | Scalar::U16 => types::I16,
        Scalar::I32 | Scalar::U32 => types::I32,
        Scalar::F32 => types::F32,
        Scalar::F64 => types::F64,
        Scalar::I64 | Scalar::U64 | Scalar::Ptr => types::I64,
    }
}

fn abi_ty(s: Scalar) -> ir::Type {
    match abi::abi_class(s) {
        abi::AbiClass::I64 => types::I64,
        abi::AbiClass::F32 => types::F32,
        abi::AbiClass::F64 => types::F64,
    }
}

/// The native signature of compiled MIR functions (see `codegen::abi`).
pub fn jit_signature(sig: &Signature) -> ir::Signature {
    let mut s = ir::Signature::new(CallConv::SystemV);
    s.params.push(AbiParam::new(types::I64));
    if abi::uses_ret_area(&sig.ret) {
        s.params.push(AbiParam::new(types::I64));
    }
    for leaf in abi::param_leaves(sig) {
        s.params.push(AbiParam::new(abi_ty(leaf)));
    }
    let rets = abi::ret_leaves(&sig.ret);
    if rets.len() == 1 {
        s.returns.push(AbiParam::new(abi_ty(rets[0])));
    }
    s
}

/// C signature of a host function (scalars only; narrow ints extended per C rules).
fn host_signature(sig: &Signature) -> ir::Signature {
    let param = |t: &Type| {
        let s = t.scalar().unwrap_or(Scalar::I64);
        let p = AbiParam::new(clif_ty(s));
        match s {
            _ if clif_ty(s) == types::I64 || s.is_float() => p,
            _ if s.is_signed() => p.sext(),
            _ => p.uext(),
        }
    };
    let mut s = ir::Signature::new(CallConv::SystemV);
    s.params.extend(sig.params.iter().map(param));
    if !sig.ret.is_void() {
        s.returns.push(param(&sig.ret));
    }
    s
}

struct Lower<'a, 'b> {
    env: &'a CodegenEnv<'a>,
    id: FuncId,
    func: &'a Function,
    tier: Tier,
    b: FunctionBuilder<'b>,
    blocks: Vec<ir::Block>,
    vals: Vec<Vec<ir::Value>>,
    vmctx: ir::Value,
    ret_area: Option<ir::Value>,
    depth: ir::Value,
    exit_block: Option<ir::Block>,
    trap_blocks: HashMap<TrapKind, ir::Block>,
    sigs: HashMap<(Signature, bool), ir::SigRef>,
    counters: ir::Value,
}

fn mask(bits: u32) -> u64 {
    target::low_mask(bits)
}

impl<'a, 'b> Lower<'a, 'b> {
    fn new(
        env: &'a CodegenEnv<'a>,
        id: FuncId,
        func: &'a Function,
        tier: Tier,
        b: FunctionBuilder<'b>,
    ) -> Self {
        let dummy = ir::Value::from_u32(0);
        Lower {
            env,
            id,
            func,
            tier,
            b,
            blocks: Vec::new(),
            vals: vec![Vec::new(); func.values.len()],
            vmctx: dummy,
            ret_area: None,
            depth: dummy,
            exit_block: None,
            trap_blocks: HashMap::new(),
            sigs: HashMap::new(),
            counters: dummy,
        }
    }

    fn leaves_of(&self, v: Value) -> &[ir::Value] {
        &self.vals[v.index()]
    }

    fn one(&self, v: Value) -> ir::Value {
        self.vals[v.index()][0]
    }

    fn scalar_of(&self, v: Value) -> Scalar {
        self.func.value_type(v).scalar().unwrap_or(Scalar::I64)
    }

    fn run(&mut self) -> Result<(), String> {
        let f = self.func;
        // CLIF blocks for every MIR block, with one parameter per leaf.
        for bd in &f.blocks {
            let cb = self.b.create_block();
            for p in &bd.params {
                for leaf in target::leaves(f.value_type(*p)) {
                    self.b.append_block_param(cb, clif_ty(leaf.ty));
                }
            }
            self.blocks.push(cb);
        }
        for (i, bd) in f.blocks.iter().enumerate() {
            let params = self.b.block_params(self.blocks[i]).to_vec();
            let mut k = 0;
            for p in &bd.params {
                let n = target::leaf_count(f.value_type(*p));
                self.vals[p.index()] = params[k..k + n].to_vec();
                k += n;
            }
        }
        self.prologue();
        let order = f.reverse_postorder();
        let mut rpo_index = vec![usize::MAX; f.blocks.len()];
        for (i, b) in order.iter().enumerate() {
            rpo_index[b.index()] = i;
        }
        for &blk in &order {
            self.b.switch_to_block(self.blocks[blk.index()]);
            let insts = &f.blocks[blk.index()].insts;
            for (n, &inst) in insts.iter().enumerate() {
                let data = f.inst(inst);
                if n + 1 == insts.len() && data.kind.is_terminator() {
                    let back_edge = data
                        .kind
                        .successors()
                        .iter()
                        .any(|s| rpo_index[s.block.index()] <= rpo_index[blk.index()]);
                    if back_edge {
                        self.bump_counter(COUNTER_BACKEDGES, abi::VMCTX_EDGE_TICKS);
                    }
                }
                self.inst(&data.kind, data.result)?;
            }
        }
        self.finish_cold_blocks();
        Ok(())
    }

    /// Count one event in the counter at `offset`; with sampling, only every
    /// `sample_rate`-th event of this thread (countdown at `ticks` in VmCtx)
    /// adds `sample_rate`.
    fn bump_counter(&mut self, offset: i32, ticks: i32) {
        if self.env.sample_rate == 0 {
            return; // profiling compiled out
        }
        let n = self.env.sample_rate.max(1) as i64;
        if n == 1 {
            let c = self.b.ins().load(types::I64, MemFlagsData::trusted(), self.counters, offset);
            let c1 = self.b.ins().iadd_imm_s(c, 1);
            self.b.ins().store(MemFlagsData::trusted(), c1, self.counters, offset);
            return;
        }
        let t = self.b.ins().load(types::I64, MemFlagsData::trusted(), self.vmctx, ticks);
        let t1 = self.b.ins().iadd_imm_s(t, -1);
        self.b.ins().store(MemFlagsData::trusted(), t1, self.vmctx, ticks);
        let sample = self.b.create_block();
        let cont = self.b.create_block();
        self.b.set_cold_block(sample);
        self.b.ins().brif(t1, cont, &[], sample, &[]);
        self.b.switch_to_block(sample);
        let reload = self.b.ins().iconst(types::I64, n);
        self.b.ins().store(MemFlagsData::trusted(), reload, self.vmctx, ticks);
        let c = self.b.ins().load(types::I64, MemFlagsData::trusted(), self.counters, offset);
        let c1 = self.b.ins().iadd_imm_s(c, n);
        self.b.ins().store(MemFlagsData::trusted(), c1, self.counters, offset);
        self.b.ins().jump(cont, &[]);
        self.b.switch_to_block(cont);
    }

    /// Count the call, check depth and stack, convert ABI params, enter block 0.
    fn prologue(&mut self) {
        let entry = self.b.create_block();
        self.b.append_block_params_for_function_params(entry);
        self.b.switch_to_block(entry);
        let params = self.b.block_params(entry).to_vec();
        self.vmctx = params[0];
        let mut k = 1;
        if abi::uses_ret_area(&self.func.sig.ret) {
            self.ret_area = Some(params[1]);
            k = 2;
        }
        let counters_addr = self.env.counters_base + 64 * self.id.index();
        self.counters = self.b.ins().iconst(types::I64, counters_addr as i64);
        self.depth = self.b.ins().load(types::I64, MemFlagsData::trusted(), self.vmctx, VMCTX_DEPTH);
        self.bump_counter(COUNTER_CALLS + 8 * self.tier as i32, abi::VMCTX_CALL_TICKS);

        let too_deep = self.icmp_const(IntCC::UnsignedGreaterThanOrEqual, self.depth, MAX_CALL_DEPTH as i64);
        self.trap_if(too_deep, TrapKind::StackOverflow);
        let sp = self.b.ins().get_stack_pointer(types::I64);
        let limit = self.b.ins().load(types::I64, MemFlagsData::trusted(), self.vmctx, VMCTX_STACK_LIMIT);
        let low = self.b.ins().icmp(IntCC::UnsignedLessThan, sp, limit);
        self.trap_if(low, TrapKind::StackOverflow);
        let d1 = self.b.ins().iadd_imm_s(self.depth, 1);
        self.b.ins().store(MemFlagsData::trusted(), d1, self.vmctx, VMCTX_DEPTH);

        let mut args = Vec::new();
        for leaf in abi::param_leaves(&self.func.sig) {
            let v = self.abi_to_native(leaf, params[k]);
            args.push(BlockArg::Value(v));
            k += 1;
        }
        self.b.ins().jump(self.blocks[0], &args);
    }

    fn abi_to_native(&mut self, s: Scalar, v: ir::Value) -> ir::Value {
        let t = clif_ty(s);
        if s.is_float() || t == types::I64 {
            v
        } else {
            let r = self.b.ins().ireduce(t, v);
            if s == Scalar::Bool {
                self.b.ins().band_imm_u(r, 1)
            } else {
                r
            }
        }
    }

    fn native_to_abi(&mut self, s: Scalar, v: ir::Value) -> ir::Value {
        if s.is_float() || clif_ty(s) == types::I64 {
            v
        } else if s.is_signed() {
            self.b.ins().sextend(types::I64, v)
        } else {
            self.b.ins().uextend(types::I64, v)
        }
    }

    /// The block that returns to the caller with a dummy result (trap
    /// pending). Created on demand, filled in by `finish_cold_blocks`.
    fn exit_block(&mut self) -> ir::Block {
        if let Some(b) = self.exit_block {
            return b;
        }
        let blk = self.b.create_block();
        self.b.set_cold_block(blk);
        self.exit_block = Some(blk);
        blk
    }

    /// Fill the trap and exit blocks; call after all other code.
    fn finish_cold_blocks(&mut self) {
        let mut traps: Vec<(TrapKind, ir::Block)> = self.trap_blocks.iter().map(|(k, b)| (*k, *b)).collect();
        traps.sort_by_key(|(k, _)| k.code());
        for (kind, blk) in traps {
            let exit = self.exit_block();
            self.b.switch_to_block(blk);
            let code = self.b.ins().iconst(types::I64, kind.code() as i64);
            self.b.ins().store(MemFlagsData::trusted(), code, self.vmctx, VMCTX_TRAP);
            let fid = self.b.ins().iconst(types::I64, self.id.0 as i64 + 1);
            self.b.ins().store(MemFlagsData::trusted(), fid, self.vmctx, abi::VMCTX_TRAP_FUNC);
            self.b.ins().jump(exit, &[]);
        }
        if let Some(blk) = self.exit_block {
            self.b.switch_to_block(blk);
            let rets = abi::ret_leaves(&self.func.sig.ret);
            let vals: Vec<ir::Value> =
                if rets.len() == 1 { vec![self.zero_of(abi_ty(rets[0]))] } else { vec![] };
            self.b.ins().return_(&vals);
        }
    }

    fn zero_of(&mut self, t: ir::Type) -> ir::Value {
        match t {
            types::F32 => self.b.ins().f32const(Ieee32::with_bits(0)),
            types::F64 => self.b.ins().f64const(Ieee64::with_bits(0)),
            t => self.b.ins().iconst(t, 0),
        }
    }

    fn trap_block(&mut self, kind: TrapKind) -> ir::Block {
        if let Some(b) = self.trap_blocks.get(&kind) {
            return *b;
        }
        let blk = self.b.create_block();
        self.b.set_cold_block(blk);
        self.trap_blocks.insert(kind, blk);
        blk
    }

    /// Branch to a trap of `kind` when `cond` is non-zero; continue otherwise.
    fn trap_if(&mut self, cond: ir::Value, kind: TrapKind) {
        let trap = self.trap_block(kind);
        let cont = self.b.create_block();
        self.b.ins().brif(cond, trap, &[], cont, &[]);
        self.b.switch_to_block(cont);
    }

    /// After a call into MIR code: leave at once if the callee trapped.
    fn check_pending_trap(&mut self) {
        let t = self.b.ins().load(types::I64, MemFlagsData::trusted(), self.vmctx, VMCTX_TRAP);
        let exit = self.exit_block();
        let cont = self.b.create_block();
        self.b.ins().brif(t, exit, &[], cont, &[]);
        self.b.switch_to_block(cont);
    }

    /// Compare `x` with a constant given by its bits (masked to `x`'s width).
    fn icmp_const(&mut self, cc: IntCC, x: ir::Value, bits: i64) -> ir::Value {
        let t = self.b.func.dfg.value_type(x);
        let c = self.b.ins().iconst(t, (bits as u64 & mask(t.bits())) as i64);
        self.b.ins().icmp(cc, x, c)
    }

    fn iconst(&mut self, s: Scalar, bits: u64) -> ir::Value {
        match s {
            Scalar::F32 => self.b.ins().f32const(Ieee32::with_bits(bits as u32)),
            Scalar::F64 => self.b.ins().f64const(Ieee64::with_bits(bits)),
            _ => self.b.ins().iconst(clif_ty(s), (bits & mask(s.bits())) as i64),
        }
    }

    fn sigref(&mut self, sig: &Signature, host: bool) -> ir::SigRef {
        if let Some(r) = self.sigs.get(&(sig.clone(), host)) {
            return *r;
        }
        let clif = if host { host_signature(sig) } else { jit_signature(sig) };
        let r = self.b.import_signature(clif);
        self.sigs.insert((sig.clone(), host), r);
        r
    }

    fn call_helper(
        &mut self,
        addr: usize,
        params: &[ir::Type],
        ret: Option<ir::Type>,
        args: &[ir::Value],
    ) -> Option<ir::Value> {
        let mut s = ir::Signature::new(CallConv::SystemV);
        s.params.extend(params.iter().map(|t| AbiParam::new(*t)));
        s.returns.extend(ret.map(AbiParam::new));
        let sig = self.b.import_signature(s);
        let callee = self.b.ins().iconst(types::I64, addr as i64);
        let call = self.b.ins().call_indirect(sig, callee, args);
        self.b.inst_results(call).first().copied()
    }

    /// Call compiled MIR code at `code` with MIR arguments; returns result leaves.
    fn call_mir(&mut self, sig: &Signature, code: ir::Value, args: &[Value]) -> Vec<ir::Value> {
        let sigref = self.sigref(sig, false);
        let mut call_args = vec![self.vmctx];
        let ret_leaves = abi::ret_leaves(&sig.ret);
        let area = if ret_leaves.len() >= 2 {
            let ss = self.b.create_sized_stack_slot(StackSlotData::new(
                StackSlotKind::ExplicitSlot,
                8 * ret_leaves.len() as u32,
                3,
            ));
            let a = self.b.ins().stack_addr(types::I64, ss, 0);
            call_args.push(a);
            Some(a)
        } else {
            None
        };
        for a in args {
            let leaves: Vec<(Scalar, ir::Value)> = target::leaves(self.func.value_type(*a))
                .into_iter()
                .map(|l| l.ty)
                .zip(self.leaves_of(*a).iter().copied())
                .collect();
            for (s, v) in leaves {
                let v = self.native_to_abi(s, v);
                call_args.push(v);
            }
        }
        let call = self.b.ins().call_indirect(sigref, code, &call_args);
        let results = self.b.inst_results(call).to_vec();
        self.check_pending_trap();
        match area {
            None => results.iter().zip(&ret_leaves).map(|(v, s)| self.abi_to_native(*s, *v)).collect(),
            Some(a) => ret_leaves
                .iter()
                .enumerate()
                .map(|(k, s)| {
                    let v = self.b.ins().load(abi_ty(*s), MemFlagsData::trusted(), a, 8 * k as i32);
                    self.abi_to_native(*s, v)
                })
                .collect(),
        }
    }

    fn call_host(&mut self, sig: &Signature, addr: ir::Value, args: &[Value]) -> Vec<ir::Value> {
        let sigref = self.sigref(sig, true);
        let vals: Vec<ir::Value> = args.iter().map(|a| self.one(*a)).collect();
        let call = self.b.ins().call_indirect(sigref, addr, &vals);
        let r = self.b.inst_results(call).to_vec();
        match (sig.ret.scalar(), r.first()) {
            (Some(Scalar::Bool), Some(v)) => vec![self.b.ins().band_imm_u(*v, 1)],
            (Some(_), Some(v)) => vec![*v],
            _ => vec![],
        }
    }

    fn slot_code(&mut self, func: FuncId) -> ir::Value {
        let slot = self.b.ins().iconst(types::I64, (self.env.slots_base + 8 * func.index()) as i64);
        self.b.ins().load(types::I64, MemFlagsData::trusted(), slot, 0)
    }

    fn block_args(&self, call: &BlockCall) -> Vec<BlockArg> {
        call.args.iter().flat_map(|a| self.leaves_of(*a).iter().map(|v| BlockArg::Value(*v))).collect()
    }

    fn set(&mut self, result: Option<Value>, leaves: Vec<ir::Value>) {
        if let Some(r) = result {
            self.vals[r.index()] = leaves;
        }
    }

    fn inst(&mut self, kind: &InstKind, result: Option<Value>) -> Result<(), String> {
        use InstKind::*;
        let out: Vec<ir::Value> = match kind {
            Const { ty, bits } => vec![self.iconst(*ty, *bits)],
            Zero { ty } => target::leaves(ty).into_iter().map(|l| self.iconst(l.ty, 0)).collect(),
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
            Select { cond, if_true, if_false } => {
                let c = self.one(*cond);
                let t = self.leaves_of(*if_true).to_vec();
                let f = self.leaves_of(*if_false).to_vec();
                t.iter().zip(&f).map(|(x, y)| self.b.ins().select(c, *x, *y)).collect()
            }
            Cast { to, arg } => {
                let from = self.scalar_of(*arg);
                let a = self.one(*arg);
                vec![self.cast(from, *to, a)]
            }
            Bitcast { to, arg } => {
                let from = self.scalar_of(*arg);
                let a = self.one(*arg);
                let (ft, tt) = (clif_ty(from), clif_ty(*to));
                vec![if ft == tt { a } else { self.b.ins().bitcast(tt, MemFlagsData::new(), a) }]
            }
            Load { ty, ptr } => {
                let p = self.one(*ptr);
                self.load_leaves(ty, p)
            }
            Store { ptr, value } => {
                let p = self.one(*ptr);
                let ty = self.func.value_type(*value).clone();
                let leaves = self.leaves_of(*value).to_vec();
                for (l, v) in target::leaves(&ty).into_iter().zip(leaves) {
                    self.store_leaf(l.ty, v, p, l.offset as u64);
                }
                vec![]
            }
            Alloc { ty, count } => {
                let size = self.b.ins().iconst(types::I64, target::size_of(ty) as i64);
                let n = self.one(*count);
                let args = [self.vmctx, size, n];
                let p = self.call_helper(
                    helpers::rayzor_alloc as *const () as usize,
                    &[types::I64; 3],
                    Some(types::I64),
                    &args,
                );
                self.check_pending_trap();
                vec![p.expect("alloc returns")]
            }
            Free { ptr } => {
                let p = self.one(*ptr);
                self.call_helper(helpers::rayzor_free as *const () as usize, &[types::I64], None, &[p]);
                vec![]
            }
            MemCopy { dst, src, len } => {
                let a = [self.one(*dst), self.one(*src), self.one(*len)];
                self.call_helper(helpers::rayzor_memmove as *const () as usize, &[types::I64; 3], None, &a);
                vec![]
            }
            MemSet { dst, byte, len } => {
                let byte8 = self.one(*byte);
                let byte = self.b.ins().uextend(types::I64, byte8);
                let a = [self.one(*dst), byte, self.one(*len)];
                self.call_helper(helpers::rayzor_memset as *const () as usize, &[types::I64; 3], None, &a);
                vec![]
            }
            FieldAddr { ty, ptr, field } => {
                let off = match ty {
                    Type::Struct(fields) => target::field_offset(fields, *field as usize),
                    _ => return Err("field on a non-struct type".into()),
                };
                let p = self.one(*ptr);
                vec![self.b.ins().iadd_imm_s(p, off as i64)]
            }
            ElemAddr { elem, ptr, index } => {
                let s = self.scalar_of(*index);
                let i = self.one(*index);
                let i64v = self.extend_to_i64(s, i);
                let scaled = self.b.ins().imul_imm_s(i64v, target::size_of(elem) as i64);
                let p = self.one(*ptr);
                vec![self.b.ins().iadd(p, scaled)]
            }
            ExtractValue { agg, index } => {
                let ty = self.func.value_type(*agg);
                let r = target::field_leaf_range(ty, *index).ok_or("extract of a missing field")?;
                self.leaves_of(*agg)[r].to_vec()
            }
            InsertValue { agg, index, value } => {
                let ty = self.func.value_type(*agg);
                let r = target::field_leaf_range(ty, *index).ok_or("insert into a missing field")?;
                let mut leaves = self.leaves_of(*agg).to_vec();
                leaves.splice(r, self.leaves_of(*value).iter().copied());
                leaves
            }
            UnionMake { ty, variant, value } => {
                let Type::Union(vs) = ty else { return Err("union.make of a non-union".into()) };
                let words = target::union_payload_words(vs) as usize;
                let tag = self.b.ins().iconst(types::I32, *variant as i64);
                let mut out = vec![tag];
                let mut w: Vec<ir::Value> = (0..words).map(|_| self.b.ins().iconst(types::I64, 0)).collect();
                let leaves = self.leaves_of(*value).to_vec();
                for (slot, v) in payload_slots(&vs[*variant as usize]).into_iter().zip(leaves) {
                    let bits = self.bits_u64(slot.ty, v);
                    let shifted =
                        if slot.shift == 0 { bits } else { self.b.ins().ishl_imm_u(bits, slot.shift as i64) };
                    w[slot.word as usize] = self.b.ins().bor(w[slot.word as usize], shifted);
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
                let bad = self.icmp_const(IntCC::NotEqual, leaves[0], *variant as i64);
                self.trap_if(bad, TrapKind::BadTag);
                payload_slots(&vs[*variant as usize])
                    .into_iter()
                    .map(|slot| {
                        let w = leaves[1 + slot.word as usize];
                        let sh =
                            if slot.shift == 0 { w } else { self.b.ins().ushr_imm_u(w, slot.shift as i64) };
                        self.leaf_from_word(slot.ty, sh)
                    })
                    .collect()
            }
            AnyMake { arg } => {
                let s = self.scalar_of(*arg);
                let tag = self.b.ins().iconst(types::I32, s.any_tag() as i64);
                let v = self.one(*arg);
                let payload = match s {
                    Scalar::F32 | Scalar::F64 => self.bits_u64(s, v),
                    _ => self.native_to_abi(s, v),
                };
                vec![tag, payload]
            }
            AnyGet { ty, arg } => {
                let leaves = self.leaves_of(*arg).to_vec();
                let bad = self.icmp_const(IntCC::NotEqual, leaves[0], ty.any_tag() as i64);
                self.trap_if(bad, TrapKind::BadTag);
                vec![self.leaf_from_word(*ty, leaves[1])]
            }
            StrConst { data } => {
                let (p, n) = self.env.data[data.index()];
                vec![self.b.ins().iconst(types::I64, p as i64), self.b.ins().iconst(types::I64, n as i64)]
            }
            FuncAddr { callee } => match callee {
                Callee::Func(f) => {
                    vec![self.b.ins().iconst(types::I64, (abi::FUNC_TOKEN_BASE + f.0 as u64) as i64)]
                }
                Callee::Extern(e) => {
                    vec![self.b.ins().iconst(types::I64, self.env.extern_addrs[e.index()] as i64)]
                }
            },
            Call { callee, args } => match callee {
                Callee::Func(f) => {
                    let sig = self.env.module.func(*f).sig.clone();
                    let code = self.slot_code(*f);
                    self.call_mir(&sig, code, args)
                }
                Callee::Extern(e) => {
                    let sig = self.env.module.externs[e.index()].sig.clone();
                    let addr = self.b.ins().iconst(types::I64, self.env.extern_addrs[e.index()] as i64);
                    self.call_host(&sig, addr, args)
                }
            },
            CallIndirect { callee, args } => {
                let Type::FnPtr { sig, host } = self.func.value_type(*callee).clone() else {
                    return Err("call_indirect through a non-function type".into());
                };
                let p = self.one(*callee);
                if host {
                    let bad = self.icmp_const(IntCC::UnsignedLessThan, p, 4096);
                    self.trap_if(bad, TrapKind::MemoryFault);
                    self.call_host(&sig, p, args)
                } else {
                    // A token FUNC_TOKEN_BASE + i with i < #functions and a matching signature.
                    let idx = self.b.ins().iadd_imm_s(p, (abi::FUNC_TOKEN_BASE as i64).wrapping_neg());
                    let n = self.env.module.functions.len() as i64;
                    let bad = self.icmp_const(IntCC::UnsignedGreaterThanOrEqual, idx, n);
                    self.trap_if(bad, TrapKind::MemoryFault);
                    let ok_sig = self.sig_matches(&sig, idx);
                    self.trap_if(ok_sig, TrapKind::MemoryFault);
                    let off = self.b.ins().ishl_imm_u(idx, 3);
                    let base = self.b.ins().iconst(types::I64, self.env.slots_base as i64);
                    let slot = self.b.ins().iadd(base, off);
                    let code = self.b.ins().load(types::I64, MemFlagsData::trusted(), slot, 0);
                    self.call_mir(&sig, code, args)
                }
            }
            DepthCheck => {
                // A call from this frame would enter with depth + 1 and trap if that reaches the limit.
                let d1 = self.b.ins().iadd_imm_s(self.depth, 1);
                let too_deep = self.icmp_const(IntCC::UnsignedGreaterThanOrEqual, d1, MAX_CALL_DEPTH as i64);
                self.trap_if(too_deep, TrapKind::StackOverflow);
                vec![]
            }
            Jump { dest } => {
                let args = self.block_args(dest);
                self.b.ins().jump(self.blocks[dest.block.index()], &args);
                vec![]
            }
            Brif { cond, then_dest, else_dest } => {
                let c = self.one(*cond);
                let ta = self.block_args(then_dest);
                let ea = self.block_args(else_dest);
                self.b.ins().brif(
                    c,
                    self.blocks[then_dest.block.index()],
                    &ta,
                    self.blocks[else_dest.block.index()],
                    &ea,
                );
                vec![]
            }
            Switch { value, cases, default } => {
                self.switch(*value, cases, default);
                vec![]
            }
            Return { value } => {
                self.b.ins().store(MemFlagsData::trusted(), self.depth, self.vmctx, VMCTX_DEPTH);
                let rets = abi::ret_leaves(&self.func.sig.ret);
                let leaves = value.map(|v| self.leaves_of(v).to_vec()).unwrap_or_default();
                if rets.len() == 1 {
                    let v = self.native_to_abi(rets[0], leaves[0]);
                    self.b.ins().return_(&[v]);
                } else {
                    let area = self.ret_area;
                    for (k, (s, v)) in rets.iter().zip(leaves).enumerate() {
                        let v = self.native_to_abi(*s, v);
                        self.b.ins().store(MemFlagsData::trusted(), v, area.expect("ret area"), 8 * k as i32);
                    }
                    self.b.ins().return_(&[]);
                }
                vec![]
            }
            Trap => {
                let t = self.trap_block(TrapKind::User);
                self.b.ins().jump(t, &[]);
                vec![]
            }
            Unreachable => {
                let t = self.trap_block(TrapKind::Unreachable);
                self.b.ins().jump(t, &[]);
                vec![]
            }
        };
        self.set(result, out);
        Ok(())
    }

    /// Non-zero when the function at index `idx` does NOT have signature `sig`.
    fn sig_matches(&mut self, sig: &Signature, idx: ir::Value) -> ir::Value {
        // Functions with this exact signature; anything else is a fault.
        let matching: Vec<i64> = self
            .env
            .module
            .functions
            .iter()
            .enumerate()
            .filter(|(_, f)| f.sig == *sig)
            .map(|(i, _)| i as i64)
            .collect();
        let mut ok = self.b.ins().iconst(types::I8, 0);
        for i in matching {
            let eq = self.icmp_const(IntCC::Equal, idx, i);
            ok = self.b.ins().bor(ok, eq);
        }
        self.b.ins().bxor_imm_u(ok, 1)
    }

    fn switch(&mut self, value: Value, cases: &[(u64, BlockCall)], default: &BlockCall) {
        let s = self.scalar_of(value);
        let v = self.one(value);
        let mut sw = Switch::new();
        let mut seen = std::collections::HashSet::new();
        let mut pads = Vec::new();
        for (k, call) in cases {
            let key = k & mask(s.bits());
            if !seen.insert(key) {
                continue;
            }
            let pad = self.b.create_block();
            sw.set_entry(key as u128, pad);
            pads.push((pad, call.clone()));
        }
        let dpad = self.b.create_block();
        sw.emit(&mut self.b, v, dpad);
        for (pad, call) in pads.into_iter().chain(std::iter::once((dpad, default.clone()))) {
            self.b.switch_to_block(pad);
            let args = self.block_args(&call);
            self.b.ins().jump(self.blocks[call.block.index()], &args);
        }
    }

    fn extend_to_i64(&mut self, s: Scalar, v: ir::Value) -> ir::Value {
        if clif_ty(s) == types::I64 {
            v
        } else if s.is_signed() {
            self.b.ins().sextend(types::I64, v)
        } else {
            self.b.ins().uextend(types::I64, v)
        }
    }

    /// The raw bits of a leaf, zero-extended to 64 (for union payload packing).
    fn bits_u64(&mut self, s: Scalar, v: ir::Value) -> ir::Value {
        match s {
            Scalar::F32 => {
                let i = self.b.ins().bitcast(types::I32, MemFlagsData::new(), v);
                self.b.ins().uextend(types::I64, i)
            }
            Scalar::F64 => self.b.ins().bitcast(types::I64, MemFlagsData::new(), v),
            _ if clif_ty(s) == types::I64 => v,
            _ => self.b.ins().uextend(types::I64, v),
        }
    }

    /// A leaf of type `s` from the low bits of a 64-bit word (canonicalised).
    fn leaf_from_word(&mut self, s: Scalar, w: ir::Value) -> ir::Value {
        match s {
            Scalar::F32 => {
                let i = self.b.ins().ireduce(types::I32, w);
                self.b.ins().bitcast(types::F32, MemFlagsData::new(), i)
            }
            Scalar::F64 => self.b.ins().bitcast(types::F64, MemFlagsData::new(), w),
            _ if clif_ty(s) == types::I64 => w,
            Scalar::Bool => {
                let r = self.b.ins().ireduce(types::I8, w);
                self.b.ins().band_imm_u(r, 1)
            }
            _ => self.b.ins().ireduce(clif_ty(s), w),
        }
    }

    fn load_leaves(&mut self, ty: &Type, p: ir::Value) -> Vec<ir::Value> {
        target::leaves(ty)
            .into_iter()
            .map(|l| {
                let (base, off) = self.addr(p, l.offset as u64);
                let v = self.b.ins().load(clif_ty(l.ty), MemFlagsData::new(), base, off);
                if l.ty == Scalar::Bool {
                    self.b.ins().band_imm_u(v, 1)
                } else {
                    v
                }
            })
            .collect()
    }

    fn store_leaf(&mut self, s: Scalar, v: ir::Value, p: ir::Value, offset: u64) {
        let (base, off) = self.addr(p, offset);
        let v = if s == Scalar::Bool { self.b.ins().band_imm_u(v, 1) } else { v };
        self.b.ins().store(MemFlagsData::new(), v, base, off);
    }

    fn addr(&mut self, p: ir::Value, offset: u64) -> (ir::Value, i32) {
        if offset <= i32::MAX as u64 {
            (p, offset as i32)
        } else {
            (self.b.ins().iadd_imm_s(p, offset as i64), 0)
        }
    }

    fn binary(&mut self, op: BinOp, s: Scalar, a: ir::Value, b: ir::Value) -> ir::Value {
        if s.is_float() {
            let ins = self.b.ins();
            return match op {
                BinOp::Add => ins.fadd(a, b),
                BinOp::Sub => ins.fsub(a, b),
                BinOp::Mul => ins.fmul(a, b),
                BinOp::Div => ins.fdiv(a, b),
                BinOp::Min => ins.fmin(a, b),
                BinOp::Max => ins.fmax(a, b),
                _ => {
                    // Rem: the same Rust `%` (fmod) the interpreter uses.
                    let t = clif_ty(s);
                    let f = if s == Scalar::F32 {
                        helpers::rayzor_fmodf as *const () as usize
                    } else {
                        helpers::rayzor_fmod as *const () as usize
                    };
                    return self.call_helper(f, &[t, t], Some(t), &[a, b]).expect("fmod returns");
                }
            };
        }
        let t = clif_ty(s);
        match op {
            BinOp::Add => self.b.ins().iadd(a, b),
            BinOp::Sub => self.b.ins().isub(a, b),
            BinOp::Mul => self.b.ins().imul(a, b),
            BinOp::And => self.b.ins().band(a, b),
            BinOp::Or => self.b.ins().bor(a, b),
            BinOp::Xor => self.b.ins().bxor(a, b),
            BinOp::Shl => self.b.ins().ishl(a, b),
            BinOp::Shr if s.is_signed() => self.b.ins().sshr(a, b),
            BinOp::Shr => self.b.ins().ushr(a, b),
            BinOp::Rotl => self.b.ins().rotl(a, b),
            BinOp::Rotr => self.b.ins().rotr(a, b),
            BinOp::Min if s.is_signed() => self.b.ins().smin(a, b),
            BinOp::Min => self.b.ins().umin(a, b),
            BinOp::Max if s.is_signed() => self.b.ins().smax(a, b),
            BinOp::Max => self.b.ins().umax(a, b),
            BinOp::Div | BinOp::Rem => {
                let zero = self.icmp_const(IntCC::Equal, b, 0);
                self.trap_if(zero, TrapKind::DivisionByZero);
                if !s.is_signed() {
                    return if op == BinOp::Div { self.b.ins().udiv(a, b) } else { self.b.ins().urem(a, b) };
                }
                let minus_one = self.icmp_const(IntCC::Equal, b, -1);
                if op == BinOp::Div {
                    let min = 1i64.wrapping_shl(s.bits() - 1) & mask(s.bits()) as i64;
                    let is_min = self.icmp_const(IntCC::Equal, a, min);
                    let overflow = self.b.ins().band(is_min, minus_one);
                    self.trap_if(overflow, TrapKind::IntegerOverflow);
                    self.b.ins().sdiv(a, b)
                } else {
                    // x % -1 == 0 for every x; avoid the hardware fault on MIN % -1.
                    let one = self.b.ins().iconst(t, 1);
                    let safe = self.b.ins().select(minus_one, one, b);
                    self.b.ins().srem(a, safe)
                }
            }
        }
    }

    fn unary(&mut self, op: UnOp, s: Scalar, a: ir::Value) -> ir::Value {
        let ins = self.b.ins();
        match (op, s.is_float()) {
            (UnOp::Neg, true) => ins.fneg(a),
            (UnOp::Neg, false) => ins.ineg(a),
            (UnOp::Abs, true) => ins.fabs(a),
            // Unsigned values are their own absolute value.
            (UnOp::Abs, false) if !s.is_signed() => a,
            (UnOp::Abs, false) => ins.iabs(a),
            (UnOp::Sqrt, _) => ins.sqrt(a),
            (UnOp::Not, _) if s == Scalar::Bool => ins.bxor_imm_u(a, 1),
            (UnOp::Not, _) => ins.bnot(a),
            (UnOp::Clz, _) => ins.clz(a),
            (UnOp::Ctz, _) => ins.ctz(a),
            (UnOp::Popcnt, _) => ins.popcnt(a),
        }
    }

    fn compare(&mut self, op: CmpOp, s: Scalar, a: ir::Value, b: ir::Value) -> ir::Value {
        if s.is_float() {
            let cc = match op {
                CmpOp::Eq => FloatCC::Equal,
                CmpOp::Ne => FloatCC::NotEqual,
                CmpOp::Lt => FloatCC::LessThan,
                CmpOp::Le => FloatCC::LessThanOrEqual,
                CmpOp::Gt => FloatCC::GreaterThan,
                CmpOp::Ge => FloatCC::GreaterThanOrEqual,
            };
            return self.b.ins().fcmp(cc, a, b);
        }
        let signed = s.is_signed();
        let cc = match op {
            CmpOp::Eq => IntCC::Equal,
            CmpOp::Ne => IntCC::NotEqual,
            CmpOp::Lt if signed => IntCC::SignedLessThan,
            CmpOp::Le if signed => IntCC::SignedLessThanOrEqual,
            CmpOp::Gt if signed => IntCC::SignedGreaterThan,
            CmpOp::Ge if signed => IntCC::SignedGreaterThanOrEqual,
            CmpOp::Lt => IntCC::UnsignedLessThan,
            CmpOp::Le => IntCC::UnsignedLessThanOrEqual,
            CmpOp::Gt => IntCC::UnsignedGreaterThan,
            CmpOp::Ge => IntCC::UnsignedGreaterThanOrEqual,
        };
        self.b.ins().icmp(cc, a, b)
    }

    fn cast(&mut self, from: Scalar, to: Scalar, x: ir::Value) -> ir::Value {
        let tt = clif_ty(to);
        match cast_plan(from, to) {
            CastPlan::Same => x,
            CastPlan::Truncate => self.b.ins().ireduce(tt, x),
            CastPlan::SignExtend => self.b.ins().sextend(tt, x),
            CastPlan::ZeroExtend => self.b.ins().uextend(tt, x),
            CastPlan::IntToBool => self.icmp_const(IntCC::NotEqual, x, 0),
            CastPlan::FloatToBool => {
                let z = self.zero_of(clif_ty(from));
                self.b.ins().fcmp(FloatCC::NotEqual, x, z)
            }
            CastPlan::FloatWiden => self.b.ins().fpromote(tt, x),
            CastPlan::FloatNarrow => self.b.ins().fdemote(tt, x),
            // Cranelift saturates to 32 or 64 bits; narrower targets clamp after.
            CastPlan::FloatToSignedSat => match to.bits() {
                64 => self.b.ins().fcvt_to_sint_sat(types::I64, x),
                32 => self.b.ins().fcvt_to_sint_sat(types::I32, x),
                bits => {
                    let w = self.b.ins().fcvt_to_sint_sat(types::I32, x);
                    let lo = self.b.ins().iconst(types::I32, -(1i64 << (bits - 1)) & 0xffff_ffff);
                    let hi = self.b.ins().iconst(types::I32, (1i64 << (bits - 1)) - 1);
                    let w = self.b.ins().smax(w, lo);
                    let w = self.b.ins().smin(w, hi);
                    self.b.ins().ireduce(tt, w)
                }
            },
            CastPlan::FloatToUnsignedSat => match to.bits() {
                64 => self.b.ins().fcvt_to_uint_sat(types::I64, x),
                32 => self.b.ins().fcvt_to_uint_sat(types::I32, x),
                bits => {
                    let w = self.b.ins().fcvt_to_uint_sat(types::I32, x);
                    let hi = self.b.ins().iconst(types::I32, (1i64 << bits) - 1);
                    let w = self.b.ins().umin(w, hi);
                    self.b.ins().ireduce(tt, w)
                }
            },
            CastPlan::Int64ToFloat => {
                let wide = self.extend_to_i64(from, x);
                self.b.ins().fcvt_from_sint(tt, wide)
            }
            CastPlan::U64ToFloat => self.b.ins().fcvt_from_uint(tt, x),
        }
    }
}

/// Keep `VmCtx` in this module's view so offsets above stay checked.
const _: () = assert!(std::mem::size_of::<VmCtx>() == 48);
