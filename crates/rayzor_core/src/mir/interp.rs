//! The reference interpreter: the oracle of MIR semantics.
//!
//! Whatever this interpreter computes for a verified module is, by
//! definition, what every compiled tier must compute, bit for bit.
//!
//! Values are held as their canonical scalar leaves (`Scalar::canon`,
//! `layout::leaves` order) in one flat slot array per frame. Calls use an
//! explicit frame stack on the heap, so deep MIR recursion never touches the
//! native stack; a call that would make the depth exceed `MAX_CALL_DEPTH`
//! traps with `stack_overflow`.
//!
//! Memory is real process memory. As a best-effort safety net the interpreter
//! remembers its own live allocations and recently freed ones and traps
//! `memory_fault` on accesses to the first page, on accesses that start in a
//! live allocation and run past its end, on accesses that start in a freed
//! range, and on bad or double frees. Addresses it knows nothing about are
//! trusted (like ctypes). Because the host may re-use freed memory, the
//! freed-range table is forgotten at the start of every top-level `call` and
//! after every native host call, so that buffers the host hands in are never
//! mistaken for dangling ones.

use super::function::{
    BinOp, BlockCall, Callee, CmpOp, ExternId, FuncId, Function, InstKind, Module, TrapKind, UnOp, Value,
    MAX_CALL_DEPTH,
};
use super::types::{Scalar, Signature, Type};
use crate::mir::builder::UsageError;
use crate::mir::interrupt;
use crate::mir::layout;
use crate::mir::profile_record::ProfileRecorder;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;

/// In the interpreter, `func.addr` of module function `i` is `FUNC_TOKEN_BASE + i`.
pub const FUNC_TOKEN_BASE: u64 = 0x7ead_0000_0000_0000;

/// Accesses below this address always fault.
const NULL_PAGE: u64 = 4096;
/// Upper bound on the slots of one frame (a sanity limit for unverified input).
const MAX_FRAME_SLOTS: usize = 1 << 24;
/// How many freed ranges are remembered.
const FREED_HISTORY: usize = 1 << 16;

mod sys {
    extern "C" {
        pub fn calloc(n: usize, size: usize) -> *mut u8;
        pub fn free(p: *mut u8);
    }
}

fn usage(msg: impl Into<String>) -> RunError {
    RunError::Usage(UsageError(msg.into()))
}

// ---------------------------------------------------------------------------
// Pre-resolved functions
// ---------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
struct ValInfo {
    off: u32,
    len: u32,
    scalar: Option<Scalar>,
}

#[derive(Debug)]
struct FuncInfo {
    vals: Vec<ValInfo>,
    nslots: usize,
    /// Total leaves of the entry block's parameters.
    param_leaves: usize,
    /// Why the function cannot be run (structural damage found while preparing).
    invalid: Option<String>,
}

fn prepare(m: &Module, f: &Function) -> FuncInfo {
    let mut vals = Vec::with_capacity(f.values.len());
    let mut off = 0usize;
    let mut invalid = None;
    for (i, v) in f.values.iter().enumerate() {
        let len = layout::leaf_count(&v.ty);
        if len > layout::MAX_VALUE_LEAVES || off + len > MAX_FRAME_SLOTS {
            invalid = Some(format!("value v{i} of function '{}' is too large to interpret", f.name));
            break;
        }
        vals.push(ValInfo { off: off as u32, len: len as u32, scalar: v.ty.scalar() });
        off += len;
    }
    let mut info = FuncInfo { vals, nslots: off, param_leaves: 0, invalid };
    if info.invalid.is_none() {
        if let Err(e) = validate(m, f, &mut info) {
            info.invalid = Some(format!("function '{}' cannot be interpreted: {e}", f.name));
        }
    }
    info
}

/// Structural checks that make the hot loop free of out-of-range indexing.
fn validate(m: &Module, f: &Function, info: &mut FuncInfo) -> Result<(), String> {
    let nv = f.values.len();
    let Some(entry) = f.blocks.first() else {
        return Err("it has no blocks".into());
    };
    let mut pl = 0usize;
    for p in &entry.params {
        if p.index() >= nv {
            return Err(format!("entry parameter {p} does not exist"));
        }
        pl += info.vals[p.index()].len as usize;
    }
    let sig_leaves: usize = f.sig.params.iter().map(layout::leaf_count).sum();
    if pl != sig_leaves {
        return Err("entry block parameters do not match the signature".into());
    }
    info.param_leaves = pl;
    for (bi, b) in f.blocks.iter().enumerate() {
        for p in &b.params {
            if p.index() >= nv {
                return Err(format!("parameter {p} of block{bi} does not exist"));
            }
        }
        for &inst in &b.insts {
            let Some(data) = f.insts.get(inst.index()) else {
                return Err(format!("block{bi} lists missing {inst}"));
            };
            let mut bad = None;
            data.kind.for_each_operand(|v| {
                if v.index() >= nv {
                    bad = Some(v);
                }
            });
            if let Some(v) = bad {
                return Err(format!("{inst} uses missing value {v}"));
            }
            if let Some(r) = data.result {
                if r.index() >= nv {
                    return Err(format!("{inst} defines missing value {r}"));
                }
            }
            for s in data.kind.successors() {
                let Some(target_block) = f.blocks.get(s.block.index()) else {
                    return Err(format!("{inst} branches to missing {}", s.block));
                };
                if target_block.params.len() != s.args.len() {
                    return Err(format!("{inst} passes the wrong number of arguments to {}", s.block));
                }
                for (a, p) in s.args.iter().zip(&target_block.params) {
                    if info.vals[a.index()].len != info.vals[p.index()].len {
                        return Err(format!("{inst} passes {a} of the wrong shape to {}", s.block));
                    }
                }
            }
            let missing = match &data.kind {
                InstKind::Call { callee, .. } | InstKind::FuncAddr { callee } => {
                    m.callee_sig(*callee).is_none()
                }
                InstKind::StrConst { data: d } => d.index() >= m.data.len(),
                _ => false,
            };
            if missing {
                return Err(format!("{inst} refers to a missing function or data"));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Memory safety net
// ---------------------------------------------------------------------------

#[derive(Default, Debug)]
struct Heap {
    /// Live interpreter allocations: start -> size.
    live: BTreeMap<u64, u64>,
    /// Freed ranges not re-allocated since: start -> (size, generation).
    freed: BTreeMap<u64, (u64, u64)>,
    /// Freed ranges oldest first, to bound the history.
    order: VecDeque<(u64, u64)>,
    generation: u64,
}

impl Heap {
    /// Is `[addr, addr + len)` an access the net allows?
    fn check(&self, addr: u64, len: u64) -> Result<(), TrapKind> {
        if len == 0 {
            return Ok(());
        }
        let Some(end) = addr.checked_add(len) else {
            return Err(TrapKind::MemoryFault);
        };
        if addr < NULL_PAGE {
            return Err(TrapKind::MemoryFault);
        }
        if let Some((&start, &size)) = self.live.range(..=addr).next_back() {
            if addr < start.saturating_add(size.max(1)) {
                return if end > start.saturating_add(size) { Err(TrapKind::MemoryFault) } else { Ok(()) };
            }
        }
        if let Some((&start, &(size, _))) = self.freed.range(..=addr).next_back() {
            if addr < start.saturating_add(size.max(1)) {
                return Err(TrapKind::MemoryFault);
            }
        }
        Ok(())
    }

    fn alloc(&mut self, size: u64) -> Result<u64, TrapKind> {
        let n = usize::try_from(size.max(1)).map_err(|_| TrapKind::OutOfMemory)?;
        // SAFETY: calloc with a non-zero size; the result is checked for null.
        let p = unsafe { sys::calloc(n, 1) } as u64;
        if p == 0 {
            return Err(TrapKind::OutOfMemory);
        }
        self.forget_freed(p, size.max(1));
        self.live.insert(p, size);
        Ok(p)
    }

    fn forget_freed(&mut self, start: u64, len: u64) {
        let end = start.saturating_add(len);
        loop {
            let hit = match self.freed.range(..end).next_back() {
                Some((&s, &(sz, _))) if s.saturating_add(sz.max(1)) > start => s,
                _ => break,
            };
            self.freed.remove(&hit);
        }
    }

    fn free(&mut self, p: u64) -> Result<(), TrapKind> {
        if p == 0 {
            return Ok(());
        }
        if p < NULL_PAGE {
            return Err(TrapKind::MemoryFault);
        }
        if let Some(size) = self.live.remove(&p) {
            // SAFETY: `p` came from our calloc and is live.
            unsafe { sys::free(p as usize as *mut u8) };
            self.generation += 1;
            let g = self.generation;
            self.freed.insert(p, (size, g));
            self.order.push_back((p, g));
            if self.order.len() > FREED_HISTORY {
                if let Some((s, g)) = self.order.pop_front() {
                    if self.freed.get(&s).map(|e| e.1) == Some(g) {
                        self.freed.remove(&s);
                    }
                }
            }
            return Ok(());
        }
        if let Some((&start, &size)) = self.live.range(..p).next_back() {
            if p < start.saturating_add(size.max(1)) {
                return Err(TrapKind::MemoryFault);
            }
        }
        if let Some((&start, &(size, _))) = self.freed.range(..=p).next_back() {
            if p < start.saturating_add(size.max(1)) {
                return Err(TrapKind::MemoryFault);
            }
        }
        // Not ours: trust the caller, as compiled code would.
        // SAFETY: the program asserts `p` came from malloc.
        unsafe { sys::free(p as usize as *mut u8) };
        Ok(())
    }

    fn clear_freed(&mut self) {
        self.freed.clear();
        self.order.clear();
    }
}

/// Read one leaf (unaligned) and canonicalise it.
///
/// SAFETY: the caller vouches for `[addr, addr + s.bytes())`.
unsafe fn read_leaf(addr: u64, s: Scalar) -> u64 {
    let p = addr as usize as *const u8;
    let raw = match s.bytes() {
        1 => p.read() as u64,
        2 => (p as *const u16).read_unaligned() as u64,
        4 => (p as *const u32).read_unaligned() as u64,
        _ => (p as *const u64).read_unaligned(),
    };
    s.canon(raw)
}

/// Write one leaf (unaligned); bools write a 0/1 byte.
///
/// SAFETY: the caller vouches for `[addr, addr + s.bytes())`.
unsafe fn write_leaf(addr: u64, s: Scalar, bits: u64) {
    let p = addr as usize as *mut u8;
    match s.bytes() {
        1 => p.write(if s == Scalar::Bool { (bits & 1) as u8 } else { bits as u8 }),
        2 => (p as *mut u16).write_unaligned(bits as u16),
        4 => (p as *mut u32).write_unaligned(bits as u32),
        _ => (p as *mut u64).write_unaligned(bits),
    }
}

// ---------------------------------------------------------------------------
// Scalar operations
// ---------------------------------------------------------------------------

fn signed_min(bits: u32) -> i64 {
    if bits >= 64 {
        i64::MIN
    } else {
        -(1i64 << (bits - 1))
    }
}

fn rotate(x: u64, amt: u32, bits: u32, left: bool) -> u64 {
    macro_rules! rot {
        ($t:ty) => {
            if left {
                (x as $t).rotate_left(amt) as u64
            } else {
                (x as $t).rotate_right(amt) as u64
            }
        };
    }
    match bits {
        8 => rot!(u8),
        16 => rot!(u16),
        32 => rot!(u32),
        _ => rot!(u64),
    }
}

fn int_binary(op: BinOp, s: Scalar, a: u64, b: u64) -> Result<u64, TrapKind> {
    let w = s.bits();
    let signed = s.is_signed();
    let amt = (b as u32) & (w - 1);
    let r = match op {
        BinOp::Add => a.wrapping_add(b),
        BinOp::Sub => a.wrapping_sub(b),
        BinOp::Mul => a.wrapping_mul(b),
        BinOp::Div | BinOp::Rem => {
            if s.canon(b) == 0 {
                return Err(TrapKind::DivisionByZero);
            }
            if signed {
                let (x, y) = (s.canon(a) as i64, s.canon(b) as i64);
                if op == BinOp::Div {
                    if y == -1 && x == signed_min(w) {
                        return Err(TrapKind::IntegerOverflow);
                    }
                    x.wrapping_div(y) as u64
                } else {
                    x.wrapping_rem(y) as u64
                }
            } else {
                let (x, y) = (s.canon(a), s.canon(b));
                if op == BinOp::Div {
                    x / y
                } else {
                    x % y
                }
            }
        }
        BinOp::And => a & b,
        BinOp::Or => a | b,
        BinOp::Xor => a ^ b,
        BinOp::Shl => a << amt,
        BinOp::Shr => {
            if signed {
                ((s.canon(a) as i64) >> amt) as u64
            } else {
                (a & layout::low_mask(w)) >> amt
            }
        }
        BinOp::Rotl => rotate(a, amt, w, true),
        BinOp::Rotr => rotate(a, amt, w, false),
        // A float operation; the verifier rejects it on integers.
        BinOp::Copysign => a,
        BinOp::Min | BinOp::Max => {
            let a_less = if signed { (a as i64) < (b as i64) } else { a < b };
            if a_less == (op == BinOp::Min) {
                a
            } else {
                b
            }
        }
    };
    Ok(s.canon(r))
}

macro_rules! float_ops {
    ($bin:ident, $un:ident, $f:ty, $u:ty, $sign:expr, $quiet:expr) => {
        fn $bin(op: BinOp, a: u64, b: u64) -> u64 {
            let (ab, bb) = (a as $u, b as $u);
            let (x, y) = (<$f>::from_bits(ab), <$f>::from_bits(bb));
            let r: $u = match op {
                BinOp::Add => (x + y).to_bits(),
                BinOp::Sub => (x - y).to_bits(),
                BinOp::Mul => (x * y).to_bits(),
                BinOp::Div => (x / y).to_bits(),
                BinOp::Rem => (x % y).to_bits(),
                BinOp::Min | BinOp::Max => {
                    let min = op == BinOp::Min;
                    if x.is_nan() {
                        ab | $quiet
                    } else if y.is_nan() {
                        bb | $quiet
                    } else if x < y {
                        if min {
                            ab
                        } else {
                            bb
                        }
                    } else if y < x {
                        if min {
                            bb
                        } else {
                            ab
                        }
                    } else if min {
                        // Equal: only the signs of zeros can differ; -0 < +0.
                        ab | bb
                    } else {
                        ab & bb
                    }
                }
                // A bit operation: the sign of `b`, everything else of `a`.
                BinOp::Copysign => (ab & !$sign) | (bb & $sign),
                // Not float operations; the verifier rejects them.
                BinOp::And => ab & bb,
                BinOp::Or => ab | bb,
                BinOp::Xor => ab ^ bb,
                BinOp::Shl | BinOp::Shr | BinOp::Rotl | BinOp::Rotr => ab,
            };
            r as u64
        }

        fn $un(op: UnOp, a: u64) -> u64 {
            let ab = a as $u;
            let r: $u = match op {
                UnOp::Neg => ab ^ $sign,
                UnOp::Abs => ab & !$sign,
                UnOp::Sqrt => <$f>::from_bits(ab).sqrt().to_bits(),
                UnOp::Floor => <$f>::from_bits(ab).floor().to_bits(),
                UnOp::Ceil => <$f>::from_bits(ab).ceil().to_bits(),
                UnOp::Trunc => <$f>::from_bits(ab).trunc().to_bits(),
                UnOp::Nearest => <$f>::from_bits(ab).round_ties_even().to_bits(),
                // Not float operations; the verifier rejects them.
                UnOp::Not => !ab,
                UnOp::Clz => ab.leading_zeros() as $u,
                UnOp::Ctz => ab.trailing_zeros() as $u,
                UnOp::Popcnt => ab.count_ones() as $u,
            };
            r as u64
        }
    };
}

float_ops!(f32_binary, f32_unary, f32, u32, 0x8000_0000u32, 0x0040_0000u32);
float_ops!(f64_binary, f64_unary, f64, u64, 0x8000_0000_0000_0000u64, 0x0008_0000_0000_0000u64);

/// `fma a, b, c`: `a * b + c` rounded once (`mul_add` is the IEEE
/// fusedMultiplyAdd, never a separate multiply and add). Only for floats.
fn fma(s: Scalar, a: u64, b: u64, c: u64) -> u64 {
    match s {
        Scalar::F32 => {
            let f = |x: u64| f32::from_bits(x as u32);
            f(a).mul_add(f(b), f(c)).to_bits() as u64
        }
        _ => f64::from_bits(a).mul_add(f64::from_bits(b), f64::from_bits(c)).to_bits(),
    }
}

fn binary(op: BinOp, s: Scalar, a: u64, b: u64) -> Result<u64, TrapKind> {
    match s {
        Scalar::F32 => Ok(f32_binary(op, a, b)),
        Scalar::F64 => Ok(f64_binary(op, a, b)),
        _ => int_binary(op, s, a, b),
    }
}

fn unary(op: UnOp, s: Scalar, a: u64) -> u64 {
    match s {
        Scalar::F32 => return f32_unary(op, a),
        Scalar::F64 => return f64_unary(op, a),
        _ => {}
    }
    let w = s.bits();
    let x = a & layout::low_mask(w);
    let r = match op {
        UnOp::Neg => a.wrapping_neg(),
        UnOp::Not => !a,
        UnOp::Abs => {
            if s.is_signed() {
                (s.canon(a) as i64).wrapping_abs() as u64
            } else {
                a
            }
        }
        // Float operations; the verifier rejects them on integers.
        UnOp::Sqrt | UnOp::Floor | UnOp::Ceil | UnOp::Trunc | UnOp::Nearest => a,
        UnOp::Clz => (x.leading_zeros() - (64 - w)) as u64,
        UnOp::Ctz => {
            if x == 0 {
                w as u64
            } else {
                x.trailing_zeros() as u64
            }
        }
        UnOp::Popcnt => x.count_ones() as u64,
    };
    s.canon(r)
}

fn ord<T: PartialOrd>(op: CmpOp, x: T, y: T) -> bool {
    match op {
        CmpOp::Eq => x == y,
        CmpOp::Ne => x != y,
        CmpOp::Lt => x < y,
        CmpOp::Le => x <= y,
        CmpOp::Gt => x > y,
        CmpOp::Ge => x >= y,
    }
}

fn compare(op: CmpOp, s: Scalar, a: u64, b: u64) -> bool {
    match s {
        Scalar::F32 => ord(op, f32::from_bits(a as u32), f32::from_bits(b as u32)),
        Scalar::F64 => ord(op, f64::from_bits(a), f64::from_bits(b)),
        _ if s.is_signed() => ord(op, s.canon(a) as i64, s.canon(b) as i64),
        _ => ord(op, s.canon(a), s.canon(b)),
    }
}

fn cast(from: Scalar, to: Scalar, bits: u64) -> u64 {
    let bits = from.canon(bits);
    if from == to {
        return bits;
    }
    if from.is_float() {
        let x = if from == Scalar::F32 { f32::from_bits(bits as u32) as f64 } else { f64::from_bits(bits) };
        // f32 -> f64 is exact, so converting the widened value to an integer
        // gives what converting the f32 would.
        return match to {
            Scalar::Bool => (x != 0.0) as u64,
            Scalar::F32 => (x as f32).to_bits() as u64,
            Scalar::F64 => x.to_bits(),
            Scalar::I8 => x as i8 as i64 as u64,
            Scalar::I16 => x as i16 as i64 as u64,
            Scalar::I32 => x as i32 as i64 as u64,
            Scalar::I64 => x as i64 as u64,
            Scalar::U8 => x as u8 as u64,
            Scalar::U16 => x as u16 as u64,
            Scalar::U32 => x as u32 as u64,
            Scalar::U64 | Scalar::Ptr => x as u64,
        };
    }
    // Integer-like source: ints (canonical, so already extended by their own
    // signedness), bool (0/1) and ptr (unsigned bits).
    let signed = from.is_signed();
    match to {
        Scalar::Bool => (bits != 0) as u64,
        Scalar::F32 => (if signed { bits as i64 as f32 } else { bits as f32 }).to_bits() as u64,
        Scalar::F64 => (if signed { bits as i64 as f64 } else { bits as f64 }).to_bits(),
        _ => to.canon(bits),
    }
}

// Public scalar evaluation: exactly what the interpreter computes, for the
// optimiser's constant folding. Operands are canonical bits of type `s` (the
// operand type); results are canonical bits of the result type.

/// `op` on operands of type `s`; `Err` where the interpreter traps.
pub fn eval_binary(op: BinOp, s: Scalar, a: u64, b: u64) -> Result<u64, TrapKind> {
    binary(op, s, a, b)
}

/// `op` on an operand of type `s`.
pub fn eval_unary(op: UnOp, s: Scalar, a: u64) -> Result<u64, TrapKind> {
    Ok(unary(op, s, a))
}

/// Comparison of operands of type `s`; the `bool` result as 0/1.
pub fn eval_cmp(op: CmpOp, s: Scalar, a: u64, b: u64) -> Result<u64, TrapKind> {
    Ok(compare(op, s, a, b) as u64)
}

/// `cast` from `from` to `to`.
pub fn eval_cast(from: Scalar, to: Scalar, a: u64) -> Result<u64, TrapKind> {
    Ok(cast(from, to, a))
}

/// `bitcast` to `to`.
pub fn eval_bitcast(to: Scalar, a: u64) -> Result<u64, TrapKind> {
    Ok(to.canon(a))
}

/// `fma` of operands of float type `s`.
pub fn eval_fma(s: Scalar, a: u64, b: u64, c: u64) -> Result<u64, TrapKind> {
    Ok(fma(s, a, b, c))
}

/// `select` of scalar operands.
pub fn eval_select(cond: u64, if_true: u64, if_false: u64) -> Result<u64, TrapKind> {
    Ok(if cond & 1 != 0 { if_true } else { if_false })
}

// ---------------------------------------------------------------------------
// Native host calls
// ---------------------------------------------------------------------------

#[cfg(all(unix, any(target_arch = "x86_64", target_arch = "aarch64")))]
type HostFnInt = extern "C" fn(u64, u64, u64, u64, u64, u64, f64, f64, f64, f64, f64, f64, f64, f64) -> u64;
#[cfg(all(unix, any(target_arch = "x86_64", target_arch = "aarch64")))]
type HostFnFloat = extern "C" fn(u64, u64, u64, u64, u64, u64, f64, f64, f64, f64, f64, f64, f64, f64) -> f64;

/// Call the C function at `addr` with up to 6 integer-class and 8 float
/// arguments; all registers are filled, unused ones with 0. Returns the raw
/// bits of the integer return register or of the float one.
///
/// SAFETY: `addr` must be a C function whose scalar parameters, in order of
/// class, are a prefix of these registers.
#[cfg(all(unix, any(target_arch = "x86_64", target_arch = "aarch64")))]
unsafe fn native_call(addr: usize, i: &[u64; 6], f: &[f64; 8], float_ret: bool) -> Result<u64, RunError> {
    if float_ret {
        let func: HostFnFloat = std::mem::transmute::<usize, HostFnFloat>(addr);
        Ok(func(i[0], i[1], i[2], i[3], i[4], i[5], f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7]).to_bits())
    } else {
        let func: HostFnInt = std::mem::transmute::<usize, HostFnInt>(addr);
        Ok(func(i[0], i[1], i[2], i[3], i[4], i[5], f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7]))
    }
}

#[cfg(not(all(unix, any(target_arch = "x86_64", target_arch = "aarch64"))))]
unsafe fn native_call(_: usize, _: &[u64; 6], _: &[f64; 8], _: bool) -> Result<u64, RunError> {
    Err(usage("host calls are only supported on x86-64 and AArch64 Unix targets"))
}

/// Marshal `args` for `sig` and call the host function at `addr`. Returns the
/// canonical result leaf, or `None` for a void function.
fn host_call(
    addr: u64,
    sig: &Signature,
    info: &FuncInfo,
    slots: &[u64],
    args: &[Value],
) -> Result<Option<u64>, RunError> {
    if args.len() != sig.params.len() {
        return Err(usage(format!(
            "host call passes {} to a function taking {}",
            crate::error::count(args.len(), "argument"),
            sig.params.len()
        )));
    }
    let mut ints = [0u64; 6];
    let mut floats = [0f64; 8];
    let (mut ni, mut nf) = (0, 0);
    for (a, ty) in args.iter().zip(&sig.params) {
        let Some(s) = ty.scalar() else {
            return Err(usage(format!("host functions take scalars only, not {ty}")));
        };
        let bits = s.canon(scalar(info, slots, *a)?.1);
        if s.is_float() {
            if nf == floats.len() {
                return Err(usage("host call with more than 8 float arguments"));
            }
            floats[nf] = f64::from_bits(bits);
            nf += 1;
        } else {
            if ni == ints.len() {
                return Err(usage("host call with more than 6 integer arguments"));
            }
            ints[ni] = bits;
            ni += 1;
        }
    }
    let ret = match &sig.ret {
        Type::Void => None,
        t => match t.scalar() {
            Some(s) => Some(s),
            None => return Err(usage(format!("host functions return scalars only, not {t}"))),
        },
    };
    let float_ret = ret.is_some_and(Scalar::is_float);
    let word = std::cell::Cell::new(0u64);
    let raw = {
        // SAFETY: `word` outlives the scope, which ends before it is read.
        let _scope = unsafe { super::host_abort::Scope::enter(word.as_ptr()) };
        // SAFETY: the program asserts that `addr` is a C function of this signature.
        unsafe { native_call(addr as usize, &ints, &floats, float_ret)? }
    };
    if word.get() != 0 {
        return Err(RunError::HostAborted);
    }
    Ok(ret.map(|s| s.canon(raw)))
}

// ---------------------------------------------------------------------------
// Frame helpers
// ---------------------------------------------------------------------------

#[inline]
fn scalar(info: &FuncInfo, slots: &[u64], v: Value) -> Result<(Scalar, u64), RunError> {
    let vi = info.vals[v.index()];
    match vi.scalar {
        Some(s) => Ok((s, slots[vi.off as usize])),
        None => Err(usage(format!("value {v} is not a scalar"))),
    }
}

#[inline]
fn leaves<'a>(info: &FuncInfo, slots: &'a [u64], v: Value) -> &'a [u64] {
    let vi = info.vals[v.index()];
    &slots[vi.off as usize..(vi.off + vi.len) as usize]
}

