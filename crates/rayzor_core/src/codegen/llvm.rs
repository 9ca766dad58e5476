//! LLVM backend (T3): lowers one MIR function to LLVM IR, optimises it with
//! the new pass manager at `default<O3>` for the host CPU, emits an object
//! file and links it into one process-wide ORC LLJIT.
//!
//! The lowering mirrors `codegen::cranelift` instruction for instruction:
//! values are kept as native LLVM scalars (`i8` for bool, `i64` for ptr) and
//! converted to the canonical `i64`/`f32`/`f64` form at call boundaries; the
//! prologue counts the call (with sampling), checks the call depth and the
//! native stack, and every operation that could fault or be undefined in LLVM
//! (division, oversized shifts, float-to-int casts) is guarded or lowered to
//! a fully defined form. Traps store the trap code in `VmCtx` and return.
//!
//! Concurrency: each compile uses its own `LLVMContext`, module and (per
//! thread, cached) `TargetMachine`, so IR building, optimisation and code
//! generation of different functions run in parallel; only the finished
//! object file goes to the shared LLJIT, whose linking is thread-safe. Each
//! compile is added under a fresh resource tracker, so dropping the returned
//! `MachineCode` frees exactly that code.

use super::abi::{self, COUNTER_CALLS, VMCTX_DEPTH, VMCTX_STACK_LIMIT, VMCTX_TRAP};
use super::cast::{cast_plan, CastPlan};
use super::cranelift::CodegenEnv;
use super::target::{self, payload_slots};
use super::{MachineCode, Tier};
use crate::mir::{
    BinOp, BlockCall, Callee, CmpOp, FuncId, Function, InstKind, Scalar, Signature, TrapKind, Type, UnOp,
    Value, MAX_CALL_DEPTH,
};
use crate::runtime::helpers;
use inkwell::llvm_sys as sys;
use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::os::raw::c_char;
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use sys::analysis::{LLVMVerifierFailureAction, LLVMVerifyModule};
use sys::core::*;
use sys::error::{LLVMConsumeError, LLVMDisposeErrorMessage, LLVMErrorRef, LLVMGetErrorMessage};
use sys::orc2::lljit::*;
use sys::orc2::*;
use sys::prelude::*;
use sys::target_machine::*;
use sys::transforms::pass_builder::*;
use sys::{LLVMIntPredicate, LLVMRealPredicate};

const NONAME: *const c_char = c"".as_ptr();

/// Error message of an `LLVMErrorRef` (consumed).
unsafe fn take_error(err: LLVMErrorRef) -> String {
    let msg = LLVMGetErrorMessage(err);
    let s = CStr::from_ptr(msg).to_string_lossy().into_owned();
    LLVMDisposeErrorMessage(msg);
    s
}

/// A string LLVM allocated with `LLVMCreateMessage` semantics (disposed here).
unsafe fn take_message(msg: *mut c_char) -> String {
    if msg.is_null() {
        return String::new();
    }
    let s = CStr::from_ptr(msg).to_string_lossy().into_owned();
    LLVMDisposeMessage(msg);
    s
}

/// The process-wide LLJIT. Never disposed: code lives in resource trackers.
struct Orc {
    jit: LLVMOrcLLJITRef,
}

// SAFETY: LLJIT is thread-safe: adding objects, looking up symbols and
// removing resource trackers may happen concurrently from any thread.
unsafe impl Send for Orc {}
unsafe impl Sync for Orc {}

static ORC: OnceLock<Result<Orc, String>> = OnceLock::new();

