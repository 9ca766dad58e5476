"""Large valid programs: compile time linear in their size at every tier, a bounded top
tier, and a function one tier cannot compile running in another (issue 14, items 4, 5, 11).

Each check runs in a subprocess with a budget of CPU time, so a quadratic regression
shows up as a failure (a minute of CPU instead of a few seconds) rather than hanging
pytest. CPU time, not wall time: on a loaded machine the 300k-case switch took 26 s of
wall time (3 s idle), over the 45 s wall-clock timeout's margin; its CPU time does not grow
with the load. A wall-clock timeout remains, only against a hang."""

from __future__ import annotations

import re
import resource
import subprocess
import sys
import textwrap

import pytest

import rayzor

HAS_T3 = rayzor.TieredJit.top_tier()[0] == rayzor.Tier.T3


def run_script(body: str, cpu_budget: float = 45, timeout: float = 300) -> str:
    script = textwrap.dedent(body)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    try:
        p = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"timed out after {timeout} s (hang)")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert p.returncode == 0, p.stdout + p.stderr
    print(f"CPU time: {cpu:.2f} s")
    assert cpu < cpu_budget, f"the script used {cpu:.1f} s of CPU, over {cpu_budget} s (quadratic compile?)"
    return p.stdout


SWITCH_HELPERS = """
import rayzor
MANUAL = rayzor.TieredConfig(enable_background_optimization=False)
def switch_one_target(n, with_args):
    # switch v0 over n cases, all to one block (passing an argument or not)
    arg = "(v0)" if with_args else ""
    params = "(v9: i64)" if with_args else ""
    ret = "v9" if with_args else "v1"
    cases = ", ".join(f"{3 * k}: block1{arg}" for k in range(n))
    return "\\n".join([
        "fn sw(i64) -> i64 {", "block0(v0: i64):",
        f"  switch v0, [{cases}], block2",
        f"block1{params}:", "  v1: i64 = const 7", f"  ret {ret}",
        "block2:", "  v2: i64 = const -1", "  ret v2", "}",
    ])
"""


def test_a_switch_with_300k_cases_compiles_in_linear_time_at_t0() -> None:
    # Was quadratic in the number of cases (reverse postorder re-collected a
    # block's successors on every visit): 100k cases took 8 s at T0, 300k over a minute.
    out = run_script(
        SWITCH_HELPERS
        + """
m = rayzor.parse(switch_one_target(300_000, False))
jit = rayzor.TieredJit(m, MANUAL)
assert jit["sw"](3 * 299_999) == 7 and jit["sw"](1) == -1 and jit["sw"](0) == 7
print("ok")
"""
    )
    assert out.strip() == "ok"


def test_a_switch_whose_cases_pass_arguments_compiles_in_linear_time_at_t2() -> None:
    # The T2 optimiser's dead-code pass looked up each incoming edge's arguments by
    # collecting all successors of the switch: quadratic in the cases (60k: 36 s; now 0.9 s).
    out = run_script(
        SWITCH_HELPERS
        + """
m = rayzor.parse(switch_one_target(80_000, True))
jit = rayzor.TieredJit(m, MANUAL)
jit.compile("sw", rayzor.Tier.T2)
assert jit["sw"](3 * 79_999) == 3 * 79_999 and jit["sw"](1) == -1 and jit["sw"](6) == 6
print("ok")
"""
    )
    assert out.strip() == "ok"


def straight_line(n: int, name: str = "sl") -> str:
    """v_i = v_{i-1} op v_{i-7}: n instructions of straight-line i64 code."""
    lines = [f"fn {name}(i64) -> i64 {{", "block0(v0: i64):"]
    lines += [f"  v{i}: i64 = add v{i - 1}, v0" for i in range(1, 8)]
    ops = ["add", "xor", "sub", "mul"]
    lines += [f"  v{i}: i64 = {ops[i % 4]} v{i - 1}, v{i - 7}" for i in range(8, n)]
    lines += [f"  ret v{n - 1}", "}"]
    return "\n".join(lines)


