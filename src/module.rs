//! `rayzor.Module`, its function builder, and the values and blocks it hands out.

use crate::convert;
use crate::errors;
use crate::types::{extract_type, extract_types, PyType};
use pyo3::exceptions::PyDeprecationWarning;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyString, PyTuple};
use rayzor_core::error::UsageError;
use rayzor_core::mir::builder::{declare_extern, declare_function, FunctionBuilder, Var};
use rayzor_core::mir::{
    text, verify, BinOp, Block, BlockCall, Callee, CmpOp, FuncId, InstKind, Module, Scalar, Signature, Type,
    UnOp, Value,
};

/// An instruction `FunctionBuilder._op` emits, found by its MIR name.
#[derive(Clone, Copy)]
enum Op {
    Binary(BinOp),
    Compare(CmpOp),
    Unary(UnOp),
}

impl Op {
    fn by_name(name: &str) -> Option<Op> {
        let bin = BinOp::ALL.into_iter().find(|o| o.name() == name).map(Op::Binary);
        bin.or_else(|| CmpOp::ALL.into_iter().find(|o| o.name() == name).map(Op::Compare))
            .or_else(|| UnOp::ALL.into_iter().find(|o| o.name() == name).map(Op::Unary))
    }

    fn name(self) -> &'static str {
        match self {
            Op::Binary(o) => o.name(),
            Op::Compare(o) => o.name(),
            Op::Unary(o) => o.name(),
        }
    }
}

/// A MIR module: functions, host-function declarations and static data.
#[pyclass(name = "Module", module = "rayzor")]
pub struct PyMirModule {
    pub core: Module,
    /// The open builder of each function (None once finished or for parsed code).
    builders: Vec<Option<FunctionBuilder>>,
    /// Functions declared with `declare` and not yet defined with `function`.
    declared: Vec<FuncId>,
}

impl PyMirModule {
    pub fn from_core(core: Module) -> Self {
        let n = core.functions.len();
        PyMirModule { core, builders: vec![None; n], declared: Vec::new() }
    }

    /// Finish every open builder (wiring variables), then verify.
    pub fn finish_and_verify(&mut self, py: Python<'_>) -> PyResult<()> {
        if let Some(f) = self.declared.first() {
            let name = &self.core.func(*f).name;
            return Err(errors::build_error(
                py,
                format!("function '{name}' was declared but never defined: define it with Module.function"),
            ));
        }
        for b in self.builders.iter_mut().flatten() {
            b.finish(&mut self.core).map_err(|e| errors::usage(py, e))?;
        }
        verify::verify_module(&self.core).map_err(|e| errors::verify(py, &e))
    }
}

#[pymethods]
impl PyMirModule {
    #[new]
    fn new() -> Self {
        PyMirModule::from_core(Module::new())
    }

    /// Declare a function and return a builder positioned at its entry block.
    #[pyo3(signature = (name, params, ret))]
    fn function(
        slf: Bound<'_, Self>,
        name: &str,
        params: &Bound<'_, PyAny>,
        ret: &Bound<'_, PyAny>,
    ) -> PyResult<PyFunctionBuilder> {
        let py = slf.py();
        let sig = Signature::new(
            extract_types(py, params, "parameter type")?,
            extract_type(py, ret, "return type")?,
        );
        let mut m = errors::borrow_mut(&slf)?;
        let m = &mut *m;
        if let Some(k) = m.core.func_by_name(name).and_then(|f| m.declared.iter().position(|d| *d == f)) {
            // Defining a function declared earlier.
            let func = m.declared[k];
            let declared = &m.core.func(func).sig;
            if *declared != sig {
                return Err(errors::build_error(
                    py,
                    format!("'{name}' was declared as fn{declared}, so it cannot be defined as fn{sig}"),
                ));
            }
            m.declared.remove(k);
            m.builders[func.index()] = Some(FunctionBuilder::resume(func));
            return Ok(PyFunctionBuilder { module: slf.clone().unbind(), func });
        }
        let b = declare_function(&mut m.core, name, sig).map_err(|e| errors::usage(py, e))?;
        let func = b.func;
        m.builders.push(Some(b));
        Ok(PyFunctionBuilder { module: slf.clone().unbind(), func })
    }

    /// Declare a function defined later by `function(name, params, ret)`, so that code
    /// can call it first (mutual recursion, calls before definitions).
    #[pyo3(signature = (name, params, ret))]
    fn declare(
        &mut self,
        py: Python<'_>,
        name: &str,
        params: &Bound<'_, PyAny>,
        ret: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let sig = Signature::new(
            extract_types(py, params, "parameter type")?,
            extract_type(py, ret, "return type")?,
        );
        if self.core.func_by_name(name).is_some_and(|f| self.declared.contains(&f)) {
            return Err(errors::build_error(py, format!("function '{name}' is already declared")));
        }
        let b = declare_function(&mut self.core, name, sig).map_err(|e| errors::usage(py, e))?;
        self.builders.push(None);
        self.declared.push(b.func);
        Ok(())
    }

