//! MIR types.
//!
//! Scalars are the things a machine register holds. Every other type is an
//! aggregate whose value is, in every tier, the ordered list of its scalar
//! *leaves* (see `mir::layout::Layout::leaves`). Signedness lives in the
//! type: `div` on `u32` is unsigned, on `i32` signed, on `f64` a float divide.

use std::fmt;

/// A type with a register representation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scalar {
    Bool,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    F32,
    F64,
    /// An opaque 64-bit data pointer.
    Ptr,
}

impl Scalar {
    pub const ALL: [Scalar; 12] = [
        Scalar::Bool,
        Scalar::I8,
        Scalar::I16,
        Scalar::I32,
        Scalar::I64,
        Scalar::U8,
        Scalar::U16,
        Scalar::U32,
        Scalar::U64,
        Scalar::F32,
        Scalar::F64,
        Scalar::Ptr,
    ];

    /// Width in bits of the value (bool counts as 8: that is its memory width).
    pub fn bits(self) -> u32 {
        match self {
            Scalar::Bool | Scalar::I8 | Scalar::U8 => 8,
            Scalar::I16 | Scalar::U16 => 16,
            Scalar::I32 | Scalar::U32 | Scalar::F32 => 32,
            Scalar::I64 | Scalar::U64 | Scalar::F64 | Scalar::Ptr => 64,
        }
    }

    pub fn bytes(self) -> u32 {
        self.bits() / 8
    }

    pub fn is_int(self) -> bool {
        matches!(
            self,
            Scalar::I8
                | Scalar::I16
                | Scalar::I32
                | Scalar::I64
                | Scalar::U8
                | Scalar::U16
                | Scalar::U32
                | Scalar::U64
        )
    }

    pub fn is_signed(self) -> bool {
        matches!(self, Scalar::I8 | Scalar::I16 | Scalar::I32 | Scalar::I64)
    }

    pub fn is_float(self) -> bool {
        matches!(self, Scalar::F32 | Scalar::F64)
    }

    /// Integers, bools and pointers: things held in integer registers.
    pub fn is_int_class(self) -> bool {
        !self.is_float()
    }

    pub fn name(self) -> &'static str {
        match self {
            Scalar::Bool => "bool",
            Scalar::I8 => "i8",
            Scalar::I16 => "i16",
            Scalar::I32 => "i32",
            Scalar::I64 => "i64",
            Scalar::U8 => "u8",
            Scalar::U16 => "u16",
            Scalar::U32 => "u32",
            Scalar::U64 => "u64",
            Scalar::F32 => "f32",
            Scalar::F64 => "f64",
            Scalar::Ptr => "ptr",
        }
    }

    pub fn from_name(name: &str) -> Option<Scalar> {
        Scalar::ALL.iter().copied().find(|s| s.name() == name)
    }

    /// The tag an `any` value carries for a payload of this scalar type.
    pub fn any_tag(self) -> u32 {
        Scalar::ALL.iter().position(|s| *s == self).unwrap() as u32 + 1
    }

    /// Canonicalise raw bits to this type: integers are truncated and then
    /// sign- or zero-extended to 64 bits, bools keep their low bit, f32 keeps its
    /// low 32 bits. Every tier agrees on values in this canonical form.
    pub fn canon(self, bits: u64) -> u64 {
        match self {
            Scalar::Bool => bits & 1,
            Scalar::I8 => bits as i8 as i64 as u64,
            Scalar::I16 => bits as i16 as i64 as u64,
            Scalar::I32 => bits as i32 as i64 as u64,
            Scalar::U8 => bits as u8 as u64,
            Scalar::U16 => bits as u16 as u64,
            Scalar::U32 | Scalar::F32 => bits as u32 as u64,
            Scalar::I64 | Scalar::U64 | Scalar::F64 | Scalar::Ptr => bits,
        }
    }
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A function signature. `ret` is `Type::Void` for functions that return nothing.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Signature {
    pub params: Vec<Type>,
    pub ret: Type,
}

impl Signature {
    pub fn new(params: Vec<Type>, ret: Type) -> Self {
        Signature { params, ret }
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("(")?;
        for (i, p) in self.params.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{p}")?;
        }
        write!(f, ") -> {}", self.ret)
    }
}

