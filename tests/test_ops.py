"""Every MIR instruction against independently computed expected results."""

from __future__ import annotations

import ctypes
import math
import struct

import numpy as np
import programs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from programs import FLOAT_NAMES, INT_NAMES, SIGNED_NAMES, UNSIGNED_NAMES, binary_fn, cast_fn, unary_fn

import rayzor

TK = rayzor.TrapKind

# ---------------------------------------------------------------------------
# Python models
# ---------------------------------------------------------------------------

BITS = {"i8": 8, "i16": 16, "i32": 32, "i64": 64, "u8": 8, "u16": 16, "u32": 32, "u64": 64}


def signed(t: str) -> bool:
    return t.startswith("i")


def lo(t: str) -> int:
    return -(1 << (BITS[t] - 1)) if signed(t) else 0


def hi(t: str) -> int:
    return (1 << (BITS[t] - 1)) - 1 if signed(t) else (1 << BITS[t]) - 1


def wrap(x: int, t: str) -> int:
    """x reduced to the range of integer type t (two's complement)."""
    w = BITS[t]
    x &= (1 << w) - 1
    if signed(t) and x >= 1 << (w - 1):
        x -= 1 << w
    return x


def edge_values(t: str) -> list[int]:
    vals = {lo(t), hi(t), 0, 1, 2, 3, hi(t) // 2, hi(t) - 1, lo(t) + 1, 0x55 & hi(t)}
    if signed(t):
        vals |= {-1, -2, -3, lo(t) // 2}
    return sorted(vals)


def trunc_div(a: int, b: int) -> int:
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def f32(x: float) -> float:
    """Round a Python float to the nearest f32 (and back to a Python float)."""
    with np.errstate(over="ignore"):
        return float(np.float32(x))


def f64_bits(x: float) -> int:
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def f32_bits(x: float) -> int:
    return struct.unpack("<I", struct.pack("<f", x))[0]


def int_to_f32(x: int) -> float:
    """Correctly rounded (nearest, ties to even) int -> f32, without double rounding."""
    if x == 0:
        return 0.0
    sign = -1.0 if x < 0 else 1.0
    n = abs(x)
    e = n.bit_length()
    if e > 24:
        shift = e - 24
        q, r = divmod(n, 1 << shift)
        half = 1 << (shift - 1)
        if r > half or (r == half and q & 1):
            q += 1
        n = q << shift
    return sign * float(n)


def same_float(got: float, want: float) -> bool:
    """Equal as floats, including the sign of zero and NaN-ness."""
    if math.isnan(want):
        return isinstance(got, float) and math.isnan(got)
    return isinstance(got, float) and got == want and math.copysign(1, got) == math.copysign(1, want)


def run(m, *args, name="f", **kw):
    return rayzor.interpret(m, name, *args, **kw)


def trap_kind(m, *args, name="f", **kw) -> rayzor.TrapKind:
    with pytest.raises(rayzor.Trap) as ei:
        rayzor.interpret(m, name, *args, **kw)
    return ei.value.kind


INT_MODEL = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "and": lambda a, b: a & b,
    "or": lambda a, b: a | b,
    "xor": lambda a, b: a ^ b,
    "min": min,
    "max": max,
}


# ---------------------------------------------------------------------------
# Integer arithmetic
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("t", INT_NAMES)
@pytest.mark.parametrize("op", ["add", "sub", "mul", "and", "or", "xor", "min", "max"])
def test_int_binary_edge_values(op, t):
    m = binary_fn(op, t)
    vals = edge_values(t)
    for a in vals:
        for b in vals:
            got = run(m, a, b)
            assert got == wrap(INT_MODEL[op](a, b), t), (op, t, a, b, got)


@pytest.mark.parametrize("t", INT_NAMES)
def test_add_sub_mul_wrap_specific(t):
    assert run(binary_fn("add", t), hi(t), 1) == lo(t)
    assert run(binary_fn("sub", t), lo(t), 1) == hi(t)
    assert run(binary_fn("mul", t), hi(t), 2) == wrap(2 * hi(t), t)
    assert run(binary_fn("mul", t), hi(t), hi(t)) == wrap(hi(t) * hi(t), t)


@pytest.mark.parametrize("t", INT_NAMES)
@given(data=st.data())
def test_int_binary_random(t, data):
    op = data.draw(st.sampled_from(sorted(INT_MODEL)))
    a = data.draw(st.integers(lo(t), hi(t)))
    b = data.draw(st.integers(lo(t), hi(t)))
    assert run(binary_fn(op, t), a, b) == wrap(INT_MODEL[op](a, b), t)


def test_value_operators_emit_the_same_instructions():
    m = rayzor.Module()
    f = m.function("f", [rayzor.i32, rayzor.i32], rayzor.i32)
    a, b = f.params
    # ((a + b) * 3 - a) ^ (b & 12 | 1) , then << 2, >> 1, with a reflected operand
    r = (((a + b) * 3 - a) ^ ((b & 12) | 1)) << 2
    r = (r >> 1) + (100 - a) + (-b) + (~a)
    f.ret(r)
    text = str(m)
    for op in ("add", "mul", "sub", "xor", "and", "or", "shl", "shr", "neg", "not"):
        assert f" {op} " in text, op
    for a_, b_ in [(5, 7), (-3, 1000), (2**31 - 1, -(2**31))]:
        want = (((a_ + b_) * 3 - a_) ^ ((b_ & 12) | 1)) << 2
        want = (wrap(want, "i32") >> 1) + (100 - a_) + (-b_) + (~a_)
        assert run(m, a_, b_) == wrap(want, "i32")


# ---------------------------------------------------------------------------
# Division and remainder
# ---------------------------------------------------------------------------

DIV_CASES = [(7, 2), (-7, 2), (7, -2), (-7, -2), (0, 5), (5, 7), (-5, 7), (1, 1), (100, -1), (-100, 3)]


@pytest.mark.parametrize("t", SIGNED_NAMES)
def test_signed_div_rem_truncate_toward_zero(t):
    div, rem = binary_fn("div", t), binary_fn("rem", t)
    cases = DIV_CASES + [(hi(t), 2), (lo(t), 2), (lo(t), 3), (lo(t), hi(t)), (hi(t), lo(t)), (lo(t), lo(t))]
    for a, b in cases:
        q = trunc_div(a, b)
        assert run(div, a, b) == q, (t, a, b)
        assert run(rem, a, b) == a - b * q, (t, a, b)


@pytest.mark.parametrize("t", UNSIGNED_NAMES)
def test_unsigned_div_rem(t):
    div, rem = binary_fn("div", t), binary_fn("rem", t)
    cases = [
        (7, 2),
        (0, 5),
        (hi(t), 2),
        (hi(t), hi(t)),
        (hi(t) - 1, hi(t)),
        (hi(t), 1),
        (hi(t), 3),
        (1 << (BITS[t] - 1), 3),
    ]
    for a, b in cases:
        assert run(div, a, b) == a // b, (t, a, b)
        assert run(rem, a, b) == a % b, (t, a, b)


def test_div_signedness_comes_from_the_type():
    # 0xF0 / 0x10: as u8 240/16 = 15, as i8 -16/16 = -1
    assert run(binary_fn("div", "u8"), 0xF0, 0x10) == 15
    assert run(binary_fn("div", "i8"), wrap(0xF0, "i8"), 0x10) == -1
    assert run(binary_fn("rem", "u32"), 2**32 - 7, 10) == (2**32 - 7) % 10
    assert run(binary_fn("rem", "i32"), -7, 10) == -7


@pytest.mark.parametrize("t", INT_NAMES)
@pytest.mark.parametrize("op", ["div", "rem"])
def test_div_rem_by_zero_traps(op, t):
    m = binary_fn(op, t)
    for a in (0, 1, hi(t), lo(t)):
        assert trap_kind(m, a, 0) == TK.DIVISION_BY_ZERO


@pytest.mark.parametrize("t", SIGNED_NAMES)
def test_signed_min_div_minus_one_overflows(t):
    assert trap_kind(binary_fn("div", t), lo(t), -1) == TK.INTEGER_OVERFLOW
    assert run(binary_fn("div", t), lo(t) + 1, -1) == hi(t)


@pytest.mark.parametrize("t", SIGNED_NAMES)
def test_signed_min_rem_minus_one_is_zero(t):
    assert run(binary_fn("rem", t), lo(t), -1) == 0


def test_trap_carries_function_name_and_is_recoverable():
    m = rayzor.Module()
    g = m.function("g", [rayzor.i64, rayzor.i64], rayzor.i64)
    a, b = g.params
    g.ret(a / b)
    f = m.function("main", [rayzor.i64], rayzor.i64)
    (x,) = f.params
    f.ret(f.call("g", 100, x))
    with pytest.raises(rayzor.Trap) as ei:
        rayzor.interpret(m, "main", 0)
    assert ei.value.kind is TK.DIVISION_BY_ZERO
    assert ei.value.function == "g"
    assert "division_by_zero" in str(ei.value)
    assert rayzor.interpret(m, "main", 7) == 14


@pytest.mark.parametrize("t", FLOAT_NAMES)
def test_float_div_rem(t):
    div, rem = binary_fn("div", t), binary_fn("rem", t)
    assert same_float(run(div, 1.0, 0.0), math.inf)
    assert same_float(run(div, -1.0, 0.0), -math.inf)
    assert same_float(run(div, 1.0, -0.0), -math.inf)
    assert math.isnan(run(div, 0.0, 0.0))
    assert same_float(run(div, 7.5, 2.5), 3.0)
    assert same_float(run(rem, 5.5, 2.0), math.fmod(5.5, 2.0))
    assert same_float(run(rem, -5.5, 2.0), math.fmod(-5.5, 2.0))
    assert math.isnan(run(rem, 1.0, 0.0))


# ---------------------------------------------------------------------------
# Shifts and rotates
# ---------------------------------------------------------------------------


def shift_model(op: str, a: int, b: int, t: str) -> int:
    w = BITS[t]
    amt = b & (w - 1)
    u = a & ((1 << w) - 1)
    if op == "shl":
        return wrap(u << amt, t)
    if op == "shr":
        return wrap(a >> amt, t) if signed(t) else u >> amt
    if op == "rotl":
        return wrap((u << amt | u >> (w - amt)) & ((1 << w) - 1), t)
    return wrap((u >> amt | u << (w - amt)) & ((1 << w) - 1), t)


@pytest.mark.parametrize("t", INT_NAMES)
@pytest.mark.parametrize("op", ["shl", "shr", "rotl", "rotr"])
def test_shift_rotate_amounts(op, t):
    w = BITS[t]
    m = binary_fn(op, t)
    amounts = [0, 1, 3, w - 1, w, w + 1, 2 * w - 1, hi(t)]
    if signed(t):
        amounts += [-1, -2, -w, -w - 1, lo(t)]
    values = [1, hi(t), lo(t), 0x5A & hi(t), wrap(0x8123456789ABCDEF, t)] + ([-1, -2] if signed(t) else [])
    for a in values:
        for b in amounts:
            assert run(m, a, b) == shift_model(op, a, b, t), (op, t, a, b)


def test_shift_specific_values():
    assert run(binary_fn("shl", "i32"), 1, 33) == 2  # 33 mod 32 = 1
    assert run(binary_fn("shl", "i32"), 1, -1) == -(2**31)  # -1 mod 32 = 31
    assert run(binary_fn("shr", "i32"), -16, 2) == -4  # arithmetic
    assert run(binary_fn("shr", "u32"), 2**32 - 16, 2) == (2**32 - 16) >> 2  # logical
    assert run(binary_fn("shr", "i8"), -128, 7) == -1
    assert run(binary_fn("shr", "u8"), 128, 7) == 1
    assert run(binary_fn("shr", "i64"), -1, 64) == -1
    assert run(binary_fn("rotl", "u8"), 0x81, 1) == 0x03
    assert run(binary_fn("rotr", "u8"), 0x81, 1) == 0xC0
    assert run(binary_fn("rotl", "i16"), -32768, 1) == 1
    assert run(binary_fn("rotr", "u64"), 1, 65) == 2**63


@pytest.mark.parametrize("t", INT_NAMES)
@given(data=st.data())
def test_shift_rotate_random(t, data):
    op = data.draw(st.sampled_from(["shl", "shr", "rotl", "rotr"]))
    a = data.draw(st.integers(lo(t), hi(t)))
    b = data.draw(st.integers(lo(t), hi(t)))
    assert run(binary_fn(op, t), a, b) == shift_model(op, a, b, t)


# ---------------------------------------------------------------------------
# Bitwise logic, including bool
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["and", "or", "xor"])
def test_bool_logic(op):
    m = binary_fn(op, "bool")
    model = {"and": lambda a, b: a and b, "or": lambda a, b: a or b, "xor": lambda a, b: a != b}[op]
    for a in (False, True):
        for b in (False, True):
            got = run(m, a, b)
            assert got is model(a, b), (op, a, b, got)