fn orc() -> Result<&'static Orc, String> {
    ORC.get_or_init(|| unsafe {
        if sys::target::LLVM_InitializeNativeTarget() != 0
            || sys::target::LLVM_InitializeNativeAsmPrinter() != 0
        {
            return Err("LLVM has no native target for this host".into());
        }
        let builder = LLVMOrcCreateLLJITBuilder();
        let mut jit = ptr::null_mut();
        let err = LLVMOrcCreateLLJIT(&mut jit, builder);
        if !err.is_null() {
            return Err(format!("creating the LLVM JIT: {}", take_error(err)));
        }
        // LLVM may turn loops into memset/memcpy calls: resolve them in the process.
        let mut gen = ptr::null_mut();
        let err = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(
            &mut gen,
            LLVMOrcLLJITGetGlobalPrefix(jit),
            None,
            ptr::null_mut(),
        );
        if !err.is_null() {
            return Err(format!("creating the process symbol generator: {}", take_error(err)));
        }
        LLVMOrcJITDylibAddGenerator(LLVMOrcLLJITGetMainJITDylib(jit), gen);
        Ok(Orc { jit })
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// A target machine for the host CPU (name + features), one per thread:
/// a `TargetMachine` must not be used by two compiles at once.
struct HostTm(LLVMTargetMachineRef);

impl Drop for HostTm {
    fn drop(&mut self) {
        // SAFETY: created by LLVMCreateTargetMachine, used only by this thread.
        unsafe { LLVMDisposeTargetMachine(self.0) }
    }
}

thread_local! {
    static HOST_TM: std::cell::RefCell<Option<HostTm>> = const { std::cell::RefCell::new(None) };
}

unsafe fn create_host_tm() -> Result<LLVMTargetMachineRef, String> {
    let triple = LLVMGetDefaultTargetTriple();
    let mut target = ptr::null_mut();
    let mut msg = ptr::null_mut();
    if LLVMGetTargetFromTriple(triple, &mut target, &mut msg) != 0 {
        LLVMDisposeMessage(triple);
        return Err(format!("no LLVM target for the host: {}", take_message(msg)));
    }
    let cpu = LLVMGetHostCPUName();
    let features = LLVMGetHostCPUFeatures();
    // PIC + small code model: what LLJIT's JITLink layer expects on x86-64.
    let tm = LLVMCreateTargetMachine(
        target,
        triple,
        cpu,
        features,
        LLVMCodeGenOptLevel::LLVMCodeGenLevelAggressive,
        LLVMRelocMode::LLVMRelocPIC,
        LLVMCodeModel::LLVMCodeModelSmall,
    );
    LLVMDisposeMessage(triple);
    LLVMDisposeMessage(cpu);
    LLVMDisposeMessage(features);
    if tm.is_null() {
        return Err("LLVM could not create a target machine for the host".into());
    }
    Ok(tm)
}

/// Code of one function in the LLJIT; dropping it removes its resource tracker.
pub struct LlvmCode {
    rt: LLVMOrcResourceTrackerRef,
    address: usize,
    code_len: usize,
    held: usize,
}

// SAFETY: resource trackers may be removed from any thread.
unsafe impl Send for LlvmCode {}
unsafe impl Sync for LlvmCode {}

impl MachineCode for LlvmCode {
    fn address(&self) -> usize {
        self.address
    }
    fn code_len(&self) -> usize {
        self.code_len
    }
    fn held_bytes(&self) -> usize {
        self.held
    }
}

impl Drop for LlvmCode {
    fn drop(&mut self) {
        // SAFETY: the tracker is ours; the runtime drops code only once no call can run it.
        unsafe {
            let err = LLVMOrcResourceTrackerRemove(self.rt);
            if !err.is_null() {
                LLVMConsumeError(err);
            }
            LLVMOrcReleaseResourceTracker(self.rt);
            // Each compile interned a unique symbol name; drop the dead ones now and then.
            if DROPPED.fetch_add(1, Ordering::Relaxed) % 64 == 63 {
                if let Ok(orc) = orc() {
                    let es = LLVMOrcLLJITGetExecutionSession(orc.jit);
                    LLVMOrcSymbolStringPoolClearDeadEntries(LLVMOrcExecutionSessionGetSymbolStringPool(es));
                }
            }
        }
    }
}

static DROPPED: AtomicU64 = AtomicU64::new(0);

/// The T3 backend. Stateless: everything shared lives in the process-wide LLJIT.
pub struct LlvmBackend {
    _private: (),
}

static NEXT_SYMBOL: AtomicU64 = AtomicU64::new(0);

/// Owns the per-compile LLVM context and module.
struct ModuleGuard {
    ctx: LLVMContextRef,
    module: LLVMModuleRef,
}

impl Drop for ModuleGuard {
    fn drop(&mut self) {
        // SAFETY: created in compile_function and not shared.
        unsafe {
            LLVMDisposeModule(self.module);
            LLVMContextDispose(self.ctx);
        }
    }
}

impl LlvmBackend {
    pub fn new() -> Result<Self, String> {
        orc()?;
        Ok(LlvmBackend { _private: () })
    }

    /// Compile `func` (MIR function `id` of `env.module`, usually T2-optimised) at T3.
    pub fn compile_function(
        &self,
        env: &CodegenEnv<'_>,
        id: FuncId,
        func: &Function,
    ) -> Result<Box<dyn MachineCode>, String> {
        let orc = orc()?;
        HOST_TM.with(|cell| {
            let mut cell = cell.borrow_mut();
            if cell.is_none() {
                *cell = Some(HostTm(unsafe { create_host_tm()? }));
            }
            let tm = cell.as_ref().expect("host target machine").0;
            // SAFETY: all LLVM objects below are created and used by this thread only,
            // except the LLJIT, which is thread-safe. A bug in the lowering must not
            // take the process (or a promoter thread) down: report it as an error.
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe {
                self.compile_with(orc, tm, env, id, func)
            }))
            .unwrap_or_else(|p| {
                let why = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned());
                Err(format!(
                    "internal error in the LLVM lowering of '{}': {}",
                    func.name,
                    why.unwrap_or_default()
                ))
            })
        })
    }

    unsafe fn compile_with(
        &self,
        orc: &Orc,
        tm: LLVMTargetMachineRef,
        env: &CodegenEnv<'_>,
        id: FuncId,
        func: &Function,
    ) -> Result<Box<dyn MachineCode>, String> {
        let n = NEXT_SYMBOL.fetch_add(1, Ordering::Relaxed);
        let name = CString::new(format!("rayzor_t3_{}_{}", id.0, n)).expect("no NUL in symbol");
        let ctx = LLVMContextCreate();
        let module = LLVMModuleCreateWithNameInContext(name.as_ptr(), ctx);
        let guard = ModuleGuard { ctx, module };
        let triple = LLVMGetTargetMachineTriple(tm);
        LLVMSetTarget(module, triple);
        LLVMDisposeMessage(triple);
        let dl = LLVMCreateTargetDataLayout(tm);
        sys::target::LLVMSetModuleDataLayout(module, dl);
        sys::target::LLVMDisposeTargetData(dl);

        {
            let mut lower = Lower::new(env, id, func, ctx, module, &name);
            let r = lower.run();
            LLVMDisposeBuilder(lower.b);
            LLVMDisposeBuilder(lower.ab);
            r?;
        }
        let mut msg = ptr::null_mut();
        if LLVMVerifyModule(module, LLVMVerifierFailureAction::LLVMReturnStatusAction, &mut msg) != 0 {
            return Err(format!(
                "internal error: invalid LLVM IR for '{}': {}",
                func.name,
                take_message(msg)
            ));
        }
        take_message(msg);

        let opts = LLVMCreatePassBuilderOptions();
        let err = LLVMRunPasses(module, c"default<O3>".as_ptr(), tm, opts);
        LLVMDisposePassBuilderOptions(opts);
        if !err.is_null() {
            return Err(format!("LLVM optimisation of '{}' failed: {}", func.name, take_error(err)));
        }

        if std::env::var_os("RAYZOR_LLVM_DUMP").is_some() {
            // Debugging aid: the optimised IR of every T3 compile, on stderr.
            eprintln!("; T3 '{}'\n{}", func.name, take_message(LLVMPrintModuleToString(module)));
        }

        let mut buf = ptr::null_mut();
        let mut msg = ptr::null_mut();
        if LLVMTargetMachineEmitToMemoryBuffer(
            tm,
            module,
            LLVMCodeGenFileType::LLVMObjectFile,
            &mut msg,
            &mut buf,
        ) != 0
        {
            return Err(format!("LLVM code generation of '{}' failed: {}", func.name, take_message(msg)));
        }
        let (code_len, held) = object_sizes(buf, ctx, &name);
        drop(guard);

        let jd = LLVMOrcLLJITGetMainJITDylib(orc.jit);
        let rt = LLVMOrcJITDylibCreateResourceTracker(jd);
        // Takes ownership of `buf`.
        let err = LLVMOrcLLJITAddObjectFileWithRT(orc.jit, rt, buf);
        if !err.is_null() {
            LLVMOrcReleaseResourceTracker(rt);
            return Err(format!("LLVM JIT rejected the code of '{}': {}", func.name, take_error(err)));
        }
        // From here on, dropping `code` removes whatever was added.
        let mut code = LlvmCode { rt, address: 0, code_len, held };
        let mut addr: LLVMOrcExecutorAddress = 0;
        let err = LLVMOrcLLJITLookup(orc.jit, &mut addr, name.as_ptr());
        if !err.is_null() {
            return Err(format!("LLVM JIT could not link '{}': {}", func.name, take_error(err)));
        }
        if addr == 0 {
            return Err(format!("LLVM JIT gave no address for '{}'", func.name));
        }
        code.address = addr as usize;
        Ok(Box::new(code))
    }
}

/// (bytes of the function's machine code, bytes of memory the object will
/// hold once linked: its allocated sections rounded up to pages).
unsafe fn object_sizes(buf: LLVMMemoryBufferRef, ctx: LLVMContextRef, name: &CStr) -> (usize, usize) {
    use sys::object::*;
    let mut msg = ptr::null_mut();
    let bin = LLVMCreateBinary(buf, ctx, &mut msg);
    if bin.is_null() {
        take_message(msg);
        let n = LLVMGetBufferSize(buf);
        return (n, n.div_ceil(4096) * 4096);
    }
    let mut code_len = 0;
    let syms = LLVMObjectFileCopySymbolIterator(bin);
    while LLVMObjectFileIsSymbolIteratorAtEnd(bin, syms) == 0 {
        let s = LLVMGetSymbolName(syms);
        if !s.is_null() && CStr::from_ptr(s) == name {
            code_len = LLVMGetSymbolSize(syms) as usize;
        }
        LLVMMoveToNextSymbol(syms);
    }
    LLVMDisposeSymbolIterator(syms);
    let mut held = 0usize;
    let secs = LLVMObjectFileCopySectionIterator(bin);
    while LLVMObjectFileIsSectionIteratorAtEnd(bin, secs) == 0 {
        let s = LLVMGetSectionName(secs);
        let sname = if s.is_null() { "" } else { CStr::from_ptr(s).to_str().unwrap_or("") };
        if [".text", ".rodata", ".data", ".bss", ".eh_frame"].iter().any(|p| sname.starts_with(p)) {
            held += LLVMGetSectionSize(secs) as usize;
        }
        LLVMMoveToNextSection(secs);
    }
    LLVMDisposeSectionIterator(secs);
    LLVMDisposeBinary(bin);
    (code_len, held.max(code_len).div_ceil(4096).max(1) * 4096)
}

struct Types {
    i1: LLVMTypeRef,
    i8: LLVMTypeRef,
    i16: LLVMTypeRef,
    i32: LLVMTypeRef,
    i64: LLVMTypeRef,
    f32: LLVMTypeRef,
    f64: LLVMTypeRef,
    ptr: LLVMTypeRef,
    void: LLVMTypeRef,
}

struct Lower<'a> {
    env: &'a CodegenEnv<'a>,
    id: FuncId,
    func: &'a Function,
    ctx: LLVMContextRef,
    module: LLVMModuleRef,
    /// Main builder.
    b: LLVMBuilderRef,
    /// Builder for allocas, positioned before the branch that ends the first block.
    ab: LLVMBuilderRef,
    t: Types,
    fnv: LLVMValueRef,
    fn_ty: LLVMTypeRef,
    blocks: Vec<LLVMBasicBlockRef>,
    /// Phi node of every leaf of every block parameter, per MIR block.
    phis: Vec<Vec<LLVMValueRef>>,
    vals: Vec<Vec<LLVMValueRef>>,
    vmctx: LLVMValueRef,
    ret_area: Option<LLVMValueRef>,
    depth: LLVMValueRef,
    exit_block: Option<LLVMBasicBlockRef>,
    trap_blocks: HashMap<TrapKind, LLVMBasicBlockRef>,
    /// `branch_weights` metadata for rarely taken branches.
    unlikely: LLVMValueRef,
    prof_kind: u32,
}

