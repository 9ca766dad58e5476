"""The tier-promotion demo: recursive fibonacci built in MIR, called repeatedly while
the background promoter moves it up the tiers. Every figure shown is measured."""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from .config import TieredConfig
from .examples import fib_module, py_fib
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
