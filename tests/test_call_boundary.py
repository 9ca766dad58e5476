"""Python -> JIT calls: the vectorcall entry, its fast scalar conversions and the
errors, which must be those of the generic conversion."""

from __future__ import annotations

import enum
import functools
import gc
import sys
import threading

import pytest

import rayzor
from rayzor import Tier

GIL_MODES = ("hold", "release", "adaptive")


def manual() -> rayzor.TieredConfig:
    return rayzor.TieredConfig(enable_background_optimization=False)


def boundary_module() -> rayzor.Module:
    """Identities of every fast-path type, a mixed signature, a void and an i32 function."""
    m = rayzor.Module()
    for name, ty in (("ident", rayzor.i64), ("fident", rayzor.f64), ("bident", rayzor.bool_)):
        f = m.function(name, [ty], ty)
        f.ret(f.params[0])
    mix = m.function("mix", [rayzor.i64, rayzor.f64, rayzor.bool_], rayzor.f64)
    a, x, flag = mix.params
    yes, no = mix.block(), mix.block()
    mix.brif(flag, yes, no)
    mix.switch_to(yes)
    mix.ret(mix.cast(a, rayzor.f64) + x)
    mix.switch_to(no)
    mix.ret(x)
    v = m.function("nothing", [rayzor.i64], rayzor.void)
    v.ret()
    n = m.function("narrow", [rayzor.i32], rayzor.i32)
    n.ret(n.params[0])
    z = m.function("zero", [], rayzor.i64)
    z.ret(z.const(0, rayzor.i64))
    m.verify()
    return m


@pytest.fixture(params=[Tier.T0, Tier.T2])
def jit(request: pytest.FixtureRequest) -> rayzor.TieredJit:
    j = rayzor.TieredJit(boundary_module(), manual())
    for name in j.functions:
        j.compile(name, request.param)
    yield j
    j.close()


def test_scalar_round_trips(jit: rayzor.TieredJit) -> None:
    ident, fident, bident = jit["ident"], jit["fident"], jit["bident"]
    for mode in GIL_MODES:
        for f in (ident, fident, bident):
            f.gil = mode
        for v in (0, 1, -1, 2**63 - 1, -(2**63), 123456789012):
            r = ident(v)
            assert r == v and type(r) is int
        for x in (0.0, -0.0, 1.5, float("inf"), -1e308, 5e-324):
            r = fident(x)
            assert type(r) is float and r == x and str(r) == str(x)
        assert str(fident(float("nan"))) == "nan"
        assert bident(True) is True and bident(False) is False
        assert jit["mix"](2, 0.5, True) == 2.5 and jit["mix"](2, 0.5, False) == 0.5
        assert jit["nothing"](7) is None
        assert jit["narrow"](-5) == -5
        assert jit["zero"]() == 0


def test_generic_conversions_still_apply(jit: rayzor.TieredJit) -> None:
    """Values the fast path does not take (subclasses, ints for floats, numpy
    scalars) go through the generic conversion as before."""

    class MyInt(int):
        pass

    class Colour(enum.IntEnum):
        RED = 3

    class MyFloat(float):
        pass

    assert jit["ident"](MyInt(41)) == 41
    assert jit["ident"](Colour.RED) == 3
    assert jit["fident"](MyFloat(2.25)) == 2.25
    r = jit["fident"](3)
    assert r == 3.0 and type(r) is float
    np = pytest.importorskip("numpy")
    assert jit["ident"](np.int64(-9)) == -9
    assert jit["fident"](np.float64(0.75)) == 0.75
    assert jit["bident"](np.bool_(True)) is True


def test_argument_errors(jit: rayzor.TieredJit) -> None:
    ident = jit["ident"]
    with pytest.raises(rayzor.ArgumentError, match=r"function 'ident' takes 1 argument, got 2"):
        ident(1, 2)
    with pytest.raises(rayzor.ArgumentError, match=r"function 'ident' takes 1 argument, got 0"):
        ident()
    with pytest.raises(rayzor.ArgumentError, match=r"function 'zero' takes 0 arguments, got 1"):
        jit["zero"](1)
    with pytest.raises(rayzor.ArgumentError, match=r"argument 0 of 'ident' must be an int \(i64\), got bool"):
        ident(True)
    with pytest.raises(
        rayzor.ArgumentError, match=r"argument 0 of 'ident' must be an int \(i64\), got float"
    ):
        ident(1.0)
    with pytest.raises(rayzor.ArgumentError, match=r"argument 0 of 'ident' must be an int \(i64\), got str"):
        ident("1")
    with pytest.raises(rayzor.ArgumentError, match=r"argument 1 of 'mix' must be a float \(f64\), got bool"):
        jit["mix"](1, True, True)
    with pytest.raises(
        rayzor.ArgumentError, match=r"argument 0 of 'bident' must be a bool \(type bool\), got int"
    ):
        jit["bident"](1)
    with pytest.raises(rayzor.ArgumentError, match=r"argument 2 of 'mix' must be a bool"):
        jit["mix"](1, 1.0, None)


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 2**64, 10**30])
def test_i64_overflow_is_the_generic_error(jit: rayzor.TieredJit, value: int) -> None:
    with pytest.raises(rayzor.ArgumentError, match=rf"argument 0 of 'ident' = {value} does not fit in i64"):
        jit["ident"](value)
    # The same value through the generic path (an int subclass) fails the same way.
    with pytest.raises(rayzor.ArgumentError, match=rf"argument 0 of 'ident' = {value} does not fit in i64"):
        jit["ident"](type("Big", (int,), {})(value))
    assert jit["ident"](5) == 5


