"""T3 (LLVM): programs built with the Python builder give the interpreter's results,
and the extension carries LLVM inside it (no libLLVM at run time)."""

from __future__ import annotations

import math
import os
import shutil
import subprocess

import pytest

import rayzor
from rayzor import Tier

#: RAYZOR_REQUIRE_LLVM=1 (set by .ci/run): these tests run, and fail, on a build without T3.
REQUIRED = os.environ.get("RAYZOR_REQUIRE_LLVM", "0") == "1"
requires_llvm = pytest.mark.skipif(not rayzor.llvm_available() and not REQUIRED, reason="built without LLVM")
pytestmark = requires_llvm


@pytest.mark.skipif(not REQUIRED, reason="RAYZOR_REQUIRE_LLVM is not set")
def test_t3_is_built_when_required():
    assert rayzor.llvm_available(), "RAYZOR_REQUIRE_LLVM=1 but this build has no T3 (LLVM)"
    assert rayzor.TieredJit.top_tier() == (Tier.T3, None)


def fib_module() -> rayzor.Module:
    m = rayzor.Module()
    f = m.function("fib", [rayzor.i64], rayzor.i64)
    (n,) = f.params
    small, big = f.block(), f.block()
    f.brif(f.lt(n, 2), small, big)
    f.switch_to(small)
    f.ret(n)
    f.switch_to(big)
    f.ret(f.call("fib", n - 1) + f.call("fib", n - 2))
    return m


def mandelbrot_module() -> rayzor.Module:
    """escape(cx, cy, limit) -> iterations, and mandel(w, h, limit) -> sum of iterations."""
    m = rayzor.Module()
    f = m.function("escape", [rayzor.f64, rayzor.f64, rayzor.i32], rayzor.i32)
    cx, cy, limit = f.params
    x = f.var("x", rayzor.f64, f.const(0.0, rayzor.f64))
    y = f.var("y", rayzor.f64, f.const(0.0, rayzor.f64))
    i = f.var("i", rayzor.i32, f.const(0, rayzor.i32))
    head, body, done = f.block(), f.block(), f.block()
    f.jump(head)
    f.switch_to(head)
    xv, yv = f.get(x), f.get(y)
    mag = xv * xv + yv * yv
    go = f.and_(f.lt(f.get(i), limit), f.le(mag, f.const(4.0, rayzor.f64)))
    f.brif(go, body, done)
    f.switch_to(body)
    xv, yv = f.get(x), f.get(y)
    f.set(x, xv * xv - yv * yv + cx)
    f.set(y, f.const(2.0, rayzor.f64) * xv * yv + cy)
    f.set(i, f.get(i) + 1)
    f.jump(head)
    f.switch_to(done)
    f.ret(f.get(i))

    g = m.function("mandel", [rayzor.i32, rayzor.i32, rayzor.i32], rayzor.i64)
    w, h, lim = g.params
    total = g.var("total", rayzor.i64, g.const(0, rayzor.i64))
    row = g.var("row", rayzor.i32, g.const(0, rayzor.i32))
    rhead, rbody, rdone = g.block(), g.block(), g.block()
    g.jump(rhead)
    g.switch_to(rhead)
    g.brif(g.lt(g.get(row), h), rbody, rdone)
    g.switch_to(rbody)
    col = g.var("col", rayzor.i32, g.const(0, rayzor.i32))
    chead, cbody, cdone = g.block(), g.block(), g.block()
    g.jump(chead)
    g.switch_to(chead)
    g.brif(g.lt(g.get(col), w), cbody, cdone)
    g.switch_to(cbody)
    fx = g.cast(g.get(col), rayzor.f64) * g.const(3.0, rayzor.f64) / g.cast(w, rayzor.f64)
    fy = g.cast(g.get(row), rayzor.f64) * g.const(2.0, rayzor.f64) / g.cast(h, rayzor.f64)
    it = g.call("escape", fx - g.const(2.0, rayzor.f64), fy - g.const(1.0, rayzor.f64), lim)
    g.set(total, g.get(total) + g.cast(it, rayzor.i64))
    g.set(col, g.get(col) + 1)
    g.jump(chead)
    g.switch_to(cdone)
    g.set(row, g.get(row) + 1)
    g.jump(rhead)
    g.switch_to(rdone)
    g.ret(g.get(total))
    return m


def manual() -> rayzor.TieredConfig:
    return rayzor.TieredConfig(enable_background_optimization=False)


def test_top_tier_is_t3():
    assert rayzor.TieredJit.top_tier() == (Tier.T3, None)


