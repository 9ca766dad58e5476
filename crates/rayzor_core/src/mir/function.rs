//! Modules, functions, blocks, values and instructions.
//!
//! A function is a list of blocks; block 0 is the entry and its parameters
//! are the function's parameters. Values are in SSA form; instead of phi
//! nodes, blocks take parameters and every branch passes arguments (as in
//! Cranelift). Every block ends in exactly one terminator.

use super::types::{Scalar, Signature, Type};
use std::fmt;

macro_rules! entity {
    ($name:ident, $prefix:literal) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub u32);
        impl $name {
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!($prefix, "{}"), self.0)
            }
        }
    };
}

entity!(Value, "v");
entity!(Block, "block");
entity!(Inst, "inst");
entity!(FuncId, "fn");
entity!(ExternId, "extern");
entity!(DataId, "data");

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    /// Integer division traps on zero and on signed `MIN / -1`.
    Div,
    /// Integer remainder traps on zero; signed `MIN % -1` is 0.
    Rem,
    And,
    Or,
    Xor,
    /// Shift amounts are taken modulo the bit width.
    Shl,
    /// Arithmetic for signed types, logical for unsigned ones.
    Shr,
    Rotl,
    Rotr,
    /// For floats: IEEE 754-2019 `minimum` (NaN if either is NaN, -0 < +0).
    Min,
    Max,
    /// Floats only: the magnitude of `lhs` with the sign bit of `rhs` (a bit
    /// operation: NaN payloads kept).
    Copysign,
}

impl BinOp {
    pub const ALL: [BinOp; 15] = [
        BinOp::Add,
        BinOp::Sub,
        BinOp::Mul,
        BinOp::Div,
        BinOp::Rem,
        BinOp::And,
        BinOp::Or,
        BinOp::Xor,
        BinOp::Shl,
        BinOp::Shr,
        BinOp::Rotl,
        BinOp::Rotr,
        BinOp::Min,
        BinOp::Max,
        BinOp::Copysign,
    ];

