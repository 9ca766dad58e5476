//! Raising the Python exception classes defined in `rayzor/errors.py`.

use pyo3::call::PyCallArgs;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use rayzor_core::error::{ParseError, RunError, Trap, UsageError, VerifyError};

static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

fn make<'py>(py: Python<'py>, class: &str, args: impl PyCallArgs<'py>) -> PyErr {
    let built = (|| -> PyResult<PyErr> {
        let module = ERRORS.get_or_try_init(py, || py.import("rayzor.errors").map(Bound::unbind))?;
        let cls = module.bind(py).getattr(class)?;
        let inst = cls.call1(args)?;
        Ok(PyErr::from_value(inst))
    })();
    built.unwrap_or_else(|e| e)
}

pub fn build_error(py: Python<'_>, msg: impl Into<String>) -> PyErr {
    make(py, "BuildError", (msg.into(),))
}

pub fn argument_error(py: Python<'_>, msg: impl Into<String>) -> PyErr {
    make(py, "ArgumentError", (msg.into(),))
}

pub fn usage(py: Python<'_>, e: UsageError) -> PyErr {
    build_error(py, e.0)
}

pub fn verify(py: Python<'_>, e: &VerifyError) -> PyErr {
    make(
        py,
        "VerifyError",
        (
            e.to_string(),
            e.function.clone(),
            e.block.map(|b| b.to_string()),
            e.inst.map(|i| i.to_string()),
            e.rule,
        ),
    )
}

pub fn parse(py: Python<'_>, e: &ParseError) -> PyErr {
    make(py, "ParseError", (e.to_string(), e.line, e.column))
}

pub fn trap(py: Python<'_>, t: &Trap) -> PyErr {
    make(py, "Trap", (t.to_string(), t.kind.name(), t.function.clone()))
}

pub fn run(py: Python<'_>, e: RunError) -> PyErr {
    match e {
        RunError::Trap(t) => trap(py, &t),
        RunError::Usage(u) if u.0.starts_with("step limit") => make(py, "StepLimitError", (u.0,)),
        RunError::Usage(u) => argument_error(py, u.0),
    }
}

pub fn compile_error(py: Python<'_>, msg: impl Into<String>) -> PyErr {
    make(py, "CompileError", (msg.into(),))
}

pub fn closed_error(py: Python<'_>) -> PyErr {
    make(py, "ClosedError", ("the jit is closed; create a new rayzor.TieredJit",))
}
