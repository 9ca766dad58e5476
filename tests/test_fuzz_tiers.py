"""Differential fuzzing of the tiers against the reference interpreter.

Property: for a random well-typed module (``mir_strategies.modules()``) and
random inputs, ``rayzor.interpret`` (the oracle) and the jit with every
function compiled at T0, T1, T2 (and T3 when LLVM is available) return the same
result -- floats bit for bit, except that any NaN equals any NaN -- or raise
``rayzor.Trap`` with the same kind; an interrupt racing a call either stops it
with ``Trap(interrupted)`` or leaves its result alone. Every generated module also
round-trips through text.

Sizing: ``RAYZOR_FUZZ_EXAMPLES`` (default 1000, derandomized so CI is
reproducible). ``RAYZOR_FUZZ_SEED=<int>`` runs a randomized search from that
seed; ``--hypothesis-profile=long`` uses the profile's ``max_examples`` and
random seeds. ``RAYZOR_FUZZ_NOSHRINK=1`` skips shrinking.

Regression corpus: ``tests/fuzz_regressions/*.mir``. Each file is MIR text
whose comment header lists inputs for ``main``, one call per line::

    ; args: 1, -2.5, true
    ; args: nan, inf, -0.0, 0x10

(`true`/`false`, ints (decimal or 0x hex), floats incl. `nan`, `inf`,
`-inf`). ``test_regressions`` runs the same differential check on each. A
``; xfail: <reason>`` (or ``; xfail(T3): <reason>``, only when T3 runs) line
marks a known bug that is not fixed yet (strict xfail: the test fails once the
bug is fixed, so the line gets removed). The files also carry run-test directives
(``; run: main(3) == 29089``, hand-computed expected values; ``docs/runtests.md``),
which ``tests/test_runtests.py`` and the cargo test ``runtests`` check in every tier.
"""

from __future__ import annotations

import math
import os
import pathlib
import struct
import threading

import mir_strategies as ms
import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

import rayzor
from rayzor import Tier

REGRESSIONS = pathlib.Path(__file__).parent / "fuzz_regressions"


def tiers() -> list[Tier]:
    ts = [Tier.T0, Tier.T1, Tier.T2]
    llvm = getattr(rayzor, "llvm_available", None)
    # RAYZOR_REQUIRE_LLVM=1: T3 is fuzzed (and fails) even on a build without it.
    if (callable(llvm) and llvm()) or os.environ.get("RAYZOR_REQUIRE_LLVM", "0") == "1":
        ts.append(Tier.T3)
    # RAYZOR_FUZZ_MAX_TIER=2 leaves T3 out (e.g. to fuzz Cranelift alone).
    top = int(os.environ.get("RAYZOR_FUZZ_MAX_TIER", "3"))
    return [t for t in ts if t <= top]


TIERS = tiers()


def _outcome(fn, ret: str):
    """('ok', canonical value) or ('trap', kind)."""
    try:
        v = fn()
    except rayzor.Trap as e:
        return ("trap", e.kind)
    except BaseException as e:  # a Rust panic (pyo3 PanicException) is a BaseException
        if type(e).__name__ != "PanicException":
            raise
        raise AssertionError(f"panic: {e}") from None
    if ret in ms.FLOATS:
        return ("ok", "nan" if math.isnan(v) else struct.pack("<d", v).hex())
    return ("ok", type(v).__name__, v)


