"""fork() while promotions (T3 included) are compiling: the child never inherits a
compile's lock (issue 14, item 3). Run in a subprocess so a hung child cannot hang pytest.

``RAYZOR_FORKS=1000 pytest tests/test_fork_quiesce.py -s`` runs the full 1,000 forks."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

SCRIPT = textwrap.dedent(
    """
    import os, sys, time
    import rayzor
    FORKS = int(sys.argv[1])
    HAS_T3 = rayzor.TieredJit.top_tier()[0] == rayzor.Tier.T3
    lines = ["fn sl(i64) -> i64 {", "block0(v0: i64):"]
    lines += [f"  v{i}: i64 = add v{i - 1}, v0" for i in range(1, 8)]
    ops = ["add", "xor", "sub", "mul"]
    lines += [f"  v{i}: i64 = {ops[i % 4]} v{i - 1}, v{i - 7}" for i in range(8, 600)]
    lines += ["  ret v599", "}"]
    from rayzor.examples import fib_module
    src = "\\n".join(lines)
    expected = rayzor.interpret(rayzor.parse(src), "sl", 3)
    config = rayzor.TieredConfig(optimization_check_interval_ms=1, max_parallel_optimizations=2,
                                 profile_config=rayzor.ProfileConfig(5, 20, 60, 1))
    hung = failed = 0
    jit = None
    import threading
    stop = threading.Event()
    churn = rayzor.TieredJit(rayzor.parse(src), rayzor.TieredConfig(enable_background_optimization=False))
    def recompile():  # keeps a compile (T3 when there is one) in flight nearly always
        top = rayzor.Tier.T3 if HAS_T3 else rayzor.Tier.T2
        while not stop.is_set():
            churn.compile("sl", top)
    compiler = threading.Thread(target=recompile)
    compiler.start()
    for k in range(FORKS):
        if k % 10 == 0:  # fresh jits: their promotions (T1..T3) are compiling now
            if jit is not None:
                jit.close()
            jit = rayzor.TieredJit(rayzor.parse(src), config)
            fib = rayzor.TieredJit(fib_module(), config)
        for _ in range(30):
            assert jit["sl"](3) == expected and fib["fib"](12) == 144
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                if jit["sl"](3) != expected or fib["fib"](15) != 610:
                    code = 3
                jit.compile("sl", rayzor.Tier.T3 if HAS_T3 else rayzor.Tier.T2)
                churn.compile("sl", rayzor.Tier.T1)
                churn.stats()
                if jit["sl"](3) != expected or churn["sl"](3) != expected:
                    code = 5
                jit.close()
            except rayzor.CompileError as e:
                code = 0 if "forked while a compile was running" in str(e) else 6
            except BaseException:
                code = 4
            os._exit(code)
        deadline = time.monotonic() + 10
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
                    failed += 1
                break
            if time.monotonic() > deadline:
                hung += 1
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                break
            time.sleep(0.001)
    stop.set()
    compiler.join()
    jit.close()
    fib.close()
    churn.close()
    print(f"forks {FORKS} hung {hung} failed {failed}")
    """
)


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform != "linux", reason="needs fork")
def test_forks_during_promotions_never_hang_the_child() -> None:
    forks = int(os.environ.get("RAYZOR_FORKS", "60"))
    p = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(forks)],
        capture_output=True,
        text=True,
        timeout=60 + forks * 0.5,
        check=False,
    )
    assert p.returncode == 0, p.stdout + p.stderr
    print(p.stdout.strip())
    assert p.stdout.strip() == f"forks {forks} hung 0 failed 0"