    /// Declare a host function with the C calling convention.
    #[pyo3(name = "extern", signature = (name, params, ret))]
    fn extern_(
        slf: &Bound<'_, Self>,
        name: &str,
        params: &Bound<'_, PyAny>,
        ret: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let py = slf.py();
        let sig = Signature::new(
            extract_types(py, params, "parameter type")?,
            extract_type(py, ret, "return type")?,
        );
        let mut m = errors::borrow_mut(slf)?;
        declare_extern(&mut m.core, name, sig).map_err(|e| errors::usage(py, e))?;
        Ok(())
    }

    /// Finish all builders and check every rule of the verifier; raises VerifyError.
    fn verify(&mut self, py: Python<'_>) -> PyResult<()> {
        self.finish_and_verify(py)
    }

    /// Names of the functions, in order.
    #[getter]
    fn functions(&self) -> Vec<String> {
        self.core.functions.iter().map(|f| f.name.clone()).collect()
    }

    /// Names of the declared host functions, in order.
    #[getter]
    fn externs(&self) -> Vec<String> {
        self.core.externs.iter().map(|f| f.name.clone()).collect()
    }

    /// The signature of a function or extern as (param types, return type).
    fn signature(&self, py: Python<'_>, name: &str) -> PyResult<(Vec<PyType>, PyType)> {
        let sig = match (self.core.func_by_name(name), self.core.extern_by_name(name)) {
            (Some(f), _) => &self.core.func(f).sig,
            (None, Some(e)) => &self.core.externs[e.index()].sig,
            _ => return Err(errors::build_error(py, format!("no function named '{name}'"))),
        };
        Ok((sig.params.iter().map(|t| PyType { ty: t.clone() }).collect(), PyType { ty: sig.ret.clone() }))
    }

    fn __str__(&self) -> String {
        text::print_module(&self.core)
    }

    fn __repr__(&self) -> String {
        format!("<rayzor.Module with {} functions>", self.core.functions.len())
    }

    /// Modules are equal when they print the same (value numbering aside).
    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        match other.extract::<PyRef<PyMirModule>>() {
            Ok(o) => text::print_module(&self.core) == text::print_module(&o.core),
            Err(_) => false,
        }
    }

    fn __copy__(&self) -> PyMirModule {
        PyMirModule {
            core: self.core.clone(),
            builders: self.builders.clone(),
            declared: self.declared.clone(),
        }
    }
}

/// Parse MIR text into a Module; raises ParseError with line and column.
#[pyfunction]
pub fn parse(py: Python<'_>, text: &str) -> PyResult<PyMirModule> {
    let core = text::parse_module(text).map_err(|e| errors::parse(py, &e))?;
    Ok(PyMirModule::from_core(core))
}

/// An SSA value of one function. Supports `+ - * / % & | ^ << >> ~ -` with
/// other values of its function or with Python numbers (taken in its type).
#[pyclass(name = "Value", module = "rayzor", frozen)]
pub struct PyValue {
    module: Py<PyMirModule>,
    func: FuncId,
    pub id: Value,
}

/// A basic block of one function.
#[pyclass(name = "Block", module = "rayzor", frozen)]
pub struct PyBlock {
    module: Py<PyMirModule>,
    func: FuncId,
    pub id: Block,
}

/// A mutable variable of one function (see FunctionBuilder.var).
#[pyclass(name = "Var", module = "rayzor", frozen)]
pub struct PyVar {
    module: Py<PyMirModule>,
    func: FuncId,
    id: Var,
    #[pyo3(get)]
    name: String,
}

#[pymethods]
impl PyBlock {
    fn __repr__(&self) -> String {
        format!("<rayzor.Block {}>", self.id)
    }

    /// The block's parameters as values.
    #[getter]
    fn params(&self, py: Python<'_>) -> PyResult<Vec<PyValue>> {
        let m = errors::borrow(self.module.bind(py))?;
        Ok(m.core.functions[self.func.index()].blocks[self.id.index()]
            .params
            .iter()
            .map(|v| PyValue { module: self.module.clone_ref(py), func: self.func, id: *v })
            .collect())
    }
}

#[pymethods]
impl PyVar {
    fn __repr__(&self) -> String {
        format!("<rayzor.Var {}>", self.name)
    }
}

impl PyValue {
    fn builder(&self, py: Python<'_>) -> PyFunctionBuilder {
        PyFunctionBuilder { module: self.module.clone_ref(py), func: self.func }
    }
}

#[pymethods]
impl PyValue {
    /// The value's MIR type.
    #[getter]
    fn r#type(&self, py: Python<'_>) -> PyResult<PyType> {
        let m = errors::borrow(self.module.bind(py))?;
        Ok(PyType { ty: m.core.functions[self.func.index()].value_type(self.id).clone() })
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let m = errors::borrow(self.module.bind(py))?;
        Ok(format!("<rayzor.Value {}: {}>", self.id, m.core.functions[self.func.index()].value_type(self.id)))
    }

    /// A builder for the value's function (the operators, defined in
    /// `rayzor/_ops.py`, emit through it).
    #[getter]
    fn _builder(&self, py: Python<'_>) -> PyFunctionBuilder {
        self.builder(py)
    }

    fn __bool__(&self, py: Python<'_>) -> PyResult<bool> {
        Err(errors::build_error(
            py,
            "a rayzor.Value has no truth value at build time; use FunctionBuilder.brif or select",
        ))
    }
}