def test_fib_at_t3_matches_the_interpreter():
    m = fib_module()
    with rayzor.TieredJit(m, manual()) as jit:
        seconds = jit.compile("fib", Tier.T3)
        assert seconds > 0
        assert jit.tier_of("fib") == Tier.T3
        for n in [0, 1, 2, 10, 20]:
            assert jit["fib"](n) == rayzor.interpret(m, "fib", n)
        assert jit["fib"](25) == 75025
        info = jit.info("fib")
        assert Tier.T3 not in info.calls  # T3 code does not count its calls
        assert info.code_bytes[Tier.T3] > 0


def test_mandelbrot_at_t3_matches_the_interpreter():
    m = mandelbrot_module()
    with rayzor.TieredJit(m, manual()) as jit:
        jit.compile("escape", Tier.T3)
        jit.compile("mandel", Tier.T3)
        for cx, cy in [(0.0, 0.0), (-0.75, 0.1), (0.3, 0.5), (-2.0, 1.0), (math.nan, 0.0), (0.25, 0.0)]:
            assert jit["escape"](cx, cy, 200) == rayzor.interpret(m, "escape", cx, cy, 200)
        assert jit["mandel"](24, 12, 50) == rayzor.interpret(m, "mandel", 24, 12, 50)
        # T3 is the top tier: its loops are not counted (so LLVM can optimise them).
        assert jit.info("escape").backedges == 0


def test_traps_and_depth_at_t3():
    m = fib_module()
    d = m.function("down", [rayzor.i64], rayzor.i64)
    (n,) = d.params
    base, rec = d.block(), d.block()
    d.brif(d.eq(n, 0), base, rec)
    d.switch_to(base)
    d.ret(n)
    d.switch_to(rec)
    d.ret(d.call("down", n - 1) + 1)
    q = m.function("quot", [rayzor.i32, rayzor.i32], rayzor.i32)
    q.ret(q.div(*q.params))
    with rayzor.TieredJit(m, manual()) as jit:
        for name in ("down", "quot", "fib"):
            jit.compile(name, Tier.T3)
        assert jit["down"](9_999) == 9_999
        with pytest.raises(rayzor.Trap) as e:
            jit["down"](10_000)
        assert e.value.kind == rayzor.TrapKind.STACK_OVERFLOW
        with pytest.raises(rayzor.Trap) as e:
            jit["quot"](1, 0)
        assert e.value.kind == rayzor.TrapKind.DIVISION_BY_ZERO
        with pytest.raises(rayzor.Trap) as e:
            jit["quot"](-(2**31), -1)
        assert e.value.kind == rayzor.TrapKind.INTEGER_OVERFLOW
        assert jit["fib"](15) == 610


@pytest.mark.skipif(shutil.which("ldd") is None, reason="needs ldd")
def test_extension_does_not_link_libllvm():
    path = rayzor._rayzor.__file__
    out = subprocess.run(["ldd", path], capture_output=True, text=True, check=True).stdout
    assert "libLLVM" not in out, out


def test_t3_caller_enters_the_new_code_of_a_callee_still_tiering() -> None:
    """Calls from T3 code go through the callee's slot (only self-calls are direct)."""
    from test_jit import caller_callee_module
    from test_jit import manual as exact

    m = caller_callee_module(step_calls_out=True)
    n = 1000
    expected = sum(i * 3 + 1 for i in range(n))
    with rayzor.TieredJit(m, exact()) as jit:
        jit.compile("total", Tier.T3)
        assert jit["total"](n) == expected
        assert jit.info("step").calls == {Tier.T0: n}
        for t in (Tier.T1, Tier.T2):
            jit.compile("step", t)
            before = jit.info("step").calls.get(t, 0)
            assert jit["total"](n) == expected
            assert jit.tier_of("total") is Tier.T3
            # Each of the n calls from the T3 caller entered the callee's newest code.
            assert jit.info("step").calls.get(t, 0) - before == n
        assert jit.info("step").calls[Tier.T0] == n


def test_recompiling_a_self_recursive_t3_function_takes_effect() -> None:
    """A T3 function calls itself directly; the next call from outside enters new code."""
    from test_jit import manual as exact

    with rayzor.TieredJit(fib_module(), exact()) as jit:
        fib = jit["fib"]
        jit.compile("fib", Tier.T3)
        assert fib(20) == 6765
        jit.compile("fib", Tier.T1)
        before = jit.info("fib").calls.get(Tier.T1, 0)
        assert fib(20) == 6765
        # fib(20) makes 21,891 calls, every one of them now in the T1 code.
        assert jit.info("fib").calls[Tier.T1] - before == 21891