/// The slot range of an instruction's result, which must have `len` leaves.
#[inline]
fn result_range(info: &FuncInfo, res: Option<Value>, len: usize) -> Result<std::ops::Range<usize>, RunError> {
    let Some(r) = res else {
        return Err(usage("instruction has no result value"));
    };
    let vi = info.vals[r.index()];
    if vi.len as usize != len {
        return Err(usage(format!("result {r} has {} leaves where {len} were computed", vi.len)));
    }
    Ok(vi.off as usize..(vi.off + vi.len) as usize)
}

#[inline]
fn put1(info: &FuncInfo, slots: &mut [u64], res: Option<Value>, bits: u64) -> Result<(), RunError> {
    let r = result_range(info, res, 1)?;
    slots[r.start] = bits;
    Ok(())
}

/// Copy value `src` into the result (same shape required).
fn copy_value(info: &FuncInfo, slots: &mut [u64], src: Value, res: Option<Value>) -> Result<(), RunError> {
    let s = info.vals[src.index()];
    let r = result_range(info, res, s.len as usize)?;
    slots.copy_within(s.off as usize..(s.off + s.len) as usize, r.start);
    Ok(())
}

/// Assign a branch's arguments to its target's parameters, in parallel.
fn branch(f: &Function, info: &FuncInfo, slots: &mut [u64], bc: &BlockCall, scratch: &mut Vec<u64>) -> u32 {
    if !bc.args.is_empty() {
        scratch.clear();
        for a in &bc.args {
            scratch.extend_from_slice(leaves(info, slots, *a));
        }
        let mut k = 0;
        for p in &f.blocks[bc.block.index()].params {
            let vi = info.vals[p.index()];
            let n = vi.len as usize;
            slots[vi.off as usize..vi.off as usize + n].copy_from_slice(&scratch[k..k + n]);
            k += n;
        }
    }
    bc.block.0
}

struct Frame {
    func: usize,
    block: u32,
    ip: u32,
    slots: Vec<u64>,
    /// The caller's value receiving the result.
    ret: Option<Value>,
}

enum Act {
    Next,
    /// Call module function `.0`; arguments in the scratch buffer; result into `.1`.
    Call(usize, Option<Value>),
    /// Return the leaves in the scratch buffer.
    Return,
}

// ---------------------------------------------------------------------------
// The interpreter
// ---------------------------------------------------------------------------

/// Runs MIR functions of one module. Its results define MIR semantics.
pub struct Interpreter<'m> {
    module: &'m Module,
    infos: Vec<FuncInfo>,
    hosts: Vec<Option<usize>>,
    step_limit: Option<u64>,
    steps: u64,
    heap: Heap,
    stack: Vec<Frame>,
    pool: Vec<Vec<u64>>,
    scratch: Vec<u64>,
    /// What may interrupt the current call, and the epoch it last saw (`mir::interrupt`).
    interrupts: interrupt::Marks,
    epoch: u64,
    /// Counts branches, switch cases and call targets when recording a profile.
    recorder: Option<Box<ProfileRecorder>>,
}

impl<'m> Interpreter<'m> {
    /// Record a profile of every call from now on (`take_profile`).
    pub fn record_profile(&mut self) {
        self.recorder = Some(Box::new(ProfileRecorder::new(self.module)));
    }

    /// The profile recorded since `record_profile` (recording stops).
    pub fn take_profile(&mut self) -> Option<ProfileRecorder> {
        self.recorder.take().map(|r| *r)
    }

    pub fn new(module: &'m Module) -> Self {
        let infos = module.functions.iter().map(|f| prepare(module, f)).collect();
        Interpreter {
            module,
            infos,
            hosts: vec![None; module.externs.len()],
            step_limit: None,
            steps: 0,
            heap: Heap::default(),
            stack: Vec::new(),
            pool: Vec::new(),
            scratch: Vec::new(),
            interrupts: interrupt::Marks::now(None),
            epoch: 0,
            recorder: None,
        }
    }

    /// Give extern `id` the address of a host function with the C ABI.
    /// Ids the module does not have are ignored.
    pub fn bind_extern(&mut self, id: ExternId, address: usize) {
        if let Some(h) = self.hosts.get_mut(id.index()) {
            *h = Some(address);
        }
    }

    /// Limit the number of instructions one `call` may execute (`None`: no limit).
    pub fn set_step_limit(&mut self, limit: Option<u64>) {
        self.step_limit = limit;
    }

