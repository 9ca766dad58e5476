"""Whole programs run in the reference interpreter, checked against Python."""

from __future__ import annotations

import struct

import numpy as np
import programs
import pytest

import rayzor


@pytest.fixture(scope="module")
def fib_module():
    return programs.fib()


@pytest.mark.parametrize("n", range(21))
def test_fib_matches_python(fib_module, n):
    assert rayzor.interpret(fib_module, "fib", n) == programs.py_fib(n)


def test_fib_negative_input_returns_input():
    assert rayzor.interpret(programs.fib(), "fib", -5) == -5


def test_fib_module_text_mentions_recursive_call():
    text = str(programs.fib())
    assert "call fib(" in text
    assert text.startswith("fn fib(i64) -> i64 {")


@pytest.mark.parametrize("n", [0, 1, 2, 3, 10, 100, 1000, -4])
def test_loop_sum_matches_python(n):
    assert rayzor.interpret(programs.loop_sum(), "loop_sum", n) == programs.py_loop_sum(n)


def test_loop_sum_variables_become_block_params():
    m = programs.loop_sum()
    m.verify()
    text = str(m)
    # The loop header receives both variables as block parameters.
    header = [line for line in text.splitlines() if line.startswith("block1")]
    assert header and header[0].count(": i64") == 2, text


@pytest.mark.parametrize("n", [0, 1, 5, 64])
def test_struct_and_array_checksum(n):
    assert rayzor.interpret(programs.struct_and_array(), "checksum", n) == programs.py_struct_and_array(n)


def test_record_layout():
    rec = programs.RECORD
    assert (rec.size, rec.align) == (48, 8)
    assert [rec.offset_of(i) for i in range(3)] == [0, 8, 16]
    assert rayzor.struct(rayzor.i8, rayzor.i64, rayzor.i16).size == 24
    assert rayzor.union(rayzor.i8, rayzor.struct(rayzor.i32, rayzor.f64, rayzor.i8)).size == 32
    assert rayzor.any_.size == 16 and rayzor.str_.size == 16
    assert rayzor.array(rayzor.struct(rayzor.i32, rayzor.i8), 3).size == 24


# ---------------------------------------------------------------------------
# Python buffers as ptr arguments
# ---------------------------------------------------------------------------


def _sum_and_scale() -> rayzor.Module:
    """sum_scale(p: ptr, n: i64, k: i64) -> i64: s = sum(p[i]); p[i] *= k; return s."""
    m = rayzor.Module()
    f = m.function("sum_scale", [rayzor.ptr, rayzor.i64, rayzor.i64], rayzor.i64)
    p, n, k = f.params
    i = f.var("i", rayzor.i64, 0)
    s = f.var("s", rayzor.i64, 0)
    head, body, done = f.block(), f.block(), f.block()
    f.jump(head)
    f.switch_to(head)
    f.brif(f.lt(f.get(i), n), body, done)
    f.switch_to(body)
    iv = f.get(i)
    addr = f.elem_addr(rayzor.i64, p, iv)
    x = f.load(rayzor.i64, addr)
    f.set(s, f.get(s) + x)
    f.store(addr, x * k)
    f.set(i, iv + 1)
    f.jump(head)
    f.switch_to(done)
    f.ret(f.get(s))
    return m


def test_numpy_int64_array_as_ptr_is_read_and_written():
    arr = np.array([3, -1, 4, 1, -5, 9, 2**40], dtype=np.int64)
    before = arr.copy()
    s = rayzor.interpret(_sum_and_scale(), "sum_scale", arr, len(arr), -3)
    assert s == int(before.sum())
    np.testing.assert_array_equal(arr, before * -3)


def test_numpy_partial_length_leaves_rest_untouched():
    arr = np.arange(10, dtype=np.int64)
    s = rayzor.interpret(_sum_and_scale(), "sum_scale", arr, 4, 10)
    assert s == 0 + 1 + 2 + 3
    assert arr.tolist() == [0, 10, 20, 30, 4, 5, 6, 7, 8, 9]


