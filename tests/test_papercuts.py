"""Builder API papercuts a front-end writer (examples/tinypy.py) ran into, each fixed."""

from __future__ import annotations

import ctypes
import time

import pytest

import rayzor


def test_is_terminated_tells_whether_the_current_block_is_closed():
    m = rayzor.Module()
    f = m.function("f", [rayzor.i64], rayzor.i64)
    assert f.is_terminated is False
    nxt = f.block()
    f.jump(nxt)
    assert f.is_terminated is True
    f.switch_to(nxt)
    assert f.is_terminated is False
    f.ret(f.params[0])
    assert f.is_terminated is True
    m.verify()


def test_declare_allows_calls_before_the_definition():
    m = rayzor.Module()
    m.declare("is_odd", [rayzor.i64], rayzor.bool_)
    even = m.function("is_even", [rayzor.i64], rayzor.bool_)
    (n,) = even.params
    zero, rec = even.block(), even.block()
    even.brif(even.eq(n, 0), zero, rec)
    even.switch_to(zero)
    even.ret(True)
    even.switch_to(rec)
    even.ret(even.call("is_odd", n - 1))  # typed from the declaration
    odd = m.function("is_odd", [rayzor.i64], rayzor.bool_)
    (n,) = odd.params
    zero, rec = odd.block(), odd.block()
    odd.brif(odd.eq(n, 0), zero, rec)
    odd.switch_to(zero)
    odd.ret(False)
    odd.switch_to(rec)
    odd.ret(odd.call("is_even", n - 1))
    m.verify()
    assert m.functions == ["is_odd", "is_even"]
    assert rayzor.interpret(m, "is_even", 10) is True
    assert rayzor.interpret(m, "is_odd", 7) is True


def test_declare_errors():
    m = rayzor.Module()
    m.declare("g", [rayzor.i64], rayzor.i64)
    with pytest.raises(rayzor.BuildError, match=r"'g' was declared as fn\(i64\) -> i64"):
        m.function("g", [rayzor.i32], rayzor.i64)
    with pytest.raises(rayzor.BuildError, match="already declared"):
        m.declare("g", [rayzor.i64], rayzor.i64)
    with pytest.raises(rayzor.BuildError, match="'g' was declared but never defined"):
        m.verify()
    m.function("g", [rayzor.i64], rayzor.i64).ret(1)
    m.verify()
    with pytest.raises(rayzor.BuildError, match="already exists"):
        m.function("g", [rayzor.i64], rayzor.i64)
    with pytest.raises(rayzor.BuildError, match="already exists"):
        m.declare("g", [rayzor.i64], rayzor.i64)


def _with_extern(call_it: bool) -> rayzor.Module:
    m = rayzor.Module()
    m.extern("labs", [rayzor.i64], rayzor.i64)
    f = m.function("f", [rayzor.i64], rayzor.i64)
    f.ret(f.call("labs", f.params[0]) if call_it else f.params[0] + 1)
    return m


def test_unused_externs_need_no_host_binding():
    with rayzor.TieredJit(
        _with_extern(False), rayzor.TieredConfig(enable_background_optimization=False)
    ) as jit:
        assert jit["f"](41) == 42
    assert rayzor.interpret(_with_extern(False), "f", 1) == 2
    # An extern that code calls must still be bound, and the error says which and where.
    with pytest.raises(rayzor.ArgumentError, match=r"extern 'labs' \(used by 'f'\) has no host address"):
        rayzor.TieredJit(_with_extern(True))
    labs = ctypes.cast(ctypes.CDLL(None).labs, ctypes.c_void_p).value
    with rayzor.TieredJit(_with_extern(True), host={"labs": labs}) as jit:
        assert jit["f"](-5) == 5


def test_parse_error_has_the_bare_message():
    with pytest.raises(rayzor.ParseError) as ei:
        rayzor.parse("fn f(i64) -> i64 {\nblock0(v0: i64):\n  v1: i64 = frob v0\n}\n")
    e = ei.value
    assert str(e) == "line 3, column 13: unknown instruction 'frob'"
    assert e.message == "unknown instruction 'frob'"
    assert (e.line, e.column) == (3, 13)