def check_module(module: rayzor.Module, ret: str, arg_sets, text: str = "") -> None:
    """Assert every tier agrees with the interpreter on every argument tuple."""
    expected = [_outcome(lambda a=a: rayzor.interpret(module, "main", *a), ret) for a in arg_sets]
    cfg = rayzor.TieredConfig(enable_background_optimization=False)
    with rayzor.TieredJit(module, cfg) as jit:
        for tier in TIERS:
            for name in jit.functions:
                try:
                    jit.compile(name, tier)
                except BaseException as e:  # a Rust panic is a BaseException: make it shrinkable
                    if type(e).__name__ != "PanicException":
                        raise
                    raise AssertionError(
                        f"{tier} compile of {name!r} panicked: {e}\n{text or module}"
                    ) from None
            main = jit["main"]
            for a, want in zip(arg_sets, expected, strict=True):
                got = _outcome(lambda a=a, main=main: main(*a), ret)
                assert got == want, (
                    f"{tier} disagrees with the interpreter on main{tuple(a)}: "
                    f"interpreter {want}, {tier} {got}\n{text or module}"
                )
            # An interrupt racing the call (it fires from another thread at some
            # point) either stops it with Trap(interrupted) or leaves its result
            # alone, and the jit keeps working.
            a, want = arg_sets[0], expected[0]
            racer = threading.Thread(target=jit.interrupt)
            racer.start()
            got = _outcome(lambda a=a, main=main: main(*a), ret)
            racer.join()  # fired before anything else runs in this jit
            assert got in (want, ("trap", rayzor.TrapKind.INTERRUPTED)), (
                f"{tier} with an interrupt racing main{tuple(a)}: {got}, expected {want}\n{text or module}"
            )


def _round_trip(module: rayzor.Module) -> None:
    text = str(module)
    again = rayzor.parse(text)
    assert str(again) == text
    again.verify()


def _examples() -> int:
    return int(os.environ.get("RAYZOR_FUZZ_EXAMPLES", "1000"))


def _fuzz_settings(test):
    """CI: RAYZOR_FUZZ_EXAMPLES derandomized examples. The "long" profile, or an
    explicit RAYZOR_FUZZ_SEED, searches randomly (the profile's size for "long")."""
    getname = getattr(settings, "get_current_profile_name", None)
    current = getname() if getname else getattr(settings, "_current_profile", None)
    common = dict(
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )
    if os.environ.get("RAYZOR_FUZZ_NOSHRINK"):
        # Report the first failure as found (measuring detection, or huge modules).
        common["phases"] = [Phase.explicit, Phase.reuse, Phase.generate]
    if current == "long":
        test = settings(**common)(test)
    else:
        seeded = "RAYZOR_FUZZ_SEED" in os.environ
        test = settings(max_examples=_examples(), derandomize=not seeded, **common)(test)
        if seeded:
            test = seed(int(os.environ["RAYZOR_FUZZ_SEED"]))(test)
    return test


@_fuzz_settings
@given(prog=ms.modules(budget=int(os.environ.get("RAYZOR_FUZZ_BUDGET", "24"))), data=st.data())
def test_tiers_agree_with_interpreter(prog: ms.GenModule, data) -> None:
    _EXAMPLES_RUN[0] += 1
    _round_trip(prog.module)
    arg_sets = data.draw(st.lists(ms.arguments(prog.params), min_size=1, max_size=4), label="args")
    try:
        check_module(prog.module, prog.ret, arg_sets, prog.text)
    except AssertionError:
        if os.environ.get("RAYZOR_FUZZ_REPORT"):
            # For measuring how fast a planted bug is found (use with RAYZOR_FUZZ_NOSHRINK=1).
            print(f"\nfirst disagreement at example {_EXAMPLES_RUN[0]}", flush=True)
        raise


PGO_TIERS = [t for t in TIERS if t >= Tier.T2]