/// Builds one function. Instructions are appended at the end of the current
/// block; start with the entry block, create more with `block()`, move with
/// `switch_to()`. Python numbers are accepted wherever a value is expected
/// and the type is clear from another operand.
#[pyclass(name = "FunctionBuilder", module = "rayzor")]
pub struct PyFunctionBuilder {
    module: Py<PyMirModule>,
    func: FuncId,
}

impl PyFunctionBuilder {
    fn with<R>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut Module, &mut FunctionBuilder) -> Result<R, UsageError>,
    ) -> PyResult<R> {
        let mut m = errors::borrow_mut(self.module.bind(py))?;
        let m = &mut *m;
        let fname = m.core.functions[self.func.index()].name.clone();
        let Some(b) = m.builders.get_mut(self.func.index()).and_then(Option::as_mut) else {
            return Err(errors::build_error(
                py,
                format!("function '{fname}' is finished; it cannot be changed"),
            ));
        };
        f(&mut m.core, b).map_err(|e| errors::usage(py, e))
    }

    fn value(&self, py: Python<'_>, id: Value) -> PyValue {
        PyValue { module: self.module.clone_ref(py), func: self.func, id }
    }

    fn value_type(&self, py: Python<'_>, v: Value) -> PyResult<Type> {
        Ok(errors::borrow(self.module.bind(py))?.core.functions[self.func.index()].value_type(v).clone())
    }

    /// A value operand: a Value of this function, or a Python number turned
    /// into a constant of type `like`.
    fn operand(
        &self,
        py: Python<'_>,
        obj: &Bound<'_, PyAny>,
        like: Option<&Type>,
        what: &str,
    ) -> PyResult<Value> {
        if let Ok(v) = obj.extract::<PyRef<PyValue>>() {
            if !v.module.is(&self.module) || v.func != self.func {
                return Err(errors::build_error(py, format!("{what} is a value of another function")));
            }
            return Ok(v.id);
        }
        let is_number = obj.is_instance_of::<PyInt>()
            || obj.is_instance_of::<PyFloat>()
            || obj.is_instance_of::<PyBool>();
        match like.and_then(Type::scalar) {
            Some(s) if is_number => {
                let bits = convert::py_to_bits(obj, s, what)?;
                self.with(py, |m, b| b.constant(m, s, bits))
            }
            _ => Err(errors::build_error(
                py,
                format!(
                    "{what} must be a rayzor.Value{}, got {}",
                    if like.is_some() { " or a number" } else { "" },
                    obj.get_type().name()?
                ),
            )),
        }
    }

    fn emit(&self, py: Python<'_>, kind: InstKind) -> PyResult<Option<PyValue>> {
        let v = self.with(py, |m, b| b.ins(m, kind))?;
        Ok(v.map(|id| self.value(py, id)))
    }

    fn emit_value(&self, py: Python<'_>, kind: InstKind) -> PyResult<PyValue> {
        self.emit(py, kind)?.ok_or_else(|| errors::build_error(py, "the instruction produces no value"))
    }

    fn binary(
        &self,
        py: Python<'_>,
        op: BinOp,
        a: &Bound<'_, PyAny>,
        b: &Bound<'_, PyAny>,
    ) -> PyResult<PyValue> {
        let (lhs, rhs) = self.pair(py, a, b)?;
        self.emit_value(py, InstKind::Binary { op, lhs, rhs })
    }

    fn compare(
        &self,
        py: Python<'_>,
        op: CmpOp,
        a: &Bound<'_, PyAny>,
        b: &Bound<'_, PyAny>,
    ) -> PyResult<PyValue> {
        let (lhs, rhs) = self.pair(py, a, b)?;
        self.emit_value(py, InstKind::Cmp { op, lhs, rhs })
    }

    /// Two operands where at least one is a Value that gives the other its type.
    fn pair(&self, py: Python<'_>, a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>) -> PyResult<(Value, Value)> {
        if a.extract::<PyRef<PyValue>>().is_ok() {
            let lhs = self.operand(py, a, None, "left operand")?;
            let ty = self.value_type(py, lhs)?;
            Ok((lhs, self.operand(py, b, Some(&ty), "right operand")?))
        } else {
            let rhs = self.operand(py, b, None, "right operand")?;
            let ty = self.value_type(py, rhs)?;
            Ok((self.operand(py, a, Some(&ty), "left operand")?, rhs))
        }
    }

    fn unary(&self, py: Python<'_>, op: UnOp, a: &Bound<'_, PyAny>) -> PyResult<PyValue> {
        let arg = self.operand(py, a, None, "operand")?;
        self.emit_value(py, InstKind::Unary { op, arg })
    }

    fn block_id(&self, py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<Block> {
        match obj.extract::<PyRef<PyBlock>>() {
            Ok(b) if b.module.is(&self.module) && b.func == self.func => Ok(b.id),
            Ok(_) => Err(errors::build_error(py, "the block belongs to another function")),
            Err(_) => Err(errors::build_error(
                py,
                format!("expected a rayzor.Block, got {}", obj.get_type().name()?),
            )),
        }
    }

    /// Branch arguments, typed by the target block's parameters so numbers work.
    fn block_call(
        &self,
        py: Python<'_>,
        block: &Bound<'_, PyAny>,
        args: &Bound<'_, PyAny>,
    ) -> PyResult<BlockCall> {
        let block = self.block_id(py, block)?;
        let param_types: Vec<Type> = {
            let m = errors::borrow(self.module.bind(py))?;
            let f = &m.core.functions[self.func.index()];
            f.blocks[block.index()].params.iter().map(|p| f.value_type(*p).clone()).collect()
        };
        let mut out = Vec::new();
        for (i, a) in args.try_iter()?.enumerate() {
            let a = a?;
            out.push(self.operand(py, &a, param_types.get(i), &format!("argument {i} for {block}"))?);
        }
        Ok(BlockCall { block, args: out })
    }

    fn callee(&self, py: Python<'_>, name: &str) -> PyResult<Callee> {
        let m = errors::borrow(self.module.bind(py))?;
        if let Some(f) = m.core.func_by_name(name) {
            return Ok(Callee::Func(f));
        }
        if let Some(e) = m.core.extern_by_name(name) {
            return Ok(Callee::Extern(e));
        }
        Err(errors::build_error(py, format!("no function or extern named '{name}' (declare it first)")))
    }

    /// A call of `name` and the callee's return type.
    fn direct_call(
        &self,
        py: Python<'_>,
        name: &str,
        args: &Bound<'_, PyTuple>,
    ) -> PyResult<(InstKind, Option<Type>)> {
        let callee = self.callee(py, name)?;
        let sig = errors::borrow(self.module.bind(py))?.core.callee_sig(callee).cloned();
        let params = sig.as_ref().map(|s| s.params.clone()).unwrap_or_default();
        let args = self.call_args(py, &params, args)?;
        Ok((InstKind::Call { callee, args }, sig.map(|s| s.ret)))
    }

    /// A call through `callee` and its return type (None unless it is a function pointer).
    fn indirect_call(
        &self,
        py: Python<'_>,
        callee: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
    ) -> PyResult<(InstKind, Option<Type>)> {
        let callee = self.operand(py, callee, None, "callee")?;
        let (params, ret) = match self.value_type(py, callee)? {
            Type::FnPtr { sig, .. } => (sig.params.clone(), Some(sig.ret.clone())),
            _ => (Vec::new(), None),
        };
        let args = self.call_args(py, &params, args)?;
        Ok((InstKind::CallIndirect { callee, args }, ret))
    }

    fn call_args(&self, py: Python<'_>, params: &[Type], args: &Bound<'_, PyTuple>) -> PyResult<Vec<Value>> {
        args.iter()
            .enumerate()
            .map(|(i, a)| self.operand(py, &a, params.get(i), &format!("call argument {i}")))
            .collect()
    }
}

