"""``python -m rayzor`` run / check / fmt, driven as a user would: in a subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import rayzor

FIB = """\
; recursive fibonacci
fn fib(i64) -> i64 {
block0(v0: i64):
  v1: i64 = const 2
  v2: bool = lt v0, v1   ; n < 2
  brif v2, block1, block2
block1:
  ret v0
block2:
  v3: i64 = const 1
  v4: i64 = sub v0, v3
  v5: i64 = call fib(v4)
  v6: i64 = const 2
  v7: i64 = sub v0, v6
  v8: i64 = call fib(v7)
  v9: i64 = add v5, v8
  ret v9
}

fn div(i64, i64) -> i64 {
block0(v0: i64, v1: i64):
  v2: i64 = div v0, v1
  ret v2
}

fn mix(f64, bool, u8) -> f64 {
block0(v0: f64, v1: bool, v2: u8):
  v3: f64 = cast v2
  v4: f64 = add v0, v3
  v5: f64 = select v1, v4, v0
  ret v5
}

fn is_neg(i32) -> bool {
block0(v0: i32):
  v1: i32 = const 0
  v2: bool = lt v0, v1
  ret v2
}

fn nothing() -> void {
block0:
  ret
}

fn trap_always() -> i64 {
block0:
  trap
}
"""

# Verify error: the third instruction of block1 adds an i64 to an i32 (line 11).
BAD_VERIFY = """\
fn g(i64) -> i32 {
block0(v0: i64):
  v1: i64 = const 1   ; one
  ; a comment line
  v2: i64 = add v0, v1
  jump block1

block1:
  v3: i64 = add v2, v1
  v4: i32 = cast v3
  v5: i32 = add v4, v0
  ret v5
}
"""

BAD_PARSE = "fn f(i64) -> i64 {\nblock0(v0: i64):\n  v1: i64 = frob v0\n}\n"

TIERS = ["interp", "T0", "T1", "T2", "T3", "tiered"]


def rayzor_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rayzor", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def no_traceback(p: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in p.stderr, p.stderr
    assert "Traceback" not in p.stdout, p.stdout


@pytest.fixture
def work(tmp_path: Path) -> Path:
    (tmp_path / "fib.mir").write_text(FIB)
    (tmp_path / "bad.mir").write_text(BAD_VERIFY)
    (tmp_path / "parse.mir").write_text(BAD_PARSE)
    return tmp_path


def _skip_missing(tier: str) -> None:
    if tier == "T3" and not rayzor.llvm_available():
        pytest.skip("built without LLVM")


@pytest.mark.parametrize("tier", TIERS)
def test_run_fib_every_tier(work: Path, tier: str) -> None:
    _skip_missing(tier)
    p = rayzor_cli("run", "fib.mir", "fib", "20", "--tier", tier, cwd=work)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "6765\n"
    assert "fib: 1 call" in p.stderr and "per call" in p.stderr
    if tier in ("T0", "T1", "T2", "T3"):
        assert f"at {tier}," in p.stderr and "compiled in" in p.stderr
    if tier == "interp":
        assert "interpreter" in p.stderr


def test_run_repeat_and_default_tier(work: Path) -> None:
    p = rayzor_cli("run", "fib.mir", "fib", "15", "--repeat", "7", cwd=work)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "610\n"
    assert "fib: 7 calls tiered" in p.stderr


@pytest.mark.parametrize("tier", ["interp", "T1", "tiered"])
def test_run_typed_arguments_and_results(work: Path, tier: str) -> None:
    p = rayzor_cli("run", "fib.mir", "mix", "1.5", "true", "0xff", "--tier", tier, cwd=work)
    assert (p.returncode, p.stdout) == (0, "256.5\n"), p.stderr
    p = rayzor_cli("run", "fib.mir", "mix", "--tier", tier, "--", "-inf", "false", "3", cwd=work)
    assert (p.returncode, p.stdout) == (0, "-inf\n"), p.stderr
    p = rayzor_cli("run", "fib.mir", "is_neg", "-5", "--tier", tier, cwd=work)
    assert (p.returncode, p.stdout) == (0, "true\n"), p.stderr
    p = rayzor_cli("run", "fib.mir", "nothing", "--tier", tier, cwd=work)
    assert (p.returncode, p.stdout) == (0, ""), p.stderr
    assert "nothing: 1 call" in p.stderr


@pytest.mark.parametrize("tier", ["interp", "T0", "T2", "tiered"])
def test_run_trap_reports_kind(work: Path, tier: str) -> None:
    p = rayzor_cli("run", "fib.mir", "div", "1", "0", "--tier", tier, cwd=work)
    assert p.returncode == 3
    assert p.stdout == ""
    assert "trap: division_by_zero" in p.stderr and "'div'" in p.stderr
    no_traceback(p)
    p = rayzor_cli("run", "fib.mir", "trap_always", "--tier", tier, cwd=work)
    assert p.returncode == 3 and "trap: user" in p.stderr
    no_traceback(p)


@pytest.mark.parametrize(
    "args, message",
    [
        (["div", "1"], "div(i64, i64) -> i64 takes 2 arguments, got 1"),
        (["div", "1", "x"], "argument 2 of div (i64): expected an integer, got 'x'"),
        (["mix", "1.0", "yes", "1"], "argument 2 of mix (bool): expected true or false, got 'yes'"),
        (["mix", "1.0", "true", "256"], "argument 3 of mix (u8): 256 is out of range 0..255"),
        (["mix", "one", "true", "2"], "argument 1 of mix (f64): expected a number, got 'one'"),
        (["is_neg", "2147483648"], "argument 1 of is_neg (i32): 2147483648 is out of range"),
        (["nope"], "no function 'nope' in fib.mir (functions: fib, div, mix, is_neg, nothing, trap_always)"),
        (["fib", "1", "--repeat", "0"], "--repeat must be at least 1"),
    ],
)
def test_run_bad_input(work: Path, args: list[str], message: str) -> None:
    p = rayzor_cli("run", "fib.mir", *args, cwd=work)
    assert p.returncode == 2
    assert p.stderr.startswith("error: ") and message in p.stderr, p.stderr
    assert p.stdout == ""
    no_traceback(p)


def test_run_bad_tier_is_a_usage_error(work: Path) -> None:
    p = rayzor_cli("run", "fib.mir", "fib", "1", "--tier", "T9", cwd=work)
    assert p.returncode == 2 and "invalid choice: 'T9'" in p.stderr
    no_traceback(p)


def test_run_missing_file_and_invalid_mir(work: Path) -> None:
    p = rayzor_cli("run", "missing.mir", "f", cwd=work)
    assert p.returncode == 2 and "error: missing.mir: no such file" in p.stderr
    p = rayzor_cli("run", "bad.mir", "g", "1", cwd=work)
    assert p.returncode == 1 and p.stderr.startswith("bad.mir:11:3: error:")
    no_traceback(p)


def test_run_pointer_parameter_rejected(work: Path) -> None:
    (work / "p.mir").write_text("fn p(ptr) -> void {\nblock0(v0: ptr):\n  ret\n}\n")
    p = rayzor_cli("run", "p.mir", "p", "0", cwd=work)
    assert p.returncode == 2 and "argument 1 of p has type ptr" in p.stderr
    no_traceback(p)


@pytest.mark.parametrize("tier", ["interp", "T0"])
def test_run_resolves_externs_in_libc(work: Path, tier: str) -> None:
    (work / "ext.mir").write_text(
        "extern fn labs(i64) -> i64\n\nfn a(i64) -> i64 {\nblock0(v0: i64):\n"
        "  v1: i64 = call labs(v0)\n  ret v1\n}\n"
    )
    p = rayzor_cli("run", "ext.mir", "a", "--tier", tier, "--", "-41", cwd=work)
    assert (p.returncode, p.stdout) == (0, "41\n"), p.stderr
    (work / "ext2.mir").write_text(
        "extern fn no_such_symbol_rz(i64) -> i64\n\nfn b() -> void {\nblock0:\n  ret\n}\n"
    )
    p = rayzor_cli("run", "ext2.mir", "b", "--tier", tier, cwd=work)
    assert p.returncode == 2 and "extern 'no_such_symbol_rz' not found" in p.stderr
    no_traceback(p)


def test_check_ok(work: Path) -> None:
    p = rayzor_cli("check", "fib.mir", cwd=work)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "fib.mir: OK (6 functions)\n"


def test_check_parse_error_is_located(work: Path) -> None:
    p = rayzor_cli("check", "parse.mir", cwd=work)
    assert p.returncode == 1
    assert p.stderr == "parse.mir:3:13: error: unknown instruction 'frob'\n"
    assert p.stdout == ""


def test_check_verify_error_is_located(work: Path) -> None:
    p = rayzor_cli("check", "bad.mir", cwd=work)
    assert p.returncode == 1
    first = p.stderr.splitlines()[0]
    assert first.startswith("bad.mir:11:3: error: in function 'g', block1, inst5: [operand-type]"), first
    assert BAD_VERIFY.splitlines()[10].strip() == "v5: i32 = add v4, v0"


def test_check_verify_error_on_block_and_function(work: Path) -> None:
    (work / "unreach.mir").write_text(
        "fn f(i64) -> i64 {\nblock0(v0: i64):\n  jump block1\nblock1:\n  ret v0\nblock2:\n  ret v0\n}\n"
    )
    p = rayzor_cli("check", "unreach.mir", cwd=work)
    assert p.returncode == 1 and p.stderr.startswith("unreach.mir:6:1: error:") and "block2" in p.stderr
    void_fn = "fn f() -> void {\nblock0:\n  ret\n}\n"
    (work / "dup.mir").write_text(void_fn + "\n" + void_fn)
    p = rayzor_cli("check", "dup.mir", cwd=work)
    assert p.returncode == 1 and p.stderr.startswith("dup.mir: error: in function 'f'")
    assert "[duplicate-name]" in p.stderr


def test_check_unreadable(work: Path) -> None:
    (work / "bin.mir").write_bytes(b"\xff\xfe\x00")
    p = rayzor_cli("check", "bin.mir", cwd=work)
    assert p.returncode == 2 and "bin.mir: not UTF-8 text" in p.stderr
    p = rayzor_cli("check", ".", cwd=work)
    assert p.returncode == 2 and "is a directory" in p.stderr
    no_traceback(p)


def test_fmt_prints_canonical_text(work: Path) -> None:
    p = rayzor_cli("fmt", "fib.mir", cwd=work)
    assert p.returncode == 0, p.stderr
    canonical = str(rayzor.parse(FIB))
    assert p.stdout == canonical
    assert ";" not in p.stdout and p.stdout != FIB
    assert (work / "fib.mir").read_text() == FIB  # untouched


def test_fmt_check_and_in_place(work: Path) -> None:
    (work / "c.mir").write_text(str(rayzor.parse(FIB)))
    p = rayzor_cli("fmt", "--check", "c.mir", cwd=work)
    assert (p.returncode, p.stdout) == (0, "")
    p = rayzor_cli("fmt", "--check", "fib.mir", cwd=work)
    assert p.returncode == 1 and "not in canonical form" in p.stderr

    # Non-canonical numbering, no comments: rewritten in place.
    messy = (
        "fn f(i64) -> i64 {\nblock0(v0: i64):\n  v5: i64 = const 1\n    v9: i64 = add v0, v5\n  ret v9\n}\n"
    )
    (work / "m.mir").write_text(messy)
    p = rayzor_cli("fmt", "--in-place", "m.mir", cwd=work)
    assert p.returncode == 0, p.stderr
    assert (work / "m.mir").read_text() == (
        "fn f(i64) -> i64 {\nblock0(v0: i64):\n  v1: i64 = const 1\n  v2: i64 = add v0, v1\n  ret v2\n}\n"
    )
    assert sorted(x.name for x in work.iterdir() if x.name.startswith(".")) == []

    # Comments would be lost: refused, file untouched.
    p = rayzor_cli("fmt", "--in-place", "fib.mir", cwd=work)
    assert p.returncode == 2 and "comments" in p.stderr
    assert (work / "fib.mir").read_text() == FIB


def test_fmt_parse_error(work: Path) -> None:
    p = rayzor_cli("fmt", "parse.mir", cwd=work)
    assert p.returncode == 1 and p.stderr.startswith("parse.mir:3:13: error:")
    assert p.stdout == ""


def test_fmt_keeps_semicolons_in_strings(work: Path) -> None:
    m = rayzor.Module()
    f = m.function("s", [], rayzor.str_)
    f.ret(f.str_const('a;b"c'))
    (work / "s.mir").write_text(str(m))
    p = rayzor_cli("fmt", "--in-place", "s.mir", cwd=work)
    assert p.returncode == 0, p.stderr  # canonical already: nothing to do, no refusal
    (work / "s.mir").write_text(str(m).replace("  ret", "      ret"))
    p = rayzor_cli("fmt", "--in-place", "s.mir", cwd=work)
    assert p.returncode == 0, p.stderr  # the ';' is inside a string, not a comment
    assert (work / "s.mir").read_text() == str(m)


@pytest.mark.parametrize("tier", ["T0", "T1", "T2", "T3"])
def test_ir_prints_every_stage(work: Path, tier: str) -> None:
    _skip_missing(tier)
    p = rayzor_cli("ir", "fib.mir", "fib", "--tier", tier, cwd=work)
    assert p.returncode == 0, p.stderr
    stages = ["mir", "llvm", "llvm_opt"] if tier == "T3" else ["mir", "clif", "clif_opt"]
    headers = [line for line in p.stdout.splitlines() if line.startswith(";; ")]
    assert headers == [f";; fib at {tier}: {s}" for s in stages]
    assert "fn fib(i64) -> i64 {" in p.stdout
    assert ("define " if tier == "T3" else "function u0:") in p.stdout


def test_ir_stage_and_asm(work: Path) -> None:
    p = rayzor_cli("ir", "fib.mir", "div", "--tier", "T2", "--stage", "mir", cwd=work)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("fn div(i64, i64) -> i64 {") and ";;" not in p.stdout
    p = rayzor_cli("ir", "fib.mir", "div", "--tier", "T1", "--asm", cwd=work)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0].startswith("; 'div' at T1: ") and lines[0].endswith("(installed)")
    assert any("idiv" in line for line in lines[1:])  # the division itself
    assert all(line.startswith("0x") for line in lines[1:])


def test_ir_errors(work: Path) -> None:
    p = rayzor_cli("ir", "fib.mir", "nope", cwd=work)
    assert p.returncode == 2 and "no function 'nope'" in p.stderr
    no_traceback(p)
    p = rayzor_cli("ir", "fib.mir", "fib", "--tier", "T0", "--stage", "llvm", cwd=work)
    assert p.returncode == 2 and "T0 has no stage 'llvm'" in p.stderr
    p = rayzor_cli("ir", "bad.mir", "fib", cwd=work)
    assert p.returncode == 1 and "error:" in p.stderr
    no_traceback(p)


def test_help_and_version(work: Path) -> None:
    p = rayzor_cli("--help", cwd=work)
    assert p.returncode == 0
    for cmd in ("run", "check", "fmt", "demo"):
        assert cmd in p.stdout
    p = rayzor_cli("--version", cwd=work)
    assert (p.returncode, p.stdout) == (0, f"rayzor {rayzor.__version__}\n")
    p = rayzor_cli(cwd=work)
    assert p.returncode == 2 and "required" in p.stderr


def test_version_is_single_sourced_from_cargo() -> None:
    import re
    from importlib.metadata import version

    root = Path(__file__).resolve().parents[1]
    cargo = (root / "Cargo.toml").read_text()
    section = cargo.split("[workspace.package]", 1)[1].split("\n[", 1)[0]
    found = re.search(r'^version\s*=\s*"([^"]+)"', section, re.M)
    assert found is not None
    assert rayzor.__version__ == version("rayzor") == found[1]
    assert 'dynamic = ["version"]' in (root / "pyproject.toml").read_text()
