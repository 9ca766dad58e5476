//! `rayzor.Type`: an immutable MIR type.

use crate::errors;
use pyo3::prelude::*;
use pyo3::types::PyAny;
use rayzor_core::mir::layout::{self, MAX_TYPE_DEPTH};
use rayzor_core::mir::{Scalar, Signature, Type};

#[pyclass(name = "Type", module = "rayzor", frozen, eq, hash, skip_from_py_object)]
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PyType {
    pub ty: Type,
}

impl PyType {
    pub fn new(py: Python<'_>, ty: Type) -> PyResult<PyType> {
        if ty.depth() > MAX_TYPE_DEPTH {
            return Err(errors::build_error(py, format!("type nests deeper than {MAX_TYPE_DEPTH} levels")));
        }
        Ok(PyType { ty })
    }
}

#[pymethods]
impl PyType {
    fn __str__(&self) -> String {
        self.ty.to_string()
    }

    fn __repr__(&self) -> String {
        format!("rayzor.Type('{}')", self.ty)
    }

    /// Size in bytes (x86-64 layout shared by every tier).
    #[getter]
    fn size(&self, py: Python<'_>) -> PyResult<u64> {
        let size = layout::size_of(&self.ty);
        if size > layout::MAX_TYPE_SIZE {
            return Err(errors::build_error(
                py,
                format!(
                    "type {} is larger than the largest MIR type ({} bytes); it cannot be used",
                    self.ty,
                    layout::MAX_TYPE_SIZE
                ),
            ));
        }
        Ok(size)
    }

    /// Alignment in bytes.
    #[getter]
    fn align(&self) -> u64 {
        layout::align_of(&self.ty)
    }

    /// Byte offset of field `index` of a struct type.
    fn offset_of(&self, py: Python<'_>, index: &Bound<'_, PyAny>) -> PyResult<u64> {
        let index = crate::convert::index_arg(index, "field index")? as usize;
        match &self.ty {
            Type::Struct(fields) if index < fields.len() => Ok(layout::field_offset(fields, index)),
            _ => Err(errors::build_error(py, format!("{} has no field {index}", self.ty))),
        }
    }

    #[getter]
    fn is_scalar(&self) -> bool {
        matches!(self.ty, Type::Scalar(_))
    }

    /// What kind of type: "int", "float", "bool", "ptr", "void", "struct", "array",
    /// "slice", "str", "union", "any" or "fn".
    #[getter]
    fn kind(&self) -> &'static str {
        match &self.ty {
            Type::Scalar(s) if s.is_int() => "int",
            Type::Scalar(s) if s.is_float() => "float",
            Type::Scalar(Scalar::Bool) => "bool",
            Type::Scalar(_) => "ptr",
            Type::Void => "void",
            Type::Struct(_) => "struct",
            Type::Array(..) => "array",
            Type::Slice(_) => "slice",
            Type::Str => "str",
            Type::Union(_) => "union",
            Type::Any => "any",
            Type::FnPtr { .. } => "fn",
        }
    }

    /// Width in bits of a scalar (bool: 8, its memory width); None for other types.
    #[getter]
    fn bits(&self) -> Option<u32> {
        self.ty.scalar().map(Scalar::bits)
    }

    /// True for the signed integer types.
    #[getter]
    fn is_signed(&self) -> bool {
        self.ty.scalar().is_some_and(|s| s.is_int() && s.is_signed())
    }

    #[getter]
    fn is_int(&self) -> bool {
        self.ty.scalar().is_some_and(Scalar::is_int)
    }

    #[getter]
    fn is_float(&self) -> bool {
        self.ty.scalar().is_some_and(Scalar::is_float)
    }

    fn __reduce__(&self, py: Python<'_>) -> PyResult<(Py<PyAny>, (String,))> {
        let f = py.import("rayzor")?.getattr("parse_type")?.unbind();
        Ok((f, (self.ty.to_string(),)))
    }
}

pub fn extract_type(py: Python<'_>, obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Type> {
    match obj.extract::<PyRef<PyType>>() {
        Ok(t) => Ok(t.ty.clone()),
        Err(_) => Err(errors::build_error(
            py,
            format!("{what} must be a rayzor.Type (e.g. rayzor.i64), got {}", obj.get_type().name()?),
        )),
    }
}