#[pymethods]
impl PyFunctionBuilder {
    /// The one entry for every arithmetic, comparison and unary instruction: `op`
    /// is its MIR name ("add", "lt", "neg", ...). The named methods (`add`, `lt`,
    /// `neg`, ...) and `Value`'s operators are generated from it in `rayzor/_ops.py`.
    #[pyo3(signature = (op, *operands))]
    fn _op(&self, py: Python<'_>, op: &str, operands: &Bound<'_, PyTuple>) -> PyResult<PyValue> {
        let Some(op) = Op::by_name(op) else {
            return Err(errors::build_error(
                py,
                format!("no arithmetic, comparison or unary operation '{op}'"),
            ));
        };
        let arity = if matches!(op, Op::Unary(_)) { 1 } else { 2 };
        if operands.len() != arity {
            return Err(errors::build_error(
                py,
                format!(
                    "{} takes {}, got {}",
                    op.name(),
                    rayzor_core::error::count(arity, "operand"),
                    operands.len()
                ),
            ));
        }
        let a = operands.get_item(0)?;
        match op {
            Op::Binary(op) => self.binary(py, op, &a, &operands.get_item(1)?),
            Op::Compare(op) => self.compare(py, op, &a, &operands.get_item(1)?),
            Op::Unary(op) => self.unary(py, op, &a),
        }
    }

    /// The function's name.
    #[getter]
    fn name(&self, py: Python<'_>) -> PyResult<String> {
        Ok(errors::borrow(self.module.bind(py))?.core.functions[self.func.index()].name.clone())
    }

    /// The function's parameters (the entry block's parameters).
    #[getter]
    fn params(&self, py: Python<'_>) -> PyResult<Vec<PyValue>> {
        let ids =
            errors::borrow(self.module.bind(py))?.core.functions[self.func.index()].blocks[0].params.clone();
        Ok(ids.into_iter().map(|v| self.value(py, v)).collect())
    }

    /// The entry block.
    #[getter]
    fn entry(&self, py: Python<'_>) -> PyBlock {
        PyBlock { module: self.module.clone_ref(py), func: self.func, id: Block(0) }
    }

    /// The block instructions are currently appended to.
    #[getter]
    fn current(&self, py: Python<'_>) -> PyResult<Option<PyBlock>> {
        let b = self.with(py, |_, b| Ok(b.current_block()))?;
        Ok(b.map(|id| PyBlock { module: self.module.clone_ref(py), func: self.func, id }))
    }