def test_keyword_arguments_are_refused(jit: rayzor.TieredJit) -> None:
    ident = jit["ident"]
    with pytest.raises(
        rayzor.ArgumentError,
        match="function 'ident' takes positional arguments only, got keyword argument 'x'",
    ):
        ident(x=1)
    with pytest.raises(TypeError, match="positional arguments only"):
        ident(1, y=2)
    # Through tp_call directly (the slot wrapper), the same error.
    with pytest.raises(rayzor.ArgumentError, match="positional arguments only, got keyword argument 'x'"):
        type(ident).__call__(ident, x=1)
    assert ident(*[4], **{}) == 4


def test_every_calling_convention_reaches_the_code(jit: rayzor.TieredJit) -> None:
    ident = jit["ident"]
    assert type(ident).__call__(ident, 6) == 6
    assert functools.partial(ident, 7)() == 7
    assert list(map(ident, range(3))) == [0, 1, 2]
    assert sorted([3, 1, 2], key=ident) == [1, 2, 3]
    assert callable(ident)
    assert jit["mix"](*(1, 2.0), True) == 3.0


def test_no_reference_leaks() -> None:
    with rayzor.TieredJit(boundary_module(), manual()) as jit:
        ident, fident, nothing = jit["ident"], jit["fident"], jit["nothing"]
        big, x = 10**12 + 7, 1.0 / 3.0
        before = (sys.getrefcount(big), sys.getrefcount(x))
        for _ in range(1000):
            ident(big)
            fident(x)
            nothing(big)
            with pytest.raises(rayzor.ArgumentError):
                ident(x)
        gc.collect()
        assert (sys.getrefcount(big), sys.getrefcount(x)) == before
        # A leaked (or over-released) None per call would show as 10000.
        none_before = sys.getrefcount(None)
        for _ in range(10000):
            nothing(1)
        assert abs(sys.getrefcount(None) - none_before) < 1000


def test_calls_from_many_threads_in_every_gil_mode() -> None:
    with rayzor.TieredJit(boundary_module(), manual()) as jit:
        jit.compile("mix", Tier.T1)
        errors: list[BaseException] = []

        def work(k: int) -> None:
            try:
                mix, ident = jit["mix"], jit["ident"]
                for i in range(3000):
                    assert ident(i * k) == i * k
                    assert mix(i, 0.5, i % 2 == 0) == (i + 0.5 if i % 2 == 0 else 0.5)
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        for mode in GIL_MODES:
            jit["mix"].gil = mode
            jit["ident"].gil = mode
            threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        assert not errors, errors


def test_function_kept_after_close_raises_closed() -> None:
    jit = rayzor.TieredJit(boundary_module(), manual())
    ident, mix = jit["ident"], jit["mix"]
    assert ident(3) == 3
    jit.close()
    with pytest.raises(rayzor.ClosedError):
        ident(3)
    with pytest.raises(rayzor.ClosedError):
        mix(1, 1.0, True)
    # Argument-count errors still come first, as before.
    with pytest.raises(rayzor.ArgumentError, match="takes 1 argument"):
        ident()
    del jit
    gc.collect()
    with pytest.raises(rayzor.ClosedError):
        ident(3)


def test_function_outliving_its_jit_object_without_close() -> None:
    ident = rayzor.TieredJit(boundary_module(), manual())["ident"]
    gc.collect()
    # The TieredJit is gone (atexit or GC may close it): the call either still
    # runs or raises ClosedError, never crashes.
    try:
        assert ident(9) == 9
    except rayzor.ClosedError:
        pass


@pytest.mark.parametrize("tier", [Tier.T0, Tier.T2])
def test_traps_raise_from_the_fast_path_in_every_gil_mode(tier: Tier) -> None:
    m = rayzor.Module()
    f = m.function("div", [rayzor.i64, rayzor.i64], rayzor.i64)
    a, b = f.params
    f.ret(f.div(a, b))
    m.verify()
    with rayzor.TieredJit(m, manual()) as jit:
        jit.compile("div", tier)
        div = jit["div"]
        for mode in GIL_MODES:
            div.gil = mode
            for _ in range(100):  # past the adaptive mode's first samples
                with pytest.raises(rayzor.Trap) as e:
                    div(1, 0)
                assert e.value.kind is rayzor.TrapKind.DIVISION_BY_ZERO and e.value.function == "div"
                assert div(7, 2) == 3
            with pytest.raises(rayzor.Trap, match="integer_overflow|overflow"):
                div(-(2**63), -1)


def test_interrupt_raises_from_the_fast_path() -> None:
    m = rayzor.Module()
    f = m.function("spin", [rayzor.i64], rayzor.i64)
    (n,) = f.params
    i = f.var("i", rayzor.i64, 0)
    head, body, done = f.block(), f.block(), f.block()
    f.jump(head)
    f.switch_to(head)
    f.brif(f.lt(f.get(i), n), body, done)
    f.switch_to(body)
    f.set(i, f.get(i) + 1)
    f.jump(head)
    f.switch_to(done)
    f.ret(f.get(i))
    m.verify()
    with rayzor.TieredJit(m, manual()) as jit:
        spin = jit["spin"]
        spin.gil = "hold"
        jit.interrupt(after=0.05)
        with pytest.raises(rayzor.Trap) as e:
            spin(2**62)
        assert e.value.kind is rayzor.TrapKind.INTERRUPTED
        assert spin(10) == 10
