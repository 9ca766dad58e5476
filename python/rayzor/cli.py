"""The ``python -m rayzor`` command line.

Subcommands:

- ``run FILE.mir FUNC [ARGS...] [--tier interp|T0|T1|T2|T3|tiered] [--repeat N]``
  parses, verifies and runs one function; prints its result on stdout and the time per
  call on stderr.
- ``check FILE.mir`` parses and verifies; errors are located ``FILE:LINE:COL``.
- ``fmt FILE.mir [--in-place | --check]`` prints the canonical text.
- ``demo`` watches fibonacci climb the tiers (``--workload loop``: one long call moves up
  by on-stack replacement).

Exit status: 0 success, 1 the MIR is invalid (parse or verify error) or failed to
compile, 2 a usage error (bad command line, unreadable file, unknown function, bad
argument), 3 the program trapped, 130 interrupted.

Adding a subcommand: write ``_add_NAME(sub)`` that registers its parser with
``set_defaults(handler=...)`` and append it to :data:`_COMMANDS`. A handler returns
the exit status and raises :class:`UsageError` (or any :class:`rayzor.RayzorError`)
for bad input; :func:`main` turns those into messages, never tracebacks.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import rayzor

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2
EXIT_TRAP = 3
EXIT_INTERRUPTED = 130

TIERS = ("interp", "T0", "T1", "T2", "T3", "tiered")


class UsageError(Exception):
    """Bad input from the user: printed as ``error: ...``, exit status 2."""


class InvalidMir(Exception):
    """A located parse or verify error, already formatted: exit status 1."""


# ---------------------------------------------------------------------------
# Reading and locating
# ---------------------------------------------------------------------------


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory") from None
    except UnicodeDecodeError as e:
        raise UsageError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except OSError as e:
        raise UsageError(f"{path}: {e.strerror or e}") from None


_LABEL = re.compile(r"^\s*block(\d+)\b[^=]*:\s*(;.*)?$")
_FN_HEADER = re.compile(r"^\s*fn\s+([A-Za-z_.$][\w.$]*)\s*\(")


def _strip_comment(line: str) -> str:
    """``line`` without its ``;`` comment (a ``;`` inside a string literal is kept)."""
    in_str = False
    i = 0
    while i < len(line):
        c = line[i]
        if in_str and c == "\\":
            i += 2
            continue
        if c == '"':
            in_str = not in_str
        elif c == ";" and not in_str:
            return line[:i]
        i += 1
    return line


def has_comments(text: str) -> bool:
    return any(_strip_comment(line) != line for line in text.splitlines())


def _locate_verify_error(text: str, e: rayzor.VerifyError) -> tuple[int, int] | None:
    """(line, column) of the instruction, block or function a verify error names, if
    the text pins it down unambiguously."""
    if e.function is None:
        return None
    lines = text.splitlines()
    headers = [i for i, line in enumerate(lines) if (m := _FN_HEADER.match(line)) and m[1] == e.function]
    if len(headers) != 1:
        return None
    start = headers[0]
    # Instructions of each block, in text order (``e.position`` indexes them).
    blocks: dict[int, tuple[int, list[int]]] = {}
    current: list[int] | None = None
    for i in range(start + 1, len(lines)):
        code = _strip_comment(lines[i]).strip()
        if code == "}":
            break
        if not code:
            continue
        label = _LABEL.match(_strip_comment(lines[i]))
        if label:
            current = []
            blocks[int(label[1])] = (i, current)
        elif current is not None:
            current.append(i)

    def col(i: int) -> int:
        return len(lines[i]) - len(lines[i].lstrip()) + 1

    block = int(e.block[5:]) if e.block and e.block.startswith("block") and e.block[5:].isdigit() else None
    if block is not None and block in blocks:
        if e.position is not None:
            insts = blocks[block][1]
            if e.position < len(insts):
                return insts[e.position] + 1, col(insts[e.position])
            return None
        line = blocks[block][0]
        return line + 1, col(line)
    if e.block is None and e.inst is None:
        return start + 1, col(start)
    return None


def load(path: str, *, verify: bool = True) -> tuple[str, rayzor.Module]:
    """Read, parse and (by default) verify a MIR file; errors become :class:`InvalidMir`
    with a ``FILE:LINE:COL:`` prefix where the location is known."""
    text = _read(path)
    try:
        module = rayzor.parse(text)
    except rayzor.ParseError as e:
        msg = e.message
        where = f"{path}:{e.line}:{e.column}" if e.line > 0 else path
        raise InvalidMir(f"{where}: error: {msg}") from None
    if verify:
        try:
            module.verify()
        except rayzor.VerifyError as e:
            loc = _locate_verify_error(text, e)
            where = f"{path}:{loc[0]}:{loc[1]}" if loc else path
            raise InvalidMir(f"{where}: error: {e}") from None
    return text, module


# ---------------------------------------------------------------------------
# check, fmt
# ---------------------------------------------------------------------------


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def cmd_check(args: argparse.Namespace) -> int:
    _, m = load(args.file)
    extra = f", {_plural(len(m.externs), 'extern')}" if m.externs else ""
    print(f"{args.file}: OK ({_plural(len(m.functions), 'function')}{extra})")
    return EXIT_OK


def cmd_fmt(args: argparse.Namespace) -> int:
    text, m = load(args.file, verify=False)
    out = str(m)
    if args.check:
        if text != out:
            print(f"{args.file}: not in canonical form", file=sys.stderr)
            return EXIT_INVALID
        return EXIT_OK
    if not args.in_place:
        sys.stdout.write(out)
        return EXIT_OK
    if text == out:
        return EXIT_OK
    if has_comments(text):
        raise UsageError(f"{args.file}: has ; comments, which fmt does not keep; not rewriting it")
    directory = os.path.dirname(os.path.abspath(args.file))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".rayzor-fmt-", suffix=".mir")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(out)
        os.chmod(tmp, os.stat(args.file).st_mode & 0o7777)
        os.replace(tmp, args.file)
    except BaseException:
        os.unlink(tmp)
        raise
    print(f"reformatted {args.file}", file=sys.stderr)
    return EXIT_OK


# ---------------------------------------------------------------------------
# run
# ---------------------------------------------------------------------------

_INT_RANGES: dict[str, tuple[int, int]] = {
    **{f"i{b}": (-(1 << (b - 1)), (1 << (b - 1)) - 1) for b in (8, 16, 32, 64)},
    **{f"u{b}": (0, (1 << b) - 1) for b in (8, 16, 32, 64)},
}


def parse_arg(text: str, ty: rayzor.Type, what: str) -> bool | int | float:
    """A command-line argument as a Python value for a parameter of type ``ty``."""
    name = str(ty)
    if name == "bool":
        low = text.lower()
        if low in ("true", "1"):
            return True
        if low in ("false", "0"):
            return False
        raise UsageError(f"{what} (bool): expected true or false, got {text!r}")
    if name in _INT_RANGES:
        try:
            value = int(text, 0)
        except ValueError:
            raise UsageError(f"{what} ({name}): expected an integer, got {text!r}") from None
        lo, hi = _INT_RANGES[name]
        if not lo <= value <= hi:
            raise UsageError(f"{what} ({name}): {value} is out of range {lo}..{hi}")
        return value
    if name in ("f32", "f64"):
        try:
            return float(text)
        except ValueError:
            pass
        try:
            return float.fromhex(text)
        except ValueError:
            raise UsageError(f"{what} ({name}): expected a number, got {text!r}") from None
    raise UsageError(f"{what} has type {name}: only bool, integer and float parameters can be given")


def format_result(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def format_seconds(s: float) -> str:
    if s < 1e-6:
        return f"{s * 1e9:.0f} ns"
    if s < 1e-3:
        return f"{s * 1e6:.2f} us"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.3f} s"


def _host(module: rayzor.Module) -> dict[str, int]:
    """Externs resolved by name in the process's C library (libc, libm, ...)."""
    if not module.externs:
        return {}
    libc = ctypes.CDLL(None)
    host: dict[str, int] = {}
    for name in module.externs:
        try:
            addr = ctypes.cast(getattr(libc, name), ctypes.c_void_p).value
        except AttributeError:
            continue
        if addr:
            host[name] = addr
    missing = [name for name in module.externs if name not in host]
    if missing:
        raise UsageError(
            f"extern {', '.join(map(repr, missing))} not found: run resolves externs by name "
            "in the C library of the process (libc, libm)"
        )
    return host