    /// Whether the current block already ends in a terminator (jump, brif, switch,
    /// ret, trap, unreachable): then nothing more can be appended to it. False when
    /// there is no current block.
    #[getter]
    fn is_terminated(&self, py: Python<'_>) -> PyResult<bool> {
        self.with(py, |m, b| {
            Ok(b.current_block().is_some_and(|blk| m.functions[b.func.index()].terminator(blk).is_some()))
        })
    }

    /// Create a new block with parameters of the given types.
    #[pyo3(signature = (*param_types))]
    fn block(&self, py: Python<'_>, param_types: &Bound<'_, PyTuple>) -> PyResult<PyBlock> {
        let tys = extract_types(py, param_types.as_any(), "block parameter type")?;
        let id = self.with(py, |m, b| b.create_block(m, &tys))?;
        Ok(PyBlock { module: self.module.clone_ref(py), func: self.func, id })
    }

    /// Append further instructions to `block`.
    fn switch_to(&self, py: Python<'_>, block: &Bound<'_, PyAny>) -> PyResult<()> {
        let id = self.block_id(py, block)?;
        self.with(py, |m, b| b.switch_to(m, id))
    }

    /// A constant of scalar type `ty`: `const(42, rayzor.i64)`.
    #[pyo3(name = "const")]
    fn const_(&self, py: Python<'_>, value: &Bound<'_, PyAny>, ty: &Bound<'_, PyAny>) -> PyResult<PyValue> {
        let ty = extract_type(py, ty, "constant type")?;
        let Type::Scalar(s) = ty else {
            return Err(errors::build_error(
                py,
                format!("const needs a scalar type, got {ty}; use zero() for aggregates"),
            ));
        };
        let bits = convert::py_to_bits(value, s, "constant")?;
        let v = self.with(py, |m, b| b.constant(m, s, bits))?;
        Ok(self.value(py, v))
    }

    /// The all-zero value of any type.
    fn zero(&self, py: Python<'_>, ty: &Bound<'_, PyAny>) -> PyResult<PyValue> {
        let ty = extract_type(py, ty, "zero type")?;
        self.emit_value(py, InstKind::Zero { ty })
    }

    /// A `str` value for static text (a Python str, encoded UTF-8, or bytes).
    fn str_const(&self, py: Python<'_>, text: &Bound<'_, PyAny>) -> PyResult<PyValue> {
        let bytes: Vec<u8> = if let Ok(s) = text.cast::<PyString>() {
            match s.to_str() {
                Ok(t) => t.as_bytes().to_vec(),
                Err(e) => {
                    return Err(errors::chain(
                        py,
                        errors::build_error(
                            py,
                            "str_const text is not valid Unicode (lone surrogate?): it must encode as \
                             UTF-8; pass bytes for arbitrary data",
                        ),
                        e,
                    ))
                }
            }
        } else if let Ok(b) = text.cast::<PyBytes>() {
            b.as_bytes().to_vec()
        } else {
            return Err(errors::build_error(py, "str_const takes a str or bytes"));
        };
        let data = self.with(py, |m, _| Ok(m.add_data(&bytes)))?;
        self.emit_value(py, InstKind::StrConst { data })
    }

    fn select(
        &self,
        py: Python<'_>,
        cond: &Bound<'_, PyAny>,
        if_true: &Bound<'_, PyAny>,
        if_false: &Bound<'_, PyAny>,
    ) -> PyResult<PyValue> {
        let cond = self.operand(py, cond, Some(&Type::BOOL), "condition")?;
        let (if_true, if_false) = self.pair(py, if_true, if_false)?;
        self.emit_value(py, InstKind::Select { cond, if_true, if_false })
    }

    /// `a * b + c` rounded once (floats; numbers take the type of the first Value operand).
    fn fma(
        &self,
        py: Python<'_>,
        a: &Bound<'_, PyAny>,
        b: &Bound<'_, PyAny>,
        c: &Bound<'_, PyAny>,
    ) -> PyResult<PyValue> {
        let objs = [a, b, c];
        let Some(k) = objs.iter().position(|o| o.extract::<PyRef<PyValue>>().is_ok()) else {
            return Err(errors::build_error(py, "fma needs at least one Value operand to give the type"));
        };
        let typed = self.operand(py, objs[k], None, "fma operand")?;
        let ty = self.value_type(py, typed)?;
        let names = ["first fma operand", "second fma operand", "third fma operand"];
        let mut vals = [typed; 3];
        for i in (0..3).filter(|i| *i != k) {
            vals[i] = self.operand(py, objs[i], Some(&ty), names[i])?;
        }
        let [a, b, c] = vals;
        self.emit_value(py, InstKind::Fma { a, b, c })
    }

    /// Convert a scalar to scalar type `ty` (see docs/mir.md for the rules).
    fn cast(&self, py: Python<'_>, value: &Bound<'_, PyAny>, ty: &Bound<'_, PyAny>) -> PyResult<PyValue> {
        let to = self.scalar_type(py, ty, "cast")?;
        let arg = self.operand(py, value, None, "cast operand")?;
        self.emit_value(py, InstKind::Cast { to, arg })
    }

