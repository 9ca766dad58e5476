//! Target data: size, alignment, field offsets and scalar leaves of every MIR
//! type for x86-64 System V. The interpreter and both backends use this one
//! implementation, so memory written by one tier reads back the same in any
//! other.

use crate::mir::{Scalar, Type};

/// A scalar piece of an aggregate, at a byte offset from the aggregate's start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leaf {
    pub ty: Scalar,
    pub offset: u32,
}

/// Where a leaf of a union variant sits inside the union's payload words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PayloadSlot {
    pub ty: Scalar,
    /// Index of the 64-bit payload word.
    pub word: u32,
    /// Bit position of the leaf's low bit in that word.
    pub shift: u32,
}

/// Byte offset of a union's or `any`'s payload.
pub const PAYLOAD_OFFSET: u32 = 8;

pub fn size_of(ty: &Type) -> u64 {
    match ty {
        Type::Void => 0,
        Type::Scalar(s) => s.bytes() as u64,
        Type::FnPtr { .. } => 8,
        Type::Array(e, n) => size_of(e).saturating_mul(*n as u64),
        Type::Slice(_) | Type::Str | Type::Any => 16,
        Type::Struct(fields) => struct_layout(fields).0,
        Type::Union(vs) => (PAYLOAD_OFFSET as u64).saturating_add(8 * union_payload_words(vs) as u64),
    }
}

pub fn align_of(ty: &Type) -> u64 {
    match ty {
        Type::Void => 1,
        Type::Scalar(s) => s.bytes() as u64,
        Type::FnPtr { .. } => 8,
        Type::Array(e, _) => align_of(e),
        Type::Slice(_) | Type::Str | Type::Any | Type::Union(_) => 8,
        Type::Struct(fields) => fields.iter().map(align_of).max().unwrap_or(1),
    }
}

fn align_up(x: u64, a: u64) -> u64 {
    x.div_ceil(a).saturating_mul(a)
}

/// (size, field offsets) of a C struct with these fields.
fn struct_layout(fields: &[Type]) -> (u64, Vec<u64>) {
    let mut off = 0;
    let mut offsets = Vec::with_capacity(fields.len());
    let mut align = 1;
    for f in fields {
        let a = align_of(f);
        align = align.max(a);
        off = align_up(off, a);
        offsets.push(off);
        off = off.saturating_add(size_of(f));
    }
    (align_up(off, align), offsets)
}

/// Byte offset of field `index` of a struct type.
pub fn field_offset(fields: &[Type], index: usize) -> u64 {
    struct_layout(fields).1[index]
}

/// Number of 64-bit payload words of a union with these variants.
pub fn union_payload_words(variants: &[Type]) -> u32 {
    variants.iter().map(|v| size_of(v).div_ceil(8).min(u32::MAX as u64) as u32).max().unwrap_or(0)
}

/// Largest number of leaves a value type may have (the verifier enforces it),
/// so that no aggregate value explodes into millions of registers.
pub const MAX_VALUE_LEAVES: usize = 4096;

/// Largest size in bytes of any type (the verifier enforces it).
pub const MAX_TYPE_SIZE: u64 = 1 << 40;

/// Deepest type nesting accepted anywhere (builder, parser, verifier).
pub const MAX_TYPE_DEPTH: usize = 32;

/// The scalar leaves of a type, in memory order. Aggregate values are these
/// leaves in every tier; loads and stores move them one by one.
pub fn leaves(ty: &Type) -> Vec<Leaf> {
    let mut out = Vec::new();
    push_leaves(ty, 0, &mut out);
    out
}

