//! Incremental construction of one function, with mutable variables.
//!
//! A variable is a name for "the value last assigned on this path". Reading
//! a variable in a block that has not assigned it yet gives a block
//! parameter of that block; `finish` then walks the predecessors and passes
//! the right value along every edge (SSA construction on demand, in the
//! spirit of Braun et al. without trivial-phi removal: simple and correct).
//!
//! The builder holds only its own state; every call takes the module, so a
//! front end can keep many builders open on one module.

use super::function::*;
use super::types::{Scalar, Signature, Type};
use crate::mir::layout::MAX_TYPE_DEPTH;
use std::collections::{HashMap, VecDeque};
use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Var(pub u32);

#[derive(Clone, Debug)]
struct VarInfo {
    name: String,
    ty: Type,
}

#[derive(Clone, Debug)]
pub struct FunctionBuilder {
    pub func: FuncId,
    current: Option<Block>,
    vars: Vec<VarInfo>,
    /// The value a variable holds at the current end of a block.
    defs: HashMap<(Block, Var), Value>,
    /// Block parameters standing for a variable's value on entry.
    var_params: HashMap<(Block, Var), Value>,
    /// Var params in creation order, for `finish`.
    pending: Vec<(Block, Var, Value)>,
    finished: bool,
}

fn err<T>(msg: impl Into<String>) -> Result<T, UsageError> {
    Err(UsageError(msg.into()))
}

/// Declare a function in `module` and return a builder positioned at its entry.
pub fn declare_function(
    module: &mut Module,
    name: &str,
    sig: Signature,
) -> Result<FunctionBuilder, UsageError> {
    if name.is_empty() {
        return err("function name must not be empty");
    }
    if module.func_by_name(name).is_some() || module.extern_by_name(name).is_some() {
        return err(format!("a function or extern named '{name}' already exists"));
    }
    check_sig(&sig)?;
    module.functions.push(Function::new(name, sig));
    let func = FuncId(module.functions.len() as u32 - 1);
    Ok(FunctionBuilder::resume(func))
}

/// Declare a host (C ABI) function the module may call.
pub fn declare_extern(module: &mut Module, name: &str, sig: Signature) -> Result<ExternId, UsageError> {
    if name.is_empty() {
        return err("extern name must not be empty");
    }
    if module.func_by_name(name).is_some() || module.extern_by_name(name).is_some() {
        return err(format!("a function or extern named '{name}' already exists"));
    }
    check_sig(&sig)?;
    module.externs.push(ExternFunc { name: name.to_string(), sig });
    Ok(ExternId(module.externs.len() as u32 - 1))
}

fn check_sig(sig: &Signature) -> Result<(), UsageError> {
    for (i, p) in sig.params.iter().enumerate() {
        if p.is_void() {
            return err(format!("parameter {i} has type void"));
        }
    }
    for t in sig.params.iter().chain(std::iter::once(&sig.ret)) {
        if t.depth() > MAX_TYPE_DEPTH {
            return err(format!("type nests deeper than {MAX_TYPE_DEPTH} levels"));
        }
    }
    Ok(())
}

impl FunctionBuilder {
    /// A builder for an existing function, positioned at its entry block.
    pub fn resume(func: FuncId) -> Self {
        FunctionBuilder {
            func,
            current: Some(Block(0)),
            vars: Vec::new(),
            defs: HashMap::new(),
            var_params: HashMap::new(),
            pending: Vec::new(),
            finished: false,
        }
    }