def check_module_pgo(module: rayzor.Module, ret: str, train, arg_sets, source: str, seed: int = 0) -> None:
    """T2/T3 compiled with a profile that need not match the inputs they then run on: recorded
    by the interpreter on `train` ("interp"), collected by T0 code running `train` ("collected"),
    or made up ("random", from `seed`). The outcomes must be the interpreter's on `arg_sets`."""
    expected = [_outcome(lambda a=a: rayzor.interpret(module, "main", *a), ret) for a in arg_sets]
    cfg = rayzor.TieredConfig(
        enable_background_optimization=False, profile_config=rayzor.ProfileConfig(sample_rate=1)
    )
    for tier in PGO_TIERS:
        with rayzor.TieredJit(module, cfg) as jit:
            if source == "interp":
                jit.train_profile("main", train)
            elif source == "collected":
                for name in jit.functions:
                    jit.compile(name, Tier.T0)
                for a in train:
                    _outcome(lambda a=a: jit["main"](*a), ret)
            else:
                jit._random_profiles(seed)
            for name in jit.functions:
                jit.compile(name, tier)
            main = jit["main"]
            for a, want in zip(arg_sets, expected, strict=True):
                got = _outcome(lambda a=a, main=main: main(*a), ret)
                assert got == want, (
                    f"{tier} with a {source} profile (trained on {train}, seed {seed}) disagrees on "
                    f"main{tuple(a)}: interpreter {want}, jit {got}\n{module}"
                )