    pub fn name(self) -> &'static str {
        match self {
            BinOp::Add => "add",
            BinOp::Sub => "sub",
            BinOp::Mul => "mul",
            BinOp::Div => "div",
            BinOp::Rem => "rem",
            BinOp::And => "and",
            BinOp::Or => "or",
            BinOp::Xor => "xor",
            BinOp::Shl => "shl",
            BinOp::Shr => "shr",
            BinOp::Rotl => "rotl",
            BinOp::Rotr => "rotr",
            BinOp::Min => "min",
            BinOp::Max => "max",
            BinOp::Copysign => "copysign",
        }
    }

    /// Which scalar operand types the operation accepts.
    pub fn accepts(self, s: Scalar) -> bool {
        match self {
            BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::Rem | BinOp::Min | BinOp::Max => {
                s.is_int() || s.is_float()
            }
            BinOp::And | BinOp::Or | BinOp::Xor => s.is_int() || s == Scalar::Bool,
            BinOp::Shl | BinOp::Shr | BinOp::Rotl | BinOp::Rotr => s.is_int(),
            BinOp::Copysign => s.is_float(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnOp {
    /// Wrapping negation for integers, sign flip for floats.
    Neg,
    /// Bitwise not for integers, logical not for bools.
    Not,
    /// Wrapping for integers (`abs(MIN) == MIN`), sign clear for floats.
    Abs,
    /// Floats only.
    Sqrt,
    /// Integers only: leading zeros, trailing zeros, set bits (result has the operand's type).
    Clz,
    Ctz,
    Popcnt,
    /// Floats only: round to an integral value toward -inf, toward +inf,
    /// toward zero, and to nearest with ties to even (IEEE 754
    /// `roundToIntegral*`; zeros, infinities and NaNs are returned as they are,
    /// a NaN quieted).
    Floor,
    Ceil,
    Trunc,
    Nearest,
}

impl UnOp {
    pub const ALL: [UnOp; 11] = [
        UnOp::Neg,
        UnOp::Not,
        UnOp::Abs,
        UnOp::Sqrt,
        UnOp::Clz,
        UnOp::Ctz,
        UnOp::Popcnt,
        UnOp::Floor,
        UnOp::Ceil,
        UnOp::Trunc,
        UnOp::Nearest,
    ];

    pub fn name(self) -> &'static str {
        match self {
            UnOp::Neg => "neg",
            UnOp::Not => "not",
            UnOp::Abs => "abs",
            UnOp::Sqrt => "sqrt",
            UnOp::Clz => "clz",
            UnOp::Ctz => "ctz",
            UnOp::Popcnt => "popcnt",
            UnOp::Floor => "floor",
            UnOp::Ceil => "ceil",
            UnOp::Trunc => "trunc",
            UnOp::Nearest => "nearest",
        }
    }

    pub fn accepts(self, s: Scalar) -> bool {
        match self {
            UnOp::Neg | UnOp::Abs => s.is_int() || s.is_float(),
            UnOp::Not => s.is_int() || s == Scalar::Bool,
            UnOp::Sqrt | UnOp::Floor | UnOp::Ceil | UnOp::Trunc | UnOp::Nearest => s.is_float(),
            UnOp::Clz | UnOp::Ctz | UnOp::Popcnt => s.is_int(),
        }
    }
}

/// Comparisons give `bool`. Signedness comes from the operand type. Float
/// comparisons are ordered (false if either side is NaN) except `ne`, which
/// is true when either side is NaN.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

impl CmpOp {
    pub const ALL: [CmpOp; 6] = [CmpOp::Eq, CmpOp::Ne, CmpOp::Lt, CmpOp::Le, CmpOp::Gt, CmpOp::Ge];

    pub fn name(self) -> &'static str {
        match self {
            CmpOp::Eq => "eq",
            CmpOp::Ne => "ne",
            CmpOp::Lt => "lt",
            CmpOp::Le => "le",
            CmpOp::Gt => "gt",
            CmpOp::Ge => "ge",
        }
    }
}

/// Why a program trapped. Every tier reports the same kind for the same program.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TrapKind {
    DivisionByZero,
    /// Signed `MIN / -1`.
    IntegerOverflow,
    /// The `trap` instruction.
    User,
    Unreachable,
    /// Call depth exceeded `MAX_CALL_DEPTH` (or the native stack ran low).
    StackOverflow,
    /// `union.get`/`any.get` of a variant or type the value does not hold.
    BadTag,
    /// A memory access the runtime could prove invalid (null page, freed or
    /// out-of-bounds interpreter allocation).
    MemoryFault,
    /// `alloc` could not get memory.
    OutOfMemory,
    /// The call was interrupted from outside: SIGINT, or `Jit::interrupt`
    /// (see `codegen::interrupt`). Not a property of the program: no program
    /// traps this way by itself.
    Interrupted,
}

impl TrapKind {
    pub const ALL: [TrapKind; 9] = [
        TrapKind::DivisionByZero,
        TrapKind::IntegerOverflow,
        TrapKind::User,
        TrapKind::Unreachable,
        TrapKind::StackOverflow,
        TrapKind::BadTag,
        TrapKind::MemoryFault,
        TrapKind::OutOfMemory,
        TrapKind::Interrupted,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TrapKind::DivisionByZero => "division_by_zero",
            TrapKind::IntegerOverflow => "integer_overflow",
            TrapKind::User => "user",
            TrapKind::Unreachable => "unreachable",
            TrapKind::StackOverflow => "stack_overflow",
            TrapKind::BadTag => "bad_tag",
            TrapKind::MemoryFault => "memory_fault",
            TrapKind::OutOfMemory => "out_of_memory",
            TrapKind::Interrupted => "interrupted",
        }
    }

    pub fn code(self) -> u32 {
        TrapKind::ALL.iter().position(|k| *k == self).unwrap() as u32 + 1
    }

    pub fn from_code(code: u32) -> Option<TrapKind> {
        TrapKind::ALL.get((code as usize).checked_sub(1)?).copied()
    }
}

impl fmt::Display for TrapKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Calls deeper than this trap with `stack_overflow` in every tier.
pub const MAX_CALL_DEPTH: u32 = 10_000;

/// A branch target with the arguments for its block parameters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BlockCall {
    pub block: Block,
    pub args: Vec<Value>,
}

