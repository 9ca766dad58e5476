//! The decision table for `cast` (docs/mir.md, "Conversions"), shared by both
//! backends so they cannot drift apart: each backend only maps a plan to its
//! own instructions.

use crate::mir::Scalar;

/// How one `cast` from a scalar type to another is carried out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CastPlan {
    /// Same bits: identical types, or same-width integers (i32 <-> u32, ptr <-> i64/u64).
    Same,
    /// Integer narrowing: keep the low bits.
    Truncate,
    /// Integer widening from a signed source.
    SignExtend,
    /// Integer widening from an unsigned source or a bool.
    ZeroExtend,
    /// `x != 0` for an integer-class source.
    IntToBool,
    /// `x != 0.0`, true for NaN (unordered or not equal).
    FloatToBool,
    /// f32 -> f64, exact.
    FloatWiden,
    /// f64 -> f32, round to nearest even.
    FloatNarrow,
    /// Truncate toward zero, saturate at the target's range, NaN gives 0.
    FloatToSignedSat,
    FloatToUnsignedSat,
    /// Extend the source to 64 bits by its own signedness (exact), then convert
    /// as a signed i64, rounding to nearest even.
    Int64ToFloat,
    /// Convert a u64 (or ptr) as unsigned, rounding to nearest even.
    U64ToFloat,
}

pub fn cast_plan(from: Scalar, to: Scalar) -> CastPlan {
    use CastPlan::*;
    if from == to {
        return Same;
    }
    if to == Scalar::Bool {
        return if from.is_float() { FloatToBool } else { IntToBool };
    }
    if from.is_float() {
        return match to {
            Scalar::F64 => FloatWiden,
            Scalar::F32 => FloatNarrow,
            _ if to.is_signed() || to == Scalar::Ptr => FloatToSignedSat,
            _ => FloatToUnsignedSat,
        };
    }
    if to.is_float() {
        return if matches!(from, Scalar::U64 | Scalar::Ptr) { U64ToFloat } else { Int64ToFloat };
    }
    match to.bits().cmp(&from.bits()) {
        std::cmp::Ordering::Less => Truncate,
        std::cmp::Ordering::Equal => Same,
        std::cmp::Ordering::Greater if from.is_signed() => SignExtend,
        std::cmp::Ordering::Greater => ZeroExtend,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_follows_the_contract() {
        assert_eq!(cast_plan(Scalar::I8, Scalar::I64), CastPlan::SignExtend);
        assert_eq!(cast_plan(Scalar::U8, Scalar::I64), CastPlan::ZeroExtend);
        assert_eq!(cast_plan(Scalar::Bool, Scalar::I32), CastPlan::ZeroExtend);
        assert_eq!(cast_plan(Scalar::I64, Scalar::U16), CastPlan::Truncate);
        assert_eq!(cast_plan(Scalar::I32, Scalar::U32), CastPlan::Same);
        assert_eq!(cast_plan(Scalar::Ptr, Scalar::I64), CastPlan::Same);
        assert_eq!(cast_plan(Scalar::F32, Scalar::Bool), CastPlan::FloatToBool);
        assert_eq!(cast_plan(Scalar::U64, Scalar::F32), CastPlan::U64ToFloat);
        assert_eq!(cast_plan(Scalar::U32, Scalar::F64), CastPlan::Int64ToFloat);
        assert_eq!(cast_plan(Scalar::F64, Scalar::U8), CastPlan::FloatToUnsignedSat);
        assert_eq!(cast_plan(Scalar::F64, Scalar::F32), CastPlan::FloatNarrow);
    }
}