def _fill_bytes() -> rayzor.Module:
    """fill(p: ptr, n: i64) -> u64: p[i] = (i * 7 + 1) as u8; returns the u64 sum of the bytes written."""
    m = rayzor.Module()
    f = m.function("fill", [rayzor.ptr, rayzor.i64], rayzor.u64)
    p, n = f.params
    i = f.var("i", rayzor.i64, 0)
    s = f.var("s", rayzor.u64, 0)
    head, body, done = f.block(), f.block(), f.block()
    f.jump(head)
    f.switch_to(head)
    f.brif(f.lt(f.get(i), n), body, done)
    f.switch_to(body)
    iv = f.get(i)
    byte = f.cast(iv * 7 + 1, rayzor.u8)
    f.store(f.elem_addr(rayzor.u8, p, iv), byte)
    f.set(s, f.get(s) + f.cast(byte, rayzor.u64))
    f.set(i, iv + 1)
    f.jump(head)
    f.switch_to(done)
    f.ret(f.get(s))
    return m


def test_bytearray_as_ptr_is_written():
    buf = bytearray(b"\xee" * 50)
    s = rayzor.interpret(_fill_bytes(), "fill", buf, 40)
    expected = bytes(((i * 7 + 1) & 0xFF) for i in range(40))
    assert bytes(buf[:40]) == expected
    assert bytes(buf[40:]) == b"\xee" * 10
    assert s == sum(expected)


def test_memoryview_of_bytearray_as_ptr():
    buf = bytearray(8)
    rayzor.interpret(_fill_bytes(), "fill", memoryview(buf), 8)
    assert bytes(buf) == bytes(((i * 7 + 1) & 0xFF) for i in range(8))


def test_struct_stored_into_user_buffer_has_c_layout():
    """Store a {i32, f64, [i64; 4]} aggregate into a bytearray; unpack it in Python."""
    rec = programs.RECORD
    m = rayzor.Module()
    f = m.function("put", [rayzor.ptr, rayzor.i32, rayzor.f64], rayzor.void)
    p, a, b = f.params
    v = f.zero(rec)
    v = f.insert(v, 0, a)
    v = f.insert(v, 1, b)
    arr = f.zero(rayzor.array(rayzor.i64, 4))
    for j, x in enumerate([-1, 2**62, 7, -(2**63)]):
        arr = f.insert(arr, j, x)
    v = f.insert(v, 2, arr)
    f.store(p, v)
    f.ret()
    buf = bytearray(b"\x55" * rec.size)
    assert rayzor.interpret(m, "put", buf, -123456, 6.25) is None
    i32, pad, f64, *arr_vals = struct.unpack("<i4sd4q", bytes(buf))
    assert (i32, f64, arr_vals) == (-123456, 6.25, [-1, 2**62, 7, -(2**63)])


def test_read_only_bytes_as_ptr_raises_argument_error():
    with pytest.raises(rayzor.ArgumentError):
        rayzor.interpret(_fill_bytes(), "fill", b"abcdefgh", 8)


def test_read_only_numpy_array_as_ptr_raises_argument_error():
    arr = np.zeros(4, dtype=np.int64)
    arr.flags.writeable = False
    with pytest.raises(rayzor.ArgumentError):
        rayzor.interpret(_sum_and_scale(), "sum_scale", arr, 4, 2)
    assert arr.tolist() == [0, 0, 0, 0]


def test_non_contiguous_numpy_array_as_ptr_raises_argument_error():
    arr = np.arange(8, dtype=np.int64)[::2]
    with pytest.raises(rayzor.ArgumentError):
        rayzor.interpret(_sum_and_scale(), "sum_scale", arr, 4, 2)


def test_argument_error_is_a_type_error_and_rayzor_error():
    with pytest.raises(TypeError):
        rayzor.interpret(_fill_bytes(), "fill", "not a buffer", 1)
    with pytest.raises(rayzor.RayzorError):
        rayzor.interpret(_fill_bytes(), "fill", 1.5, 1)