@settings(
    max_examples=max(1, _examples() // 4),
    derandomize="RAYZOR_FUZZ_SEED" not in os.environ,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
@given(
    prog=ms.modules(budget=int(os.environ.get("RAYZOR_FUZZ_BUDGET", "24"))),
    data=st.data(),
    source=st.sampled_from(["interp", "collected", "random"]),
    seed=st.integers(0, 2**32),
)
def test_profile_guided_tiers_agree_with_interpreter(prog: ms.GenModule, data, source, seed) -> None:
    """Profile-guided compiles (branch weights, switch order, guarded devirtualisation,
    profile-driven inlining) whose profile comes from other inputs than the checked ones,
    or is random: a profile may make code slower, never wrong."""
    if not PGO_TIERS:
        pytest.skip("no profile-guided tier in this run")
    train = data.draw(st.lists(ms.arguments(prog.params), min_size=1, max_size=3), label="train")
    arg_sets = data.draw(st.lists(ms.arguments(prog.params), min_size=1, max_size=3), label="args")
    check_module_pgo(prog.module, prog.ret, train, arg_sets, source, seed)


MIR_DIR = pathlib.Path(__file__).parent / "mir"
# Programs whose branches, switches and indirect-call targets follow their inputs:
# (file, function, strategy of one argument tuple).
PGO_PROGRAMS = [
    ("call_indirect.mir", "dispatch", st.tuples(st.integers(0, 5), st.integers(-(2**63), 2**63 - 1))),
    ("pgo_icall.mir", "icall", st.tuples(st.integers(-3, 300))),
    ("pgo_branch.mir", "bias", st.tuples(st.integers(-3, 300))),
    ("bytecode_vm.mir", "vm", st.tuples(st.integers(0, 60))),
    ("profile_sites.mir", "branchy", st.tuples(st.integers(0, 300))),
    ("profile_sites.mir", "switchy", st.tuples(st.integers(0, 300))),
    ("profile_sites.mir", "indirect", st.tuples(st.integers(-5, 300))),
]


@settings(
    max_examples=max(1, _examples() // 4),
    derandomize="RAYZOR_FUZZ_SEED" not in os.environ,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=st.data(), source=st.sampled_from(["interp", "collected", "random"]), seed=st.integers(0, 2**32))
def test_profile_guided_programs_on_contradicting_inputs(data, source, seed) -> None:
    """Programs with multi-target indirect calls, switches and biased branches, profiled
    on one set of inputs (or at random) and run on another: the interpreter's results."""
    if not PGO_TIERS:
        pytest.skip("no profile-guided tier in this run")
    file, fn, args = data.draw(st.sampled_from(PGO_PROGRAMS), label="program")
    text = (MIR_DIR / file).read_text()
    # The checks below call `main`: give the program's function that name.
    module = rayzor.parse(text.replace(f"fn {fn}(", "fn main(").replace(f"call {fn}(", "call main("))
    ret = str(module.signature("main")[1])
    train = data.draw(st.lists(args, min_size=1, max_size=3), label="train")
    arg_sets = data.draw(st.lists(args, min_size=1, max_size=3), label="args")
    check_module_pgo(module, ret, train, arg_sets, source, seed)


TIER_PAIRS = [(a, b) for a in TIERS for b in TIERS if a < b]


def check_module_osr(module: rayzor.Module, ret: str, arg_sets, source: Tier, target: Tier, k: int) -> None:
    """Every function at `source`, transferring into OSR entries compiled at `target` at the
    first back-edge at which a loop has counted `k`: the same outcomes as the interpreter."""
    expected = [_outcome(lambda a=a: rayzor.interpret(module, "main", *a), ret) for a in arg_sets]
    cfg = rayzor.TieredConfig(
        enable_background_optimization=False, profile_config=rayzor.ProfileConfig(sample_rate=1)
    )
    with rayzor.TieredJit(module, cfg) as jit:
        for name in jit.functions:
            jit.compile(name, source)
        jit._force_osr(k, target)
        main = jit["main"]
        for a, want in zip(arg_sets, expected, strict=True):
            got = _outcome(lambda a=a: main(*a), ret)
            assert got == want, (
                f"OSR {source}->{target} after {k} back-edges disagrees on main{tuple(a)}: "
                f"interpreter {want}, jit {got}\n{module}"
            )


@settings(
    max_examples=max(1, _examples() // 4),
    derandomize="RAYZOR_FUZZ_SEED" not in os.environ,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)
@given(
    prog=ms.modules(budget=int(os.environ.get("RAYZOR_FUZZ_BUDGET", "24"))),
    data=st.data(),
    pair=st.sampled_from(TIER_PAIRS),
    k=st.one_of(st.integers(1, 40), st.sampled_from([1, 2, 3, 17, 1000])),
)
def test_osr_transfers_agree_with_interpreter(prog: ms.GenModule, data, pair, k) -> None:
    """Random programs (with loops where the generator makes them), a random OSR point in
    every loop after k back-edges, random source and target tiers."""
    arg_sets = data.draw(st.lists(ms.arguments(prog.params), min_size=1, max_size=3), label="args")
    check_module_osr(prog.module, prog.ret, arg_sets, pair[0], pair[1], k)


#: Examples run so far in this process (for RAYZOR_FUZZ_REPORT).
_EXAMPLES_RUN = [0]


# ---------------------------------------------------------------------------
# Regression corpus
# ---------------------------------------------------------------------------


def _parse_arg(tok: str, ty: str):
    tok = tok.strip()
    if ty == "bool":
        assert tok in ("true", "false"), tok
        return tok == "true"
    if ty in ms.FLOATS:
        return float(tok)
    return int(tok, 0)


def load_regression(path: pathlib.Path):
    text = path.read_text()
    module = rayzor.parse(text)
    module.verify()
    params, ret = module.signature("main")
    ptys, rty = [str(p) for p in params], str(ret)
    arg_sets = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("; args:"):
            body = line[len("; args:") :].strip()
            toks = [t for t in body.split(",")] if body else []
            assert len(toks) == len(ptys), f"{path.name}: {line!r} does not match main{tuple(ptys)}"
            arg_sets.append(tuple(_parse_arg(t, ty) for t, ty in zip(toks, ptys, strict=False)))
    assert arg_sets, f"{path.name}: no '; args:' line"
    return module, rty, arg_sets, text


@pytest.mark.parametrize("path", sorted(REGRESSIONS.glob("*.mir")), ids=lambda p: p.name)
def test_regressions(path: pathlib.Path, request) -> None:
    module, ret, arg_sets, text = load_regression(path)
    for line in text.splitlines():
        # A known, not yet fixed bug: must still fail (strict), so a fix is noticed.
        # `; xfail(T3): ...` applies only when that tier is being tested.
        if line.startswith("; xfail"):
            cond, _, reason = line[len("; xfail") :].partition(":")
            tier = cond.strip("()")
            if not tier or Tier[tier] in TIERS:
                request.node.add_marker(pytest.mark.xfail(reason=reason.strip(), strict=True))
    _round_trip(module)
    check_module(module, ret, arg_sets, text)