def _time_calls(call: Callable[[], Any], repeat: int) -> tuple[Any, float]:
    """The first call's result and the mean seconds per call over ``repeat`` calls."""
    t0 = time.perf_counter()
    result = call()
    for _ in range(repeat - 1):
        call()
    return result, (time.perf_counter() - t0) / repeat


def cmd_run(args: argparse.Namespace) -> int:
    if args.repeat < 1:
        raise UsageError(f"--repeat must be at least 1, got {args.repeat}")
    _, m = load(args.file)
    func: str = args.func
    if func not in m.functions:
        if func in m.externs:
            raise UsageError(f"{func!r} is an extern declaration, not a function of {args.file}")
        listing = ", ".join(m.functions) or "none"
        raise UsageError(f"no function {func!r} in {args.file} (functions: {listing})")
    params, ret = m.signature(func)
    sig = f"{func}({', '.join(str(p) for p in params)}) -> {ret}"
    if len(args.args) != len(params):
        raise UsageError(f"{sig} takes {_plural(len(params), 'argument')}, got {len(args.args)}")
    values = [
        parse_arg(a, t, f"argument {i + 1} of {func}")
        for i, (a, t) in enumerate(zip(args.args, params, strict=True))
    ]
    if ret != rayzor.void and not ret.is_scalar:
        raise UsageError(f"{sig} returns {ret}: only scalar results can be printed")
    host = _host(m)
    tier: str = args.tier
    note = ""
    if tier == "interp":
        result, per_call = _time_calls(lambda: rayzor.interpret(m, func, *values, host=host), args.repeat)
        where = "in the interpreter"
    else:
        if tier == "tiered":
            config = rayzor.TieredConfig.development() if args.preset == "development" else None
        else:
            config = rayzor.TieredConfig(enable_background_optimization=False)
        with rayzor.TieredJit(m, config, host=host) as jit:
            if tier != "tiered":
                want = rayzor.Tier[tier]
                top, why = jit.top_tier()
                if want > top:
                    raise UsageError(f"{tier} is not available in this build: {why}")
                compile_s = sum(jit.compile(name, want) for name in jit.functions)
                note = f" (compiled in {format_seconds(compile_s)})"
            f = jit[func]
            result, per_call = _time_calls(lambda: f(*values), args.repeat)
            final = jit.tier_of(func)
        where = f"at {final}" if tier != "tiered" else f"tiered (at {final} after the last call)"
    if ret != rayzor.void:
        print(format_result(result))
    calls = _plural(args.repeat, "call")
    print(f"{func}: {calls} {where}, {format_seconds(per_call)} per call{note}", file=sys.stderr)
    return EXIT_OK


