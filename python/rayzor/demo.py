"""The tier-promotion demos. Every figure shown is measured.

- ``fib`` (default): recursive fibonacci built in MIR, called repeatedly while the
  background promoter moves it up the tiers.
- ``loop``: one long call of the benchmarks' ``loop`` workload on a fresh jit; its hot
  loop moves up the tiers inside that call by on-stack replacement (OSR), and the events
  are printed as they are published.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .config import TieredConfig
from .examples import fib_module, loop_sum_module, py_fib
from .jit import TieredJit
from .jit_types import Tier
from .stats import Stats


@dataclass
class Promotion:
    tier: Tier
    #: Index of the first call that started after the new code was published.
    at_call: int
    #: Milliseconds since the jit was created when the code was published.
    t_ms: float
    compile_ms: float
    reason: str


@dataclass
class DemoResult:
    preset: str
    n: int
    calls: int
    final_tier: Tier
    result_ok: bool
    latencies_ns: list[int]
    tiers: list[Tier]
    promotions: list[Promotion] = field(default_factory=list)
    stats: Stats | None = None

    def median_us_by_tier(self) -> dict[Tier, float]:
        by: dict[Tier, list[int]] = {}
        for lat, tier in zip(self.latencies_ns, self.tiers, strict=True):
            by.setdefault(tier, []).append(lat)
        return {t: statistics.median(v) / 1e3 for t, v in sorted(by.items())}

    def to_json(self) -> dict[str, Any]:
        return {
            "final_tier": str(self.final_tier),
            "result_ok": self.result_ok,
            "promotions": [
                {
                    "tier": str(p.tier),
                    "at_call": p.at_call,
                    "t_ms": round(p.t_ms, 3),
                    "compile_ms": round(p.compile_ms, 3),
                    "reason": p.reason,
                }
                for p in self.promotions
            ],
            "preset": self.preset,
            "n": self.n,
            "calls": self.calls,
            "median_us_by_tier": {str(t): round(v, 3) for t, v in self.median_us_by_tier().items()},
        }


def run(preset: str = "development", calls: int = 2000, n: int = 20, live: bool = True) -> DemoResult:
    config = TieredConfig.development() if preset == "development" else TieredConfig.production()
    module = fib_module()
    expected = py_fib(n)
    latencies: list[int] = []
    tiers: list[Tier] = []
    call_start_s: list[float] = []
    ok = True
    with TieredJit(module, config) as jit:
        fib = jit["fib"]
        created = time.perf_counter() - jit._core.uptime()
        display = _Live(preset, n, calls) if live else None
        try:
            for i in range(calls):
                tier = jit.tier_of("fib")
                t0 = time.perf_counter_ns()
                result = fib(n)
                dt = time.perf_counter_ns() - t0
                call_start_s.append(t0 / 1e9 - created)
                ok &= result == expected
                latencies.append(dt)
                tiers.append(tier)
                if display is not None and (i % 25 == 0 or i == calls - 1):
                    display.update(i + 1, tier, latencies, tiers, jit, ok)
        finally:
            if display is not None:
                display.stop()
        jit.wait_idle(timeout=5)
        stats = jit.stats()
        promotions = []
        for e in stats.events:
            if e.reason == "initial" or not e.ok:
                continue
            at_call = next((i for i, s in enumerate(call_start_s) if s >= e.at_seconds), calls)
            promotions.append(
                Promotion(
                    e.to_tier,
                    at_call,
                    e.at_seconds * 1e3,
                    e.compile_seconds * 1e3,
                    e.reason if e.heat is None else f"{e.hotness}, heat {e.heat}",
                )
            )
        final = jit.tier_of("fib")
    return DemoResult(preset, n, calls, final, ok, latencies, tiers, promotions, stats)


class _Live:
    """A rich live panel; falls back to plain progress lines without rich."""

    def __init__(self, preset: str, n: int, calls: int) -> None:
        self.preset, self.n, self.calls = preset, n, calls
        self.last_plain = 0.0
        try:
            from rich.console import Console
            from rich.live import Live

            self.console = Console()
            self.live: Any = Live(console=self.console, refresh_per_second=10, transient=False)
            self.live.start()
        except ImportError:
            self.live = None

    def update(
        self, done: int, tier: Tier, lat: list[int], tiers: list[Tier], jit: TieredJit, ok: bool
    ) -> None:
        by: dict[Tier, list[int]] = {}
        for v, t in zip(lat, tiers, strict=True):
            by.setdefault(t, []).append(v)
        med = {t: statistics.median(v[-200:]) / 1e3 for t, v in by.items()}
        events = [e for e in jit.events() if e.reason != "initial"]
        if self.live is None:
            now = time.monotonic()
            if now - self.last_plain > 0.5 or done == self.calls:
                self.last_plain = now
                lat_s = ", ".join(f"{t}: {m:.1f} us" for t, m in sorted(med.items()))
                print(f"call {done}/{self.calls}  running {tier}  median latency {lat_s}")
            return
        from rich.table import Table

        table = Table(title=f"fib({self.n}) under the {self.preset} preset: call {done}/{self.calls}")
        table.add_column("tier")
        table.add_column("calls from Python", justify="right")
        table.add_column("median latency (us)", justify="right")
        for t in Tier:
            if t in by:
                mark = " <- running" if t == tier else ""
                table.add_row(f"{t}{mark}", str(len(by[t])), f"{med[t]:.1f}")
        for e in events:
            status = "ok" if e.ok else f"failed: {e.error}"
            table.add_row(
                f"promoted to {e.to_tier}",
                f"at {e.at_seconds * 1e3:.1f} ms",
                f"compile {e.compile_seconds * 1e3:.2f} ms, {status}",
            )
        table.caption = "results correct" if ok else "WRONG RESULT"
        self.live.update(table)

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()


def write_plot(result: DemoResult, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.5))
    colors = {Tier.T0: "tab:red", Tier.T1: "tab:orange", Tier.T2: "tab:blue", Tier.T3: "tab:green"}
    for t in Tier:
        xs = [i for i, tt in enumerate(result.tiers) if tt == t]
        if xs:
            ax.scatter(
                xs, [result.latencies_ns[i] / 1e3 for i in xs], s=4, color=colors[t], label=f"call at {t}"
            )
    for p in result.promotions:
        ax.axvline(p.at_call, color=colors[p.tier], linestyle="--", linewidth=1)
        ax.annotate(
            f"{p.tier} at {p.t_ms:.0f} ms",
            (p.at_call, ax.get_ylim()[1]),
            rotation=90,
            va="top",
            ha="right",
            fontsize=8,
        )
    ax.set_yscale("log")
    ax.set_xlabel("call number")
    ax.set_ylabel(f"latency of fib({result.n}) (us, log)")
    ax.set_title(f"Rayzor tier promotion under the {result.preset} preset")
    ax.legend(loc="upper right", markerscale=3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_json(result: DemoResult, path: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(result.to_json(), fh, indent=2)


# ---------------------------------------------------------------------------
# --workload loop: on-stack replacement inside one call
# ---------------------------------------------------------------------------

LOOP_N = 50_000_000


def py_loop_sum(n: int) -> int:
    """``loop_sum(n)`` without running the loop: bit ``b`` of ``i ^ (i >> 3)`` is bit ``b``
    of ``i`` xor bit ``b + 3``, which is set for exactly half of every run of ``2**(b+4)``
    consecutive ``i`` (aligned); the partial run is counted in stretches of ``2**b``."""
    total = 0
    for bit in range(64):
        step = 1 << bit
        period = step << 4
        full, rest = divmod(n, period)
        ones = full * (period // 2)
        for start in range(0, rest, step):
            k = start >> bit
            if (k ^ (k >> 3)) & 1:
                ones += min(step, rest - start)
        total += ones << bit
    total &= (1 << 64) - 1
    return total - (1 << 64) if total >= 1 << 63 else total


@dataclass
class LoopEvent:
    """A compile published while (or after) the demo's one call ran."""

    reason: str
    from_tier: Tier | None
    to_tier: Tier
    #: Milliseconds since the call started (negative: before it, e.g. the initial T0 compile).
    at_ms: float
    compile_ms: float
    during_call: bool
    loop_header: int | None = None
    backedges: int | None = None
    heat: int | None = None

    def describe(self) -> str:
        src = "-" if self.from_tier is None else str(self.from_tier)
        if self.reason == "osr":
            what = (
                f"OSR entry published: {src} -> {self.to_tier}, loop header block{self.loop_header}, "
                f"after {self.backedges:,} back-edges"
            )
        elif self.reason == "promotion":
            what = f"promotion {src} -> {self.to_tier} (heat {self.heat:,}; used from the next call)"
        else:
            what = f"{self.reason} compile at {self.to_tier}"
        when = "" if self.during_call else " (after the call)"
        return f"{self.at_ms:+9.1f} ms  {what}, compiled in {self.compile_ms:.2f} ms{when}"


