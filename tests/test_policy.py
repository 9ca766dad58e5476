"""The never-slower tier policy: a promotion measured slower than the code it
replaced is undone, reported, and retried only after a back-off (runtime/policy.rs).

The slowdown is injected (`_inject_slowdown` multiplies the measured times of one
tier's code), so the verdicts do not depend on the machine's timing."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest

import rayzor
from rayzor import Tier
from rayzor.examples import fib_module, py_fib

TOP, _why = rayzor.TieredJit.top_tier()
# The injected slowdown: T3 runs fib about 2x faster than T1, so a factor of 10 left the
# slowed code only ~5x behind, which a preempted call of the old code could outweigh.
SLOW = 100


def wait_for(pred, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.001)
    return pred()


def burst(f, arg: int, want: int, n: int = 300) -> bool:
    """``n`` calls in a row: the probation times one short call in 64."""
    return all(f(arg) == want for _ in range(n))


def config(backoff_ms: int, margin: int = 4) -> rayzor.TieredConfig:
    return dataclasses.replace(
        rayzor.TieredConfig.development(),
        verbosity=0,
        demotion_margin_pct=margin,
        demotion_backoff_ms=backoff_ms,
    )


def history(jit: rayzor.TieredJit) -> list[str]:
    """What happened, for a failed wait's message."""
    return [e.describe() for e in jit.events()]


def demotions(jit: rayzor.TieredJit, name: str = "fib") -> list[rayzor.CompileEvent]:
    return [e for e in jit.events() if e.reason == "demoted" and e.function == name]


def test_forced_demotion_restores_previous_code_and_is_reported() -> None:
    with rayzor.TieredJit(fib_module(), config(backoff_ms=60_000)) as jit:
        jit._core._inject_slowdown(int(TOP), SLOW)
        fib = jit["fib"]
        # fib climbs T1 -> T2 -> TOP without stopping (it deserves TOP); the probation
        # at the end of the climb compares TOP's code with T1's, and TOP loses.
        assert wait_for(lambda: burst(fib, 15, 610) and bool(demotions(jit))), history(jit)
        d = demotions(jit)[0]
        assert (d.from_tier, d.to_tier) == (TOP, Tier.T1)
        assert d.new_cost_ns is not None and d.old_cost_ns is not None
        # Both figures, the injected one a hundred times the real one (medians of similar calls).
        assert d.new_cost_ns > 4 * d.old_cost_ns > 0
        assert d.retry_seconds == pytest.approx(60.0)
        assert "demoted" in d.describe() and "retry in 60 s" in d.describe()
        # Back at T1 (or, where T3 lost, on to T2, which T3's back-off leaves open).
        assert jit.tier_of("fib") in (Tier.T1, Tier.T2)
        for n in range(20):
            assert fib(n) == py_fib(n)
        st = jit.stats().functions["fib"]
        assert st.demotions[0] == d
        assert all(e.reason != "demoted" for e in st.promotions)


def test_no_repromotion_during_backoff() -> None:
    with rayzor.TieredJit(fib_module(), config(backoff_ms=60_000)) as jit:
        slow = [Tier.T2] + ([Tier.T3] if TOP >= Tier.T3 else [])
        for t in slow:
            jit._core._inject_slowdown(int(t), SLOW)
        fib = jit["fib"]
        # TOP loses at the end of the climb, then T2 (tried next while TOP backs off).
        slow.reverse()
        assert wait_for(lambda: burst(fib, 15, 610) and len(demotions(jit)) == len(slow)), history(jit)
        at = demotions(jit)[-1].at_seconds
        # Hot enough for T2 and T3 all along; 40 monitor passes later it is still at T1.
        passes = jit._core.monitor_passes()
        assert passes is not None
        assert wait_for(lambda: burst(fib, 15, 610) and jit._core.monitor_passes()[0] >= passes[0] + 40), (
            history(jit)
        )
        assert jit.tier_of("fib") == Tier.T1
        assert not [e for e in jit.events() if e.at_seconds > at and e.reason == "promotion"]
        assert [(d.from_tier, d.to_tier) for d in demotions(jit)] == [(t, Tier.T1) for t in slow]


@pytest.mark.skipif(TOP < Tier.T3, reason="needs T3")
def test_backoff_doubles_then_never() -> None:
    with rayzor.TieredJit(fib_module(), config(backoff_ms=50)) as jit:
        jit._core._inject_slowdown(int(Tier.T2), SLOW)
        jit._core._inject_slowdown(int(Tier.T3), SLOW)
        fib = jit["fib"]
        # Each tier retried after 50 ms, then 100 ms; demoted a third time, never again.
        assert wait_for(lambda: burst(fib, 15, 610) and len(demotions(jit)) >= 6), history(jit)
        for t in (Tier.T2, Tier.T3):
            retries = [d.retry_seconds for d in demotions(jit) if d.from_tier == t]
            assert retries == [pytest.approx(0.05), pytest.approx(0.1), None]
        last = demotions(jit)[-1].at_seconds
        time.sleep(0.5)
        for n in range(20):
            assert fib(n) == py_fib(n)
        assert jit.tier_of("fib") == Tier.T1
        assert not [e for e in jit.events() if e.at_seconds > last and e.reason == "promotion"]