# ---------------------------------------------------------------------------
# ir
# ---------------------------------------------------------------------------


def cmd_ir(args: argparse.Namespace) -> int:
    _, m = load(args.file)
    func: str = args.func
    if func not in m.functions:
        listing = ", ".join(m.functions) or "none"
        raise UsageError(f"no function {func!r} in {args.file} (functions: {listing})")
    config = rayzor.TieredConfig(enable_background_optimization=False)
    with rayzor.TieredJit(m, config, host=_host(m)) as jit:
        top, why = jit.top_tier()
        tier = top if args.tier is None else rayzor.Tier[args.tier]
        if tier > top:
            raise UsageError(f"{tier} is not available in this build: {why}")
        stages = jit.ir(func, tier)
        if args.stage is not None and args.stage not in stages:
            raise UsageError(f"{tier} has no stage {args.stage!r} (stages: {', '.join(stages)})")
        chosen = [args.stage] if args.stage else [] if args.asm else list(stages)
        for i, name in enumerate(chosen):
            if len(chosen) > 1:
                if i > 0:
                    print()
                print(f";; {func} at {tier}: {name}")
            sys.stdout.write(stages[name].rstrip("\n") + "\n")
        if args.asm:
            jit.compile(func, tier)
            if chosen:
                print()
            sys.stdout.write(jit.disassemble(func))
    return EXIT_OK


