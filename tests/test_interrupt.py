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

import pytest

SCRIPT = textwrap.dedent(
    """
    import os, signal, statistics, subprocess, sys, time
    import rayzor
    from rayzor import Tier
    ROUNDS = int(sys.argv[1])
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
    # Sends SIGINT to us 50 ms after each line it reads, and reports when it sent it.
    killer = subprocess.Popen(
        [sys.executable, "-c",
         "import os, sys, time\\n"
         "for line in sys.stdin:\\n"
         "    time.sleep(0.05); t = time.time(); os.kill(int(line), 2)\\n"
         "    print(t, flush=True)\\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def sigint_latency(call):
        killer.stdin.write(f"{os.getpid()}\\n"); killer.stdin.flush()
        try:
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
                jit.interrupt(after=0.02)
                start = time.perf_counter()
                try:
                    jit["deep"](1)
                except rayzor.Trap as e:
                    assert e.kind is rayzor.TrapKind.INTERRUPTED, e
                    lat.append(time.perf_counter() - start - 0.02)
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


def run(rounds: int) -> str:
    p = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(rounds)], capture_output=True, text=True, timeout=120, check=False
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
