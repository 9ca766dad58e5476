"""Command line: ``python -m rayzor demo`` and ``python -m rayzor run FILE FUNC ARGS``."""

from __future__ import annotations

import argparse
import sys
import time

import rayzor
from rayzor.examples import fib_module, py_fib


def _number(text: str) -> int | float:
    try:
        return int(text, 0)
    except ValueError:
        return float(text)


def cmd_demo(args: argparse.Namespace) -> int:
    m = fib_module()
    print("MIR built through the Python API:\n")
    print(m)
    t0 = time.perf_counter()
    result = rayzor.interpret(m, "fib", args.n)
    dt = time.perf_counter() - t0
    ok = result == py_fib(args.n)
    print(f"interpreter: fib({args.n}) = {result} in {dt * 1e3:.2f} ms "
          f"({'correct' if ok else 'WRONG, expected ' + str(py_fib(args.n))})")
    return 0 if ok else 1


def cmd_run(args: argparse.Namespace) -> int:
    with open(args.file, encoding="utf-8") as fh:
        m = rayzor.parse(fh.read())
    m.verify()
    print(rayzor.interpret(m, args.func, *[_number(a) for a in args.args]))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rayzor", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="build fibonacci in MIR and run it")
    d.add_argument("--n", type=int, default=20, help="fib argument (default 20)")
    d.set_defaults(func=cmd_demo)
    r = sub.add_parser("run", help="run a function of a MIR text file in the interpreter")
    r.add_argument("file")
    r.add_argument("func")
    r.add_argument("args", nargs="*")
    r.set_defaults(func=cmd_run)
    args = p.parse_args(argv)
    try:
        return args.func(args)
    except rayzor.RayzorError as e:
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
