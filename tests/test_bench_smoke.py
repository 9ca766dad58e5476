"""Smoke test of the benchmark suite: ``benches/run.py --quick --tiny`` must run, cover
every workload and system, and agree with C everywhere. No timing assertions."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import rayzor

ROOT = Path(__file__).resolve().parent.parent
WORKLOADS = {"fib", "loop", "mandelbrot", "nbody", "sieve", "matmul", "vm"}


@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler")
def test_bench_quick_tiny(tmp_path: Path) -> None:
    pytest.importorskip("numpy")
    out = tmp_path / "bench.json"
    p = subprocess.run(
        [sys.executable, str(ROOT / "benches" / "run.py"), "--quick", "--tiny", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert p.returncode == 0, f"stdout:\n{p.stdout[-3000:]}\nstderr:\n{p.stderr[-3000:]}"
    rep = json.loads(out.read_text())
    assert rep["errors"] == []

    systems = {
        "c",
        "cpython",
        "rayzor-T0",
        "rayzor-T1",
        "rayzor-T2",
        "rayzor-tiered-dev",
        "rayzor-tiered-prod",
    }
    llvm = getattr(rayzor, "llvm_available", lambda: False)()
    if llvm or os.environ.get("RAYZOR_REQUIRE_LLVM", "0") == "1":
        systems.add("rayzor-T3")
    has_numba = importlib.util.find_spec("numba") is not None
    if has_numba:
        systems.add("numba")

    got = {(r["workload"], r["system"]) for r in rep["results"]}
    # No numba kernel for the bytecode VM.
    assert got == {(w, s) for w in WORKLOADS for s in systems if (w, s) != ("vm", "numba")}
    ss = rep["tiered_steady_state"]
    assert set(ss) == WORKLOADS
    for w, row in ss.items():
        assert set(row["ratio"]) == {"dev", "prod", "dev-nopolicy", "prod-nopolicy"}, w
        assert row["best_tier"] in {s.removeprefix("rayzor-") for s in systems if s.startswith("rayzor-T")}
    # The PGO section: every PGO workload, with and without a profile (results checked in run.py).
    assert {r["workload"] for r in rep["pgo"]["rows"]} == {"vm", "icall", "bias"}
    assert all({"T1", "T2", "T2+pgo"} <= set(r["ms"]) for r in rep["pgo"]["rows"])
    c = {r["workload"]: r["result"] for r in rep["results"] if r["system"] == "c"}
    for r in rep["results"]:
        if r["system"] != "c":
            assert r["matches_c"], r
            assert r["result"] == pytest.approx(c[r["workload"]], rel=1e-12)
    expected = {"rayzor", "ctypes", "cpython"} | ({"numba"} if has_numba else set())
    assert expected <= set(rep["call_overhead_ns"])
    published = rep["nbody_check"]["published"]
    for system in systems - {"rayzor-tiered-dev", "rayzor-tiered-prod"}:
        assert rep["nbody_check"][system] == published, system
