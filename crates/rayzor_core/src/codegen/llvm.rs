//! The LLVM backend (T3): an `Emitter` that builds LLVM IR (through the
//! LLVM-C API of `inkwell::llvm_sys`), optimised with the new pass manager at
//! `default<O3>` for the host CPU, emitted as an object file and linked into
//! one process-wide ORC LLJIT. The lowering is `codegen::lower`; nothing here
//! decides MIR semantics. Block parameters become phi nodes, jump arguments
//! their incomings.
//!
//! Concurrency: each compile uses its own `LLVMContext`, module and (per
//! thread, cached) `TargetMachine`, so IR building, optimisation and code
//! generation of different functions run in parallel; only the finished
//! object file goes to the shared LLJIT, whose linking is thread-safe. Each
//! compile is added under a fresh resource tracker, so dropping the returned
//! `MachineCode` frees exactly that code.
//!
//! Unsafety: the LLVM-C API is unsafe throughout. It is confined to this
//! file; every LLVM object is created and used by one compile on one thread
//! (except the LLJIT, which is thread-safe), and the emitter only ever hands
//! LLVM values of the module it built.

use super::abi::{self, MAX_FRAME_BYTES};
use super::emit::{Conv, Emitter, Ext, FloatCC, FloatOp, IntCC, IntOp, Mem, Native, NativeSig, Ty, UnaryOp};
use super::lower::lower_function;
use super::{frame_too_large, Backend, CompileUnit, MachineCode};
use crate::mir::layout::low_mask;
use inkwell::llvm_sys as sys;
use std::collections::{HashMap, HashSet};
use std::ffi::{c_void, CStr, CString};
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
    // SAFETY: initialises LLVM's native target and creates the LLJIT, once per
    // process (OnceLock); every object made here is checked before use.
    ORC.get_or_init(|| unsafe {
        if sys::target::LLVM_InitializeNativeTarget() != 0
            || sys::target::LLVM_InitializeNativeAsmPrinter() != 0
        {
            return Err("LLVM has no native target for this host".into());
        }
        // No tail merging in the code generator: it merges the identical tails
        // of blocks that all jump to one block (the interrupt poll ending each
        // case of a `switch`-dispatch loop) into shared blocks, so each case
        // takes one more jump and the loop header loses its alignment: the
        // bytecode VM of issue 12 ran 1.6x slower at T3 than with this option
        // (and slower than Cranelift's T2). Tail merging only saves code size.
        // (A process-wide LLVM option, set once before anything is compiled.)
        let args = [c"rayzor".as_ptr(), c"-enable-tail-merge=0".as_ptr()];
        sys::support::LLVMParseCommandLineOptions(args.len() as i32, args.as_ptr(), ptr::null());
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
        if super::quiesce::poisoned() {
            return; // forked mid-compile: the session lock may be held forever; leak the code
        }
        let _section = super::quiesce::enter(true);
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

    // SAFETY (whole function): all LLVM objects below are created and used by
    // this thread only, except the LLJIT, which is thread-safe.
    /// Build the function `fname` (of signature `sig`) with `body`, optimise,
    /// emit and link it. With `ir`, collect the IR before and after the
    /// optimisation pipeline instead, and emit nothing (returns `None`).
    unsafe fn compile_with(
        &self,
        orc: &Orc,
        tm: LLVMTargetMachineRef,
        fname: &str,
        sig: &NativeSig,
        body: impl FnOnce(&mut LlvmEmitter) -> Result<(), String>,
        mut ir: Option<&mut Vec<(&'static str, String)>>,
    ) -> Result<Option<Box<dyn MachineCode>>, String> {
        let n = NEXT_SYMBOL.fetch_add(1, Ordering::Relaxed);
        let name = CString::new(format!("rayzor_t3_{n}")).expect("no NUL in symbol");
        let ctx = LLVMContextCreate();
        let module = LLVMModuleCreateWithNameInContext(name.as_ptr(), ctx);
        let guard = ModuleGuard { ctx, module };
        // Frames over the limit are reported by LLVM itself: the function
        // carries `warn-stack-size`, and the prologue/epilogue inserter
        // diagnoses a larger frame, which this handler collects.
        let mut diagnostics: Vec<String> = Vec::new();
        LLVMContextSetDiagnosticHandler(
            ctx,
            Some(collect_diagnostic),
            &mut diagnostics as *mut _ as *mut c_void,
        );
        let triple = LLVMGetTargetMachineTriple(tm);
        LLVMSetTarget(module, triple);
        LLVMDisposeMessage(triple);
        let dl = LLVMCreateTargetDataLayout(tm);
        sys::target::LLVMSetModuleDataLayout(module, dl);
        sys::target::LLVMDisposeTargetData(dl);

        {
            let mut e = LlvmEmitter::new(ctx, module, &name, sig);
            let r = body(&mut e);
            e.finish();
            r?;
        }
        let mut msg = ptr::null_mut();
        if LLVMVerifyModule(module, LLVMVerifierFailureAction::LLVMReturnStatusAction, &mut msg) != 0 {
            return Err(format!("internal error: invalid LLVM IR for '{}': {}", fname, take_message(msg)));
        }
        take_message(msg);
        if let Some(ir) = ir.as_mut() {
            ir.push(("llvm", take_message(LLVMPrintModuleToString(module))));
        }

        let pass_opts = LLVMCreatePassBuilderOptions();
        let err = LLVMRunPasses(module, c"default<O3>".as_ptr(), tm, pass_opts);
        LLVMDisposePassBuilderOptions(pass_opts);
        if !err.is_null() {
            return Err(format!("LLVM optimisation of '{}' failed: {}", fname, take_error(err)));
        }

        if std::env::var_os("RAYZOR_LLVM_DUMP").is_some() {
            // Debugging aid: the optimised IR of every T3 compile, on stderr.
            eprintln!("; T3 '{}'\n{}", fname, take_message(LLVMPrintModuleToString(module)));
        }
        if let Some(ir) = ir {
            ir.push(("llvm_opt", take_message(LLVMPrintModuleToString(module))));
            return Ok(None);
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
            return Err(format!("LLVM code generation of '{}' failed: {}", fname, take_message(msg)));
        }
        if let Some(frame) = diagnostics.iter().find_map(|d| stack_size_of(d)) {
            LLVMDisposeMemoryBuffer(buf);
            return Err(frame_too_large(fname, frame));
        }
        let (code_len, held) = object_sizes(buf, ctx, &name);
        drop(guard);

        let jd = LLVMOrcLLJITGetMainJITDylib(orc.jit);
        let rt = LLVMOrcJITDylibCreateResourceTracker(jd);
        // Takes ownership of `buf`.
        let err = LLVMOrcLLJITAddObjectFileWithRT(orc.jit, rt, buf);
        if !err.is_null() {
            LLVMOrcReleaseResourceTracker(rt);
            return Err(format!("LLVM JIT rejected the code of '{}': {}", fname, take_error(err)));
        }
        // From here on, dropping `code` removes whatever was added.
        let mut code = LlvmCode { rt, address: 0, code_len, held };
        let mut addr: LLVMOrcExecutorAddress = 0;
        let err = LLVMOrcLLJITLookup(orc.jit, &mut addr, name.as_ptr());
        if !err.is_null() {
            return Err(format!("LLVM JIT could not link '{}': {}", fname, take_error(err)));
        }
        if addr == 0 {
            return Err(format!("LLVM JIT gave no address for '{}'", fname));
        }
        code.address = addr as usize;
        Ok(Some(Box::new(code)))
    }

    /// Run `f` with this thread's target machine, catching panics of the lowering.
    fn with_tm<T>(
        &self,
        name: &str,
        f: impl FnOnce(&Orc, LLVMTargetMachineRef) -> Result<T, String>,
    ) -> Result<T, String> {
        let orc = orc()?;
        HOST_TM.with(|cell| {
            let mut cell = cell.borrow_mut();
            if cell.is_none() {
                // SAFETY: creates a fresh target machine owned by this thread.
                *cell = Some(HostTm(unsafe { create_host_tm()? }));
            }
            let tm = cell.as_ref().expect("host target machine").0;
            // A bug in the lowering must not take the process (or a promoter
            // thread) down: report it as an error.
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(orc, tm))).unwrap_or_else(|p| {
                let why = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned());
                Err(format!("internal error in the LLVM lowering of '{name}': {}", why.unwrap_or_default()))
            })
        })
    }
}

