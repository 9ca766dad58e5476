"""Figures for issue 14: bookkeeping scaling, compiled-code stack memory, exit and close
with a compile in flight, fork during compiles.

    python benches/reliability.py                 # everything but the fork stress
    python benches/reliability.py --exit-runs 40  # more exit runs
    python benches/reliability.py --forks 1000    # only the fork stress, 1,000 forks

Prints: stats() time for 2.5k/10k/20k functions; time to build 10k/40k functions that
call each other by name (build + verify); RSS before/after a deep call on the main
thread and on a second thread; interpreter exit time (end of the script to the parent
seeing the process end; median and max) with a multi-second T3 compile in flight (an
explicit compile on a daemon thread, or a promotion), next to the same script with no
compile running, and close() time for both kinds; the fork stress of
tests/test_fork_quiesce.py (forks, hung, failed children). Exit time is mostly the
interpreter's own finalisation, so it depends on the machine's load: the load average is
printed with it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import textwrap
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


# argv: "idle" (no compile), "explicit" (T3 compile of an 8k-instruction straight-line
# block, 3-4 s, on a daemon thread) or "promo" (the promoter compiling a function of nine
# branching 1,990-instruction blocks at T3, about 4 s); then "close" to time close() first.
# Prints "close MS" (when asked), then the wall-clock time at the end of the script.
EXIT_SCRIPT = textwrap.dedent(
    """
    import sys, threading, time
    import rayzor
    mode, close = sys.argv[1], sys.argv[2:] == ["close"]
    def block(first, n, ops=("add", "xor", "sub", "mul")):
        lines = [f"  v{v}: i64 = add v{v - 1}, v0" for v in range(first, first + 7)]
        lines += [f"  v{v}: i64 = {ops[v % 4]} v{v - 1}, v{v - 7}" for v in range(first + 7, first + n)]
        return lines
    top = rayzor.TieredJit.top_tier()[0]
    if mode == "promo":
        # nine 1,990-instruction blocks that branch (jump-chained blocks count as one
        # block, over the T3 limit): within both T3 limits, about 4 s at T3
        lines, v = ["fn f(i64) -> i64 {", "block0(v0: i64):"], 1
        for b in range(9):
            if b:
                lines.append(f"block{b}(v{v}: i64):")
                v += 1
            lines += block(v, 1990)
            v += 1990
            if b < 8:
                lines.append(f"  v{v}: bool = lt v{v - 1}, v0")
                lines.append(f"  brif v{v}, block{b + 1}(v{v - 1}), block9(v{v - 1})")
                v += 1
            else:
                lines.append(f"  jump block9(v{v - 1})")
        lines += [f"block9(v{v}: i64):", f"  ret v{v}"]
        jit = rayzor.TieredJit(rayzor.parse("\\n".join(lines + ["}"])), rayzor.TieredConfig.development())
        deadline = time.monotonic() + 30
        while not (jit.tier_of("f") == top - 1 and jit._core.busy()):
            jit["f"](3)
            assert time.monotonic() < deadline, "no promotion to the top tier started"
        time.sleep(0.2)
        assert jit._core.busy(), "the top-tier compile is over already"
    else:
        src = "\\n".join(["fn f(i64) -> i64 {", "block0(v0: i64):", *block(1, 7999), "  ret v7999", "}"])
        jit = rayzor.TieredJit(rayzor.parse(src), rayzor.TieredConfig(enable_background_optimization=False))
        def compile_f():
            try:
                jit.compile("f", top)
            except rayzor.ClosedError:
                pass
        if mode == "explicit":
            threading.Thread(target=compile_f, daemon=True).start()
            time.sleep(0.3)
    if close:
        start = time.perf_counter()
        jit.close()
        print(f"close {1000 * (time.perf_counter() - start):.3f}")
    print(f"end {time.time():.6f}", flush=True)
    """
)


def exit_figures(runs: int) -> None:
    """Exit (and close) times, the kinds interleaved run by run."""
    kinds = ["idle", "explicit", "promo", "explicit:close", "promo:close"]
    exits: dict[str, list[float]] = {k: [] for k in kinds}
    closes: dict[str, list[float]] = {k: [] for k in kinds}
    load = os.getloadavg()[0]
    for _ in range(runs):
        for kind in kinds:
            p = subprocess.Popen(
                [sys.executable, "-c", EXIT_SCRIPT, *kind.split(":")], stdout=subprocess.PIPE, text=True
            )
            assert p.stdout is not None
            out = p.stdout.read()
            p.wait()
            ended = time.time()
            assert p.returncode == 0, (kind, p.returncode, out)
            fields = dict(line.split() for line in out.splitlines())
            exits[kind].append(1000 * (ended - float(fields["end"])))
            if "close" in fields:
                closes[kind].append(float(fields["close"]))
    load = max(load, os.getloadavg()[0])
    print(f"exit time over {runs} runs each (load average up to {load:.1f} on {os.cpu_count()} cores):")
    for kind in kinds:
        xs, cs = exits[kind], closes[kind]
        line = f"  {kind:15} exit median {statistics.median(xs):6.1f} ms, max {max(xs):6.1f} ms"
        if cs:
            line += f"; close() median {statistics.median(cs):.2f} ms, max {max(cs):.2f} ms"
        print(line)


def fork_figures(forks: int) -> None:
    from test_fork_quiesce import run_fork_stress

    print(run_fork_stress(forks, stop_at_first=False))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--exit-runs", type=int, default=20, help="runs per kind for the exit figures")
    ap.add_argument("--forks", type=int, default=0, help="run only the fork stress, with this many forks")
    args = ap.parse_args()
    if args.forks:
        fork_figures(args.forks)
        return
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
    exit_figures(args.exit_runs)


if __name__ == "__main__":
    main()