@dataclass
class LoopDemoResult:
    preset: str
    n: int
    result: int
    result_ok: bool
    #: The one call, from its start to its return.
    call_ms: float
    events: list[LoopEvent]
    #: Every function compiled at T3 up front, then one call timed (None without T3).
    forced_t3_compile_ms: float | None
    forced_t3_run_ms: float | None
    #: The same first call on a fresh jit with ``osr=False``.
    osr_off_call_ms: float | None
    stats: Stats | None = None

    @property
    def t3_osr_at_ms(self) -> float | None:
        """When the first T3 OSR entry was published during the call (ms into the call)."""
        t = [e.at_ms for e in self.events if e.reason == "osr" and e.to_tier == Tier.T3 and e.during_call]
        return min(t) if t else None

    @property
    def ratio(self) -> float | None:
        """The call / (forced-T3 run + T3 OSR entry publication): 1.0 is as good as having
        had T3 code from the moment it was published."""
        if self.forced_t3_run_ms is None or self.t3_osr_at_ms is None:
            return None
        return self.call_ms / (self.forced_t3_run_ms + self.t3_osr_at_ms)

    def to_json(self) -> dict[str, Any]:
        return {
            "workload": "loop",
            "preset": self.preset,
            "n": self.n,
            "result": self.result,
            "result_ok": self.result_ok,
            "call_ms": round(self.call_ms, 3),
            "events": [
                {
                    "reason": e.reason,
                    "from_tier": None if e.from_tier is None else str(e.from_tier),
                    "to_tier": str(e.to_tier),
                    "at_ms": round(e.at_ms, 3),
                    "compile_ms": round(e.compile_ms, 3),
                    "during_call": e.during_call,
                    "loop_header": e.loop_header,
                    "backedges": e.backedges,
                    "heat": e.heat,
                }
                for e in self.events
            ],
            "t3_osr_at_ms": self.t3_osr_at_ms,
            "forced_t3_compile_ms": self.forced_t3_compile_ms,
            "forced_t3_run_ms": self.forced_t3_run_ms,
            "osr_off_call_ms": self.osr_off_call_ms,
            "ratio": self.ratio,
        }


