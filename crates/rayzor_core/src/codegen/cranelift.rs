//! The Cranelift backend: an `Emitter` over `cranelift_frontend` plus the
//! ISA settings of the two optimisation levels. The lowering is
//! `codegen::lower`; nothing here decides MIR semantics.

use super::abi;
use super::code_memory::CodeBlob;
use super::emit::{Conv, Emitter, Ext, FloatCC, FloatOp, IntCC, IntOp, Mem, Native, NativeSig, Ty, UnaryOp};
use super::lower::{lower_function, lower_host_entry};
use super::{frame_too_large, Backend, CodegenEnv, CompileUnit, MachineCode};
use crate::mir::FuncId;
use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::condcodes;
use cranelift_codegen::ir::immediates::{Ieee32, Ieee64};
use cranelift_codegen::ir::{
    self, types, AbiParam, BlockArg, InstBuilder, MemFlagsData, StackSlotData, StackSlotKind, UserFuncName,
};
use cranelift_codegen::isa::{CallConv, OwnedTargetIsa};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::Context;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Switch};
use std::collections::HashMap;

/// A `switch` whose keys fill at least 1 in this many of the values between
/// its least and greatest key is lowered as one jump table (as LLVM's and
/// GCC's switch lowering do for dense cases).
const DENSE_SWITCH: u128 = 4;
/// The largest jump table made of a sparse `switch` (entries).
const MAX_TABLE: u128 = 1 << 22;

/// One ISA per optimisation level; building an ISA is not free, so they are made once.
pub struct CraneliftBackend {
    /// `opt_level=none` with single-pass register allocation: fastest compile.
    quick: OwnedTargetIsa,
    /// `opt_level=speed` with backtracking register allocation.
    optimizing: OwnedTargetIsa,
    native: NativeOps,
}

/// Which `emit::Native` operations the host ISA has instructions for.
/// Without them Cranelift would emit libcalls, which need relocations that
/// this backend does not link; the lowering calls builtins instead.
#[derive(Clone, Copy, Debug)]
struct NativeOps {
    round: bool,
    fma: bool,
}

impl NativeOps {
    fn of(isa: &OwnedTargetIsa) -> NativeOps {
        let flag = |name: &str| isa.isa_flags().iter().find(|v| v.name == name).and_then(|v| v.as_bool());
        // ISAs without such a flag (aarch64, riscv64 with its defaults) have the instructions.
        NativeOps { round: flag("has_sse41").unwrap_or(true), fma: flag("has_fma").unwrap_or(true) }
    }
}

/// `RAYZOR_CRANELIFT_ISA_FLAGS="has_sse41=false,has_fma=false"`: ISA settings
/// applied over the detected host features (to test code paths of older CPUs).
fn isa_flag_overrides() -> Vec<(String, String)> {
    std::env::var("RAYZOR_CRANELIFT_ISA_FLAGS")
        .unwrap_or_default()
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
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
    let mut isa_builder = cranelift_native::builder().map_err(|e| format!("host ISA not supported: {e}"))?;
    for (k, v) in isa_flag_overrides() {
        isa_builder.set(&k, &v).map_err(|e| format!("RAYZOR_CRANELIFT_ISA_FLAGS {k}={v}: {e}"))?;
    }
    isa_builder.finish(settings::Flags::new(flags)).map_err(|e| format!("cranelift ISA: {e}"))
}