/// What the callee of a direct call is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Callee {
    Func(FuncId),
    Extern(ExternId),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum InstKind {
    /// A scalar constant. `bits` is in canonical form for `ty`
    /// (see `Scalar::canon`); floats are given by their IEEE bits.
    Const {
        ty: Scalar,
        bits: u64,
    },
    /// The all-zero value of any non-void type (aggregates included).
    Zero {
        ty: Type,
    },
    Binary {
        op: BinOp,
        lhs: Value,
        rhs: Value,
    },
    Unary {
        op: UnOp,
        arg: Value,
    },
    Cmp {
        op: CmpOp,
        lhs: Value,
        rhs: Value,
    },
    /// `a * b + c` with a single rounding (IEEE 754 `fusedMultiplyAdd`),
    /// floats only. Only this instruction fuses: `mul` then `add` never does.
    Fma {
        a: Value,
        b: Value,
        c: Value,
    },
    /// `cond ? if_true : if_false`, any type.
    Select {
        cond: Value,
        if_true: Value,
        if_false: Value,
    },
    /// Conversions between scalars: int widen (by source signedness) /
    /// narrow (truncate); int <-> float (float to int saturates, NaN gives 0);
    /// float widen/narrow (round to nearest even); bool -> number (0/1);
    /// number -> bool (`!= 0`); ptr <-> 64-bit int.
    Cast {
        to: Scalar,
        arg: Value,
    },
    /// Reinterpret the bits of a scalar as another scalar of the same width.
    Bitcast {
        to: Scalar,
        arg: Value,
    },
    /// Load a value of any type (aggregates leaf by leaf) from `ptr`.
    Load {
        ty: Type,
        ptr: Value,
    },
    Store {
        ptr: Value,
        value: Value,
    },
    /// Heap allocation of `count` (u64) zeroed elements of `ty`; result `ptr`.
    Alloc {
        ty: Type,
        count: Value,
    },
    Free {
        ptr: Value,
    },
    /// `memmove(dst, src, len)`, `len` is u64.
    MemCopy {
        dst: Value,
        src: Value,
        len: Value,
    },
    /// `memset(dst, byte, len)`, `byte` is u8, `len` is u64.
    MemSet {
        dst: Value,
        byte: Value,
        len: Value,
    },
    /// `ptr + offset_of(ty, field)` where `ty` is a struct.
    FieldAddr {
        ty: Type,
        ptr: Value,
        field: u32,
    },
    /// `ptr + index * size_of(elem)`; `index` is any integer (sign-extended if signed).
    ElemAddr {
        elem: Type,
        ptr: Value,
        index: Value,
    },
    /// Field of a struct, element of an array, `0`=ptr / `1`=len of a slice or str.
    ExtractValue {
        agg: Value,
        index: u32,
    },
    InsertValue {
        agg: Value,
        index: u32,
        value: Value,
    },
    /// A union value holding `variant` with `value`.
    UnionMake {
        ty: Type,
        variant: u32,
        value: Value,
    },
    /// The variant index (u32) a union value holds.
    UnionTag {
        arg: Value,
    },
    /// The payload of `variant`; traps `bad_tag` if the union holds another.
    UnionGet {
        variant: u32,
        arg: Value,
    },
    /// Box a scalar in an `any`.
    AnyMake {
        arg: Value,
    },
    /// The type tag (u32) of an `any`: `Scalar::any_tag`, 0 for the zero value.
    AnyTag {
        arg: Value,
    },
    /// Unbox; traps `bad_tag` if the `any` holds another type.
    AnyGet {
        ty: Scalar,
        arg: Value,
    },
    /// A `str` value pointing to static module data.
    StrConst {
        data: DataId,
    },
    /// The address of a function (`fn` type) or extern function (`extern fn` type).
    FuncAddr {
        callee: Callee,
    },
    Call {
        callee: Callee,
        args: Vec<Value>,
    },
    CallIndirect {
        callee: Value,
        args: Vec<Value>,
    },
    /// Traps `stack_overflow` exactly when a `call` made here would (the call
    /// depth limit is reached). Left where an inlined call was, so inlining
    /// keeps the depth limit exact.
    DepthCheck,

    // ----- terminators -----
    Jump {
        dest: BlockCall,
    },
    Brif {
        cond: Value,
        then_dest: BlockCall,
        else_dest: BlockCall,
    },
    /// Jump to the case whose constant equals `value` (an integer), else `default`.
    Switch {
        value: Value,
        cases: Vec<(u64, BlockCall)>,
        default: BlockCall,
    },
    Return {
        value: Option<Value>,
    },
    Trap,
    Unreachable,
}

