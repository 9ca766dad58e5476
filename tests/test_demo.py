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
    assert tiers == [str(t) for t in Tier if Tier.T0 < t <= TOP]
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
