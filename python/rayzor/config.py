"""Tiering configuration: :class:`ProfileConfig`, :class:`TieredConfig` and presets.

Validation lives in the Rust core (one set of rules); a bad value raises
:class:`rayzor.ConfigError` naming the field and the rule.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from . import _rayzor
from .errors import ConfigError


@dataclass(frozen=True)
class ProfileConfig:
    """Thresholds on a function's *heat* (calls + loop back-edges counted by its code).

    ``heat >= warm_threshold`` promotes to T1, ``hot_threshold`` to T2,
    ``blazing_threshold`` to T3. ``sample_rate = N`` makes the code add N to the shared
    counter on every N-th loop back-edge (and T0 entry) of a thread instead of 1 on
    every one: shared counters are written N times less often; the countdown persists
    across calls and is shared by every function a thread runs, so the total stays
    within N per thread, while one function's share can be off when calls alternate in a
    fixed pattern (f then g every iteration: every 16th event may always be g's). T1 and T2 count every
    call whatever ``N`` (in optimised code a countdown per call costs more than the count).
    ``sample_rate = 0`` compiles no counting code at all; it requires
    ``enable_background_optimization=False`` (nothing could be promoted).

    ``osr_threshold``: back-edges of one loop (in the code of one tier) after which the
    promoter compiles an on-stack-replacement entry for it at the tier its function
    deserves, so a call that spends its time in that loop moves up while it runs
    (HotSpot: 60,000 / 40,000 back-edges; .NET: ~69,000).
    """

    warm_threshold: int = 2_000
    hot_threshold: int = 15_000
    blazing_threshold: int = 100_000
    sample_rate: int = 16
    osr_threshold: int = 60_000


@dataclass(frozen=True)
class TieredConfig:
    """How the background promoter works. Build one with keywords, or use a preset.

    - ``development()``: tier up after 30 / 300 / 3,000 heat (.NET tiers up after 30
      calls), count every event, check every 10 ms, two compile threads, log promotions.
    - ``production()`` (the default): HotSpot's thresholds on invocations + back-edges
      (2,000 for C1, 15,000 for C2), LLVM at 100,000 (JavaScriptCore's FTL: ~64,000),
      loop and T0 entry counters sampled 1 in 16, check every 50 ms, one compile thread,
      silent.

    ``osr=True`` (both presets) lets hot loops move up the tiers inside a running call
    (on-stack replacement; development: after 10,000 back-edges of a loop, production:
    60,000). ``osr=False`` compiles no OSR points: code changes tier only at calls.

    Never slower: where a function's climb up the tiers ends, the new code is on
    probation until host calls with the same (non-pointer) arguments have been timed with
    it and with the code the function ran before the climb (T1 or T2), alternately;
    when the new code is slower by more than ``demotion_margin_pct`` percent (both
    presets: 4; 0 turns the policy off) the previous code is put back (a ``demoted``
    event with both times), and the tier is retried after ``demotion_backoff_ms``
    (development: 2 s, production: 10 s), doubled after each demotion, never after
    three.
    """

    enable_background_optimization: bool = True
    optimization_check_interval_ms: int = 50
    max_parallel_optimizations: int = 1
    profile_config: ProfileConfig = field(default_factory=ProfileConfig)
    #: On-stack replacement of hot loops in running calls.
    osr: bool = True
    #: 0 silent, 1 promotions and failures, 2 every compile; logger ``"rayzor"``.
    verbosity: int = 0
    #: Append every code blob to ``/tmp/perf-<pid>.map`` for ``perf report``
    #: (default: on when the environment has ``RAYZOR_PERF_MAP=1``).
    perf_map: bool = field(default_factory=lambda: os.environ.get("RAYZOR_PERF_MAP", "") not in ("", "0"))
    #: Undo a promotion whose code is measured slower than this many percent (0: never).
    demotion_margin_pct: int = 4
    #: Wait before a demoted tier is tried again (doubled after each demotion).
    demotion_backoff_ms: int = 10_000

    def __post_init__(self) -> None:
        for name in (
            "optimization_check_interval_ms",
            "max_parallel_optimizations",
            "verbosity",
            "demotion_margin_pct",
            "demotion_backoff_ms",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{name} must be an int, got {value!r}")
        if not isinstance(self.enable_background_optimization, bool):
            raise ConfigError("enable_background_optimization must be a bool")
        if not isinstance(self.osr, bool):
            raise ConfigError(f"osr must be a bool, got {self.osr!r}")
        if not isinstance(self.perf_map, bool):
            raise ConfigError(f"perf_map must be a bool, got {self.perf_map!r}")
        p = self.profile_config
        if not isinstance(p, ProfileConfig):
            raise ConfigError(f"profile_config must be a rayzor.ProfileConfig, got {type(p).__name__}")
        for name in ("warm_threshold", "hot_threshold", "blazing_threshold", "sample_rate", "osr_threshold"):
            value = getattr(p, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ConfigError(f"profile_config.{name} must be a non-negative int, got {value!r}")
        if (
            self.optimization_check_interval_ms < 0
            or self.max_parallel_optimizations < 0
            or self.verbosity < 0
        ):
            raise ConfigError("config values must not be negative")
        for name in ("demotion_margin_pct", "demotion_backoff_ms"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must not be negative, got {getattr(self, name)}")
        try:
            _rayzor.validate_config(self._to_raw())
        except (ValueError, OverflowError) as e:
            raise ConfigError(str(e)) from None

    def _to_raw(self) -> _rayzor.RawConfig:
        """The config in the form the extension takes."""
        p = self.profile_config
        return _rayzor.RawConfig(
            enable_background_optimization=self.enable_background_optimization,
            optimization_check_interval_ms=self.optimization_check_interval_ms,
            max_parallel_optimizations=self.max_parallel_optimizations,
            warm_threshold=p.warm_threshold,
            hot_threshold=p.hot_threshold,
            blazing_threshold=p.blazing_threshold,
            sample_rate=p.sample_rate,
            osr_threshold=p.osr_threshold,
            osr=self.osr,
            verbosity=self.verbosity,
            demotion_margin_pct=self.demotion_margin_pct,
            demotion_backoff_ms=self.demotion_backoff_ms,
        )

    @classmethod
    def _from_raw(cls, raw: _rayzor.RawConfig) -> TieredConfig:
        return cls(
            enable_background_optimization=raw.enable_background_optimization,
            optimization_check_interval_ms=raw.optimization_check_interval_ms,
            max_parallel_optimizations=raw.max_parallel_optimizations,
            profile_config=ProfileConfig(
                warm_threshold=raw.warm_threshold,
                hot_threshold=raw.hot_threshold,
                blazing_threshold=raw.blazing_threshold,
                sample_rate=raw.sample_rate,
                osr_threshold=raw.osr_threshold,
            ),
            osr=raw.osr,
            verbosity=raw.verbosity,
            demotion_margin_pct=raw.demotion_margin_pct,
            demotion_backoff_ms=raw.demotion_backoff_ms,
        )

    def as_tuple(self) -> tuple[bool, int, int, int, int, int, int, int]:
        """The values in field order (enable, interval, parallel, warm, hot, blazing,
        sample_rate, verbosity). Kept for compatibility; the extension does not use it."""
        p = self.profile_config
        return (
            self.enable_background_optimization,
            self.optimization_check_interval_ms,
            self.max_parallel_optimizations,
            p.warm_threshold,
            p.hot_threshold,
            p.blazing_threshold,
            p.sample_rate,
            self.verbosity,
        )

    @classmethod
    def _preset(cls, name: str) -> TieredConfig:
        return cls._from_raw(_rayzor.preset(name))

    @classmethod
    def development(cls) -> TieredConfig:
        """Fast tier-up for interactive work."""
        return cls._preset("development")

    @classmethod
    def production(cls) -> TieredConfig:
        """Conservative thresholds and sampled counters."""
        return cls._preset("production")