impl InstKind {
    pub fn is_terminator(&self) -> bool {
        matches!(
            self,
            InstKind::Jump { .. }
                | InstKind::Brif { .. }
                | InstKind::Switch { .. }
                | InstKind::Return { .. }
                | InstKind::Trap
                | InstKind::Unreachable
        )
    }

    /// Every value operand, branch arguments included, in a fixed order.
    pub fn operands(&self) -> Vec<Value> {
        let mut out = Vec::new();
        self.for_each_operand(|v| out.push(v));
        out
    }

    pub fn for_each_operand(&self, mut f: impl FnMut(Value)) {
        use InstKind::*;
        match self {
            Const { .. } | Zero { .. } | StrConst { .. } | FuncAddr { .. } | Trap | Unreachable => {}
            DepthCheck => {}
            Binary { lhs, rhs, .. } | Cmp { lhs, rhs, .. } => {
                f(*lhs);
                f(*rhs)
            }
            Unary { arg, .. }
            | Cast { arg, .. }
            | Bitcast { arg, .. }
            | UnionTag { arg }
            | UnionGet { arg, .. }
            | AnyMake { arg }
            | AnyTag { arg }
            | AnyGet { arg, .. } => f(*arg),
            Select { cond, if_true, if_false } => {
                f(*cond);
                f(*if_true);
                f(*if_false)
            }
            Fma { a, b, c } => {
                f(*a);
                f(*b);
                f(*c)
            }
            Load { ptr, .. } | Free { ptr } => f(*ptr),
            Store { ptr, value } => {
                f(*ptr);
                f(*value)
            }
            Alloc { count, .. } => f(*count),
            MemCopy { dst, src, len } => {
                f(*dst);
                f(*src);
                f(*len)
            }
            MemSet { dst, byte, len } => {
                f(*dst);
                f(*byte);
                f(*len)
            }
            FieldAddr { ptr, .. } => f(*ptr),
            ElemAddr { ptr, index, .. } => {
                f(*ptr);
                f(*index)
            }
            ExtractValue { agg, .. } => f(*agg),
            InsertValue { agg, value, .. } => {
                f(*agg);
                f(*value)
            }
            UnionMake { value, .. } => f(*value),
            Call { args, .. } => args.iter().copied().for_each(f),
            CallIndirect { callee, args } => {
                f(*callee);
                args.iter().copied().for_each(f)
            }
            Jump { dest } => dest.args.iter().copied().for_each(f),
            Brif { cond, then_dest, else_dest } => {
                f(*cond);
                then_dest.args.iter().copied().for_each(&mut f);
                else_dest.args.iter().copied().for_each(f)
            }
            Switch { value, cases, default } => {
                f(*value);
                for (_, c) in cases {
                    c.args.iter().copied().for_each(&mut f);
                }
                default.args.iter().copied().for_each(f)
            }
            Return { value } => {
                if let Some(v) = value {
                    f(*v)
                }
            }
        }
    }

