//! Inspection of a jit's code: the IR of each compilation stage and the
//! machine code, per function and tier, and the perf map. Nothing here is
//! kept or computed unless asked for: IR comes from a compile on demand that
//! is never published.

use super::{Jit, JitError};
use crate::codegen::{disasm, CompileUnit, MachineCode};
use crate::mir::{text, FuncId};
use crate::runtime::{perf_map, Tier};
use std::sync::atomic::Ordering;

/// A copy of the machine code of one function.
#[derive(Clone, Debug)]
pub struct CodeCopy {
    pub tier: Tier,
    /// Where the code is (or was, for code compiled only to be looked at).
    pub address: usize,
    pub bytes: Vec<u8>,
    /// True for the code calls run now, false for a compile made only for this copy.
    pub installed: bool,
}

impl Jit {
    fn check_inspectable(&self, f: FuncId) -> Result<(), JitError> {
        if self.is_closed() {
            return Err(JitError::Closed);
        }
        if f.index() >= self.funcs.len() {
            return Err(JitError::Usage(format!("no function with index {}", f.0)));
        }
        Ok(())
    }

    /// The IR of `f` at `tier`, stage by stage: `mir` (what the backend
    /// compiles: after `mir::opt` from T2 on), then `clif` and `clif_opt`
    /// (T0-T2), or `llvm` and `llvm_opt` (T3, before and after O3). The code
    /// is compiled for this and thrown away; the function keeps running its own.
    pub fn ir(&self, f: FuncId, tier: Tier) -> Result<Vec<(String, String)>, JitError> {
        self.check_inspectable(f)?;
        let backend = tier.backend().map_err(|reason| JitError::Unavailable { tier, reason })?;
        let (func, profile) = self.mir_and_profile(f, tier);
        let func = &*func;
        let env = self.env();
        // Without OSR points: the IR of the function's own code, not of its loops' transfers.
        let opts = tier.codegen_options();
        let unit = CompileUnit { env: &env, id: f, func, opts, osr: None, profile: profile.as_ref() };
        let stages = backend.ir(&unit).map_err(|m| self.compile_error(f, tier, m))?;
        let mut out = vec![("mir".to_string(), text::print_function(&self.module, func))];
        out.extend(stages.into_iter().map(|(k, v)| (k.to_string(), v)));
        Ok(out)
    }

    /// The machine code of `f`: what calls run now if `tier` is `None` or the
    /// function's current tier, else a compile at `tier` that is not published.
    pub fn code_copy(&self, f: FuncId, tier: Option<Tier>) -> Result<CodeCopy, JitError> {
        self.check_inspectable(f)?;
        {
            // The lock keeps the current code from being replaced (and freed) while it is copied.
            let inner = self.funcs[f.index()].inner.lock();
            let now = self.tier_of(f);
            if let (Some(code), Some(t)) = (inner.current.as_ref(), now) {
                if tier.is_none_or(|want| want == t) {
                    return Ok(copy(&**code, t, true));
                }
            }
        }
        let tier = tier.unwrap_or(Tier::T0);
        let code = self.compile_code(f, tier)?;
        Ok(copy(&*code, tier, false))
    }

    /// `code_copy` decoded: a header line, then `address: bytes  instruction` lines.
    pub fn disassemble(&self, f: FuncId, tier: Option<Tier>) -> Result<String, JitError> {
        let c = self.code_copy(f, tier)?;
        let how = if c.installed { "installed" } else { "compiled for inspection, not installed" };
        let mut out = format!(
            "; '{}' at {}: {} bytes at {:#x} ({how})\n",
            self.module.func(f).name,
            c.tier,
            c.bytes.len(),
            c.address
        );
        let mut insns = disasm::disassemble(c.address as u64, &c.bytes);
        disasm::annotate(&mut insns, |a| self.address_name(a as usize));
        out.push_str(&disasm::format(&insns));
        Ok(out)
    }

    /// What the runtime keeps at `addr`, for disassembly comments.
    fn address_name(&self, addr: usize) -> Option<String> {
        let name = |i: usize| &self.module.functions[i].name;
        let slots = self.slots.as_ptr() as usize;
        let n = self.slots.len();
        if (slots..slots + 8 * n).contains(&addr) && (addr - slots).is_multiple_of(8) {
            return Some(format!("entry slot of '{}'", name((addr - slots) / 8)));
        }
        let counters = self.counters.as_ptr() as usize;
        let stride = std::mem::size_of::<crate::codegen::abi::FunctionCounters>();
        if (counters..counters + stride * n).contains(&addr) {
            return Some(format!(
                "counters of '{}' + {}",
                name((addr - counters) / stride),
                (addr - counters) % stride
            ));
        }
        if let Some(b) = self.builtins.iter().position(|b| *b == addr) {
            return Some(format!("builtin {:?}", crate::codegen::builtins::Builtin::ALL[b]));
        }
        if let Some(e) = self.extern_addrs.iter().position(|a| *a == addr && addr != 0) {
            return Some(format!("extern '{}'", self.module.externs[e].name));
        }
        None
    }

    /// From now on append every code blob this jit publishes to the perf map
    /// (`runtime::perf_map`), as `name[T1]`; the host entries (`name[entry]`)
    /// and the code installed now are written at once.
    pub fn enable_perf_map(&self) -> std::io::Result<()> {
        self.perf_map.store(true, Ordering::SeqCst);
        let mut lines = Vec::new();
        for (i, e) in self.entries.iter().enumerate() {
            lines.push((e.address(), e.len(), format!("{}[entry]", self.module.functions[i].name)));
        }
        for (i, state) in self.funcs.iter().enumerate() {
            let inner = state.inner.lock();
            if let (Some(code), Some(t)) = (inner.current.as_ref(), self.tier_of(FuncId(i as u32))) {
                lines.push((
                    code.address(),
                    code.code_len(),
                    format!("{}[{t}]", self.module.functions[i].name),
                ));
            }
        }
        perf_map::append(&lines)
    }

    pub fn perf_map_enabled(&self) -> bool {
        self.perf_map.load(Ordering::Relaxed)
    }

    /// The perf map line of newly published code (best effort: a failed write
    /// must not fail the compile).
    pub(super) fn perf_map_code(&self, f: FuncId, tier: Tier, code: &dyn MachineCode) {
        let name = format!("{}[{tier}]", self.module.func(f).name);
        let _ = perf_map::append(&[(code.address(), code.code_len(), name)]);
    }
}

fn copy(code: &dyn MachineCode, tier: Tier, installed: bool) -> CodeCopy {
    // SAFETY: `code` is alive (the caller holds it or the function's lock) and
    // its `code_len` bytes at `address` are mapped readable (and executable).
    let bytes = unsafe { std::slice::from_raw_parts(code.address() as *const u8, code.code_len()) }.to_vec();
    CodeCopy { tier, address: code.address(), bytes, installed }
}
