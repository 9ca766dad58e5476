//! PyO3 glue for `rayzor._rayzor`. Only conversion and error mapping live
//! here; all behaviour is in `rayzor_core`.

mod convert;
mod errors;
mod host;
mod interp;
mod jit;
mod module;
mod types;

use pyo3::prelude::*;

#[pymodule]
fn _rayzor(m: &Bound<'_, PyModule>) -> PyResult<()> {
    types::register(m)?;
    module::register(m)?;
    jit::register(m)?;
    m.add_function(wrap_pyfunction!(interp::interpret, m)?)?;
    m.add_function(wrap_pyfunction!(interp::_host_abort, m)?)?;
    m.add_function(wrap_pyfunction!(jit::llvm_available, m)?)?;
    m.add_function(wrap_pyfunction!(jit::_process_exiting, m)?)?;
    m.add("MAX_CALL_DEPTH", rayzor_core::mir::MAX_CALL_DEPTH)?;
    m.add("T3_MAX_SIZE", rayzor_core::runtime::tier::T3_MAX_SIZE)?;
    m.add("T3_MAX_BLOCK", rayzor_core::runtime::tier::T3_MAX_BLOCK)?;
    Ok(())
}