def t2_surely_kept(jit: rayzor.TieredJit) -> rayzor.TieredJit:
    """Once T3 is refused, T2 ends the climb and is on probation against T1 (the tier
    policy, runtime/policy.rs): T1's measured times count 10x, so that T2 surely stays.
    Their real times on this straight-line code are close: on a loaded machine T2 lost,
    was demoted, and the retry T1 -> T3 was refused too, leaving the function at T1."""
    jit._core._inject_slowdown(int(rayzor.Tier.T1), 10)
    return jit


def promote_until_bounded(src: str, name: str, arg: int) -> rayzor.TieredJit:
    """Call `name` under the development preset until the promoter gives up on T3."""
    import time

    m = rayzor.parse(src)
    expected = rayzor.interpret(m, name, arg)
    jit = t2_surely_kept(rayzor.TieredJit(m, rayzor.TieredConfig.development()))
    fn = jit[name]
    deadline = time.monotonic() + 120  # generous: a slow, loaded machine (idle: a few seconds)
    while not any(e.reason == "size_limit" for e in jit.events()) and time.monotonic() < deadline:
        assert fn(arg) == expected
    assert jit.wait_idle(120)
    assert fn(arg) == expected
    return jit


@pytest.mark.skipif(not HAS_T3, reason="needs the LLVM tier")
def test_a_block_over_the_t3_limit_stays_at_t2() -> None:
    jit = promote_until_bounded(straight_line(rayzor.T3_MAX_BLOCK + 1), "sl", 3)
    assert jit.tier_of("sl") == rayzor.Tier.T2
    (e,) = [e for e in jit.events() if e.reason == "size_limit"]
    assert e.to_tier == rayzor.Tier.T3 and not e.ok
    assert re.search(
        # (at the tier the climb refused T3 from: T1 when already hot enough for T3)
        r"largest block \(\d+ instructions\) is over the T3 limit of \d+; it stays at T[12]",
        e.error or "",
    )
    jit.close()


def chained_blocks(blocks: int, per_block: int, name: str = "ch") -> str:
    """Straight-line code split into `blocks` blocks joined by jumps (LLVM merges them)."""
    lines, v = [f"fn {name}(i64) -> i64 {{", "block0(v0: i64):"], 1
    ops = ["add", "xor", "sub", "mul"]
    for b in range(blocks):
        if b:
            lines.append(f"block{b}(v{v}: i64):")
            v += 1
        lines += [f"  v{k}: i64 = add v{k - 1}, v0" for k in range(v, v + 7)]
        lines += [f"  v{k}: i64 = {ops[k % 4]} v{k - 1}, v{k - 7}" for k in range(v + 7, v + per_block)]
        v += per_block
        lines.append(f"  jump block{b + 1}(v{v - 1})" if b < blocks - 1 else f"  ret v{v - 1}")
    return "\n".join(lines + ["}"])


@pytest.mark.skipif(not HAS_T3, reason="needs the LLVM tier")
def test_blocks_chained_by_jumps_count_as_one_block() -> None:
    """Nine 1,990-instruction blocks in a jump chain took over 70 s at T3: LLVM merges them."""
    per = rayzor.T3_MAX_BLOCK - 10
    jit = promote_until_bounded(chained_blocks(9, per), "ch", 3)
    assert jit.tier_of("ch") == rayzor.Tier.T2
    (e,) = [e for e in jit.events() if e.reason == "size_limit"]
    assert f"largest block ({9 * (per + 1)} instructions)" in (e.error or ""), e.error  # + the jumps
    jit.close()


