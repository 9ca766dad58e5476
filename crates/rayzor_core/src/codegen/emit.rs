//! The narrow interface between the one MIR lowering (`codegen::lower`) and
//! each backend. An emitter only emits: every MIR-level decision (trap checks,
//! ABI conversions, union packing, counters, the call protocol, casts) is made
//! by the lowering, which calls these methods.
//!
//! The interface is block-parameter style, like Cranelift's: blocks take typed
//! parameters and jumps pass arguments. The LLVM emitter turns them into phi
//! nodes and incomings. Every operation here is total (defined for all
//! inputs) with the semantics written on it, except where a precondition is
//! stated; the lowering guarantees those preconditions.

/// Native types of values in generated code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ty {
    I8,
    I16,
    I32,
    I64,
    F32,
    F64,
    /// A host address the runtime owns (VmCtx, return areas, code): 64 bits.
    /// Backends that distinguish pointers from integers (LLVM) keep it a
    /// pointer; MIR `ptr` values are `I64`.
    Addr,
}

impl Ty {
    pub fn bits(self) -> u32 {
        match self {
            Ty::I8 => 8,
            Ty::I16 => 16,
            Ty::I32 | Ty::F32 => 32,
            Ty::I64 | Ty::F64 | Ty::Addr => 64,
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, Ty::F32 | Ty::F64)
    }
}

/// Integer operations on two operands of one type. Wrapping; shift and
/// rotate amounts are taken modulo the bit width.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntOp {
    Add,
    Sub,
    Mul,
    And,
    Or,
    Xor,
    Shl,
    /// Arithmetic (sign-filling) right shift.
    SShr,
    /// Logical right shift.
    UShr,
    Rotl,
    Rotr,
    SMin,
    UMin,
    SMax,
    UMax,
    /// Precondition: the divisor is not 0 and not (MIN, -1).
    SDiv,
    /// Precondition: the divisor is not 0.
    UDiv,
    /// Precondition: the divisor is not 0 and not -1.
    SRem,
    /// Precondition: the divisor is not 0.
    URem,
}

/// Float operations on two operands, IEEE 754 round-to-nearest-even, no
/// contraction. `Min`/`Max` are IEEE 754-2019 minimum/maximum: NaN if either
/// operand is NaN, and -0 < +0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FloatOp {
    Add,
    Sub,
    Mul,
    Div,
    Min,
    Max,
    /// The magnitude of `a` with the sign bit of `b` (a bit operation).
    Copysign,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnaryOp {
    /// Wrapping integer negation.
    INeg,
    /// Wrapping absolute value (abs MIN == MIN).
    IAbs,
    /// Bitwise not.
    Not,
    /// Leading/trailing zeros (the width for 0), population count.
    Clz,
    Ctz,
    Popcnt,
    FNeg,
    FAbs,
    Sqrt,
    /// Round to an integral float toward -inf, +inf, zero, or to nearest
    /// with ties to even. Only if `has_native(Native::Round)`.
    Floor,
    Ceil,
    Trunc,
    Nearest,
}

/// Float operations an emitter may lack an instruction for on the host CPU
/// (the lowering then calls a builtin instead).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Native {
    /// `UnaryOp::{Floor, Ceil, Trunc, Nearest}` (x86-64: SSE4.1 `roundss/sd`).
    Round,
    /// `Emitter::fma` (x86-64: the FMA extension).
    Fma,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntCC {
    Eq,
    Ne,
    SLt,
    SLe,
    SGt,
    SGe,
    ULt,
    ULe,
    UGt,
    UGe,
}

/// Float comparisons: ordered (false on NaN) except `Une` (true on NaN).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FloatCC {
    Eq,
    Une,
    Lt,
    Le,
    Gt,
    Ge,
}

/// Conversions of one value to type `to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conv {
    /// Integer narrowing: keep the low bits.
    Trunc,
    SExt,
    ZExt,
    /// f32 -> f64 (exact) and f64 -> f32 (round to nearest even).
    FPromote,
    FDemote,
    /// Float to a 32- or 64-bit integer: toward zero, saturating, NaN gives 0.
    FToSSat,
    FToUSat,
    /// Signed/unsigned integer to float, round to nearest even.
    SToF,
    UToF,
    /// Same bits, another type of the same width.
    Bitcast,
}

/// What memory an access touches, which decides the flags it is emitted with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mem {
    /// Runtime data (VmCtx, counters, return areas): 8-byte aligned, never faults.
    Vm,
    /// A dispatch-table slot, published concurrently by release stores: read
    /// as a relaxed atomic where the backend distinguishes it.
    Slot,
    /// Program memory through a MIR pointer: no alignment assumed.
    Heap,
}