def test_verify_error_gives_the_position_within_the_block():
    src = """
fn f(i64) -> i64 {
block0(v0: i64):
  v1: i64 = const 1
  v2: i64 = add v0, v1
  brif v5, block1, block1
block1:
  v3: i64 = const 2
  v4: f64 = const 1.5
  v5: i64 = add v3, v4
  ret v5
}
"""
    with pytest.raises(rayzor.VerifyError) as ei:
        rayzor.parse(src).verify()
    e = ei.value
    # The first error: brif uses v5 before it is defined (block0's third instruction).
    assert (e.block, e.position) == ("block0", 2), str(e)
    m = rayzor.parse(
        src.replace("brif v5", "brif v6").replace("v2: i64 = add v0, v1", "v6: bool = lt v0, v1")
    )
    with pytest.raises(rayzor.VerifyError) as ei:
        m.verify()
    e = ei.value
    assert (e.block, e.position, e.rule) == ("block1", 2, "operand-type"), str(e)
    assert e.inst == "inst5"  # still numbered across the function


def test_type_accessors():
    t = rayzor.Type
    cases = [
        (rayzor.i8, "int", 8, True),
        (rayzor.u64, "int", 64, False),
        (rayzor.f32, "float", 32, False),
        (rayzor.bool_, "bool", 8, False),  # its memory width, as in the core
        (rayzor.ptr, "ptr", 64, False),
        (rayzor.void, "void", None, False),
        (rayzor.struct(rayzor.i32, rayzor.f64), "struct", None, False),
        (rayzor.array(rayzor.u8, 4), "array", None, False),
        (rayzor.slice(rayzor.i64), "slice", None, False),
        (rayzor.str_, "str", None, False),
        (rayzor.any_, "any", None, False),
        (rayzor.union(rayzor.i32, rayzor.f64), "union", None, False),
        (rayzor.fn([rayzor.i64], rayzor.i64), "fn", 64, False),  # a code pointer
    ]
    for ty, kind, bits, signed in cases:
        assert isinstance(ty, t)
        assert (ty.kind, ty.bits, ty.is_signed) == (kind, bits, signed), str(ty)
        assert ty.is_int == (kind == "int") and ty.is_float == (kind == "float")


def test_wait_idle_waits_for_the_promoter_to_look():
    """Right after calls, the promoter has not yet read the counters: wait_idle must not
    report idle before it has (the function is promoted by the time it returns)."""
    m = rayzor.Module()
    f = m.function("f", [rayzor.i64], rayzor.i64)
    f.ret(f.params[0] + 1)
    cfg = rayzor.TieredConfig(
        optimization_check_interval_ms=200,
        profile_config=rayzor.ProfileConfig(warm_threshold=10, hot_threshold=10**9, blazing_threshold=10**9,
                                            sample_rate=1),
    )  # fmt: skip
    with rayzor.TieredJit(m, cfg) as jit:
        time.sleep(0.05)
        for i in range(100):
            jit["f"](i)
        assert jit.wait_idle(timeout=120)  # generous: a slow, loaded machine
        assert jit.tier_of("f") == rayzor.Tier.T1
    no_promoter = rayzor.TieredConfig(enable_background_optimization=False)
    with rayzor.TieredJit(m, no_promoter) as jit:
        t0 = time.monotonic()
        assert jit.wait_idle(timeout=120)
        # At once, not after the timeout (nor after a check interval, which would be
        # milliseconds): the bound only has to tell "at once" from "120 s" on a loaded machine.
        assert time.monotonic() - t0 < 30


@pytest.mark.parametrize("n", [1, 2])
def test_argument_counts_are_spelled_right(n):
    m = rayzor.Module()
    params = [rayzor.i64] * n
    f = m.function("f", params, rayzor.i64)
    f.ret(f.params[0])
    word = "argument" if n == 1 else "arguments"
    with pytest.raises(rayzor.ArgumentError, match=f"takes {n} {word}, got 3$"):
        rayzor.interpret(m, "f", 1, 2, 3)
    with rayzor.TieredJit(m, rayzor.TieredConfig(enable_background_optimization=False)) as jit:
        with pytest.raises(rayzor.ArgumentError, match=f"takes {n} {word}, got 3$"):
            jit["f"](1, 2, 3)
    g = rayzor.Module().function("g", [rayzor.i64], rayzor.i64)
    with pytest.raises(rayzor.BuildError, match="neg takes 1 operand, got 2"):
        g._op("neg", 1, 2)
    with pytest.raises(rayzor.BuildError, match="add takes 2 operands, got 1"):
        g._op("add", g.params[0])
