//! `rayzor.interpret`: run a function in the reference interpreter.

use crate::convert::{self, PinnedBuffer};
use crate::errors;
use crate::host::HostThunk;
use crate::module::PyMirModule;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyInt, PyString, PyTuple};
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
            format!(
                "function '{}' takes {}, got {}",
                f.name,
                rayzor_core::error::count(f.sig.params.len(), "argument"),
                args.len()
            ),
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

/// Host addresses for externs, from a mapping of extern name -> function, and
/// the objects that must stay alive as long as the addresses are used.
///
/// A value may be a Python callable (called through the package's C-ABI thunk,
/// `crate::host`: arguments and result converted by the extern's signature; an
/// exception it raises aborts the MIR call and is re-raised from it), a ctypes
/// function pointer (called directly; an exception its Python callback raises
/// is caught through `sys.unraisablehook`, see `rayzor/_host.py`), or an
/// explicit non-zero int address. Anything else is an ArgumentError naming the extern.
pub fn extern_addresses(
    py: Python<'_>,
    module: &Module,
    host: Option<&Bound<'_, PyAny>>,
) -> PyResult<(HashMap<ExternId, usize>, HostObjects)> {
    let mut out = HashMap::new();
    let mut keep = HostObjects::default();
    let Some(host) = host else { return Ok((out, keep)) };
    let tname = |o: &Bound<'_, PyAny>| o.get_type().name().map(|n| n.to_string()).unwrap_or_default();
    let mapping = py.import("collections.abc")?.getattr("Mapping")?;
    if !host.is_instance(&mapping)? {
        return Err(errors::argument_error(
            py,
            format!("host must be a mapping of extern name -> host function, got {}", tname(host)),
        ));
    }
    let ctypes = py.import("ctypes")?;
    let cfuncptr = ctypes.getattr("_CFuncPtr")?;
    let c_void_p = ctypes.getattr("c_void_p")?;
    let helpers = py.import("rayzor._host")?;
    for item in host.call_method0("items")?.try_iter()? {
        let (key, value): (Bound<'_, PyAny>, Bound<'_, PyAny>) = item?.extract()?;
        let Ok(name) = key.extract::<String>() else {
            return Err(errors::argument_error(
                py,
                format!("host keys must be extern names (str), got {}", tname(&key)),
            ));
        };
        let Some(id) = module.extern_by_name(&name) else {
            return Err(errors::argument_error(
                py,
                format!("host function '{name}' is not declared in the module"),
            ));
        };
        let refuse = |why: String| {
            errors::argument_error(
                py,
                format!(
                    "host function '{name}' must be a Python callable, a ctypes function pointer or a \
                     non-zero int address; {why}"
                ),
            )
        };
        let address: usize = if value.is_instance_of::<PyBool>() {
            return Err(refuse("got bool".into()));
        } else if value.is_instance_of::<PyInt>() {
            match value.extract::<i128>() {
                Ok(a) if a > 0 && a <= usize::MAX as i128 => a as usize,
                Ok(0) => 0,
                _ => return Err(refuse(format!("{} is not an address", value.repr()?))),
            }
        } else if value.is_instance(&cfuncptr)? {
            helpers.getattr("watch_ctypes_callbacks")?.call0()?;
            keep.objects.push(value.clone().unbind());
            let p = ctypes.getattr("cast")?.call1((&value, &c_void_p))?;
            p.getattr("value")?.extract::<Option<usize>>()?.unwrap_or(0)
        } else if value.is_instance(&c_void_p)? {
            value.getattr("value")?.extract::<Option<usize>>()?.unwrap_or(0)
        } else if value.is_callable()
            && !value.is_instance_of::<PyString>()
            && !value.is_instance_of::<PyBytes>()
        {
            let sig = &module.externs[id.index()].sig;
            let thunk = HostThunk::new(&name, sig, value.clone().unbind()).map_err(refuse)?;
            let a = thunk.address();
            keep.thunks.push(thunk);
            a
        } else {
            return Err(refuse(format!("got {}", tname(&value))));
        };
        if address == 0 {
            return Err(errors::argument_error(py, format!("host function '{name}' has a null address")));
        }
        out.insert(id, address);
    }
    Ok((out, keep))
}

/// What the host addresses point into: kept alive as long as code may call them.
#[derive(Default)]
pub struct HostObjects {
    objects: Vec<Py<PyAny>>,
    thunks: Vec<HostThunk>,
}

/// A `step_limit`: None or a non-negative int.
fn step_limit_arg(py: Python<'_>, obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<u64>> {
    let Some(obj) = obj.filter(|o| !o.is_none()) else { return Ok(None) };
    match obj.extract::<i128>() {
        Ok(v) if !obj.is_instance_of::<PyBool>() && (0..=u64::MAX as i128).contains(&v) => Ok(Some(v as u64)),
        _ => Err(errors::argument_error(
            py,
            format!("step_limit must be None or an int from 0 to 2**64-1, got {}", obj.repr()?),
        )),
    }
}

/// Run `name` in the reference interpreter and return its result.
///
/// It runs on a snapshot of the verified module, so Python code it runs
/// (an argument's `__index__`, host callbacks) may use, extend or re-enter
/// the module, on this thread or another.
#[pyfunction]
#[pyo3(signature = (module, name, *args, host = None, step_limit = None))]
pub fn interpret(
    py: Python<'_>,
    module: &Bound<'_, PyMirModule>,
    name: &str,
    args: &Bound<'_, PyTuple>,
    host: Option<&Bound<'_, PyAny>>,
    step_limit: Option<&Bound<'_, PyAny>>,
) -> PyResult<Py<PyAny>> {
    let step_limit = step_limit_arg(py, step_limit)?;
    rayzor_core::mir::interrupt::install_sigint_handler();
    let core = {
        let mut m = errors::borrow_mut(module)?;
        m.finish_and_verify(py)?;
        m.core.clone()
    };
    let func = lookup(py, &core, name)?;
    let (addrs, _keep) = extern_addresses(py, &core, host)?;
    let mut pins = Vec::new();
    let leaves = convert_args(py, &core, func, args, &mut pins)?;
    let mut interp = Interpreter::new(&core);
    for (id, addr) in addrs {
        interp.bind_extern(id, addr);
    }
    interp.set_step_limit(step_limit);
    let result = interp.call(func, &leaves).map_err(|e| errors::run(py, e))?;
    drop(pins);
    convert::result_to_py(py, &core.func(func).sig.ret, &result)
}

/// Record `exc` (raised in a host function) and abort the innermost MIR call
/// on this thread, which re-raises it; False when no MIR call is running here.
#[pyfunction]
pub fn _host_abort(exc: &Bound<'_, pyo3::exceptions::PyBaseException>) -> bool {
    errors::abort_with(PyErr::from_value(exc.clone().into_any()))
}
