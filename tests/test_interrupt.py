"""Interrupting running code (issue 14, item 6): SIGINT makes a running call raise
KeyboardInterrupt at every tier and in the interpreter, ``TieredJit.interrupt()`` makes
it raise ``Trap(interrupted)``, and the jit stays usable. Each check runs in a
subprocess: a regression is an endless loop, which the timeout turns into a failure.

``python tests/test_interrupt.py`` prints the latency figures (median, max of 20)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    import faulthandler, os, signal, statistics, subprocess, sys, time
    import rayzor
    from rayzor import Tier
    ROUNDS = int(sys.argv[1])
    faulthandler.dump_traceback_later(float(sys.argv[2]), exit=True)  # where a call never stopped
    # Ctrl-C as in an interactive Python, even when pytest was started with SIGINT ignored
    # (as a background job of a script is): an ignored SIGINT is inherited, Python then
    # leaves it ignored, and no call was ever interrupted (the test hung until its timeout).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    SPIN = '''
    fn spin(i64) -> i64 {
    block0(v0: i64):
      jump block1(v0)
    block1(v1: i64):
      v2: i64 = add v1, v0
      jump block1(v2)
    }
    fn deep(i64) -> i64 {
    block0(v0: i64):
      v1: i64 = call spin(v0)
      ret v1
    }
    fn add1(i64) -> i64 {
    block0(v0: i64):
      v1: i64 = const 1
      v2: i64 = add v0, v1
      ret v2
    }
    '''
    top = rayzor.TieredJit.top_tier()[0]
    # interrupt(after=) stops only a call that is running when it fires: the call must
    # start within this delay, which on a slow, loaded machine can take a while.
    AFTER = 0.25
    # Sends SIGINT to us 50 ms after each line it reads, and reports when it sent it.
    killer = subprocess.Popen(
        [sys.executable, "-c",
         "import os, sys, time\\n"
         "for line in sys.stdin:\\n"
         "    time.sleep(0.05); t = time.time(); os.kill(int(line), 2)\\n"
         "    print(t, flush=True)\\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def sigint_latency(call):
        try:
            # In the try: on a loaded machine the signal may come before call() starts.
            killer.stdin.write(f"{os.getpid()}\\n"); killer.stdin.flush()
            call()
        except KeyboardInterrupt:
            caught = time.time()
        else:
            raise AssertionError("the call returned")
        return caught - float(killer.stdout.readline())

    def figures(name, xs):
        xs = [x * 1e3 for x in xs]
        print(f"{name}: median {statistics.median(xs):.2f} ms, max {max(xs):.2f} ms", flush=True)

    m = rayzor.parse(SPIN)
    lat = [sigint_latency(lambda: rayzor.interpret(m, "spin", 1)) for _ in range(ROUNDS)]
    figures("interpret SIGINT", lat)
    assert rayzor.interpret(m, "add1", 1) == 2
    for sample_rate in (16, 0):
        config = rayzor.TieredConfig(enable_background_optimization=False,
                                     profile_config=rayzor.ProfileConfig(sample_rate=sample_rate))
        jit = rayzor.TieredJit(rayzor.parse(SPIN), config)
        for tier in [t for t in Tier if t <= top]:
            for f in ("spin", "deep", "add1"):
                jit.compile(f, tier)
            for gil in ("hold", "release"):
                jit["spin"].gil = gil
                lat = [sigint_latency(lambda: jit["spin"](1)) for _ in range(ROUNDS)]
                figures(f"{tier} sample_rate={sample_rate} gil={gil} SIGINT", lat)
            assert jit["add1"](41) == 42
            lat = []
            for _ in range(ROUNDS):
                jit.interrupt(after=AFTER)
                start = time.perf_counter()
                try:
                    jit["deep"](1)
                except rayzor.Trap as e:
                    assert e.kind is rayzor.TrapKind.INTERRUPTED, e
                    lat.append(time.perf_counter() - start - AFTER)
                else:
                    raise AssertionError("the call returned")
            figures(f"{tier} sample_rate={sample_rate} interrupt()", lat)
            assert jit["add1"](1) == 2  # still usable
        jit.close()
    killer.stdin.close()
    killer.wait()
    print("ok")
    """
)


def run(rounds: int, timeout: float = 300) -> str:
    # Idle the script takes a few seconds; a call that is never interrupted runs forever:
    # its stack is printed before the timeout.
    p = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(rounds), str(timeout - 10)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    return p.stdout