fn push_leaves(ty: &Type, base: u32, out: &mut Vec<Leaf>) {
    match ty {
        Type::Void => {}
        Type::Scalar(s) => out.push(Leaf { ty: *s, offset: base }),
        Type::FnPtr { .. } => out.push(Leaf { ty: Scalar::Ptr, offset: base }),
        Type::Array(e, n) => {
            let size = size_of(e) as u32;
            for i in 0..*n {
                push_leaves(e, base + i * size, out);
            }
        }
        Type::Slice(_) | Type::Str => {
            out.push(Leaf { ty: Scalar::Ptr, offset: base });
            out.push(Leaf { ty: Scalar::U64, offset: base + 8 });
        }
        Type::Any => {
            out.push(Leaf { ty: Scalar::U32, offset: base });
            out.push(Leaf { ty: Scalar::U64, offset: base + PAYLOAD_OFFSET });
        }
        Type::Struct(fields) => {
            let (_, offsets) = struct_layout(fields);
            for (f, off) in fields.iter().zip(offsets) {
                push_leaves(f, base + off as u32, out);
            }
        }
        Type::Union(vs) => {
            out.push(Leaf { ty: Scalar::U32, offset: base });
            for w in 0..union_payload_words(vs) {
                out.push(Leaf { ty: Scalar::U64, offset: base + PAYLOAD_OFFSET + 8 * w });
            }
        }
    }
}

pub fn leaf_count(ty: &Type) -> usize {
    match ty {
        Type::Void => 0,
        Type::Scalar(_) | Type::FnPtr { .. } => 1,
        Type::Array(e, n) => leaf_count(e).saturating_mul(*n as usize),
        Type::Slice(_) | Type::Str | Type::Any => 2,
        Type::Struct(fields) => fields.iter().map(leaf_count).fold(0, usize::saturating_add),
        Type::Union(vs) => 1 + union_payload_words(vs) as usize,
    }
}

/// The range of leaves that field `index` occupies in a value of type `ty`
/// (for `extract`/`insert`). `None` if `ty` has no such field.
pub fn field_leaf_range(ty: &Type, index: u32) -> Option<std::ops::Range<usize>> {
    let field = ty.field(index)?;
    let start = match ty {
        Type::Array(e, _) => leaf_count(e) * index as usize,
        Type::Struct(fields) => fields[..index as usize].iter().map(leaf_count).sum(),
        Type::Slice(_) | Type::Str => index as usize,
        _ => return None,
    };
    Some(start..start + leaf_count(&field))
}

/// Where each leaf of a union variant lives in the payload words. A leaf is
/// naturally aligned and at most 8 bytes, so it never straddles two words.
pub fn payload_slots(variant: &Type) -> Vec<PayloadSlot> {
    leaves(variant)
        .into_iter()
        .map(|l| PayloadSlot { ty: l.ty, word: l.offset / 8, shift: (l.offset % 8) * 8 })
        .collect()
}

/// Mask of the low `bits` bits.
pub fn low_mask(bits: u32) -> u64 {
    if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_struct_layout() {
        let t = Type::Struct(vec![Type::I8, Type::I64, Type::I16]);
        assert_eq!(size_of(&t), 24);
        assert_eq!(align_of(&t), 8);
        let ls = leaves(&t);
        assert_eq!(ls.iter().map(|l| l.offset).collect::<Vec<_>>(), vec![0, 8, 16]);
    }

    #[test]
    fn nested_array_and_union() {
        let t = Type::Array(Box::new(Type::Struct(vec![Type::I32, Type::I8])), 3);
        assert_eq!(size_of(&t), 24);
        assert_eq!(leaf_count(&t), 6);
        assert_eq!(field_leaf_range(&t, 2), Some(4..6));
        let u = Type::Union(vec![Type::I8, Type::Struct(vec![Type::I32, Type::F64, Type::I8])]);
        assert_eq!(union_payload_words(&[Type::I8]), 1);
        assert_eq!(size_of(&u), 8 + 24);
        let slots = payload_slots(&Type::Struct(vec![Type::I8, Type::I16, Type::F32]));
        assert_eq!(
            slots.iter().map(|s| (s.word, s.shift)).collect::<Vec<_>>(),
            vec![(0, 0), (0, 16), (0, 32)]
        );
    }
}