/// How a narrow integer argument of a C function is widened (C rules).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ext {
    None,
    Sign,
    Zero,
}

/// A native function signature.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NativeSig {
    pub params: Vec<(Ty, Ext)>,
    pub ret: Option<(Ty, Ext)>,
}

impl NativeSig {
    pub fn new(params: &[Ty], ret: Option<Ty>) -> NativeSig {
        NativeSig {
            params: params.iter().map(|t| (*t, Ext::None)).collect(),
            ret: ret.map(|t| (t, Ext::None)),
        }
    }
}

/// One backend's instruction emitter for one function. Booleans are `I8`
/// values 0 or 1; conditions (`brif`, `select`) test an `I8` for non-zero.
pub trait Emitter {
    type Value: Copy;
    type Block: Copy + PartialEq;

    /// The function's own parameters, in the order of its `NativeSig`.
    fn params(&self) -> Vec<Self::Value>;

    /// A new, empty block with parameters of these types.
    fn create_block(&mut self, params: &[Ty]) -> Self::Block;
    fn block_params(&self, block: Self::Block) -> Vec<Self::Value>;
    /// A hint that `block` runs rarely (trap and sampling paths): laid out out
    /// of line, and branches to it are predicted not taken.
    fn set_cold(&mut self, block: Self::Block);
    /// Emit into `block` from now on.
    fn switch_to(&mut self, block: Self::Block);

    /// A constant of `ty` from its bits (low bits for narrow types, IEEE bits for floats).
    fn constant(&mut self, ty: Ty, bits: u64) -> Self::Value;
    fn int_op(&mut self, op: IntOp, a: Self::Value, b: Self::Value) -> Self::Value;
    fn float_op(&mut self, op: FloatOp, a: Self::Value, b: Self::Value) -> Self::Value;
    fn unary(&mut self, op: UnaryOp, a: Self::Value) -> Self::Value;
    /// `a * b + c` rounded once. Only if `has_native(Native::Fma)`.
    fn fma(&mut self, a: Self::Value, b: Self::Value, c: Self::Value) -> Self::Value;
    /// Whether the operations of `what` compile to code without a library call.
    fn has_native(&self, what: Native) -> bool;
    /// Comparisons give a bool (`I8` 0/1).
    fn icmp(&mut self, cc: IntCC, a: Self::Value, b: Self::Value) -> Self::Value;
    fn fcmp(&mut self, cc: FloatCC, a: Self::Value, b: Self::Value) -> Self::Value;
    fn select(&mut self, cond: Self::Value, a: Self::Value, b: Self::Value) -> Self::Value;
    fn convert(&mut self, conv: Conv, to: Ty, x: Self::Value) -> Self::Value;

    /// Load a `ty` from `addr + offset` (`addr` an `I64` or `Addr`).
    fn load(&mut self, mem: Mem, ty: Ty, addr: Self::Value, offset: i32) -> Self::Value;
    fn store(&mut self, mem: Mem, value: Self::Value, addr: Self::Value, offset: i32);
    /// Address (`Addr`) of a fresh 8-byte-aligned frame slot of `bytes` bytes.
    fn stack_slot(&mut self, bytes: u32) -> Self::Value;
    /// The current native stack pointer, as an `I64`.
    fn stack_pointer(&mut self) -> Self::Value;

    /// Call the native function at `callee` (`I64` or `Addr`).
    fn call(&mut self, sig: &NativeSig, callee: Self::Value, args: &[Self::Value]) -> Option<Self::Value>;

    fn jump(&mut self, dest: Self::Block, args: &[Self::Value]);
    fn brif(
        &mut self,
        cond: Self::Value,
        then_dest: Self::Block,
        then_args: &[Self::Value],
        else_dest: Self::Block,
        else_args: &[Self::Value],
    );
    /// Profile weights for the next `brif` (then, else) or `switch` (the
    /// default, then each case in order): relative frequencies, a hint for
    /// layout and prediction only. An emitter may ignore it.
    fn set_weights(&mut self, _weights: &[u64]) {}
    /// Jump to the block of the case equal to `value`, else to `default`.
    /// Keys are distinct and masked to `value`'s width.
    fn switch(&mut self, value: Self::Value, ty: Ty, cases: &[(u64, Self::Block)], default: Self::Block);
    fn ret(&mut self, value: Option<Self::Value>);
    /// End the current block after a call that does not return.
    fn unreachable(&mut self);
    /// The address of the function being emitted, as a value calls can use
    /// (so the backend sees a direct self-call); `None` if not supported.
    fn self_address(&mut self) -> Option<Self::Value> {
        None
    }
}