impl CraneliftBackend {
    /// The process-wide instance.
    pub fn shared() -> Result<&'static CraneliftBackend, String> {
        static BACKEND: std::sync::OnceLock<Result<CraneliftBackend, String>> = std::sync::OnceLock::new();
        BACKEND.get_or_init(CraneliftBackend::new).as_ref().map_err(Clone::clone)
    }

    pub fn new() -> Result<Self, String> {
        let quick = make_isa("none", "single_pass")?;
        let native = NativeOps::of(&quick);
        Ok(CraneliftBackend { quick, optimizing: make_isa("speed", "backtracking")?, native })
    }

    fn isa(&self, optimize: bool) -> &OwnedTargetIsa {
        if optimize {
            &self.optimizing
        } else {
            &self.quick
        }
    }

    /// Build a function of signature `sig` with `body` and compile it.
    fn build(
        &self,
        name: &str,
        index: (u32, u32),
        sig: &NativeSig,
        optimize: bool,
        body: impl FnOnce(&mut ClifEmitter<'_>) -> Result<(), String>,
    ) -> Result<CodeBlob, String> {
        let clif = self.build_clif(index, sig, optimize, body)?;
        emit(self.isa(optimize), clif, name)
    }

    /// The Cranelift IR of a function of signature `sig` with `body`.
    fn build_clif(
        &self,
        index: (u32, u32),
        sig: &NativeSig,
        optimize: bool,
        body: impl FnOnce(&mut ClifEmitter<'_>) -> Result<(), String>,
    ) -> Result<ir::Function, String> {
        let isa = self.isa(optimize);
        let mut clif = ir::Function::with_name_signature(UserFuncName::user(index.0, index.1), clif_sig(sig));
        let mut fctx = FunctionBuilderContext::new();
        {
            let mut e = ClifEmitter::new(FunctionBuilder::new(&mut clif, &mut fctx), self.native);
            body(&mut e)?;
            e.b.seal_all_blocks();
            e.b.finalize(isa.frontend_config());
        }
        Ok(clif)
    }

    /// The host entry of function `id` (signature `abi::host_entry_signature`).
    pub fn compile_host_entry(&self, env: &CodegenEnv<'_>, id: FuncId) -> Result<CodeBlob, String> {
        let name = &env.module.func(id).name;
        self.build(name, (1, id.0), &abi::host_entry_signature(), false, |e| {
            lower_host_entry(e, env, id);
            Ok(())
        })
    }
}

impl CraneliftBackend {
    /// A host thunk for `sig` forwarding to `handler(context, args)` (see `codegen::thunk`).
    pub fn compile_host_thunk(
        &self,
        sig: &crate::mir::Signature,
        context: usize,
        handler: super::thunk::ThunkHandler,
    ) -> Result<CodeBlob, String> {
        let native = super::thunk::thunk_signature(sig);
        self.build("host thunk", (2, 0), &native, false, |e| {
            super::thunk::lower_host_thunk(e, sig, context, handler as usize);
            Ok(())
        })
    }
}

impl Backend for CraneliftBackend {
    fn name(&self) -> &'static str {
        "cranelift"
    }

    fn compile(&self, unit: &CompileUnit<'_>) -> Result<Box<dyn MachineCode>, String> {
        let (func, sig) = (unit.func, abi::unit_signature(unit));
        let code =
            self.build(&func.name, (0, unit.id.0), &sig, unit.opts.optimize, |e| lower_function(e, unit))?;
        Ok(Box::new(code))
    }

    /// `clif`: the IR the lowering built; `clif_opt`: after Cranelift's own
    /// passes (what instruction selection saw). The code is dropped.
    fn ir(&self, unit: &CompileUnit<'_>) -> Result<Vec<(&'static str, String)>, String> {
        let sig = abi::unit_signature(unit);
        let optimize = unit.opts.optimize;
        let clif = self.build_clif((0, unit.id.0), &sig, optimize, |e| lower_function(e, unit))?;
        let lowered = clif.display().to_string();
        let mut ctx = Context::for_function(clif);
        ctx.compile(&**self.isa(optimize), &mut ControlPlane::default())
            .map_err(|e| format!("cranelift failed to compile '{}': {:?}", unit.func.name, e.inner))?;
        Ok(vec![("clif", lowered), ("clif_opt", ctx.func.display().to_string())])
    }
}

fn emit(isa: &OwnedTargetIsa, clif: ir::Function, name: &str) -> Result<CodeBlob, String> {
    let mut ctx = Context::for_function(clif);
    let compiled = ctx
        .compile(&**isa, &mut ControlPlane::default())
        .map_err(|e| format!("cranelift failed to compile '{name}': {:?}", e.inner))?;
    let frame = compiled.buffer.frame_layout().map_or(0, |l| l.frame_to_fp_offset as u64);
    if frame > abi::MAX_FRAME_BYTES {
        return Err(frame_too_large(name, frame));
    }
    if !compiled.buffer.relocs().is_empty() {
        return Err(format!("internal error: code for '{name}' needs relocations"));
    }
    // Position-independent (no relocations): any start that keeps the alignment its
    // constants need relative to it works (16 bytes for all it emits for MIR; a
    // larger one keeps the page start).
    let code = compiled.code_buffer();
    let offset = if compiled.buffer.alignment <= 16 { super::placement::start_offset(code) } else { 0 };
    CodeBlob::at_offset(code, offset)
}