@pytest.mark.skipif(not HAS_T3, reason="needs the LLVM tier")
@pytest.mark.parametrize("link", ["brif true", "brif same"])
def test_blocks_chained_by_foldable_branches_count_as_one_block(link: str) -> None:
    """A `brif` on a constant, or with both edges to one block, is a jump once folded."""
    src = chained_blocks(3, rayzor.T3_MAX_BLOCK - 10)
    lines = []
    for k, line in enumerate(src.splitlines()):
        m = re.fullmatch(r"  jump (block\d+\(v\d+\))", line)
        if not m:
            lines.append(line)
        elif link == "brif true":
            # A fresh value number: the chain numbers its values from 1 up, far below.
            lines += [f"  v{100_000 + k}: bool = const true", f"  brif v{100_000 + k}, {m[1]}, {m[1]}"]
        else:
            lines += [f"  v{100_000 + k}: bool = lt v0, v0", f"  brif v{100_000 + k}, {m[1]}, {m[1]}"]
    jit = promote_until_bounded("\n".join(lines), "ch", 3)
    assert jit.tier_of("ch") == rayzor.Tier.T2
    assert any(e.reason == "size_limit" for e in jit.events())
    jit.close()


@pytest.mark.skipif(not HAS_T3, reason="needs the LLVM tier")
def test_a_switch_over_the_t3_size_limit_stays_at_t2() -> None:
    # 12.5k cases took 34 s at T3; each case counts as several instructions.
    n = rayzor.T3_MAX_SIZE // 4 + 1
    cases = ", ".join(f"{k}: block1" for k in range(n))
    src = "\n".join(
        [
            "fn sw(i64) -> i64 {",
            "block0(v0: i64):",
            f"  switch v0, [{cases}], block1",
            "block1:",
            "  ret v0",
            "}",
        ]
    )
    jit = promote_until_bounded(src, "sw", 5)
    assert jit.tier_of("sw") == rayzor.Tier.T2
    (e,) = [e for e in jit.events() if e.reason == "size_limit"]
    assert "switch cases counted" in (e.error or "")
    jit.close()


def test_an_explicit_t3_compile_is_not_bounded() -> None:
    m = rayzor.parse(straight_line(rayzor.T3_MAX_BLOCK + 1))
    jit = rayzor.TieredJit(m, rayzor.TieredConfig(enable_background_optimization=False))
    top = rayzor.TieredJit.top_tier()[0]
    jit.compile("sl", top)
    assert jit.tier_of("sl") == top and jit["sl"](3) == rayzor.interpret(m, "sl", 3)
    jit.close()


@pytest.mark.skipif(not HAS_T3, reason="needs the LLVM tier")
def test_a_function_over_the_t3_size_limit_stays_at_t2_as_an_event() -> None:
    # An 8k-instruction function took 3.4 s at T3 (32k: 55 s); it now stays at T2.
    m = rayzor.parse(straight_line(8000))
    expected = rayzor.interpret(m, "sl", 5)
    jit = t2_surely_kept(rayzor.TieredJit(m, rayzor.TieredConfig.development()))
    fn = jit["sl"]
    import time

    deadline = time.monotonic() + 120  # generous: a slow, loaded machine (idle: a few seconds)
    while not any(e.reason == "size_limit" for e in jit.events()) and time.monotonic() < deadline:
        assert fn(5) == expected
    assert jit.wait_idle(120)
    assert jit.tier_of("sl") == rayzor.Tier.T2
    stats = jit.stats()
    bounded = [e for e in stats.events if e.function == "sl" and e.reason == "size_limit"]
    assert len(bounded) == 1, stats.events
    # The refusal comes from the tier the climb was at: T1 when the function was
    # already hot enough for T3 (the climb goes T1 -> T3), else T2.
    assert bounded[0].from_tier in (rayzor.Tier.T1, rayzor.Tier.T2), bounded[0]
    assert bounded[0].to_tier == rayzor.Tier.T3
    assert "over the T3 limit" in (bounded[0].error or "")
    assert bounded[0] in stats.functions["sl"].failures
    assert fn(5) == expected
    jit.close()


