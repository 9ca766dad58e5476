"""Native execution: :class:`TieredJit` compiles a module, runs it, and promotes hot
functions in the background."""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from . import _rayzor
from ._rayzor import MAX_CALL_DEPTH, JitFunction, Module
from .config import TieredConfig
from .jit_types import (
    BranchProfile,
    CallProfile,
    FunctionInfo,
    FunctionProfile,
    IndirectProfile,
    MachineCode,
    OsrPoint,
    SwitchProfile,
    Tier,
)
from .stats import CompileEvent, FunctionStats, Stats

log = logging.getLogger("rayzor")

_live: weakref.WeakSet[TieredJit] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    # Stop promoter threads before the interpreter finalises. Nothing compiled from
    # now on will run: closing waits for no compile in progress, and those compiles
    # drop to the lowest priority so that they do not slow the finalisation down (a T3
    # compile may have seconds to go; the process ends without waiting for it).
    _rayzor._process_exiting()
    for jit in list(_live):
        jit.close()


class TieredJit:
    """Compiles every function of a verified module at T0, runs them natively, and
    promotes hot ones (T1, T2, T3) in the background under ``config``.

    ``jit["fib"](30)`` calls a function; ``jit.compile("fib", Tier.T1)`` recompiles it
    now. Either way every caller, Python or compiled code, uses the new code from its
    next call on; calls already running finish in the old code. Use it as a context
    manager, or call :meth:`close`.
    """

    def __init__(
        self,
        module: Module,
        config: TieredConfig | None = None,
        *,
        host: Mapping[str, Any] | None = None,
    ) -> None:
        if config is None:
            config = TieredConfig()
        if not isinstance(config, TieredConfig):
            raise TypeError(f"config must be a rayzor.TieredConfig, got {type(config).__name__}")
        self.config = config
        self._core = _rayzor.Jit(module, host, config._to_raw())
        if config.perf_map:
            self._core.enable_perf_map()
        self._functions: dict[str, JitFunction] = {}
        self._logged = 0
        self._log_lock = threading.Lock()
        self._stop = threading.Event()
        self._logger: threading.Thread | None = None
        if config.verbosity > 0 and config.enable_background_optimization:
            self._logger = threading.Thread(target=self._log_loop, name="rayzor-log", daemon=True)
            self._logger.start()
        _live.add(self)

    def __getitem__(self, name: str) -> JitFunction:
        fn = self._functions.get(name)
        if fn is None:
            fn = self._functions[name] = self._core.function(name)
        return fn

    def __contains__(self, name: object) -> bool:
        return name in self._core.functions

    @property
    def functions(self) -> list[str]:
        return list(self._core.functions)

    def compile(self, name: str, tier: Tier | int) -> float:
        """Compile ``name`` at ``tier`` now and publish it; returns the compile time in seconds."""
        return self._core.compile(name, tier)

    def osr_points(self, name: str) -> list[OsrPoint]:
        """The OSR points of ``name``'s loops: one per loop header of its code at each tier
        it ran at, with the back-edges counted there and the tier of the entry published
        for it (None until the promoter compiled one)."""
        return [
            OsrPoint(Tier(src), header, n, None if entry is None else Tier(entry))
            for src, header, n, entry in self._core.osr_points(name)
        ]

    def _force_osr(self, after: int, tier: Tier | int) -> None:
        """Testing aid: transfer at the first back-edge at which a loop has counted ``after``
        back-edges, into OSR entries compiled at ``tier`` now (functions below ``tier`` are
        recompiled at their tier, counts start at zero). Needs ``osr=True``."""
        self._core._force_osr(after, int(tier))

    def train_profile(self, name: str, calls: Iterable[Sequence[Any]]) -> int:
        """Profile-guided optimisation from sample inputs: run ``name`` on each argument
        tuple of ``calls`` in the reference interpreter, recording how it and every function
        it calls ran (branches, switch cases, call targets), and compile those functions
        with that profile at T2 and T3 from now on (branch weights, guarded
        devirtualisation of indirect calls, inlining of hot call sites). A profile only
        changes how fast the code runs, never what it computes. Returns how many of the
        calls trapped. Recompile (or let promotion do it) for the profile to take effect."""
        return self._core.train_profile(name, [tuple(c) for c in calls])

    def clear_profile(self, name: str) -> None:
        """Forget the profile :meth:`train_profile` gave ``name``."""
        self._core.clear_profile(name)

    def _random_profiles(self, seed: int) -> None:
        """Testing aid: give every function a made-up (often contradictory) profile."""
        self._core._random_profiles(seed)

    def tier_of(self, name: str) -> Tier:
        return Tier(self._core.tier_of(name))

    def ir(self, name: str, tier: Tier | int | None = None) -> dict[str, str]:
        """The IR of ``name`` at ``tier`` (default: its current tier), stage by stage:

        - ``"mir"``: the MIR the backend compiles (after Rayzor's MIR optimiser from T2 on);
        - T0-T2: ``"clif"`` (the Cranelift IR Rayzor built) and ``"clif_opt"`` (after
          Cranelift's optimiser, what instruction selection saw);
        - T3: ``"llvm"`` and ``"llvm_opt"`` (the LLVM IR before and after ``default<O3>``).

        Compiled on demand for this call and thrown away: nothing is kept, and the
        function keeps running its own code.
        """
        return dict(self._core.ir(name, None if tier is None else int(tier)))

    def machine_code(self, name: str, tier: Tier | int | None = None) -> MachineCode:
        """A copy of the machine code of ``name``: the code calls run now when ``tier`` is
        None or the function's current tier, else a compile at ``tier`` that is not installed."""
        t, address, code, installed = self._core.code(name, None if tier is None else int(tier))
        return MachineCode(name, Tier(t), address, bytes(code), installed)

    def disassemble(self, name: str, tier: Tier | int | None = None) -> str:
        """:meth:`machine_code` as text: a header line, then one line per instruction,
        ``address:  bytes  mnemonic operands`` (Intel syntax)."""
        return self._core.disassemble(name, None if tier is None else int(tier))

    @staticmethod
    def perf_map_path() -> str:
        """``/tmp/perf-<pid>.map``, where ``TieredConfig(perf_map=True)`` writes."""
        return _rayzor.Jit.perf_map_path()

    @staticmethod
    def top_tier() -> tuple[Tier, str | None]:
        """The highest tier this build reaches, and why it is not T3 when it is not."""
        tier, why = _rayzor.Jit.top_tier()
        return Tier(tier), why

    def info(self, name: str) -> FunctionInfo:
        raw = self._core.info(name)
        seconds = raw.compile_seconds
        return FunctionInfo(
            name=name,
            tier=Tier(raw.tier),
            compile_seconds={Tier(t): s for t, s in enumerate(seconds) if s is not None},
            code_bytes={Tier(t): b for t, b in enumerate(raw.code_bytes) if seconds[t] is not None},
            calls={Tier(t): c for t, c in enumerate(raw.calls) if c},
            backedges=raw.backedges,
        )

    def profile(self, name: str) -> FunctionProfile:
        """The execution profile of ``name`` collected so far by its T0 code:
        branch probabilities, switch case shares, the most frequent ``call_indirect``
        targets and direct call counts (see :class:`FunctionProfile`)."""
        entries, rows = self._core.profile(name)
        branches: list[BranchProfile] = []
        switches: list[SwitchProfile] = []
        indirect: list[IndirectProfile] = []
        calls: list[CallProfile] = []
        for inst, block, kind, keys, names, counts in rows:
            if kind == "branch":
                branches.append(BranchProfile(inst, block, names[0], names[1], counts[0], counts[1]))
            elif kind == "switch":
                switches.append(
                    SwitchProfile(inst, block, list(zip(keys, counts[:-1], strict=True)), counts[-1])
                )
            elif kind == "indirect":
                indirect.append(
                    IndirectProfile(inst, block, list(zip(names, counts[:-1], strict=True)), counts[-1])
                )
            elif kind == "call":
                calls.append(CallProfile(inst, block, names[0], counts[0]))
        return FunctionProfile(name, entries, branches, switches, indirect, calls)

    def _set_profiling_tiers(self, tiers: list[Tier]) -> None:
        """Benchmarking aid: which tiers' code compiled from now on collects profiles
        (default ``[Tier.T0]``; only T0 and T1 can). The call and loop counters are not
        affected."""
        self._core._set_profiling_tiers(sum(1 << int(t) for t in set(tiers)))

    def events(self) -> list[CompileEvent]:
        """Every compile so far, in order."""
        return [_event(e) for e in self._core.events(0)]

    def stats(self) -> Stats:
        events = self.events()
        top, why = self.top_tier()
        functions: dict[str, FunctionStats] = {}
        by_function: dict[str, list[CompileEvent]] = {}
        for e in events:
            by_function.setdefault(e.function, []).append(e)
        for name in self.functions:
            info = self.info(name)
            heat, hotness = self._core.heat(name)
            mine = by_function.get(name, [])
            functions[name] = FunctionStats(
                name=name,
                tier=info.tier,
                hotness=hotness,
                heat=heat,
                calls=info.calls,
                backedges=info.backedges,
                compile_seconds=info.compile_seconds,
                code_bytes=info.code_bytes,
                promotions=[e for e in mine if e.reason not in ("initial", "osr", "demoted") and e.ok],
                failures=[e for e in mine if not e.ok],
                osr=[e for e in mine if e.reason == "osr" and e.ok],
                demotions=[e for e in mine if e.reason == "demoted"],
            )
        dist = {t: sum(1 for f in functions.values() if f.tier == t) for t in Tier}
        notes = [f"promotion stops at {top}: {why}"] if why else []
        stack_bytes, depth = self._core.stack()
        if depth < MAX_CALL_DEPTH:
            notes.append(
                f"compiled-code stack limited to {stack_bytes >> 20} MiB by the address space: "
                f"{depth} nested calls guaranteed for the largest frames (MIR promises {MAX_CALL_DEPTH})"
            )
        return Stats(functions, events, dist, top, notes, self._core.uptime(), stack_bytes, depth)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until the promoter has looked at the counters as they are now and every
        promotion that earned is done: True, or False if ``timeout`` passes first. It takes
        one to two check intervals even when nothing is to be done (the promoter reads the
        counters only once per interval); without a promoter it returns True at once."""
        import time

        deadline = time.monotonic() + timeout
        start = self._core.monitor_passes()
        if start is None:
            return True
        while True:
            now = self._core.monitor_passes()
            # A quiet pass that began after `start` was read saw these counters (or later).
            if now is None or (now[1] >= start[0] + 2 and not self._core.busy()):
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.001)

    def code_bytes(self) -> int:
        """Bytes of executable memory held by the current code (whole pages)."""
        return self._core.code_bytes()

    def interrupt(self, after: float | None = None) -> None:
        """Stop every call of this jit running now, on any thread: each raises
        :class:`rayzor.Trap` of kind ``interrupted`` at its next function entry or loop
        back-edge, at every tier. Calls started afterwards run normally, and so does the
        jit. Safe to call from any thread. With ``after`` (seconds), the interrupt fires
        that much later from a native thread, so it works as a deadline even while the
        call holds the GIL: ``jit.interrupt(after=0.5); jit["f"](x)``.
        SIGINT (Ctrl-C) interrupts a call on the main thread the same way and raises
        ``KeyboardInterrupt``."""
        self._core.interrupt(after)

    @property
    def closed(self) -> bool:
        return self._core.closed

    def close(self) -> None:
        """Stop the promoter and the jit: further calls and compiles raise
        :class:`rayzor.ClosedError`. Returns without waiting for a compile in progress
        (it finishes in the background and its code is discarded). Idempotent."""
        self._stop.set()
        self._core.close()
        if self._logger is not None and self._logger is not threading.current_thread():
            self._logger.join(timeout=5)
        self._flush_log()

    def __enter__(self) -> TieredJit:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _log_loop(self) -> None:
        interval = self.config.optimization_check_interval_ms / 1000
        while not self._stop.wait(interval):
            self._flush_log()

    def _flush_log(self) -> None:
        if self.config.verbosity <= 0:
            return
        with self._log_lock:
            new = self._core.events(self._logged)
            self._logged += len(new)
        for raw in new:
            e = _event(raw)
            if not e.ok:
                log.warning("%s", e.describe())
            elif e.reason in ("promotion", "osr", "demoted") or self.config.verbosity >= 2:
                log.info("%s", e.describe())


def _event(raw: _rayzor.RawEvent) -> CompileEvent:
    return CompileEvent(
        function=raw.function,
        from_tier=None if raw.from_tier is None else Tier(raw.from_tier),
        to_tier=Tier(raw.to_tier),
        at_seconds=raw.at_seconds,
        compile_seconds=raw.compile_seconds,
        reason=raw.reason,
        heat=raw.heat,
        hotness=raw.hotness,
        error=raw.error,
        calls_at=raw.calls_at,
        loop_header=raw.loop_header,
        backedges=raw.backedges,
        new_cost_ns=raw.new_cost_ns,
        old_cost_ns=raw.old_cost_ns,
        retry_seconds=raw.retry_seconds,
    )
