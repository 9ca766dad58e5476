"""Small shared types."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum


class Tier(IntEnum):
    """Compilation tiers, ordered: ``Tier.T0 < Tier.T1 < Tier.T2 < Tier.T3``."""

    T0 = 0  #: Cranelift, no optimisation, single-pass register allocation.
    T1 = 1  #: Cranelift ``opt_level=speed``, backtracking register allocation.
    T2 = 2  #: T1 plus MIR optimisation: inlining, constant folding, dead code.
    T3 = 3  #: LLVM at O3.

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class FunctionInfo:
    """What is known about one function's compiled code."""

    name: str
    tier: Tier
    #: Wall time in seconds of the latest compile at each tier that compiled it.
    compile_seconds: dict[Tier, float] = field(default_factory=dict)
    #: Machine-code bytes of the latest compile at each tier.
    code_bytes: dict[Tier, int] = field(default_factory=dict)
    #: Entries into each tier's code, counted by the code (approximate under contention).
    #: T3 code is not promoted and does not count its calls (a count per call costs
    #: call-heavy code up to 2x), so T3 never appears here.
    calls: dict[Tier, int] = field(default_factory=dict)
    #: Loop back-edges taken, all tiers together.
    backedges: int = 0

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())


@dataclass(frozen=True)
class OsrPoint:
    """The on-stack-replacement state of one loop of a function's code at one tier."""

    #: The tier of the code that counts this loop and transfers from it.
    source: Tier
    #: The loop header block (``blockN`` in the MIR that code runs: T2's is optimised).
    loop_header: int
    #: Back-edges of the loop counted in that code (approximate under contention).
    backedges: int
    #: The tier of the OSR entry published for it, if any.
    entry: Tier | None


@dataclass(frozen=True)
class MachineCode:
    """A copy of one function's machine code (:meth:`TieredJit.machine_code`)."""

    name: str
    tier: Tier
    #: Where the code is: the function's entry address while it is installed.
    address: int
    code: bytes
    #: True for the code calls run now; False for code compiled only to be looked at
    #: (never installed, already freed: ``address`` is where it was).
    installed: bool


def _share(n: int, total: int) -> float | None:
    return n / total if total else None


@dataclass(frozen=True)
class BranchProfile:
    """Taken / not-taken counts of one ``brif`` (taken: to its first, *then* block)."""

    #: The instruction (``instN`` of the function as written) and the block holding it.
    inst: int
    block: int
    #: The blocks the branch goes to when its condition is true / false.
    then_block: str
    else_block: str
    taken: int
    not_taken: int

    @property
    def taken_probability(self) -> float | None:
        """The share of executions that went to ``then_block`` (None: never executed)."""
        return _share(self.taken, self.taken + self.not_taken)


@dataclass(frozen=True)
class SwitchProfile:
    """Hit counts of one ``switch``: per case key, in the instruction's case order, and the
    default."""

    inst: int
    block: int
    #: (case key as written, hits), in the instruction's order.
    cases: list[tuple[int, int]]
    default: int

    @property
    def total(self) -> int:
        return sum(n for _, n in self.cases) + self.default

    @property
    def case_shares(self) -> dict[int, float]:
        """The share of executions that took each case key (empty: never executed)."""
        t = self.total
        return {k: n / t for k, n in self.cases} if t else {}

    @property
    def default_share(self) -> float | None:
        return _share(self.default, self.total)


@dataclass(frozen=True)
class IndirectProfile:
    """The most frequent targets of one ``call_indirect`` site (through a MIR function
    pointer), most frequent first, and the calls that went to any other target."""

    inst: int
    block: int
    #: (function name, calls), most frequent first (at most 2, as HotSpot's
    #: ``TypeProfileWidth``; a target seen late replaces the least frequent one once
    #: the misses since the last replacement outnumber it).
    targets: list[tuple[str, int]]
    misses: int

    @property
    def total(self) -> int:
        return sum(n for _, n in self.targets) + self.misses

    @property
    def target_shares(self) -> list[tuple[str, float]]:
        """(function name, share of the site's calls), most frequent first."""
        t = self.total
        return [(f, n / t) for f, n in self.targets] if t else []

    @property
    def miss_share(self) -> float | None:
        """The share of calls that went to a target not in ``targets``."""
        return _share(self.misses, self.total)


@dataclass(frozen=True)
class CallProfile:
    """Calls made by one direct ``call`` site of a module function."""

    inst: int
    block: int
    callee: str
    calls: int


@dataclass(frozen=True)
class FunctionProfile:
    """How one function ran in its profiling tier (T0), as
    :meth:`TieredJit.profile` reports it: the profile T2 and T3 compile with.

    T0 code counts every event (whatever ``sample_rate``: a sampling decision
    costs as much as the count), but only while the function runs there, and threads
    may lose an update: read the ratios (probabilities, shares). Sites never reached
    are absent; with ``sample_rate = 0`` no code collects anything. A ``switch`` of
    more than 1,024 cases is not profiled (a count per case would double its
    compile time), so it has no entry in ``switches``."""

    name: str
    #: Entries into the function's code at the profiling tiers (the call counters:
    #: at T0, sampled by ``sample_rate``).
    entries: int
    branches: list[BranchProfile] = field(default_factory=list)
    switches: list[SwitchProfile] = field(default_factory=list)
    indirect_calls: list[IndirectProfile] = field(default_factory=list)
    calls: list[CallProfile] = field(default_factory=list)

    def __str__(self) -> str:
        lines = [f"profile of {self.name}: {self.entries} entries"]
        for b in self.branches:
            p = b.taken_probability
            lines.append(
                f"  inst{b.inst} (block{b.block}) brif: taken {p:.1%} -> {b.then_block}, "
                f"else {b.else_block} ({b.taken + b.not_taken} executions)"
                if p is not None
                else f"  inst{b.inst} brif: never executed"
            )
        for s in self.switches:
            shares = ", ".join(f"{k}: {v:.1%}" for k, v in s.case_shares.items())
            d = s.default_share or 0.0
            lines.append(f"  inst{s.inst} (block{s.block}) switch: {shares}, default: {d:.1%}")
        for c in self.indirect_calls:
            shares = ", ".join(f"{f}: {v:.1%}" for f, v in c.target_shares)
            lines.append(
                f"  inst{c.inst} (block{c.block}) call_indirect: {shares}, "
                f"other: {c.miss_share or 0.0:.1%} ({c.total} calls)"
            )
        for k in self.calls:
            lines.append(f"  inst{k.inst} (block{k.block}) call {k.callee}: {k.calls} calls")
        return "\n".join(lines)
