//! Python values <-> canonical MIR scalar bits, at the call boundary.

use crate::errors;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyInt};
use rayzor_core::mir::{Scalar, Type};

/// A Python buffer held for the duration of a call, so its memory stays put.
pub struct PinnedBuffer {
    view: Box<ffi::Py_buffer>,
}

impl PinnedBuffer {
    fn get(obj: &Bound<'_, PyAny>) -> PyResult<PinnedBuffer> {
        let mut view: Box<ffi::Py_buffer> = Box::new(unsafe { std::mem::zeroed() });
        let flags = ffi::PyBUF_WRITABLE | ffi::PyBUF_C_CONTIGUOUS;
        // SAFETY: `view` is a valid, writable Py_buffer; on success we own a
        // reference that `Drop` releases.
        let rc = unsafe { ffi::PyObject_GetBuffer(obj.as_ptr(), &mut *view, flags) };
        if rc != 0 {
            return Err(PyErr::fetch(obj.py()));
        }
        Ok(PinnedBuffer { view })
    }

    pub fn address(&self) -> usize {
        self.view.buf as usize
    }
}

impl Drop for PinnedBuffer {
    fn drop(&mut self) {
        // SAFETY: the buffer was obtained by PyObject_GetBuffer; releasing it
        // needs the GIL, which every owner of a PinnedBuffer drops it under.
        Python::attach(|_| unsafe { ffi::PyBuffer_Release(&mut *self.view) });
    }
}

// The buffer memory is pinned by the exporter until release; the struct only
// holds pointers to it.
unsafe impl Send for PinnedBuffer {}

fn int_range(s: Scalar) -> (i128, i128) {
    match s {
        Scalar::I8 => (i8::MIN as i128, i8::MAX as i128),
        Scalar::I16 => (i16::MIN as i128, i16::MAX as i128),
        Scalar::I32 => (i32::MIN as i128, i32::MAX as i128),
        Scalar::I64 => (i64::MIN as i128, i64::MAX as i128),
        Scalar::U8 => (0, u8::MAX as i128),
        Scalar::U16 => (0, u16::MAX as i128),
        Scalar::U32 => (0, u32::MAX as i128),
        _ => (0, u64::MAX as i128),
    }
}

/// Convert a Python int/float/bool to canonical bits of `s`. `what` names the
/// value in error messages. Pointers take ints only (see `to_arg` for buffers).
pub fn py_to_bits(obj: &Bound<'_, PyAny>, s: Scalar, what: &str) -> PyResult<u64> {
    let py = obj.py();
    let tname = || obj.get_type().name().map(|n| n.to_string()).unwrap_or_default();
    match s {
        Scalar::Bool => {
            if let Ok(b) = obj.cast::<PyBool>() {
                return Ok(b.is_true() as u64);
            }
            if obj.hasattr("__bool__")? && obj.get_type().name()?.to_string().starts_with("bool") {
                return match obj.is_truthy() {
                    Ok(b) => Ok(b as u64),
                    Err(e) => Err(errors::chain(
                        py,
                        errors::argument_error(py, format!("{what}: __bool__ of {} raised", tname())),
                        e,
                    )),
                };
            }
            Err(errors::argument_error(py, format!("{what} must be a bool (type bool), got {}", tname())))
        }
        Scalar::F32 | Scalar::F64 => {
            if obj.is_instance_of::<PyBool>() {
                return Err(errors::argument_error(py, format!("{what} must be a float ({s}), got bool")));
            }
            // __float__ first (floats, numpy floats and 0-d arrays), then __index__ (ints).
            let x: f64 = match obj.extract::<f64>() {
                Ok(x) => x,
                Err(first) => {
                    let has_float = obj.hasattr("__float__")?;
                    let attempt = if has_float {
                        Err(first)
                    } else {
                        obj.call_method0("__index__").and_then(|i| i.extract::<f64>())
                    };
                    match attempt {
                        Ok(x) => x,
                        Err(e) => {
                            let how = if has_float {
                                "its __float__ raised"
                            } else if obj.hasattr("__index__")? {
                                "its __index__ raised"
                            } else {
                                "it has neither __float__ nor __index__"
                            };
                            return Err(errors::chain(
                                py,
                                errors::argument_error(
                                    py,
                                    format!("{what} must be a float ({s}) that fits, got {}: {how}", tname()),
                                ),
                                e,
                            ));
                        }
                    }
                }
            };
            if s == Scalar::F32 && x.is_finite() && (x as f32).is_infinite() {
                return Err(errors::argument_error(
                    py,
                    format!("{what} = {x} is outside the range of f32 (largest finite: {:e})", f32::MAX),
                ));
            }
            Ok(if s == Scalar::F32 { (x as f32).to_bits() as u64 } else { x.to_bits() })
        }
        _ => {
            // Exact ints (the common case, e.g. host function results) skip the protocol.
            if obj.is_exact_instance_of::<PyInt>() {
                if let Ok(v) = obj.extract::<i128>() {
                    let (lo, hi) = int_range(s);
                    if (lo..=hi).contains(&v) {
                        return Ok(s.canon(v as u64));
                    }
                }
            }
            if obj.is_instance_of::<PyBool>() || !obj.hasattr("__index__")? {
                return Err(errors::argument_error(
                    py,
                    format!("{what} must be an int ({s}), got {}", tname()),
                ));
            }
            let v: i128 = match obj.call_method0("__index__").and_then(|i| i.extract()) {
                Ok(v) => v,
                Err(e) => {
                    let msg = format!("{what} must be an int that fits {s}: {e}");
                    return Err(errors::chain(py, errors::argument_error(py, msg), e));
                }
            };
            let (lo, hi) = int_range(s);
            if v < lo || v > hi {
                return Err(errors::argument_error(
                    py,
                    format!("{what} = {v} does not fit in {s} (range {lo}..={hi})"),
                ));
            }
            Ok(s.canon(v as u64))
        }
    }
}