fn mask(bits: u32) -> u64 {
    target::low_mask(bits)
}

impl<'a> Lower<'a> {
    unsafe fn new(
        env: &'a CodegenEnv<'a>,
        id: FuncId,
        func: &'a Function,
        ctx: LLVMContextRef,
        module: LLVMModuleRef,
        name: &CStr,
    ) -> Self {
        let t = Types {
            i1: LLVMInt1TypeInContext(ctx),
            i8: LLVMInt8TypeInContext(ctx),
            i16: LLVMInt16TypeInContext(ctx),
            i32: LLVMInt32TypeInContext(ctx),
            i64: LLVMInt64TypeInContext(ctx),
            f32: LLVMFloatTypeInContext(ctx),
            f64: LLVMDoubleTypeInContext(ctx),
            ptr: LLVMPointerTypeInContext(ctx, 0),
            void: LLVMVoidTypeInContext(ctx),
        };
        let mut lower = Lower {
            env,
            id,
            func,
            ctx,
            module,
            b: LLVMCreateBuilderInContext(ctx),
            ab: LLVMCreateBuilderInContext(ctx),
            t,
            fnv: ptr::null_mut(),
            fn_ty: ptr::null_mut(),
            blocks: Vec::new(),
            phis: Vec::new(),
            vals: vec![Vec::new(); func.values.len()],
            vmctx: ptr::null_mut(),
            ret_area: None,
            depth: ptr::null_mut(),
            exit_block: None,
            trap_blocks: HashMap::new(),
            unlikely: ptr::null_mut(),
            prof_kind: 0,
        };
        lower.fn_ty = lower.jit_fn_type(&func.sig);
        lower.fnv = LLVMAddFunction(module, name.as_ptr(), lower.fn_ty);
        let nounwind = lower.enum_attr("nounwind");
        LLVMAddAttributeAtIndex(lower.fnv, sys::LLVMAttributeFunctionIndex, nounwind);
        let prof = c"prof";
        lower.prof_kind = LLVMGetMDKindIDInContext(ctx, prof.as_ptr(), 4);
        let bw = "branch_weights";
        let mut md = [
            LLVMMDStringInContext2(ctx, bw.as_ptr() as *const c_char, bw.len()),
            LLVMValueAsMetadata(LLVMConstInt(lower.t.i32, 1, 0)),
            LLVMValueAsMetadata(LLVMConstInt(lower.t.i32, 1 << 20, 0)),
        ];
        lower.unlikely = LLVMMetadataAsValue(ctx, LLVMMDNodeInContext2(ctx, md.as_mut_ptr(), 3));
        lower
    }

    unsafe fn enum_attr(&self, name: &str) -> LLVMAttributeRef {
        let kind = LLVMGetEnumAttributeKindForName(name.as_ptr() as *const c_char, name.len());
        LLVMCreateEnumAttribute(self.ctx, kind, 0)
    }

    fn lty(&self, s: Scalar) -> LLVMTypeRef {
        match s {
            Scalar::Bool | Scalar::I8 | Scalar::U8 => self.t.i8,
            Scalar::I16 | Scalar::U16 => self.t.i16,
            Scalar::I32 | Scalar::U32 => self.t.i32,
            Scalar::F32 => self.t.f32,
            Scalar::F64 => self.t.f64,
            Scalar::I64 | Scalar::U64 | Scalar::Ptr => self.t.i64,
        }
    }

    fn abi_ty(&self, s: Scalar) -> LLVMTypeRef {
        match abi::abi_class(s) {
            abi::AbiClass::I64 => self.t.i64,
            abi::AbiClass::F32 => self.t.f32,
            abi::AbiClass::F64 => self.t.f64,
        }
    }

    /// `fn(vmctx, [ret_area,] leaves...) -> [leaf]` (see `codegen::abi`).
    unsafe fn jit_fn_type(&self, sig: &Signature) -> LLVMTypeRef {
        let mut params = vec![self.t.ptr];
        if abi::uses_ret_area(&sig.ret) {
            params.push(self.t.ptr);
        }
        params.extend(abi::param_leaves(sig).into_iter().map(|s| self.abi_ty(s)));
        let rets = abi::ret_leaves(&sig.ret);
        let ret = if rets.len() == 1 { self.abi_ty(rets[0]) } else { self.t.void };
        LLVMFunctionType(ret, params.as_mut_ptr(), params.len() as u32, 0)
    }

    /// C signature of a host function (scalars only).
    unsafe fn host_fn_type(&self, sig: &Signature) -> LLVMTypeRef {
        let mut params: Vec<LLVMTypeRef> =
            sig.params.iter().map(|t| self.lty(t.scalar().unwrap_or(Scalar::I64))).collect();
        let ret = match sig.ret.scalar() {
            Some(s) if !sig.ret.is_void() => self.lty(s),
            _ => self.t.void,
        };
        LLVMFunctionType(ret, params.as_mut_ptr(), params.len() as u32, 0)
    }

    fn one(&self, v: Value) -> LLVMValueRef {
        self.vals[v.index()][0]
    }

    fn leaves_of(&self, v: Value) -> &[LLVMValueRef] {
        &self.vals[v.index()]
    }

    fn scalar_of(&self, v: Value) -> Scalar {
        self.func.value_type(v).scalar().unwrap_or(Scalar::I64)
    }

    unsafe fn new_block(&self) -> LLVMBasicBlockRef {
        LLVMAppendBasicBlockInContext(self.ctx, self.fnv, NONAME)
    }

    unsafe fn cur_block(&self) -> LLVMBasicBlockRef {
        LLVMGetInsertBlock(self.b)
    }

    unsafe fn c64(&self, x: u64) -> LLVMValueRef {
        LLVMConstInt(self.t.i64, x, 0)
    }

    unsafe fn cint(&self, ty: LLVMTypeRef, x: u64) -> LLVMValueRef {
        LLVMConstInt(ty, x, 0)
    }

    /// An absolute address as a pointer constant.
    unsafe fn cptr(&self, addr: usize) -> LLVMValueRef {
        LLVMConstIntToPtr(self.c64(addr as u64), self.t.ptr)
    }

    unsafe fn gep(&self, base: LLVMValueRef, offset: u64) -> LLVMValueRef {
        if offset == 0 {
            return base;
        }
        let mut idx = [self.c64(offset)];
        LLVMBuildGEP2(self.b, self.t.i8, base, idx.as_mut_ptr(), 1, NONAME)
    }

    /// A load from VM data (vmctx, counters, slots): aligned, never faulting.
    unsafe fn load_vm(&self, ty: LLVMTypeRef, base: LLVMValueRef, offset: i32) -> LLVMValueRef {
        let p = self.gep(base, offset as u64);
        let v = LLVMBuildLoad2(self.b, ty, p, NONAME);
        LLVMSetAlignment(v, 8);
        v
    }

    unsafe fn store_vm(&self, v: LLVMValueRef, base: LLVMValueRef, offset: i32) {
        let p = self.gep(base, offset as u64);
        let s = LLVMBuildStore(self.b, v, p);
        LLVMSetAlignment(s, 8);
    }

    unsafe fn intrinsic(&self, name: &str, tys: &[LLVMTypeRef]) -> (LLVMValueRef, LLVMTypeRef) {
        let id = LLVMLookupIntrinsicID(name.as_ptr() as *const c_char, name.len());
        assert!(id != 0, "unknown LLVM intrinsic {name}");
        let mut tys = tys.to_vec();
        let f = LLVMGetIntrinsicDeclaration(self.module, id, tys.as_mut_ptr(), tys.len());
        let ty = LLVMIntrinsicGetType(self.ctx, id, tys.as_mut_ptr(), tys.len());
        (f, ty)
    }