fn clif_ty(t: Ty) -> ir::Type {
    match t {
        Ty::I8 => types::I8,
        Ty::I16 => types::I16,
        Ty::I32 => types::I32,
        Ty::I64 | Ty::Addr => types::I64,
        Ty::F32 => types::F32,
        Ty::F64 => types::F64,
    }
}

fn clif_param((t, ext): (Ty, Ext)) -> AbiParam {
    let p = AbiParam::new(clif_ty(t));
    match ext {
        Ext::None => p,
        Ext::Sign => p.sext(),
        Ext::Zero => p.uext(),
    }
}

fn clif_sig(sig: &NativeSig) -> ir::Signature {
    let mut s = ir::Signature::new(CallConv::SystemV);
    s.params.extend(sig.params.iter().copied().map(clif_param));
    s.returns.extend(sig.ret.map(clif_param));
    s
}

/// Emits Cranelift IR through a `FunctionBuilder`.
pub struct ClifEmitter<'b> {
    b: FunctionBuilder<'b>,
    entry: ir::Block,
    sigs: HashMap<NativeSig, ir::SigRef>,
    native: NativeOps,
    /// Profile weights for the next `brif` (`Emitter::set_weights`).
    weights: Option<Vec<u64>>,
}

impl<'b> ClifEmitter<'b> {
    fn new(mut b: FunctionBuilder<'b>, native: NativeOps) -> Self {
        let entry = b.create_block();
        b.append_block_params_for_function_params(entry);
        b.switch_to_block(entry);
        ClifEmitter { b, entry, sigs: HashMap::new(), native, weights: None }
    }

    fn args(vals: &[ir::Value]) -> Vec<BlockArg> {
        vals.iter().map(|v| BlockArg::Value(*v)).collect()
    }

    fn flags(mem: Mem) -> MemFlagsData {
        match mem {
            Mem::Vm | Mem::Slot => MemFlagsData::trusted(),
            Mem::Heap => MemFlagsData::new(),
        }
    }
}

