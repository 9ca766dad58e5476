"""On-stack replacement: hot loops move up the tiers inside a running call.

Forced transfers (``TieredJit._force_osr``) make the point of transfer deterministic;
the run-test files are also run with forced OSR at every tier pair by the cargo test
``runtests`` (``forced_osr_agrees_with_the_interpreter``), and the fuzzer has an OSR
property (``tests/test_fuzz_tiers.py``).
"""

from __future__ import annotations

import dataclasses
import pathlib
import threading

import pytest

import rayzor
from rayzor import Tier

MIR = pathlib.Path(__file__).parent / "mir"
TOP = rayzor.TieredJit.top_tier()[0]
PAIRS = [(a, b) for a in Tier for b in Tier if a < b <= TOP]

SUM = (MIR / "osr_sum.mir").read_text()

MANUAL = rayzor.TieredConfig(
    enable_background_optimization=False, profile_config=rayzor.ProfileConfig(sample_rate=1)
)


def forced(text: str, source: Tier, target: Tier, k: int) -> rayzor.TieredJit:
    jit = rayzor.TieredJit(rayzor.parse(text), MANUAL)
    for name in jit.functions:
        jit.compile(name, source)
    jit._force_osr(k, target)
    return jit


@pytest.mark.parametrize("source,target", PAIRS, ids=lambda t: str(t))
def test_forced_transfer_happens_after_exactly_k_back_edges(source: Tier, target: Tier) -> None:
    with forced(SUM, source, target, 7) as jit:
        assert jit["sum"](100_000) == 100_000 * 99_999 // 2
        (point,) = [p for p in jit.osr_points("sum") if p.source == source]
        assert point.entry == target
        # The source code counted 7 back-edges, the continuation ran the rest.
        assert point.backedges == 7
        osr = [e for e in jit.events() if e.reason == "osr"]
        assert [(e.from_tier, e.to_tier, e.ok) for e in osr] == [(source, target, True)]
        assert osr[0].loop_header == point.loop_header
        assert jit.stats().functions["sum"].osr == osr


@pytest.mark.parametrize("source,target", PAIRS, ids=lambda t: str(t))
def test_trap_after_the_transfer_is_a_rayzor_trap(source: Tier, target: Tier) -> None:
    with forced((MIR / "osr_recursion_traps.mir").read_text(), source, target, 3) as jit:
        with pytest.raises(rayzor.Trap) as e:
            jit["divloop"](50)  # divides by zero at iteration 50, after the transfer at 3
        assert e.value.kind == "division_by_zero"
        assert jit["divloop"](200) == sum(int(1000 / (i - 200)) for i in range(100))


@pytest.mark.parametrize("target", [t for t in Tier if Tier.T0 < t <= TOP], ids=str)
def test_recursion_traps_at_the_same_depth_with_osr(target: Tier) -> None:
    """rec(n) runs a loop at every level and recurses from inside its frame: every level
    transfers, and the continuation takes its frame's place in the call depth."""
    with forced((MIR / "osr_recursion_traps.mir").read_text(), Tier.T0, target, 1) as jit:
        assert jit["rec"](rayzor.MAX_CALL_DEPTH - 1) == 1225 * (rayzor.MAX_CALL_DEPTH - 1)
        with pytest.raises(rayzor.Trap) as e:
            jit["rec"](rayzor.MAX_CALL_DEPTH)
        assert e.value.kind == "stack_overflow"
        assert jit["rec"](10) == 12_250
        assert rayzor.interpret(jit_module(), "rec", rayzor.MAX_CALL_DEPTH - 1) == jit["rec"](
            rayzor.MAX_CALL_DEPTH - 1
        )


def jit_module() -> rayzor.Module:
    return rayzor.parse((MIR / "osr_recursion_traps.mir").read_text())