pub fn extract_types(py: Python<'_>, obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Vec<Type>> {
    let mut out = Vec::new();
    for item in obj.try_iter()? {
        out.push(extract_type(py, &item?, what)?);
    }
    Ok(out)
}

#[pyfunction]
pub fn array(py: Python<'_>, elem: &Bound<'_, PyAny>, length: &Bound<'_, PyAny>) -> PyResult<PyType> {
    let length = crate::convert::index_arg(length, "array length")?;
    let e = extract_type(py, elem, "array element type")?;
    if e.is_void() {
        return Err(errors::build_error(py, "array element type cannot be void"));
    }
    PyType::new(py, Type::Array(Box::new(e), length))
}

#[pyfunction]
pub fn slice(py: Python<'_>, elem: &Bound<'_, PyAny>) -> PyResult<PyType> {
    let e = extract_type(py, elem, "slice element type")?;
    PyType::new(py, Type::Slice(Box::new(e)))
}

#[pyfunction]
#[pyo3(signature = (*fields))]
pub fn struct_(py: Python<'_>, fields: &Bound<'_, PyAny>) -> PyResult<PyType> {
    let fs = extract_types(py, fields, "struct field type")?;
    if fs.iter().any(Type::is_void) {
        return Err(errors::build_error(py, "struct fields cannot be void"));
    }
    PyType::new(py, Type::Struct(fs))
}

#[pyfunction]
#[pyo3(signature = (*variants))]
pub fn union(py: Python<'_>, variants: &Bound<'_, PyAny>) -> PyResult<PyType> {
    let vs = extract_types(py, variants, "union variant type")?;
    if vs.is_empty() || vs.iter().any(Type::is_void) {
        return Err(errors::build_error(py, "a union needs at least one non-void variant"));
    }
    PyType::new(py, Type::Union(vs))
}

fn sig_of(py: Python<'_>, params: &Bound<'_, PyAny>, ret: &Bound<'_, PyAny>) -> PyResult<Signature> {
    let ps = extract_types(py, params, "parameter type")?;
    let r = extract_type(py, ret, "return type")?;
    Ok(Signature::new(ps, r))
}

#[pyfunction]
pub fn fn_ptr(py: Python<'_>, params: &Bound<'_, PyAny>, ret: &Bound<'_, PyAny>) -> PyResult<PyType> {
    let sig = sig_of(py, params, ret)?;
    PyType::new(py, Type::FnPtr { sig: Box::new(sig), host: false })
}

#[pyfunction]
pub fn extern_fn_ptr(py: Python<'_>, params: &Bound<'_, PyAny>, ret: &Bound<'_, PyAny>) -> PyResult<PyType> {
    let sig = sig_of(py, params, ret)?;
    PyType::new(py, Type::FnPtr { sig: Box::new(sig), host: true })
}

#[pyfunction]
pub fn parse_type(py: Python<'_>, text: &str) -> PyResult<PyType> {
    let ty = rayzor_core::mir::text::parse_type(text).map_err(|e| errors::parse(py, &e))?;
    PyType::new(py, ty)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyType>()?;
    for s in Scalar::ALL {
        m.add(format!("{}_t", s.name()).as_str(), PyType { ty: Type::Scalar(s) })?;
    }
    m.add("void_t", PyType { ty: Type::Void })?;
    m.add("any_t", PyType { ty: Type::Any })?;
    m.add("str_t", PyType { ty: Type::Str })?;
    m.add_function(wrap_pyfunction!(array, m)?)?;
    m.add_function(wrap_pyfunction!(slice, m)?)?;
    m.add_function(wrap_pyfunction!(struct_, m)?)?;
    m.add_function(wrap_pyfunction!(union, m)?)?;
    m.add_function(wrap_pyfunction!(fn_ptr, m)?)?;
    m.add_function(wrap_pyfunction!(extern_fn_ptr, m)?)?;
    m.add_function(wrap_pyfunction!(parse_type, m)?)?;
    Ok(())
}
