"""Reusable MIR programs built with the Python builder.

Every builder returns a fresh :class:`rayzor.Module`; the tests run them with
``rayzor.interpret`` (which conftest wraps with a text round-trip check).
"""

from __future__ import annotations

import rayzor

#: Scalar types by name.
SCALARS = {
    "bool": rayzor.bool_,
    "i8": rayzor.i8,
    "i16": rayzor.i16,
    "i32": rayzor.i32,
    "i64": rayzor.i64,
    "u8": rayzor.u8,
    "u16": rayzor.u16,
    "u32": rayzor.u32,
    "u64": rayzor.u64,
    "f32": rayzor.f32,
    "f64": rayzor.f64,
    "ptr": rayzor.ptr,
}

INT_NAMES = ["i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64"]
SIGNED_NAMES = ["i8", "i16", "i32", "i64"]
UNSIGNED_NAMES = ["u8", "u16", "u32", "u64"]
FLOAT_NAMES = ["f32", "f64"]

BINARY_OPS = [
    "add",
    "sub",
    "mul",
    "div",
    "rem",
    "and",
    "or",
    "xor",
    "shl",
    "shr",
    "rotl",
    "rotr",
    "min",
    "max",
]
COMPARE_OPS = ["eq", "ne", "lt", "le", "gt", "ge"]
UNARY_OPS = ["neg", "not", "abs", "sqrt", "clz", "ctz", "popcnt", "floor", "ceil", "trunc", "nearest"]


def ty(t):
    """A rayzor.Type from a type or a scalar name."""
    return SCALARS[t] if isinstance(t, str) else t


def method(fb: rayzor.FunctionBuilder, op_name: str):
    """The FunctionBuilder method for an instruction name (`and` -> `and_`)."""
    return getattr(fb, op_name + "_") if op_name in ("and", "or", "not") else getattr(fb, op_name)


def fib() -> rayzor.Module:
    """fib(n: i64) -> i64, recursive: n < 2 ? n : fib(n-1) + fib(n-2)."""
    m = rayzor.Module()
    f = m.function("fib", [rayzor.i64], rayzor.i64)
    (n,) = f.params
    small, big = f.block(), f.block()
    f.brif(f.lt(n, 2), small, big)
    f.switch_to(small)
    f.ret(n)
    f.switch_to(big)
    a = f.call("fib", n - 1)
    b = f.call("fib", n - 2)
    f.ret(a + b)
    return m


