"""Shared test set-up.

* Hypothesis profiles: ``ci`` (the default: 100 derandomized examples, no
  deadline) and ``long`` (20000 examples); choose with
  ``pytest --hypothesis-profile=long``.
* Every module any test runs through ``rayzor.interpret`` is first checked for
  a faithful text round trip: ``parse(str(m))`` prints identically, compares
  equal, and verifies whenever ``m`` does. Tests must call
  ``rayzor.interpret`` (never ``from rayzor import interpret``) so that the
  wrapper installed here sees every call.
"""

from __future__ import annotations

import os
import sys

import pytest
from hypothesis import HealthCheck, settings

import rayzor

sys.path.insert(0, os.path.dirname(__file__))

settings.register_profile(
    "ci",
    deadline=None,
    max_examples=100,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "long",
    max_examples=20000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# The hypothesis pytest plugin loads --hypothesis-profile after conftest is
# imported, so this is only the default.
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

_real_interpret = rayzor.interpret

#: How many modules the wrapper round-tripped (tests may assert it moved).
ROUND_TRIPS = {"count": 0}


def check_round_trip(module: rayzor.Module) -> None:
    """Assert that the text form of a verified `module` parses back to an equal module."""
    text = str(module)
    again = rayzor.parse(text)
    assert str(again) == text, f"print(parse(print(m))) differs from print(m):\n{text}\n---\n{again}"
    assert again == module
    # What verifies must still verify after a trip through text.
    again.verify()
    ROUND_TRIPS["count"] += 1


def _checked_interpret(module, name, *args, **kwargs):
    try:
        module.verify()
    except rayzor.RayzorError:
        # Not runnable: let the real interpreter raise what it raises.
        return _real_interpret(module, name, *args, **kwargs)
    check_round_trip(module)
    return _real_interpret(module, name, *args, **kwargs)


@pytest.fixture(autouse=True)
def _round_trip_every_interpreted_module(monkeypatch):
    monkeypatch.setattr(rayzor, "interpret", _checked_interpret)
    yield


# --- Every interpreter test also runs compiled at each tier -----------------------------
#
# Tests in the modules below are parametrized over `exec_tier`. For a tier other than
# "interp", each `rayzor.interpret(...)` call also runs the same function natively at that
# tier, on copies of any buffer arguments, and asserts the same result (floats bitwise,
# any NaN equal to any NaN), the same trap kind or the same error class, and the same
# final buffer contents. The interpreter's outcome is then returned, so each test's own
# hand-computed expectations apply to every tier.

DIFFERENTIAL_MODULES = {"test_ops", "test_programs"}
#: RAYZOR_REQUIRE_LLVM=1 (set by .ci/run): T3 must be tested, never silently left out.
REQUIRE_LLVM = os.environ.get("RAYZOR_REQUIRE_LLVM", "0") == "1"
LLVM = bool(getattr(rayzor, "llvm_available", lambda: False)())
EXEC_TIERS = ["interp", "T0", "T1", "T2"]
if LLVM or REQUIRE_LLVM:
    # Without LLVM but required, the T3 cases run and fail rather than disappear.
    EXEC_TIERS.append("T3")


def pytest_sessionstart(session):
    if REQUIRE_LLVM and not LLVM:
        pytest.exit(
            "RAYZOR_REQUIRE_LLVM=1 but this build of rayzor has no T3 (built without LLVM); "
            "rebuild with LLVM 19 or unset RAYZOR_REQUIRE_LLVM",
            returncode=1,
        )


def pytest_generate_tests(metafunc):
    name = metafunc.module.__name__.rsplit(".", 1)[-1]
    if name in DIFFERENTIAL_MODULES:
        metafunc.fixturenames.append("exec_tier")
        metafunc.parametrize("exec_tier", EXEC_TIERS)


_jit_cache: dict[tuple[str, int, str], rayzor.TieredJit] = {}


def _jit_for(module: rayzor.Module, tier: rayzor.Tier, host) -> rayzor.TieredJit:
    key = (str(module), id(host) if host else 0, tier.name)
    jit = _jit_cache.get(key)
    if jit is None:
        if len(_jit_cache) > 256:
            for old in _jit_cache.values():
                old.close()
            _jit_cache.clear()
        config = rayzor.TieredConfig(enable_background_optimization=False)
        jit = rayzor.TieredJit(module, config, host=host)
        for fname in jit.functions:
            jit.compile(fname, tier)
        _jit_cache[key] = jit
    return jit


def _copy_buffer(arg):
    try:
        import numpy as np

        if isinstance(arg, np.ndarray):
            if not (arg.flags.writeable and arg.flags.c_contiguous):
                return arg  # rejected as a ptr by every tier: nothing gets written
            return arg.copy()
    except ImportError:
        pass
    if isinstance(arg, bytearray):
        return bytearray(arg)
    if isinstance(arg, memoryview):
        return memoryview(bytearray(arg.tobytes())).cast(arg.format, arg.shape)
    return arg


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        if a != a and b != b:
            return True
        import struct

        return struct.pack("<d", a) == struct.pack("<d", b)
    return type(a) is type(b) and a == b


def _buffer_bytes(arg):
    if isinstance(arg, (bytearray, bytes)):
        return bytes(arg)
    if hasattr(arg, "tobytes"):
        return arg.tobytes()
    return None


def _outcome(fn):
    try:
        return ("ok", fn())
    except rayzor.Trap as e:
        return ("trap", e.kind)
    except rayzor.RayzorError as e:
        return ("error", type(e))


def _differential(tier_name: str):
    tier = rayzor.Tier[tier_name]

    def run(module, name, *args, host=None, step_limit=None):
        originals = [_copy_buffer(a) for a in args]
        expected = _outcome(lambda: _checked_interpret(module, name, *args, host=host, step_limit=step_limit))
        skip = (
            step_limit is not None
            or expected == ("trap", rayzor.TrapKind.MEMORY_FAULT)  # undefined behaviour when compiled
            or (expected[0] == "error" and not issubclass(expected[1], rayzor.ArgumentError))
            or any(type(a) is int and a > 4096 and _is_ptr_param(module, name, i) for i, a in enumerate(args))
        )
        if not skip:
            jit = _jit_for(module, tier, host)
            actual = _outcome(lambda: jit[name](*originals))
            assert expected[0] == actual[0], f"{tier_name}: interpreter gave {expected}, jit gave {actual}"
            if expected[0] == "ok":
                assert _same(expected[1], actual[1]), f"{tier_name}: {expected[1]!r} != {actual[1]!r}"
            else:
                assert expected[1] == actual[1], f"{tier_name}: {expected[1]} != {actual[1]}"
            for a, b in zip(args, originals, strict=True):
                ab, bb = _buffer_bytes(a), _buffer_bytes(b)
                if ab is not None and a is not b:
                    assert ab == bb, f"{tier_name}: buffer contents differ from the interpreter's"
        kind, value = expected
        if kind == "ok":
            return value
        # Re-raise the interpreter's own exception for the test to inspect.
        return _real_interpret(module, name, *args, host=host, step_limit=step_limit)

    return run


def _is_ptr_param(module, name, index) -> bool:
    try:
        params, _ret = module.signature(name)
    except rayzor.RayzorError:
        return False
    return index < len(params) and str(params[index]) == "ptr"


def _compiled_only(tier_name: str):
    """For tests whose host callbacks record their calls: run only the compiled code, so
    each call happens once and the test's own expectations judge the tier."""
    tier = rayzor.Tier[tier_name]

    def run(module, name, *args, host=None, step_limit=None):
        module.verify()
        check_round_trip(module)
        return _jit_for(module, tier, host)[name](*args)

    return run


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "host_side_effects: host callbacks record calls; compiled tiers run instead of, "
        "not beside, the interpreter",
    )


@pytest.fixture(autouse=True)
def _run_interpreted_calls_at_every_tier(request, monkeypatch, _round_trip_every_interpreted_module):
    callspec = getattr(request.node, "callspec", None)
    tier = callspec.params.get("exec_tier") if callspec else None
    if tier and tier != "interp":
        once = request.node.get_closest_marker("host_side_effects") is not None
        monkeypatch.setattr(rayzor, "interpret", _compiled_only(tier) if once else _differential(tier))
    yield


def pytest_sessionfinish(session, exitstatus):
    for jit in _jit_cache.values():
        jit.close()
    _jit_cache.clear()