@pytest.mark.skipif(sys.platform != "linux", reason="signals as on Linux")
def test_sigint_and_interrupt_stop_endless_loops_at_every_tier() -> None:
    out = run(2)
    assert out.strip().endswith("ok"), out


def test_interrupt_after_rejects_negative_delays() -> None:
    import rayzor

    m = rayzor.parse("fn f() -> i64 {\nblock0:\n  v0: i64 = const 1\n  ret v0\n}")
    with rayzor.TieredJit(m, rayzor.TieredConfig(enable_background_optimization=False)) as jit:
        with pytest.raises(rayzor.ArgumentError, match="after"):
            jit.interrupt(after=-1.0)
        jit.interrupt()  # nothing running: nothing happens
        assert jit["f"]() == 1


if __name__ == "__main__":
    print(run(int(os.environ.get("ROUNDS", "20"))))


# Loops the top tier strip-mines (lower.rs `strip_mined_loops`): they poll once per
# chunk of iterations, not at every back-edge. Each must still stop: a counted loop
# (`lt i, n`, constant step) with a far bound, one whose bound is near the top of
# the range (where the chunk shrinks to one iteration, so a wrapping `i` cannot skip
# the polls), an unsigned one, and a pure-header loop that is not counted (`ne`).
# `nest`'s inner loop runs a short trip per outer iteration: it takes the short-trip
# clone (strip.rs `version_short_trips`), which does not poll, so the outer loop's
# back-edge must.
STRIPPED = """
fn nest(i64, i64) -> i64 {
block0(v0: i64, v1: i64):
  v2: i64 = const 0
  jump block1(v2, v2)
block1(v3: i64, v4: i64):
  v5: bool = lt v3, v0
  brif v5, block2(v3, v4), block5(v4)
block2(v6: i64, v7: i64):
  jump block3(v2, v7)
block3(v8: i64, v9: i64):
  v10: bool = lt v8, v1
  brif v10, block4(v8, v9), block6(v9)
block4(v11: i64, v12: i64):
  v13: i64 = xor v12, v11
  v14: i64 = const 1
  v15: i64 = add v11, v14
  jump block3(v15, v13)
block6(v16: i64):
  v17: i64 = const 1
  v18: i64 = add v6, v17
  v19: i64 = add v16, v6
  jump block1(v18, v19)
block5(v20: i64):
  ret v20
}
fn counted(i64, i64) -> i64 {
block0(v0: i64, v1: i64):
  v2: i64 = const 0
  jump block1(v2, v2)
block1(v3: i64, v4: i64):
  v5: bool = lt v3, v0
  brif v5, block2(v3, v4), block3(v4)
block2(v6: i64, v7: i64):
  v8: i64 = xor v7, v6
  v9: i64 = add v6, v1
  jump block1(v9, v8)
block3(v10: i64):
  ret v10
}
fn ucounted(u64) -> u64 {
block0(v0: u64):
  v1: u64 = const 0
  jump block1(v1, v1)
block1(v2: u64, v3: u64):
  v4: bool = lt v2, v0
  brif v4, block2, block3
block2:
  v5: u64 = add v3, v2
  v6: u64 = const 3
  v7: u64 = add v2, v6
  jump block1(v7, v5)
block3:
  ret v3
}
fn uncounted(i64) -> i64 {
block0(v0: i64):
  v1: i64 = const 0
  jump block1(v1)
block1(v2: i64):
  v3: bool = ne v2, v0
  brif v3, block2, block3
block2:
  v4: i64 = const 2
  v5: i64 = add v2, v4
  jump block1(v5)
block3:
  ret v2
}
"""