    /// Reinterpret the bits of a scalar as another scalar of the same width.
    fn bitcast(&self, py: Python<'_>, value: &Bound<'_, PyAny>, ty: &Bound<'_, PyAny>) -> PyResult<PyValue> {
        let to = self.scalar_type(py, ty, "bitcast")?;
        let arg = self.operand(py, value, None, "bitcast operand")?;
        self.emit_value(py, InstKind::Bitcast { to, arg })
    }

    fn load(&self, py: Python<'_>, ty: &Bound<'_, PyAny>, ptr: &Bound<'_, PyAny>) -> PyResult<PyValue> {
        let ty = extract_type(py, ty, "load type")?;
        let ptr = self.operand(py, ptr, Some(&Type::PTR), "pointer")?;
        self.emit_value(py, InstKind::Load { ty, ptr })
    }

    fn store(&self, py: Python<'_>, ptr: &Bound<'_, PyAny>, value: &Bound<'_, PyAny>) -> PyResult<()> {
        let ptr = self.operand(py, ptr, Some(&Type::PTR), "pointer")?;
        let value = self.operand(py, value, None, "stored value")?;
        self.emit(py, InstKind::Store { ptr, value }).map(drop)
    }

    /// Heap-allocate `count` zeroed elements of `ty`; returns a ptr.
    fn alloc(&self, py: Python<'_>, ty: &Bound<'_, PyAny>, count: &Bound<'_, PyAny>) -> PyResult<PyValue> {
        let ty = extract_type(py, ty, "alloc type")?;
        let count = self.operand(py, count, Some(&Type::U64), "count")?;
        self.emit_value(py, InstKind::Alloc { ty, count })
    }

    fn free(&self, py: Python<'_>, ptr: &Bound<'_, PyAny>) -> PyResult<()> {
        let ptr = self.operand(py, ptr, Some(&Type::PTR), "pointer")?;
        self.emit(py, InstKind::Free { ptr }).map(drop)
    }

    fn memcpy(
        &self,
        py: Python<'_>,
        dst: &Bound<'_, PyAny>,
        src: &Bound<'_, PyAny>,
        len: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let dst = self.operand(py, dst, Some(&Type::PTR), "dst")?;
        let src = self.operand(py, src, Some(&Type::PTR), "src")?;
        let len = self.operand(py, len, Some(&Type::U64), "len")?;
        self.emit(py, InstKind::MemCopy { dst, src, len }).map(drop)
    }

    fn memset(
        &self,
        py: Python<'_>,
        dst: &Bound<'_, PyAny>,
        byte: &Bound<'_, PyAny>,
        len: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let dst = self.operand(py, dst, Some(&Type::PTR), "dst")?;
        let byte = self.operand(py, byte, Some(&Type::U8), "byte")?;
        let len = self.operand(py, len, Some(&Type::U64), "len")?;
        self.emit(py, InstKind::MemSet { dst, byte, len }).map(drop)
    }

    /// Address of field `index` of the struct of type `ty` at `ptr`.
    fn field_addr(
        &self,
        py: Python<'_>,
        ty: &Bound<'_, PyAny>,
        ptr: &Bound<'_, PyAny>,
        index: &Bound<'_, PyAny>,
    ) -> PyResult<PyValue> {
        let index = convert::index_arg(index, "field index")?;
        let ty = extract_type(py, ty, "struct type")?;
        let ptr = self.operand(py, ptr, Some(&Type::PTR), "pointer")?;
        self.emit_value(py, InstKind::FieldAddr { ty, ptr, field: index })
    }

    /// Address of element `index` of an array of `elem` at `ptr`.
    fn elem_addr(
        &self,
        py: Python<'_>,
        elem: &Bound<'_, PyAny>,
        ptr: &Bound<'_, PyAny>,
        index: &Bound<'_, PyAny>,
    ) -> PyResult<PyValue> {
        let elem = extract_type(py, elem, "element type")?;
        let ptr = self.operand(py, ptr, Some(&Type::PTR), "pointer")?;
        let index = self.operand(py, index, Some(&Type::I64), "index")?;
        self.emit_value(py, InstKind::ElemAddr { elem, ptr, index })
    }

    fn extract(&self, py: Python<'_>, agg: &Bound<'_, PyAny>, index: &Bound<'_, PyAny>) -> PyResult<PyValue> {
        let index = convert::index_arg(index, "extract index")?;
        let agg = self.operand(py, agg, None, "aggregate")?;
        self.emit_value(py, InstKind::ExtractValue { agg, index })
    }