# ---------------------------------------------------------------------------
# demo
# ---------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from . import demo

    if args.workload == "loop":
        return demo.main_loop(args)
    if args.n is None:
        args.n = 20
    result = demo.run(args.preset, args.calls, args.n, live=not args.quiet)
    print()
    print(result.stats)
    med = ", ".join(f"{t}: {us:.1f} us" for t, us in result.median_us_by_tier().items())
    print(f"\nmedian latency of fib({args.n}) by the tier it started in: {med}")
    for p in result.promotions:
        print(
            f"promotion to {p.tier}: published {p.t_ms:.1f} ms after start, first used by call {p.at_call}, "
            f"compiled in {p.compile_ms:.2f} ms ({p.reason})"
        )
    print(f"final tier: {result.final_tier}; every result correct: {result.result_ok}")
    if args.json:
        demo.write_json(result, args.json)
        print(f"wrote {args.json}")
    if args.plot:
        demo.write_plot(result, args.plot)
        print(f"wrote {args.plot}")
    return 0 if result.result_ok else 1


# ---------------------------------------------------------------------------
# Parser
# ---------------------------------------------------------------------------

if TYPE_CHECKING:
    from typing import TypeAlias

    Sub: TypeAlias = argparse._SubParsersAction[argparse.ArgumentParser]


def _add_run(sub: Sub) -> None:
    r = sub.add_parser(
        "run",
        help="run a function of a MIR file",
        description="Parse, verify and run FUNC of FILE. Arguments are read by the function's "
        "parameter types (bool: true/false; integers: 42, -7, 0xff; floats: 2.5, 1e-3, inf). "
        "The result goes to stdout, the time per call to stderr. Put -- before arguments "
        "such as -inf that look like options. Externs are looked up in the C library.",
    )
    r.add_argument("file", metavar="FILE.mir")
    r.add_argument("func", metavar="FUNC")
    r.add_argument("args", nargs="*", metavar="ARGS")
    r.add_argument(
        "--tier",
        choices=TIERS,
        default="tiered",
        help="interp: the reference interpreter; T0-T3: every function compiled at that tier; "
        "tiered (default): start at T0 and let hot code climb",
    )
    r.add_argument("--repeat", type=int, default=1, metavar="N", help="call it N times (default 1)")
    r.add_argument(
        "--preset",
        choices=["development", "production"],
        default="development",
        help="tiering thresholds for --tier tiered (default development)",
    )
    r.set_defaults(handler=cmd_run)


def _add_check(sub: Sub) -> None:
    c = sub.add_parser("check", help="parse and verify a MIR file", description="Parse and verify FILE.")
    c.add_argument("file", metavar="FILE.mir")
    c.set_defaults(handler=cmd_check)


def _add_fmt(sub: Sub) -> None:
    f = sub.add_parser(
        "fmt",
        help="print a MIR file in canonical form",
        description="Print FILE in canonical text (values renumbered, comments dropped).",
    )
    f.add_argument("file", metavar="FILE.mir")
    g = f.add_mutually_exclusive_group()
    g.add_argument("--in-place", action="store_true", help="rewrite FILE (refused if it has comments)")
    g.add_argument("--check", action="store_true", help="exit 1 if FILE is not canonical; print nothing")
    f.set_defaults(handler=cmd_fmt)


