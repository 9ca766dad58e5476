"""Inspection of compiled code (TieredJit.ir / machine_code / disassemble) and the perf map."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import rayzor

REQUIRE_LLVM = os.environ.get("RAYZOR_REQUIRE_LLVM", "0") == "1"
TIERS = [rayzor.Tier.T0, rayzor.Tier.T1, rayzor.Tier.T2, rayzor.Tier.T3]

SRC = """
fn fib(i64) -> i64 {
block0(v0: i64):
  v1: i64 = const 2
  v2: bool = lt v0, v1
  brif v2, block1, block2
block1:
  ret v0
block2:
  v3: i64 = const 1
  v4: i64 = sub v0, v3
  v5: i64 = call fib(v4)
  v6: i64 = sub v0, v1
  v7: i64 = call fib(v6)
  v8: i64 = add v5, v7
  ret v8
}

fn five() -> i64 {
block0:
  v0: i64 = const 2
  v1: i64 = const 3
  v2: i64 = add v0, v1
  ret v2
}

fn round(f64) -> f64 {
block0(v0: f64):
  v1: f64 = floor v0
  ret v1
}

fn fused(f64, f64, f64) -> f64 {
block0(v0: f64, v1: f64, v2: f64):
  v3: f64 = fma v0, v1, v2
  ret v3
}
"""

QUIET = rayzor.TieredConfig(enable_background_optimization=False)


def needs(tier: rayzor.Tier) -> None:
    if tier == rayzor.Tier.T3 and not rayzor.llvm_available() and not REQUIRE_LLVM:
        pytest.skip("built without LLVM")


@pytest.fixture
def jit():
    with rayzor.TieredJit(rayzor.parse(SRC), QUIET) as j:
        yield j


@pytest.mark.parametrize("tier", TIERS, ids=str)
def test_ir_stages_per_tier(jit, tier):
    needs(tier)
    ir = jit.ir("fib", tier)
    want = ["mir", "llvm", "llvm_opt"] if tier == rayzor.Tier.T3 else ["mir", "clif", "clif_opt"]
    assert list(ir) == want
    assert ir["mir"].startswith("fn fib(i64) -> i64 {")
    if tier == rayzor.Tier.T3:
        assert re.search(r"define .*@rayzor_t3_\d+\(ptr", ir["llvm"]), ir["llvm"][:500]
        assert "call" in ir["llvm"]
        assert ir["llvm_opt"] != ir["llvm"]
    else:
        assert ir["clif"].startswith("function u0:")
        assert "call_indirect" in ir["clif"]
    # Nothing was installed: the function still runs its T0 code.
    assert jit.tier_of("fib") == rayzor.Tier.T0
    assert jit["fib"](10) == 55


def test_ir_shows_the_mir_each_tier_compiles(jit):
    # T0/T1 compile the MIR as written; from T2 on, Rayzor's optimiser folded it.
    assert "add v0, v1" in jit.ir("five", rayzor.Tier.T1)["mir"]
    t2 = jit.ir("five", rayzor.Tier.T2)["mir"]
    assert "const 5" in t2 and "add" not in t2
    assert "= floor" in jit.ir("round", 0)["mir"]
    assert "floor" in jit.ir("round", 0)["clif"]
    assert "fma" in jit.ir("fused", 1)["clif"]


def test_ir_llvm_before_and_after_o3(jit):
    needs(rayzor.Tier.T3)
    ir = jit.ir("round", rayzor.Tier.T3)
    assert "@llvm.floor.f64" in ir["llvm"]
    assert "@llvm.fma.f64" in jit.ir("fused", rayzor.Tier.T3)["llvm_opt"]
    # T3 compiles the MIR after Rayzor's optimiser (2 + 3 folded); O3 then merges blocks.
    five = jit.ir("five", rayzor.Tier.T3)
    assert "const 5" in five["mir"]
    assert re.search(r"\bi64 5\b", five["llvm_opt"])
    assert five["llvm_opt"].count("\n\n") < five["llvm"].count("\n\n")


def test_ir_default_tier_is_the_current_one(jit):
    jit.compile("fib", rayzor.Tier.T1)
    assert list(jit.ir("fib")) == ["mir", "clif", "clif_opt"]


@pytest.mark.parametrize("tier", TIERS, ids=str)
def test_machine_code_is_the_installed_code(jit, tier):
    needs(tier)
    jit.compile("fib", tier)
    code = jit.machine_code("fib")
    assert code.installed and code.tier == tier
    assert len(code.code) == jit.info("fib").code_bytes[tier] > 0
    text = jit.disassemble("fib")
    lines = text.splitlines()
    assert lines[0] == f"; 'fib' at {tier}: {len(code.code)} bytes at {code.address:#x} (installed)"
    # Every byte is listed once, in order, starting at the entry address.
    addr = code.address
    listed = bytearray()
    for line in lines[1:]:
        m = re.match(r"0x([0-9a-f]+):  ((?:[0-9a-f]{2} )+)\s*(\S.*?)(\s+; .*)?$", line)
        assert m, line
        assert int(m.group(1), 16) == addr
        b = bytes.fromhex(m.group(2))
        listed += b
        addr += len(b)
    assert bytes(listed) == code.code
    assert "(bad)" not in text
    assert any(re.search(r"\bret\b", line) for line in lines)
    assert any("call" in line for line in lines)  # the recursive calls
    # Below T3 the recursive calls load the slot (its address named); T3 calls its
    # own entry directly.
    if tier == rayzor.Tier.T3:
        assert any(re.search(rf"\bcall\s+{code.address:#x}\b", line) for line in lines), text
    else:
        assert "; entry slot of 'fib'" in text, text


def test_machine_code_at_another_tier_is_not_installed(jit):
    code = jit.machine_code("fib", rayzor.Tier.T1)
    assert not code.installed and code.tier == rayzor.Tier.T1
    assert jit.tier_of("fib") == rayzor.Tier.T0
    assert "not installed" in jit.disassemble("fib", 1).splitlines()[0]
    assert jit["fib"](12) == 144


def test_disassembly_shows_the_float_instructions(jit):
    if not re.search(r"\bsse4_1\b", Path("/proc/cpuinfo").read_text()):
        pytest.skip("no SSE4.1 here")
    jit.compile("round", 1)
    assert "roundsd" in jit.disassemble("round")
    if re.search(r"\bfma\b", Path("/proc/cpuinfo").read_text()):
        jit.compile("fused", 1)
        assert "vfmadd" in jit.disassemble("fused")


def test_cpus_without_sse41_and_fma_call_builtins():
    """On a CPU without roundsd/vfmadd, T0-T2 call the builtins: same results, bit for bit."""
    script = textwrap.dedent(
        f"""
        import rayzor
        m = rayzor.parse({SRC!r})
        with rayzor.TieredJit(m, rayzor.TieredConfig(enable_background_optimization=False)) as jit:
            for t in (0, 1, 2):
                jit.compile("round", t)
                jit.compile("fused", t)
                asm = jit.disassemble("round") + jit.disassemble("fused")
                assert "roundsd" not in asm and "vfmadd" not in asm, asm
                assert "call" in jit.disassemble("round")
                assert jit["round"](-2.5) == -3.0 and jit["round"](-0.5) == -1.0
                assert jit["fused"](0.1, 10.0, -1.0) == 2.0**-54
                assert jit["fused"](1e308, 2.0, -1e308) == 1e308
        print("ok")
        """
    )
    env = dict(os.environ, RAYZOR_CRANELIFT_ISA_FLAGS="has_sse41=false,has_fma=false")
    p = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr


def test_inspection_errors(jit):
    with pytest.raises(rayzor.ArgumentError, match="nope"):
        jit.ir("nope", 0)
    with pytest.raises(rayzor.ArgumentError, match="no tier 7"):
        jit.disassemble("fib", 7)
    if not rayzor.llvm_available():
        with pytest.raises(rayzor.CompileError, match="T3 is not available"):
            jit.ir("fib", 3)
    jit.close()
    with pytest.raises(rayzor.ClosedError):
        jit.ir("fib", 0)
    with pytest.raises(rayzor.ClosedError):
        jit.machine_code("fib")


# --- perf map -------------------------------------------------------------------------


def perf_map_lines(path: str) -> list[tuple[int, int, str]]:
    out = []
    for line in Path(path).read_text().splitlines():
        start, size, name = line.split(" ", 2)
        out.append((int(start, 16), int(size, 16), name))
    return out


def test_perf_map_lists_every_published_blob():
    path = rayzor.TieredJit.perf_map_path()
    assert path == f"/tmp/perf-{os.getpid()}.map"
    existed = os.path.exists(path)
    before = len(perf_map_lines(path)) if existed else 0
    cfg = rayzor.TieredConfig(enable_background_optimization=False, perf_map=True)
    with rayzor.TieredJit(rayzor.parse(SRC), cfg) as jit:
        t0 = jit.machine_code("fib")
        top = rayzor.Tier.T3 if rayzor.llvm_available() or REQUIRE_LLVM else rayzor.Tier.T2
        published = []
        for tier in [rayzor.Tier.T1, top]:
            jit.compile("fib", tier)
            published.append(jit.machine_code("fib"))
        lines = perf_map_lines(path)[before:]
    if not existed:
        os.unlink(path)  # the map is reopened for every append: deleting it is safe
    names = [n for _, _, n in lines]
    for f in ["fib", "five", "round", "fused"]:
        assert f"{f}[entry]" in names and f"{f}[T0]" in names
    for code in [t0, *published]:
        assert (code.address, len(code.code), f"fib[{code.tier}]") in lines
    # No two blobs of the map overlap while both are alive (the entries and the T0 code).
    live = sorted((s, s + n) for s, n, name in lines if name.endswith(("[entry]", "[T0]")))
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(live, live[1:], strict=False))


def test_perf_map_off_by_default_and_from_the_environment(tmp_path):
    assert rayzor.TieredConfig().perf_map is (os.environ.get("RAYZOR_PERF_MAP", "") not in ("", "0"))
    script = textwrap.dedent(
        f"""
        import os, rayzor
        assert rayzor.TieredConfig().perf_map and rayzor.TieredConfig.production().perf_map
        with rayzor.TieredJit(rayzor.parse({SRC!r})) as jit:
            code = jit.machine_code("five")
        text = open(f"/tmp/perf-{{os.getpid()}}.map").read()
        os.unlink(f"/tmp/perf-{{os.getpid()}}.map")
        assert f"{{code.address:x}} {{len(code.code):x}} five[T0]" in text.splitlines(), text
        print("ok")
        """
    )
    env = dict(os.environ, RAYZOR_PERF_MAP="1")
    p = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == "ok", p.stderr
    with pytest.raises(rayzor.ConfigError, match="perf_map"):
        rayzor.TieredConfig(perf_map=1)  # type: ignore[arg-type]
