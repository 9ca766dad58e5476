"""Directives of run-test files (``tests/mir/*.mir``, ``tests/fuzz_regressions/*.mir``).

The Python twin of the parser in ``crates/rayzor_core/tests/runtests.rs``; the format is
documented in ``docs/runtests.md``. Only whole-line comments ``; key: ...`` with a known
key are directives; other comments are prose.
"""

from __future__ import annotations

import math
import pathlib
import re
import struct
from dataclasses import dataclass, field

ROOT = pathlib.Path(__file__).resolve().parent.parent
DIRS = [ROOT / "tests" / "mir", ROOT / "tests" / "fuzz_regressions"]
EXECUTORS = ["interp", "T0", "T1", "T2", "T3"]
TRAP_KINDS = [
    "division_by_zero",
    "integer_overflow",
    "user",
    "unreachable",
    "stack_overflow",
    "bad_tag",
    "memory_fault",
    "out_of_memory",
    "interrupted",
]
_NAME = re.compile(r"^[A-Za-z0-9_.]+$")
_DEC = re.compile(r"^[0-9_]+$")


class DirectiveError(ValueError):
    pass


#: A literal: int, float or bool (typed later by the function's signature).
Lit = int | float | bool


@dataclass
class Call:
    line: int
    func: str
    args: list[Lit]
    #: "void", "value" or "trap"
    kind: str
    expect: Lit | str | None
    text: str


@dataclass
class Directives:
    calls: list[Call] = field(default_factory=list)
    error: tuple[int, str] | None = None
    parse_error: tuple[int, int] | None = None
    tiers: tuple[int, list[str]] | None = None

    def executors(self) -> list[str]:
        return list(self.tiers[1]) if self.tiers else list(EXECUTORS)


def parse_lit(tok: str) -> Lit:
    t = tok.strip()
    if t in ("true", "false"):
        return t == "true"
    if t in ("nan", "+nan", "-nan"):
        return math.nan
    if t in ("inf", "+inf"):
        return math.inf
    if t == "-inf":
        return -math.inf
    neg = t.startswith("-")
    body = t[1:] if t[:1] in "+-" else t
    if body[:2].lower() == "0x":
        try:
            v = int(body[2:].replace("_", ""), 16)
        except ValueError:
            raise DirectiveError(f"bad integer literal {t!r}") from None
        return -v if neg else v
    if body and _DEC.match(body):
        v = int(body.replace("_", ""))
        return -v if neg else v
    try:
        return float(t)
    except ValueError:
        raise DirectiveError(f"bad literal {t!r}") from None


def _parse_call(line: int, body: str, is_trap: bool) -> Call:
    call, sep, expect = body.partition("==")
    call = call.strip()
    open_ = call.find("(")
    if open_ < 0 or not call.endswith(")"):
        raise DirectiveError("expected 'name(args)'")
    func = call[:open_].strip()
    if not _NAME.match(func):
        raise DirectiveError(f"bad function name {func!r}")
    inner = call[open_ + 1 : -1]
    args = [parse_lit(a) for a in inner.split(",")] if inner.strip() else []
    expect = expect.strip()
    if is_trap:
        if not sep:
            raise DirectiveError("a trap directive needs '== <trap kind>'")
        if expect not in TRAP_KINDS:
            raise DirectiveError(f"unknown trap kind {expect!r}")
        return Call(line, func, args, "trap", expect, body.strip())
    if not sep:
        return Call(line, func, args, "void", None, body.strip())
    return Call(line, func, args, "value", parse_lit(expect), body.strip())


def parse_directives(src: str) -> Directives:
    d = Directives()
    for i, raw in enumerate(src.splitlines()):
        line = i + 1
        stripped = raw.lstrip()
        if not stripped.startswith(";"):
            continue
        key, sep, body = stripped[1:].strip().partition(":")
        if not sep:
            continue
        key, body = key.strip(), body.strip()
        try:
            if key in ("run", "trap"):
                d.calls.append(_parse_call(line, body, key == "trap"))
            elif key == "error":
                if d.error:
                    raise DirectiveError("more than one '; error:'")
                d.error = (line, body)
            elif key == "parse-error":
                if d.parse_error:
                    raise DirectiveError("more than one '; parse-error:'")
                if not body.isdigit():
                    raise DirectiveError(f"{body!r} is not a line number")
                d.parse_error = (line, int(body))
            elif key == "tiers":
                execs = body.split()
                if not execs:
                    raise DirectiveError("'; tiers:' lists no executor")
                for e in execs:
                    if e not in EXECUTORS:
                        raise DirectiveError(f"unknown executor {e!r} (interp, T0, T1, T2, T3)")
                if d.tiers:
                    raise DirectiveError("more than one '; tiers:'")
                d.tiers = (line, execs)
        except DirectiveError as e:
            raise DirectiveError(f"line {line}: {e}") from None
    failing = (d.error is not None) + (d.parse_error is not None)
    if failing + bool(d.calls) == 0:
        raise DirectiveError("no directives ('; run:', '; trap:', '; error:' or '; parse-error:')")
    if failing > 1 or (failing and d.calls):
        raise DirectiveError(
            "'; error:'/'; parse-error:' cannot be combined with each other or with run/trap"
        )
    return d


def files() -> list[pathlib.Path]:
    return sorted(p for d in DIRS for p in d.glob("*.mir"))


# --- Typing literals ------------------------------------------------------------------------

INTS = {f"{s}{w}": (s == "i", w) for s in "iu" for w in (8, 16, 32, 64)}
INTS["ptr"] = (False, 64)


def to_arg(lit: Lit, ty: str) -> Lit:
    """The Python argument for `lit` as a value of scalar type `ty` (range-checked)."""
    if ty == "bool":
        if not isinstance(lit, bool):
            raise DirectiveError(f"{lit!r} is not a value of type bool")
        return lit
    if isinstance(lit, bool):
        raise DirectiveError(f"{lit!r} is not a value of type {ty}")
    if ty in INTS:
        if not isinstance(lit, int):
            raise DirectiveError(f"{lit!r} is not a value of type {ty}")
        signed, w = INTS[ty]
        lo, hi = (-(1 << (w - 1)), (1 << (w - 1)) - 1) if signed else (0, (1 << w) - 1)
        if not lo <= lit <= hi:
            raise DirectiveError(f"{lit} is out of range for {ty}")
        return lit
    if ty in ("f32", "f64"):
        x = float(lit)
        if ty == "f32" and math.isfinite(x):
            try:
                struct.pack("<f", x)
            except OverflowError:
                raise DirectiveError(f"{x} is out of range for f32") from None
        return x
    raise DirectiveError(f"type {ty}: only scalars are supported in directives")


def same(got, want: Lit, ty: str) -> bool:
    """Does result `got` (of scalar type `ty`) match the expected literal? Floats compare
    bitwise (at their own width), except that an expected nan matches any NaN."""
    want = to_arg(want, ty)
    if ty in ("f32", "f64"):
        if not isinstance(got, float):
            return False
        if math.isnan(want):
            return math.isnan(got)
        fmt = "<f" if ty == "f32" else "<d"
        return struct.pack(fmt, got) == struct.pack(fmt, want)
    return type(got) is type(want) and got == want