def _add_ir(sub: Sub) -> None:
    i = sub.add_parser(
        "ir",
        help="print a function's IR and machine code at a tier",
        description="Print the IR of FUNC of FILE at a tier, stage by stage: the MIR the backend "
        "compiles (after Rayzor's MIR optimiser from T2 on), then the Cranelift IR before and after "
        "Cranelift's optimiser (clif, clif_opt; T0-T2) or the LLVM IR before and after O3 "
        "(llvm, llvm_opt; T3). --asm prints the machine code of FUNC compiled at the tier instead "
        "(with --stage: as well).",
    )
    i.add_argument("file", metavar="FILE.mir")
    i.add_argument("func", metavar="FUNC")
    i.add_argument(
        "--tier", choices=TIERS[1:5], default=None, help="T0..T3 (default: the highest tier of this build)"
    )
    i.add_argument(
        "--stage", choices=["mir", "clif", "clif_opt", "llvm", "llvm_opt"], help="print only this stage"
    )
    i.add_argument("--asm", action="store_true", help="print the disassembled machine code")
    i.set_defaults(handler=cmd_ir)


def _add_demo(sub: Sub) -> None:
    d = sub.add_parser("demo", help="watch fibonacci (or one long loop, by OSR) climb the tiers")
    d.add_argument(
        "--workload",
        choices=["fib", "loop"],
        default="fib",
        help="fib (default): many calls of fib(n); loop: one call of loop_sum(n), tiered up by OSR",
    )
    d.add_argument("--preset", choices=["development", "production"], default="development")
    d.add_argument("--calls", type=int, default=5000, help="fib: calls from Python (default 5000)")
    d.add_argument("--n", type=int, help="fib argument (default 20) / loop_sum argument (default 50,000,000)")
    d.add_argument("--json", metavar="PATH", help="write the promotion timeline as JSON")
    d.add_argument("--plot", metavar="PATH", help="write a PNG of per-call latency with promotions")
    d.add_argument("--quiet", action="store_true", help="no live display")
    d.set_defaults(handler=cmd_demo)


#: Subcommands in ``--help`` order.
_COMMANDS: list[Callable[[Sub], None]] = [_add_run, _add_check, _add_fmt, _add_ir, _add_demo]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m rayzor",
        description="Rayzor: a tiered JIT for MIR.",
        epilog="exit status: 0 ok, 1 invalid MIR, 2 usage error, 3 trap",
    )
    p.add_argument("--version", action="version", version=f"rayzor {rayzor.__version__}")
    sub = p.add_subparsers(dest="cmd", required=True, metavar="COMMAND")
    for add in _COMMANDS:
        add(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after "--" is a positional argument of ``run`` (argparse cannot take
    # more positionals once an option followed the first ones: ``run f.mir g --tier T0 -- -1e3``).
    tail: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, tail = argv[:i], argv[i + 1 :]
    parser = build_parser()
    args = parser.parse_args(argv)
    if tail:
        if args.cmd != "run":
            parser.error(f"unrecognized arguments: -- {' '.join(tail)}")
        args.args = [*args.args, *tail]
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except InvalidMir as e:
        print(e, file=sys.stderr)
        return EXIT_INVALID
    except rayzor.Trap as e:
        msg = str(e)
        if e.kind.value not in msg:
            where = f" in function {e.function!r}" if e.function else ""
            msg = f"trap: {e.kind}{where}: {msg}"
        print(msg, file=sys.stderr)
        return EXIT_TRAP
    except rayzor.StepLimitError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_TRAP
    except rayzor.ArgumentError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except rayzor.RayzorError as e:
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_INVALID
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # e.g. `python -m rayzor fmt big.mir | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