def test_threads_in_one_loop_each_transfer() -> None:
    n = 2_000_000
    with forced(SUM, Tier.T0, TOP, 1_000) as jit:
        results: list[int] = []
        start = threading.Barrier(4)

        def run() -> None:
            start.wait()
            results.append(jit["sum"](n))

        threads = [threading.Thread(target=run) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [n * (n - 1) // 2] * 4
        (point,) = [p for p in jit.osr_points("sum") if p.source == Tier.T0]
        # Every thread left the T0 loop soon after the count reached 1,000 (a thread that
        # had not transferred would have counted up to 2,000,000 here).
        assert point.backedges < 20_000


def test_a_long_call_moves_up_by_itself() -> None:
    """Development preset: one call of a long loop publishes an OSR entry and finishes
    in it (the T0 loop stops counting long before its 30M iterations)."""
    n = 30_000_000
    cfg = dataclasses.replace(rayzor.TieredConfig.development(), verbosity=0)
    with rayzor.TieredJit(rayzor.parse(SUM), cfg) as jit:
        assert jit["sum"](n) == n * (n - 1) // 2
        osr = [e for e in jit.events() if e.reason == "osr" and e.ok]
        assert osr and osr[0].from_tier == Tier.T0 and osr[0].to_tier > Tier.T0
        assert osr[0].backedges >= cfg.profile_config.osr_threshold
        t0 = [p for p in jit.osr_points("sum") if p.source == Tier.T0]
        assert t0[0].backedges < n


def test_osr_off_keeps_loops_in_their_code() -> None:
    cfg = dataclasses.replace(rayzor.TieredConfig.development(), verbosity=0, osr=False)
    with rayzor.TieredJit(rayzor.parse(SUM), cfg) as jit:
        assert jit["sum"](3_000_000) == 3_000_000 * 2_999_999 // 2
        assert not [e for e in jit.events() if e.reason == "osr"]
        assert jit.osr_points("sum") == []
        assert jit.info("sum").backedges == 3_000_000
        with pytest.raises(rayzor.ArgumentError, match="osr=False"):
            jit._force_osr(1, Tier.T1)


def test_a_failed_osr_compile_leaves_the_loop_running() -> None:
    n = 20_000_000
    cfg = dataclasses.replace(rayzor.TieredConfig.development(), verbosity=0)
    with rayzor.TieredJit(rayzor.parse(SUM), cfg) as jit:
        for t in Tier:
            if t > Tier.T0:
                jit._core._inject_compile_failure(int(t))
        assert jit["sum"](n) == n * (n - 1) // 2
        failed = [e for e in jit.events() if e.reason == "osr" and not e.ok]
        assert failed and "injected" in (failed[0].error or "")
        assert all(p.entry is None for p in jit.osr_points("sum"))


@pytest.mark.parametrize(
    "field,value",
    [("osr_threshold", 0), ("osr_threshold", -1), ("osr_threshold", 1.5)],
)
def test_osr_threshold_is_validated(field: str, value: object) -> None:
    with pytest.raises(rayzor.ConfigError, match="osr_threshold"):
        rayzor.TieredConfig(profile_config=rayzor.ProfileConfig(**{field: value}))  # type: ignore[arg-type]


def test_osr_switch_is_validated() -> None:
    with pytest.raises(rayzor.ConfigError, match="osr"):
        rayzor.TieredConfig(osr="yes")  # type: ignore[arg-type]


def test_presets() -> None:
    dev, prod = rayzor.TieredConfig.development(), rayzor.TieredConfig.production()
    assert dev.osr and prod.osr
    assert dev.profile_config.osr_threshold < prod.profile_config.osr_threshold == 60_000


def test_osr_entries_are_in_the_perf_map() -> None:
    import os
    from pathlib import Path

    path = Path(rayzor.TieredJit.perf_map_path())
    before = path.read_text().count("\n") if path.exists() else 0
    cfg = dataclasses.replace(MANUAL, perf_map=True)
    with rayzor.TieredJit(rayzor.parse(SUM), cfg) as jit:
        jit._force_osr(3, TOP)
        (point,) = jit.osr_points("sum")
        lines = path.read_text().splitlines()[before:]
    names = [line.split(" ", 2)[2] for line in lines]
    assert f"sum$osr{point.loop_header}[{TOP}]" in names, names
    assert os.getpid() == int(path.name[len("perf-") : -len(".map")])