def test_interpret_is_repeatable_and_module_reusable():
    m = programs.loop_sum()
    assert [rayzor.interpret(m, "loop_sum", 10) for _ in range(3)] == [programs.py_loop_sum(10)] * 3


def test_conftest_round_trip_wrapper_is_active():
    from conftest import ROUND_TRIPS

    before = ROUND_TRIPS["count"]
    rayzor.interpret(programs.fib(), "fib", 3)
    assert ROUND_TRIPS["count"] == before + 1


@pytest.mark.parametrize("name", ["fn", "a b", "f.1", "i64", "caf\u00e9", 'q"uote'])
def test_function_names_that_need_quoting(name):
    m = rayzor.Module()
    g = m.function(name, [rayzor.i64], rayzor.i64)
    g.ret(g.params[0] * 2)
    f = m.function("main", [rayzor.i64], rayzor.i64)
    f.ret(f.call(name, f.params[0]) + f.call_indirect(f.func_addr(name), 1))
    assert rayzor.interpret(m, "main", 20) == 42
    assert rayzor.interpret(m, name, 4) == 8
    assert rayzor.parse(str(m)).functions == [name, "main"]


def test_type_objects():
    import pickle

    t = rayzor.struct(rayzor.i32, rayzor.array(rayzor.f64, 2), rayzor.union(rayzor.i8, rayzor.str_))
    assert t == rayzor.parse_type(str(t)) and hash(t) == hash(rayzor.parse_type(str(t)))
    assert t != rayzor.struct(rayzor.i32)
    assert pickle.loads(pickle.dumps(t)) == t
    assert rayzor.i64.is_scalar and not t.is_scalar
    assert str(rayzor.fn([rayzor.i64], rayzor.void)) == "fn(i64) -> void"
    assert len({rayzor.i64, rayzor.parse_type("i64"), rayzor.u64}) == 2
    m = programs.fib()
    params, ret = m.signature("fib")
    assert params == [rayzor.i64] and ret == rayzor.i64


def _nested_loops() -> rayzor.Module:
    """f(n, m) = sum over i < n, j < m of (i * j if (i + j) is even else -j)."""
    mod = rayzor.Module()
    f = mod.function("f", [rayzor.i64, rayzor.i64], rayzor.i64)
    n, m = f.params
    acc = f.var("acc", rayzor.i64, 0)
    i = f.var("i", rayzor.i64, 0)
    j = f.var("j", rayzor.i64)
    outer, outer_body, inner, inner_body, even, odd, step, outer_next, done = (f.block() for _ in range(9))
    f.jump(outer)
    f.switch_to(outer)
    f.brif(f.lt(f.get(i), n), outer_body, done)
    f.switch_to(outer_body)
    f.set(j, 0)
    f.jump(inner)
    f.switch_to(inner)
    f.brif(f.lt(f.get(j), m), inner_body, outer_next)
    f.switch_to(inner_body)
    f.brif(f.eq((f.get(i) + f.get(j)) & 1, 0), even, odd)
    f.switch_to(even)
    f.set(acc, f.get(acc) + f.get(i) * f.get(j))
    f.jump(step)
    f.switch_to(odd)
    f.set(acc, f.get(acc) - f.get(j))
    f.jump(step)
    f.switch_to(step)
    f.set(j, f.get(j) + 1)
    f.jump(inner)
    f.switch_to(outer_next)
    f.set(i, f.get(i) + 1)
    f.jump(outer)
    f.switch_to(done)
    f.ret(f.get(acc))
    return mod


@pytest.mark.parametrize("n, m", [(0, 5), (3, 0), (4, 7), (10, 10), (1, 1)])
def test_nested_loops_with_variables(n, m):
    want = sum(i * j if (i + j) % 2 == 0 else -j for i in range(n) for j in range(m))
    assert rayzor.interpret(_nested_loops(), "f", n, m) == want