def test_bool_not():
    m = unary_fn("not", "bool")
    assert run(m, True) is False
    assert run(m, False) is True


@pytest.mark.parametrize("t", INT_NAMES)
def test_int_not(t):
    m = unary_fn("not", t)
    for a in edge_values(t):
        assert run(m, a) == wrap(~a, t)


# ---------------------------------------------------------------------------
# min / max
# ---------------------------------------------------------------------------


def test_min_max_signedness():
    assert run(binary_fn("min", "i32"), -1, 1) == -1
    assert run(binary_fn("min", "u32"), 2**32 - 1, 1) == 1
    assert run(binary_fn("max", "i8"), -128, 127) == 127
    assert run(binary_fn("max", "u8"), 128, 127) == 128


@pytest.mark.parametrize("t", FLOAT_NAMES)
def test_float_min_max(t):
    mn, mx = binary_fn("min", t), binary_fn("max", t)
    nan = math.nan
    for a, b in [(nan, 1.0), (1.0, nan), (nan, nan), (nan, -math.inf), (math.inf, nan)]:
        assert math.isnan(run(mn, a, b)), (a, b)
        assert math.isnan(run(mx, a, b)), (a, b)
    assert same_float(run(mn, -0.0, 0.0), -0.0)
    assert same_float(run(mn, 0.0, -0.0), -0.0)
    assert same_float(run(mx, -0.0, 0.0), 0.0)
    assert same_float(run(mx, 0.0, -0.0), 0.0)
    assert same_float(run(mn, -math.inf, 3.0), -math.inf)
    assert same_float(run(mx, -math.inf, 3.0), 3.0)
    assert same_float(run(mn, 2.5, -7.25), -7.25)
    assert same_float(run(mx, 2.5, -7.25), 2.5)


# ---------------------------------------------------------------------------
# Unary
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("t", INT_NAMES)
def test_neg_abs_int(t):
    neg, ab = unary_fn("neg", t), unary_fn("abs", t)
    for a in edge_values(t):
        assert run(neg, a) == wrap(-a, t), (t, a)
        assert run(ab, a) == wrap(abs(a), t), (t, a)
    if signed(t):
        assert run(ab, lo(t)) == lo(t)
        assert run(neg, lo(t)) == lo(t)


@pytest.mark.parametrize("t", FLOAT_NAMES)
def test_neg_abs_float(t):
    neg, ab = unary_fn("neg", t), unary_fn("abs", t)
    assert same_float(run(neg, 0.0), -0.0)
    assert same_float(run(neg, -0.0), 0.0)
    assert same_float(run(neg, 1.5), -1.5)
    assert same_float(run(neg, -math.inf), math.inf)
    assert same_float(run(ab, -0.0), 0.0)
    assert same_float(run(ab, -2.5), 2.5)
    assert same_float(run(ab, -math.inf), math.inf)
    assert math.isnan(run(ab, math.nan))


def test_float_neg_abs_only_touch_the_sign_bit():
    """neg flips and abs clears the sign bit, NaN payloads included."""
    for op, want in [("neg", lambda b: b ^ (1 << 63)), ("abs", lambda b: b & ~(1 << 63))]:
        m = rayzor.Module()
        f = m.function("f", [rayzor.u64], rayzor.u64)
        (x,) = f.params
        f.ret(f.bitcast(programs.method(f, op)(f.bitcast(x, rayzor.f64)), rayzor.u64))
        for bits in [0xFFF8000000000123, 0x7FF0000000000001, 0x8000000000000000, 0x3FF0000000000000]:
            assert run(m, bits) == want(bits), (op, hex(bits))


@pytest.mark.parametrize("t", FLOAT_NAMES)
def test_sqrt(t):
    m = unary_fn("sqrt", t)
    assert same_float(run(m, 4.0), 2.0)
    assert same_float(run(m, 0.0), 0.0)
    assert same_float(run(m, -0.0), -0.0)
    assert same_float(run(m, math.inf), math.inf)
    assert math.isnan(run(m, -1.0))
    assert math.isnan(run(m, math.nan))
    want = float(np.sqrt(np.float32(2.0))) if t == "f32" else math.sqrt(2.0)
    assert same_float(run(m, 2.0), want)


def clz(a: int, w: int) -> int:
    return w - (a & ((1 << w) - 1)).bit_length()


def ctz(a: int, w: int) -> int:
    u = a & ((1 << w) - 1)
    return w if u == 0 else (u & -u).bit_length() - 1


def popcnt(a: int, w: int) -> int:
    return bin(a & ((1 << w) - 1)).count("1")


