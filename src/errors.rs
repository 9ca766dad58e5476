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
    ))
}

pub fn parse(_py: Python<'_>, e: &ParseError) -> PyErr {
    py::ParseError::new_err((e.to_string(), e.line, e.column))
}

pub fn trap(_py: Python<'_>, t: &Trap) -> PyErr {
    py::Trap::new_err((t.to_string(), t.kind.name(), t.function.clone()))
}

pub fn run(py: Python<'_>, e: RunError) -> PyErr {
    match e {
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

pub fn compile_error(_py: Python<'_>, msg: impl Into<String>) -> PyErr {
    py::CompileError::new_err(msg.into())
}

pub fn closed_error(_py: Python<'_>) -> PyErr {
    py::ClosedError::new_err("the jit is closed; create a new rayzor.TieredJit")
}
