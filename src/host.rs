//! Python callables as host functions: the package's trampoline.
//!
//! Each extern bound to a Python callable gets a C-ABI thunk
//! (`rayzor_core::runtime::host_thunk`) that forwards to [`handler`], which
//! takes the GIL, converts the arguments by the extern's signature, calls the
//! callable and converts its result. When the call raises (the callable's own
//! exception, Python's recursion limit, a result that does not fit), the
//! exception is recorded and the MIR call is aborted like a trap
//! (`host_abort`); it is re-raised from the call that ran the code.

use crate::convert;
use crate::errors;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use rayzor_core::codegen::code_memory::CodeBlob;
use rayzor_core::mir::{Scalar, Signature};

struct Target {
    name: String,
    func: Py<PyAny>,
    params: Vec<Scalar>,
    ret: Option<Scalar>,
}

/// A thunk and what it calls; the address is valid while this lives.
pub struct HostThunk {
    code: CodeBlob,
    _target: Box<Target>,
}

impl HostThunk {
    /// A thunk for extern `name` of signature `sig` (scalars only) calling `func`.
    pub fn new(name: &str, sig: &Signature, func: Py<PyAny>) -> Result<HostThunk, String> {
        let params = sig
            .params
            .iter()
            .map(|t| t.scalar().ok_or_else(|| format!("its parameter type {t} is not a scalar")))
            .collect::<Result<Vec<_>, _>>()?;
        let ret = match sig.ret.scalar() {
            Some(s) => Some(s),
            None if sig.ret.is_void() => None,
            None => return Err(format!("its return type {} is not a scalar", sig.ret)),
        };
        let target = Box::new(Target { name: name.to_string(), func, params, ret });
        let context = &*target as *const Target as usize;
        let code = rayzor_core::runtime::host_thunk(sig, context, handler)?;
        Ok(HostThunk { code, _target: target })
    }

    pub fn address(&self) -> usize {
        self.code.address()
    }
}

fn call(py: Python<'_>, t: &Target, args: *const u64) -> PyResult<u64> {
    let mut argv = Vec::with_capacity(t.params.len());
    for (k, s) in t.params.iter().enumerate() {
        // SAFETY: the thunk stores one word per parameter.
        let bits = unsafe { *args.add(k) };
        argv.push(convert::bits_to_py(py, *s, s.canon(bits))?);
    }
    let result = t.func.call1(py, PyTuple::new(py, argv)?)?;
    let Some(s) = t.ret else { return Ok(0) };
    let result = result.bind(py);
    if s == Scalar::Ptr && result.is_none() {
        return Ok(0);
    }
    convert::py_to_bits(result, s, &format!("the result of host function '{}'", t.name))
}

/// What every thunk calls. Never unwinds (a panic is caught and aborts the call).
unsafe extern "C" fn handler(context: usize, args: *const u64) -> u64 {
    // SAFETY: `context` is the `Target` of a live `HostThunk` (the thunk's owner
    // keeps both alive while code can call it).
    let t = unsafe { &*(context as *const Target) };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        Python::attach(|py| match call(py, t, args) {
            Ok(bits) => bits,
            Err(e) => {
                if !errors::abort_with(e.clone_ref(py)) {
                    // Called from outside any MIR call: nowhere to raise it.
                    e.write_unraisable(py, Some(t.func.bind(py)));
                }
                0
            }
        })
    }));
    outcome.unwrap_or_else(|_| {
        Python::attach(|py| {
            let e = errors::argument_error(py, format!("internal error in host function '{}'", t.name));
            errors::abort_with(e);
        });
        0
    })
}
