"""Run-test files (``docs/runtests.md``) through the Python API: every file x executor
(interpreter, T0, T1, T2, and T3 when this build has LLVM). The Rust runner
(``crates/rayzor_core/tests/runtests.rs``) runs the same files through the core's API.

Not in conftest's DIFFERENTIAL_MODULES: the executor is this module's own parameter,
so each file runs exactly once per executor."""

from __future__ import annotations

import pathlib

import pytest
import runtests

import rayzor

LLVM = rayzor.llvm_available()
FILES = runtests.files()


def _cases():
    for path in FILES:
        for ex in runtests.EXECUTORS:
            marks = []
            if ex == "T3" and not LLVM:
                marks.append(pytest.mark.skip(reason="this build has no LLVM (T3)"))
            yield pytest.param(path, ex, id=f"{path.parent.name}/{path.name}-{ex}", marks=marks)


def _rel(path: pathlib.Path) -> str:
    return str(path.relative_to(runtests.ROOT))


def test_there_are_run_test_files():
    assert len(FILES) >= 60


@pytest.mark.parametrize(("path", "executor"), list(_cases()))
def test_run_file(path: pathlib.Path, executor: str) -> None:
    src = path.read_text()
    name = _rel(path)
    try:
        d = runtests.parse_directives(src)
    except runtests.DirectiveError as e:
        pytest.fail(f"{name}: {e}")
    if executor not in d.executors():
        pytest.skip(f"'; tiers:' at line {d.tiers[0] if d.tiers else 0} leaves out {executor}")

    if d.parse_error:
        line, want = d.parse_error
        with pytest.raises(rayzor.ParseError) as info:
            rayzor.parse(src)
        assert info.value.line == want, (
            f"{name}:{line}: parse error at line {info.value.line}, expected {want}"
        )
        return
    module = rayzor.parse(src)
    if d.error:
        line, rule = d.error
        if executor == "interp":
            with pytest.raises(rayzor.VerifyError) as info:
                module.verify()
        else:
            with pytest.raises(rayzor.VerifyError) as info:
                rayzor.TieredJit(module, rayzor.TieredConfig(enable_background_optimization=False))
        assert info.value.rule == rule, (
            f"{name}:{line}: [{executor}] verifier rule {info.value.rule!r}, expected {rule!r}"
        )
        return

    module.verify()
    assert not module.externs, f"{name}: run-test files cannot declare externs"
    calls = []
    for c in d.calls:
        try:
            params, ret = module.signature(c.func)
        except rayzor.RayzorError as e:
            pytest.fail(f"{name}:{c.line}: {c.text}: {e}")
        ptys, rty = [str(p) for p in params], str(ret)
        try:
            if len(ptys) != len(c.args):
                raise runtests.DirectiveError(f"'{c.func}' takes {len(ptys)} arguments, {len(c.args)} given")
            args = [runtests.to_arg(a, t) for a, t in zip(c.args, ptys, strict=True)]
            if c.kind == "void" and rty != "void":
                raise runtests.DirectiveError(f"'{c.func}' returns {rty}: say '== <value>'")
            if c.kind == "value":
                if rty == "void":
                    raise runtests.DirectiveError(f"'{c.func}' returns void")
                runtests.to_arg(c.expect, rty)
        except runtests.DirectiveError as e:
            pytest.fail(f"{name}:{c.line}: {c.text}: {e}")
        calls.append((c, args, rty))

    if executor == "interp":

        def call(fname, *args):
            return rayzor.interpret(module, fname, *args)

        jit = None
    else:
        tier = rayzor.Tier[executor]
        jit = rayzor.TieredJit(module, rayzor.TieredConfig(enable_background_optimization=False))
        for fname in jit.functions:
            jit.compile(fname, tier)
            assert jit.info(fname).tier == tier, f"{name}: '{fname}' is not at {executor} after compiling"

        def call(fname, *args):
            return jit[fname](*args)

    wrong = []
    try:
        for c, args, rty in calls:
            try:
                got = ("ok", call(c.func, *args))
            except rayzor.Trap as e:
                got = ("trap", str(e.kind))
            if c.kind == "trap":
                ok = got == ("trap", c.expect)
            elif c.kind == "void":
                ok = got == ("ok", None)
            else:
                ok = got[0] == "ok" and runtests.same(got[1], c.expect, rty)
            if not ok:
                shown = f"trap {got[1]}" if got[0] == "trap" else repr(got[1])
                wrong.append(f"{name}:{c.line}: [{executor}] {c.text}: got {shown}")
    finally:
        if jit is not None:
            jit.close()
    assert not wrong, "\n".join(wrong)


def test_directive_parser():
    d = runtests.parse_directives("; run: f(1, -2, 0x10, true, -0.0, nan) == -inf\n; tiers: interp T2\n")
    c = d.calls[0]
    assert (c.line, c.func, c.args[:4], c.kind) == (1, "f", [1, -2, 16, True], "value")
    assert str(c.args[4]) == "-0.0" and c.args[5] != c.args[5]
    assert c.expect == float("-inf")
    assert d.executors() == ["interp", "T2"]
    d = runtests.parse_directives("; prose: ignored\n  ; trap: g() == bad_tag\n; run: h(3)")
    assert (d.calls[0].kind, d.calls[0].expect, d.calls[0].line) == ("trap", "bad_tag", 2)
    assert d.calls[1].kind == "void" and len(d.executors()) == 5
    for bad in [
        "; nothing here",
        "; trap: f(1)",
        "; trap: f(1) == overflow",
        "; run: f(1",
        "; run: f(1) == 1\n; error: dominance",
        "; tiers: T4\n; run: f() == 1",
        "; parse-error: x",
    ]:
        with pytest.raises(runtests.DirectiveError):
            runtests.parse_directives(bad)
    assert runtests.to_arg(-1, "i8") == -1
    for lit, ty in [(128, "i8"), (-1, "u64"), (1e300, "f32"), (1.0, "i32"), (1, "bool")]:
        with pytest.raises(runtests.DirectiveError):
            runtests.to_arg(lit, ty)
    assert runtests.same(-0.0, -0.0, "f64") and not runtests.same(0.0, -0.0, "f64")
    assert runtests.same(float("nan"), float("nan"), "f32")