    fn function<'m>(&self, module: &'m mut Module) -> Result<&'m mut Function, UsageError> {
        match module.functions.get_mut(self.func.index()) {
            Some(f) => Ok(f),
            None => err("the builder's function no longer exists"),
        }
    }

    fn check_open(&self) -> Result<(), UsageError> {
        if self.finished {
            return err("this function is finished; no more code can be added to it");
        }
        Ok(())
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    pub fn current_block(&self) -> Option<Block> {
        self.current
    }

    pub fn params(&self, module: &Module) -> Vec<Value> {
        module.functions[self.func.index()].blocks[0].params.clone()
    }

    pub fn create_block(&mut self, module: &mut Module, params: &[Type]) -> Result<Block, UsageError> {
        self.check_open()?;
        let f = self.function(module)?;
        let b = f.add_block();
        for t in params {
            if t.is_void() {
                return err("a block parameter cannot have type void");
            }
            f.add_block_param(b, t.clone());
        }
        Ok(b)
    }

    /// Continue adding instructions at the end of `block`.
    pub fn switch_to(&mut self, module: &Module, block: Block) -> Result<(), UsageError> {
        self.check_open()?;
        let f = &module.functions[self.func.index()];
        if block.index() >= f.blocks.len() {
            return err(format!("{block} does not exist in function '{}'", f.name));
        }
        self.current = Some(block);
        Ok(())
    }

    pub fn check_value(&self, module: &Module, v: Value) -> Result<(), UsageError> {
        let f = &module.functions[self.func.index()];
        if v.index() >= f.values.len() {
            return err(format!("{v} is not a value of function '{}'", f.name));
        }
        Ok(())
    }

    pub fn check_block(&self, module: &Module, b: Block) -> Result<(), UsageError> {
        let f = &module.functions[self.func.index()];
        if b.index() >= f.blocks.len() {
            return err(format!("{b} is not a block of function '{}'", f.name));
        }
        Ok(())
    }

    /// Append an instruction at the current position and return its result.
    ///
    /// Only what is needed to give the result a type is checked here; the
    /// verifier checks everything else with full context.
    pub fn ins(&mut self, module: &mut Module, kind: InstKind) -> Result<Option<Value>, UsageError> {
        self.check_open()?;
        let Some(block) = self.current else {
            return err("no current block: call switch_to(block) first");
        };
        let mut bad = None;
        kind.for_each_operand(|v| {
            if bad.is_none() && self.check_value(module, v).is_err() {
                bad = Some(v);
            }
        });
        if let Some(v) = bad {
            return err(format!(
                "{v} is not a value of function '{}'",
                module.functions[self.func.index()].name
            ));
        }
        for s in kind.successors() {
            self.check_block(module, s.block)?;
        }
        let fname = module.functions[self.func.index()].name.clone();
        if module.functions[self.func.index()].terminator(block).is_some() {
            return err(format!(
                "{block} of function '{fname}' already ends in a terminator; switch to another block"
            ));
        }
        let ty = {
            let f = &module.functions[self.func.index()];
            module.result_type(f, &kind)
        };
        let Some(ty) = ty else {
            return err(format!("cannot type this instruction in function '{fname}': {}", describe(&kind)));
        };
        if ty.depth() > MAX_TYPE_DEPTH {
            return err(format!("type nests deeper than {MAX_TYPE_DEPTH} levels"));
        }
        let f = self.function(module)?;
        let (_, result) = f.push_inst(block, kind, Some(ty));
        Ok(result)
    }

    pub fn constant(&mut self, module: &mut Module, ty: Scalar, bits: u64) -> Result<Value, UsageError> {
        let v = self.ins(module, InstKind::Const { ty, bits: ty.canon(bits) })?;
        Ok(v.expect("constants have a value"))
    }

    // ----- variables -----

    pub fn declare_var(&mut self, name: &str, ty: Type) -> Result<Var, UsageError> {
        self.check_open()?;
        if ty.is_void() {
            return err(format!("variable '{name}' cannot have type void"));
        }
        self.vars.push(VarInfo { name: name.to_string(), ty });
        Ok(Var(self.vars.len() as u32 - 1))
    }

    pub fn var_type(&self, var: Var) -> Option<&Type> {
        self.vars.get(var.0 as usize).map(|v| &v.ty)
    }

    pub fn def_var(&mut self, module: &Module, var: Var, value: Value) -> Result<(), UsageError> {
        self.check_open()?;
        let info = self.vars.get(var.0 as usize).ok_or_else(|| UsageError("unknown variable".into()))?;
        self.check_value(module, value)?;
        let vty = module.functions[self.func.index()].value_type(value);
        if *vty != info.ty {
            return err(format!(
                "variable '{}' has type {}, cannot assign a value of type {vty}",
                info.name, info.ty
            ));
        }
        let Some(block) = self.current else {
            return err("no current block: call switch_to(block) first");
        };
        self.defs.insert((block, var), value);
        Ok(())
    }

    pub fn use_var(&mut self, module: &mut Module, var: Var) -> Result<Value, UsageError> {
        self.check_open()?;
        let Some(block) = self.current else {
            return err("no current block: call switch_to(block) first");
        };
        self.value_at_end(module, block, var)
    }

    /// The variable's value at the (current) end of `block`: its last
    /// assignment there, or a block parameter standing for the incoming value.
    fn value_at_end(&mut self, module: &mut Module, block: Block, var: Var) -> Result<Value, UsageError> {
        if let Some(v) = self.defs.get(&(block, var)) {
            return Ok(*v);
        }
        if let Some(v) = self.var_params.get(&(block, var)) {
            return Ok(*v);
        }
        let info =
            self.vars.get(var.0 as usize).ok_or_else(|| UsageError("unknown variable".into()))?.clone();
        if block == Block(0) {
            let fname = &module.functions[self.func.index()].name;
            return err(format!(
                "variable '{}' is read in function '{fname}' on a path where it was never assigned",
                info.name
            ));
        }
        let p = self.function(module)?.add_block_param(block, info.ty);
        self.var_params.insert((block, var), p);
        self.pending.push((block, var, p));
        Ok(p)
    }

    /// Wire up every variable parameter to its incoming values. Call once
    /// after the last instruction; the builder accepts no code afterwards.
    pub fn finish(&mut self, module: &mut Module) -> Result<(), UsageError> {
        if self.finished {
            return Ok(());
        }
        // (param) -> value from each predecessor block
        let mut incoming: HashMap<Value, HashMap<Block, Value>> = HashMap::new();
        let mut queue: VecDeque<(Block, Var, Value)> = self.pending.drain(..).collect();
        let mut done = 0usize;
        while let Some((block, var, param)) = queue.pop_front() {
            let preds = module.functions[self.func.index()].predecessors()[block.index()].clone();
            let mut from = HashMap::new();
            for p in preds {
                if from.contains_key(&p) {
                    continue;
                }
                let before = self.pending.len();
                let v = self.value_at_end(module, p, var)?;
                queue.extend(self.pending.drain(before..));
                from.insert(p, v);
            }
            incoming.insert(param, from);
            done += 1;
        }
        let _ = done;
        let var_param_set: HashMap<Value, ()> = incoming.keys().map(|v| (*v, ())).collect();
        let f = self.function(module)?;
        let param_lists: Vec<Vec<Value>> = f.blocks.iter().map(|b| b.params.clone()).collect();
        for b in 0..f.blocks.len() {
            let Some(&last) = f.blocks[b].insts.last() else { continue };
            let pred = Block(b as u32);
            let term = &mut f.insts[last.index()].kind;
            for call in term.successors_mut() {
                let params = &param_lists[call.block.index()];
                if !params.iter().any(|p| var_param_set.contains_key(p)) {
                    continue;
                }
                let mut user_args = call.args.iter().copied();
                let mut args = Vec::with_capacity(params.len());
                for p in params {
                    match incoming.get(p) {
                        Some(from) => args.push(from[&pred]),
                        None => args.extend(user_args.next()),
                    }
                }
                args.extend(user_args); // surplus user args: left for the verifier to report
                call.args = args;
            }
        }
        self.finished = true;
        Ok(())
    }
}

