"""Native execution at T0-T2: calls, dispatch through the table, traps, threads."""

from __future__ import annotations

import threading
import time

import pytest

import rayzor
from rayzor import Tier
from rayzor.examples import fib_module, py_fib

CRANELIFT_TIERS = [Tier.T0, Tier.T1, Tier.T2]


def caller_callee_module(step_calls_out: bool = False) -> rayzor.Module:
    """``total(n) = sum(step(i) for i in range(n))`` with ``step(i) = i * 3 + 1``
    (``i * 3 + one()`` with `step_calls_out`: not a leaf, so T2/T3 do not inline it)."""
    m = rayzor.Module()
    if step_calls_out:
        one = m.function("one", [], rayzor.i64)
        one.ret(1)
    g = m.function("step", [rayzor.i64], rayzor.i64)
    (i,) = g.params
    g.ret(i * 3 + (g.call("one") if step_calls_out else 1))
    f = m.function("total", [rayzor.i64], rayzor.i64)
    (n,) = f.params
    s = f.var("s", rayzor.i64, 0)
    k = f.var("k", rayzor.i64, 0)
    head, body, done = f.block(), f.block(), f.block()
    f.jump(head)
    f.switch_to(head)
    f.brif(f.lt(f.get(k), n), body, done)
    f.switch_to(body)
    f.set(s, f.get(s) + f.call("step", f.get(k)))
    f.set(k, f.get(k) + 1)
    f.jump(head)
    f.switch_to(done)
    f.ret(f.get(s))
    m.verify()
    return m


def manual() -> rayzor.TieredConfig:
    """No background promotion, every event counted exactly (single-threaded)."""
    return rayzor.TieredConfig(
        enable_background_optimization=False,
        profile_config=rayzor.ProfileConfig(sample_rate=1),
    )


@pytest.mark.parametrize("tier", CRANELIFT_TIERS)
def test_fib_at_every_tier(tier: Tier) -> None:
    with rayzor.TieredJit(fib_module(), manual()) as jit:
        jit.compile("fib", tier)
        assert jit.tier_of("fib") is tier
        for n in range(0, 25):
            assert jit["fib"](n) == py_fib(n)
        info = jit.info("fib")
        assert info.compile_seconds[tier] > 0
        assert info.code_bytes[tier] > 0
        assert info.calls[tier] > 0


def test_compile_times_recorded_for_every_tier() -> None:
    with rayzor.TieredJit(fib_module(), manual()) as jit:
        times = {t: jit.compile("fib", t) for t in CRANELIFT_TIERS}
        info = jit.info("fib")
        for t in CRANELIFT_TIERS:
            assert times[t] > 0
            assert info.compile_seconds[t] > 0
        assert [e.to_tier for e in jit.events()] == [Tier.T0, *CRANELIFT_TIERS]


def test_promoted_callee_is_used_by_a_running_t0_caller() -> None:
    """The caller stays at T0; each recompile of the callee is entered afterwards."""
    n = 1000
    expected = sum(i * 3 + 1 for i in range(n))
    with rayzor.TieredJit(caller_callee_module(), manual()) as jit:
        total = jit["total"]
        assert total(n) == expected
        before = jit.info("step").calls
        assert before == {Tier.T0: n}
        for t in (Tier.T1, Tier.T2):
            jit.compile("step", t)
            calls_before = jit.info("step").calls.get(t, 0)
            assert total(n) == expected
            assert jit.tier_of("total") is Tier.T0
            # Every one of the n calls from T0 code entered the new tier's code.
            assert jit.info("step").calls.get(t, 0) - calls_before == n
        assert jit.info("step").calls[Tier.T0] == n


def trap_module() -> rayzor.Module:
    m = rayzor.Module()
    d = m.function("div", [rayzor.i32, rayzor.i32], rayzor.i32)
    a, b = d.params
    d.ret(d.div(a, b))
    r = m.function("down", [rayzor.i64], rayzor.i64)
    (n,) = r.params
    base, rec = r.block(), r.block()
    r.brif(r.eq(n, 0), base, rec)
    r.switch_to(base)
    r.ret(0)
    r.switch_to(rec)
    r.ret(r.call("down", n - 1) + 1)
    t = m.function("boom", [rayzor.bool_], rayzor.i64)
    (c,) = t.params
    yes, no = t.block(), t.block()
    t.brif(c, yes, no)
    t.switch_to(yes)
    t.trap()
    t.switch_to(no)
    t.unreachable()
    m.verify()
    return m


@pytest.mark.parametrize("tier", CRANELIFT_TIERS)
def test_traps_at_every_tier_then_recover(tier: Tier) -> None:
    with rayzor.TieredJit(trap_module(), manual()) as jit:
        for name in jit.functions:
            jit.compile(name, tier)
        cases = [
            ("div", (7, 0), rayzor.TrapKind.DIVISION_BY_ZERO),
            ("div", (-(2**31), -1), rayzor.TrapKind.INTEGER_OVERFLOW),
            ("down", (rayzor.MAX_CALL_DEPTH,), rayzor.TrapKind.STACK_OVERFLOW),
            ("down", (10**9,), rayzor.TrapKind.STACK_OVERFLOW),
            ("boom", (True,), rayzor.TrapKind.USER),
            ("boom", (False,), rayzor.TrapKind.UNREACHABLE),
        ]
        for name, args, kind in cases:
            with pytest.raises(rayzor.Trap) as e:
                jit[name](*args)
            assert e.value.kind is kind
            with pytest.raises(rayzor.Trap) as e2:
                rayzor.interpret(jit_module_of(jit), name, *args)
            assert e2.value.kind is kind
            # The function works again right after.
            assert jit["div"](7, -2) == -3
            assert jit["down"](rayzor.MAX_CALL_DEPTH - 1) == rayzor.MAX_CALL_DEPTH - 1