impl Emitter for ClifEmitter<'_> {
    type Value = ir::Value;
    type Block = ir::Block;

    fn params(&self) -> Vec<ir::Value> {
        self.b.block_params(self.entry).to_vec()
    }

    fn create_block(&mut self, params: &[Ty]) -> ir::Block {
        let blk = self.b.create_block();
        for t in params {
            self.b.append_block_param(blk, clif_ty(*t));
        }
        blk
    }

    fn block_params(&self, block: ir::Block) -> Vec<ir::Value> {
        self.b.block_params(block).to_vec()
    }

    fn set_cold(&mut self, block: ir::Block) {
        self.b.set_cold_block(block);
    }

    fn switch_to(&mut self, block: ir::Block) {
        self.b.switch_to_block(block);
    }

    fn constant(&mut self, ty: Ty, bits: u64) -> ir::Value {
        match ty {
            Ty::F32 => self.b.ins().f32const(Ieee32::with_bits(bits as u32)),
            Ty::F64 => self.b.ins().f64const(Ieee64::with_bits(bits)),
            _ => self.b.ins().iconst(clif_ty(ty), (bits & crate::mir::layout::low_mask(ty.bits())) as i64),
        }
    }

    fn int_op(&mut self, op: IntOp, a: ir::Value, b: ir::Value) -> ir::Value {
        let ins = self.b.ins();
        match op {
            IntOp::Add => ins.iadd(a, b),
            IntOp::Sub => ins.isub(a, b),
            IntOp::Mul => ins.imul(a, b),
            IntOp::And => ins.band(a, b),
            IntOp::Or => ins.bor(a, b),
            IntOp::Xor => ins.bxor(a, b),
            // Cranelift takes shift and rotate amounts modulo the width.
            IntOp::Shl => ins.ishl(a, b),
            IntOp::SShr => ins.sshr(a, b),
            IntOp::UShr => ins.ushr(a, b),
            IntOp::Rotl => ins.rotl(a, b),
            IntOp::Rotr => ins.rotr(a, b),
            IntOp::SMin => ins.smin(a, b),
            IntOp::UMin => ins.umin(a, b),
            IntOp::SMax => ins.smax(a, b),
            IntOp::UMax => ins.umax(a, b),
            IntOp::SDiv => ins.sdiv(a, b),
            IntOp::UDiv => ins.udiv(a, b),
            IntOp::SRem => ins.srem(a, b),
            IntOp::URem => ins.urem(a, b),
        }
    }

    fn float_op(&mut self, op: FloatOp, a: ir::Value, b: ir::Value) -> ir::Value {
        let ins = self.b.ins();
        match op {
            FloatOp::Add => ins.fadd(a, b),
            FloatOp::Sub => ins.fsub(a, b),
            FloatOp::Mul => ins.fmul(a, b),
            FloatOp::Div => ins.fdiv(a, b),
            FloatOp::Min => ins.fmin(a, b),
            FloatOp::Max => ins.fmax(a, b),
            FloatOp::Copysign => ins.fcopysign(a, b),
        }
    }

    fn unary(&mut self, op: UnaryOp, a: ir::Value) -> ir::Value {
        let ins = self.b.ins();
        match op {
            UnaryOp::INeg => ins.ineg(a),
            UnaryOp::IAbs => ins.iabs(a),
            UnaryOp::Not => ins.bnot(a),
            UnaryOp::Clz => ins.clz(a),
            UnaryOp::Ctz => ins.ctz(a),
            UnaryOp::Popcnt => ins.popcnt(a),
            UnaryOp::FNeg => ins.fneg(a),
            UnaryOp::FAbs => ins.fabs(a),
            UnaryOp::Sqrt => ins.sqrt(a),
            UnaryOp::Floor => ins.floor(a),
            UnaryOp::Ceil => ins.ceil(a),
            UnaryOp::Trunc => ins.trunc(a),
            UnaryOp::Nearest => ins.nearest(a),
        }
    }

    fn fma(&mut self, a: ir::Value, b: ir::Value, c: ir::Value) -> ir::Value {
        self.b.ins().fma(a, b, c)
    }

    fn has_native(&self, what: Native) -> bool {
        match what {
            Native::Round => self.native.round,
            Native::Fma => self.native.fma,
        }
    }

    fn icmp(&mut self, cc: IntCC, a: ir::Value, b: ir::Value) -> ir::Value {
        use condcodes::IntCC as C;
        let cc = match cc {
            IntCC::Eq => C::Equal,
            IntCC::Ne => C::NotEqual,
            IntCC::SLt => C::SignedLessThan,
            IntCC::SLe => C::SignedLessThanOrEqual,
            IntCC::SGt => C::SignedGreaterThan,
            IntCC::SGe => C::SignedGreaterThanOrEqual,
            IntCC::ULt => C::UnsignedLessThan,
            IntCC::ULe => C::UnsignedLessThanOrEqual,
            IntCC::UGt => C::UnsignedGreaterThan,
            IntCC::UGe => C::UnsignedGreaterThanOrEqual,
        };
        self.b.ins().icmp(cc, a, b)
    }

    fn fcmp(&mut self, cc: FloatCC, a: ir::Value, b: ir::Value) -> ir::Value {
        use condcodes::FloatCC as C;
        let cc = match cc {
            FloatCC::Eq => C::Equal,
            FloatCC::Une => C::NotEqual,
            FloatCC::Lt => C::LessThan,
            FloatCC::Le => C::LessThanOrEqual,
            FloatCC::Gt => C::GreaterThan,
            FloatCC::Ge => C::GreaterThanOrEqual,
        };
        self.b.ins().fcmp(cc, a, b)
    }

    fn select(&mut self, cond: ir::Value, a: ir::Value, b: ir::Value) -> ir::Value {
        self.b.ins().select(cond, a, b)
    }

    fn convert(&mut self, conv: Conv, to: Ty, x: ir::Value) -> ir::Value {
        let t = clif_ty(to);
        let ins = self.b.ins();
        match conv {
            Conv::Trunc => ins.ireduce(t, x),
            Conv::SExt => ins.sextend(t, x),
            Conv::ZExt => ins.uextend(t, x),
            Conv::FPromote => ins.fpromote(t, x),
            Conv::FDemote => ins.fdemote(t, x),
            Conv::FToSSat => ins.fcvt_to_sint_sat(t, x),
            Conv::FToUSat => ins.fcvt_to_uint_sat(t, x),
            Conv::SToF => ins.fcvt_from_sint(t, x),
            Conv::UToF => ins.fcvt_from_uint(t, x),
            Conv::Bitcast => ins.bitcast(t, MemFlagsData::new(), x),
        }
    }

    fn load(&mut self, mem: Mem, ty: Ty, addr: ir::Value, offset: i32) -> ir::Value {
        self.b.ins().load(clif_ty(ty), Self::flags(mem), addr, offset)
    }

    fn store(&mut self, mem: Mem, value: ir::Value, addr: ir::Value, offset: i32) {
        self.b.ins().store(Self::flags(mem), value, addr, offset);
    }

    fn stack_slot(&mut self, bytes: u32) -> ir::Value {
        let ss = self.b.create_sized_stack_slot(StackSlotData::new(StackSlotKind::ExplicitSlot, bytes, 3));
        self.b.ins().stack_addr(types::I64, ss, 0)
    }

    fn stack_pointer(&mut self) -> ir::Value {
        self.b.ins().get_stack_pointer(types::I64)
    }

    fn call(&mut self, sig: &NativeSig, callee: ir::Value, args: &[ir::Value]) -> Option<ir::Value> {
        let sigref = match self.sigs.get(sig) {
            Some(r) => *r,
            None => {
                let r = self.b.import_signature(clif_sig(sig));
                self.sigs.insert(sig.clone(), r);
                r
            }
        };
        let call = self.b.ins().call_indirect(sigref, callee, args);
        self.b.inst_results(call).first().copied()
    }

    fn jump(&mut self, dest: ir::Block, args: &[ir::Value]) {
        self.b.ins().jump(dest, &Self::args(args));
    }

    fn brif(
        &mut self,
        cond: ir::Value,
        then_dest: ir::Block,
        then_args: &[ir::Value],
        else_dest: ir::Block,
        else_args: &[ir::Value],
    ) {
        // A profile that says one side is rare (under 1 in 32): lay it out of line.
        if let Some([t, e]) = self.weights.take().as_deref().map(|w| [w[0], w[1]]) {
            if t.saturating_mul(32) < e && then_dest != else_dest {
                self.b.set_cold_block(then_dest);
            } else if e.saturating_mul(32) < t && then_dest != else_dest {
                self.b.set_cold_block(else_dest);
            }
        }
        self.b.ins().brif(cond, then_dest, &Self::args(then_args), else_dest, &Self::args(else_args));
    }

    fn set_weights(&mut self, weights: &[u64]) {
        self.weights = (weights.len() == 2).then(|| weights.to_vec());
    }

    fn switch(&mut self, value: ir::Value, _ty: Ty, cases: &[(u64, ir::Block)], default: ir::Block) {
        self.weights = None;
        let mut sw = Switch::new();
        for (key, blk) in cases {
            sw.set_entry(*key as u128, *blk);
        }
        // Dense enough keys (at least one in `DENSE_SWITCH` of the values between
        // the least and the greatest) become one jump table, their holes going to
        // `default`: `Switch` makes a table of contiguous keys only, and a search
        // tree of a block per case otherwise (100k keys 3 apart: ~1 s at T0).
        if let (Some(lo), Some(hi)) = (cases.iter().map(|c| c.0).min(), cases.iter().map(|c| c.0).max()) {
            let span = u128::from(hi - lo) + 1;
            if span > cases.len() as u128 && span <= DENSE_SWITCH * cases.len() as u128 && span <= MAX_TABLE {
                let keys: std::collections::HashSet<u64> = cases.iter().map(|c| c.0).collect();
                for k in (lo..=hi).filter(|k| !keys.contains(k)) {
                    sw.set_entry(k as u128, default);
                }
            }
        }
        sw.emit(&mut self.b, value, default);
    }

    fn ret(&mut self, value: Option<ir::Value>) {
        match value {
            Some(v) => self.b.ins().return_(&[v]),
            None => self.b.ins().return_(&[]),
        };
    }

    fn unreachable(&mut self) {
        self.b.ins().trap(ir::TrapCode::unwrap_user(1));
    }
}