    unsafe fn call_intrinsic(&self, name: &str, tys: &[LLVMTypeRef], args: &[LLVMValueRef]) -> LLVMValueRef {
        let (f, ty) = self.intrinsic(name, tys);
        let mut args = args.to_vec();
        LLVMBuildCall2(self.b, ty, f, args.as_mut_ptr(), args.len() as u32, NONAME)
    }

    unsafe fn run(&mut self) -> Result<(), String> {
        let f = self.func;
        let alloca_block = self.new_block();
        let entry = self.new_block();
        LLVMPositionBuilderAtEnd(self.b, alloca_block);
        let br = LLVMBuildBr(self.b, entry);
        LLVMPositionBuilderBefore(self.ab, br);
        // LLVM blocks for every MIR block, with a phi per parameter leaf.
        for bd in &f.blocks {
            let bb = self.new_block();
            LLVMPositionBuilderAtEnd(self.b, bb);
            let mut phis = Vec::new();
            for p in &bd.params {
                let mut leaves = Vec::new();
                for leaf in target::leaves(f.value_type(*p)) {
                    let phi = LLVMBuildPhi(self.b, self.lty(leaf.ty), NONAME);
                    leaves.push(phi);
                }
                phis.extend(leaves.iter().copied());
                self.vals[p.index()] = leaves;
            }
            self.blocks.push(bb);
            self.phis.push(phis);
        }
        LLVMPositionBuilderAtEnd(self.b, entry);
        self.prologue();
        // T3 is the top tier: nothing is promoted on its loop counts, so its
        // loops are not counted and LLVM optimises them unhindered (a counter
        // store per iteration blocks vectorisation). Calls are still counted.
        let order = f.reverse_postorder();
        let mut reached = vec![false; f.blocks.len()];
        for &blk in &order {
            reached[blk.index()] = true;
            LLVMPositionBuilderAtEnd(self.b, self.blocks[blk.index()]);
            for &inst in &f.blocks[blk.index()].insts {
                let data = f.inst(inst);
                self.inst(&data.kind, data.result)?;
            }
        }
        // Blocks no path reaches (none in verified MIR) still need a terminator.
        for (i, bb) in self.blocks.clone().into_iter().enumerate() {
            if !reached[i] {
                LLVMPositionBuilderAtEnd(self.b, bb);
                LLVMBuildUnreachable(self.b);
            }
        }
        self.finish_cold_blocks();
        Ok(())
    }

    unsafe fn mark_unlikely(&self, br: LLVMValueRef) {
        LLVMSetMetadata(br, self.prof_kind, self.unlikely);
    }

    /// Conditional branch on an `i1` to `rare` (unlikely) or `common`.
    unsafe fn br_unlikely(&self, cond: LLVMValueRef, rare: LLVMBasicBlockRef, common: LLVMBasicBlockRef) {
        let br = LLVMBuildCondBr(self.b, cond, rare, common);
        self.mark_unlikely(br);
    }

    /// Count one event in the counter at `offset` (see cranelift.rs `bump_counter`).
    unsafe fn bump_counter(&mut self, offset: i32, ticks: i32) {
        if self.env.sample_rate == 0 {
            return; // profiling compiled out
        }
        let n = self.env.sample_rate.max(1);
        let counters = self.cptr(self.env.counters_base + 64 * self.id.index());
        if n == 1 {
            let c = self.load_vm(self.t.i64, counters, offset);
            let c1 = LLVMBuildAdd(self.b, c, self.c64(1), NONAME);
            self.store_vm(c1, counters, offset);
            return;
        }
        let t = self.load_vm(self.t.i64, self.vmctx, ticks);
        let t1 = LLVMBuildSub(self.b, t, self.c64(1), NONAME);
        self.store_vm(t1, self.vmctx, ticks);
        let sample = self.new_block();
        let cont = self.new_block();
        let zero = LLVMBuildICmp(self.b, LLVMIntPredicate::LLVMIntEQ, t1, self.c64(0), NONAME);
        self.br_unlikely(zero, sample, cont);
        LLVMPositionBuilderAtEnd(self.b, sample);
        self.store_vm(self.c64(n), self.vmctx, ticks);
        let c = self.load_vm(self.t.i64, counters, offset);
        let c1 = LLVMBuildAdd(self.b, c, self.c64(n), NONAME);
        self.store_vm(c1, counters, offset);
        LLVMBuildBr(self.b, cont);
        LLVMPositionBuilderAtEnd(self.b, cont);
    }

    /// Count the call, check depth and stack, convert ABI params, enter block 0.
    unsafe fn prologue(&mut self) {
        self.vmctx = LLVMGetParam(self.fnv, 0);
        let mut k = 1;
        if abi::uses_ret_area(&self.func.sig.ret) {
            self.ret_area = Some(LLVMGetParam(self.fnv, 1));
            k = 2;
        }
        self.depth = self.load_vm(self.t.i64, self.vmctx, VMCTX_DEPTH);
        self.bump_counter(COUNTER_CALLS + 8 * Tier::T3 as i32, abi::VMCTX_CALL_TICKS);
        let too_deep = LLVMBuildICmp(
            self.b,
            LLVMIntPredicate::LLVMIntUGE,
            self.depth,
            self.c64(MAX_CALL_DEPTH as u64),
            NONAME,
        );
        self.trap_if(too_deep, TrapKind::StackOverflow);
        let sp = self.call_intrinsic("llvm.stacksave", &[self.t.ptr], &[]);
        let sp = LLVMBuildPtrToInt(self.b, sp, self.t.i64, NONAME);
        let limit = self.load_vm(self.t.i64, self.vmctx, VMCTX_STACK_LIMIT);
        let low = LLVMBuildICmp(self.b, LLVMIntPredicate::LLVMIntULT, sp, limit, NONAME);
        self.trap_if(low, TrapKind::StackOverflow);
        let d1 = LLVMBuildAdd(self.b, self.depth, self.c64(1), NONAME);
        self.store_vm(d1, self.vmctx, VMCTX_DEPTH);

        let mut args = Vec::new();
        for leaf in abi::param_leaves(&self.func.sig) {
            let v = self.abi_to_native(leaf, LLVMGetParam(self.fnv, k));
            args.push(v);
            k += 1;
        }
        let from = self.cur_block();
        self.add_incoming(0, &args, from);
        LLVMBuildBr(self.b, self.blocks[0]);
    }

    unsafe fn add_incoming(&self, block: usize, args: &[LLVMValueRef], from: LLVMBasicBlockRef) {
        for (phi, v) in self.phis[block].iter().zip(args) {
            let mut vals = [*v];
            let mut bbs = [from];
            LLVMAddIncoming(*phi, vals.as_mut_ptr(), bbs.as_mut_ptr(), 1);
        }
    }

    fn block_args(&self, call: &BlockCall) -> Vec<LLVMValueRef> {
        call.args.iter().flat_map(|a| self.leaves_of(*a).iter().copied()).collect()
    }

    /// Branch from the current block to `call`'s block with its arguments.
    unsafe fn jump(&self, call: &BlockCall) {
        let args = self.block_args(call);
        self.add_incoming(call.block.index(), &args, self.cur_block());
        LLVMBuildBr(self.b, self.blocks[call.block.index()]);
    }

    /// A block that jumps to `call` (so several edges may reach one block).
    unsafe fn pad(&self, call: &BlockCall) -> LLVMBasicBlockRef {
        let saved = self.cur_block();
        let pad = self.new_block();
        LLVMPositionBuilderAtEnd(self.b, pad);
        self.jump(call);
        LLVMPositionBuilderAtEnd(self.b, saved);
        pad
    }

    unsafe fn abi_to_native(&self, s: Scalar, v: LLVMValueRef) -> LLVMValueRef {
        let t = self.lty(s);
        if s.is_float() || t == self.t.i64 {
            v
        } else {
            let r = LLVMBuildTrunc(self.b, v, t, NONAME);
            if s == Scalar::Bool {
                LLVMBuildAnd(self.b, r, self.cint(self.t.i8, 1), NONAME)
            } else {
                r
            }
        }
    }