STRIPPED_SCRIPT = textwrap.dedent(
    """
    import faulthandler, sys, time
    import rayzor
    faulthandler.dump_traceback_later(50)
    m = rayzor.parse(sys.argv[1])
    top = rayzor.TieredJit.top_tier()[0]
    jit = rayzor.TieredJit(m, rayzor.TieredConfig(enable_background_optimization=False))
    for f in jit.functions:
        jit.compile(f, top)
    I64_MAX = 2**63 - 1
    AFTER = 0.25  # the call must start before the interrupt fires: generous, for a loaded machine
    # `counted` steps by an argument: versioned (strip.rs), the counted form for steps
    # 1..=2**16, the budget form for any other.
    finite = [("counted", (100_003, 1)), ("counted", (100_003, 7)), ("counted", (-5, 1)),
              ("counted", (100_003, 2**16)), ("counted", (100_003, 2**16 + 1)),
              ("counted", (5, -2**62)), ("ucounted", (1_000_001,)), ("uncounted", (200_000,)),
              ("nest", (300, 100)), ("nest", (3, 100_000))]
    for f, a in finite:
        assert jit[f](*a) == rayzor.interpret(m, f, *a), (f, a)
    # Endless or as good as endless: 2**62 iterations; a bound near the top of the
    # range with a step that wraps past it; an odd bound an even step never meets.
    for f, a in [("counted", (2**62, 1)), ("counted", (I64_MAX, 2)), ("counted", (I64_MAX - 1, 3)),
                 ("counted", (2**62, 2**16)), ("counted", (10, 0)), ("counted", (10, -1)),
                 ("ucounted", (2**64 - 1,)), ("uncounted", (1,)), ("nest", (2**62, 100)),
                 ("nest", (2**62, 65536)), ("nest", (3, 2**62))]:
        jit.interrupt(after=AFTER)
        start = time.perf_counter()
        try:
            jit[f](*a)
        except rayzor.Trap as e:
            assert e.kind is rayzor.TrapKind.INTERRUPTED, e
        else:
            raise AssertionError(f"{f}{a} returned")
        late = 1e3 * (time.perf_counter() - start - AFTER)
        print(f"{top} {f}{a}: stopped {late:.2f} ms after the interrupt")
    print("ok")
    """
)