@pytest.mark.parametrize("t", INT_NAMES)
def test_bit_counts(t):
    w = BITS[t]
    models = {"clz": clz, "ctz": ctz, "popcnt": popcnt}
    values = edge_values(t) + [wrap(0x0F00, t), wrap(1 << (w - 1), t), wrap(0x00F0F0F0F0F0F0F0, t)]
    for op, model in models.items():
        m = unary_fn(op, t)
        for a in values:
            assert run(m, a) == model(a, w), (op, t, a)
    assert run(unary_fn("clz", t), 0) == w
    assert run(unary_fn("ctz", t), 0) == w
    assert run(unary_fn("popcnt", t), 0) == 0
    if signed(t):
        assert run(unary_fn("popcnt", t), -1) == w
        assert run(unary_fn("clz", t), -1) == 0


# ---------------------------------------------------------------------------
# Comparisons
# ---------------------------------------------------------------------------

CMP_MODEL = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
}


@pytest.mark.parametrize("t", INT_NAMES)
@pytest.mark.parametrize("op", sorted(CMP_MODEL))
def test_int_compares(op, t):
    m = binary_fn(op, t)
    vals = edge_values(t)
    for a in vals:
        for b in vals:
            got = run(m, a, b)
            assert got is CMP_MODEL[op](a, b), (op, t, a, b, got)


def test_compare_signedness():
    assert run(binary_fn("lt", "i32"), -1, 1) is True
    assert run(binary_fn("gt", "u32"), 0xFFFFFFFF, 1) is True
    assert run(binary_fn("lt", "u32"), 0xFFFFFFFF, 1) is False
    assert run(binary_fn("ge", "i8"), -128, 0) is False
    assert run(binary_fn("ge", "u8"), 128, 0) is True
    assert run(binary_fn("lt", "i64"), -(2**63), 2**63 - 1) is True
    assert run(binary_fn("lt", "u64"), 2**63, 2**63 - 1) is False


@pytest.mark.parametrize("t", FLOAT_NAMES)
@pytest.mark.parametrize("op", sorted(CMP_MODEL))
def test_float_compares(op, t):
    m = binary_fn(op, t)
    vals = [math.nan, -math.inf, -1.5, -0.0, 0.0, 1e-30, 2.0, math.inf]
    for a in vals:
        for b in vals:
            got = run(m, a, b)
            assert got is CMP_MODEL[op](a, b), (op, t, a, b, got)  # Python is IEEE here too
    # NaN: everything false except ne
    for x in (1.0, math.nan):
        assert run(m, math.nan, x) is (op == "ne")


@pytest.mark.parametrize("op", ["eq", "ne"])
def test_bool_and_ptr_equality(op):
    mb, mp = binary_fn(op, "bool"), binary_fn(op, "ptr")
    for a in (False, True):
        for b in (False, True):
            assert run(mb, a, b) is CMP_MODEL[op](a, b)
    assert run(mp, 0x1000, 0x1000) is (op == "eq")
    assert run(mp, 0x1000, 0x2000) is (op == "ne")


def test_ptr_compare_is_unsigned():
    assert run(binary_fn("lt", "ptr"), 0x10, 0xFFFF_FFFF_FFFF_FFF0) is True


# ---------------------------------------------------------------------------
# select
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "t, a, b", [("i64", -5, 9), ("u8", 255, 0), ("f64", 1.5, -2.5), ("bool", True, False)]
)
def test_select_scalar(t, a, b):
    m = rayzor.Module()
    f = m.function("f", [rayzor.bool_, programs.ty(t), programs.ty(t)], programs.ty(t))
    c, x, y = f.params
    f.ret(f.select(c, x, y))
    assert run(m, True, a, b) == a
    assert run(m, False, a, b) == b


def test_select_aggregate():
    s = rayzor.struct(rayzor.i32, rayzor.f64)
    m = rayzor.Module()
    f = m.function("f", [rayzor.bool_], rayzor.f64)
    (c,) = f.params
    x = f.insert(f.insert(f.zero(s), 0, 1), 1, 10.0)
    y = f.insert(f.insert(f.zero(s), 0, 2), 1, 20.0)
    r = f.select(c, x, y)
    f.ret(f.cast(f.extract(r, 0), rayzor.f64) + f.extract(r, 1))
    assert run(m, True) == 11.0
    assert run(m, False) == 22.0


# ---------------------------------------------------------------------------
# Casts
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("src", FLOAT_NAMES)
@pytest.mark.parametrize("dst", INT_NAMES)
def test_float_to_int_saturates(src, dst):
    m = cast_fn(src, dst)
    cases = {
        math.nan: 0,
        math.inf: hi(dst),
        -math.inf: lo(dst),
        1e30: hi(dst),
        -1e30: lo(dst),
        3.99: 3,
        -3.99: max(-3, lo(dst)),
        -0.5: 0,
        0.5: 0,
        300.7: min(300, hi(dst)),
        -300.7: max(-300, lo(dst)),
        -0.0: 0,
        2.0**63: min(2**63, hi(dst)),
        -(2.0**63): max(-(2**63), lo(dst)),
        2.0**64: hi(dst),
    }
    for x, want in cases.items():
        assert run(m, x) == want, (src, dst, x)


@pytest.mark.parametrize("src", INT_NAMES)
@pytest.mark.parametrize("dst", INT_NAMES)
def test_int_to_int_widen_and_narrow(src, dst):
    m = cast_fn(src, dst)
    for a in edge_values(src) + [wrap(0x123456789ABCDEF0, src), wrap(0x80, src), wrap(0x8000, src)]:
        # The mathematical value of the source, reduced to the destination:
        # sign extension for signed sources, zero extension for unsigned ones, then truncation.
        assert run(m, a) == wrap(a, dst), (src, dst, a)


def test_int_extension_specific():
    assert run(cast_fn("i8", "u64"), -1) == 2**64 - 1
    assert run(cast_fn("u8", "i64"), 255) == 255
    assert run(cast_fn("i16", "u32"), -2) == 2**32 - 2
    assert run(cast_fn("u32", "i64"), 2**32 - 1) == 2**32 - 1
    assert run(cast_fn("i64", "i8"), 0x1FF) == -1
    assert run(cast_fn("u64", "u16"), 0x12345) == 0x2345


@pytest.mark.parametrize("src", INT_NAMES)
def test_int_to_float(src):
    m64, m32 = cast_fn(src, "f64"), cast_fn(src, "f32")
    vals = edge_values(src) + [wrap(2**53 + 1, src), wrap(2**24 + 1, src), wrap(2**63 + 2**39 + 1, src)]
    for a in vals:
        assert same_float(run(m64, a), float(a)), (src, a)
        assert same_float(run(m32, a), int_to_f32(a)), (src, a)


def test_u64_max_to_floats_rounds_up():
    assert run(cast_fn("u64", "f64"), 2**64 - 1) == 2.0**64
    assert run(cast_fn("u64", "f32"), 2**64 - 1) == 2.0**64
    # Directly rounded to f32, not via f64 (which would round twice and give 2**63).
    assert run(cast_fn("u64", "f32"), 2**63 + 2**39 + 1) == 2.0**63 + 2.0**40
    assert run(cast_fn("i64", "f64"), 2**53 + 1) == 2.0**53
    assert run(cast_fn("i64", "f64"), -(2**63)) == -(2.0**63)


def test_float_width_conversions():
    m = cast_fn("f64", "f32")
    for x in [
        0.1,
        1 / 3,
        1e-40,
        1e-50,
        -1e-50,
        3.4028235e38,
        3.4028236e38,
        1e39,
        -1e300,
        16777217.0,
        math.inf,
    ]:
        assert same_float(run(m, x), f32(x)), x
    assert same_float(run(m, -0.0), -0.0)
    assert math.isnan(run(m, math.nan))
    w = cast_fn("f32", "f64")
    for x in [0.1, 1e-45, -2.5, math.inf, -0.0]:
        assert same_float(run(w, x), f32(x) if math.isfinite(x) else x), x
    assert math.isnan(run(w, math.nan))


@pytest.mark.parametrize("dst", INT_NAMES + FLOAT_NAMES)
def test_bool_to_number(dst):
    m = cast_fn("bool", dst)
    assert run(m, True) == 1 and run(m, False) == 0
    if dst in FLOAT_NAMES:
        assert isinstance(run(m, True), float)


@pytest.mark.parametrize("src", INT_NAMES + FLOAT_NAMES)
def test_number_to_bool_is_nonzero(src):
    m = cast_fn(src, "bool")
    assert run(m, 0 if src in INT_NAMES else 0.0) is False
    assert run(m, 1 if src in INT_NAMES else 1.0) is True
    if src in INT_NAMES:
        assert run(m, hi(src)) is True
        assert run(m, 256 if hi(src) >= 256 else 2) is True  # not truncated to the low bit
        assert run(m, 2) is True
    else:
        assert run(m, -0.0) is False
        assert run(m, 0.5) is True
        assert run(m, math.nan) is True
        assert run(m, 1e-45 if src == "f32" else 5e-324) is True