    /// Run `func`. `args` are the canonical leaves of each parameter,
    /// concatenated; the result is the leaves of the return value (empty for void).
    pub fn call(&mut self, func: FuncId, args: &[u64]) -> Result<Vec<u64>, RunError> {
        let m = self.module;
        let Some(f) = m.functions.get(func.index()) else {
            return Err(usage(format!("the module has no function {func}")));
        };
        let info = &self.infos[func.index()];
        if let Some(why) = &info.invalid {
            return Err(usage(why.clone()));
        }
        if args.len() != info.param_leaves {
            return Err(usage(format!(
                "function '{}' takes {}, {} were given",
                f.name,
                crate::error::count(info.param_leaves, "argument word"),
                args.len()
            )));
        }
        // Recycle what a trapped earlier run left behind.
        while let Some(fr) = self.stack.pop() {
            self.pool.push(fr.slots);
        }
        self.heap.clear_freed();
        self.steps = 0;
        self.interrupts = interrupt::Marks::now(None);
        self.epoch = interrupt::EPOCH.load(std::sync::atomic::Ordering::SeqCst);
        let mut slots = self.pool.pop().unwrap_or_default();
        slots.clear();
        slots.resize(info.nslots, 0);
        let mut k = 0;
        for p in &f.blocks[0].params {
            let vi = info.vals[p.index()];
            for (j, leaf) in layout::leaves(f.value_type(*p)).iter().enumerate() {
                slots[vi.off as usize + j] = leaf.ty.canon(args[k]);
                k += 1;
            }
        }
        self.stack.push(Frame { func: func.index(), block: 0, ip: 0, slots, ret: None });
        if let Some(rec) = self.recorder.as_mut() {
            rec.entry(func.index());
        }
        let r = self.run();
        while let Some(fr) = self.stack.pop() {
            self.pool.push(fr.slots);
        }
        r
    }

    fn run(&mut self) -> Result<Vec<u64>, RunError> {
        let m = self.module;
        let Interpreter {
            infos,
            hosts,
            step_limit,
            steps,
            heap,
            stack,
            pool,
            scratch,
            interrupts,
            epoch,
            recorder,
            ..
        } = self;
        let step_limit = *step_limit;
        loop {
            let depth = stack.len();
            let Some(fr) = stack.last_mut() else {
                return Err(usage("internal error: empty call stack"));
            };
            let f = &m.functions[fr.func];
            let info = &infos[fr.func];
            let Some(&inst) = f.blocks[fr.block as usize].insts.get(fr.ip as usize) else {
                return Err(usage(format!("block{} of function '{}' has no terminator", fr.block, f.name)));
            };
            *steps += 1;
            if let Some(limit) = step_limit {
                if *steps > limit {
                    return Err(usage(format!("step limit of {limit} instructions exceeded")));
                }
            }
            if *steps % interrupt::INTERP_POLL_STEPS == 0 && interrupt::poll(interrupts, epoch) {
                return Err(RunError::Trap(Trap {
                    kind: TrapKind::Interrupted,
                    function: Some(f.name.clone()),
                }));
            }
            fr.ip += 1;
            let data = &f.insts[inst.index()];
            let res = data.result;
            let slots = &mut fr.slots[..];
            let trap = |kind: TrapKind| RunError::Trap(Trap { kind, function: Some(f.name.clone()) });

            let act = match &data.kind {
                InstKind::Const { ty, bits } => {
                    put1(info, slots, res, ty.canon(*bits))?;
                    Act::Next
                }
                InstKind::Zero { .. } => {
                    let Some(r) = res else {
                        return Err(usage("zero has no result value"));
                    };
                    let vi = info.vals[r.index()];
                    slots[vi.off as usize..(vi.off + vi.len) as usize].fill(0);
                    Act::Next
                }
                InstKind::Binary { op, lhs, rhs } => {
                    let (s, a) = scalar(info, slots, *lhs)?;
                    let (_, b) = scalar(info, slots, *rhs)?;
                    let r = binary(*op, s, a, b).map_err(trap)?;
                    put1(info, slots, res, r)?;
                    Act::Next
                }
                InstKind::Unary { op, arg } => {
                    let (s, a) = scalar(info, slots, *arg)?;
                    put1(info, slots, res, unary(*op, s, a))?;
                    Act::Next
                }
                InstKind::Cmp { op, lhs, rhs } => {
                    let (s, a) = scalar(info, slots, *lhs)?;
                    let (_, b) = scalar(info, slots, *rhs)?;
                    put1(info, slots, res, compare(*op, s, a, b) as u64)?;
                    Act::Next
                }
                InstKind::Fma { a, b, c } => {
                    let (s, x) = scalar(info, slots, *a)?;
                    let (_, y) = scalar(info, slots, *b)?;
                    let (_, z) = scalar(info, slots, *c)?;
                    put1(info, slots, res, fma(s, x, y, z))?;
                    Act::Next
                }
                InstKind::Select { cond, if_true, if_false } => {
                    let (_, c) = scalar(info, slots, *cond)?;
                    let src = if c & 1 != 0 { *if_true } else { *if_false };
                    copy_value(info, slots, src, res)?;
                    Act::Next
                }
                InstKind::Cast { to, arg } => {
                    let (s, a) = scalar(info, slots, *arg)?;
                    put1(info, slots, res, cast(s, *to, a))?;
                    Act::Next
                }
                InstKind::Bitcast { to, arg } => {
                    let (_, a) = scalar(info, slots, *arg)?;
                    put1(info, slots, res, eval_bitcast(*to, a).map_err(trap)?)?;
                    Act::Next
                }
                InstKind::Load { ty, ptr } => {
                    let (_, p) = scalar(info, slots, *ptr)?;
                    if let Some(s) = ty.scalar() {
                        heap.check(p, s.bytes() as u64).map_err(trap)?;
                        // SAFETY: checked by the safety net or trusted (caller memory).
                        let v = unsafe { read_leaf(p, s) };
                        put1(info, slots, res, v)?;
                    } else {
                        let ls = layout::leaves(ty);
                        let r = result_range(info, res, ls.len())?;
                        for l in &ls {
                            heap.check(p.wrapping_add(l.offset as u64), l.ty.bytes() as u64).map_err(trap)?;
                        }
                        for (i, l) in ls.iter().enumerate() {
                            // SAFETY: as above.
                            slots[r.start + i] = unsafe { read_leaf(p.wrapping_add(l.offset as u64), l.ty) };
                        }
                    }
                    Act::Next
                }
                InstKind::Store { ptr, value } => {
                    let (_, p) = scalar(info, slots, *ptr)?;
                    let vi = info.vals[value.index()];
                    if let Some(s) = vi.scalar {
                        heap.check(p, s.bytes() as u64).map_err(trap)?;
                        // SAFETY: checked by the safety net or trusted (caller memory).
                        unsafe { write_leaf(p, s, slots[vi.off as usize]) };
                    } else {
                        let ls = layout::leaves(f.value_type(*value));
                        if ls.len() != vi.len as usize {
                            return Err(usage(format!(
                                "stored value {value} has the wrong number of leaves"
                            )));
                        }
                        for l in &ls {
                            heap.check(p.wrapping_add(l.offset as u64), l.ty.bytes() as u64).map_err(trap)?;
                        }
                        for (i, l) in ls.iter().enumerate() {
                            // SAFETY: as above.
                            unsafe {
                                write_leaf(p.wrapping_add(l.offset as u64), l.ty, slots[vi.off as usize + i])
                            };
                        }
                    }
                    Act::Next
                }
                InstKind::Alloc { ty, count } => {
                    let (_, n) = scalar(info, slots, *count)?;
                    let size = layout::size_of(ty)
                        .checked_mul(n)
                        .filter(|s| *s <= layout::MAX_TYPE_SIZE)
                        .ok_or_else(|| trap(TrapKind::OutOfMemory))?;
                    let p = heap.alloc(size).map_err(trap)?;
                    put1(info, slots, res, p)?;
                    Act::Next
                }
                InstKind::Free { ptr } => {
                    let (_, p) = scalar(info, slots, *ptr)?;
                    heap.free(p).map_err(trap)?;
                    Act::Next
                }
                InstKind::MemCopy { dst, src, len } => {
                    let (_, d) = scalar(info, slots, *dst)?;
                    let (_, s) = scalar(info, slots, *src)?;
                    let (_, n) = scalar(info, slots, *len)?;
                    if n > 0 {
                        heap.check(s, n).map_err(trap)?;
                        heap.check(d, n).map_err(trap)?;
                        let n = usize::try_from(n).map_err(|_| trap(TrapKind::MemoryFault))?;
                        // SAFETY: checked by the safety net or trusted; memmove semantics.
                        unsafe { std::ptr::copy(s as usize as *const u8, d as usize as *mut u8, n) };
                    }
                    Act::Next
                }
                InstKind::MemSet { dst, byte, len } => {
                    let (_, d) = scalar(info, slots, *dst)?;
                    let (_, b) = scalar(info, slots, *byte)?;
                    let (_, n) = scalar(info, slots, *len)?;
                    if n > 0 {
                        heap.check(d, n).map_err(trap)?;
                        let n = usize::try_from(n).map_err(|_| trap(TrapKind::MemoryFault))?;
                        // SAFETY: checked by the safety net or trusted.
                        unsafe { std::ptr::write_bytes(d as usize as *mut u8, b as u8, n) };
                    }
                    Act::Next
                }
                InstKind::FieldAddr { ty, ptr, field } => {
                    let (_, p) = scalar(info, slots, *ptr)?;
                    let off = match ty {
                        Type::Struct(fields) if (*field as usize) < fields.len() => {
                            layout::field_offset(fields, *field as usize)
                        }
                        _ => return Err(usage(format!("field.addr: {ty} has no field {field}"))),
                    };
                    put1(info, slots, res, p.wrapping_add(off))?;
                    Act::Next
                }
                InstKind::ElemAddr { elem, ptr, index } => {
                    let (_, p) = scalar(info, slots, *ptr)?;
                    // Canonical bits are already sign- or zero-extended by the index type.
                    let (_, i) = scalar(info, slots, *index)?;
                    put1(info, slots, res, p.wrapping_add(i.wrapping_mul(layout::size_of(elem))))?;
                    Act::Next
                }
                InstKind::ExtractValue { agg, index } => {
                    let a = info.vals[agg.index()];
                    let range = layout::field_leaf_range(f.value_type(*agg), *index)
                        .filter(|r| r.end <= a.len as usize)
                        .ok_or_else(|| usage(format!("extract: {agg} has no field {index}")))?;
                    let r = result_range(info, res, range.len())?;
                    let base = a.off as usize;
                    slots.copy_within(base + range.start..base + range.end, r.start);
                    Act::Next
                }
                InstKind::InsertValue { agg, index, value } => {
                    let a = info.vals[agg.index()];
                    let v = info.vals[value.index()];
                    let range = layout::field_leaf_range(f.value_type(*agg), *index)
                        .filter(|r| r.end <= a.len as usize && r.len() == v.len as usize)
                        .ok_or_else(|| usage(format!("insert: {agg} has no field {index} of this shape")))?;
                    let r = result_range(info, res, a.len as usize)?;
                    slots.copy_within(a.off as usize..(a.off + a.len) as usize, r.start);
                    slots.copy_within(v.off as usize..(v.off + v.len) as usize, r.start + range.start);
                    Act::Next
                }
                InstKind::UnionMake { ty, variant, value } => {
                    let vs = match ty {
                        Type::Union(vs) if (*variant as usize) < vs.len() => vs,
                        _ => return Err(usage(format!("union.make: {ty} has no variant {variant}"))),
                    };
                    let words = layout::union_payload_words(vs) as usize;
                    let ps = layout::payload_slots(&vs[*variant as usize]);
                    let v = info.vals[value.index()];
                    if ps.len() != v.len as usize || ps.iter().any(|s| s.word as usize >= words) {
                        return Err(usage(format!("union.make: {value} does not fit variant {variant}")));
                    }
                    let r = result_range(info, res, 1 + words)?;
                    slots[r.clone()].fill(0);
                    slots[r.start] = *variant as u64;
                    for (k, s) in ps.iter().enumerate() {
                        let leaf = slots[v.off as usize + k] & layout::low_mask(s.ty.bits());
                        slots[r.start + 1 + s.word as usize] |= leaf << s.shift;
                    }
                    Act::Next
                }
                InstKind::UnionTag { arg } | InstKind::AnyTag { arg } => {
                    let a = leaves(info, slots, *arg);
                    let Some(&tag) = a.first() else {
                        return Err(usage(format!("{arg} has no tag")));
                    };
                    put1(info, slots, res, Scalar::U32.canon(tag))?;
                    Act::Next
                }
                InstKind::UnionGet { variant, arg } => {
                    let vs = match f.value_type(*arg) {
                        Type::Union(vs) if (*variant as usize) < vs.len() => vs,
                        t => return Err(usage(format!("union.get: {t} has no variant {variant}"))),
                    };
                    let a = info.vals[arg.index()];
                    let ps = layout::payload_slots(&vs[*variant as usize]);
                    if ps.iter().any(|s| 1 + s.word as usize >= a.len as usize) {
                        return Err(usage(format!("union.get: {arg} is malformed")));
                    }
                    if slots[a.off as usize] != *variant as u64 {
                        return Err(trap(TrapKind::BadTag));
                    }
                    let r = result_range(info, res, ps.len())?;
                    for (k, s) in ps.iter().enumerate() {
                        let word = slots[a.off as usize + 1 + s.word as usize];
                        slots[r.start + k] = s.ty.canon(word >> s.shift);
                    }
                    Act::Next
                }
                InstKind::AnyMake { arg } => {
                    let (s, a) = scalar(info, slots, *arg)?;
                    let r = result_range(info, res, 2)?;
                    slots[r.start] = s.any_tag() as u64;
                    slots[r.start + 1] = s.canon(a);
                    Act::Next
                }
                InstKind::AnyGet { ty, arg } => {
                    let a = leaves(info, slots, *arg);
                    let &[tag, payload] = a else {
                        return Err(usage(format!("any.get: {arg} is not an any")));
                    };
                    if tag != ty.any_tag() as u64 {
                        return Err(trap(TrapKind::BadTag));
                    }
                    put1(info, slots, res, ty.canon(payload))?;
                    Act::Next
                }
                InstKind::StrConst { data: d } => {
                    let bytes = &m.data[d.index()];
                    let r = result_range(info, res, 2)?;
                    slots[r.start] = bytes.as_ptr() as usize as u64;
                    slots[r.start + 1] = bytes.len() as u64;
                    Act::Next
                }
                InstKind::FuncAddr { callee } => {
                    let a = match callee {
                        Callee::Func(id) => FUNC_TOKEN_BASE + id.0 as u64,
                        Callee::Extern(e) => match hosts[e.index()] {
                            Some(a) => a as u64,
                            None => {
                                return Err(usage(format!(
                                    "extern '{}' has no host address",
                                    m.externs[e.index()].name
                                )))
                            }
                        },
                    };
                    put1(info, slots, res, a)?;
                    Act::Next
                }
                InstKind::Call { callee: Callee::Func(id), args } => {
                    if let Some(rec) = recorder.as_mut() {
                        rec.call(fr.func, inst);
                    }
                    scratch.clear();
                    for a in args {
                        scratch.extend_from_slice(leaves(info, slots, *a));
                    }
                    Act::Call(id.index(), res)
                }
                InstKind::Call { callee: Callee::Extern(e), args } => {
                    let ext = &m.externs[e.index()];
                    let Some(addr) = hosts[e.index()] else {
                        return Err(usage(format!("extern '{}' has no host address", ext.name)));
                    };
                    let r = host_call(addr as u64, &ext.sig, info, slots, args)?;
                    heap.clear_freed();
                    if let Some(bits) = r {
                        if res.is_some() {
                            put1(info, slots, res, bits)?;
                        }
                    }
                    Act::Next
                }
                InstKind::CallIndirect { callee, args } => {
                    let (sig, host) = match f.value_type(*callee) {
                        Type::FnPtr { sig, host } => (sig, *host),
                        t => return Err(usage(format!("call_indirect through a value of type {t}"))),
                    };
                    let (_, addr) = scalar(info, slots, *callee)?;
                    if host {
                        if addr < NULL_PAGE || addr >> 48 == FUNC_TOKEN_BASE >> 48 {
                            return Err(trap(TrapKind::MemoryFault));
                        }
                        let r = host_call(addr, sig, info, slots, args)?;
                        heap.clear_freed();
                        if let Some(bits) = r {
                            if res.is_some() {
                                put1(info, slots, res, bits)?;
                            }
                        }
                        Act::Next
                    } else {
                        let idx = addr.wrapping_sub(FUNC_TOKEN_BASE);
                        let ok = (idx as usize as u64) == idx
                            && m.functions.get(idx as usize).is_some_and(|g| g.sig == **sig);
                        if !ok {
                            return Err(trap(TrapKind::MemoryFault));
                        }
                        if let Some(rec) = recorder.as_mut() {
                            rec.indirect(fr.func, inst, FuncId(idx as u32));
                        }
                        scratch.clear();
                        for a in args {
                            scratch.extend_from_slice(leaves(info, slots, *a));
                        }
                        Act::Call(idx as usize, res)
                    }
                }
                InstKind::DepthCheck => {
                    // Exactly when a `call` made here would trap (see `Act::Call`).
                    if depth >= MAX_CALL_DEPTH as usize {
                        return Err(trap(TrapKind::StackOverflow));
                    }
                    Act::Next
                }
                InstKind::Jump { dest } => {
                    fr.block = branch(f, info, slots, dest, scratch);
                    fr.ip = 0;
                    Act::Next
                }
                InstKind::Brif { cond, then_dest, else_dest } => {
                    let (_, c) = scalar(info, slots, *cond)?;
                    if let Some(rec) = recorder.as_mut() {
                        rec.branch(fr.func, inst, c & 1 != 0);
                    }
                    let dest = if c & 1 != 0 { then_dest } else { else_dest };
                    fr.block = branch(f, info, slots, dest, scratch);
                    fr.ip = 0;
                    Act::Next
                }
                InstKind::Switch { value, cases, default } => {
                    let (_, v) = scalar(info, slots, *value)?;
                    if let Some(rec) = recorder.as_mut() {
                        rec.switch(fr.func, inst, cases.len(), cases.iter().position(|(c, _)| *c == v));
                    }
                    let dest = cases.iter().find(|(c, _)| *c == v).map(|(_, bc)| bc).unwrap_or(default);
                    fr.block = branch(f, info, slots, dest, scratch);
                    fr.ip = 0;
                    Act::Next
                }
                InstKind::Return { value } => {
                    scratch.clear();
                    if let Some(v) = value {
                        scratch.extend_from_slice(leaves(info, slots, *v));
                    }
                    Act::Return
                }
                InstKind::Trap => return Err(trap(TrapKind::User)),
                InstKind::Unreachable => return Err(trap(TrapKind::Unreachable)),
            };

            match act {
                Act::Next => {}
                Act::Call(callee, ret) => {
                    let g = &m.functions[callee];
                    let ginfo = &infos[callee];
                    if depth >= MAX_CALL_DEPTH as usize {
                        return Err(RunError::Trap(Trap {
                            kind: TrapKind::StackOverflow,
                            function: Some(g.name.clone()),
                        }));
                    }
                    if let Some(why) = &ginfo.invalid {
                        return Err(usage(why.clone()));
                    }
                    if scratch.len() != ginfo.param_leaves {
                        return Err(usage(format!(
                            "call of '{}' passes the wrong number of argument words",
                            g.name
                        )));
                    }
                    let mut new_slots = pool.pop().unwrap_or_default();
                    new_slots.clear();
                    new_slots.resize(ginfo.nslots, 0);
                    let mut k = 0;
                    for p in &g.blocks[0].params {
                        let vi = ginfo.vals[p.index()];
                        let n = vi.len as usize;
                        new_slots[vi.off as usize..vi.off as usize + n].copy_from_slice(&scratch[k..k + n]);
                        k += n;
                    }
                    stack.push(Frame { func: callee, block: 0, ip: 0, slots: new_slots, ret });
                    if let Some(rec) = recorder.as_mut() {
                        rec.entry(callee);
                    }
                }
                Act::Return => {
                    let Some(done) = stack.pop() else {
                        return Err(usage("internal error: empty call stack"));
                    };
                    pool.push(done.slots);
                    let Some(caller) = stack.last_mut() else {
                        return Ok(scratch.clone());
                    };
                    if let Some(rv) = done.ret {
                        let cinfo = &infos[caller.func];
                        let r = result_range(cinfo, Some(rv), scratch.len())?;
                        caller.slots[r].copy_from_slice(scratch);
                    }
                }
            }
        }
    }
}