/// Convert one call argument, pinning a buffer passed for a `ptr` parameter.
pub fn to_arg(obj: &Bound<'_, PyAny>, ty: &Type, what: &str, pins: &mut Vec<PinnedBuffer>) -> PyResult<u64> {
    let py = obj.py();
    let Some(s) = ty.scalar() else {
        return Err(errors::argument_error(
            py,
            format!("{what} has type {ty}: only scalar values cross the Python boundary; pass a ptr instead"),
        ));
    };
    if s == Scalar::Ptr && !obj.is_instance_of::<PyInt>() {
        if obj.is_none() {
            return Ok(0);
        }
        // An object exposing a buffer is passed as its memory or refused, never
        // as an integer (numpy 0-d arrays also have `__index__`).
        // SAFETY: `obj` is a live object; the check has no side effects.
        if unsafe { ffi::PyObject_CheckBuffer(obj.as_ptr()) } != 0 {
            return match PinnedBuffer::get(obj) {
                Ok(buf) => {
                    let addr = buf.address();
                    pins.push(buf);
                    Ok(addr as u64)
                }
                Err(e) => Err(errors::chain(
                    py,
                    errors::argument_error(
                        py,
                        format!(
                            "{what} is a ptr: {} is a read-only or non-contiguous buffer; pass a writable \
                             C-contiguous buffer (bytearray, writable numpy array), None or an int address \
                             (read-only buffers are refused in every tier, even for loads)",
                            obj.get_type().name()?
                        ),
                    ),
                    e,
                )),
            };
        }
        if !obj.hasattr("__index__")? || obj.call_method0("__index__").is_err() {
            return Err(errors::argument_error(
                py,
                format!(
                    "{what} is a ptr: pass an int address, None, or a writable C-contiguous buffer \
                     (bytearray, numpy array); {} does not qualify",
                    obj.get_type().name()?
                ),
            ));
        }
    }
    py_to_bits(obj, s, what)
}

/// A non-negative index or count that fits in `u32`, else BuildError.
pub fn index_arg(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<u32> {
    let py = obj.py();
    if obj.is_instance_of::<PyBool>() {
        return Err(errors::build_error(py, format!("{what} must be an int, got bool")));
    }
    match obj.call_method0("__index__").and_then(|i| i.extract::<i128>()) {
        Ok(v) if (0..=u32::MAX as i128).contains(&v) => Ok(v as u32),
        Ok(v) => Err(errors::build_error(py, format!("{what} must be between 0 and {}, got {v}", u32::MAX))),
        Err(_) => Err(errors::build_error(
            py,
            format!(
                "{what} must be an int, got {}",
                obj.get_type().name().map(|n| n.to_string()).unwrap_or_default()
            ),
        )),
    }
}

pub fn bits_to_py(py: Python<'_>, s: Scalar, bits: u64) -> PyResult<Py<PyAny>> {
    Ok(match s {
        Scalar::Bool => (bits & 1 != 0).into_pyobject(py)?.to_owned().into_any().unbind(),
        Scalar::F32 => (f32::from_bits(bits as u32) as f64).into_pyobject(py)?.into_any().unbind(),
        Scalar::F64 => f64::from_bits(bits).into_pyobject(py)?.into_any().unbind(),
        s if s.is_signed() => (bits as i64).into_pyobject(py)?.into_any().unbind(),
        _ => bits.into_pyobject(py)?.into_any().unbind(),
    })
}

/// Convert a result's leaves to Python (scalars or None for void).
pub fn result_to_py(py: Python<'_>, ty: &Type, leaves: &[u64]) -> PyResult<Py<PyAny>> {
    if ty.is_void() {
        return Ok(py.None());
    }
    match (ty.scalar(), leaves) {
        (Some(s), [bits]) => bits_to_py(py, s, *bits),
        _ => Err(errors::argument_error(
            py,
            format!("the result has type {ty}: only scalar values cross the Python boundary"),
        )),
    }
}
