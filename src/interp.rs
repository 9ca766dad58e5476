//! `rayzor.interpret`: run a function in the reference interpreter.

use crate::convert::{self, PinnedBuffer};
use crate::errors;
use crate::module::PyMirModule;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use rayzor_core::mir::interp::Interpreter;
use rayzor_core::mir::{ExternId, FuncId, Module};
use std::collections::HashMap;

/// Convert Python arguments for `func` of `module`, pinning buffers in `pins`.
pub fn convert_args(
    py: Python<'_>,
    module: &Module,
    func: FuncId,
    args: &Bound<'_, PyTuple>,
    pins: &mut Vec<PinnedBuffer>,
) -> PyResult<Vec<u64>> {
    let f = module.func(func);
    if args.len() != f.sig.params.len() {
        return Err(errors::argument_error(
            py,
            format!("function '{}' takes {} arguments, got {}", f.name, f.sig.params.len(), args.len()),
        ));
    }
    args.iter()
        .zip(&f.sig.params)
        .enumerate()
        .map(|(i, (a, ty))| convert::to_arg(&a, ty, &format!("argument {i} of '{}'", f.name), pins))
        .collect()
}

pub fn lookup(py: Python<'_>, module: &Module, name: &str) -> PyResult<FuncId> {
    module.func_by_name(name).ok_or_else(|| {
        let names: Vec<&str> = module.functions.iter().map(|f| f.name.as_str()).collect();
        errors::argument_error(py, format!("no function named '{name}' (functions: {})", names.join(", ")))
    })
}

/// Host addresses for externs, from a dict of name -> int address (or ctypes function).
pub fn extern_addresses(
    py: Python<'_>,
    module: &Module,
    host: Option<&Bound<'_, PyAny>>,
) -> PyResult<HashMap<ExternId, usize>> {
    let mut out = HashMap::new();
    let Some(host) = host else { return Ok(out) };
    for item in host.call_method0("items")?.try_iter()? {
        let (name, addr): (String, Bound<'_, PyAny>) = item?.extract()?;
        let Some(id) = module.extern_by_name(&name) else {
            return Err(errors::argument_error(
                py,
                format!("host function '{name}' is not declared in the module"),
            ));
        };
        let address: usize = if let Ok(a) = addr.extract::<usize>() {
            a
        } else {
            // ctypes function objects: their address is the first pointer-sized field.
            let ctypes = py.import("ctypes")?;
            let p = ctypes.getattr("cast")?.call1((&addr, ctypes.getattr("c_void_p")?))?;
            p.getattr("value")?.extract::<Option<usize>>()?.unwrap_or(0)
        };
        if address == 0 {
            return Err(errors::argument_error(py, format!("host function '{name}' has a null address")));
        }
        out.insert(id, address);
    }
    Ok(out)
}

/// Run `name` in the reference interpreter and return its result.
#[pyfunction]
#[pyo3(signature = (module, name, *args, host = None, step_limit = None))]
pub fn interpret(
    py: Python<'_>,
    module: &Bound<'_, PyMirModule>,
    name: &str,
    args: &Bound<'_, PyTuple>,
    host: Option<&Bound<'_, PyAny>>,
    step_limit: Option<u64>,
) -> PyResult<Py<PyAny>> {
    module.borrow_mut().finish_and_verify(py)?;
    rayzor_core::mir::interrupt::install_sigint_handler();
    let m = module.borrow();
    let core = &m.core;
    let func = lookup(py, core, name)?;
    let mut pins = Vec::new();
    let leaves = convert_args(py, core, func, args, &mut pins)?;
    let mut interp = Interpreter::new(core);
    for (id, addr) in extern_addresses(py, core, host)? {
        interp.bind_extern(id, addr);
    }
    interp.set_step_limit(step_limit);
    let result = interp.call(func, &leaves).map_err(|e| errors::run(py, e))?;
    drop(pins);
    convert::result_to_py(py, &core.func(func).sig.ret, &result)
}