impl Backend for LlvmBackend {
    fn name(&self) -> &'static str {
        "llvm"
    }

    fn compile(&self, unit: &CompileUnit<'_>) -> Result<Box<dyn MachineCode>, String> {
        let sig = abi::unit_signature(unit);
        self.with_tm(&unit.func.name, |orc, tm| {
            // SAFETY: see `compile_with`; `tm` belongs to this thread.
            let code = unsafe {
                self.compile_with(orc, tm, &unit.func.name, &sig, |e| lower_function(e, unit), None)?
            };
            code.ok_or_else(|| "internal error: no code".into())
        })
    }

    /// `llvm`: the IR the lowering built; `llvm_opt`: after `default<O3>`. Nothing is emitted.
    fn ir(&self, unit: &CompileUnit<'_>) -> Result<Vec<(&'static str, String)>, String> {
        let sig = abi::unit_signature(unit);
        self.with_tm(&unit.func.name, |orc, tm| {
            let mut out = Vec::new();
            // SAFETY: see `compile_with`; `tm` belongs to this thread.
            unsafe {
                self.compile_with(
                    orc,
                    tm,
                    &unit.func.name,
                    &sig,
                    |e| lower_function(e, unit),
                    Some(&mut out),
                )?
            };
            Ok(out)
        })
    }
}

