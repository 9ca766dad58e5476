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