@pytest.mark.parametrize("it", ["i64", "u64"])
def test_ptr_int_casts(it):
    to_ptr, from_ptr = cast_fn(it, "ptr"), cast_fn("ptr", it)
    for v in [0, 0x1234, hi(it), lo(it)]:
        p = run(to_ptr, v)
        assert p == v & (2**64 - 1)
        assert run(from_ptr, p) == v


def test_same_type_cast_is_identity():
    assert run(cast_fn("i32", "i32"), -7) == -7
    assert same_float(run(cast_fn("f64", "f64"), -0.0), -0.0)


# ---------------------------------------------------------------------------
# Bitcasts
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "x", [0.0, -0.0, 1.0, -2.5, math.pi, math.inf, -math.inf, 5e-324, 1.7976931348623157e308]
)
def test_bitcast_f64_u64_i64(x):
    bits = f64_bits(x)
    assert run(programs.bitcast_fn("f64", "u64"), x) == bits
    assert run(programs.bitcast_fn("f64", "i64"), x) == wrap(bits, "i64")
    assert same_float(run(programs.bitcast_fn("u64", "f64"), bits), x)


@pytest.mark.parametrize("x", [0.0, -0.0, 1.0, -2.5, 0.1, math.inf, 1e-45, 3.4028234663852886e38])
def test_bitcast_f32_i32(x):
    bits = f32_bits(x)
    assert run(programs.bitcast_fn("f32", "i32"), x) == wrap(bits, "i32")
    assert run(programs.bitcast_fn("f32", "u32"), x) == bits
    assert same_float(
        run(programs.bitcast_fn("i32", "f32"), wrap(bits, "i32")), f32(x) if math.isfinite(x) else x
    )


def test_bitcast_preserves_nan_payloads():
    for src, mid, bits in [
        ("u64", "f64", 0x7FF0000000000001),
        ("u64", "f64", 0xFFF8DEADBEEF0001),
        ("u32", "f32", 0x7F800001),
        ("u32", "f32", 0xFFC12345),
    ]:
        m = rayzor.Module()
        f = m.function("f", [programs.ty(src)], programs.ty(src))
        (x,) = f.params
        f.ret(f.bitcast(f.bitcast(x, programs.ty(mid)), programs.ty(src)))
        assert run(m, bits) == bits, hex(bits)


def test_bitcast_int_signedness():
    assert run(programs.bitcast_fn("i8", "u8"), -1) == 255
    assert run(programs.bitcast_fn("u16", "i16"), 0x8000) == -32768
    assert run(programs.bitcast_fn("ptr", "u64"), 0xDEAD) == 0xDEAD


# ---------------------------------------------------------------------------
# f32 arithmetic is done in f32
# ---------------------------------------------------------------------------

NP_OPS = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide, "rem": np.fmod}


@pytest.mark.parametrize("op", sorted(NP_OPS))
def test_f32_arithmetic_rounds_in_f32(op):
    m = binary_fn(op, "f32")
    pairs = [(0.1, 0.2), (16777216.0, 1.0), (1.0, 3.0), (3e38, 10.0), (1e-30, 1e-30), (1.1, 1.1), (-7.3, 2.9)]
    with np.errstate(all="ignore"):
        for a, b in pairs:
            want = float(NP_OPS[op](np.float32(a), np.float32(b)))
            assert same_float(run(m, a, b), want), (op, a, b)


def test_f32_specific_rounding():
    assert run(binary_fn("add", "f32"), 16777216.0, 1.0) == 16777216.0
    assert run(binary_fn("add", "f64"), 16777216.0, 1.0) == 16777217.0
    assert run(binary_fn("add", "f32"), 0.1, 0.2) == f32(f32(0.1) + f32(0.2))
    assert run(binary_fn("mul", "f32"), 3e38, 10.0) == math.inf


@given(
    op=st.sampled_from(sorted(NP_OPS)),
    a=st.floats(width=32, allow_nan=False),
    b=st.floats(width=32, allow_nan=False),
)
def test_f32_arithmetic_random(op, a, b):
    with np.errstate(all="ignore"):
        want = float(NP_OPS[op](np.float32(a), np.float32(b)))
    assert same_float(run(binary_fn(op, "f32"), a, b), want)


@given(
    op=st.sampled_from(sorted(NP_OPS)),
    a=st.floats(allow_nan=False),
    b=st.floats(allow_nan=False),
)
def test_f64_arithmetic_random(op, a, b):
    with np.errstate(all="ignore"):
        want = float(NP_OPS[op](np.float64(a), np.float64(b)))
    assert same_float(run(binary_fn(op, "f64"), a, b), want)


# floor/ceil/trunc/nearest against numpy's (IEEE roundToIntegral*; np.rint rounds half to
# even), copysign against numpy's, fma against exact rational arithmetic.
ROUNDING = {"floor": np.floor, "ceil": np.ceil, "trunc": np.trunc, "nearest": np.rint}


@given(
    op=st.sampled_from(sorted(ROUNDING)),
    t=st.sampled_from(FLOAT_NAMES),
    x=st.one_of(st.floats(), st.floats(-1e17, 1e17).map(lambda v: round(v * 2) / 2)),
)
def test_rounding_random(op, t, x):
    if t == "f32":
        x = f32(x) if abs(x) < 3.4e38 or math.isinf(x) else math.copysign(math.inf, x)
    np_t = np.float32 if t == "f32" else np.float64
    want = float(ROUNDING[op](np_t(x)))
    assert same_float(run(unary_fn(op, t), x), want), (op, t, x)


def test_rounding_half_cases():
    want = {
        "floor": [0.0, 1.0, 2.0, -1.0, -3.0],
        "ceil": [1.0, 2.0, 3.0, -0.0, -2.0],
        "trunc": [0.0, 1.0, 2.0, -0.0, -2.0],
        "nearest": [0.0, 2.0, 2.0, -0.0, -2.0],
    }
    for t in FLOAT_NAMES:
        for op, ws in want.items():
            m = unary_fn(op, t)
            for x, w in zip([0.5, 1.5, 2.5, -0.5, -2.5], ws, strict=True):
                assert same_float(run(m, x), w), (op, t, x)


@given(t=st.sampled_from(FLOAT_NAMES), a=st.floats(), b=st.floats())
def test_copysign_random(t, a, b):
    if t == "f32":
        a, b = (f32(v) if abs(v) < 3.4e38 or not math.isfinite(v) else math.copysign(1.0, v) for v in (a, b))
    want = math.copysign(a, b)
    assert same_float(run(binary_fn("copysign", t), a, b), want)


def fma_fn(t: str) -> rayzor.Module:
    m = rayzor.Module()
    ty = programs.ty(t)
    f = m.function("f", [ty, ty, ty], ty)
    f.ret(f.fma(*f.params))
    return m


def exact_fma(a: float, b: float, c: float) -> float:
    """a * b + c rounded once to f64, for finite operands (Fraction -> float rounds to nearest even)."""
    from fractions import Fraction

    exact = Fraction(a) * Fraction(b) + Fraction(c)
    if exact == 0:
        # IEEE: an exact zero sum is +0 unless both addends are -0 (round to nearest).
        # Here c == 0 exactly when the product is exactly 0 (a or b is a zero).
        prod_neg = math.copysign(1, a) * math.copysign(1, b) < 0
        return -0.0 if c == 0 and prod_neg and math.copysign(1, c) < 0 else 0.0
    try:
        return float(exact)
    except OverflowError:
        return math.inf if exact > 0 else -math.inf


@given(a=st.floats(allow_infinity=False, allow_nan=False), b=st.floats(allow_infinity=False, allow_nan=False),
       c=st.floats(allow_infinity=False, allow_nan=False))  # fmt: skip
def test_fma_random(a, b, c):
    assert same_float(run(fma_fn("f64"), a, b, c), exact_fma(a, b, c)), (a, b, c)


def test_fma_rounds_once():
    m = fma_fn("f64")
    # 0.1 * 10 - 1: the exact residue 2^-54, where mul then add gives 0.
    assert run(m, 0.1, 10.0, -1.0) == 2.0**-54
    assert run(binary_fn("add", "f64"), run(binary_fn("mul", "f64"), 0.1, 10.0), -1.0) == 0.0
    assert run(m, 1e308, 2.0, -1e308) == 1e308  # no intermediate overflow
    assert run(fma_fn("f32"), 0.1, 10.0, -1.0) == 2.0**-26
    assert math.isnan(run(m, math.inf, 0.0, 1.0))
    with pytest.raises(rayzor.BuildError, match="Value operand"):
        rayzor.Module().function("g", [], rayzor.f64).fma(1.0, 2.0, 3.0)


def test_float_only_ops_refuse_integers():
    for op in ["floor", "ceil", "trunc", "nearest"]:
        with pytest.raises(rayzor.VerifyError, match=op):
            unary_fn(op, "i32").verify()
    with pytest.raises(rayzor.VerifyError, match="copysign"):
        binary_fn("copysign", "i64").verify()
    with pytest.raises(rayzor.VerifyError, match="fma"):
        fma_fn("i64").verify()


