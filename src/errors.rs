//! Raising the Python exception classes defined in `rayzor/errors.py`.
//!
//! Each class is imported once (on first use) by `import_exception!` and cached;
//! nothing is looked up by name at raise time.

use pyo3::prelude::*;
use rayzor_core::error::{ParseError, RunError, Trap, UsageError, VerifyError};

mod py {
    pyo3::import_exception!(rayzor.errors, BuildError);
    pyo3::import_exception!(rayzor.errors, ArgumentError);
    pyo3::import_exception!(rayzor.errors, VerifyError);
    pyo3::import_exception!(rayzor.errors, ParseError);
    pyo3::import_exception!(rayzor.errors, Trap);
    pyo3::import_exception!(rayzor.errors, StepLimitError);
    pyo3::import_exception!(rayzor.errors, CompileError);
    pyo3::import_exception!(rayzor.errors, ClosedError);
    pyo3::import_exception!(rayzor.errors, ConfigError);
}

pub fn config_error(_py: Python<'_>, msg: impl Into<String>) -> PyErr {
    py::ConfigError::new_err(msg.into())
}

pub fn build_error(_py: Python<'_>, msg: impl Into<String>) -> PyErr {
    py::BuildError::new_err(msg.into())
}

pub fn argument_error(_py: Python<'_>, msg: impl Into<String>) -> PyErr {
    py::ArgumentError::new_err(msg.into())
}

pub fn usage(py: Python<'_>, e: UsageError) -> PyErr {
    build_error(py, e.0)
}

pub fn verify(_py: Python<'_>, e: &VerifyError) -> PyErr {
    py::VerifyError::new_err((
        e.to_string(),
        e.function.clone(),
        e.block.map(|b| b.to_string()),
        e.inst.map(|i| i.to_string()),
        e.rule,
        e.position,
    ))
}

pub fn parse(_py: Python<'_>, e: &ParseError) -> PyErr {
    py::ParseError::new_err((e.to_string(), e.line, e.column, e.message.clone()))
}

pub fn trap(_py: Python<'_>, t: &Trap) -> PyErr {
    py::Trap::new_err((t.to_string(), t.kind.name(), t.function.clone()))
}

pub fn run(py: Python<'_>, e: RunError) -> PyErr {
    match e {
        RunError::HostAborted => take_host_exception(py),
        // SIGINT interrupted the call: Python's own handler runs now (KeyboardInterrupt).
        RunError::Trap(t) if t.kind == rayzor_core::mir::TrapKind::Interrupted => match py.check_signals() {
            Err(e) => e,
            Ok(()) => trap(py, &t),
        },
        RunError::Trap(t) => trap(py, &t),
        RunError::Usage(u) if u.0.starts_with("step limit") => py::StepLimitError::new_err(u.0),
        RunError::Usage(u) => argument_error(py, u.0),
    }
}

thread_local! {
    /// The exception a host function raised, kept until the call it aborted returns.
    static HOST_EXCEPTION: std::cell::Cell<Option<PyErr>> = const { std::cell::Cell::new(None) };
}

/// Record `err` (raised by a host function) and abort the innermost MIR call on
/// this thread; it is re-raised when that call returns. False (nothing
/// recorded) when no MIR call is running on this thread.
pub fn abort_with(err: PyErr) -> bool {
    if !rayzor_core::mir::host_abort::abort_current() {
        return false;
    }
    HOST_EXCEPTION.with(|h| h.replace(Some(err)));
    true
}

/// The exception that aborted a call, to raise from it.
fn take_host_exception(py: Python<'_>) -> PyErr {
    HOST_EXCEPTION.with(|h| h.take()).unwrap_or_else(|| {
        let _ = py;
        py::ArgumentError::new_err("a host function failed and aborted the call")
    })
}

/// A module borrow that fails with a BuildError instead of panicking.
pub fn borrow<'py, T: pyo3::PyClass>(obj: &Bound<'py, T>) -> PyResult<PyRef<'py, T>> {
    obj.try_borrow().map_err(|_| in_use())
}

/// A mutable module borrow that fails with a BuildError instead of panicking.
pub fn borrow_mut<'py, T: pyo3::PyClass<Frozen = pyo3::pyclass::boolean_struct::False>>(
    obj: &Bound<'py, T>,
) -> PyResult<PyRefMut<'py, T>> {
    obj.try_borrow_mut().map_err(|_| in_use())
}

fn in_use() -> PyErr {
    py::BuildError::new_err(
        "the module is in use (being changed by a builder call that is running Python code, on          this or another thread); try again once that call returns",
    )
}

/// `err` with `cause` (the user's own exception) as its `__cause__`.
pub fn chain(py: Python<'_>, err: PyErr, cause: PyErr) -> PyErr {
    err.set_cause(py, Some(cause));
    err
}

pub fn compile_error(_py: Python<'_>, msg: impl Into<String>) -> PyErr {
    py::CompileError::new_err(msg.into())
}

pub fn closed_error(_py: Python<'_>) -> PyErr {
    py::ClosedError::new_err("the jit is closed; create a new rayzor.TieredJit")
}