@pytest.mark.skipif(not HAS_T3, reason="needs the LLVM tier")
def test_close_does_not_wait_for_a_compile_in_flight_and_discards_its_code() -> None:
    # close() used to join the compile thread (13 s for a big T3 compile) and the
    # finished compile was published into the closed jit.
    m = rayzor.parse(straight_line(rayzor.T3_MAX_BLOCK - 10))
    jit = rayzor.TieredJit(m, rayzor.TieredConfig(enable_background_optimization=False))
    jit.compile("sl", rayzor.Tier.T2)
    import threading

    errors: list[BaseException] = []

    def compile_t3() -> None:
        try:
            jit.compile("sl", rayzor.Tier.T3)
        except BaseException as e:  # noqa: BLE001 - inspected below
            errors.append(e)

    t = threading.Thread(target=compile_t3)
    t.start()
    import time

    time.sleep(0.05)  # the T3 compile (hundreds of ms) is running now
    start = time.perf_counter()
    jit.close()
    print(f"close() with a T3 compile in flight: {(time.perf_counter() - start) * 1e3:.1f} ms")
    t.join()
    # The compile finished after close: its code was discarded, not published.
    assert jit.tier_of("sl") == rayzor.Tier.T2
    assert len(errors) == 1 and isinstance(errors[0], rayzor.ClosedError), errors


@pytest.mark.skipif(not HAS_T3, reason="needs the LLVM tier")
def test_close_and_exit_with_a_promotion_in_flight() -> None:
    out = run_script(
        f"""
import time, rayzor
m = rayzor.parse({straight_line(rayzor.T3_MAX_BLOCK - 10)!r})
jit = rayzor.TieredJit(m, rayzor.TieredConfig.development())
fn = jit["sl"]
# At T1 or T2, with the (slow) T3 compile of the climb in flight.
while jit.tier_of("sl") < rayzor.Tier.T1 or not jit._core.busy():
    fn(1)
before = jit.tier_of("sl")
start = time.perf_counter()
jit.close()
closed = time.perf_counter() - start
assert jit.tier_of("sl") == before < rayzor.Tier.T3, (before, jit.tier_of("sl"))
print(f"closed {{closed * 1e3:.1f}} ms")
jit2 = rayzor.TieredJit(m, rayzor.TieredConfig.development())
fn = jit2["sl"]
while jit2.tier_of("sl") < rayzor.Tier.T1 or not jit2._core.busy():
    fn(1)
print("exiting")
"""
    )
    assert "exiting" in out, out
    print(out)


def chain(blocks: int) -> str:
    """`blocks` blocks, each taking one i64 and passing on a product: T0's frame
    grows 8 bytes per block parameter."""
    lines = ["fn ch(i64) -> i64 {", "block0(v0: i64):", "  jump block1(v0)"]
    for b in range(1, blocks):
        nxt = f"  jump block{b + 1}(v{blocks + b})" if b + 1 < blocks else f"  ret v{blocks + b}"
        lines += [f"block{b}(v{b}: i64):", f"  v{blocks + b}: i64 = mul v{b}, v0", nxt]
    lines.append("}")
    return "\n".join(lines)


def test_a_function_t0_cannot_compile_starts_in_another_tier() -> None:
    # 40k blocks: T0's frame would be 313 KiB, over the 256 KiB limit; TieredJit()
    # used to raise CompileError although the function is valid.
    m = rayzor.parse(chain(40_000))
    expected = rayzor.interpret(m, "ch", 3)
    jit = rayzor.TieredJit(m, rayzor.TieredConfig(enable_background_optimization=False))
    assert jit.tier_of("ch") > rayzor.Tier.T0
    assert jit["ch"](3) == expected
    ev = [e for e in jit.events() if e.function == "ch"]
    assert ev[0].to_tier == rayzor.Tier.T0 and ev[0].reason == "initial" and not ev[0].ok
    assert "stack frame" in (ev[0].error or "")
    assert ev[-1].ok and ev[-1].reason == "initial" and ev[-1].to_tier == jit.tier_of("ch")
    assert jit.stats().functions["ch"].failures == [ev[0]]
    jit.close()