def test_f32_argument_conversion_rounds():
    m = unary_fn("neg", "f32")
    assert run(m, 0.1) == -f32(0.1)
    assert run(m, math.inf) == -math.inf
    # A finite value beyond f32's range is refused rather than silently made infinite.
    with pytest.raises(rayzor.ArgumentError, match="range of f32"):
        run(m, 1e39)


# ---------------------------------------------------------------------------
# Memory
# ---------------------------------------------------------------------------


def test_alloc_is_zeroed_and_store_load_round_trip():
    s = rayzor.struct(rayzor.i8, rayzor.i64, rayzor.i16)
    m = rayzor.Module()
    f = m.function("f", [rayzor.i64], rayzor.i64)
    (x,) = f.params
    p = f.alloc(s, f.const(3, rayzor.u64))
    # all zero initially: sum the three i64 fields of the 3 records
    z = f.load(rayzor.i64, f.field_addr(s, f.elem_addr(s, p, 0), 1))
    z = z + f.load(rayzor.i64, f.field_addr(s, f.elem_addr(s, p, 2), 1))
    z = z + f.cast(f.load(rayzor.i16, f.field_addr(s, f.elem_addr(s, p, 1), 2)), rayzor.i64)
    q = f.field_addr(s, f.elem_addr(s, p, 2), 1)
    f.store(q, x)
    got = f.load(rayzor.i64, q)
    f.free(p)
    f.ret(got * 10 + z)
    assert run(m, 42) == 420
    assert run(m, -(2**62)) == wrap(-(2**62) * 10, "i64")


def _addr_diff(build) -> rayzor.Module:
    m = rayzor.Module()
    f = m.function("f", [], rayzor.i64)
    p = f.alloc(rayzor.array(rayzor.u8, 64), f.const(1, rayzor.u64))
    q = build(f, p)
    d = f.cast(q, rayzor.i64) - f.cast(p, rayzor.i64)
    f.free(p)
    f.ret(d)
    return m


@pytest.mark.parametrize(
    "fields, index",
    [
        ((rayzor.i8, rayzor.i64, rayzor.i16), 1),
        ((rayzor.i8, rayzor.i64, rayzor.i16), 2),
        ((rayzor.u8, rayzor.u16, rayzor.u8, rayzor.f32), 3),
        ((rayzor.i32, rayzor.array(rayzor.i8, 3), rayzor.f64), 2),
        ((rayzor.i8, rayzor.struct(rayzor.i8, rayzor.i32)), 1),
    ],
)
def test_field_addr_matches_c_layout(fields, index):
    s = rayzor.struct(*fields)
    got = run(_addr_diff(lambda f, p: f.field_addr(s, p, index)))
    assert got == s.offset_of(index)
    # independent C layout: each field at the next multiple of its alignment
    off = 0
    for i, t in enumerate(fields):
        off = (off + t.align - 1) // t.align * t.align
        if i == index:
            break
        off += t.size
    assert got == off


@pytest.mark.parametrize(
    "elem, index, want",
    [
        (rayzor.i64, 3, 24),
        (rayzor.i64, -1, -8),
        (rayzor.struct(rayzor.i32, rayzor.i8), 5, 40),
        (rayzor.u8, 7, 7),
        (rayzor.array(rayzor.i16, 3), 2, 12),
    ],
)
def test_elem_addr(elem, index, want):
    assert run(_addr_diff(lambda f, p: f.elem_addr(elem, p, f.const(index, rayzor.i32)))) == want


def test_elem_addr_unsigned_index_is_zero_extended():
    m = rayzor.Module()
    f = m.function("f", [rayzor.ptr, rayzor.u32], rayzor.u64)
    p, i = f.params
    f.ret(f.cast(f.elem_addr(rayzor.u8, p, i), rayzor.u64) - f.cast(p, rayzor.u64))
    assert run(m, 0x10000, 0xFFFFFFFF) == 0xFFFFFFFF


def test_memset_and_memcpy_are_memset_and_memmove():
    m = rayzor.Module()
    f = m.function("f", [rayzor.ptr], rayzor.void)
    (p,) = f.params
    # buf[0:16] = 0..15 by the caller; memmove(buf+1, buf, 6); memset(buf+10, 0xAB, 4)
    f.memcpy(f.elem_addr(rayzor.u8, p, 1), p, f.const(6, rayzor.u64))
    f.memset(f.elem_addr(rayzor.u8, p, 10), f.const(0xAB, rayzor.u8), f.const(4, rayzor.u64))
    # overlapping the other way: memmove(buf+12, buf+13, 3)
    f.memcpy(f.elem_addr(rayzor.u8, p, 12), f.elem_addr(rayzor.u8, p, 13), f.const(3, rayzor.u64))
    f.ret()
    buf = bytearray(range(16))
    run(m, buf)
    want = bytearray(range(16))
    want[1:7] = bytes(range(6))
    want[10:14] = b"\xab" * 4
    want[12:15] = bytes(want[13:16])
    assert buf == want


def test_memset_then_load_wide():
    m = rayzor.Module()
    f = m.function("f", [rayzor.u8], rayzor.u64)
    (b,) = f.params
    p = f.alloc(rayzor.u64, f.const(2, rayzor.u64))
    f.memset(p, b, f.const(16, rayzor.u64))
    r = f.load(rayzor.u64, f.elem_addr(rayzor.u64, p, 1))
    f.memset(p, b, f.const(0, rayzor.u64))
    f.free(p)
    f.ret(r)
    assert run(m, 0xAB) == 0xABABABABABABABAB
    assert run(m, 0) == 0


def test_memcpy_between_allocations_and_aggregate_load():
    a4 = rayzor.array(rayzor.i32, 4)
    m = rayzor.Module()
    f = m.function("f", [], rayzor.i32)
    src = f.alloc(a4, f.const(1, rayzor.u64))
    dst = f.alloc(a4, f.const(1, rayzor.u64))
    v = f.zero(a4)
    for i, x in enumerate([5, -6, 70, -800]):
        v = f.insert(v, i, x)
    f.store(src, v)
    f.memcpy(dst, src, f.const(16, rayzor.u64))
    w = f.load(a4, dst)
    f.free(src)
    f.free(dst)
    f.ret(f.extract(w, 0) + f.extract(w, 1) * 2 + f.extract(w, 2) + f.extract(w, 3))
    assert run(m) == 5 - 12 + 70 - 800


@pytest.mark.parametrize(
    "t, x", [("i8", -5), ("u16", 65000), ("f32", 1.5), ("f64", -0.25), ("bool", True), ("ptr", 0xABCDEF)]
)
def test_scalar_store_load_into_user_buffer(t, x):
    m = rayzor.Module()
    f = m.function("f", [rayzor.ptr, programs.ty(t)], programs.ty(t))
    p, v = f.params
    f.store(p, v)
    f.ret(f.load(programs.ty(t), p))
    buf = bytearray(8)
    assert run(m, buf, x) == x
    fmt = {"i8": "<b", "u16": "<H", "f32": "<f", "f64": "<d", "bool": "<?", "ptr": "<Q"}[t]
    assert struct.unpack_from(fmt, buf)[0] == x


def test_null_load_is_memory_fault():
    m = rayzor.Module()
    f = m.function("f", [rayzor.ptr], rayzor.i64)
    (p,) = f.params
    f.ret(f.load(rayzor.i64, p))
    assert trap_kind(m, None) == TK.MEMORY_FAULT
    assert trap_kind(m, 0) == TK.MEMORY_FAULT


def test_use_after_free_is_memory_fault():
    m = rayzor.Module()
    f = m.function("f", [], rayzor.i64)
    p = f.alloc(rayzor.i64, f.const(4, rayzor.u64))
    f.free(p)
    f.ret(f.load(rayzor.i64, p))
    assert trap_kind(m) == TK.MEMORY_FAULT


@pytest.mark.parametrize("offset, ok", [(24, True), (25, False), (28, False), (31, False)])
def test_access_running_past_an_interpreter_allocation_is_memory_fault(offset, ok):
    """An 8-byte load that starts inside a 32-byte allocation and runs past its end."""
    m = rayzor.Module()
    f = m.function("f", [], rayzor.i64)
    p = f.alloc(rayzor.i64, f.const(4, rayzor.u64))
    f.store(f.elem_addr(rayzor.i64, p, 3), f.const(-9, rayzor.i64))
    f.ret(f.load(rayzor.i64, f.elem_addr(rayzor.u8, p, offset)))
    if ok:
        assert run(m) == -9
    else:
        assert trap_kind(m) == TK.MEMORY_FAULT


def test_double_free_is_memory_fault():
    m = rayzor.Module()
    f = m.function("f", [], rayzor.void)
    p = f.alloc(rayzor.i64, f.const(1, rayzor.u64))
    f.free(p)
    f.free(p)
    f.ret()
    assert trap_kind(m) == TK.MEMORY_FAULT


