"""Figures for issue 14: bookkeeping scaling and compiled-code stack memory.

    python benches/reliability.py

Prints: stats() time for 2.5k/10k/20k functions; time to build 10k/40k functions that
call each other by name (build + verify); RSS before/after a deep call on the main
thread and on a second thread.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import rayzor

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))


def stats_seconds(n: int) -> float:
    m = rayzor.Module()
    for i in range(n):
        b = m.function(f"f{i}", [], rayzor.i64)
        b.ret(b.const(i, rayzor.i64))
    with rayzor.TieredJit(m, rayzor.TieredConfig(enable_background_optimization=False)) as jit:
        start = time.perf_counter()
        jit.stats()
        return time.perf_counter() - start


def build_seconds(n: int) -> float:
    start = time.perf_counter()
    m = rayzor.Module()
    bs = [m.function(f"f{i}", [rayzor.i64], rayzor.i64) for i in range(n)]
    for i, b in enumerate(bs):
        b.ret(b.call(f"f{(i + 1) % n}", b.params[0]) if i + 1 < n else b.params[0])
    m.verify()
    return time.perf_counter() - start


def rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096 / 2**20


def main() -> None:
    for n in (2_500, 10_000, 20_000):
        print(f"stats() for {n:>6} functions: {stats_seconds(n):.3f} s")
    for n in (10_000, 40_000):
        print(f"build {n:>6} functions calling by name: {build_seconds(n):.3f} s")
    from test_robustness import big_frame_module

    jit = rayzor.TieredJit(big_frame_module(1), rayzor.TieredConfig(enable_background_optimization=False))
    buf = bytearray(8 * 4096)

    def deep(label: str) -> None:
        jit["rec"](1, buf)
        before = rss_mib()
        jit["rec"](9_999, buf)
        after = rss_mib()
        print(f"{label}: RSS {before:.0f} MiB before a 9,999-deep call, {after:.0f} MiB after it returned")

    deep("main thread")
    t = threading.Thread(target=deep, args=("second thread",))
    t.start()
    t.join()
    jit.close()


if __name__ == "__main__":
    main()
