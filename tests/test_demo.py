"""The tier-promotion demo (`python -m rayzor demo`) reports what happened."""

from __future__ import annotations

import json
import subprocess
import sys

import rayzor
from rayzor import Tier

TOP, _ = rayzor.TieredJit.top_tier()


def test_demo_cli_writes_json_and_plot(tmp_path) -> None:
    out, png = tmp_path / "demo.json", tmp_path / "demo.png"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "rayzor",
            "demo",
            "--quiet",
            "--n",
            "18",
            "--calls",
            "4000",
            "--json",
            str(out),
            "--plot",
            str(png),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert data["result_ok"] is True
    assert data["final_tier"] == str(TOP)
    tiers = [p["tier"] for p in data["promotions"]]
    # T1 first, then up to the top (straight there when it deserves it: tier.rs `climb_order`).
    assert tiers[0] == "T1" and tiers[-1] == str(TOP)
    assert tiers == sorted(set(tiers)) and set(tiers) <= {str(t) for t in Tier if Tier.T0 < t <= TOP}
    calls = [p["at_call"] for p in data["promotions"]]
    times = [p["t_ms"] for p in data["promotions"]]
    assert calls == sorted(calls) and times == sorted(times)
    assert all(0 <= c <= 4000 for c in calls)
    assert set(data["median_us_by_tier"]) <= {str(t) for t in Tier}
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "final tier" in proc.stdout


def test_demo_run_measures_every_call() -> None:
    from rayzor import demo

    result = demo.run("production", calls=300, n=12, live=False)
    assert result.result_ok
    assert len(result.latencies_ns) == len(result.tiers) == 300
    # Promotion only moves up: the tier each call started in never decreases.
    assert all(a <= b for a, b in zip(result.tiers, result.tiers[1:], strict=False))
    assert result.stats is not None and "fib" in result.stats.functions


def test_demo_loop_shows_an_osr_transfer(tmp_path) -> None:
    """`demo --workload loop`: one long call on a fresh development-preset jit gets an OSR
    entry above T0 for its loop, after at least the preset's OSR threshold of back-edges."""
    out, png = tmp_path / "loop.json", tmp_path / "loop.png"
    n = 20_000_000
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "rayzor",
            "demo",
            "--workload",
            "loop",
            "--n",
            str(n),
            "--json",
            str(out),
            "--plot",
            str(png),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert data["workload"] == "loop" and data["n"] == n
    assert data["result_ok"] is True
    from rayzor.demo import py_loop_sum

    assert data["result"] == py_loop_sum(n)
    osr = [e for e in data["events"] if e["reason"] == "osr"]
    assert osr, data["events"]
    threshold = rayzor.TieredConfig.development().profile_config.osr_threshold
    for e in osr:
        assert Tier[e["from_tier"]] < Tier[e["to_tier"]] <= TOP
        assert e["backedges"] >= threshold
        assert e["loop_header"] is not None
    assert any(Tier[e["to_tier"]] > Tier.T0 for e in osr)
    assert "OSR entry published" in proc.stdout
    assert data["call_ms"] > 0 and data["osr_off_call_ms"] > 0
    if TOP == Tier.T3:
        assert data["forced_t3_run_ms"] > 0 and data["forced_t3_compile_ms"] > 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_loop_sum_closed_form_matches_the_loop() -> None:
    """The demo's expected result (computed without the loop) is the loop's result."""
    from rayzor.demo import py_loop_sum
    from rayzor.examples import loop_sum_module

    s = 0
    for n in range(3000):
        assert py_loop_sum(n) == s, n
        s += n ^ (n >> 3)
    m = loop_sum_module()
    for n in (123_457, 1 << 17):
        assert py_loop_sum(n) == rayzor.interpret(m, "loop_sum", n), n