def py_fib(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def loop_sum() -> rayzor.Module:
    """loop_sum(n: i64) -> i64 = sum(i*i + 3 for i in range(n)) with i64 wrapping,
    written as a while loop over mutable variables."""
    m = rayzor.Module()
    f = m.function("loop_sum", [rayzor.i64], rayzor.i64)
    (n,) = f.params
    total = f.var("total", rayzor.i64, 0)
    i = f.var("i", rayzor.i64, 0)
    head, body, done = f.block(), f.block(), f.block()
    f.jump(head)
    f.switch_to(head)
    f.brif(f.lt(f.get(i), n), body, done)
    f.switch_to(body)
    iv = f.get(i)
    f.set(total, f.get(total) + iv * iv + 3)
    f.set(i, iv + 1)
    f.jump(head)
    f.switch_to(done)
    f.ret(f.get(total))
    return m


def py_loop_sum(n: int) -> int:
    s = sum(i * i + 3 for i in range(max(n, 0)))
    s &= (1 << 64) - 1
    return s - (1 << 64) if s >= 1 << 63 else s


#: struct {i32, f64, [i64; 4]} used by struct_and_array().
RECORD = rayzor.struct(rayzor.i32, rayzor.f64, rayzor.array(rayzor.i64, 4))


def struct_and_array() -> rayzor.Module:
    """checksum(n: i64) -> i64.

    Allocates one RECORD and an array of n i64 on the heap, fills them
    (record = {7, 2.5, [1, 2, 5, 10]}, a[i] = 3*i), reads everything back
    (the record both field by field and as a whole aggregate) and returns
    field0 + int(field1 * 4) + sum(field2) + sum(a) + whole.field2[3] * 100; frees both.
    """
    m = rayzor.Module()
    f = m.function("checksum", [rayzor.i64], rayzor.i64)
    (n,) = f.params
    rec = f.alloc(RECORD, f.const(1, rayzor.u64))
    f.store(f.field_addr(RECORD, rec, 0), f.const(7, rayzor.i32))
    f.store(f.field_addr(RECORD, rec, 1), f.const(2.5, rayzor.f64))
    arr_field = f.field_addr(RECORD, rec, 2)
    for j, val in enumerate([1, 2, 5, 10]):
        f.store(f.elem_addr(rayzor.i64, arr_field, j), f.const(val, rayzor.i64))

    a = f.alloc(rayzor.i64, f.cast(n, rayzor.u64))
    i = f.var("i", rayzor.i64, 0)
    fill_head, fill_body, fill_done = f.block(), f.block(), f.block()
    f.jump(fill_head)
    f.switch_to(fill_head)
    f.brif(f.lt(f.get(i), n), fill_body, fill_done)
    f.switch_to(fill_body)
    iv = f.get(i)
    f.store(f.elem_addr(rayzor.i64, a, iv), iv * 3)
    f.set(i, iv + 1)
    f.jump(fill_head)

    f.switch_to(fill_done)
    acc = f.var("acc", rayzor.i64)
    f0 = f.load(rayzor.i32, f.field_addr(RECORD, rec, 0))
    f1 = f.load(rayzor.f64, f.field_addr(RECORD, rec, 1))
    f.set(acc, f.cast(f0, rayzor.i64) + f.cast(f1 * 4.0, rayzor.i64))
    for j in range(4):
        f.set(acc, f.get(acc) + f.load(rayzor.i64, f.elem_addr(rayzor.i64, arr_field, j)))
    whole = f.load(RECORD, rec)
    last = f.extract(f.extract(whole, 2), 3)
    f.set(acc, f.get(acc) + last * 100)
    f.set(i, 0)
    sum_head, sum_body, sum_done = f.block(), f.block(), f.block()
    f.jump(sum_head)
    f.switch_to(sum_head)
    f.brif(f.lt(f.get(i), n), sum_body, sum_done)
    f.switch_to(sum_body)
    iv = f.get(i)
    f.set(acc, f.get(acc) + f.load(rayzor.i64, f.elem_addr(rayzor.i64, a, iv)))
    f.set(i, iv + 1)
    f.jump(sum_head)
    f.switch_to(sum_done)
    f.free(rec)
    f.free(a)
    f.ret(f.get(acc))
    return m


def py_struct_and_array(n: int) -> int:
    return 7 + 10 + (1 + 2 + 5 + 10) + 3 * n * (n - 1) // 2 + 1000


def unary_fn(op_name: str, t, name: str = "f") -> rayzor.Module:
    """f(a: t) -> t = <op> a."""
    t = ty(t)
    m = rayzor.Module()
    f = m.function(name, [t], t)
    (a,) = f.params
    f.ret(method(f, op_name)(a))
    return m


def binary_fn(op_name: str, t, name: str = "f") -> rayzor.Module:
    """f(a: t, b: t) -> t (bool for comparisons) = a <op> b."""
    t = ty(t)
    m = rayzor.Module()
    ret = rayzor.bool_ if op_name in COMPARE_OPS else t
    f = m.function(name, [t, t], ret)
    a, b = f.params
    f.ret(method(f, op_name)(a, b))
    return m


def cast_fn(src, dst, name: str = "f") -> rayzor.Module:
    """f(a: src) -> dst = cast a."""
    src, dst = ty(src), ty(dst)
    m = rayzor.Module()
    f = m.function(name, [src], dst)
    (a,) = f.params
    f.ret(f.cast(a, dst))
    return m


def bitcast_fn(src, dst, name: str = "f") -> rayzor.Module:
    """f(a: src) -> dst = bitcast a."""
    src, dst = ty(src), ty(dst)
    m = rayzor.Module()
    f = m.function(name, [src], dst)
    (a,) = f.params
    f.ret(f.bitcast(a, dst))
    return m


def depth(name: str = "depth") -> rayzor.Module:
    """depth(n: i64) -> i64 makes exactly n nested frames (n >= 1) and returns n."""
    m = rayzor.Module()
    f = m.function(name, [rayzor.i64], rayzor.i64)
    (n,) = f.params
    base, rec = f.block(), f.block()
    f.brif(f.le(n, 1), base, rec)
    f.switch_to(base)
    f.ret(n)
    f.switch_to(rec)
    f.ret(f.call(name, n - 1) + 1)
    return m