    unsafe fn to_abi(&self, s: Scalar, v: LLVMValueRef) -> LLVMValueRef {
        if s.is_float() || self.lty(s) == self.t.i64 {
            v
        } else if s.is_signed() {
            LLVMBuildSExt(self.b, v, self.t.i64, NONAME)
        } else {
            LLVMBuildZExt(self.b, v, self.t.i64, NONAME)
        }
    }

    unsafe fn exit_block(&mut self) -> LLVMBasicBlockRef {
        if let Some(b) = self.exit_block {
            return b;
        }
        let blk = self.new_block();
        self.exit_block = Some(blk);
        blk
    }

    unsafe fn zero_of(&self, t: LLVMTypeRef) -> LLVMValueRef {
        LLVMConstNull(t)
    }

    unsafe fn finish_cold_blocks(&mut self) {
        let mut traps: Vec<(TrapKind, LLVMBasicBlockRef)> =
            self.trap_blocks.iter().map(|(k, b)| (*k, *b)).collect();
        traps.sort_by_key(|(k, _)| k.code());
        for (kind, blk) in traps {
            let exit = self.exit_block();
            LLVMPositionBuilderAtEnd(self.b, blk);
            self.store_vm(self.c64(kind.code() as u64), self.vmctx, VMCTX_TRAP);
            self.store_vm(self.c64(self.id.0 as u64 + 1), self.vmctx, abi::VMCTX_TRAP_FUNC);
            LLVMBuildBr(self.b, exit);
        }
        if let Some(blk) = self.exit_block {
            LLVMPositionBuilderAtEnd(self.b, blk);
            let rets = abi::ret_leaves(&self.func.sig.ret);
            if rets.len() == 1 {
                LLVMBuildRet(self.b, self.zero_of(self.abi_ty(rets[0])));
            } else {
                LLVMBuildRetVoid(self.b);
            }
        }
    }

    unsafe fn trap_block(&mut self, kind: TrapKind) -> LLVMBasicBlockRef {
        if let Some(b) = self.trap_blocks.get(&kind) {
            return *b;
        }
        let blk = self.new_block();
        self.trap_blocks.insert(kind, blk);
        blk
    }

    /// Branch to a trap of `kind` when the `i1` `cond` is true; continue otherwise.
    unsafe fn trap_if(&mut self, cond: LLVMValueRef, kind: TrapKind) {
        let trap = self.trap_block(kind);
        let cont = self.new_block();
        self.br_unlikely(cond, trap, cont);
        LLVMPositionBuilderAtEnd(self.b, cont);
    }

    /// After a call into MIR code: leave at once if the callee trapped.
    unsafe fn check_pending_trap(&mut self) {
        let t = self.load_vm(self.t.i64, self.vmctx, VMCTX_TRAP);
        let pending = LLVMBuildICmp(self.b, LLVMIntPredicate::LLVMIntNE, t, self.c64(0), NONAME);
        let exit = self.exit_block();
        let cont = self.new_block();
        self.br_unlikely(pending, exit, cont);
        LLVMPositionBuilderAtEnd(self.b, cont);
    }

    /// `x == c` (`c` given by its bits, masked to `x`'s width), as `i1`.
    unsafe fn icmp_const(&self, pred: LLVMIntPredicate, x: LLVMValueRef, bits: u64) -> LLVMValueRef {
        let t = LLVMTypeOf(x);
        let w = LLVMGetIntTypeWidth(t);
        LLVMBuildICmp(self.b, pred, x, self.cint(t, bits & mask(w)), NONAME)
    }

    /// An `i1` as a bool leaf (`i8` 0/1).
    unsafe fn bool_leaf(&self, c: LLVMValueRef) -> LLVMValueRef {
        LLVMBuildZExt(self.b, c, self.t.i8, NONAME)
    }

    /// A bool leaf as an `i1`.
    unsafe fn cond(&self, v: LLVMValueRef) -> LLVMValueRef {
        LLVMBuildTrunc(self.b, v, self.t.i1, NONAME)
    }

    unsafe fn iconst(&self, s: Scalar, bits: u64) -> LLVMValueRef {
        match s {
            Scalar::F32 => LLVMConstBitCast(self.cint(self.t.i32, bits & 0xffff_ffff), self.t.f32),
            Scalar::F64 => LLVMConstBitCast(self.c64(bits), self.t.f64),
            _ => self.cint(self.lty(s), bits & mask(s.bits())),
        }
    }

    unsafe fn call_helper(
        &self,
        addr: usize,
        params: &[LLVMTypeRef],
        ret: Option<LLVMTypeRef>,
        args: &[LLVMValueRef],
    ) -> LLVMValueRef {
        let mut ps = params.to_vec();
        let fty = LLVMFunctionType(ret.unwrap_or(self.t.void), ps.as_mut_ptr(), ps.len() as u32, 0);
        let mut args = args.to_vec();
        LLVMBuildCall2(self.b, fty, self.cptr(addr), args.as_mut_ptr(), args.len() as u32, NONAME)
    }

    /// Call compiled MIR code at `code` (a pointer) with MIR arguments; returns result leaves.
    unsafe fn call_mir(&mut self, sig: &Signature, code: LLVMValueRef, args: &[Value]) -> Vec<LLVMValueRef> {
        let fty = self.jit_fn_type(sig);
        let mut call_args = vec![self.vmctx];
        let ret_leaves = abi::ret_leaves(&sig.ret);
        let area = if ret_leaves.len() >= 2 {
            let aty = LLVMArrayType2(self.t.i64, ret_leaves.len() as u64);
            let a = LLVMBuildAlloca(self.ab, aty, NONAME);
            LLVMSetAlignment(a, 8);
            call_args.push(a);
            Some(a)
        } else {
            None
        };
        for a in args {
            let leaves: Vec<(Scalar, LLVMValueRef)> = target::leaves(self.func.value_type(*a))
                .into_iter()
                .map(|l| l.ty)
                .zip(self.leaves_of(*a).iter().copied())
                .collect();
            for (s, v) in leaves {
                call_args.push(self.to_abi(s, v));
            }
        }
        let call = LLVMBuildCall2(self.b, fty, code, call_args.as_mut_ptr(), call_args.len() as u32, NONAME);
        self.check_pending_trap();
        match area {
            None => ret_leaves.first().map(|s| vec![self.abi_to_native(*s, call)]).unwrap_or_default(),
            Some(a) => ret_leaves
                .iter()
                .enumerate()
                .map(|(k, s)| {
                    let v = self.load_vm(self.abi_ty(*s), a, 8 * k as i32);
                    self.abi_to_native(*s, v)
                })
                .collect(),
        }
    }

    unsafe fn call_host(&self, sig: &Signature, addr: LLVMValueRef, args: &[Value]) -> Vec<LLVMValueRef> {
        let fty = self.host_fn_type(sig);
        let mut vals: Vec<LLVMValueRef> = args.iter().map(|a| self.one(*a)).collect();
        let call = LLVMBuildCall2(self.b, fty, addr, vals.as_mut_ptr(), vals.len() as u32, NONAME);
        // Narrow integer arguments are extended per the C rules, like clang does.
        for (i, t) in sig.params.iter().enumerate() {
            let s = t.scalar().unwrap_or(Scalar::I64);
            if s.is_float() || self.lty(s) == self.t.i64 {
                continue;
            }
            let attr = self.enum_attr(if s.is_signed() { "signext" } else { "zeroext" });
            LLVMAddCallSiteAttribute(call, i as u32 + 1, attr);
        }
        match sig.ret.scalar() {
            _ if sig.ret.is_void() => vec![],
            Some(Scalar::Bool) => vec![LLVMBuildAnd(self.b, call, self.cint(self.t.i8, 1), NONAME)],
            Some(_) => vec![call],
            None => vec![],
        }
    }