def test_free_null_is_a_no_op():
    m = rayzor.Module()
    f = m.function("f", [rayzor.ptr], rayzor.i64)
    (p,) = f.params
    f.free(p)
    f.ret(7)
    assert run(m, None) == 7


@pytest.mark.parametrize(
    "byte, want", [(0, False), (1, True), (2, False), (0xFE, False), (0xFF, True), (3, True)]
)
def test_bool_load_keeps_bit_zero(byte, want):
    m = rayzor.Module()
    f = m.function("f", [rayzor.ptr], rayzor.bool_)
    (p,) = f.params
    f.ret(f.load(rayzor.bool_, p))
    assert run(m, bytearray([byte])) is want


@pytest.mark.parametrize("addr", [0, 0x5000, 2**64 - 1])
def test_call_indirect_through_null_or_foreign_fn_pointer_is_memory_fault(addr):
    m = rayzor.Module()
    g = m.function("g", [rayzor.i64], rayzor.i64)
    g.ret(g.params[0] + 1)
    fty = rayzor.fn([rayzor.i64], rayzor.i64)
    f = m.function("f", [fty], rayzor.i64)
    (fp,) = f.params
    f.ret(f.call_indirect(fp, 5))
    assert trap_kind(m, addr) == TK.MEMORY_FAULT
    # a fn pointer read back from memory still works
    h = m.function("h", [], rayzor.i64)
    slot = h.alloc(fty, h.const(1, rayzor.u64))
    h.store(slot, h.func_addr("g"))
    r = h.call_indirect(h.load(fty, slot), 41)
    h.free(slot)
    h.ret(r)
    assert run(m, name="h") == 42


def test_huge_alloc_is_out_of_memory():
    m = rayzor.Module()
    f = m.function("f", [rayzor.u64], rayzor.i64)
    (n,) = f.params
    p = f.alloc(rayzor.array(rayzor.i64, 1 << 20), n)
    f.free(p)
    f.ret(0)
    assert trap_kind(m, 2**62) == TK.OUT_OF_MEMORY
    assert trap_kind(m, 2**64 - 1) == TK.OUT_OF_MEMORY
    assert run(m, 1) == 0


# ---------------------------------------------------------------------------
# Aggregates: extract / insert
# ---------------------------------------------------------------------------


def test_struct_extract_insert():
    inner = rayzor.struct(rayzor.i8, rayzor.f32)
    s = rayzor.struct(rayzor.i64, inner, rayzor.array(rayzor.u16, 3), rayzor.bool_)
    m = rayzor.Module()
    f = m.function("f", [rayzor.i64, rayzor.f32], rayzor.f64)
    x, y = f.params
    v = f.zero(s)
    v = f.insert(v, 0, x)
    v = f.insert(v, 1, f.insert(f.extract(v, 1), 1, y))
    v = f.insert(v, 1, f.insert(f.extract(v, 1), 0, -3))
    v = f.insert(v, 2, f.insert(f.extract(v, 2), 2, 65535))
    v = f.insert(v, 3, True)
    w = f.insert(v, 0, 999)  # v is a value: unchanged by inserting into it
    a = f.cast(f.extract(v, 0), rayzor.f64)
    b = f.cast(f.extract(f.extract(v, 1), 1), rayzor.f64)
    c = f.cast(f.extract(f.extract(v, 1), 0), rayzor.f64)
    d = f.cast(f.extract(f.extract(v, 2), 2), rayzor.f64) + f.cast(f.extract(f.extract(v, 2), 0), rayzor.f64)
    e = f.cast(f.extract(v, 3), rayzor.f64)
    g = f.cast(f.extract(w, 0), rayzor.f64)
    f.ret(a + b * 10 + c * 100 + d + e * 1000 + g * 10000)
    assert run(m, 5, 0.5) == 5 + 5 - 300 + 65535 + 1000 + 9990000


def test_array_extract_insert():
    a = rayzor.array(rayzor.f64, 5)
    m = rayzor.Module()
    f = m.function("f", [rayzor.f64], rayzor.f64)
    (x,) = f.params
    v = f.zero(a)
    v = f.insert(v, 4, x)
    v = f.insert(v, 0, 2.0)
    f.ret(f.extract(v, 4) * 3.0 + f.extract(v, 0) + f.extract(v, 2))
    assert run(m, 1.5) == 6.5


def test_aggregate_through_call_and_block_param():
    pair = rayzor.struct(rayzor.i32, rayzor.i32)
    m = rayzor.Module()
    g = m.function("swap", [pair], pair)
    (p,) = g.params
    g.ret(g.insert(g.insert(p, 0, g.extract(p, 1)), 1, g.extract(p, 0)))
    f = m.function("f", [rayzor.i32, rayzor.i32], rayzor.i32)
    a, b = f.params
    v = f.insert(f.insert(f.zero(pair), 0, a), 1, b)
    nxt = f.block(pair)
    f.jump(nxt, f.call("swap", v))
    f.switch_to(nxt)
    (q,) = nxt.params
    f.ret(f.extract(q, 0) * 1000 + f.extract(q, 1))
    assert run(m, 3, 4) == 4003


# ---------------------------------------------------------------------------
# Unions and any
# ---------------------------------------------------------------------------


def _union_module(variant: int, get: int) -> rayzor.Module:
    u = rayzor.union(rayzor.i8, rayzor.struct(rayzor.i32, rayzor.f64, rayzor.i8), rayzor.f32)
    m = rayzor.Module()
    f = m.function("f", [rayzor.i32], rayzor.f64)
    (x,) = f.params
    if variant == 0:
        val = f.union_make(u, 0, f.cast(x, rayzor.i8))
    elif variant == 1:
        rec = rayzor.struct(rayzor.i32, rayzor.f64, rayzor.i8)
        st_ = f.insert(f.insert(f.insert(f.zero(rec), 0, x), 1, 0.5), 2, -1)
        val = f.union_make(u, 1, st_)
    else:
        val = f.union_make(u, 2, f.cast(x, rayzor.f32))
    tag = f.cast(f.union_tag(val), rayzor.f64)
    payload = f.union_get(val, get)
    if get == 0:
        pv = f.cast(payload, rayzor.f64)
    elif get == 1:
        pv = (
            f.cast(f.extract(payload, 0), rayzor.f64)
            + f.extract(payload, 1)
            + f.cast(f.extract(payload, 2), rayzor.f64)
        )
    else:
        pv = f.cast(payload, rayzor.f64)
    f.ret(tag * 1000 + pv)
    return m


@pytest.mark.parametrize("variant", [0, 1, 2])
def test_union_make_tag_get(variant):
    want = {0: 0 * 1000 + 7, 1: 1000 + 7 + 0.5 - 1, 2: 2000 + 7}[variant]
    assert run(_union_module(variant, variant), 7) == want


@pytest.mark.parametrize("variant, get", [(0, 1), (1, 0), (2, 0), (0, 2)])
def test_union_get_wrong_variant_is_bad_tag(variant, get):
    assert trap_kind(_union_module(variant, get), 7) == TK.BAD_TAG


def test_zero_union_holds_variant_zero():
    u = rayzor.union(rayzor.i64, rayzor.f64)
    m = rayzor.Module()
    f = m.function("f", [], rayzor.i64)
    z = f.zero(u)
    f.ret(f.union_get(z, 0) + f.cast(f.union_tag(z), rayzor.i64))
    assert run(m) == 0


def test_union_through_memory():
    u = rayzor.union(rayzor.i16, rayzor.f64)
    m = rayzor.Module()
    f = m.function("f", [rayzor.ptr, rayzor.f64], rayzor.f64)
    p, x = f.params
    f.store(p, f.union_make(u, 1, x))
    f.ret(f.union_get(f.load(u, p), 1))
    buf = bytearray(u.size)
    assert run(m, buf, 2.75) == 2.75
    tag, payload = struct.unpack_from("<I4xd", buf)
    assert (tag, payload) == (1, 2.75)