    fn insert(
        &self,
        py: Python<'_>,
        agg: &Bound<'_, PyAny>,
        index: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<PyValue> {
        let index = convert::index_arg(index, "insert index")?;
        let agg = self.operand(py, agg, None, "aggregate")?;
        let field_ty = self.value_type(py, agg)?.field(index);
        let value = self.operand(py, value, field_ty.as_ref(), "inserted value")?;
        self.emit_value(py, InstKind::InsertValue { agg, index, value })
    }

    fn union_make(
        &self,
        py: Python<'_>,
        ty: &Bound<'_, PyAny>,
        variant: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<PyValue> {
        let variant = convert::index_arg(variant, "union variant")?;
        let ty = extract_type(py, ty, "union type")?;
        let vty = match &ty {
            Type::Union(vs) => vs.get(variant as usize).cloned(),
            _ => None,
        };
        let value = self.operand(py, value, vty.as_ref(), "union payload")?;
        self.emit_value(py, InstKind::UnionMake { ty, variant, value })
    }

    fn union_tag(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<PyValue> {
        let arg = self.operand(py, value, None, "union")?;
        self.emit_value(py, InstKind::UnionTag { arg })
    }

    fn union_get(
        &self,
        py: Python<'_>,
        value: &Bound<'_, PyAny>,
        variant: &Bound<'_, PyAny>,
    ) -> PyResult<PyValue> {
        let variant = convert::index_arg(variant, "union variant")?;
        let arg = self.operand(py, value, None, "union")?;
        self.emit_value(py, InstKind::UnionGet { variant, arg })
    }

    fn any_make(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<PyValue> {
        let arg = self.operand(py, value, None, "value")?;
        self.emit_value(py, InstKind::AnyMake { arg })
    }

    fn any_tag(&self, py: Python<'_>, value: &Bound<'_, PyAny>) -> PyResult<PyValue> {
        let arg = self.operand(py, value, None, "any")?;
        self.emit_value(py, InstKind::AnyTag { arg })
    }

    fn any_get(&self, py: Python<'_>, value: &Bound<'_, PyAny>, ty: &Bound<'_, PyAny>) -> PyResult<PyValue> {
        let ty = self.scalar_type(py, ty, "any_get")?;
        let arg = self.operand(py, value, None, "any")?;
        self.emit_value(py, InstKind::AnyGet { ty, arg })
    }

    /// A function pointer to a module function or extern, by name.
    fn func_addr(&self, py: Python<'_>, name: &str) -> PyResult<PyValue> {
        let callee = self.callee(py, name)?;
        self.emit_value(py, InstKind::FuncAddr { callee })
    }

    /// Call a function or extern by name and return its result. Calling a void
    /// function this way still works (returns None) but is deprecated: use `call_void`.
    #[pyo3(signature = (name, *args))]
    fn call(&self, py: Python<'_>, name: &str, args: &Bound<'_, PyTuple>) -> PyResult<Option<PyValue>> {
        let (kind, ret) = self.direct_call(py, name, args)?;
        if ret.as_ref().is_some_and(Type::is_void) {
            void_call_warning(py, "call", "call_void", &format!("'{name}' returns void"))?;
        }
        self.emit(py, kind)
    }

    /// Call a function or extern by name for its effect; any result is discarded.
    #[pyo3(signature = (name, *args))]
    fn call_void(&self, py: Python<'_>, name: &str, args: &Bound<'_, PyTuple>) -> PyResult<()> {
        let (kind, _) = self.direct_call(py, name, args)?;
        self.emit(py, kind).map(drop)
    }

    /// Call through a function-pointer value and return its result. A void callee
    /// still works (returns None) but is deprecated: use `call_indirect_void`.
    #[pyo3(signature = (callee, *args))]
    fn call_indirect(
        &self,
        py: Python<'_>,
        callee: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
    ) -> PyResult<Option<PyValue>> {
        let (kind, ret) = self.indirect_call(py, callee, args)?;
        if ret.as_ref().is_some_and(Type::is_void) {
            void_call_warning(py, "call_indirect", "call_indirect_void", "the callee returns void")?;
        }
        self.emit(py, kind)
    }

    /// Call through a function-pointer value for its effect; any result is discarded.
    #[pyo3(signature = (callee, *args))]
    fn call_indirect_void(
        &self,
        py: Python<'_>,
        callee: &Bound<'_, PyAny>,
        args: &Bound<'_, PyTuple>,
    ) -> PyResult<()> {
        let (kind, _) = self.indirect_call(py, callee, args)?;
        self.emit(py, kind).map(drop)
    }

    #[pyo3(signature = (block, *args))]
    fn jump(&self, py: Python<'_>, block: &Bound<'_, PyAny>, args: &Bound<'_, PyTuple>) -> PyResult<()> {
        let dest = self.block_call(py, block, args.as_any())?;
        self.emit(py, InstKind::Jump { dest }).map(drop)
    }

    /// Branch to `then` if `cond` is true, else to `else_`.
    #[pyo3(signature = (cond, then, else_, then_args = None, else_args = None))]
    fn brif(
        &self,
        py: Python<'_>,
        cond: &Bound<'_, PyAny>,
        then: &Bound<'_, PyAny>,
        else_: &Bound<'_, PyAny>,
        then_args: Option<&Bound<'_, PyAny>>,
        else_args: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let cond = self.operand(py, cond, Some(&Type::BOOL), "condition")?;
        let empty = PyTuple::empty(py);
        let then_dest = self.block_call(py, then, then_args.unwrap_or(empty.as_any()))?;
        let else_dest = self.block_call(py, else_, else_args.unwrap_or(empty.as_any()))?;
        self.emit(py, InstKind::Brif { cond, then_dest, else_dest }).map(drop)
    }

    /// Multi-way branch: `cases` maps integers to a Block or (Block, [args]).
    #[pyo3(signature = (value, cases, default, default_args = None))]
    fn switch(
        &self,
        py: Python<'_>,
        value: &Bound<'_, PyAny>,
        cases: &Bound<'_, PyDict>,
        default: &Bound<'_, PyAny>,
        default_args: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let value = self.operand(py, value, None, "switch value")?;
        let vty = self.value_type(py, value)?;
        let Some(s) = vty.scalar().filter(|s| s.is_int()) else {
            return Err(errors::build_error(py, format!("switch needs an integer value, got {vty}")));
        };
        let mut out = Vec::new();
        for (k, target) in cases.iter() {
            let bits = convert::py_to_bits(&k, s, "switch case")?;
            let dest = if let Ok(t) = target.cast::<PyTuple>() {
                if t.len() != 2 {
                    return Err(errors::build_error(py, "a switch case is a Block or (Block, args)"));
                }
                self.block_call(py, &t.get_item(0)?, &t.get_item(1)?)?
            } else {
                self.block_call(py, &target, PyTuple::empty(py).as_any())?
            };
            out.push((bits, dest));
        }
        let empty = PyTuple::empty(py);
        let default = self.block_call(py, default, default_args.unwrap_or(empty.as_any()))?;
        self.emit(py, InstKind::Switch { value, cases: out, default }).map(drop)
    }

    /// Return from the function (with a value unless it returns void).
    #[pyo3(signature = (value = None))]
    fn ret(&self, py: Python<'_>, value: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let ret_ty = errors::borrow(self.module.bind(py))?.core.functions[self.func.index()].sig.ret.clone();
        let value = match value {
            Some(v) => Some(self.operand(py, v, Some(&ret_ty), "return value")?),
            None => None,
        };
        self.emit(py, InstKind::Return { value }).map(drop)
    }

    fn trap(&self, py: Python<'_>) -> PyResult<()> {
        self.emit(py, InstKind::Trap).map(drop)
    }

    fn unreachable(&self, py: Python<'_>) -> PyResult<()> {
        self.emit(py, InstKind::Unreachable).map(drop)
    }

    /// Declare a mutable variable; block parameters are placed for you.
    #[pyo3(signature = (name, ty, init = None))]
    fn var(
        &self,
        py: Python<'_>,
        name: &str,
        ty: &Bound<'_, PyAny>,
        init: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyVar> {
        let ty = extract_type(py, ty, "variable type")?;
        let id = self.with(py, |_, b| b.declare_var(name, ty.clone()))?;
        let var = PyVar { module: self.module.clone_ref(py), func: self.func, id, name: name.to_string() };
        if let Some(init) = init {
            self.set(py, &var, init)?;
        }
        Ok(var)
    }

    /// Assign `value` to a variable from here on.
    fn set(&self, py: Python<'_>, var: &PyVar, value: &Bound<'_, PyAny>) -> PyResult<()> {
        self.check_var(py, var)?;
        let ty = self.with(py, |_, b| Ok(b.var_type(var.id).cloned()))?;
        let v = self.operand(py, value, ty.as_ref(), &format!("value for variable '{}'", var.name))?;
        self.with(py, |m, b| b.def_var(m, var.id, v))
    }

    /// The variable's current value.
    fn get(&self, py: Python<'_>, var: &PyVar) -> PyResult<PyValue> {
        self.check_var(py, var)?;
        let v = self.with(py, |m, b| b.use_var(m, var.id))?;
        Ok(self.value(py, v))
    }

    /// Finish the function: wire variables; no code can be added afterwards.
    fn finish(&self, py: Python<'_>) -> PyResult<()> {
        self.with(py, |m, b| b.finish(m))?;
        let mut m = errors::borrow_mut(self.module.bind(py))?;
        m.builders[self.func.index()] = None;
        Ok(())
    }
}

impl PyFunctionBuilder {
    fn scalar_type(&self, py: Python<'_>, ty: &Bound<'_, PyAny>, what: &str) -> PyResult<Scalar> {
        match extract_type(py, ty, &format!("{what} type"))? {
            Type::Scalar(s) => Ok(s),
            other => Err(errors::build_error(py, format!("{what} needs a scalar type, got {other}"))),
        }
    }

    fn check_var(&self, py: Python<'_>, var: &PyVar) -> PyResult<()> {
        if var.func != self.func || !var.module.is(&self.module) {
            return Err(errors::build_error(
                py,
                format!("variable '{}' belongs to another function", var.name),
            ));
        }
        Ok(())
    }
}

/// `call`/`call_indirect` of a void callee: a DeprecationWarning pointing at `instead`.
fn void_call_warning(py: Python<'_>, method: &str, instead: &str, why: &str) -> PyResult<()> {
    let msg = format!("{why}: FunctionBuilder.{method}() of a void callee is deprecated, use {instead}()");
    let msg = std::ffi::CString::new(msg).unwrap_or_default();
    PyErr::warn(py, &py.get_type::<PyDeprecationWarning>(), &msg, 1)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyMirModule>()?;
    m.add_class::<PyFunctionBuilder>()?;
    m.add_class::<PyValue>()?;
    m.add_class::<PyBlock>()?;
    m.add_class::<PyVar>()?;
    m.add_function(wrap_pyfunction!(parse, m)?)?;
    Ok(())
}
