"""Execution profiles collected at T0 (T1 on request), read from Python (issue 12): branch
probabilities, switch case shares, the top call_indirect targets, call counts."""

from __future__ import annotations

from pathlib import Path

import pytest

import rayzor
from rayzor import Tier

SITES = Path(__file__).parent / "mir" / "profile_sites.mir"


def jit_at(tier: Tier, sample_rate: int) -> rayzor.TieredJit:
    m = rayzor.parse(SITES.read_text())
    cfg = rayzor.TieredConfig(
        enable_background_optimization=False,
        profile_config=rayzor.ProfileConfig(sample_rate=sample_rate),
    )
    jit = rayzor.TieredJit(m, cfg)
    jit._set_profiling_tiers([Tier.T0, Tier.T1])  # T1 profiles only when asked to
    for name in jit.functions:
        jit.compile(name, tier)
    return jit


@pytest.mark.parametrize("tier", [Tier.T0, Tier.T1])
def test_exact_counts(tier: Tier) -> None:
    with jit_at(tier, 1) as jit:
        assert jit["branchy"](1000) == 50400
        p = jit.profile("branchy")
        assert p.name == "branchy" and p.entries == 1
        loop, body = p.branches
        assert (loop.taken, loop.not_taken) == (1000, 1)
        assert (body.taken, body.not_taken) == (900, 100)
        assert body.taken_probability == pytest.approx(0.9)
        assert (body.then_block, body.else_block) == ("block3", "block4")

        assert jit["switchy"](1000) == 302400
        (sw,) = jit.profile("switchy").switches
        assert sw.cases == [(2, 300), (3, 100)] and sw.default == 600
        assert sw.case_shares == pytest.approx({2: 0.3, 3: 0.1})
        assert sw.default_share == pytest.approx(0.6)

        assert jit["indirect"](1000) == 533290
        (ind,) = jit.profile("indirect").indirect_calls
        assert ind.targets == [("inc", 950), ("twice", 40)] and ind.misses == 10
        assert [f for f, _ in ind.target_shares] == ["inc", "twice"]
        assert ind.miss_share == pytest.approx(0.01)

        assert jit["calls"](1000) == 999500
        calls = jit.profile("calls").calls
        assert [(c.callee, c.calls) for c in calls] == [("inc", 1000), ("twice", 500)]


def test_counts_are_exact_at_the_production_sample_rate() -> None:
    # sample_rate samples the call and loop counters; profiles count every event.
    with jit_at(Tier.T1, 16) as jit:
        for _ in range(3):
            jit["branchy"](1000)
            jit["indirect"](1000)
        body = jit.profile("branchy").branches[1]
        assert (body.taken, body.not_taken) == (2700, 300)
        (ind,) = jit.profile("indirect").indirect_calls
        assert ind.targets == [("inc", 2850), ("twice", 120)] and ind.misses == 30
        text = str(jit.profile("indirect"))
        assert "call_indirect: inc: 95.0%, twice: 4.0%, other: 1.0% (3000 calls)" in text, text


def test_only_t0_profiles_by_default() -> None:
    m = rayzor.parse(SITES.read_text())
    cfg = rayzor.TieredConfig(enable_background_optimization=False)
    with rayzor.TieredJit(m, cfg) as jit:
        assert jit["branchy"](10) == 9  # at T0, the first tier
        assert jit.profile("branchy").branches[1].taken == 9
        jit.compile("branchy", Tier.T1)
        jit["branchy"](10)
        assert jit.profile("branchy").branches[1].taken == 9, "T1 code does not profile"


def test_top_tiers_and_sample_rate_zero_collect_nothing() -> None:
    with jit_at(Tier.T2, 1) as jit:
        assert jit["branchy"](100) == 540
        assert jit.profile("branchy").branches == []
    with jit_at(Tier.T0, 0) as jit:
        assert jit["branchy"](100) == 540
        p = jit.profile("branchy")
        assert (p.entries, p.branches) == (0, [])


def test_unknown_function_is_an_argument_error() -> None:
    with jit_at(Tier.T0, 1) as jit, pytest.raises(rayzor.ArgumentError, match="no function named"):
        jit.profile("nope")


@pytest.mark.parametrize("cases, profiled", [(1024, True), (1025, False)])
def test_switches_over_the_case_limit_are_not_profiled(cases: int, profiled: bool) -> None:
    # A case's count costs a pad block on its edge: 100k cases doubled T0's compile
    # time, so switches over rayzor's MAX_PROFILED_CASES (1,024) count nothing.
    arms = ", ".join(f"{2 * k}: block1" for k in range(cases))
    src = "\n".join(
        [
            "fn sw(i64) -> i64 {",
            "block0(v0: i64):",
            f"  switch v0, [{arms}], block2",
            "block1:",
            "  v1: i64 = const 7",
            "  ret v1",
            "block2:",
            "  v2: i64 = const -1",
            "  ret v2",
            "}",
        ]
    )
    profile = rayzor.ProfileConfig(sample_rate=1)
    cfg = rayzor.TieredConfig(enable_background_optimization=False, profile_config=profile)
    with rayzor.TieredJit(rayzor.parse(src), cfg) as jit:
        assert [jit["sw"](x) for x in (0, 1, 2, 2 * cases - 2, 2 * cases)] == [7, -1, 7, 7, -1]
        switches = jit.profile("sw").switches
        if profiled:
            (sw,) = switches
            assert sw.default == 2 and sum(n for _, n in sw.cases) == 3
        else:
            assert switches == []