    /// Rewrite every value operand in place.
    pub fn map_operands(&mut self, mut f: impl FnMut(Value) -> Value) {
        use InstKind::*;
        let g = &mut f;
        match self {
            Const { .. } | Zero { .. } | StrConst { .. } | FuncAddr { .. } | Trap | Unreachable => {}
            DepthCheck => {}
            Binary { lhs, rhs, .. } | Cmp { lhs, rhs, .. } => {
                *lhs = g(*lhs);
                *rhs = g(*rhs)
            }
            Unary { arg, .. }
            | Cast { arg, .. }
            | Bitcast { arg, .. }
            | UnionTag { arg }
            | UnionGet { arg, .. }
            | AnyMake { arg }
            | AnyTag { arg }
            | AnyGet { arg, .. } => *arg = g(*arg),
            Select { cond, if_true, if_false } => {
                *cond = g(*cond);
                *if_true = g(*if_true);
                *if_false = g(*if_false)
            }
            Fma { a, b, c } => {
                *a = g(*a);
                *b = g(*b);
                *c = g(*c)
            }
            Load { ptr, .. } | Free { ptr } => *ptr = g(*ptr),
            Store { ptr, value } => {
                *ptr = g(*ptr);
                *value = g(*value)
            }
            Alloc { count, .. } => *count = g(*count),
            MemCopy { dst, src, len } => {
                *dst = g(*dst);
                *src = g(*src);
                *len = g(*len)
            }
            MemSet { dst, byte, len } => {
                *dst = g(*dst);
                *byte = g(*byte);
                *len = g(*len)
            }
            FieldAddr { ptr, .. } => *ptr = g(*ptr),
            ElemAddr { ptr, index, .. } => {
                *ptr = g(*ptr);
                *index = g(*index)
            }
            ExtractValue { agg, .. } => *agg = g(*agg),
            InsertValue { agg, value, .. } => {
                *agg = g(*agg);
                *value = g(*value)
            }
            UnionMake { value, .. } => *value = g(*value),
            Call { args, .. } => args.iter_mut().for_each(|a| *a = g(*a)),
            CallIndirect { callee, args } => {
                *callee = g(*callee);
                args.iter_mut().for_each(|a| *a = g(*a))
            }
            Jump { dest } => dest.args.iter_mut().for_each(|a| *a = g(*a)),
            Brif { cond, then_dest, else_dest } => {
                *cond = g(*cond);
                then_dest.args.iter_mut().for_each(|a| *a = g(*a));
                else_dest.args.iter_mut().for_each(|a| *a = g(*a))
            }
            Switch { value, cases, default } => {
                *value = g(*value);
                for (_, c) in cases.iter_mut() {
                    c.args.iter_mut().for_each(|a| *a = g(*a));
                }
                default.args.iter_mut().for_each(|a| *a = g(*a))
            }
            Return { value } => {
                if let Some(v) = value {
                    *v = g(*v)
                }
            }
        }
    }

    /// The branch targets of a terminator.
    pub fn successors(&self) -> Vec<&BlockCall> {
        match self {
            InstKind::Jump { dest } => vec![dest],
            InstKind::Brif { then_dest, else_dest, .. } => vec![then_dest, else_dest],
            InstKind::Switch { cases, default, .. } => {
                cases.iter().map(|(_, c)| c).chain(std::iter::once(default)).collect()
            }
            _ => Vec::new(),
        }
    }

    /// Successor `k` (in `successors()` order), without collecting them all.
    pub fn successor(&self, k: usize) -> Option<&BlockCall> {
        match self {
            InstKind::Jump { dest } => (k == 0).then_some(dest),
            InstKind::Brif { then_dest, else_dest, .. } => [then_dest, else_dest].get(k).copied(),
            InstKind::Switch { cases, default, .. } => match cases.get(k) {
                Some((_, c)) => Some(c),
                None => (k == cases.len()).then_some(default),
            },
            _ => None,
        }
    }

    pub fn successors_mut(&mut self) -> Vec<&mut BlockCall> {
        match self {
            InstKind::Jump { dest } => vec![dest],
            InstKind::Brif { then_dest, else_dest, .. } => vec![then_dest, else_dest],
            InstKind::Switch { cases, default, .. } => {
                cases.iter_mut().map(|(_, c)| c).chain(std::iter::once(default)).collect()
            }
            _ => Vec::new(),
        }
    }
}

