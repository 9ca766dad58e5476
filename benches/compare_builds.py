"""Compare builds of Rayzor on the benchmark workloads in one process, call by call.

Each build's package (``BUILD/python/rayzor``, with its compiled extension) is copied and
imported under a name of its own, so every build runs in the same process on the same
inputs. Rounds alternate the builds call by call (forwards, then backwards), so
neighbouring calls see the same machine: on a VM whose speed drifts by 30 % over
seconds, the per-round ratio to the first build is far steadier than medians of
separate processes. Prints, per workload, each build's median time of one call (thread
CPU time, ms; per round, the median over the build's ``--placements`` jits, the same code
at different addresses) and the median of its per-round ratios to the first build.

    python benches/compare_builds.py --tier 3 --rounds 31 fib,matmul /work/a /work/b

Used for the interrupt-poll cost (docs/benchmarks.md, "Interrupt polls at T3"): the
first build there is this tree with polls compiled out at T3 (``git apply
benches/no_polls.diff`` in a worktree, then build it with its own ``CARGO_TARGET_DIR``:
a shared target dir takes another checkout's sources for fresh).
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from workloads import WORKLOADS


def load(builds: list[str], into: Path) -> list[ModuleType]:
    """Import each build's package as ``rz0``, ``rz1``, ..."""
    sys.path.insert(0, str(into))
    pkgs = []
    for i, b in enumerate(builds):
        shutil.copytree(Path(b) / "python" / "rayzor", into / f"rz{i}")
        pkgs.append(importlib.import_module(f"rz{i}"))
    return pkgs


def compiled(pkg: ModuleType, name: str, tier: int) -> Any:
    """The workload's entry at `tier`, built with `pkg` (the MIR builders import
    ``rayzor`` and ``rayzor.examples``: they see `pkg` under that name)."""
    sys.modules["rayzor"] = pkg
    for k in [k for k in sys.modules if k.startswith("rayzor.")]:
        del sys.modules[k]
    w = WORKLOADS[name]
    jit = pkg.TieredJit(w.mir(), pkg.TieredConfig(enable_background_optimization=False))
    jit.compile(w.entry, tier)
    return jit, jit[w.entry]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("workloads", help="comma-separated names from benches/workloads.py")
    ap.add_argument("builds", nargs="+", help="checkouts with a built python/rayzor")
    ap.add_argument("--tier", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=31)
    ap.add_argument("--placements", type=int, default=3, help="jits per build (code addresses)")
    ap.add_argument("--size", default="full", choices=["full", "quick", "tiny"])
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pkgs = load(a.builds, Path(tmp))
        for name in a.workloads.split(","):
            w = WORKLOADS[name]
            n = w.sizes[a.size]
            # Several jits per build: the same code at other addresses (placement
            # alone moves a small loop's time by up to 2.5x).
            fns = [[compiled(p, name, a.tier) for _ in range(a.placements)] for p in pkgs]
            times: list[list[float]] = [[] for _ in pkgs]
            calls = [(b, j) for j in range(a.placements) for b in range(len(pkgs))]
            for r in range(a.rounds + 2):  # two warm-up rounds
                round_times: list[list[float]] = [[] for _ in pkgs]
                for b, j in calls if r % 2 == 0 else reversed(calls):
                    args = w.args(n)
                    t = time.thread_time_ns()
                    fns[b][j][1](*args)
                    round_times[b].append((time.thread_time_ns() - t) / 1e6)
                if r >= 2:
                    for b, ts in enumerate(round_times):
                        times[b].append(statistics.median(ts))
            cells = []
            for b, ts in zip(a.builds, times, strict=True):
                ratio = statistics.median(x / y for x, y in zip(ts, times[0], strict=True))
                cells.append(f"{Path(b).name} {statistics.median(ts):.3f} ({(ratio - 1) * 100:+.1f}%)")
            print(f"{name:10s} " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main()