@pytest.mark.skipif(TOP < Tier.T3, reason="needs T3 to show the losing tier is skipped")
def test_losing_tier_is_skipped() -> None:
    with rayzor.TieredJit(fib_module(), config(backoff_ms=60_000)) as jit:
        # T1's times count 10x, so that T2 surely beats it (their real times are within
        # the margin of each other, either way, depending on code placement), and T3's
        # 1000x, so that it surely loses.
        jit._core._inject_slowdown(int(Tier.T1), 10)
        jit._core._inject_slowdown(int(Tier.T3), 10 * SLOW)
        fib = jit["fib"]
        # T3 loses; while it backs off, T2 ends the climb: promoted from T1 and judged
        # against T1, so it stays.
        assert wait_for(
            lambda: (
                burst(fib, 15, 610)
                and bool(demotions(jit))
                and jit.tier_of("fib") == Tier.T2
                and not jit._core.busy()
            )
        ), history(jit)
        first = demotions(jit)[0].at_seconds
        later = [e for e in jit.events() if e.at_seconds >= first and e.reason == "promotion"]
        assert [(e.from_tier, e.to_tier) for e in later] == [(Tier.T1, Tier.T2)]
        for n in range(20):
            assert fib(n) == py_fib(n)
        time.sleep(0.2)
        assert jit.tier_of("fib") == Tier.T2 and len(demotions(jit)) == 1


def test_demotion_of_a_callee_only_jit_code_calls() -> None:
    """``sq`` is only ever called from JIT code: its cost shows in its caller's host calls."""
    from test_tiering import driver_module, py_main

    with rayzor.TieredJit(driver_module(), config(backoff_ms=60_000)) as jit:
        for t in (Tier.T2, Tier.T3):
            jit._core._inject_slowdown(int(t), SLOW)
        main = jit["main"]
        want = py_main(200)
        # TOP loses, then T2 (where TOP is T3): sq ends back at T1.
        n = 2 if TOP >= Tier.T3 else 1
        assert wait_for(
            lambda: burst(main, 200, want) and len(demotions(jit, "sq")) == n and not jit._core.busy()
        ), history(jit)
        d = demotions(jit, "sq")[0]
        assert (d.from_tier, d.to_tier) == (TOP, Tier.T1)
        assert jit.tier_of("sq") == Tier.T1
        assert main(200) == want


def test_calls_from_threads_during_probations_stay_correct() -> None:
    with rayzor.TieredJit(fib_module(), config(backoff_ms=20)) as jit:
        for t in (Tier.T2, Tier.T3):
            jit._core._inject_slowdown(int(t), SLOW)
        fib = jit["fib"]
        errors: list[str] = []
        stop = threading.Event()

        def worker(k: int) -> None:
            i = 0
            while not stop.is_set():
                n = (i * 7 + k) % 18
                got = fib(n)
                if got != py_fib(n):
                    errors.append(f"fib({n}) = {got}")
                i += 1

        threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        try:
            # The same argument from the main thread too, so probations get a verdict.
            ok = wait_for(lambda: burst(fib, 15, 610) and len(demotions(jit)) >= 1)
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=60)
        assert not any(t.is_alive() for t in threads), "deadlock"
        assert errors == []
        assert ok, [e.describe() for e in jit.events()]


def test_policy_off_keeps_promotions() -> None:
    with rayzor.TieredJit(fib_module(), config(backoff_ms=50, margin=0)) as jit:
        jit._core._inject_slowdown(int(Tier.T2), SLOW)
        fib = jit["fib"]
        assert wait_for(lambda: burst(fib, 15, 610) and jit.tier_of("fib") >= Tier.T2)
        for _ in range(2000):
            fib(15)
        assert demotions(jit) == []


def test_config_fields() -> None:
    dev, prod = rayzor.TieredConfig.development(), rayzor.TieredConfig.production()
    assert (dev.demotion_margin_pct, dev.demotion_backoff_ms) == (4, 2_000)
    assert (prod.demotion_margin_pct, prod.demotion_backoff_ms) == (4, 10_000)
    with pytest.raises(rayzor.ConfigError, match="demotion_backoff_ms"):
        dataclasses.replace(dev, demotion_backoff_ms=0)
    with pytest.raises(rayzor.ConfigError, match="demotion_margin_pct"):
        dataclasses.replace(dev, demotion_margin_pct=-1)