/// Where a value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ValueDef {
    Param(Block, u32),
    Result(Inst),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ValueData {
    pub ty: Type,
    pub def: ValueDef,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct InstData {
    pub kind: InstKind,
    /// The value this instruction defines, if it defines one.
    pub result: Option<Value>,
    /// The module function this instruction came from when inlining moved it
    /// into another one (None: the function that holds it). Traps report it.
    pub origin: Option<FuncId>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct BlockData {
    pub params: Vec<Value>,
    /// In order; the last one should be a terminator (the verifier checks).
    pub insts: Vec<Inst>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Function {
    pub name: String,
    pub sig: Signature,
    pub blocks: Vec<BlockData>,
    pub insts: Vec<InstData>,
    pub values: Vec<ValueData>,
}

impl Function {
    /// A function with an entry block whose parameters match `sig`.
    pub fn new(name: impl Into<String>, sig: Signature) -> Self {
        let mut f =
            Function { name: name.into(), sig, blocks: Vec::new(), insts: Vec::new(), values: Vec::new() };
        let entry = f.add_block();
        for ty in f.sig.params.clone() {
            f.add_block_param(entry, ty);
        }
        f
    }

    pub fn entry(&self) -> Block {
        Block(0)
    }

    pub fn add_block(&mut self) -> Block {
        self.blocks.push(BlockData::default());
        Block(self.blocks.len() as u32 - 1)
    }

    pub fn add_block_param(&mut self, block: Block, ty: Type) -> Value {
        let idx = self.blocks[block.index()].params.len() as u32;
        let v = Value(self.values.len() as u32);
        self.values.push(ValueData { ty, def: ValueDef::Param(block, idx) });
        self.blocks[block.index()].params.push(v);
        v
    }

    /// Append an instruction to `block`; `result_ty` is the type of the value
    /// it defines (`None` or `Some(Type::Void)` for none).
    pub fn push_inst(
        &mut self,
        block: Block,
        kind: InstKind,
        result_ty: Option<Type>,
    ) -> (Inst, Option<Value>) {
        let inst = Inst(self.insts.len() as u32);
        let result = match result_ty {
            Some(ty) if !ty.is_void() => {
                let v = Value(self.values.len() as u32);
                self.values.push(ValueData { ty, def: ValueDef::Result(inst) });
                Some(v)
            }
            _ => None,
        };
        self.insts.push(InstData { kind, result, origin: None });
        self.blocks[block.index()].insts.push(inst);
        (inst, result)
    }

    pub fn value_type(&self, v: Value) -> &Type {
        &self.values[v.index()].ty
    }

    pub fn inst(&self, i: Inst) -> &InstData {
        &self.insts[i.index()]
    }

    pub fn terminator(&self, b: Block) -> Option<&InstKind> {
        let last = *self.blocks[b.index()].insts.last()?;
        let k = &self.insts[last.index()].kind;
        k.is_terminator().then_some(k)
    }

    pub fn block_ids(&self) -> impl Iterator<Item = Block> {
        (0..self.blocks.len() as u32).map(Block)
    }

    /// Reverse postorder of the blocks reachable from the entry (dominators first).
    pub fn reverse_postorder(&self) -> Vec<Block> {
        let func = self;
        let n = func.blocks.len();
        let mut seen = vec![false; n];
        let mut post = Vec::with_capacity(n);
        // Each block's successors are collected once, when it is first pushed: a
        // `switch` with k cases is visited k times, so re-collecting them would be quadratic.
        let succs_of = |b: Block| -> Vec<Block> {
            func.terminator(b).map(|t| t.successors().iter().map(|c| c.block).collect()).unwrap_or_default()
        };
        let mut stack: Vec<(Block, Vec<Block>, usize)> = vec![(Block(0), succs_of(Block(0)), 0)];
        seen[0] = true;
        while let Some((b, succs, i)) = stack.last_mut() {
            let Some(&s) = succs.get(*i) else {
                post.push(*b);
                stack.pop();
                continue;
            };
            *i += 1;
            if s.index() < n && !seen[s.index()] {
                seen[s.index()] = true;
                stack.push((s, succs_of(s), 0));
            }
        }
        post.reverse();
        post
    }

    /// Predecessor lists, indexed by block (one entry per edge).
    pub fn predecessors(&self) -> Vec<Vec<Block>> {
        let mut preds = vec![Vec::new(); self.blocks.len()];
        for b in self.block_ids() {
            if let Some(t) = self.terminator(b) {
                for s in t.successors() {
                    if s.block.index() < preds.len() {
                        preds[s.block.index()].push(b);
                    }
                }
            }
        }
        preds
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ExternFunc {
    pub name: String,
    pub sig: Signature,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Module {
    pub functions: Vec<Function>,
    pub externs: Vec<ExternFunc>,
    /// Static data (string literals).
    pub data: Vec<Vec<u8>>,
    /// Name lookup tables, kept in step with `functions`/`externs` lazily
    /// (names are never changed once pushed). Not part of the module's value.
    pub names: NameIndex,
}

/// A cache from names to positions, so lookups by name (every `call` built by
/// name, every duplicate check on declaration) are O(1) rather than a scan.
/// Entries are appended as the vectors grow; a mismatch on a hit, or vectors
/// that shrank, rebuild it. Clones start empty; it never affects equality.
#[derive(Default)]
pub struct NameIndex(parking_lot::Mutex<NameMaps>);

#[derive(Default)]
struct NameMaps {
    funcs: std::collections::HashMap<String, u32>,
    nfuncs: usize,
    externs: std::collections::HashMap<String, u32>,
    nexterns: usize,
}

/// Look `name` up in `map`, which indexes the first `*seen` of the `len`
/// names `name_at(0..len)`, first extending it to all of them.
fn index_lookup<'a>(
    map: &mut std::collections::HashMap<String, u32>,
    seen: &mut usize,
    len: usize,
    name_at: impl Fn(usize) -> &'a str,
    name: &str,
) -> Option<u32> {
    if *seen > len {
        map.clear();
        *seen = 0;
    }
    for i in *seen..len {
        map.entry(name_at(i).to_string()).or_insert(i as u32);
    }
    *seen = len;
    let hit = *map.get(name)?;
    if name_at(hit as usize) == name {
        return Some(hit);
    }
    // Stale (an element was replaced): rebuild from scratch.
    map.clear();
    for i in 0..len {
        map.entry(name_at(i).to_string()).or_insert(i as u32);
    }
    map.get(name).copied()
}

impl Clone for NameIndex {
    fn clone(&self) -> Self {
        NameIndex::default()
    }
}

impl PartialEq for NameIndex {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for NameIndex {}

impl std::hash::Hash for NameIndex {
    fn hash<H: std::hash::Hasher>(&self, _: &mut H) {}
}

impl fmt::Debug for NameIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NameIndex")
    }
}

impl Module {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn func_by_name(&self, name: &str) -> Option<FuncId> {
        let mut g = self.names.0.lock();
        let NameMaps { funcs, nfuncs, .. } = &mut *g;
        let fs = &self.functions;
        index_lookup(funcs, nfuncs, fs.len(), |i| fs[i].name.as_str(), name).map(FuncId)
    }

    pub fn extern_by_name(&self, name: &str) -> Option<ExternId> {
        let mut g = self.names.0.lock();
        let NameMaps { externs, nexterns, .. } = &mut *g;
        let es = &self.externs;
        index_lookup(externs, nexterns, es.len(), |i| es[i].name.as_str(), name).map(ExternId)
    }

    pub fn func(&self, id: FuncId) -> &Function {
        &self.functions[id.index()]
    }

    /// Add static bytes, reusing an identical existing entry.
    pub fn add_data(&mut self, bytes: &[u8]) -> DataId {
        if let Some(i) = self.data.iter().position(|d| d == bytes) {
            return DataId(i as u32);
        }
        self.data.push(bytes.to_vec());
        DataId(self.data.len() as u32 - 1)
    }

    pub fn callee_sig(&self, callee: Callee) -> Option<&Signature> {
        match callee {
            Callee::Func(f) => self.functions.get(f.index()).map(|f| &f.sig),
            Callee::Extern(e) => self.externs.get(e.index()).map(|e| &e.sig),
        }
    }

    /// The first function that calls extern `e` or takes its address, if any:
    /// an extern no code uses needs no host address.
    pub fn extern_user(&self, e: ExternId) -> Option<&str> {
        let uses = |k: &InstKind| matches!(k, InstKind::Call { callee: Callee::Extern(x), .. } | InstKind::FuncAddr { callee: Callee::Extern(x) } if *x == e);
        self.functions.iter().find(|f| f.insts.iter().any(|i| uses(&i.kind))).map(|f| f.name.as_str())
    }

    pub fn callee_name(&self, callee: Callee) -> Option<&str> {
        match callee {
            Callee::Func(f) => self.functions.get(f.index()).map(|f| f.name.as_str()),
            Callee::Extern(e) => self.externs.get(e.index()).map(|e| e.name.as_str()),
        }
    }
}

impl Module {
    /// The type of the value `kind` defines (`Type::Void` for none), or
    /// `None` when the operands make the instruction ill-typed in a way that
    /// leaves no result type (the verifier says why).
    pub fn result_type(&self, func: &Function, kind: &InstKind) -> Option<Type> {
        use InstKind::*;
        let ty = |v: &Value| func.values.get(v.index()).map(|d| d.ty.clone());
        Some(match kind {
            Const { ty, .. } => Type::Scalar(*ty),
            Zero { ty } => ty.clone(),
            Binary { lhs, .. } => ty(lhs)?,
            Unary { arg, .. } => ty(arg)?,
            Cmp { .. } => Type::BOOL,
            Select { if_true, .. } => ty(if_true)?,
            Fma { a, .. } => ty(a)?,
            Cast { to, .. } | Bitcast { to, .. } => Type::Scalar(*to),
            Load { ty, .. } => ty.clone(),
            Alloc { .. } | FieldAddr { .. } | ElemAddr { .. } => Type::PTR,
            ExtractValue { agg, index } => ty(agg)?.field(*index)?,
            InsertValue { agg, .. } => ty(agg)?,
            UnionMake { ty, .. } => ty.clone(),
            UnionTag { .. } | AnyTag { .. } => Type::U32,
            UnionGet { variant, arg } => match ty(arg)? {
                Type::Union(vs) => vs.get(*variant as usize)?.clone(),
                _ => return None,
            },
            AnyMake { .. } => Type::Any,
            AnyGet { ty, .. } => Type::Scalar(*ty),
            StrConst { .. } => Type::Str,
            FuncAddr { callee } => Type::FnPtr {
                sig: Box::new(self.callee_sig(*callee)?.clone()),
                host: matches!(callee, Callee::Extern(_)),
            },
            Call { callee, .. } => self.callee_sig(*callee)?.ret.clone(),
            CallIndirect { callee, .. } => match ty(callee)? {
                Type::FnPtr { sig, .. } => sig.ret.clone(),
                _ => return None,
            },
            Store { .. } | Free { .. } | MemCopy { .. } | MemSet { .. } | DepthCheck => Type::Void,
            Jump { .. } | Brif { .. } | Switch { .. } | Return { .. } | Trap | Unreachable => Type::Void,
        })
    }
}

#[cfg(test)]
mod name_index_tests {
    use super::*;

    #[test]
    fn lookups_follow_pushes_replacements_and_truncation() {
        let sig = Signature::new(vec![], Type::Void);
        let mut m = Module::new();
        for i in 0..100 {
            m.functions.push(Function::new(format!("f{i}"), sig.clone()));
        }
        assert_eq!(m.func_by_name("f42"), Some(FuncId(42)));
        assert_eq!(m.func_by_name("nope"), None);
        m.functions.push(Function::new("late", sig.clone()));
        assert_eq!(m.func_by_name("late"), Some(FuncId(100)));
        // Replaced in place: the stale entry is detected on the hit and rebuilt.
        m.functions[42] = Function::new("other", sig.clone());
        assert_eq!(m.func_by_name("f42"), None);
        assert_eq!(m.func_by_name("other"), Some(FuncId(42)));
        m.functions.truncate(10);
        assert_eq!(m.func_by_name("late"), None);
        assert_eq!(m.func_by_name("f9"), Some(FuncId(9)));
        // Duplicates resolve to the first, as a scan would.
        m.functions.push(Function::new("f3", sig));
        assert_eq!(m.func_by_name("f3"), Some(FuncId(3)));
        // Clones and equality ignore the cache.
        let c = m.clone();
        assert_eq!(c, m);
        assert_eq!(c.func_by_name("f5"), Some(FuncId(5)));
    }
}