    /// The current code of module function `index` (a dynamic `i64`), loaded from its slot.
    unsafe fn slot_code_dyn(&self, index: LLVMValueRef) -> LLVMValueRef {
        let off = LLVMBuildShl(self.b, index, self.c64(3), NONAME);
        let addr = LLVMBuildAdd(self.b, self.c64(self.env.slots_base as u64), off, NONAME);
        let p = LLVMBuildIntToPtr(self.b, addr, self.t.ptr, NONAME);
        self.load_slot(p)
    }

    unsafe fn slot_code(&self, func: FuncId) -> LLVMValueRef {
        let p = self.cptr(self.env.slots_base + 8 * func.index());
        self.load_slot(p)
    }

    /// Slots are published concurrently with release stores: read them atomically.
    unsafe fn load_slot(&self, p: LLVMValueRef) -> LLVMValueRef {
        let v = LLVMBuildLoad2(self.b, self.t.ptr, p, NONAME);
        LLVMSetAlignment(v, 8);
        LLVMSetOrdering(v, sys::LLVMAtomicOrdering::LLVMAtomicOrderingMonotonic);
        v
    }

    fn set(&mut self, result: Option<Value>, leaves: Vec<LLVMValueRef>) {
        if let Some(r) = result {
            self.vals[r.index()] = leaves;
        }
    }

    /// A MIR pointer (i64) plus `offset`, as an LLVM pointer.
    unsafe fn addr(&self, p: LLVMValueRef, offset: u64) -> LLVMValueRef {
        let base = LLVMBuildIntToPtr(self.b, p, self.t.ptr, NONAME);
        self.gep(base, offset)
    }

    unsafe fn load_leaves(&self, ty: &Type, p: LLVMValueRef) -> Vec<LLVMValueRef> {
        target::leaves(ty)
            .into_iter()
            .map(|l| {
                let a = self.addr(p, l.offset as u64);
                let v = LLVMBuildLoad2(self.b, self.lty(l.ty), a, NONAME);
                LLVMSetAlignment(v, 1);
                if l.ty == Scalar::Bool {
                    LLVMBuildAnd(self.b, v, self.cint(self.t.i8, 1), NONAME)
                } else {
                    v
                }
            })
            .collect()
    }

    unsafe fn store_leaf(&self, s: Scalar, v: LLVMValueRef, p: LLVMValueRef, offset: u64) {
        let a = self.addr(p, offset);
        let v = if s == Scalar::Bool { LLVMBuildAnd(self.b, v, self.cint(self.t.i8, 1), NONAME) } else { v };
        let st = LLVMBuildStore(self.b, v, a);
        LLVMSetAlignment(st, 1);
    }

    unsafe fn extend_to_i64(&self, s: Scalar, v: LLVMValueRef) -> LLVMValueRef {
        self.to_abi(s, v)
    }

    /// The raw bits of a leaf, zero-extended to 64 (for union payload packing).
    unsafe fn bits_u64(&self, s: Scalar, v: LLVMValueRef) -> LLVMValueRef {
        match s {
            Scalar::F32 => {
                let i = LLVMBuildBitCast(self.b, v, self.t.i32, NONAME);
                LLVMBuildZExt(self.b, i, self.t.i64, NONAME)
            }
            Scalar::F64 => LLVMBuildBitCast(self.b, v, self.t.i64, NONAME),
            _ if self.lty(s) == self.t.i64 => v,
            _ => LLVMBuildZExt(self.b, v, self.t.i64, NONAME),
        }
    }

    /// A leaf of type `s` from the low bits of a 64-bit word (canonicalised).
    unsafe fn leaf_from_word(&self, s: Scalar, w: LLVMValueRef) -> LLVMValueRef {
        match s {
            Scalar::F32 => {
                let i = LLVMBuildTrunc(self.b, w, self.t.i32, NONAME);
                LLVMBuildBitCast(self.b, i, self.t.f32, NONAME)
            }
            Scalar::F64 => LLVMBuildBitCast(self.b, w, self.t.f64, NONAME),
            _ if self.lty(s) == self.t.i64 => w,
            Scalar::Bool => {
                let r = LLVMBuildTrunc(self.b, w, self.t.i8, NONAME);
                LLVMBuildAnd(self.b, r, self.cint(self.t.i8, 1), NONAME)
            }
            _ => LLVMBuildTrunc(self.b, w, self.lty(s), NONAME),
        }
    }

    /// An `i1` that is true when the function at index `idx` does NOT have signature `sig`.
    unsafe fn sig_mismatch(&self, sig: &Signature, idx: LLVMValueRef) -> LLVMValueRef {
        let mut ok = self.cint(self.t.i1, 0);
        for (i, f) in self.env.module.functions.iter().enumerate() {
            if f.sig == *sig {
                let eq = LLVMBuildICmp(self.b, LLVMIntPredicate::LLVMIntEQ, idx, self.c64(i as u64), NONAME);
                ok = LLVMBuildOr(self.b, ok, eq, NONAME);
            }
        }
        LLVMBuildXor(self.b, ok, self.cint(self.t.i1, 1), NONAME)
    }

    unsafe fn switch(&self, value: Value, cases: &[(u64, BlockCall)], default: &BlockCall) {
        let s = self.scalar_of(value);
        let v = self.one(value);
        let ty = LLVMTypeOf(v);
        let mut seen = std::collections::HashSet::new();
        let mut pads = Vec::new();
        for (k, call) in cases {
            let key = k & mask(s.bits());
            if seen.insert(key) {
                pads.push((key, self.pad(call)));
            }
        }
        let dpad = self.pad(default);
        let sw = LLVMBuildSwitch(self.b, v, dpad, pads.len() as u32);
        for (key, pad) in pads {
            LLVMAddCase(sw, self.cint(ty, key), pad);
        }
    }