def test_strip_mined_loops_still_stop() -> None:
    p = subprocess.run(
        [sys.executable, "-c", STRIPPED_SCRIPT, STRIPPED],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert p.returncode == 0 and p.stdout.strip().endswith("ok"), p.stdout + p.stderr


# Loop-free code that runs as good as forever: 2**62 calls, never deeper than 62. Its
# only polls are at function entries: at T3 the prologue's stack check against the
# thread's entry limit, which an interrupt raises above every stack pointer.
RECURSION = """
extern fn back(i64) -> i64
fn outer(i64) -> i64 {
block0(v0: i64):
  v1: i64 = call back(v0)
  v2: i64 = call burn(v0)
  v3: i64 = add v1, v2
  ret v3
}
"""  # and burn, from tests/mir/burn.mir
RECURSION += (Path(__file__).parent / "mir" / "burn.mir").read_text()

RECURSION_SCRIPT = textwrap.dedent(
    """
    import faulthandler, os, signal, subprocess, sys, threading, time
    import rayzor
    from rayzor import Tier
    faulthandler.dump_traceback_later(250)
    # Python's Ctrl-C handler, whatever the parent left (a background job ignores SIGINT).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # A call must start before its interrupt fires: generous, for a loaded machine.
    AFTER = 0.25
    top = rayzor.TieredJit.top_tier()[0]
    config = rayzor.TieredConfig(enable_background_optimization=False)
    # `outer` calls back into the jit through the host (a nested call on the
    # thread's context), then burns: the nested call must not lose its interrupt.
    nested = {"n": 5, "interrupt": False}
    def back(n):
        if nested["interrupt"]:
            jit.interrupt()  # meant for `outer`, running; not for the nested call below
        return jit["burn"](nested["n"])
    jit = rayzor.TieredJit(rayzor.parse(sys.argv[1]), config, host={"back": back})
    burn, outer = jit["burn"], jit["outer"]

    def stopped(call, expect):
        start = time.perf_counter()
        try:
            call()
        except expect as e:
            if isinstance(e, rayzor.Trap):
                assert e.kind is rayzor.TrapKind.INTERRUPTED, e
            return 1e3 * (time.perf_counter() - start)
        raise AssertionError("the call returned")

    for tier in [t for t in Tier if t <= top]:
        jit.compile("burn", tier)
        jit.compile("outer", tier)
        assert burn(10) == 2**10 - 1
        assert outer(3) == 2**3 - 1 + 2**5 - 1
        # After a nested call returned, and inside an endless nested call.
        jit.interrupt(after=AFTER)
        stopped(lambda: outer(62), rayzor.Trap)
        nested["n"] = 62
        jit.interrupt(after=AFTER)
        stopped(lambda: outer(3), rayzor.Trap)
        nested["n"] = 5
        assert outer(4) == 2**4 - 1 + 2**5 - 1
        # An interrupt of `outer` from its callback, before a nested call: the nested
        # call's entries see it first and are not meant; `outer` still stops after.
        nested["interrupt"] = True
        stopped(lambda: outer(62), rayzor.Trap)
        nested["interrupt"] = False
        for _ in range(3):
            jit.interrupt(after=AFTER)
            ms = stopped(lambda: burn(62), rayzor.Trap) - 1e3 * AFTER
            # (Not a threading.Timer: it needs the GIL, which the call holds.)
            killer = subprocess.Popen(["sh", "-c", f"sleep {AFTER}; kill -INT {os.getpid()}"])
            try:
                # In the try: on a loaded machine the signal may come before the call starts.
                ms2 = stopped(lambda: burn(62), KeyboardInterrupt) - 1e3 * AFTER
            except KeyboardInterrupt:
                ms2 = float("nan")
            finally:
                killer.wait()
        # From another thread, with four threads in the code (not holding the GIL, which
        # the interrupting thread needs); interrupted until all four stopped, since one
        # may start its call after an interrupt.
        burn.gil = "release"
        results = []
        def worker():
            try:
                burn(62)
                results.append("returned")
            except rayzor.Trap as e:
                results.append(e.kind)
        threads = [threading.Thread(target=worker) for _ in range(4)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 120
        while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
            time.sleep(0.05)
            jit.interrupt()
        assert results == [rayzor.TrapKind.INTERRUPTED] * 4, results
        burn.gil = "hold"
        # Still usable, and calls that start after an interrupt are not affected by it.
        assert burn(12) == 2**12 - 1
        print(f"{tier}: stopped {ms:.1f} ms after interrupt(), {ms2:.1f} ms after SIGINT")
    print("ok")
    """
)


@pytest.mark.skipif(sys.platform != "linux", reason="signals as on Linux")
def test_endless_recursion_without_loops_stops_at_every_tier() -> None:
    p = subprocess.run(
        [sys.executable, "-c", RECURSION_SCRIPT, RECURSION],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert p.returncode == 0 and p.stdout.strip().endswith("ok"), p.stdout + p.stderr


def _counted_runs(jit: object, m: object, n: int, s: int) -> None:
    import rayzor

    assert isinstance(jit, rayzor.TieredJit) and isinstance(m, rayzor.Module)
    assert jit["counted"](n, s) == rayzor.interpret(m, "counted", n, s), (n, s)


def _steps():
    from hypothesis import strategies as st

    # (bound, step) pairs whose loops end soon: positive steps around the versioning
    # guard's edges, steps of 0 or below only with loops that run zero times or wrap
    # past i64::MIN in a few iterations.
    small = st.tuples(st.integers(-1000, 200_000), st.integers(1, 70_000))
    edges = st.tuples(st.integers(0, 300_000), st.sampled_from([1, 2, 2**16 - 1, 2**16, 2**16 + 1]))
    zero_trip = st.tuples(st.integers(-(2**63), 0), st.integers(-(2**63), 0))
    wrapping = st.tuples(
        st.integers(1, 1000), st.integers(-(2**63) + 1, -(2**61))
    )  # not MIN: j cycles 0, MIN
    return st.one_of(small, edges, zero_trip, wrapping)


@pytest.fixture(scope="module")
def counted_jits():
    import rayzor

    m = rayzor.parse(STRIPPED)
    top = rayzor.TieredJit.top_tier()[0]
    jits = []
    for tier in [t for t in rayzor.Tier if t <= top]:
        jit = rayzor.TieredJit(m, rayzor.TieredConfig(enable_background_optimization=False))
        jit.compile("counted", tier)
        jits.append(jit)
    yield m, jits
    for jit in jits:
        jit.close()


def test_loops_with_a_run_time_step_agree_with_the_interpreter(counted_jits) -> None:
    """The loop versioning of strip.rs (T3) for any step: same result as the interpreter."""
    from hypothesis import given, settings

    m, jits = counted_jits

    @settings(max_examples=300, deadline=None)
    @given(_steps())
    def check(case: tuple[int, int]) -> None:
        for jit in jits:
            _counted_runs(jit, m, *case)

    check()