/// Diagnostic handler: collects the description of every diagnostic of a compile.
extern "C" fn collect_diagnostic(info: LLVMDiagnosticInfoRef, sink: *mut c_void) {
    // SAFETY: `sink` is the `Vec<String>` registered with this context, alive
    // for the whole compile; `info` is valid during the callback. No panic can
    // escape (allocation failure aborts).
    unsafe {
        let msg = take_message(LLVMGetDiagInfoDescription(info));
        (*(sink as *mut Vec<String>)).push(msg);
    }
}

/// The frame size in a "stack frame size (N) exceeds limit (M) in function" diagnostic.
fn stack_size_of(diagnostic: &str) -> Option<u64> {
    let at = diagnostic.find("stack frame size (")? + "stack frame size (".len();
    let rest = &diagnostic[at..];
    rest[..rest.find(')')?].parse().ok()
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

/// LLVM types of one context.
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

/// Emits LLVM IR for one function. Every method is a thin wrapper over
/// LLVM-C calls on objects this emitter created in its own context.
struct LlvmEmitter {
    ctx: LLVMContextRef,
    module: LLVMModuleRef,
    /// Main builder.
    b: LLVMBuilderRef,
    /// Builder for allocas, positioned before the branch that ends the first block.
    ab: LLVMBuilderRef,
    /// Builder for phi nodes of new blocks.
    pb: LLVMBuilderRef,
    t: Types,
    fnv: LLVMValueRef,
    /// Phi nodes (the block parameters) of each block that has any.
    phis: HashMap<LLVMBasicBlockRef, Vec<LLVMValueRef>>,
    cold: HashSet<LLVMBasicBlockRef>,
    prof_kind: u32,
    /// `branch_weights` metadata: (then, else) rarely taken.
    then_cold: LLVMValueRef,
    else_cold: LLVMValueRef,
    /// Profile weights for the next `brif` or `switch` (`Emitter::set_weights`).
    weights: Option<Vec<u64>>,
}

impl Drop for LlvmEmitter {
    fn drop(&mut self) {
        // SAFETY: the builders were created by `new` and are not used after this.
        unsafe {
            LLVMDisposeBuilder(self.b);
            LLVMDisposeBuilder(self.ab);
            LLVMDisposeBuilder(self.pb);
        }
    }
}

impl LlvmEmitter {
    /// A function `name` of signature `sig` in `module`, positioned in its entry block.
    ///
    /// # Safety
    /// `ctx` and `module` are live and used by this thread only.
    unsafe fn new(ctx: LLVMContextRef, module: LLVMModuleRef, name: &CStr, sig: &NativeSig) -> Self {
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
        let mut e = LlvmEmitter {
            ctx,
            module,
            b: LLVMCreateBuilderInContext(ctx),
            ab: LLVMCreateBuilderInContext(ctx),
            pb: LLVMCreateBuilderInContext(ctx),
            t,
            fnv: ptr::null_mut(),
            phis: HashMap::new(),
            cold: HashSet::new(),
            prof_kind: LLVMGetMDKindIDInContext(ctx, c"prof".as_ptr(), 4),
            then_cold: ptr::null_mut(),
            else_cold: ptr::null_mut(),
            weights: None,
        };
        e.then_cold = e.branch_weights(1, 1 << 20);
        e.else_cold = e.branch_weights(1 << 20, 1);
        let fn_ty = e.fn_type(sig);
        e.fnv = LLVMAddFunction(module, name.as_ptr(), fn_ty);
        let nounwind = e.enum_attr("nounwind");
        LLVMAddAttributeAtIndex(e.fnv, sys::LLVMAttributeFunctionIndex, nounwind);
        let (k, v) = ("warn-stack-size", MAX_FRAME_BYTES.to_string());
        let limit = LLVMCreateStringAttribute(
            ctx,
            k.as_ptr() as *const c_char,
            k.len() as u32,
            v.as_ptr() as *const c_char,
            v.len() as u32,
        );
        LLVMAddAttributeAtIndex(e.fnv, sys::LLVMAttributeFunctionIndex, limit);
        let alloca_block = LLVMAppendBasicBlockInContext(ctx, e.fnv, NONAME);
        let entry = LLVMAppendBasicBlockInContext(ctx, e.fnv, NONAME);
        LLVMPositionBuilderAtEnd(e.b, alloca_block);
        let br = LLVMBuildBr(e.b, entry);
        LLVMPositionBuilderBefore(e.ab, br);
        LLVMPositionBuilderAtEnd(e.b, entry);
        e
    }

    unsafe fn branch_weights(&self, then_w: u64, else_w: u64) -> LLVMValueRef {
        self.weights_md(&[then_w, else_w])
    }

    /// `!{"branch_weights", w...}`, scaled into LLVM's 32-bit weights.
    unsafe fn weights_md(&self, weights: &[u64]) -> LLVMValueRef {
        let bw = "branch_weights";
        let top = weights.iter().copied().max().unwrap_or(0);
        let shift = 64 - top.leading_zeros().min(64);
        let shift = shift.saturating_sub(31);
        let mut md = vec![LLVMMDStringInContext2(self.ctx, bw.as_ptr() as *const c_char, bw.len())];
        for w in weights {
            // A weight of 0 says "never": keep 1 so a contradicted profile is only a hint.
            md.push(LLVMValueAsMetadata(LLVMConstInt(self.t.i32, (w >> shift).max(1), 0)));
        }
        LLVMMetadataAsValue(self.ctx, LLVMMDNodeInContext2(self.ctx, md.as_mut_ptr(), md.len()))
    }

    unsafe fn enum_attr(&self, name: &str) -> LLVMAttributeRef {
        let kind = LLVMGetEnumAttributeKindForName(name.as_ptr() as *const c_char, name.len());
        LLVMCreateEnumAttribute(self.ctx, kind, 0)
    }

    fn lty(&self, t: Ty) -> LLVMTypeRef {
        match t {
            Ty::I8 => self.t.i8,
            Ty::I16 => self.t.i16,
            Ty::I32 => self.t.i32,
            Ty::I64 => self.t.i64,
            Ty::F32 => self.t.f32,
            Ty::F64 => self.t.f64,
            Ty::Addr => self.t.ptr,
        }
    }

    unsafe fn fn_type(&self, sig: &NativeSig) -> LLVMTypeRef {
        let mut params: Vec<LLVMTypeRef> = sig.params.iter().map(|(t, _)| self.lty(*t)).collect();
        let ret = sig.ret.map_or(self.t.void, |(t, _)| self.lty(t));
        LLVMFunctionType(ret, params.as_mut_ptr(), params.len() as u32, 0)
    }

    unsafe fn is_ptr(&self, v: LLVMValueRef) -> bool {
        LLVMTypeOf(v) == self.t.ptr
    }

    /// `v` (an integer or a pointer) as a pointer.
    unsafe fn to_ptr(&self, v: LLVMValueRef) -> LLVMValueRef {
        if self.is_ptr(v) {
            v
        } else {
            LLVMBuildIntToPtr(self.b, v, self.t.ptr, NONAME)
        }
    }

    /// `v` converted to `ty` where pointers and 64-bit integers meet.
    unsafe fn coerce(&self, v: LLVMValueRef, ty: LLVMTypeRef) -> LLVMValueRef {
        match (self.is_ptr(v), ty == self.t.ptr) {
            (false, true) => LLVMBuildIntToPtr(self.b, v, ty, NONAME),
            (true, false) => LLVMBuildPtrToInt(self.b, v, ty, NONAME),
            _ => v,
        }
    }

    /// `addr + offset` as a pointer.
    unsafe fn address(&self, addr: LLVMValueRef, offset: i32) -> LLVMValueRef {
        let base = self.to_ptr(addr);
        if offset == 0 {
            return base;
        }
        let mut idx = [LLVMConstInt(self.t.i64, offset as i64 as u64, 1)];
        LLVMBuildGEP2(self.b, self.t.i8, base, idx.as_mut_ptr(), 1, NONAME)
    }

    /// A condition (an integer, non-zero meaning true) as an `i1`.
    unsafe fn cond(&self, v: LLVMValueRef) -> LLVMValueRef {
        let t = LLVMTypeOf(v);
        if t == self.t.i1 {
            v
        } else {
            LLVMBuildICmp(self.b, LLVMIntPredicate::LLVMIntNE, v, LLVMConstNull(t), NONAME)
        }
    }

    unsafe fn call_intrinsic(&self, name: &str, tys: &[LLVMTypeRef], args: &[LLVMValueRef]) -> LLVMValueRef {
        let id = LLVMLookupIntrinsicID(name.as_ptr() as *const c_char, name.len());
        assert!(id != 0, "unknown LLVM intrinsic {name}");
        let mut tys = tys.to_vec();
        let f = LLVMGetIntrinsicDeclaration(self.module, id, tys.as_mut_ptr(), tys.len());
        let ty = LLVMIntrinsicGetType(self.ctx, id, tys.as_mut_ptr(), tys.len());
        let mut args = args.to_vec();
        LLVMBuildCall2(self.b, ty, f, args.as_mut_ptr(), args.len() as u32, NONAME)
    }

    unsafe fn add_incoming(&self, block: LLVMBasicBlockRef, args: &[LLVMValueRef], from: LLVMBasicBlockRef) {
        let Some(phis) = self.phis.get(&block) else { return };
        for (phi, v) in phis.iter().zip(args) {
            let mut vals = [*v];
            let mut bbs = [from];
            LLVMAddIncoming(*phi, vals.as_mut_ptr(), bbs.as_mut_ptr(), 1);
        }
    }

    /// A new block that jumps to `dest` with `args` (so that two edges from
    /// one block can reach the same block with different arguments).
    unsafe fn pad(&mut self, dest: LLVMBasicBlockRef, args: &[LLVMValueRef]) -> LLVMBasicBlockRef {
        let saved = LLVMGetInsertBlock(self.b);
        let pad = LLVMAppendBasicBlockInContext(self.ctx, self.fnv, NONAME);
        LLVMPositionBuilderAtEnd(self.b, pad);
        self.jump(dest, args);
        LLVMPositionBuilderAtEnd(self.b, saved);
        pad
    }

    /// Give blocks no path reaches (none in verified MIR) a terminator.
    fn finish(&mut self) {
        // SAFETY: walks the blocks of this emitter's own function.
        unsafe {
            let mut bb = LLVMGetFirstBasicBlock(self.fnv);
            while !bb.is_null() {
                if LLVMGetBasicBlockTerminator(bb).is_null() {
                    LLVMPositionBuilderAtEnd(self.b, bb);
                    LLVMBuildUnreachable(self.b);
                }
                bb = LLVMGetNextBasicBlock(bb);
            }
        }
    }
}

// SAFETY (every method): the emitter's builders, types and function belong
// to its own context, used by this thread only; values passed in were made
// by this emitter.
impl Emitter for LlvmEmitter {
    type Value = LLVMValueRef;
    type Block = LLVMBasicBlockRef;

    fn params(&self) -> Vec<LLVMValueRef> {
        // SAFETY: LLVM-C calls on this emitter's own builder, context and values (see the impl).
        unsafe { (0..LLVMCountParams(self.fnv)).map(|i| LLVMGetParam(self.fnv, i)).collect() }
    }

    fn create_block(&mut self, params: &[Ty]) -> LLVMBasicBlockRef {
        // SAFETY: LLVM-C calls on this emitter's own builder, context and values (see the impl).
        unsafe {
            let bb = LLVMAppendBasicBlockInContext(self.ctx, self.fnv, NONAME);
            if !params.is_empty() {
                LLVMPositionBuilderAtEnd(self.pb, bb);
                let phis = params.iter().map(|t| LLVMBuildPhi(self.pb, self.lty(*t), NONAME)).collect();
                self.phis.insert(bb, phis);
            }
            bb
        }
    }

    fn block_params(&self, block: LLVMBasicBlockRef) -> Vec<LLVMValueRef> {
        self.phis.get(&block).cloned().unwrap_or_default()
    }

    fn set_cold(&mut self, block: LLVMBasicBlockRef) {
        self.cold.insert(block);
    }

    fn switch_to(&mut self, block: LLVMBasicBlockRef) {
        // SAFETY: LLVM-C calls on this emitter's own builder, context and values (see the impl).
        unsafe { LLVMPositionBuilderAtEnd(self.b, block) }
    }

    fn constant(&mut self, ty: Ty, bits: u64) -> LLVMValueRef {
        // SAFETY: LLVM-C calls on this emitter's own builder, context and values (see the impl).
        unsafe {
            match ty {
                Ty::F32 => LLVMConstBitCast(LLVMConstInt(self.t.i32, bits & 0xffff_ffff, 0), self.t.f32),
                Ty::F64 => LLVMConstBitCast(LLVMConstInt(self.t.i64, bits, 0), self.t.f64),
                Ty::Addr => LLVMConstIntToPtr(LLVMConstInt(self.t.i64, bits, 0), self.t.ptr),
                _ => LLVMConstInt(self.lty(ty), bits & low_mask(ty.bits()), 0),
            }
        }
    }

    fn int_op(&mut self, op: IntOp, a: LLVMValueRef, b: LLVMValueRef) -> LLVMValueRef {
        // SAFETY: LLVM-C calls on this emitter's own builder, context and values (see the impl).
        unsafe {
            let bld = self.b;
            let t = LLVMTypeOf(a);
            match op {
                IntOp::Add => LLVMBuildAdd(bld, a, b, NONAME),
                IntOp::Sub => LLVMBuildSub(bld, a, b, NONAME),
                IntOp::Mul => LLVMBuildMul(bld, a, b, NONAME),
                IntOp::And => LLVMBuildAnd(bld, a, b, NONAME),
                IntOp::Or => LLVMBuildOr(bld, a, b, NONAME),
                IntOp::Xor => LLVMBuildXor(bld, a, b, NONAME),
                IntOp::Shl | IntOp::SShr | IntOp::UShr => {
                    // Amounts modulo the width: LLVM's oversized shifts are poison.
                    let w = LLVMGetIntTypeWidth(t) as u64;
                    let amt = LLVMBuildAnd(bld, b, LLVMConstInt(t, w - 1, 0), NONAME);
                    match op {
                        IntOp::Shl => LLVMBuildShl(bld, a, amt, NONAME),
                        IntOp::SShr => LLVMBuildAShr(bld, a, amt, NONAME),
                        _ => LLVMBuildLShr(bld, a, amt, NONAME),
                    }
                }
                // Funnel shifts take the amount modulo the width.
                IntOp::Rotl => self.call_intrinsic("llvm.fshl", &[t], &[a, a, b]),
                IntOp::Rotr => self.call_intrinsic("llvm.fshr", &[t], &[a, a, b]),
                IntOp::SMin => self.call_intrinsic("llvm.smin", &[t], &[a, b]),
                IntOp::UMin => self.call_intrinsic("llvm.umin", &[t], &[a, b]),
                IntOp::SMax => self.call_intrinsic("llvm.smax", &[t], &[a, b]),
                IntOp::UMax => self.call_intrinsic("llvm.umax", &[t], &[a, b]),
                IntOp::SDiv => LLVMBuildSDiv(bld, a, b, NONAME),
                IntOp::UDiv => LLVMBuildUDiv(bld, a, b, NONAME),
                IntOp::SRem => LLVMBuildSRem(bld, a, b, NONAME),
                IntOp::URem => LLVMBuildURem(bld, a, b, NONAME),
            }
        }
    }

    fn float_op(&mut self, op: FloatOp, a: LLVMValueRef, b: LLVMValueRef) -> LLVMValueRef {
        // SAFETY: LLVM-C calls on this emitter's own builder, context and values (see the impl).
        unsafe {
            let t = LLVMTypeOf(a);
            match op {
                FloatOp::Add => LLVMBuildFAdd(self.b, a, b, NONAME),
                FloatOp::Sub => LLVMBuildFSub(self.b, a, b, NONAME),
                FloatOp::Mul => LLVMBuildFMul(self.b, a, b, NONAME),
                FloatOp::Div => LLVMBuildFDiv(self.b, a, b, NONAME),
                FloatOp::Min => self.call_intrinsic("llvm.minimum", &[t], &[a, b]),
                FloatOp::Max => self.call_intrinsic("llvm.maximum", &[t], &[a, b]),
                FloatOp::Copysign => self.call_intrinsic("llvm.copysign", &[t], &[a, b]),
            }
        }
    }

    fn unary(&mut self, op: UnaryOp, a: LLVMValueRef) -> LLVMValueRef {
        // SAFETY: LLVM-C calls on this emitter's own builder, context and values (see the impl).
        unsafe {
            let t = LLVMTypeOf(a);
            let no = LLVMConstInt(self.t.i1, 0, 0);
            match op {
                UnaryOp::INeg => LLVMBuildNeg(self.b, a, NONAME),
                // Not poison on MIN: abs MIN == MIN.
                UnaryOp::IAbs => self.call_intrinsic("llvm.abs", &[t], &[a, no]),
                UnaryOp::Not => LLVMBuildNot(self.b, a, NONAME),
                // Defined for 0 (the width).
                UnaryOp::Clz => self.call_intrinsic("llvm.ctlz", &[t], &[a, no]),
                UnaryOp::Ctz => self.call_intrinsic("llvm.cttz", &[t], &[a, no]),
                UnaryOp::Popcnt => self.call_intrinsic("llvm.ctpop", &[t], &[a]),
                UnaryOp::FNeg => LLVMBuildFNeg(self.b, a, NONAME),
                UnaryOp::FAbs => self.call_intrinsic("llvm.fabs", &[t], &[a]),
                UnaryOp::Sqrt => self.call_intrinsic("llvm.sqrt", &[t], &[a]),
                UnaryOp::Floor => self.call_intrinsic("llvm.floor", &[t], &[a]),
                UnaryOp::Ceil => self.call_intrinsic("llvm.ceil", &[t], &[a]),
                UnaryOp::Trunc => self.call_intrinsic("llvm.trunc", &[t], &[a]),
                UnaryOp::Nearest => self.call_intrinsic("llvm.roundeven", &[t], &[a]),
            }
        }
    }

    fn fma(&mut self, a: LLVMValueRef, b: LLVMValueRef, c: LLVMValueRef) -> LLVMValueRef {
        // `llvm.fma` is always fused (unlike `llvm.fmuladd`); without the CPU
        // feature LLVM calls libm's `fma`, resolved in the process.
        unsafe { self.call_intrinsic("llvm.fma", &[LLVMTypeOf(a)], &[a, b, c]) }
    }

    fn has_native(&self, _what: Native) -> bool {
        // LLVM lowers every one of them itself (libm calls where the CPU lacks them).
        true
    }

    fn icmp(&mut self, cc: IntCC, a: LLVMValueRef, b: LLVMValueRef) -> LLVMValueRef {
        use LLVMIntPredicate::*;
        let p = match cc {
            IntCC::Eq => LLVMIntEQ,
            IntCC::Ne => LLVMIntNE,
            IntCC::SLt => LLVMIntSLT,
            IntCC::SLe => LLVMIntSLE,
            IntCC::SGt => LLVMIntSGT,
            IntCC::SGe => LLVMIntSGE,
            IntCC::ULt => LLVMIntULT,
            IntCC::ULe => LLVMIntULE,
            IntCC::UGt => LLVMIntUGT,
            IntCC::UGe => LLVMIntUGE,
        };
        // SAFETY: LLVM-C calls on this emitter's own builder, context and values (see the impl).
        unsafe {
            let c = LLVMBuildICmp(self.b, p, a, b, NONAME);
            LLVMBuildZExt(self.b, c, self.t.i8, NONAME)
        }
    }

    fn fcmp(&mut self, cc: FloatCC, a: LLVMValueRef, b: LLVMValueRef) -> LLVMValueRef {
        use LLVMRealPredicate::*;
        let p = match cc {
            FloatCC::Eq => LLVMRealOEQ,
            FloatCC::Une => LLVMRealUNE,
            FloatCC::Lt => LLVMRealOLT,
            FloatCC::Le => LLVMRealOLE,
            FloatCC::Gt => LLVMRealOGT,
            FloatCC::Ge => LLVMRealOGE,
        };
        // SAFETY: LLVM-C calls on this emitter's own builder, context and values (see the impl).
        unsafe {
            let c = LLVMBuildFCmp(self.b, p, a, b, NONAME);
            LLVMBuildZExt(self.b, c, self.t.i8, NONAME)
        }
    }

    fn select(&mut self, cond: LLVMValueRef, a: LLVMValueRef, b: LLVMValueRef) -> LLVMValueRef {
        // SAFETY: LLVM-C calls on this emitter's own builder, context and values (see the impl).
        unsafe {
            let c = self.cond(cond);
            LLVMBuildSelect(self.b, c, a, b, NONAME)
        }
    }

    fn convert(&mut self, conv: Conv, to: Ty, x: LLVMValueRef) -> LLVMValueRef {
        // SAFETY: LLVM-C calls on this emitter's own builder, context and values (see the impl).
        unsafe {
            let tt = self.lty(to);
            let ft = LLVMTypeOf(x);
            match conv {
                Conv::Trunc => LLVMBuildTrunc(self.b, x, tt, NONAME),
                Conv::SExt => LLVMBuildSExt(self.b, x, tt, NONAME),
                Conv::ZExt => LLVMBuildZExt(self.b, x, tt, NONAME),
                Conv::FPromote => LLVMBuildFPExt(self.b, x, tt, NONAME),
                Conv::FDemote => LLVMBuildFPTrunc(self.b, x, tt, NONAME),
                Conv::FToSSat => self.call_intrinsic("llvm.fptosi.sat", &[tt, ft], &[x]),
                Conv::FToUSat => self.call_intrinsic("llvm.fptoui.sat", &[tt, ft], &[x]),
                Conv::SToF => LLVMBuildSIToFP(self.b, x, tt, NONAME),
                Conv::UToF => LLVMBuildUIToFP(self.b, x, tt, NONAME),
                Conv::Bitcast => LLVMBuildBitCast(self.b, x, tt, NONAME),
            }
        }
    }

    fn load(&mut self, mem: Mem, ty: Ty, addr: LLVMValueRef, offset: i32) -> LLVMValueRef {
        // SAFETY: LLVM-C calls on this emitter's own builder, context and values (see the impl).
        unsafe {
            let p = self.address(addr, offset);
            let v = LLVMBuildLoad2(self.b, self.lty(ty), p, NONAME);
            match mem {
                Mem::Vm => LLVMSetAlignment(v, 8),
                Mem::Slot => {
                    LLVMSetAlignment(v, 8);
                    LLVMSetOrdering(v, sys::LLVMAtomicOrdering::LLVMAtomicOrderingMonotonic);
                }
                Mem::Heap => LLVMSetAlignment(v, 1),
            }
            v
        }
    }

    fn store(&mut self, mem: Mem, value: LLVMValueRef, addr: LLVMValueRef, offset: i32) {
        // SAFETY: LLVM-C calls on this emitter's own builder, context and values (see the impl).
        unsafe {
            let p = self.address(addr, offset);
            let s = LLVMBuildStore(self.b, value, p);
            LLVMSetAlignment(s, if mem == Mem::Heap { 1 } else { 8 });
        }
    }

    fn stack_slot(&mut self, bytes: u32) -> LLVMValueRef {
        // SAFETY: LLVM-C calls on this emitter's own builder, context and values (see the impl).
        unsafe {
            let aty = LLVMArrayType2(self.t.i64, bytes.div_ceil(8) as u64);
            let a = LLVMBuildAlloca(self.ab, aty, NONAME);
            LLVMSetAlignment(a, 8);
            a
        }
    }

    fn stack_pointer(&mut self) -> LLVMValueRef {
        // SAFETY: LLVM-C calls on this emitter's own builder, context and values (see the impl).
        unsafe {
            let sp = self.call_intrinsic("llvm.stacksave", &[self.t.ptr], &[]);
            LLVMBuildPtrToInt(self.b, sp, self.t.i64, NONAME)
        }
    }

    fn call(&mut self, sig: &NativeSig, callee: LLVMValueRef, args: &[LLVMValueRef]) -> Option<LLVMValueRef> {
        // SAFETY: LLVM-C calls on this emitter's own builder, context and values (see the impl).
        unsafe {
            let fty = self.fn_type(sig);
            let mut vals: Vec<LLVMValueRef> =
                args.iter().zip(&sig.params).map(|(v, (t, _))| self.coerce(*v, self.lty(*t))).collect();
            let f = self.to_ptr(callee);
            let call = LLVMBuildCall2(self.b, fty, f, vals.as_mut_ptr(), vals.len() as u32, NONAME);
            // Narrow integer arguments are extended per the C rules, like clang does.
            for (i, (_, ext)) in sig.params.iter().enumerate() {
                let attr = match ext {
                    Ext::None => continue,
                    Ext::Sign => "signext",
                    Ext::Zero => "zeroext",
                };
                LLVMAddCallSiteAttribute(call, i as u32 + 1, self.enum_attr(attr));
            }
            sig.ret.map(|_| call)
        }
    }

    fn jump(&mut self, dest: LLVMBasicBlockRef, args: &[LLVMValueRef]) {
        // SAFETY: LLVM-C calls on this emitter's own builder, context and values (see the impl).
        unsafe {
            self.add_incoming(dest, args, LLVMGetInsertBlock(self.b));
            LLVMBuildBr(self.b, dest);
        }
    }

    fn brif(
        &mut self,
        cond: LLVMValueRef,
        then_dest: LLVMBasicBlockRef,
        then_args: &[LLVMValueRef],
        else_dest: LLVMBasicBlockRef,
        else_args: &[LLVMValueRef],
    ) {
        // SAFETY: LLVM-C calls on this emitter's own builder, context and values (see the impl).
        unsafe {
            let c = self.cond(cond);
            let cur = LLVMGetInsertBlock(self.b);
            let profiled = self.weights.take().filter(|w| w.len() == 2);
            let weights = if let Some(w) = profiled {
                Some(self.weights_md(&w))
            } else if self.cold.contains(&then_dest) {
                Some(self.then_cold)
            } else if self.cold.contains(&else_dest) {
                Some(self.else_cold)
            } else {
                None
            };
            self.add_incoming(then_dest, then_args, cur);
            let else_bb = if else_dest == then_dest {
                // Two edges into one block: route the second through a pad.
                self.pad(else_dest, else_args)
            } else {
                self.add_incoming(else_dest, else_args, cur);
                else_dest
            };
            let br = LLVMBuildCondBr(self.b, c, then_dest, else_bb);
            if let Some(w) = weights {
                LLVMSetMetadata(br, self.prof_kind, w);
            }
        }
    }

    fn switch(
        &mut self,
        value: LLVMValueRef,
        _ty: Ty,
        cases: &[(u64, LLVMBasicBlockRef)],
        default: LLVMBasicBlockRef,
    ) {
        // SAFETY: LLVM-C calls on this emitter's own builder, context and values (see the impl).
        unsafe {
            let t = LLVMTypeOf(value);
            let sw = LLVMBuildSwitch(self.b, value, default, cases.len() as u32);
            for (key, bb) in cases {
                LLVMAddCase(sw, LLVMConstInt(t, *key, 0), *bb);
            }
            if let Some(w) = self.weights.take().filter(|w| w.len() == cases.len() + 1) {
                LLVMSetMetadata(sw, self.prof_kind, self.weights_md(&w));
            }
        }
    }

    fn set_weights(&mut self, weights: &[u64]) {
        self.weights = Some(weights.to_vec());
    }

    fn ret(&mut self, value: Option<LLVMValueRef>) {
        // SAFETY: LLVM-C calls on this emitter's own builder, context and values (see the impl).
        unsafe {
            match value {
                Some(v) => LLVMBuildRet(self.b, v),
                None => LLVMBuildRetVoid(self.b),
            };
        }
    }

    fn unreachable(&mut self) {
        // SAFETY: LLVM-C calls on this emitter's own builder, context and values (see the impl).
        unsafe {
            LLVMBuildUnreachable(self.b);
        }
    }

    fn self_address(&mut self) -> Option<LLVMValueRef> {
        Some(self.fnv)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compile a function whose frame holds a `bytes`-byte slot passed to a call.
    fn frame_of(bytes: u32) -> Result<Box<dyn MachineCode>, String> {
        let backend = LlvmBackend::new()?;
        let orc = orc()?;
        let sig = NativeSig::new(&[Ty::Addr], None);
        // SAFETY: a fresh target machine, used by this thread only; the code is never run.
        unsafe {
            let tm = create_host_tm()?;
            let r = backend.compile_with(
                orc,
                tm,
                "big",
                &sig,
                |e| {
                    let slot = e.stack_slot(bytes);
                    let callee = e.params()[0];
                    e.call(&sig, callee, &[slot]);
                    e.ret(None);
                    Ok(())
                },
                None,
            );
            LLVMDisposeTargetMachine(tm);
            r.map(|c| c.expect("code"))
        }
    }

    #[test]
    fn frames_over_the_limit_are_refused_from_llvms_own_frame_size() {
        assert!(frame_of(200 << 10).is_ok());
        let err = frame_of(300 << 10).err().expect("a 300 KiB frame is refused");
        assert!(err.contains("'big' needs a 301 KiB stack frame, over the 256 KiB limit"), "{err}");
    }

    #[test]
    fn stack_size_diagnostic_is_parsed() {
        let d = "<unknown>:0:0: stack frame size (300000) exceeds limit (262144) in function 'f'";
        assert_eq!(stack_size_of(d), Some(300000));
        assert_eq!(stack_size_of("something else"), None);
    }
}