_modules: dict[int, rayzor.Module] = {}


def jit_module_of(jit: rayzor.TieredJit) -> rayzor.Module:
    return _modules.setdefault(id(jit), trap_module())


@pytest.mark.parametrize("tier", CRANELIFT_TIERS)
def test_traps_from_other_threads(tier: Tier) -> None:
    with rayzor.TieredJit(trap_module(), manual()) as jit:
        for name in jit.functions:
            jit.compile(name, tier)
        errors: list[BaseException] = []

        def work() -> None:
            try:
                for _ in range(50):
                    with pytest.raises(rayzor.Trap):
                        jit["div"](1, 0)
                    assert jit["div"](9, 3) == 3
                    with pytest.raises(rayzor.Trap):
                        jit["down"](20_000)
                    assert jit["down"](100) == 100
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []


def test_many_threads_call_at_once_while_recompiling() -> None:
    n = 300
    expected = sum(i * 3 + 1 for i in range(n))
    with rayzor.TieredJit(caller_callee_module(), manual()) as jit:
        total = jit["total"]
        total.gil = "release"
        stop = threading.Event()
        errors: list[str] = []
        counts = [0] * 4

        def work(k: int) -> None:
            while not stop.is_set():
                got = total(n)
                if got != expected:
                    errors.append(f"thread {k}: {got} != {expected}")
                counts[k] += 1

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        # At least 30 rounds, and on until every thread has made calls (on a loaded
        # machine a thread may not have run yet after 30 rounds).
        deadline = time.monotonic() + 120
        rounds = 0
        while rounds < 30 or (not all(counts) and time.monotonic() < deadline):
            for tier in (Tier.T1, Tier.T2, Tier.T0):
                jit.compile("step", tier)
                jit.compile("total", tier)
            rounds += 1
        stop.set()
        for t in threads:
            t.join()
        assert errors == []
        assert all(c > 0 for c in counts)


def test_call_errors() -> None:
    with rayzor.TieredJit(fib_module(), manual()) as jit:
        fib = jit["fib"]
        with pytest.raises(rayzor.ArgumentError):
            fib()
        with pytest.raises(rayzor.ArgumentError):
            fib(1.5)
        with pytest.raises(rayzor.ArgumentError):
            fib(2**63)
        with pytest.raises(rayzor.ArgumentError):
            jit["nope"]
        with pytest.raises(rayzor.ArgumentError):
            jit.compile("fib", 7)
        if rayzor_has_llvm():
            assert jit.compile("fib", Tier.T3) > 0
            assert fib(20) == py_fib(20)
        else:
            with pytest.raises(rayzor.CompileError, match="LLVM"):
                jit.compile("fib", Tier.T3)
    with pytest.raises(rayzor.ClosedError):
        fib(3)
    with pytest.raises(rayzor.ClosedError):
        jit.compile("fib", Tier.T1)


def rayzor_has_llvm() -> bool:
    return bool(getattr(rayzor, "llvm_available", lambda: False)())


def test_buffers_and_gil_modes() -> None:
    np = pytest.importorskip("numpy")
    m = rayzor.Module()
    f = m.function("fill", [rayzor.ptr, rayzor.i64], rayzor.i64)
    p, n = f.params
    i = f.var("i", rayzor.i64, 0)
    head, body, done = f.block(), f.block(), f.block()
    f.jump(head)
    f.switch_to(head)
    f.brif(f.lt(f.get(i), n), body, done)
    f.switch_to(body)
    iv = f.get(i)
    f.store(f.elem_addr(rayzor.i64, p, iv), iv * iv)
    f.set(i, iv + 1)
    f.jump(head)
    f.switch_to(done)
    f.ret(n)
    m.verify()
    with rayzor.TieredJit(m, manual()) as jit:
        fill = jit["fill"]
        for mode in ("hold", "release", "adaptive"):
            fill.gil = mode
            assert fill.gil == mode
            a = np.zeros(100, dtype=np.int64)
            assert fill(a, 100) == 100
            assert (a == np.arange(100) ** 2).all()
        with pytest.raises(ValueError):
            fill.gil = "sometimes"
        with pytest.raises(rayzor.ArgumentError):
            fill(b"read-only bytes", 1)


def test_profiling_can_be_compiled_out() -> None:
    off = rayzor.TieredConfig(
        enable_background_optimization=False, profile_config=rayzor.ProfileConfig(sample_rate=0)
    )
    with rayzor.TieredJit(caller_callee_module(), off) as jit:
        for tier in CRANELIFT_TIERS:
            jit.compile("step", tier)
            jit.compile("total", tier)
            assert jit["total"](100) == sum(i * 3 + 1 for i in range(100))
        assert jit.info("step").calls == {} and jit.info("total").backedges == 0
    with pytest.raises(rayzor.ConfigError, match="enable_background_optimization=False"):
        rayzor.TieredConfig(profile_config=rayzor.ProfileConfig(sample_rate=0))