fn describe(kind: &InstKind) -> String {
    let s = format!("{kind:?}");
    s.split([' ', '{']).next().unwrap_or("instruction").to_string()
}

/// Misuse of the builder or of an entry point (wrong names, arity, kinds of
/// values), reported before anything runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

#[cfg(test)]
mod tests {
    use super::*;

    /// sum = 0; i = 0; while i < n { sum += i; i += 1 }; return sum
    #[test]
    fn variables_become_block_params() {
        let mut m = Module::new();
        let mut b = declare_function(&mut m, "sum", Signature::new(vec![Type::I64], Type::I64)).unwrap();
        let n = b.params(&m)[0];
        let sum = b.declare_var("sum", Type::I64).unwrap();
        let i = b.declare_var("i", Type::I64).unwrap();
        let zero = b.constant(&mut m, Scalar::I64, 0).unwrap();
        b.def_var(&m, sum, zero).unwrap();
        b.def_var(&m, i, zero).unwrap();
        let head = b.create_block(&mut m, &[]).unwrap();
        let body = b.create_block(&mut m, &[]).unwrap();
        let exit = b.create_block(&mut m, &[]).unwrap();
        b.ins(&mut m, InstKind::Jump { dest: BlockCall { block: head, args: vec![] } }).unwrap();
        b.switch_to(&m, head).unwrap();
        let iv = b.use_var(&mut m, i).unwrap();
        let c = b.ins(&mut m, InstKind::Cmp { op: CmpOp::Lt, lhs: iv, rhs: n }).unwrap().unwrap();
        b.ins(
            &mut m,
            InstKind::Brif {
                cond: c,
                then_dest: BlockCall { block: body, args: vec![] },
                else_dest: BlockCall { block: exit, args: vec![] },
            },
        )
        .unwrap();
        b.switch_to(&m, body).unwrap();
        let s = b.use_var(&mut m, sum).unwrap();
        let iv = b.use_var(&mut m, i).unwrap();
        let s2 = b.ins(&mut m, InstKind::Binary { op: BinOp::Add, lhs: s, rhs: iv }).unwrap().unwrap();
        b.def_var(&m, sum, s2).unwrap();
        let one = b.constant(&mut m, Scalar::I64, 1).unwrap();
        let i2 = b.ins(&mut m, InstKind::Binary { op: BinOp::Add, lhs: iv, rhs: one }).unwrap().unwrap();
        b.def_var(&m, i, i2).unwrap();
        b.ins(&mut m, InstKind::Jump { dest: BlockCall { block: head, args: vec![] } }).unwrap();
        b.switch_to(&m, exit).unwrap();
        let s = b.use_var(&mut m, sum).unwrap();
        b.ins(&mut m, InstKind::Return { value: Some(s) }).unwrap();
        b.finish(&mut m).unwrap();
        let f = &m.functions[0];
        // head gets params for i and sum, body/exit get theirs from head.
        assert_eq!(f.blocks[head.index()].params.len(), 2);
        for b in f.block_ids() {
            if let Some(t) = f.terminator(b) {
                for s in t.successors() {
                    assert_eq!(s.args.len(), f.blocks[s.block.index()].params.len());
                }
            }
        }
    }

    #[test]
    fn reading_unassigned_variable_is_an_error() {
        let mut m = Module::new();
        let mut b = declare_function(&mut m, "f", Signature::new(vec![], Type::I64)).unwrap();
        let x = b.declare_var("x", Type::I64).unwrap();
        let e = b.use_var(&mut m, x).unwrap_err();
        assert!(e.0.contains("never assigned"), "{e}");
    }

    #[test]
    fn no_code_after_terminator() {
        let mut m = Module::new();
        let mut b = declare_function(&mut m, "f", Signature::new(vec![], Type::Void)).unwrap();
        b.ins(&mut m, InstKind::Return { value: None }).unwrap();
        assert!(b.ins(&mut m, InstKind::Trap).is_err());
    }
}