ANY_TAGS = {
    name: i + 1
    for i, name in enumerate(
        ["bool", "i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "f32", "f64", "ptr"]
    )
}
ANY_SAMPLES = {
    "bool": True,
    "i8": -7,
    "i16": -300,
    "i32": -70000,
    "i64": -(2**40),
    "u8": 200,
    "u16": 60000,
    "u32": 2**32 - 2,
    "u64": 2**64 - 3,
    "f32": 1.5,
    "f64": -2.25,
    "ptr": 0x1234,
}


@pytest.mark.parametrize("t", sorted(ANY_TAGS))
def test_any_make_tag_get(t):
    m = rayzor.Module()
    f = m.function("f", [programs.ty(t)], programs.ty(t))
    (x,) = f.params
    a = f.any_make(x)
    ok, bad = f.block(), f.block()
    f.brif(f.eq(f.any_tag(a), f.const(ANY_TAGS[t], rayzor.u32)), ok, bad)
    f.switch_to(bad)
    f.trap()
    f.switch_to(ok)
    f.ret(f.any_get(a, programs.ty(t)))
    assert run(m, ANY_SAMPLES[t]) == ANY_SAMPLES[t]


@pytest.mark.parametrize(
    "t, other", [("i32", "i64"), ("i64", "u64"), ("f32", "f64"), ("bool", "u8"), ("ptr", "u64")]
)
def test_any_get_wrong_type_is_bad_tag(t, other):
    m = rayzor.Module()
    f = m.function("f", [programs.ty(t)], programs.ty(other))
    (x,) = f.params
    f.ret(f.any_get(f.any_make(x), programs.ty(other)))
    assert trap_kind(m, ANY_SAMPLES[t]) == TK.BAD_TAG


def test_zero_any_has_tag_zero_and_get_traps():
    m = rayzor.Module()
    f = m.function("f", [], rayzor.u32)
    f.ret(f.any_tag(f.zero(rayzor.any_)))
    assert run(m) == 0
    m2 = rayzor.Module()
    g = m2.function("f", [], rayzor.i64)
    g.ret(g.any_get(g.zero(rayzor.any_), rayzor.i64))
    assert trap_kind(m2) == TK.BAD_TAG


# ---------------------------------------------------------------------------
# Strings
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["hello", "h\u00e9llo \u2603", "", 'quote" back\\slash\nnl\ttab', b"\x00\xff\x7f\x80"]
)
def test_str_const_length_and_bytes(text):
    data = text.encode() if isinstance(text, str) else text
    m = rayzor.Module()
    f = m.function("f", [rayzor.i64], rayzor.u64)
    (i,) = f.params
    s = f.str_const(text)
    n = f.extract(s, 1)
    ok, oob = f.block(), f.block()
    f.brif(f.lt(f.cast(i, rayzor.u64), n), ok, oob)
    f.switch_to(oob)
    f.ret(n + 1000)
    f.switch_to(ok)
    f.ret(f.cast(f.load(rayzor.u8, f.elem_addr(rayzor.u8, f.extract(s, 0), i)), rayzor.u64))
    assert run(m, len(data)) == len(data) + 1000
    for k, b in enumerate(data):
        assert run(m, k) == b


def test_str_const_copied_to_user_buffer():
    m = rayzor.Module()
    f = m.function("f", [rayzor.ptr], rayzor.u64)
    (p,) = f.params
    s = f.str_const("Rayzor!")
    f.memcpy(p, f.extract(s, 0), f.extract(s, 1))
    f.ret(f.extract(s, 1))
    buf = bytearray(10)
    assert run(m, buf) == 7
    assert bytes(buf) == b"Rayzor!\x00\x00\x00"


# ---------------------------------------------------------------------------
# Calls
# ---------------------------------------------------------------------------


def test_func_addr_and_call_indirect():
    m = rayzor.Module()
    for name, k in [("double", 2), ("triple", 3)]:
        g = m.function(name, [rayzor.i64], rayzor.i64)
        (x,) = g.params
        g.ret(x * k)
    f = m.function("f", [rayzor.bool_, rayzor.i64], rayzor.i64)
    c, x = f.params
    fp = f.select(c, f.func_addr("double"), f.func_addr("triple"))
    assert fp.type == rayzor.fn([rayzor.i64], rayzor.i64)
    f.ret(f.call_indirect(fp, x))
    assert run(m, True, 21) == 42
    assert run(m, False, 21) == 63
    assert "call_indirect" in str(m) and "func.addr double" in str(m)


def test_void_call_and_multiple_params():
    m = rayzor.Module()
    g = m.function("put", [rayzor.ptr, rayzor.i64, rayzor.f64, rayzor.u8], rayzor.void)
    p, a, b, c = g.params
    g.store(p, a + g.cast(b, rayzor.i64) + g.cast(c, rayzor.i64))
    g.ret()
    f = m.function("f", [rayzor.ptr], rayzor.void)
    (p,) = f.params
    assert f.call_void("put", p, 10, 2.5, 200) is None
    f.ret()
    buf = bytearray(8)
    assert run(m, buf) is None
    assert struct.unpack("<q", buf)[0] == 212


def test_call_of_a_void_callee_still_works_but_is_deprecated():
    m = rayzor.Module()
    g = m.function("put", [rayzor.ptr, rayzor.i64], rayzor.void)
    g.store(*g.params)
    g.ret()
    f = m.function("f", [rayzor.ptr], rayzor.i64)
    (p,) = f.params
    with pytest.warns(DeprecationWarning, match="call_void"):
        assert f.call("put", p, 7) is None
    with pytest.warns(DeprecationWarning, match="call_indirect_void"):
        assert f.call_indirect(f.func_addr("put"), p, 8) is None
    f.call_indirect_void(f.func_addr("put"), p, 9)
    # call_void discards a result; call of a non-void callee is typed Value (+ works).
    f.call_void("f", p)
    f.ret(f.call("f", p) + 1)
    m.verify()
    assert str(m).count("call") == 5


def test_the_generic_op_entry_checks_name_and_arity():
    m = rayzor.Module()
    f = m.function("f", [rayzor.i64], rayzor.i64)
    (x,) = f.params
    assert f._op("add", x, 1).type == rayzor.i64
    assert f._op("lt", x, 1).type == rayzor.bool_
    with pytest.raises(rayzor.BuildError, match="no arithmetic, comparison or unary operation 'addd'"):
        f._op("addd", x, 1)
    with pytest.raises(rayzor.BuildError, match="neg takes 1 operand"):
        f._op("neg", x, x)
    with pytest.raises(rayzor.BuildError, match="add takes 2 operand"):
        f._op("add", x)
    # Every named method and operator is generated from the tables in rayzor._ops.
    from rayzor import _ops

    for name in [*_ops.BINARY, *_ops.UNARY]:
        assert getattr(rayzor.FunctionBuilder, name).__qualname__ == f"FunctionBuilder.{name}"
    for name in _ops.VALUE_BINARY:
        assert getattr(rayzor.Value, f"__r{name}__").__module__ == "rayzor._ops"


def test_switch_dispatch():
    m = rayzor.Module()
    f = m.function("f", [rayzor.i32], rayzor.i32)
    (x,) = f.params
    b_zero, b_one, b_neg, b_min = f.block(), f.block(), f.block(), f.block()
    b_args, dflt = f.block(rayzor.i32), f.block()
    f.switch(x, {0: b_zero, 1: b_one, -5: b_neg, -(2**31): b_min, 7: (b_args, [x * 2])}, dflt)
    for blk, r in [(b_zero, 100), (b_one, 101), (b_neg, 102), (b_min, 103), (dflt, 999)]:
        f.switch_to(blk)
        f.ret(r)
    f.switch_to(b_args)
    f.ret(b_args.params[0] + 1)
    want = {0: 100, 1: 101, -5: 102, -(2**31): 103, 7: 15, 2: 999, -1: 999, 2**31 - 1: 999, 5: 999, 251: 999}
    for v, r in want.items():
        assert run(m, v) == r, v


def test_switch_unsigned_and_default_args():
    m = rayzor.Module()
    f = m.function("f", [rayzor.u8], rayzor.u8)
    (x,) = f.params
    top, dflt = f.block(), f.block(rayzor.u8)
    f.switch(x, {255: top}, dflt, [x + 1])
    f.switch_to(top)
    f.ret(0)
    f.switch_to(dflt)
    f.ret(dflt.params[0])
    assert run(m, 255) == 0
    assert run(m, 4) == 5
    assert run(m, 0) == 1


def test_switch_no_cases():
    m = rayzor.Module()
    f = m.function("f", [rayzor.i64], rayzor.i64)
    (x,) = f.params
    d = f.block()
    f.switch(x, {}, d)
    f.switch_to(d)
    f.ret(x)
    assert run(m, -9) == -9


def test_brif_with_block_args():
    m = rayzor.Module()
    f = m.function("f", [rayzor.i64], rayzor.i64)
    (x,) = f.params
    join = f.block(rayzor.i64, rayzor.i64)
    f.brif(f.gt(x, 0), join, join, [x, 1], [f.neg(x), -1])
    f.switch_to(join)
    a, s = join.params
    f.ret(a * s)
    assert run(m, 5) == 5
    assert run(m, -5) == -5


def test_trap_and_unreachable():
    m = rayzor.Module()
    f = m.function("f", [rayzor.bool_], rayzor.i64)
    (c,) = f.params
    t, u = f.block(), f.block()
    f.brif(c, t, u)
    f.switch_to(t)
    f.trap()
    f.switch_to(u)
    f.unreachable()
    with pytest.raises(rayzor.Trap) as ei:
        run(m, True)
    assert ei.value.kind is TK.USER and ei.value.function == "f"
    assert isinstance(ei.value, rayzor.RayzorError)
    assert trap_kind(m, False) == TK.UNREACHABLE