    unsafe fn inst(&mut self, kind: &InstKind, result: Option<Value>) -> Result<(), String> {
        use InstKind::*;
        let out: Vec<LLVMValueRef> = match kind {
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
                let c = self.compare(*op, s, a, b);
                vec![self.bool_leaf(c)]
            }
            Select { cond, if_true, if_false } => {
                let c = self.cond(self.one(*cond));
                let t = self.leaves_of(*if_true).to_vec();
                let f = self.leaves_of(*if_false).to_vec();
                t.iter().zip(&f).map(|(x, y)| LLVMBuildSelect(self.b, c, *x, *y, NONAME)).collect()
            }
            Cast { to, arg } => {
                let from = self.scalar_of(*arg);
                let a = self.one(*arg);
                vec![self.cast(from, *to, a)]
            }
            Bitcast { to, arg } => {
                let from = self.scalar_of(*arg);
                let a = self.one(*arg);
                let (ft, tt) = (self.lty(from), self.lty(*to));
                vec![if ft == tt { a } else { LLVMBuildBitCast(self.b, a, tt, NONAME) }]
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
                let size = self.c64(target::size_of(ty));
                let n = self.one(*count);
                let vmctx = LLVMBuildPtrToInt(self.b, self.vmctx, self.t.i64, NONAME);
                let i64t = self.t.i64;
                let p = self.call_helper(
                    helpers::rayzor_alloc as *const () as usize,
                    &[i64t; 3],
                    Some(i64t),
                    &[vmctx, size, n],
                );
                self.check_pending_trap();
                vec![p]
            }
            Free { ptr } => {
                let p = self.one(*ptr);
                self.call_helper(helpers::rayzor_free as *const () as usize, &[self.t.i64], None, &[p]);
                vec![]
            }
            MemCopy { dst, src, len } => {
                let a = [self.one(*dst), self.one(*src), self.one(*len)];
                self.call_helper(helpers::rayzor_memmove as *const () as usize, &[self.t.i64; 3], None, &a);
                vec![]
            }
            MemSet { dst, byte, len } => {
                let byte = LLVMBuildZExt(self.b, self.one(*byte), self.t.i64, NONAME);
                let a = [self.one(*dst), byte, self.one(*len)];
                self.call_helper(helpers::rayzor_memset as *const () as usize, &[self.t.i64; 3], None, &a);
                vec![]
            }
            FieldAddr { ty, ptr, field } => {
                let off = match ty {
                    Type::Struct(fields) => target::field_offset(fields, *field as usize),
                    _ => return Err("field on a non-struct type".into()),
                };
                let p = self.one(*ptr);
                vec![LLVMBuildAdd(self.b, p, self.c64(off), NONAME)]
            }
            ElemAddr { elem, ptr, index } => {
                let s = self.scalar_of(*index);
                let i = self.extend_to_i64(s, self.one(*index));
                let scaled = LLVMBuildMul(self.b, i, self.c64(target::size_of(elem)), NONAME);
                vec![LLVMBuildAdd(self.b, self.one(*ptr), scaled, NONAME)]
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
                let mut out = vec![self.cint(self.t.i32, *variant as u64)];
                let mut w: Vec<LLVMValueRef> = (0..words).map(|_| self.c64(0)).collect();
                let leaves = self.leaves_of(*value).to_vec();
                for (slot, v) in payload_slots(&vs[*variant as usize]).into_iter().zip(leaves) {
                    let bits = self.bits_u64(slot.ty, v);
                    let shifted = if slot.shift == 0 {
                        bits
                    } else {
                        LLVMBuildShl(self.b, bits, self.c64(slot.shift as u64), NONAME)
                    };
                    w[slot.word as usize] = LLVMBuildOr(self.b, w[slot.word as usize], shifted, NONAME);
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
                let bad = self.icmp_const(LLVMIntPredicate::LLVMIntNE, leaves[0], *variant as u64);
                self.trap_if(bad, TrapKind::BadTag);
                payload_slots(&vs[*variant as usize])
                    .into_iter()
                    .map(|slot| {
                        let w = leaves[1 + slot.word as usize];
                        let sh = if slot.shift == 0 {
                            w
                        } else {
                            LLVMBuildLShr(self.b, w, self.c64(slot.shift as u64), NONAME)
                        };
                        self.leaf_from_word(slot.ty, sh)
                    })
                    .collect()
            }
            AnyMake { arg } => {
                let s = self.scalar_of(*arg);
                let tag = self.cint(self.t.i32, s.any_tag() as u64);
                let v = self.one(*arg);
                let payload = match s {
                    Scalar::F32 | Scalar::F64 => self.bits_u64(s, v),
                    _ => self.to_abi(s, v),
                };
                vec![tag, payload]
            }
            AnyGet { ty, arg } => {
                let leaves = self.leaves_of(*arg).to_vec();
                let bad = self.icmp_const(LLVMIntPredicate::LLVMIntNE, leaves[0], ty.any_tag() as u64);
                self.trap_if(bad, TrapKind::BadTag);
                vec![self.leaf_from_word(*ty, leaves[1])]
            }
            StrConst { data } => {
                let (p, n) = self.env.data[data.index()];
                vec![self.c64(p as u64), self.c64(n as u64)]
            }
            FuncAddr { callee } => match callee {
                Callee::Func(f) => vec![self.c64(abi::FUNC_TOKEN_BASE + f.0 as u64)],
                Callee::Extern(e) => vec![self.c64(self.env.extern_addrs[e.index()] as u64)],
            },
            Call { callee, args } => match callee {
                Callee::Func(f) => {
                    let sig = self.env.module.func(*f).sig.clone();
                    let code = self.slot_code(*f);
                    self.call_mir(&sig, code, args)
                }
                Callee::Extern(e) => {
                    let sig = self.env.module.externs[e.index()].sig.clone();
                    let addr = self.cptr(self.env.extern_addrs[e.index()]);
                    self.call_host(&sig, addr, args)
                }
            },
            CallIndirect { callee, args } => {
                let Type::FnPtr { sig, host } = self.func.value_type(*callee).clone() else {
                    return Err("call_indirect through a non-function type".into());
                };
                let p = self.one(*callee);
                if host {
                    let bad = self.icmp_const(LLVMIntPredicate::LLVMIntULT, p, 4096);
                    self.trap_if(bad, TrapKind::MemoryFault);
                    let addr = LLVMBuildIntToPtr(self.b, p, self.t.ptr, NONAME);
                    self.call_host(&sig, addr, args)
                } else {
                    // A token FUNC_TOKEN_BASE + i with i < #functions and a matching signature.
                    let idx = LLVMBuildSub(self.b, p, self.c64(abi::FUNC_TOKEN_BASE), NONAME);
                    let n = self.env.module.functions.len() as u64;
                    let bad = self.icmp_const(LLVMIntPredicate::LLVMIntUGE, idx, n);
                    self.trap_if(bad, TrapKind::MemoryFault);
                    let mismatch = self.sig_mismatch(&sig, idx);
                    self.trap_if(mismatch, TrapKind::MemoryFault);
                    let code = self.slot_code_dyn(idx);
                    self.call_mir(&sig, code, args)
                }
            }
            DepthCheck => {
                // A call from this frame would enter with depth + 1 and trap if that reaches the limit.
                let d1 = LLVMBuildAdd(self.b, self.depth, self.c64(1), NONAME);
                let too_deep = self.icmp_const(LLVMIntPredicate::LLVMIntUGE, d1, MAX_CALL_DEPTH as u64);
                self.trap_if(too_deep, TrapKind::StackOverflow);
                vec![]
            }
            Jump { dest } => {
                self.jump(dest);
                vec![]
            }
            Brif { cond, then_dest, else_dest } => {
                let c = self.cond(self.one(*cond));
                let cur = self.cur_block();
                let tb = self.blocks[then_dest.block.index()];
                self.add_incoming(then_dest.block.index(), &self.block_args(then_dest), cur);
                let eb = if else_dest.block == then_dest.block {
                    // Two edges into one block: route the second through a pad.
                    self.pad(else_dest)
                } else {
                    self.add_incoming(else_dest.block.index(), &self.block_args(else_dest), cur);
                    self.blocks[else_dest.block.index()]
                };
                LLVMBuildCondBr(self.b, c, tb, eb);
                vec![]
            }
            Switch { value, cases, default } => {
                self.switch(*value, cases, default);
                vec![]
            }
            Return { value } => {
                self.store_vm(self.depth, self.vmctx, VMCTX_DEPTH);
                let rets = abi::ret_leaves(&self.func.sig.ret);
                let leaves = value.map(|v| self.leaves_of(v).to_vec()).unwrap_or_default();
                if rets.len() == 1 {
                    let v = self.to_abi(rets[0], leaves[0]);
                    LLVMBuildRet(self.b, v);
                } else {
                    for (k, (s, v)) in rets.iter().zip(leaves).enumerate() {
                        let v = self.to_abi(*s, v);
                        let area = self.ret_area.ok_or("internal error: no ret area")?;
                        self.store_vm(v, area, 8 * k as i32);
                    }
                    LLVMBuildRetVoid(self.b);
                }
                vec![]
            }
            Trap => {
                let t = self.trap_block(TrapKind::User);
                LLVMBuildBr(self.b, t);
                vec![]
            }
            Unreachable => {
                let t = self.trap_block(TrapKind::Unreachable);
                LLVMBuildBr(self.b, t);
                vec![]
            }
        };
        self.set(result, out);
        Ok(())
    }

