"""Timing helpers shared by ``run.py`` and ``numba_worker.py`` (no rayzor, no numba)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def measure(
    call: Callable[..., Any],
    prepare: Callable[[], tuple[Any, ...]],
    repeat: int,
    budget_s: float,
) -> tuple[list[float], Any]:
    """Run ``call(*prepare())`` and return (seconds of each measured run, last result).

    The first run is a warm-up and is discarded unless it took over a second (then it is
    a sample: caches are warm after that long). After it, runs continue until ``repeat``
    samples or until ``budget_s`` is spent (at least one sample always). ``prepare`` is
    not timed (fresh buffers for each run).
    """
    samples: list[float] = []
    args = prepare()
    t = time.perf_counter()
    result = call(*args)
    first = time.perf_counter() - t
    if first > 1.0:
        samples.append(first)
    spent = first
    while len(samples) < max(1, repeat) and (not samples or spent < budget_s):
        args = prepare()
        t = time.perf_counter()
        result = call(*args)
        dt = time.perf_counter() - t
        samples.append(dt)
        spent += dt
    return samples, result


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1e3


def time_to_result(
    start: Callable[[], Callable[..., Any]], arg_sets: list[tuple[Any, ...]]
) -> tuple[list[float], list[float], list[Any]]:
    """Cold start: ``fn = start()`` then ``fn(*args)`` for each prepared argument set.

    Returns (cumulative ms after each call, ms of each call alone, results); the clock
    starts before ``start()``, so creating/compiling is included in the first entry.
    """
    cumulative, each, results = [], [], []
    t0 = time.perf_counter()
    fn = start()
    for args in arg_sets:
        t = time.perf_counter()
        results.append(fn(*args))
        now = time.perf_counter()
        each.append((now - t) * 1e3)
        cumulative.append((now - t0) * 1e3)
    return cumulative, each, results


def _call_loop(f: Callable[[int], int], n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        f(1)
    return time.perf_counter() - t


def _empty_loop(f: Callable[[int], int], n: int) -> float:
    t = time.perf_counter()
    for _ in range(n):
        pass
    return time.perf_counter() - t


def call_overhead_interleaved(
    fns: dict[str, Callable[[int], int]], n: int, rounds: int = 7
) -> dict[str, float]:
    """Nanoseconds per ``f(1)`` for each of ``fns``, measured in turn round by round (the
    order reversed every other round) so they share the machine's conditions: the median
    over rounds of each round's loop-of-calls minus that round's empty loop."""
    per: dict[str, list[float]] = {name: [] for name in fns}
    for f in fns.values():
        assert f(1) == 1
    names = list(fns)
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            calls = _call_loop(fns[name], n)
            empty = _empty_loop(fns[name], n)
            per[name].append(max(0.0, (calls - empty) / n * 1e9))
    return {name: statistics.median(v) for name, v in per.items()}


def call_overhead_ns(f: Callable[[int], int], n: int, rounds: int = 7) -> float:
    """Nanoseconds per ``f(1)`` from Python: best loop-of-calls minus best empty loop."""
    assert f(1) == 1
    calls = min(_call_loop(f, n) for _ in range(rounds))
    empty = min(_empty_loop(f, n) for _ in range(rounds))
    return max(0.0, (calls - empty) / n * 1e9)