/// A program trapped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trap {
    pub kind: TrapKind,
    /// The function the trap happened in, when known.
    pub function: Option<String>,
}

impl fmt::Display for Trap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "trap: {}", self.kind)?;
        if let Some(func) = &self.function {
            write!(f, " in function '{func}'")?;
        }
        Ok(())
    }
}

impl std::error::Error for Trap {}

/// Why a run did not produce a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RunError {
    Trap(Trap),
    Usage(UsageError),
    /// A host function aborted the call (`host_abort::abort_current`); the
    /// code that made the host function knows why.
    HostAborted,
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Trap(t) => t.fmt(f),
            RunError::Usage(u) => u.fmt(f),
            RunError::HostAborted => f.write_str("a host function aborted the call"),
        }
    }
}

impl std::error::Error for RunError {}

impl From<Trap> for RunError {
    fn from(t: Trap) -> Self {
        RunError::Trap(t)
    }
}

impl From<UsageError> for RunError {
    fn from(u: UsageError) -> Self {
        RunError::Usage(u)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mir::function::{Block, DataId};

    /// A tiny function builder for tests.
    struct FB {
        f: Function,
        cur: Block,
    }

    impl FB {
        fn new(name: &str, params: Vec<Type>, ret: Type) -> Self {
            FB { f: Function::new(name, Signature::new(params, ret)), cur: Block(0) }
        }
        fn p(&self, i: usize) -> Value {
            self.f.blocks[0].params[i]
        }
        fn ins(&mut self, kind: InstKind, ty: Type) -> Value {
            self.f.push_inst(self.cur, kind, Some(ty)).1.unwrap()
        }
        fn eff(&mut self, kind: InstKind) {
            self.f.push_inst(self.cur, kind, None);
        }
        fn c(&mut self, ty: Scalar, v: i64) -> Value {
            self.ins(InstKind::Const { ty, bits: ty.canon(v as u64) }, Type::Scalar(ty))
        }
        fn cu(&mut self, ty: Scalar, bits: u64) -> Value {
            self.ins(InstKind::Const { ty, bits }, Type::Scalar(ty))
        }
        fn bin(&mut self, op: BinOp, a: Value, b: Value) -> Value {
            let ty = self.f.value_type(a).clone();
            self.ins(InstKind::Binary { op, lhs: a, rhs: b }, ty)
        }
        fn cmp(&mut self, op: CmpOp, a: Value, b: Value) -> Value {
            self.ins(InstKind::Cmp { op, lhs: a, rhs: b }, Type::BOOL)
        }
        fn ret(&mut self, v: Option<Value>) {
            self.eff(InstKind::Return { value: v });
        }
        fn block(&mut self, params: &[Type]) -> (Block, Vec<Value>) {
            let b = self.f.add_block();
            let ps = params.iter().map(|t| self.f.add_block_param(b, t.clone())).collect();
            (b, ps)
        }
        fn jump(&mut self, b: Block, args: Vec<Value>) {
            self.eff(InstKind::Jump { dest: BlockCall { block: b, args } });
        }
        fn brif(&mut self, c: Value, t: Block, ta: Vec<Value>, e: Block, ea: Vec<Value>) {
            self.eff(InstKind::Brif {
                cond: c,
                then_dest: BlockCall { block: t, args: ta },
                else_dest: BlockCall { block: e, args: ea },
            });
        }
        fn call(&mut self, callee: Callee, args: Vec<Value>, ret: Type) -> Option<Value> {
            self.f.push_inst(self.cur, InstKind::Call { callee, args }, Some(ret)).1
        }
    }

    fn module(fs: Vec<FB>) -> Module {
        let mut m = Module::new();
        for f in fs {
            m.functions.push(f.f);
        }
        m
    }

    fn run1(m: &Module, args: &[u64]) -> Result<Vec<u64>, RunError> {
        Interpreter::new(m).call(FuncId(0), args)
    }

    fn trap_kind(r: Result<Vec<u64>, RunError>) -> TrapKind {
        match r {
            Err(RunError::Trap(t)) => t.kind,
            other => panic!("expected a trap, got {other:?}"),
        }
    }

    // ----- scalar op helpers: one-instruction functions -----

    fn bin_op(op: BinOp, s: Scalar, a: u64, b: u64) -> Result<u64, RunError> {
        let mut fb = FB::new("bin", vec![s.into(), s.into()], s.into());
        let (x, y) = (fb.p(0), fb.p(1));
        let r = fb.bin(op, x, y);
        fb.ret(Some(r));
        let m = module(vec![fb]);
        run1(&m, &[s.canon(a), s.canon(b)]).map(|v| v[0])
    }

    fn bi(op: BinOp, s: Scalar, a: i64, b: i64) -> i64 {
        bin_op(op, s, a as u64, b as u64).unwrap() as i64
    }

    fn bin_trap(op: BinOp, s: Scalar, a: i64, b: i64) -> TrapKind {
        match bin_op(op, s, a as u64, b as u64) {
            Err(RunError::Trap(t)) => {
                assert_eq!(t.function.as_deref(), Some("bin"));
                t.kind
            }
            other => panic!("expected trap, got {other:?}"),
        }
    }

    fn un_op(op: UnOp, s: Scalar, a: u64) -> u64 {
        let mut fb = FB::new("un", vec![s.into()], s.into());
        let x = fb.p(0);
        let r = fb.ins(InstKind::Unary { op, arg: x }, s.into());
        fb.ret(Some(r));
        let m = module(vec![fb]);
        run1(&m, &[s.canon(a)]).unwrap()[0]
    }

    fn cmp_op(op: CmpOp, s: Scalar, a: u64, b: u64) -> bool {
        let mut fb = FB::new("cmp", vec![s.into(), s.into()], Type::BOOL);
        let (x, y) = (fb.p(0), fb.p(1));
        let r = fb.cmp(op, x, y);
        fb.ret(Some(r));
        let m = module(vec![fb]);
        match run1(&m, &[s.canon(a), s.canon(b)]).unwrap()[0] {
            0 => false,
            1 => true,
            x => panic!("non-canonical bool {x}"),
        }
    }

    fn cast_op(from: Scalar, to: Scalar, a: u64) -> u64 {
        let mut fb = FB::new("cast", vec![from.into()], to.into());
        let x = fb.p(0);
        let r = fb.ins(InstKind::Cast { to, arg: x }, to.into());
        fb.ret(Some(r));
        let m = module(vec![fb]);
        run1(&m, &[from.canon(a)]).unwrap()[0]
    }

    fn f32b(x: f32) -> u64 {
        x.to_bits() as u64
    }
    fn f64b(x: f64) -> u64 {
        x.to_bits()
    }

    use Scalar::*;

    // ----- control flow -----

    fn fib_module() -> Module {
        // fib(n) = n < 2 ? n : fib(n-1) + fib(n-2)
        let mut fb = FB::new("fib", vec![Type::I64], Type::I64);
        let n = fb.p(0);
        let two = fb.c(I64, 2);
        let lt = fb.cmp(CmpOp::Lt, n, two);
        let (base, _) = fb.block(&[]);
        let (rec, _) = fb.block(&[]);
        fb.brif(lt, base, vec![], rec, vec![]);
        fb.cur = base;
        fb.ret(Some(n));
        fb.cur = rec;
        let one = fb.c(I64, 1);
        let n1 = fb.bin(BinOp::Sub, n, one);
        let n2 = fb.bin(BinOp::Sub, n, two);
        let a = fb.call(Callee::Func(FuncId(0)), vec![n1], Type::I64).unwrap();
        let b = fb.call(Callee::Func(FuncId(0)), vec![n2], Type::I64).unwrap();
        let s = fb.bin(BinOp::Add, a, b);
        fb.ret(Some(s));
        module(vec![fb])
    }

    #[test]
    fn fib() {
        let m = fib_module();
        let mut it = Interpreter::new(&m);
        assert_eq!(it.call(FuncId(0), &[20]).unwrap(), vec![6765]);
        assert_eq!(it.call(FuncId(0), &[1]).unwrap(), vec![1]);
        let t = std::time::Instant::now();
        assert_eq!(it.call(FuncId(0), &[25]).unwrap(), vec![75025]);
        eprintln!("fib(25) took {:?}", t.elapsed());
    }

    fn sum_module() -> Module {
        // sum(n) = 0 + 1 + ... + (n-1), with a loop carrying (i, acc).
        let mut fb = FB::new("sum", vec![Type::U32], Type::U64);
        let n = fb.p(0);
        let z32 = fb.c(U32, 0);
        let z64 = fb.c(U64, 0);
        let (head, hp) = fb.block(&[Type::U32, Type::U64]);
        let (body, _) = fb.block(&[]);
        let (exit, _) = fb.block(&[]);
        fb.jump(head, vec![z32, z64]);
        fb.cur = head;
        let c = fb.cmp(CmpOp::Lt, hp[0], n);
        fb.brif(c, body, vec![], exit, vec![]);
        fb.cur = body;
        let wide = fb.ins(InstKind::Cast { to: U64, arg: hp[0] }, Type::U64);
        let acc = fb.bin(BinOp::Add, hp[1], wide);
        let one = fb.c(U32, 1);
        let i1 = fb.bin(BinOp::Add, hp[0], one);
        fb.jump(head, vec![i1, acc]);
        fb.cur = exit;
        fb.ret(Some(hp[1]));
        module(vec![fb])
    }

    #[test]
    fn loop_sum_and_step_limit() {
        let m = sum_module();
        let mut it = Interpreter::new(&m);
        assert_eq!(it.call(FuncId(0), &[100_000]).unwrap(), vec![4_999_950_000]);
        assert_eq!(it.call(FuncId(0), &[0]).unwrap(), vec![0]);
        // n = 0 runs exactly: 2 consts, jump, cmp, brif, return = 6 instructions.
        it.set_step_limit(Some(6));
        assert_eq!(it.call(FuncId(0), &[0]).unwrap(), vec![0]);
        it.set_step_limit(Some(5));
        assert_eq!(
            it.call(FuncId(0), &[0]),
            Err(RunError::Usage(UsageError("step limit of 5 instructions exceeded".into())))
        );
        it.set_step_limit(Some(1000));
        match it.call(FuncId(0), &[1_000_000]) {
            Err(RunError::Usage(u)) => assert_eq!(u.0, "step limit of 1000 instructions exceeded"),
            other => panic!("{other:?}"),
        }
        it.set_step_limit(None);
        assert_eq!(it.call(FuncId(0), &[10]).unwrap(), vec![45]);
        // Wrong argument count.
        assert!(matches!(it.call(FuncId(0), &[]), Err(RunError::Usage(_))));
        assert!(matches!(it.call(FuncId(7), &[1]), Err(RunError::Usage(_))));
    }

    #[test]
    fn parallel_block_params() {
        // swap loop: (a, b) -> (b, a) three times.
        let mut fb = FB::new("swap", vec![Type::I32, Type::I32], Type::I32);
        let (a, b) = (fb.p(0), fb.p(1));
        let zero = fb.c(I32, 0);
        let (head, hp) = fb.block(&[Type::I32, Type::I32, Type::I32]);
        let (exit, _) = fb.block(&[]);
        fb.jump(head, vec![a, b, zero]);
        fb.cur = head;
        let three = fb.c(I32, 3);
        let one = fb.c(I32, 1);
        let k1 = fb.bin(BinOp::Add, hp[2], one);
        let done = fb.cmp(CmpOp::Ge, k1, three);
        fb.brif(done, exit, vec![], head, vec![hp[1], hp[0], k1]);
        fb.cur = exit;
        // After 3 iterations (head entered with k=0,1,2), swapped twice: (a, b); then
        // the exit sees the params of the last entry.
        let ten = fb.c(I32, 10);
        let x = fb.bin(BinOp::Mul, hp[0], ten);
        let r = fb.bin(BinOp::Add, x, hp[1]);
        fb.ret(Some(r));
        let m = module(vec![fb]);
        assert_eq!(run1(&m, &[1, 2]).unwrap(), vec![12]);
    }

    #[test]
    fn switch() {
        let mut fb = FB::new("sw", vec![Type::I8], Type::I32);
        let x = fb.p(0);
        let (b1, _) = fb.block(&[]);
        let (b2, p2) = fb.block(&[Type::I8]);
        let (bd, _) = fb.block(&[]);
        fb.eff(InstKind::Switch {
            value: x,
            cases: vec![
                (I8.canon(-1i64 as u64), BlockCall { block: b1, args: vec![] }),
                (5, BlockCall { block: b2, args: vec![x] }),
            ],
            default: BlockCall { block: bd, args: vec![] },
        });
        fb.cur = b1;
        let r1 = fb.c(I32, 100);
        fb.ret(Some(r1));
        fb.cur = b2;
        let w = fb.ins(InstKind::Cast { to: I32, arg: p2[0] }, Type::I32);
        fb.ret(Some(w));
        fb.cur = bd;
        let r3 = fb.c(I32, -7);
        fb.ret(Some(r3));
        let m = module(vec![fb]);
        assert_eq!(run1(&m, &[I8.canon(-1i64 as u64)]).unwrap(), vec![100]);
        assert_eq!(run1(&m, &[5]).unwrap(), vec![5]);
        assert_eq!(run1(&m, &[6]).unwrap(), vec![I32.canon(-7i64 as u64)]);
        assert_eq!(run1(&m, &[255]).unwrap(), vec![100], "args are canonicalised");
    }

    #[test]
    fn trap_and_unreachable() {
        let mut fb = FB::new("t", vec![Type::BOOL], Type::Void);
        let (b1, _) = fb.block(&[]);
        let (b2, _) = fb.block(&[]);
        let c = fb.p(0);
        fb.brif(c, b1, vec![], b2, vec![]);
        fb.cur = b1;
        fb.eff(InstKind::Trap);
        fb.cur = b2;
        fb.eff(InstKind::Unreachable);
        let m = module(vec![fb]);
        match run1(&m, &[1]) {
            Err(RunError::Trap(t)) => {
                assert_eq!(t, Trap { kind: TrapKind::User, function: Some("t".into()) })
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(trap_kind(run1(&m, &[0])), TrapKind::Unreachable);
    }

    #[test]
    fn void_function_and_select() {
        let mut fb = FB::new("v", vec![], Type::Void);
        fb.ret(None);
        let mut g = FB::new("sel", vec![Type::BOOL, Type::Str, Type::Str], Type::Str);
        let (c, a, b) = (g.p(0), g.p(1), g.p(2));
        let _ = g.call(Callee::Func(FuncId(0)), vec![], Type::Void);
        let r = g.ins(InstKind::Select { cond: c, if_true: a, if_false: b }, Type::Str);
        g.ret(Some(r));
        let m = module(vec![fb, g]);
        let mut it = Interpreter::new(&m);
        assert_eq!(it.call(FuncId(0), &[]).unwrap(), Vec::<u64>::new());
        assert_eq!(it.call(FuncId(1), &[1, 10, 11, 20, 21]).unwrap(), vec![10, 11]);
        assert_eq!(it.call(FuncId(1), &[0, 10, 11, 20, 21]).unwrap(), vec![20, 21]);
    }

    // ----- integer ops -----

    #[test]
    fn wrapping_arith_at_every_width() {
        assert_eq!(bi(BinOp::Add, I8, 127, 1), -128);
        assert_eq!(bi(BinOp::Add, U8, 255, 1), 0);
        assert_eq!(bi(BinOp::Sub, U8, 0, 1), 255);
        assert_eq!(bi(BinOp::Sub, I16, -32768, 1), 32767);
        assert_eq!(bi(BinOp::Mul, I16, 300, 300), (90000i32 as i16) as i64);
        assert_eq!(bi(BinOp::Mul, U16, 300, 300), (90000u32 as u16) as i64);
        assert_eq!(bi(BinOp::Add, I32, i32::MAX as i64, 1), i32::MIN as i64);
        assert_eq!(bi(BinOp::Add, U32, u32::MAX as i64, 2), 1);
        assert_eq!(bi(BinOp::Mul, I32, 65536, 65536), 0);
        assert_eq!(bi(BinOp::Add, I64, i64::MAX, 1), i64::MIN);
        assert_eq!(bin_op(BinOp::Mul, U64, u64::MAX, u64::MAX).unwrap(), 1);
        // Results are canonical: u32 never sign-extended, i8 always.
        assert_eq!(bin_op(BinOp::Sub, U32, 0, 1).unwrap(), 0xFFFF_FFFF);
        assert_eq!(bin_op(BinOp::Sub, I8, 0, 1).unwrap(), u64::MAX);
    }

    #[test]
    fn division() {
        // Signed vs unsigned.
        assert_eq!(bi(BinOp::Div, I32, -7, 2), -3);
        assert_eq!(bi(BinOp::Rem, I32, -7, 2), -1);
        assert_eq!(bi(BinOp::Div, U32, -7i32 as u32 as i64, 2), ((-7i32 as u32) / 2) as i64);
        assert_eq!(bi(BinOp::Rem, U8, 250, 7), 250 % 7);
        assert_eq!(bi(BinOp::Div, I8, -128, 2), -64);
        assert_eq!(bi(BinOp::Div, U8, 200, 3), 66);
        assert_eq!(bin_op(BinOp::Div, U64, u64::MAX, 2).unwrap(), u64::MAX / 2);
        assert_eq!(bi(BinOp::Div, I64, i64::MIN, 2), i64::MIN / 2);
        // Zero divisors at every width.
        for s in [I8, I16, I32, I64, U8, U16, U32, U64] {
            assert_eq!(bin_trap(BinOp::Div, s, 5, 0), TrapKind::DivisionByZero, "{s}");
            assert_eq!(bin_trap(BinOp::Rem, s, 5, 0), TrapKind::DivisionByZero, "{s}");
            assert_eq!(bin_trap(BinOp::Rem, s, 0, 0), TrapKind::DivisionByZero, "{s}");
        }
        // MIN / -1 traps at every signed width; MIN % -1 is 0.
        for (s, min) in [(I8, -128i64), (I16, -32768), (I32, i32::MIN as i64), (I64, i64::MIN)] {
            assert_eq!(bin_trap(BinOp::Div, s, min, -1), TrapKind::IntegerOverflow, "{s}");
            assert_eq!(bi(BinOp::Rem, s, min, -1), 0, "{s}");
            assert_eq!(bi(BinOp::Div, s, min + 1, -1), -(min + 1), "{s}");
        }
        // Unsigned "MIN / -1" is a plain division.
        assert_eq!(bi(BinOp::Div, U8, 128, 255), 0);
        assert_eq!(bi(BinOp::Div, U8, 255, 255), 1);
    }

    #[test]
    fn bitwise_and_shifts() {
        assert_eq!(bi(BinOp::And, I8, -1, 0x0F), 0x0F);
        assert_eq!(bi(BinOp::Or, U16, 0xF000, 0x000F), 0xF00F);
        assert_eq!(bi(BinOp::Xor, I32, -1, 0), -1);
        for op in [BinOp::And, BinOp::Or, BinOp::Xor] {
            for a in 0..2u64 {
                for b in 0..2u64 {
                    let want = match op {
                        BinOp::And => a & b,
                        BinOp::Or => a | b,
                        _ => a ^ b,
                    };
                    assert_eq!(bin_op(op, Bool, a, b).unwrap(), want);
                }
            }
        }
        // Amount taken modulo the width.
        assert_eq!(bi(BinOp::Shl, I8, 1, 7), -128);
        assert_eq!(bi(BinOp::Shl, I8, 1, 8), 1);
        assert_eq!(bi(BinOp::Shl, I8, 1, 9), 2);
        assert_eq!(bi(BinOp::Shl, U8, 1, -1), 128, "-1 & 7 = 7");
        assert_eq!(bi(BinOp::Shl, U16, 3, 16), 3);
        assert_eq!(bi(BinOp::Shl, U16, 3, 15), 0x8000);
        assert_eq!(bi(BinOp::Shl, I32, 1, 32), 1);
        assert_eq!(bi(BinOp::Shl, I32, 1, 31), i32::MIN as i64);
        assert_eq!(bi(BinOp::Shl, I64, 1, 64), 1);
        assert_eq!(bi(BinOp::Shl, I64, 1, -1), i64::MIN);
        assert_eq!(bi(BinOp::Shr, I8, -128, 7), -1);
        assert_eq!(bi(BinOp::Shr, I8, -128, 8), -128);
        assert_eq!(bi(BinOp::Shr, U8, 128, 7), 1);
        assert_eq!(bi(BinOp::Shr, U8, 128, 15), 1);
        assert_eq!(bi(BinOp::Shr, I16, -2, 1), -1);
        assert_eq!(bi(BinOp::Shr, U16, 0xFFFE, 1), 0x7FFF);
        assert_eq!(bi(BinOp::Shr, I32, -8, 33), -4);
        assert_eq!(bi(BinOp::Shr, U32, 0xFFFF_FFFF, 31), 1);
        assert_eq!(bi(BinOp::Shr, U32, 0xFFFF_FFFF, -1), 1);
        assert_eq!(bi(BinOp::Shr, I64, i64::MIN, 63), -1);
        assert_eq!(bin_op(BinOp::Shr, U64, u64::MAX, 63).unwrap(), 1);
        assert_eq!(bin_op(BinOp::Shr, U64, u64::MAX, 64).unwrap(), u64::MAX);
        // Rotations.
        assert_eq!(bi(BinOp::Rotl, U8, 0x81, 1), 0x03);
        assert_eq!(bi(BinOp::Rotl, I8, -127, 1), 3);
        assert_eq!(bi(BinOp::Rotr, I8, 1, 1), -128);
        assert_eq!(bi(BinOp::Rotl, U8, 0x81, 9), 0x03);
        assert_eq!(bi(BinOp::Rotr, U16, 1, 1), 0x8000);
        assert_eq!(bi(BinOp::Rotl, U16, 0x8001, -1), 0xC000);
        assert_eq!(bi(BinOp::Rotl, U32, 0x8000_0001, 4), 0x18);
        assert_eq!(bi(BinOp::Rotr, I32, 1, 1), i32::MIN as i64);
        assert_eq!(bi(BinOp::Rotl, I64, i64::MIN, 1), 1);
        assert_eq!(bi(BinOp::Rotr, I64, 1, 65), i64::MIN);
    }

    #[test]
    fn int_min_max() {
        assert_eq!(bi(BinOp::Min, I8, -1, 1), -1);
        assert_eq!(bi(BinOp::Min, U8, 255, 1), 1);
        assert_eq!(bi(BinOp::Max, I8, -1, 1), 1);
        assert_eq!(bi(BinOp::Max, U8, 255, 1), 255);
        assert_eq!(bi(BinOp::Min, I64, i64::MIN, i64::MAX), i64::MIN);
        assert_eq!(bin_op(BinOp::Max, U64, u64::MAX, 0).unwrap(), u64::MAX);
        assert_eq!(bi(BinOp::Max, I32, -5, -7), -5);
        assert_eq!(bi(BinOp::Min, U32, 0xFFFF_FFFF, 7), 7);
        assert_eq!(bi(BinOp::Min, I16, -32768, 32767), -32768);
        assert_eq!(bi(BinOp::Max, U16, 0x8000, 0x7FFF), 0x8000);
    }

    #[test]
    fn int_unary() {
        assert_eq!(un_op(UnOp::Neg, I8, -128i64 as u64), (-128i64) as u64);
        assert_eq!(un_op(UnOp::Neg, U8, 1), 255);
        assert_eq!(un_op(UnOp::Neg, I32, 5), -5i64 as u64);
        assert_eq!(un_op(UnOp::Neg, U64, 1), u64::MAX);
        assert_eq!(un_op(UnOp::Abs, I8, -128i64 as u64), -128i64 as u64);
        assert_eq!(un_op(UnOp::Abs, I16, -5i64 as u64), 5);
        assert_eq!(un_op(UnOp::Abs, I64, i64::MIN as u64), i64::MIN as u64);
        assert_eq!(un_op(UnOp::Abs, U32, 0xFFFF_FFFF), 0xFFFF_FFFF);
        assert_eq!(un_op(UnOp::Not, I8, 0), u64::MAX);
        assert_eq!(un_op(UnOp::Not, U8, 0), 255);
        assert_eq!(un_op(UnOp::Not, U32, 0), 0xFFFF_FFFF);
        assert_eq!(un_op(UnOp::Not, Bool, 0), 1);
        assert_eq!(un_op(UnOp::Not, Bool, 1), 0);
        for (s, w) in [(I8, 8u64), (U8, 8), (I16, 16), (U16, 16), (I32, 32), (U32, 32), (I64, 64), (U64, 64)]
        {
            assert_eq!(un_op(UnOp::Clz, s, 0), w, "{s}");
            assert_eq!(un_op(UnOp::Ctz, s, 0), w, "{s}");
            assert_eq!(un_op(UnOp::Popcnt, s, 0), 0, "{s}");
            assert_eq!(un_op(UnOp::Clz, s, 1), w - 1, "{s}");
            assert_eq!(un_op(UnOp::Ctz, s, 1), 0, "{s}");
            assert_eq!(un_op(UnOp::Clz, s, u64::MAX), 0, "{s}");
            assert_eq!(un_op(UnOp::Popcnt, s, u64::MAX), w, "{s}");
            assert_eq!(un_op(UnOp::Ctz, s, 1 << (w - 1)), w - 1, "{s}");
        }
        assert_eq!(un_op(UnOp::Popcnt, I8, -1i64 as u64), 8);
        assert_eq!(un_op(UnOp::Clz, I16, 0x00F0), 8);
    }

    #[test]
    fn int_compare() {
        assert!(cmp_op(CmpOp::Lt, I8, -1i64 as u64, 1));
        assert!(!cmp_op(CmpOp::Lt, U8, 255, 1));
        assert!(cmp_op(CmpOp::Gt, U32, 0xFFFF_FFFF, 0));
        assert!(cmp_op(CmpOp::Lt, I32, 0xFFFF_FFFF, 0));
        assert!(cmp_op(CmpOp::Lt, I64, i64::MIN as u64, i64::MAX as u64));
        assert!(!cmp_op(CmpOp::Lt, U64, i64::MIN as u64, i64::MAX as u64));
        assert!(cmp_op(CmpOp::Le, I16, 3, 3));
        assert!(cmp_op(CmpOp::Ge, U16, 3, 3));
        assert!(!cmp_op(CmpOp::Ne, U16, 3, 3));
        assert!(cmp_op(CmpOp::Eq, I8, 0xFF, -1i64 as u64));
        assert!(cmp_op(CmpOp::Lt, Bool, 0, 1));
        assert!(cmp_op(CmpOp::Gt, Ptr, u64::MAX, 1));
        for op in CmpOp::ALL {
            let want = matches!(op, CmpOp::Eq | CmpOp::Ge | CmpOp::Le);
            assert_eq!(cmp_op(op, I32, 7, 7), want);
        }
    }

    // ----- floats -----

    #[test]
    fn float_arith() {
        let fb = |op, a: f64, b: f64| f64::from_bits(bin_op(op, F64, f64b(a), f64b(b)).unwrap());
        let ff = |op, a: f32, b: f32| f32::from_bits(bin_op(op, F32, f32b(a), f32b(b)).unwrap() as u32);
        assert_eq!(fb(BinOp::Add, 0.1, 0.2), 0.1 + 0.2);
        assert_eq!(ff(BinOp::Add, 0.1, 0.2), 0.1f32 + 0.2f32);
        assert_eq!(ff(BinOp::Mul, 16777217.0, 3.0), 16777217.0f32 * 3.0);
        assert_eq!(ff(BinOp::Div, 1.0, 3.0), 1.0f32 / 3.0);
        assert_eq!(fb(BinOp::Div, 1.0, 0.0), f64::INFINITY);
        assert_eq!(fb(BinOp::Rem, 7.5, 2.0), 1.5);
        assert_eq!(ff(BinOp::Sub, 1.0, 1e-8), 1.0f32 - 1e-8f32);
        // Results are canonical: the upper half of an f32 is 0.
        assert_eq!(bin_op(BinOp::Add, F32, f32b(-1.0), f32b(-1.0)).unwrap() >> 32, 0);
        // min/max: NaN wins, -0 < +0.
        for op in [BinOp::Min, BinOp::Max] {
            assert!(fb(op, f64::NAN, 1.0).is_nan());
            assert!(fb(op, 1.0, f64::NAN).is_nan());
            assert!(ff(op, f32::NAN, 1.0).is_nan());
            assert!(ff(op, 1.0, f32::NAN).is_nan());
            assert!(fb(op, f64::NAN, f64::NAN).is_nan());
        }
        assert_eq!(f64b(fb(BinOp::Min, 0.0, -0.0)), f64b(-0.0));
        assert_eq!(f64b(fb(BinOp::Min, -0.0, 0.0)), f64b(-0.0));
        assert_eq!(f64b(fb(BinOp::Max, 0.0, -0.0)), f64b(0.0));
        assert_eq!(f64b(fb(BinOp::Max, -0.0, 0.0)), f64b(0.0));
        assert_eq!(f32b(ff(BinOp::Min, 0.0, -0.0)), f32b(-0.0));
        assert_eq!(f32b(ff(BinOp::Max, -0.0, 0.0)), f32b(0.0));
        assert_eq!(fb(BinOp::Min, -1.0, 2.0), -1.0);
        assert_eq!(fb(BinOp::Max, -1.0, 2.0), 2.0);
        assert_eq!(fb(BinOp::Min, f64::NEG_INFINITY, 2.0), f64::NEG_INFINITY);
        assert_eq!(ff(BinOp::Max, f32::INFINITY, 2.0), f32::INFINITY);
        // A NaN result is the (quieted) NaN operand, the first one if both are.
        let snan = 0x7FF0_0000_0000_0001u64;
        assert_eq!(bin_op(BinOp::Min, F64, snan, f64b(1.0)).unwrap(), snan | 0x0008_0000_0000_0000);
        let n1 = 0x7FC0_0001u64;
        let n2 = 0xFFC0_0002u64;
        assert_eq!(bin_op(BinOp::Max, F32, n1, n2).unwrap(), n1);
        assert_eq!(bin_op(BinOp::Max, F32, f32b(3.0), n2).unwrap(), n2);
    }

    #[test]
    fn float_unary() {
        let nan_payload = 0x7FF8_0000_0000_1234u64;
        assert_eq!(un_op(UnOp::Neg, F64, nan_payload), nan_payload | (1 << 63));
        assert_eq!(un_op(UnOp::Abs, F64, nan_payload | (1 << 63)), nan_payload);
        assert_eq!(un_op(UnOp::Neg, F64, f64b(0.0)), f64b(-0.0));
        assert_eq!(un_op(UnOp::Neg, F32, f32b(0.0)), f32b(-0.0));
        assert_eq!(un_op(UnOp::Abs, F32, f32b(-2.5)), f32b(2.5));
        assert_eq!(un_op(UnOp::Abs, F32, 0xFFC0_0001), 0x7FC0_0001);
        assert_eq!(un_op(UnOp::Sqrt, F64, f64b(2.0)), f64b(2f64.sqrt()));
        assert_eq!(un_op(UnOp::Sqrt, F32, f32b(2.0)), f32b(2f32.sqrt()));
        assert_eq!(un_op(UnOp::Sqrt, F64, f64b(-0.0)), f64b(-0.0));
        assert!(f64::from_bits(un_op(UnOp::Sqrt, F64, f64b(-1.0))).is_nan());
    }

    #[test]
    fn float_compare() {
        let nan = f64b(f64::NAN);
        for op in CmpOp::ALL {
            assert_eq!(cmp_op(op, F64, nan, f64b(1.0)), op == CmpOp::Ne, "{op:?}");
            assert_eq!(cmp_op(op, F64, nan, nan), op == CmpOp::Ne, "{op:?}");
            assert_eq!(cmp_op(op, F32, f32b(f32::NAN), f32b(1.0)), op == CmpOp::Ne, "{op:?}");
        }
        assert!(cmp_op(CmpOp::Eq, F64, f64b(0.0), f64b(-0.0)));
        assert!(cmp_op(CmpOp::Lt, F32, f32b(-1.0), f32b(1.0)));
        assert!(cmp_op(CmpOp::Ge, F32, f32b(f32::INFINITY), f32b(1.0)));
        assert!(!cmp_op(CmpOp::Gt, F64, f64b(1.0), f64b(1.0)));
    }

    // ----- casts -----

    #[test]
    fn int_casts() {
        assert_eq!(cast_op(I8, I32, -1i64 as u64), -1i64 as u64);
        assert_eq!(cast_op(I8, U32, -1i64 as u64), 0xFFFF_FFFF);
        assert_eq!(cast_op(U8, I32, 255), 255);
        assert_eq!(cast_op(U8, I8, 255), -1i64 as u64);
        assert_eq!(cast_op(I32, U8, 0x1234_5678), 0x78);
        assert_eq!(cast_op(I64, I16, 0x1_8000), -32768i64 as u64);
        assert_eq!(cast_op(U64, I64, u64::MAX), u64::MAX);
        assert_eq!(cast_op(I32, U64, -2i64 as u64), (-2i64) as u64);
        assert_eq!(cast_op(U32, I64, 0xFFFF_FFFF), 0xFFFF_FFFF);
        assert_eq!(cast_op(I32, Bool, 0), 0);
        assert_eq!(cast_op(I32, Bool, -5i64 as u64), 1);
        assert_eq!(cast_op(U64, Bool, 1 << 63), 1);
        assert_eq!(cast_op(Bool, I32, 1), 1);
        assert_eq!(cast_op(Bool, I8, 1), 1);
        assert_eq!(cast_op(Bool, F64, 1), f64b(1.0));
        assert_eq!(cast_op(Bool, F32, 0), f32b(0.0));
        assert_eq!(cast_op(Ptr, U64, 0xDEAD_BEEF_0000), 0xDEAD_BEEF_0000);
        assert_eq!(cast_op(I64, Ptr, -1i64 as u64), u64::MAX);
        assert_eq!(cast_op(I32, I32, 5), 5);
        // int -> float rounds to nearest.
        assert_eq!(cast_op(U64, F32, u64::MAX), f32b(u64::MAX as f32));
        assert_eq!(cast_op(U64, F32, u64::MAX), f32b(18446744073709551616.0));
        assert_eq!(cast_op(U64, F32, (1 << 24) + 1), f32b(16777216.0));
        assert_eq!(cast_op(U64, F32, (1 << 24) + 3), f32b(16777220.0));
        // Single rounding (via f64 would give 0x1p+60 + ...): 2^60 + 2^36 + 1 -> nearest f32.
        let v = (1u64 << 60) + (1 << 36) + 1;
        assert_eq!(cast_op(U64, F32, v), f32b(v as f32));
        assert_eq!(cast_op(I64, F32, -1i64 as u64), f32b(-1.0));
        assert_eq!(cast_op(U64, F64, u64::MAX), f64b(u64::MAX as f64));
        assert_eq!(cast_op(I64, F64, i64::MIN as u64), f64b(i64::MIN as f64));
        assert_eq!(cast_op(I8, F64, -128i64 as u64), f64b(-128.0));
        assert_eq!(cast_op(U8, F32, 255), f32b(255.0));
        assert_eq!(cast_op(U32, F64, 0xFFFF_FFFF), f64b(4294967295.0));
        assert_eq!(cast_op(I32, F32, 0xFFFF_FFFF), f32b(-1.0));
    }

    #[test]
    fn float_casts() {
        let specials =
            [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e300, -1e300, 300.7, -300.7, -0.9, 0.9, 128.0];
        for x in specials {
            macro_rules! check {
                ($s:expr, $t:ty) => {
                    let want = (x as $t) as i64 as u64;
                    assert_eq!(cast_op(F64, $s, f64b(x)), $s.canon(want), "{x} -> {}", $s);
                    let y = x as f32;
                    let want32 = (y as $t) as i64 as u64;
                    assert_eq!(cast_op(F32, $s, f32b(y)), $s.canon(want32), "{y}f32 -> {}", $s);
                };
            }
            check!(I8, i8);
            check!(I16, i16);
            check!(I32, i32);
            check!(I64, i64);
            check!(U8, u8);
            check!(U16, u16);
            check!(U32, u32);
            check!(U64, u64);
        }
        // Explicit saturation values.
        assert_eq!(cast_op(F64, I8, f64b(f64::NAN)), 0);
        assert_eq!(cast_op(F64, I8, f64b(f64::INFINITY)), 127);
        assert_eq!(cast_op(F64, I8, f64b(f64::NEG_INFINITY)), -128i64 as u64);
        assert_eq!(cast_op(F64, U8, f64b(-5.0)), 0);
        assert_eq!(cast_op(F64, U8, f64b(256.0)), 255);
        assert_eq!(cast_op(F32, U64, f32b(f32::INFINITY)), u64::MAX);
        assert_eq!(cast_op(F32, I64, f32b(f32::NEG_INFINITY)), i64::MIN as u64);
        assert_eq!(cast_op(F64, I32, f64b(-2.9)), -2i64 as u64);
        assert_eq!(cast_op(F64, U32, f64b(4294967296.0)), 0xFFFF_FFFF);
        // To bool.
        assert_eq!(cast_op(F64, Bool, f64b(0.0)), 0);
        assert_eq!(cast_op(F64, Bool, f64b(-0.0)), 0);
        assert_eq!(cast_op(F64, Bool, f64b(f64::NAN)), 1);
        assert_eq!(cast_op(F32, Bool, f32b(0.5)), 1);
        // Float <-> float.
        assert_eq!(cast_op(F64, F32, f64b(0.1)), f32b(0.1f64 as f32));
        assert_eq!(cast_op(F64, F32, f64b(1e300)), f32b(f32::INFINITY));
        assert_eq!(cast_op(F64, F32, f64b(-1e-300)), f32b(-0.0));
        // Round to nearest even: 1 + 2^-24 is a tie between 1 and 1 + 2^-23.
        assert_eq!(cast_op(F64, F32, f64b(1.0 + f64::powi(2.0, -24))), f32b(1.0));
        assert_eq!(
            cast_op(F64, F32, f64b(1.0 + 3.0 * f64::powi(2.0, -24))),
            f32b(1.0 + 2.0 * f32::powi(2.0, -23))
        );
        assert_eq!(cast_op(F32, F64, f32b(0.1)), f64b(0.1f32 as f64));
        assert!(f32::from_bits(cast_op(F64, F32, f64b(f64::NAN)) as u32).is_nan());
    }

    #[test]
    fn bitcasts() {
        let bc = |from: Scalar, to: Scalar, a: u64| {
            let mut fb = FB::new("bc", vec![from.into()], to.into());
            let x = fb.p(0);
            let r = fb.ins(InstKind::Bitcast { to, arg: x }, to.into());
            fb.ret(Some(r));
            run1(&module(vec![fb]), &[from.canon(a)]).unwrap()[0]
        };
        assert_eq!(bc(F32, I32, f32b(-1.0)), 0xBF80_0000u32 as i32 as i64 as u64);
        assert_eq!(bc(F32, U32, f32b(-1.0)), 0xBF80_0000);
        assert_eq!(bc(I32, F32, -1i64 as u64), 0xFFFF_FFFF);
        assert_eq!(bc(F64, I64, f64b(1.0)), 0x3FF0_0000_0000_0000);
        assert_eq!(bc(U64, F64, 0x7FF8_0000_0000_0001), 0x7FF8_0000_0000_0001);
        assert_eq!(bc(U8, I8, 0x80), -128i64 as u64);
        assert_eq!(bc(I16, U16, -1i64 as u64), 0xFFFF);
        assert_eq!(bc(I64, Ptr, 42), 42);
    }

    // ----- memory and aggregates -----

    #[test]
    fn struct_and_array_in_heap() {
        // struct S { i8 a; f64 b; u16 c } ; allocate [S; 3], fill S[2], load back.
        let s_ty = Type::Struct(vec![Type::I8, Type::F64, Type::U16]);
        let arr = Type::Array(Box::new(Type::I32), 4);
        let mut fb = FB::new("mem", vec![Type::I64], Type::I64);
        let idx = fb.p(0);
        let three = fb.c(U64, 3);
        let p = fb.ins(InstKind::Alloc { ty: s_ty.clone(), count: three }, Type::PTR);
        let e = fb.ins(InstKind::ElemAddr { elem: s_ty.clone(), ptr: p, index: idx }, Type::PTR);
        let fa = fb.ins(InstKind::FieldAddr { ty: s_ty.clone(), ptr: e, field: 0 }, Type::PTR);
        let fbp = fb.ins(InstKind::FieldAddr { ty: s_ty.clone(), ptr: e, field: 1 }, Type::PTR);
        let fc = fb.ins(InstKind::FieldAddr { ty: s_ty.clone(), ptr: e, field: 2 }, Type::PTR);
        let m5 = fb.c(I8, -5);
        let half = fb.cu(F64, f64b(0.5));
        let big = fb.c(U16, 65535);
        fb.eff(InstKind::Store { ptr: fa, value: m5 });
        fb.eff(InstKind::Store { ptr: fbp, value: half });
        fb.eff(InstKind::Store { ptr: fc, value: big });
        // Whole-struct load, extract, insert, store to element 0, reload.
        let sv = fb.ins(InstKind::Load { ty: s_ty.clone(), ptr: e }, s_ty.clone());
        let a = fb.ins(InstKind::ExtractValue { agg: sv, index: 0 }, Type::I8);
        let c = fb.ins(InstKind::ExtractValue { agg: sv, index: 2 }, Type::U16);
        let seven = fb.c(U16, 7);
        let sv2 = fb.ins(InstKind::InsertValue { agg: sv, index: 2, value: seven }, s_ty.clone());
        let zero = fb.c(I64, 0);
        let e0 = fb.ins(InstKind::ElemAddr { elem: s_ty.clone(), ptr: p, index: zero }, Type::PTR);
        fb.eff(InstKind::Store { ptr: e0, value: sv2 });
        let back = fb.ins(InstKind::Load { ty: s_ty.clone(), ptr: e0 }, s_ty.clone());
        let c0 = fb.ins(InstKind::ExtractValue { agg: back, index: 2 }, Type::U16);
        let b0 = fb.ins(InstKind::ExtractValue { agg: back, index: 1 }, Type::F64);
        // Array value: zero, insert, store, read element via elem.addr.
        let av = fb.ins(InstKind::Zero { ty: arr.clone() }, arr.clone());
        let m9 = fb.c(I32, -9);
        let av = fb.ins(InstKind::InsertValue { agg: av, index: 3, value: m9 }, arr.clone());
        let one = fb.c(U64, 1);
        let q = fb.ins(InstKind::Alloc { ty: arr.clone(), count: one }, Type::PTR);
        fb.eff(InstKind::Store { ptr: q, value: av });
        let three_u = fb.c(U8, 3);
        let q3 = fb.ins(InstKind::ElemAddr { elem: Type::I32, ptr: q, index: three_u }, Type::PTR);
        let el = fb.ins(InstKind::Load { ty: Type::I32, ptr: q3 }, Type::I32);
        let av_back = fb.ins(InstKind::Load { ty: arr.clone(), ptr: q }, arr.clone());
        let el2 = fb.ins(InstKind::ExtractValue { agg: av_back, index: 3 }, Type::I32);
        let el0 = fb.ins(InstKind::ExtractValue { agg: av_back, index: 0 }, Type::I32);
        // result = a + c + c0 + b0 + el + el2 + el0 as i64
        let mut acc = fb.ins(InstKind::Cast { to: I64, arg: a }, Type::I64);
        for v in [c, c0, el, el2, el0] {
            let w = fb.ins(InstKind::Cast { to: I64, arg: v }, Type::I64);
            acc = fb.bin(BinOp::Add, acc, w);
        }
        let bw = fb.ins(InstKind::Cast { to: I64, arg: b0 }, Type::I64); // 0.5 -> 0
        acc = fb.bin(BinOp::Add, acc, bw);
        let two_f = fb.cu(F64, f64b(2.0));
        let b2 = fb.bin(BinOp::Mul, b0, two_f);
        let bw2 = fb.ins(InstKind::Cast { to: I64, arg: b2 }, Type::I64); // 1
        acc = fb.bin(BinOp::Add, acc, bw2);
        fb.eff(InstKind::Free { ptr: p });
        fb.eff(InstKind::Free { ptr: q });
        fb.ret(Some(acc));
        let m = module(vec![fb]);
        // -5 + 65535 + 7 + (-9) + (-9) + 0 + 0 + 1
        assert_eq!(run1(&m, &[2]).unwrap(), vec![(-5i64 + 65535 + 7 - 9 - 9 + 1) as u64]);
    }

    #[test]
    fn bool_memory_and_negative_index() {
        let mut fb = FB::new("b", vec![], Type::BOOL);
        let n = fb.c(U64, 4);
        let p = fb.ins(InstKind::Alloc { ty: Type::U8, count: n }, Type::PTR);
        let two = fb.c(I32, 2);
        let p2 = fb.ins(InstKind::ElemAddr { elem: Type::U8, ptr: p, index: two }, Type::PTR);
        let m1 = fb.c(I32, -1);
        let p1 = fb.ins(InstKind::ElemAddr { elem: Type::U8, ptr: p2, index: m1 }, Type::PTR);
        let t = fb.c(Bool, 1);
        fb.eff(InstKind::Store { ptr: p1, value: t });
        let byte = fb.ins(InstKind::Load { ty: Type::U8, ptr: p1 }, Type::U8);
        let ff = fb.c(U8, 0xFE);
        fb.eff(InstKind::Store { ptr: p, value: ff });
        let b0 = fb.ins(InstKind::Load { ty: Type::BOOL, ptr: p }, Type::BOOL); // 0xFE & 1 = 0
        let b1 = fb.ins(InstKind::Load { ty: Type::BOOL, ptr: p1 }, Type::BOOL); // 1
        let one = fb.c(U8, 1);
        let is1 = fb.cmp(CmpOp::Eq, byte, one);
        let nb0 = fb.ins(InstKind::Unary { op: UnOp::Not, arg: b0 }, Type::BOOL);
        let r = fb.bin(BinOp::And, is1, nb0);
        let r = fb.bin(BinOp::And, r, b1);
        fb.ret(Some(r));
        let m = module(vec![fb]);
        assert_eq!(run1(&m, &[]).unwrap(), vec![1]);
    }

    #[test]
    fn memcpy_memset() {
        let mut fb = FB::new("mc", vec![], Type::U64);
        let n = fb.c(U64, 16);
        let p = fb.ins(InstKind::Alloc { ty: Type::U8, count: n }, Type::PTR);
        let eight = fb.c(U64, 8);
        let x = fb.c(U8, 0xAB);
        fb.eff(InstKind::MemSet { dst: p, byte: x, len: eight });
        // Overlapping move: copy bytes [0, 8) to [4, 12).
        let four = fb.c(U64, 4);
        let p4 = fb.ins(InstKind::ElemAddr { elem: Type::U8, ptr: p, index: four }, Type::PTR);
        fb.eff(InstKind::MemCopy { dst: p4, src: p, len: eight });
        let zero = fb.c(U64, 0);
        // Zero-length operations on null never fault.
        let null = fb.c(Ptr, 0);
        fb.eff(InstKind::MemCopy { dst: null, src: null, len: zero });
        fb.eff(InstKind::MemSet { dst: null, byte: x, len: zero });
        let lo = fb.ins(InstKind::Load { ty: Type::U64, ptr: p }, Type::U64);
        let p8 = fb.ins(InstKind::ElemAddr { elem: Type::U8, ptr: p, index: eight }, Type::PTR);
        let hi = fb.ins(InstKind::Load { ty: Type::U64, ptr: p8 }, Type::U64);
        let r = fb.bin(BinOp::Xor, lo, hi);
        fb.eff(InstKind::Free { ptr: p });
        fb.ret(Some(r));
        let m = module(vec![fb]);
        let lo = u64::from_le_bytes([0xAB; 8]);
        let hi = u64::from_le_bytes([0xAB, 0xAB, 0xAB, 0xAB, 0, 0, 0, 0]);
        assert_eq!(run1(&m, &[]).unwrap(), vec![lo ^ hi]);
    }

    /// A function `(ptr) -> void` whose body is built by `body`; run with a host buffer.
    fn mem_fault(body: impl FnOnce(&mut FB)) -> Result<Vec<u64>, RunError> {
        let mut fb = FB::new("fault", vec![], Type::Void);
        body(&mut fb);
        fb.ret(None);
        run1(&module(vec![fb]), &[])
    }

    #[test]
    fn memory_faults() {
        use TrapKind::*;
        // Null and near-null.
        assert_eq!(
            trap_kind(mem_fault(|fb| {
                let p = fb.c(Ptr, 0);
                fb.ins(InstKind::Load { ty: Type::I32, ptr: p }, Type::I32);
            })),
            MemoryFault
        );
        assert_eq!(
            trap_kind(mem_fault(|fb| {
                let p = fb.c(Ptr, 4095);
                let v = fb.c(U8, 1);
                fb.eff(InstKind::Store { ptr: p, value: v });
            })),
            MemoryFault
        );
        assert_eq!(
            trap_kind(mem_fault(|fb| {
                let p = fb.c(Ptr, 16);
                let n = fb.c(U64, 1);
                let b = fb.c(U8, 0);
                fb.eff(InstKind::MemSet { dst: p, byte: b, len: n });
            })),
            MemoryFault
        );
        // Use after free.
        assert_eq!(
            trap_kind(mem_fault(|fb| {
                let n = fb.c(U64, 4);
                let p = fb.ins(InstKind::Alloc { ty: Type::I64, count: n }, Type::PTR);
                fb.eff(InstKind::Free { ptr: p });
                fb.ins(InstKind::Load { ty: Type::I64, ptr: p }, Type::I64);
            })),
            MemoryFault
        );
        // Double free.
        assert_eq!(
            trap_kind(mem_fault(|fb| {
                let n = fb.c(U64, 4);
                let p = fb.ins(InstKind::Alloc { ty: Type::I64, count: n }, Type::PTR);
                fb.eff(InstKind::Free { ptr: p });
                fb.eff(InstKind::Free { ptr: p });
            })),
            MemoryFault
        );
        // Free of an interior pointer.
        assert_eq!(
            trap_kind(mem_fault(|fb| {
                let n = fb.c(U64, 4);
                let p = fb.ins(InstKind::Alloc { ty: Type::I64, count: n }, Type::PTR);
                let one = fb.c(U64, 1);
                let q = fb.ins(InstKind::ElemAddr { elem: Type::I64, ptr: p, index: one }, Type::PTR);
                fb.eff(InstKind::Free { ptr: q });
            })),
            MemoryFault
        );
        // Out of bounds: the last i64 leaf straddles the end.
        assert_eq!(
            trap_kind(mem_fault(|fb| {
                let n = fb.c(U64, 12);
                let p = fb.ins(InstKind::Alloc { ty: Type::U8, count: n }, Type::PTR);
                let five = fb.c(U64, 5);
                let q = fb.ins(InstKind::ElemAddr { elem: Type::U8, ptr: p, index: five }, Type::PTR);
                let v = fb.c(I64, 1);
                fb.eff(InstKind::Store { ptr: q, value: v });
            })),
            MemoryFault
        );
        // memcpy running past the end.
        assert_eq!(
            trap_kind(mem_fault(|fb| {
                let n = fb.c(U64, 8);
                let p = fb.ins(InstKind::Alloc { ty: Type::U8, count: n }, Type::PTR);
                let q = fb.ins(InstKind::Alloc { ty: Type::U8, count: n }, Type::PTR);
                let nine = fb.c(U64, 9);
                fb.eff(InstKind::MemCopy { dst: q, src: p, len: nine });
            })),
            MemoryFault
        );
        // Zero-size allocation: any access is out of bounds, free is fine.
        assert_eq!(
            trap_kind(mem_fault(|fb| {
                let n = fb.c(U64, 0);
                let p = fb.ins(InstKind::Alloc { ty: Type::U8, count: n }, Type::PTR);
                fb.ins(InstKind::Load { ty: Type::U8, ptr: p }, Type::U8);
            })),
            MemoryFault
        );
        assert!(mem_fault(|fb| {
            let n = fb.c(U64, 0);
            let p = fb.ins(InstKind::Alloc { ty: Type::U8, count: n }, Type::PTR);
            fb.eff(InstKind::Free { ptr: p });
            let null = fb.c(Ptr, 0);
            fb.eff(InstKind::Free { ptr: null });
        })
        .is_ok());
        // Out of memory.
        assert_eq!(
            trap_kind(mem_fault(|fb| {
                let n = fb.c(U64, 1 << 38);
                fb.ins(InstKind::Alloc { ty: Type::I64, count: n }, Type::PTR);
            })),
            OutOfMemory
        );
        assert_eq!(
            trap_kind(mem_fault(|fb| {
                let n = fb.cu(U64, u64::MAX);
                fb.ins(InstKind::Alloc { ty: Type::I32, count: n }, Type::PTR);
            })),
            OutOfMemory
        );
    }

    #[test]
    fn caller_buffers_are_trusted() {
        let mut buf = [0u32; 4];
        let mut fb = FB::new("fill", vec![Type::PTR, Type::U32], Type::U32);
        let (p, x) = (fb.p(0), fb.p(1));
        let two = fb.c(U64, 2);
        let q = fb.ins(InstKind::ElemAddr { elem: Type::U32, ptr: p, index: two }, Type::PTR);
        fb.eff(InstKind::Store { ptr: q, value: x });
        let first = fb.ins(InstKind::Load { ty: Type::U32, ptr: p }, Type::U32);
        fb.ret(Some(first));
        buf[0] = 0xFFFF_FFF0;
        let m = module(vec![fb]);
        let r = run1(&m, &[buf.as_mut_ptr() as u64, 77]).unwrap();
        assert_eq!(r, vec![0xFFFF_FFF0]);
        assert_eq!(buf[2], 77);
    }

    #[test]
    fn unions() {
        let v1 = Type::Struct(vec![Type::I8, Type::I16, Type::F32]);
        let u = Type::Union(vec![Type::I64, v1.clone(), Type::BOOL]);
        // f(x: i8) -> struct: make variant 1 {x, -2, 1.5}, round-trip through memory, get it back.
        let mut fb = FB::new("u", vec![Type::I8, Type::U32], v1.clone());
        let (x, want) = (fb.p(0), fb.p(1));
        let s0 = fb.ins(InstKind::Zero { ty: v1.clone() }, v1.clone());
        let s1 = fb.ins(InstKind::InsertValue { agg: s0, index: 0, value: x }, v1.clone());
        let m2 = fb.c(I16, -2);
        let s2 = fb.ins(InstKind::InsertValue { agg: s1, index: 1, value: m2 }, v1.clone());
        let f = fb.cu(F32, f32b(1.5));
        let s3 = fb.ins(InstKind::InsertValue { agg: s2, index: 2, value: f }, v1.clone());
        let uv = fb.ins(InstKind::UnionMake { ty: u.clone(), variant: 1, value: s3 }, u.clone());
        let one = fb.c(U64, 1);
        let p = fb.ins(InstKind::Alloc { ty: u.clone(), count: one }, Type::PTR);
        fb.eff(InstKind::Store { ptr: p, value: uv });
        let back = fb.ins(InstKind::Load { ty: u.clone(), ptr: p }, u.clone());
        let tag = fb.ins(InstKind::UnionTag { arg: back }, Type::U32);
        let ok = fb.cmp(CmpOp::Eq, tag, want);
        let (good, _) = fb.block(&[]);
        let (bad, _) = fb.block(&[]);
        fb.brif(ok, good, vec![], bad, vec![]);
        fb.cur = bad;
        fb.eff(InstKind::Trap);
        fb.cur = good;
        let out = fb.ins(InstKind::UnionGet { variant: 1, arg: back }, v1.clone());
        fb.ret(Some(out));
        // g() -> union value leaves directly.
        let mut g = FB::new("g", vec![Type::BOOL], u.clone());
        let b = g.p(0);
        let uv = g.ins(InstKind::UnionMake { ty: u.clone(), variant: 2, value: b }, u.clone());
        g.ret(Some(uv));
        // h(u) -> i64 = union.get 0.
        let mut h = FB::new("h", vec![u.clone()], Type::I64);
        let a = h.p(0);
        let r = h.ins(InstKind::UnionGet { variant: 0, arg: a }, Type::I64);
        h.ret(Some(r));
        let m = module(vec![fb, g, h]);
        let mut it = Interpreter::new(&m);
        let r = it.call(FuncId(0), &[I8.canon(-3i64 as u64), 1]).unwrap();
        assert_eq!(r, vec![-3i64 as u64, -2i64 as u64, f32b(1.5)]);
        assert_eq!(trap_kind(it.call(FuncId(0), &[1, 0])), TrapKind::User);
        // Layout: word 0 holds i8 at bit 0, i16 at bit 16, f32 at bit 32.
        assert_eq!(it.call(FuncId(1), &[1]).unwrap(), vec![2, 1]);
        assert_eq!(it.call(FuncId(2), &[0, 99]).unwrap(), vec![99]);
        match it.call(FuncId(2), &[1, 99]) {
            Err(RunError::Trap(t)) => {
                assert_eq!(t, Trap { kind: TrapKind::BadTag, function: Some("h".into()) })
            }
            other => panic!("{other:?}"),
        }
        // union.make packing checked against the documented formula.
        let mut k = FB::new("k", vec![v1.clone()], u.clone());
        let a = k.p(0);
        let uv = k.ins(InstKind::UnionMake { ty: u.clone(), variant: 1, value: a }, u.clone());
        k.ret(Some(uv));
        let m = module(vec![k]);
        let r = run1(&m, &[I8.canon(-1i64 as u64), I16.canon(-2i64 as u64), f32b(-0.0)]).unwrap();
        assert_eq!(r, vec![1, 0xFF | (0xFFFE << 16) | (0x8000_0000u64 << 32)]);
    }

    #[test]
    fn any_values() {
        let mut fb = FB::new("a", vec![Type::I16], Type::I16);
        let x = fb.p(0);
        let a = fb.ins(InstKind::AnyMake { arg: x }, Type::Any);
        let r = fb.ins(InstKind::AnyGet { ty: I16, arg: a }, Type::I16);
        fb.ret(Some(r));
        let mut g = FB::new("g", vec![Type::Any], Type::U32);
        let a = g.p(0);
        let t = g.ins(InstKind::AnyTag { arg: a }, Type::U32);
        let _ = g.ins(InstKind::AnyGet { ty: F64, arg: a }, Type::F64);
        g.ret(Some(t));
        let mut h = FB::new("h", vec![Type::I8], Type::Any);
        let x = h.p(0);
        let a = h.ins(InstKind::AnyMake { arg: x }, Type::Any);
        h.ret(Some(a));
        let m = module(vec![fb, g, h]);
        let mut it = Interpreter::new(&m);
        assert_eq!(it.call(FuncId(0), &[I16.canon(-300i64 as u64)]).unwrap(), vec![-300i64 as u64]);
        assert_eq!(
            it.call(FuncId(1), &[F64.any_tag() as u64, f64b(2.0)]).unwrap(),
            vec![F64.any_tag() as u64]
        );
        assert_eq!(trap_kind(it.call(FuncId(1), &[I64.any_tag() as u64, 1])), TrapKind::BadTag);
        assert_eq!(trap_kind(it.call(FuncId(1), &[0, 0])), TrapKind::BadTag);
        assert_eq!(
            it.call(FuncId(2), &[I8.canon(-1i64 as u64)]).unwrap(),
            vec![I8.any_tag() as u64, u64::MAX]
        );
    }

    #[test]
    fn strings_and_func_addr() {
        let mut m = Module::new();
        let d = m.add_data(b"hello");
        assert_eq!(d, DataId(0));
        let mut fb = FB::new("s", vec![], Type::U8);
        let s = fb.ins(InstKind::StrConst { data: d }, Type::Str);
        let p = fb.ins(InstKind::ExtractValue { agg: s, index: 0 }, Type::PTR);
        let n = fb.ins(InstKind::ExtractValue { agg: s, index: 1 }, Type::U64);
        let one = fb.c(U64, 1);
        let last = fb.bin(BinOp::Sub, n, one);
        let q = fb.ins(InstKind::ElemAddr { elem: Type::U8, ptr: p, index: last }, Type::PTR);
        let c = fb.ins(InstKind::Load { ty: Type::U8, ptr: q }, Type::U8);
        fb.ret(Some(c));
        m.functions.push(fb.f);
        // Indirect call through a fn pointer, plus a forged one.
        let sig = Signature::new(vec![], Type::U8);
        let fty = Type::FnPtr { sig: Box::new(sig.clone()), host: false };
        let mut g = FB::new("g", vec![Type::BOOL], Type::U8);
        let forge = g.p(0);
        let fp = g.ins(InstKind::FuncAddr { callee: Callee::Func(FuncId(0)) }, fty.clone());
        let other = g.ins(
            InstKind::FuncAddr { callee: Callee::Func(FuncId(1)) },
            Type::FnPtr { sig: Box::new(Signature::new(vec![Type::BOOL], Type::U8)), host: false },
        );
        let _ = other;
        let one = g.c(U64, 1);
        let slot = g.ins(InstKind::Alloc { ty: fty.clone(), count: one }, Type::PTR);
        g.eff(InstKind::Store { ptr: slot, value: fp });
        let (t, _) = g.block(&[]);
        let (e, _) = g.block(&[]);
        g.brif(forge, t, vec![], e, vec![]);
        g.cur = t;
        // Forge: token + 1 is function 'g', whose signature differs -> fault.
        let bad = g.cu(U64, FUNC_TOKEN_BASE + 1);
        g.eff(InstKind::Store { ptr: slot, value: bad });
        g.jump(e, vec![]);
        g.cur = e;
        let f2 = g.ins(InstKind::Load { ty: fty.clone(), ptr: slot }, fty.clone());
        let r = g.ins(InstKind::CallIndirect { callee: f2, args: vec![] }, Type::U8);
        g.ret(Some(r));
        m.functions.push(g.f);
        let mut it = Interpreter::new(&m);
        assert_eq!(it.call(FuncId(0), &[]).unwrap(), vec![b'o' as u64]);
        assert_eq!(it.call(FuncId(1), &[0]).unwrap(), vec![b'o' as u64]);
        assert_eq!(trap_kind(it.call(FuncId(1), &[1])), TrapKind::MemoryFault);
    }

    // ----- calls -----

    fn depth_module() -> Module {
        // depth(n) = n <= 1 ? 1 : depth(n - 1) + 1   -- uses n frames.
        let mut fb = FB::new("depth", vec![Type::U32], Type::U32);
        let n = fb.p(0);
        let one = fb.c(U32, 1);
        let le = fb.cmp(CmpOp::Le, n, one);
        let (base, _) = fb.block(&[]);
        let (rec, _) = fb.block(&[]);
        fb.brif(le, base, vec![], rec, vec![]);
        fb.cur = base;
        fb.ret(Some(one));
        fb.cur = rec;
        let n1 = fb.bin(BinOp::Sub, n, one);
        let r = fb.call(Callee::Func(FuncId(0)), vec![n1], Type::U32).unwrap();
        let r1 = fb.bin(BinOp::Add, r, one);
        fb.ret(Some(r1));
        module(vec![fb])
    }

    #[test]
    fn call_depth_limit() {
        let m = depth_module();
        let mut it = Interpreter::new(&m);
        let max = MAX_CALL_DEPTH as u64;
        assert_eq!(it.call(FuncId(0), &[max]).unwrap(), vec![max]);
        match it.call(FuncId(0), &[max + 1]) {
            Err(RunError::Trap(t)) => {
                assert_eq!(t, Trap { kind: TrapKind::StackOverflow, function: Some("depth".into()) })
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(trap_kind(it.call(FuncId(0), &[10 * max])), TrapKind::StackOverflow);
        // The interpreter is usable again afterwards.
        assert_eq!(it.call(FuncId(0), &[5]).unwrap(), vec![5]);
        assert_eq!(it.call(FuncId(0), &[max]).unwrap(), vec![max]);
    }

    #[test]
    fn aggregate_args_and_returns() {
        // pair(a, b) -> {a, b}; swap(p) -> {p.1, p.0} via a call.
        let pt = Type::Struct(vec![Type::I32, Type::F64]);
        let qt = Type::Struct(vec![Type::F64, Type::I32]);
        let mut f = FB::new("swap", vec![pt.clone()], qt.clone());
        let p = f.p(0);
        let a = f.ins(InstKind::ExtractValue { agg: p, index: 0 }, Type::I32);
        let b = f.ins(InstKind::ExtractValue { agg: p, index: 1 }, Type::F64);
        let z = f.ins(InstKind::Zero { ty: qt.clone() }, qt.clone());
        let z = f.ins(InstKind::InsertValue { agg: z, index: 0, value: b }, qt.clone());
        let z = f.ins(InstKind::InsertValue { agg: z, index: 1, value: a }, qt.clone());
        f.ret(Some(z));
        let mut g = FB::new("g", vec![Type::I32, Type::F64], qt.clone());
        let (a, b) = (g.p(0), g.p(1));
        let z = g.ins(InstKind::Zero { ty: pt.clone() }, pt.clone());
        let z = g.ins(InstKind::InsertValue { agg: z, index: 0, value: a }, pt.clone());
        let z = g.ins(InstKind::InsertValue { agg: z, index: 1, value: b }, pt.clone());
        let r = g.call(Callee::Func(FuncId(0)), vec![z], qt.clone()).unwrap();
        g.ret(Some(r));
        let m = module(vec![f, g]);
        let mut it = Interpreter::new(&m);
        assert_eq!(
            it.call(FuncId(1), &[I32.canon(-4i64 as u64), f64b(2.5)]).unwrap(),
            vec![f64b(2.5), -4i64 as u64]
        );
    }

    // ----- host calls -----

    extern "C" fn host_mix(a: i32, x: f64, b: u8, y: f32, c: i64, z: f32) -> f64 {
        a as f64 * 1000.0 + x + b as f64 * 10.0 + y as f64 + c as f64 * 100_000.0 + z as f64 * 0.5
    }

    extern "C" fn host_f32(x: f32, y: f32, n: i16) -> f32 {
        x * y + n as f32
    }

    extern "C" fn host_int(a: i8, b: u16, c: bool, d: u64, e: i32, f: u8) -> i8 {
        let s = a as i64 + b as i64 + c as i64 + d as i64 + e as i64 + f as i64;
        s as i8
    }

    extern "C" fn host_void(p: *mut u64, v: u64) {
        unsafe { *p = v }
    }

    #[test]
    fn host_calls() {
        let mut m = Module::new();
        let sig_mix =
            Signature::new(vec![Type::I32, Type::F64, Type::U8, Type::F32, Type::I64, Type::F32], Type::F64);
        let sig_f32 = Signature::new(vec![Type::F32, Type::F32, Type::I16], Type::F32);
        let sig_int =
            Signature::new(vec![Type::I8, Type::U16, Type::BOOL, Type::U64, Type::I32, Type::U8], Type::I8);
        let sig_void = Signature::new(vec![Type::PTR, Type::U64], Type::Void);
        for (n, s) in [("mix", &sig_mix), ("f32", &sig_f32), ("int", &sig_int), ("void", &sig_void)] {
            m.externs.push(crate::mir::function::ExternFunc { name: n.into(), sig: s.clone() });
        }
        let direct = |name: &str, sig: &Signature, e: u32| {
            let mut fb = FB::new(name, sig.params.clone(), sig.ret.clone());
            let args = (0..sig.params.len()).map(|i| fb.p(i)).collect();
            let r = fb.call(Callee::Extern(ExternId(e)), args, sig.ret.clone());
            fb.ret(r);
            fb.f
        };
        m.functions.push(direct("mix", &sig_mix, 0));
        m.functions.push(direct("f32", &sig_f32, 1));
        m.functions.push(direct("int", &sig_int, 2));
        m.functions.push(direct("void", &sig_void, 3));
        // Indirect through the extern's address.
        let fty = Type::FnPtr { sig: Box::new(sig_f32.clone()), host: true };
        let mut fb = FB::new("ind", sig_f32.params.clone(), Type::F32);
        let fp = fb.ins(InstKind::FuncAddr { callee: Callee::Extern(ExternId(1)) }, fty.clone());
        let args = (0..3).map(|i| fb.p(i)).collect();
        let r = fb.ins(InstKind::CallIndirect { callee: fp, args }, Type::F32);
        fb.ret(Some(r));
        m.functions.push(fb.f);
        // Indirect through a null host pointer.
        let mut fb = FB::new("nullcall", vec![], Type::Void);
        let z = fb.ins(InstKind::Zero { ty: fty.clone() }, fty.clone());
        let a = fb.cu(F32, f32b(1.0));
        let i = fb.c(I16, 1);
        fb.ins(InstKind::CallIndirect { callee: z, args: vec![a, a, i] }, Type::F32);
        fb.ret(None);
        m.functions.push(fb.f);

        let mut it = Interpreter::new(&m);
        match it.call(FuncId(0), &[1, f64b(1.0), 1, f32b(1.0), 1, f32b(1.0)]) {
            Err(RunError::Usage(u)) => assert_eq!(u.0, "extern 'mix' has no host address"),
            other => panic!("{other:?}"),
        }
        it.bind_extern(ExternId(0), host_mix as *const () as usize);
        it.bind_extern(ExternId(1), host_f32 as *const () as usize);
        it.bind_extern(ExternId(2), host_int as *const () as usize);
        it.bind_extern(ExternId(3), host_void as *const () as usize);
        let r =
            it.call(FuncId(0), &[I32.canon(-2i64 as u64), f64b(0.25), 7, f32b(1.5), 3, f32b(-4.0)]).unwrap();
        assert_eq!(r, vec![f64b(host_mix(-2, 0.25, 7, 1.5, 3, -4.0))]);
        let r = it.call(FuncId(1), &[f32b(1.5), f32b(-2.25), I16.canon(-7i64 as u64)]).unwrap();
        assert_eq!(r, vec![f32b(host_f32(1.5, -2.25, -7))]);
        assert_eq!(r[0] >> 32, 0);
        let r = it
            .call(FuncId(2), &[I8.canon(-100i64 as u64), 60000, 1, 1 << 40, I32.canon(-5i64 as u64), 255])
            .unwrap();
        assert_eq!(r, vec![I8.canon(host_int(-100, 60000, true, 1 << 40, -5, 255) as i64 as u64)]);
        let mut cell = 0u64;
        assert_eq!(it.call(FuncId(3), &[&mut cell as *mut u64 as u64, 0xABCD]).unwrap(), Vec::<u64>::new());
        assert_eq!(cell, 0xABCD);
        let r = it.call(FuncId(4), &[f32b(3.0), f32b(0.5), 2]).unwrap();
        assert_eq!(r, vec![f32b(3.5)]);
        assert_eq!(trap_kind(it.call(FuncId(5), &[])), TrapKind::MemoryFault);
    }
}