    unsafe fn binary(&mut self, op: BinOp, s: Scalar, a: LLVMValueRef, b: LLVMValueRef) -> LLVMValueRef {
        let bld = self.b;
        if s.is_float() {
            let t = self.lty(s);
            return match op {
                BinOp::Add => LLVMBuildFAdd(bld, a, b, NONAME),
                BinOp::Sub => LLVMBuildFSub(bld, a, b, NONAME),
                BinOp::Mul => LLVMBuildFMul(bld, a, b, NONAME),
                BinOp::Div => LLVMBuildFDiv(bld, a, b, NONAME),
                BinOp::Min => self.call_intrinsic("llvm.minimum", &[t], &[a, b]),
                BinOp::Max => self.call_intrinsic("llvm.maximum", &[t], &[a, b]),
                _ => {
                    // Rem: the same Rust `%` (fmod) the interpreter and Cranelift use.
                    let f = if s == Scalar::F32 {
                        helpers::rayzor_fmodf as *const () as usize
                    } else {
                        helpers::rayzor_fmod as *const () as usize
                    };
                    self.call_helper(f, &[t, t], Some(t), &[a, b])
                }
            };
        }
        let t = self.lty(s);
        let w = s.bits() as u64;
        match op {
            BinOp::Add => LLVMBuildAdd(bld, a, b, NONAME),
            BinOp::Sub => LLVMBuildSub(bld, a, b, NONAME),
            BinOp::Mul => LLVMBuildMul(bld, a, b, NONAME),
            BinOp::And => LLVMBuildAnd(bld, a, b, NONAME),
            BinOp::Or => LLVMBuildOr(bld, a, b, NONAME),
            BinOp::Xor => LLVMBuildXor(bld, a, b, NONAME),
            BinOp::Shl | BinOp::Shr => {
                // Amounts modulo the width: LLVM's oversized shifts are poison.
                let amt = LLVMBuildAnd(bld, b, self.cint(t, w - 1), NONAME);
                match op {
                    BinOp::Shl => LLVMBuildShl(bld, a, amt, NONAME),
                    _ if s.is_signed() => LLVMBuildAShr(bld, a, amt, NONAME),
                    _ => LLVMBuildLShr(bld, a, amt, NONAME),
                }
            }
            // Funnel shifts take the amount modulo the width.
            BinOp::Rotl => self.call_intrinsic("llvm.fshl", &[t], &[a, a, b]),
            BinOp::Rotr => self.call_intrinsic("llvm.fshr", &[t], &[a, a, b]),
            BinOp::Min if s.is_signed() => self.call_intrinsic("llvm.smin", &[t], &[a, b]),
            BinOp::Min => self.call_intrinsic("llvm.umin", &[t], &[a, b]),
            BinOp::Max if s.is_signed() => self.call_intrinsic("llvm.smax", &[t], &[a, b]),
            BinOp::Max => self.call_intrinsic("llvm.umax", &[t], &[a, b]),
            BinOp::Div | BinOp::Rem => {
                let zero = self.icmp_const(LLVMIntPredicate::LLVMIntEQ, b, 0);
                self.trap_if(zero, TrapKind::DivisionByZero);
                if !s.is_signed() {
                    return if op == BinOp::Div {
                        LLVMBuildUDiv(self.b, a, b, NONAME)
                    } else {
                        LLVMBuildURem(self.b, a, b, NONAME)
                    };
                }
                let minus_one = self.icmp_const(LLVMIntPredicate::LLVMIntEQ, b, u64::MAX);
                if op == BinOp::Div {
                    let min = 1u64 << (s.bits() - 1);
                    let is_min = self.icmp_const(LLVMIntPredicate::LLVMIntEQ, a, min);
                    let overflow = LLVMBuildAnd(self.b, is_min, minus_one, NONAME);
                    self.trap_if(overflow, TrapKind::IntegerOverflow);
                    LLVMBuildSDiv(self.b, a, b, NONAME)
                } else {
                    // x % -1 == 0 for every x; avoid UB (and the fault) on MIN % -1.
                    let safe = LLVMBuildSelect(self.b, minus_one, self.cint(t, 1), b, NONAME);
                    LLVMBuildSRem(self.b, a, safe, NONAME)
                }
            }
        }
    }

    unsafe fn unary(&self, op: UnOp, s: Scalar, a: LLVMValueRef) -> LLVMValueRef {
        let t = self.lty(s);
        let no = self.cint(self.t.i1, 0);
        match (op, s.is_float()) {
            (UnOp::Neg, true) => LLVMBuildFNeg(self.b, a, NONAME),
            (UnOp::Neg, false) => LLVMBuildNeg(self.b, a, NONAME),
            (UnOp::Abs, true) => self.call_intrinsic("llvm.fabs", &[t], &[a]),
            // Wrapping (abs MIN == MIN); unsigned values are their own absolute value.
            (UnOp::Abs, false) if s.is_signed() => self.call_intrinsic("llvm.abs", &[t], &[a, no]),
            (UnOp::Abs, false) => a,
            (UnOp::Sqrt, _) => self.call_intrinsic("llvm.sqrt", &[t], &[a]),
            (UnOp::Not, _) if s == Scalar::Bool => LLVMBuildXor(self.b, a, self.cint(t, 1), NONAME),
            (UnOp::Not, _) => LLVMBuildNot(self.b, a, NONAME),
            (UnOp::Clz, _) => self.call_intrinsic("llvm.ctlz", &[t], &[a, no]),
            (UnOp::Ctz, _) => self.call_intrinsic("llvm.cttz", &[t], &[a, no]),
            (UnOp::Popcnt, _) => self.call_intrinsic("llvm.ctpop", &[t], &[a]),
        }
    }

    /// Comparison as an `i1`.
    unsafe fn compare(&self, op: CmpOp, s: Scalar, a: LLVMValueRef, b: LLVMValueRef) -> LLVMValueRef {
        if s.is_float() {
            use LLVMRealPredicate::*;
            let p = match op {
                CmpOp::Eq => LLVMRealOEQ,
                CmpOp::Ne => LLVMRealUNE,
                CmpOp::Lt => LLVMRealOLT,
                CmpOp::Le => LLVMRealOLE,
                CmpOp::Gt => LLVMRealOGT,
                CmpOp::Ge => LLVMRealOGE,
            };
            return LLVMBuildFCmp(self.b, p, a, b, NONAME);
        }
        use LLVMIntPredicate::*;
        let signed = s.is_signed();
        let p = match op {
            CmpOp::Eq => LLVMIntEQ,
            CmpOp::Ne => LLVMIntNE,
            CmpOp::Lt if signed => LLVMIntSLT,
            CmpOp::Le if signed => LLVMIntSLE,
            CmpOp::Gt if signed => LLVMIntSGT,
            CmpOp::Ge if signed => LLVMIntSGE,
            CmpOp::Lt => LLVMIntULT,
            CmpOp::Le => LLVMIntULE,
            CmpOp::Gt => LLVMIntUGT,
            CmpOp::Ge => LLVMIntUGE,
        };
        LLVMBuildICmp(self.b, p, a, b, NONAME)
    }

    unsafe fn cast(&self, from: Scalar, to: Scalar, x: LLVMValueRef) -> LLVMValueRef {
        let (ft, tt) = (self.lty(from), self.lty(to));
        match cast_plan(from, to) {
            CastPlan::Same => x,
            CastPlan::Truncate => LLVMBuildTrunc(self.b, x, tt, NONAME),
            CastPlan::SignExtend => LLVMBuildSExt(self.b, x, tt, NONAME),
            CastPlan::ZeroExtend => LLVMBuildZExt(self.b, x, tt, NONAME),
            CastPlan::IntToBool => {
                let c = self.icmp_const(LLVMIntPredicate::LLVMIntNE, x, 0);
                self.bool_leaf(c)
            }
            CastPlan::FloatToBool => {
                // NaN != 0 is true: unordered-or-not-equal.
                let c = LLVMBuildFCmp(self.b, LLVMRealPredicate::LLVMRealUNE, x, LLVMConstNull(ft), NONAME);
                self.bool_leaf(c)
            }
            CastPlan::FloatWiden => LLVMBuildFPExt(self.b, x, tt, NONAME),
            CastPlan::FloatNarrow => LLVMBuildFPTrunc(self.b, x, tt, NONAME),
            CastPlan::FloatToSignedSat => self.call_intrinsic("llvm.fptosi.sat", &[tt, ft], &[x]),
            CastPlan::FloatToUnsignedSat => self.call_intrinsic("llvm.fptoui.sat", &[tt, ft], &[x]),
            CastPlan::Int64ToFloat => {
                let wide = self.extend_to_i64(from, x);
                LLVMBuildSIToFP(self.b, wide, tt, NONAME)
            }
            CastPlan::U64ToFloat => LLVMBuildUIToFP(self.b, x, tt, NONAME),
        }
    }
}