def _loop_event(e: Any, call_start_s: float, call_end_s: float | None) -> LoopEvent:
    return LoopEvent(
        reason=e.reason,
        from_tier=e.from_tier,
        to_tier=e.to_tier,
        at_ms=(e.at_seconds - call_start_s) * 1e3,
        compile_ms=e.compile_seconds * 1e3,
        during_call=call_end_s is None or e.at_seconds <= call_end_s,
        loop_header=e.loop_header,
        backedges=e.backedges,
        heat=e.heat,
    )


def run_loop(
    preset: str = "development",
    n: int = LOOP_N,
    live: bool = True,
    compare: bool = True,
) -> LoopDemoResult:
    """One call of ``loop_sum(n)`` on a fresh jit; with ``live``, print each compile as it
    is published. ``compare`` also times forced-T3 code and the call with ``osr=False``."""
    config = TieredConfig.development() if preset == "development" else TieredConfig.production()
    module = loop_sum_module()
    expected = py_loop_sum(n)
    if live:
        print(f"loop_sum({n:,}): one call on a fresh {preset}-preset jit (OSR on)", flush=True)
    with TieredJit(module, config) as jit:
        fn = jit["loop_sum"]
        fn.gil = "release"  # the main thread watches the events while the call runs
        created = time.perf_counter() - jit._core.uptime()
        box: dict[str, Any] = {}

        def call() -> None:
            t0 = time.perf_counter()
            box["start"] = t0 - created
            try:
                box["result"] = fn(n)
            except BaseException as e:  # re-raised in the caller's thread
                box["error"] = e
            box["end"] = time.perf_counter() - created
            box["call_s"] = time.perf_counter() - t0

        worker = threading.Thread(target=call, name="rayzor-demo-loop")
        seen = 0
        worker.start()
        try:
            while worker.is_alive() or "end" not in box:
                worker.join(timeout=0.002)
                if live and "start" in box:
                    new = jit.events()[seen:]
                    seen += len(new)
                    for e in new:
                        if e.reason != "initial":
                            print("  " + _loop_event(e, box["start"], None).describe(), flush=True)
        except KeyboardInterrupt:
            worker.join()  # a running call cannot be interrupted: let it end before closing the jit
            raise
        if "error" in box:
            raise box["error"]
        jit.wait_idle(timeout=10)
        events = jit.events()
        if live:
            for e in events[seen:]:
                if e.reason != "initial":
                    print("  " + _loop_event(e, box["start"], box["end"]).describe(), flush=True)
        stats = jit.stats()
    loop_events = [_loop_event(e, box["start"], box["end"]) for e in events if e.ok]
    result = box["result"]
    call_ms = box["call_s"] * 1e3
    if live:
        ok = "correct" if result == expected else f"WRONG, expected {expected}"
        print(f"call returned {result} ({ok}) after {call_ms:.1f} ms", flush=True)
    t3_compile = t3_run = off_ms = None
    if compare:
        top, _ = TieredJit.top_tier()
        if top == Tier.T3:
            with TieredJit(module, TieredConfig(enable_background_optimization=False)) as jit:
                t3_compile = jit.compile("loop_sum", Tier.T3) * 1e3
                f3 = jit["loop_sum"]
                f3(n)  # warm-up
                t0 = time.perf_counter()
                f3(n)
                t3_run = (time.perf_counter() - t0) * 1e3
        with TieredJit(module, dataclasses.replace(config, osr=False)) as jit:
            f = jit["loop_sum"]
            t0 = time.perf_counter()
            f(n)
            off_ms = (time.perf_counter() - t0) * 1e3
    return LoopDemoResult(
        preset,
        n,
        result,
        result == expected,
        call_ms,
        loop_events,
        t3_compile,
        t3_run,
        off_ms,
        stats,
    )


