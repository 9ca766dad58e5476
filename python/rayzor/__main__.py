"""Command line: ``python -m rayzor demo`` and ``python -m rayzor run FILE FUNC ARGS``."""

from __future__ import annotations

import argparse
import sys

import rayzor


def _number(text: str) -> int | float:
    try:
        return int(text, 0)
    except ValueError:
        return float(text)


def cmd_demo(args: argparse.Namespace) -> int:
    from . import demo

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


def cmd_run(args: argparse.Namespace) -> int:
    with open(args.file, encoding="utf-8") as fh:
        m = rayzor.parse(fh.read())
    m.verify()
    print(rayzor.interpret(m, args.func, *[_number(a) for a in args.args]))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m rayzor", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("demo", help="watch fibonacci climb the tiers while it runs")
    d.add_argument("--preset", choices=["development", "production"], default="development")
    d.add_argument("--calls", type=int, default=5000, help="calls from Python (default 5000)")
    d.add_argument("--n", type=int, default=20, help="fib argument (default 20)")
    d.add_argument("--json", metavar="PATH", help="write the promotion timeline as JSON")
    d.add_argument("--plot", metavar="PATH", help="write a PNG of per-call latency with promotions")
    d.add_argument("--quiet", action="store_true", help="no live display")
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