def test_recursion_depth_limit():
    assert rayzor.MAX_CALL_DEPTH == 10000
    m = programs.depth()
    assert run(m, rayzor.MAX_CALL_DEPTH, name="depth") == rayzor.MAX_CALL_DEPTH
    with pytest.raises(rayzor.Trap) as ei:
        run(m, rayzor.MAX_CALL_DEPTH + 1, name="depth")
    assert ei.value.kind is TK.STACK_OVERFLOW
    assert run(m, 5, name="depth") == 5
    assert run(m, rayzor.MAX_CALL_DEPTH, name="depth") == rayzor.MAX_CALL_DEPTH


def test_infinite_recursion_is_stack_overflow():
    m = rayzor.Module()
    f = m.function("f", [rayzor.i64], rayzor.i64)
    (x,) = f.params
    f.ret(f.call("f", x + 1))
    assert trap_kind(m, 0) == TK.STACK_OVERFLOW


def _infinite_loop() -> rayzor.Module:
    m = rayzor.Module()
    f = m.function("f", [rayzor.i64], rayzor.i64)
    (n,) = f.params
    i = f.var("i", rayzor.i64, 0)
    head, body, done = f.block(), f.block(), f.block()
    f.jump(head)
    f.switch_to(head)
    f.brif(f.ne(f.get(i), n), body, done)
    f.switch_to(body)
    f.set(i, f.get(i) + 1)
    f.jump(head)
    f.switch_to(done)
    f.ret(f.get(i))
    return m


def test_step_limit():
    m = _infinite_loop()
    with pytest.raises(rayzor.StepLimitError):
        run(m, -1, step_limit=1000)
    assert not issubclass(rayzor.StepLimitError, rayzor.Trap)
    assert run(m, 10, step_limit=1000) == 10
    assert run(m, 100000) == 100000  # no limit by default
    with pytest.raises(rayzor.StepLimitError):
        run(m, 100000, step_limit=100)


# ---------------------------------------------------------------------------
# Host (extern) functions
# ---------------------------------------------------------------------------

LIBC = ctypes.CDLL(None)


def _labs_module() -> rayzor.Module:
    m = rayzor.Module()
    m.extern("labs", [rayzor.i64], rayzor.i64)
    f = m.function("f", [rayzor.i64], rayzor.i64)
    (x,) = f.params
    f.ret(f.call("labs", x) + 1)
    return m


def test_extern_libc_labs():
    addr = ctypes.cast(LIBC.labs, ctypes.c_void_p).value
    m = _labs_module()
    assert m.externs == ["labs"]
    assert "extern fn labs(i64) -> i64" in str(m)
    assert run(m, -41, host={"labs": addr}) == 42
    assert run(m, 41, host={"labs": addr}) == 42


@pytest.mark.host_side_effects
def test_extern_ctypes_callback_mixed_args():
    calls = []

    @ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_double, ctypes.c_int64, ctypes.c_float, ctypes.c_uint8)
    def cb(a, b, c, d):
        calls.append((a, b, c, d))
        return a * b + c + d

    m = rayzor.Module()
    m.extern("cb", [rayzor.f64, rayzor.i64, rayzor.f32, rayzor.u8], rayzor.f64)
    f = m.function("f", [rayzor.f64, rayzor.i64], rayzor.f64)
    x, y = f.params
    f.ret(f.call("cb", x, y, f.const(0.5, rayzor.f32), f.const(250, rayzor.u8)))
    assert run(m, 1.5, -4, host={"cb": cb}) == 1.5 * -4 + 0.5 + 250
    addr = ctypes.cast(cb, ctypes.c_void_p).value
    assert run(m, 2.0, 3, host={"cb": addr}) == 6.5 + 250
    assert calls == [(1.5, -4, 0.5, 250), (2.0, 3, 0.5, 250)]


@pytest.mark.host_side_effects
def test_extern_through_function_pointer():
    seen = []

    @ctypes.CFUNCTYPE(None, ctypes.c_int32)
    def record(v):
        seen.append(v)

    m = rayzor.Module()
    m.extern("record", [rayzor.i32], rayzor.void)
    f = m.function("f", [rayzor.i32], rayzor.void)
    (x,) = f.params
    fp = f.func_addr("record")
    assert fp.type == rayzor.extern_fn([rayzor.i32], rayzor.void)
    f.call_indirect_void(fp, x)
    f.call_void("record", -x)
    f.ret()
    assert run(m, 17, host={"record": record}) is None
    assert seen == [17, -17]


def test_host_name_not_declared_is_argument_error():
    with pytest.raises(rayzor.ArgumentError):
        run(_labs_module(), 1, host={"nope": ctypes.cast(LIBC.labs, ctypes.c_void_p).value})


# ---------------------------------------------------------------------------
# Constants and zero (the conftest wrapper also sends each through text)
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "t, value, bits",
    [
        ("f64", -0.0, 0x8000000000000000),
        ("f64", 5e-324, 1),
        ("f64", math.inf, 0x7FF0000000000000),
        ("f64", -math.inf, 0xFFF0000000000000),
        ("f64", math.nan, 0x7FF8000000000000),
        ("f64", 0.1, f64_bits(0.1)),
        ("f64", 1.7976931348623157e308, 0x7FEFFFFFFFFFFFFF),
        ("f32", -0.0, 0x80000000),
        ("f32", 1e-45, 1),
        ("f32", 0.1, f32_bits(0.1)),
        ("f32", 3.4028234663852886e38, 0x7F7FFFFF),
        ("f32", math.inf, 0x7F800000),
        ("f32", math.nan, 0x7FC00000),
    ],
)
def test_float_constants_are_bit_exact(t, value, bits):
    ut = "u64" if t == "f64" else "u32"
    m = rayzor.Module()
    f = m.function("f", [], programs.ty(ut))
    f.ret(f.bitcast(f.const(value, programs.ty(t)), programs.ty(ut)))
    assert run(m) == bits


@pytest.mark.parametrize("bits", [0x7FF0000000000001, 0xFFF8000000000001, 0x7FFFFFFFFFFFFFFF])
def test_nan_payload_constant_from_text(bits):
    text = (
        f"fn f() -> u64 {{\nblock0:\n  v0: f64 = const nan:0x{bits:x}\n  v1: u64 = bitcast v0\n  ret v1\n}}\n"
    )
    m = rayzor.parse(text)
    assert str(m) == text
    assert run(m) == bits


@pytest.mark.parametrize("t", INT_NAMES)
def test_integer_constants_at_the_limits(t):
    for value in (lo(t), hi(t), 0, -1 if signed(t) else 1):
        m = rayzor.Module()
        f = m.function("f", [], programs.ty(t))
        f.ret(f.const(value, programs.ty(t)))
        assert run(m) == value
        assert f" = const {value}\n" in str(m)


@pytest.mark.parametrize("t", list(programs.SCALARS))
def test_zero_of_every_scalar(t):
    m = rayzor.Module()
    f = m.function("f", [], programs.ty(t))
    f.ret(f.zero(programs.ty(t)))
    got = run(m)
    assert got == 0 and got is not None
    if t == "bool":
        assert got is False
    if t in FLOAT_NAMES:
        assert same_float(got, 0.0)


def test_slice_extract_insert():
    m = rayzor.Module()
    sl = rayzor.slice(rayzor.i32)
    f = m.function("f", [rayzor.ptr, rayzor.u64], rayzor.i32)
    p, n = f.params
    s = f.insert(f.insert(f.zero(sl), 0, p), 1, n)
    last = f.elem_addr(rayzor.i32, f.extract(s, 0), f.cast(f.extract(s, 1), rayzor.i64) - 1)
    f.ret(f.load(rayzor.i32, last))
    buf = bytearray(struct.pack("<4i", 1, 2, 3, -44))
    assert run(m, buf, 4) == -44
    assert run(m, buf, 2) == 2


def sat_trunc(x: float, t: str) -> int:
    if math.isnan(x):
        return 0
    if math.isinf(x):
        return hi(t) if x > 0 else lo(t)
    return min(max(math.trunc(x), lo(t)), hi(t))


@pytest.mark.parametrize("src", FLOAT_NAMES)
@given(data=st.data())
def test_float_to_int_random(src, data):
    dst = data.draw(st.sampled_from(INT_NAMES))
    width = 32 if src == "f32" else 64
    x = data.draw(
        st.one_of(
            st.floats(width=width),
            st.integers(-(2**65), 2**65).map(float).map(lambda v: f32(v) if width == 32 else v),
        )
    )
    assert run(cast_fn(src, dst), x) == sat_trunc(x, dst)


@given(data=st.data())
def test_int_to_float_random(data):
    src = data.draw(st.sampled_from(INT_NAMES))
    a = data.draw(st.integers(lo(src), hi(src)))
    assert same_float(run(cast_fn(src, "f32"), a), int_to_f32(a))
    assert same_float(run(cast_fn(src, "f64"), a), float(a))