def print_loop_summary(r: LoopDemoResult) -> None:
    print()
    print(f"one call of loop_sum({r.n:,}), {r.preset} preset, OSR on: {r.call_ms:.1f} ms")
    if r.osr_off_call_ms is not None:
        print(f"the same first call with osr=False: {r.osr_off_call_ms:.1f} ms")
    if r.forced_t3_run_ms is not None and r.forced_t3_compile_ms is not None:
        print(
            f"forced T3 (compiled first in {r.forced_t3_compile_ms:.1f} ms): "
            f"{r.forced_t3_run_ms:.1f} ms per call"
        )
    if r.ratio is not None and r.t3_osr_at_ms is not None and r.forced_t3_run_ms is not None:
        print(
            f"first T3 OSR entry published {r.t3_osr_at_ms:.1f} ms into the call: call / (forced-T3 run + "
            f"publication) = {r.call_ms:.1f} / {r.forced_t3_run_ms + r.t3_osr_at_ms:.1f} = {r.ratio:.2f}x"
        )
    elif not any(e.reason == "osr" and e.during_call for e in r.events):
        print("no OSR entry was published while the call ran (a short call, or OSR is off)")
    print(f"result correct: {r.result_ok}")


def write_loop_plot(r: LoopDemoResult, path: str) -> None:
    """A timeline: the call (OSR on), the call with OSR off and the forced-T3 run as bars,
    with the compiles published during the call as vertical lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [("OSR on (this call)", r.call_ms, "tab:green")]
    if r.osr_off_call_ms is not None:
        rows.append(("osr=False", r.osr_off_call_ms, "tab:red"))
    if r.forced_t3_run_ms is not None:
        rows.append(("forced T3 run", r.forced_t3_run_ms, "tab:blue"))
    fig, ax = plt.subplots(figsize=(10, 3.5))
    for i, (_, ms, color) in enumerate(rows):
        ax.barh(i, ms, color=color, alpha=0.7)
        ax.text(ms, i, f" {ms:.1f} ms", va="center", fontsize=8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([label for label, _, _ in rows])
    colors = {Tier.T1: "tab:orange", Tier.T2: "tab:purple", Tier.T3: "tab:green"}
    for e in r.events:
        if e.during_call and e.reason in ("osr", "promotion"):
            style = "-" if e.reason == "osr" else ":"
            ax.axvline(e.at_ms, color=colors.get(e.to_tier, "gray"), linestyle=style, linewidth=1)
            ax.annotate(
                f"{e.reason} -> {e.to_tier}",
                (e.at_ms, len(rows) - 0.5),
                rotation=90,
                va="top",
                ha="right",
                fontsize=7,
            )
    ax.set_xlabel("ms since the call started")
    ax.set_title(f"loop_sum({r.n:,}) in one call, {r.preset} preset: on-stack replacement")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_loop_json(r: LoopDemoResult, path: str) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(r.to_json(), fh, indent=2)


def main_loop(args: Any) -> int:
    """``python -m rayzor demo --workload loop`` (``args``: the demo's parsed options)."""
    n = LOOP_N if args.n is None else args.n
    if n < 0:
        print(f"error: --n must not be negative, got {n}", file=sys.stderr)
        return 2
    r = run_loop(args.preset, n, live=not args.quiet)
    print_loop_summary(r)
    if args.json:
        write_loop_json(r, args.json)
        print(f"wrote {args.json}")
    if args.plot:
        write_loop_plot(r, args.plot)
        print(f"wrote {args.plot}")
    return 0 if r.result_ok else 1