/// Every MIR type.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Type {
    /// No value: only as a function's return type.
    Void,
    Scalar(Scalar),
    /// `[T; N]`, a value with N elements laid out like C.
    Array(Box<Type>, u32),
    /// `{ptr, u64 len}` viewing elements of the given type.
    Slice(Box<Type>),
    /// A C-layout struct.
    Struct(Vec<Type>),
    /// A tagged union: `u32` tag at offset 0, payload at offset 8 padded to a
    /// multiple of 8 bytes. The tag is the index of the variant it holds.
    Union(Vec<Type>),
    /// A pointer to a module function (`fn(...) -> T`) or, when `host` is
    /// set, to a host function with the C calling convention (`extern fn`).
    FnPtr {
        sig: Box<Signature>,
        host: bool,
    },
    /// A tagged dynamic scalar: `u32` type tag at 0, 64-bit payload at 8.
    Any,
    /// A string: `{ptr, u64 len}` of UTF-8 bytes.
    Str,
}

impl Type {
    pub const BOOL: Type = Type::Scalar(Scalar::Bool);
    pub const I8: Type = Type::Scalar(Scalar::I8);
    pub const I16: Type = Type::Scalar(Scalar::I16);
    pub const I32: Type = Type::Scalar(Scalar::I32);
    pub const I64: Type = Type::Scalar(Scalar::I64);
    pub const U8: Type = Type::Scalar(Scalar::U8);
    pub const U16: Type = Type::Scalar(Scalar::U16);
    pub const U32: Type = Type::Scalar(Scalar::U32);
    pub const U64: Type = Type::Scalar(Scalar::U64);
    pub const F32: Type = Type::Scalar(Scalar::F32);
    pub const F64: Type = Type::Scalar(Scalar::F64);
    pub const PTR: Type = Type::Scalar(Scalar::Ptr);

    pub fn scalar(&self) -> Option<Scalar> {
        match self {
            Type::Scalar(s) => Some(*s),
            Type::FnPtr { .. } => Some(Scalar::Ptr),
            _ => None,
        }
    }

    pub fn is_void(&self) -> bool {
        matches!(self, Type::Void)
    }

    pub fn is_int(&self) -> bool {
        matches!(self, Type::Scalar(s) if s.is_int())
    }

    pub fn is_float(&self) -> bool {
        matches!(self, Type::Scalar(s) if s.is_float())
    }

    pub fn is_aggregate(&self) -> bool {
        matches!(
            self,
            Type::Array(..) | Type::Slice(_) | Type::Struct(_) | Type::Union(_) | Type::Any | Type::Str
        )
    }

    /// The type of field `index` for `extract`/`insert`, if it has one.
    /// Unions are not field-addressable (use `union.get`); `any` neither.
    pub fn field(&self, index: u32) -> Option<Type> {
        match self {
            Type::Array(elem, n) if index < *n => Some((**elem).clone()),
            Type::Struct(fields) => fields.get(index as usize).cloned(),
            Type::Slice(_) | Type::Str => match index {
                0 => Some(Type::PTR),
                1 => Some(Type::U64),
                _ => None,
            },
            _ => None,
        }
    }

    /// Nesting depth, to keep recursive algorithms bounded.
    pub fn depth(&self) -> usize {
        match self {
            Type::Array(e, _) | Type::Slice(e) => 1 + e.depth(),
            Type::Struct(fs) | Type::Union(fs) => 1 + fs.iter().map(Type::depth).max().unwrap_or(0),
            Type::FnPtr { sig, .. } => {
                1 + sig.params.iter().chain(std::iter::once(&sig.ret)).map(Type::depth).max().unwrap_or(0)
            }
            _ => 0,
        }
    }
}

impl From<Scalar> for Type {
    fn from(s: Scalar) -> Type {
        Type::Scalar(s)
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Void => f.write_str("void"),
            Type::Scalar(s) => f.write_str(s.name()),
            Type::Array(e, n) => write!(f, "[{e}; {n}]"),
            Type::Slice(e) => write!(f, "slice<{e}>"),
            Type::Struct(fields) => {
                f.write_str("{")?;
                for (i, t) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{t}")?;
                }
                f.write_str("}")
            }
            Type::Union(vs) => {
                f.write_str("union<")?;
                for (i, t) in vs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{t}")?;
                }
                f.write_str(">")
            }
            Type::FnPtr { sig, host } => {
                if *host {
                    f.write_str("extern ")?;
                }
                write!(f, "fn{sig}")
            }
            Type::Any => f.write_str("any"),
            Type::Str => f.write_str("str"),
        }
    }
}
