"""Typed statistics of a :class:`rayzor.TieredJit`."""

from __future__ import annotations

from dataclasses import dataclass, field

from .jit_types import Tier


def _fmt_ns(ns: int) -> str:
    if ns >= 1_000_000:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1_000:
        return f"{ns / 1e3:.2f} us"
    return f"{ns} ns"


@dataclass(frozen=True)
class CompileEvent:
    """One compile: the initial T0 compile, a requested one, a promotion, or an OSR entry
    (``reason == "osr"``: a continuation for loop ``loop_header`` of the function's code at
    ``from_tier``, compiled at ``to_tier`` once that loop had counted ``backedges``)."""

    function: str
    from_tier: Tier | None
    to_tier: Tier
    #: Seconds since the jit was created when the code was published (or failed).
    at_seconds: float
    compile_seconds: float
    #: "initial", "requested", "promotion", "osr", "size_limit": not compiled because
    #: the function is larger than the tier compiles (``rayzor.T3_MAX_SIZE``,
    #: ``rayzor.T3_MAX_BLOCK``); it stays
    #: where it was and ``error`` says why; or "demoted": the tier policy measured the
    #: promoted code (``from_tier``) slower than the code it replaced and put that
    #: (``to_tier``) back.
    reason: str
    #: For promotions: the heat that triggered it and its hotness class.
    heat: int | None = None
    hotness: str | None = None
    #: The backend's message when the compile failed (the function kept its code).
    error: str | None = None
    #: Calls of the function (all tiers) when the code was published.
    calls_at: int = 0
    #: For OSR entries: the loop header block and its back-edge count.
    loop_header: int | None = None
    backedges: int | None = None
    #: For demotions: median nanoseconds of a timed host call with the demoted code
    #: and with the code put back, and seconds until the tier is retried (None: never).
    new_cost_ns: int | None = None
    old_cost_ns: int | None = None
    retry_seconds: float | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def describe(self) -> str:
        src = "none" if self.from_tier is None else str(self.from_tier)
        why = self.reason
        if self.heat is not None:
            why = f"{self.hotness} (heat {self.heat:,})"
        if self.reason == "osr":
            why = f"OSR entry for the loop at block{self.loop_header} after {self.backedges:,} back-edges"
        if self.reason == "demoted" and self.new_cost_ns is not None and self.old_cost_ns is not None:
            retry = "never" if self.retry_seconds is None else f"in {self.retry_seconds:g} s"
            why = (
                f"demoted: {self.from_tier} code {_fmt_ns(self.new_cost_ns)} per call, "
                f"{self.to_tier} {_fmt_ns(self.old_cost_ns)} "
                f"({(self.new_cost_ns / max(self.old_cost_ns, 1) - 1) * 100:+.1f}%), retry {retry}"
            )
        status = "ok" if self.ok else f"FAILED: {self.error}"
        return (
            f"{self.function}: {src} -> {self.to_tier} at {self.at_seconds * 1e3:.1f} ms, "
            f"compiled in {self.compile_seconds * 1e3:.2f} ms, {why}, {status}"
        )


@dataclass(frozen=True)
class FunctionStats:
    name: str
    tier: Tier
    hotness: str
    heat: int
    #: Entries into each tier's code, counted by the code itself.
    calls: dict[Tier, int]
    backedges: int
    #: Latest compile time in seconds per tier.
    compile_seconds: dict[Tier, float]
    code_bytes: dict[Tier, int]
    promotions: list[CompileEvent] = field(default_factory=list)
    failures: list[CompileEvent] = field(default_factory=list)
    #: OSR entries published for the function's loops.
    osr: list[CompileEvent] = field(default_factory=list)
    #: Promotions the tier policy undid.
    demotions: list[CompileEvent] = field(default_factory=list)

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())


@dataclass(frozen=True)
class Stats:
    functions: dict[str, FunctionStats]
    events: list[CompileEvent]
    #: How many functions are at each tier now.
    tier_distribution: dict[Tier, int]
    top_tier: Tier
    #: Why the ladder stops below T3, when it does.
    notes: list[str]
    uptime_seconds: float
    #: Bytes reserved for the calling thread's compiled-code stack (4 GiB unless the
    #: address space is limited, e.g. by ``ulimit -v``).
    stack_bytes: int = 4 << 30
    #: Nested calls that work in every tier even with frames of the largest size:
    #: ``MAX_CALL_DEPTH`` unless the stack had to be smaller.
    guaranteed_depth: int = 10_000

    @property
    def total_compile_seconds(self) -> float:
        return sum(e.compile_seconds for e in self.events)

    @property
    def total_calls(self) -> int:
        return sum(f.total_calls for f in self.functions.values())

    def __str__(self) -> str:
        tiers = list(Tier)
        head = [
            "function",
            "tier",
            "hotness",
            "heat",
            *[f"calls {t}" for t in tiers],
            *[f"ms {t}" for t in tiers],
        ]
        rows = []
        for f in self.functions.values():
            rows.append(
                [
                    f.name,
                    str(f.tier),
                    f.hotness,
                    f"{f.heat:,}",
                    *[f"{f.calls.get(t, 0):,}" for t in tiers],
                    *[f"{f.compile_seconds[t] * 1e3:.2f}" if t in f.compile_seconds else "-" for t in tiers],
                ]
            )
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

        def line(cells: list[str]) -> str:
            return "  ".join(
                c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
            )

        out = [line(head), "  ".join("-" * w for w in widths), *map(line, rows)]
        dist = ", ".join(f"{t}: {n}" for t, n in self.tier_distribution.items())
        out.append("")
        out.append(
            f"tiers: {dist}; compiles: {len(self.events)}, "
            f"{self.total_compile_seconds * 1e3:.2f} ms in total; uptime {self.uptime_seconds:.2f} s"
        )
        promos = [e for e in self.events if e.reason != "initial"]
        if promos:
            out.append("events:")
            out.extend("  " + e.describe() for e in promos)
        out.extend(f"note: {n}" for n in self.notes)
        return "\n".join(out)
