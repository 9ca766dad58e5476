"""examples/tinypy.py: programs compiled to MIR agree with the same source run as Python,
in the interpreter, at every forced tier and tiered; unsupported syntax names its line."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import rayzor

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))
import tinypy  # noqa: E402

RECURSION = '''
"""Recursion, mutual recursion, calls to functions defined later."""

def fib(n: int) -> int:
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)

def ack(m: int, n: int) -> int:
    if m == 0:
        return n + 1
    elif n == 0:
        return ack(m - 1, 1)
    else:
        return ack(m - 1, ack(m, n - 1))

def is_even(n: int) -> bool:
    return True if n == 0 else is_odd(n - 1)

def is_odd(n: int) -> bool:
    return False if n == 0 else is_even(n - 1)

def gcd(a: int, b: int) -> int:
    return a if b == 0 else gcd(b, a % b)
'''

LOOPS = """
def collatz(n: int) -> int:
    steps = 0
    while n != 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps

def primes(n: int) -> int:
    count = 0
    for k in range(2, n):
        is_p = True
        j = 2
        while j * j <= k:
            if k % j == 0:
                is_p = False
                break
            j += 1
        if not is_p:
            continue
        count += 1
    return count

def down(n: int) -> int:
    s = 0
    for i in range(n, 0, -3):
        s = s * 7 + i
    return s

def triangle(n: int) -> int:
    total = 0
    for i in range(n):
        for j in range(i + 1):
            if (i + j) % 5 == 0:
                continue
            total += i * j
    return total

def fibi(n: int) -> int:
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a

def first_square_above(n: int) -> int:
    k = 0
    while True:
        if k * k > n:
            return k
        k += 1

def last_index(n: int) -> int:
    for i in range(3, n):
        pass
    return i

def loop_var_reassigned(n: int) -> int:
    s = 0
    for i in range(n):
        s += i
        i = 100
    return s
"""

ARITH = """
def floors(a: int, b: int) -> int:
    return (a // b) * 1000 + a % b

def bits(a: int, b: int) -> int:
    return ((a & b) ^ (a | 7)) + (a << 3) - (b >> 1) + ~a

def unary(a: int) -> int:
    return -a + +a * 2 - abs(a)

def mixed(a: int, x: float) -> float:
    y: float = a
    y += x * 2
    return y / 4 + a / 3 - float(a) * x

def conv(x: float) -> int:
    return int(x) * 10 + int(-x) + int(bool(x)) + int(True)

def extremes(a: int, b: int, c: int) -> int:
    return max(a, b, c) * 100 + min(a, b) - max(a, 0)

def chained(a: int, b: int, c: int) -> bool:
    return a < b <= c != a

def either(a: int, b: int) -> int:
    return a or b

def both(a: int, b: int) -> int:
    return (a and b) + (a and b and 3)

def safe_div(a: int, b: int) -> bool:
    return b != 0 and a // b > 2

def logic(p: bool, q: bool) -> bool:
    return (p and not q) or (q and not p) or (p & q) ^ (not p | q)

def truthy(x: float) -> int:
    n = 0
    if x:
        n += 1
    if not x:
        n += 10
    if x > 0.5 or x < -0.5:
        n += 100
    return n
"""

FLOATS = """
def newton_sqrt(x: float) -> float:
    g = x / 2 + 1
    for _ in range(30):
        g = (g + x / g) / 2
    return g

def leibniz(n: int) -> float:
    s = 0.0
    sign = 1.0
    for k in range(n):
        s += sign / (2 * k + 1)
        sign = -sign
    return 4 * s

def horner(x: float) -> float:
    return ((3.5 * x - 2) * x + 0.25) * x - 7

def mean_of_squares(n: int) -> float:
    total = 0.0
    i = 1
    while i <= n:
        total += i * i
        i += 1
    return total / n
"""

SIDE = """
def nothing(x: int) -> None:
    if x > 0:
        return
    return

def uses_nothing(x: int) -> int:
    nothing(x)
    return x + 1

def divide(a: int, b: int) -> int:
    return a // b

def checked(a: int) -> int:
    assert a >= 0
    return a * 2

def unset_after_return(n: int) -> int:
    return n
    n = 5
"""

CASES: dict[str, tuple[str, list[tuple[str, tuple[Any, ...]]]]] = {
    "recursion": (
        RECURSION,
        [("fib", (0,)), ("fib", (15,)), ("ack", (2, 3)), ("is_even", (10,)), ("is_odd", (7,))]
        + [("gcd", (84, 36))],
    ),
    "loops": (
        LOOPS,
        [
            ("collatz", (27,)),
            ("primes", (200,)),
            ("down", (20,)),
            ("down", (0,)),
            ("triangle", (30,)),
            ("fibi", (90,)),
            ("first_square_above", (50,)),
            ("last_index", (9,)),
            ("loop_var_reassigned", (10,)),
        ],
    ),
    "arith": (
        ARITH,
        [("floors", (a, b)) for a in (-7, 7, 0) for b in (2, -2, 3)]
        + [
            ("bits", (12345, -77)),
            ("unary", (-9,)),
            ("mixed", (3, 0.1)),
            ("conv", (2.75,)),
            ("conv", (-0.5,)),
            ("extremes", (3, -8, 5)),
            ("extremes", (-1, -2, -3)),
            ("chained", (1, 2, 2)),
            ("chained", (1, 2, 1)),
            ("chained", (3, 2, 2)),
            ("either", (0, 5)),
            ("either", (4, 5)),
            ("both", (0, 5)),
            ("both", (4, 5)),
            ("safe_div", (9, 0)),
            ("safe_div", (9, 2)),
            ("logic", (True, False)),
            ("logic", (True, True)),
            ("logic", (False, False)),
            ("truthy", (0.0,)),
            ("truthy", (0.25,)),
            ("truthy", (-3.0,)),
            ("truthy", (math.nan,)),
        ],
    ),
    "floats": (
        FLOATS,
        [("newton_sqrt", (2.0,)), ("leibniz", (1000,)), ("horner", (1.5,)), ("mean_of_squares", (10,))],
    ),
    "side": (
        SIDE,
        [
            ("uses_nothing", (3,)),
            ("uses_nothing", (-3,)),
            ("divide", (7, 0)),
            ("divide", (-7, 2)),
            ("checked", (4,)),
            ("checked", (-1,)),
            ("unset_after_return", (4,)),
        ],
    ),
}

#: Python exceptions and the traps the compiled code raises instead.
TRAPS = {ZeroDivisionError: rayzor.TrapKind.DIVISION_BY_ZERO, AssertionError: rayzor.TrapKind.USER}

TIERS = ["interp", "T0", "T1", "T2", "T3", "tiered"]


def outcome(call: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "ok", call()
    except rayzor.Trap as e:
        return "trap", e.kind
    except (ZeroDivisionError, AssertionError) as e:
        return "trap", TRAPS[type(e)]


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return bool(a == b) and type(a) is type(b)


def runner(source: str, tier: str) -> tuple[Callable[..., Any], Callable[[], None]]:
    """(call(name, *args), close) running ``source`` at ``tier``."""
    module = tinypy.compile_source(source)
    assert rayzor.parse(str(module)) == module
    if tier == "interp":
        return (lambda name, *args: rayzor.interpret(module, name, *args)), (lambda: None)
    if tier == "tiered":
        jit = rayzor.TieredJit(module, rayzor.TieredConfig.development())
    else:
        jit = rayzor.TieredJit(module, rayzor.TieredConfig(enable_background_optimization=False))
        for name in jit.functions:
            jit.compile(name, rayzor.Tier[tier])
            assert jit.tier_of(name) == rayzor.Tier[tier]
    return (lambda name, *args: jit[name](*args)), jit.close


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("case", sorted(CASES))
def test_programs_agree_with_python(case: str, tier: str) -> None:
    if tier == "T3" and not rayzor.llvm_available():
        pytest.skip("built without LLVM")
    source, calls = CASES[case]
    namespace: dict[str, Any] = {}
    exec(compile(source, f"<{case}>", "exec"), namespace)
    call, close = runner(source, tier)
    try:
        rounds = 40 if tier == "tiered" else 1  # let the promoter move hot code up
        for _ in range(rounds):
            for name, args in calls:
                want = outcome(lambda: namespace[name](*args))  # noqa: B023
                got = outcome(lambda: call(name, *args))  # noqa: B023
                assert want[0] == got[0] and same(want[1], got[1]), (name, args, want, got)
    finally:
        close()


def test_hot_code_climbs_the_tiers() -> None:
    with tinypy.Program(RECURSION, rayzor.TieredConfig.development()) as prog:
        fib = prog["fib"]
        assert prog.jit.tier_of("fib") == rayzor.Tier.T0
        deadline = time.monotonic() + 120  # generous: a slow, loaded machine; idle, well under 1 s
        while prog.jit.tier_of("fib") < rayzor.Tier.T1 and time.monotonic() < deadline:
            for _ in range(50):
                assert fib(12) == 144
            time.sleep(0.001)
        assert prog.jit.tier_of("fib") >= rayzor.Tier.T1
        assert fib(12) == 144
        assert prog["gcd"](1071, 462) == 21


def test_module_is_plain_mir() -> None:
    m = tinypy.compile_source(LOOPS)
    assert m.functions[:2] == ["collatz", "primes"]
    assert m.signature("fibi") == ([rayzor.i64], rayzor.i64)
    assert rayzor.parse(str(m)) == m
    assert "call" not in str(m) and "brif" in str(m)
    assert tinypy.compile_source(FLOATS).signature("horner") == ([rayzor.f64], rayzor.f64)


def _lines(*lines: str) -> str:
    return "\n".join(lines) + "\n"


BAD_PROGRAMS = [
    (
        _lines("def f(x: int) -> int:", "    y = [1, 2]", "    return x"),
        2,
        "unsupported syntax: list display",
    ),
    (_lines("def f(x) -> int:", "    return 1"), 1, "parameter 'x' needs a type annotation"),
    (_lines("def f(x: str) -> int:", "    return 1"), 1, "unsupported type 'str'"),
    (_lines("def f(x: int):", "    return 1"), 1, "the result of f() needs a type annotation"),
    (_lines("import math"), 1, "only def statements are allowed at the top level, not import"),
    (
        _lines(
            "def f(x: int) -> int:",
            "    x -= 1",
            "    while x:",
            "        x -= 1",
            "    else:",
            "        pass",
            "    return x",
        ),
        3,
        "while ... else is not supported",
    ),
    (
        _lines(
            "def f(x: int) -> int:", "    s = 0", "    for i in [1, 2]:", "        s += i", "    return s"
        ),
        3,
        "for loops must iterate over range(...)",
    ),
    (_lines("def f(x: float) -> float:", "", "    return x // 2.0"), 3, "'//' needs ints, not float"),
    (_lines("def f(x: int) -> int:", "    return x ** 2"), 2, "operator '**' is not supported"),
    (_lines("def f(x: int) -> int:", "    s = 'hi'", "    return x"), 2, "str constants are not supported"),
    (_lines("def f(x: int) -> int:", "    return y"), 2, "name 'y' is not defined"),
    (
        _lines("def f(x: int) -> int:", "    x = 1.5", "    return 0"),
        2,
        "cannot assign a float to 'x', which holds int",
    ),
    (_lines("def f(x: int) -> int:", "    print(x)", "    return x"), 2, "unknown function 'print'"),
    (
        _lines("def f(x: int) -> int:", "    if x:", "        break", "    return x"),
        3,
        "'break' outside a loop",
    ),
    (_lines("def f(x: int) -> int:", "    return (x"), 2, "syntax error"),
    (
        _lines("def g(a: int) -> int:", "    return a", "def f(x: int) -> int:", "    return g(a=x)"),
        4,
        "keyword arguments are not supported",
    ),
    (_lines("def f(x: int) -> int:", "    return"), 2, "return without a value in a function returning int"),
    (
        _lines("def f(x: int) -> int:", "    for i in range(0, 9, x):", "        pass", "    return x"),
        2,
        "the step of range() must be a non-zero int constant",
    ),
    (_lines("def f(x: int) -> bool:", "    return x is 1"), 2, "comparison 'is' is not supported"),
    (
        _lines("def f(x: int) -> int:", "    def g() -> int:", "        return 1", "    return x"),
        2,
        "unsupported syntax: nested function",
    ),
    (_lines("def f(x: float) -> float:", "    return x.real"), 2, "unsupported syntax: attribute access"),
    (
        _lines("def g(a: int) -> None:", "    return", "def f(x: int) -> int:", "    return g(x) + 1"),
        4,
        "this call returns None",
    ),
    (
        _lines("def f(x: int) -> int:", "    return 1 << 64 if x else 99999999999999999999"),
        2,
        "99999999999999999999 does not fit in a 64-bit int",
    ),
    (
        _lines("def f(x: int) -> int:", "    return x", "def f(y: int) -> int:", "    return y"),
        3,
        "function 'f' is defined twice",
    ),
]


@pytest.mark.parametrize("source, line, message", BAD_PROGRAMS)
def test_unsupported_syntax_names_the_line(source: str, line: int, message: str) -> None:
    with pytest.raises(tinypy.FrontendError) as info:
        tinypy.compile_source(source, "prog.py")
    assert info.value.lineno == line
    assert str(info.value).startswith(f"prog.py, line {line}: "), str(info.value)
    assert message in str(info.value), str(info.value)


def test_command_line(tmp_path: Path) -> None:
    (tmp_path / "p.py").write_text(RECURSION)

    def tinypy_cli(*args: str) -> subprocess.CompletedProcess[str]:
        script = str(EXAMPLES / "tinypy.py")
        return subprocess.run([sys.executable, script, *args], cwd=tmp_path, capture_output=True, text=True)

    p = tinypy_cli("p.py", "fib", "20")
    assert (p.returncode, p.stdout) == (0, "6765\n"), p.stderr
    p = tinypy_cli("p.py", "gcd", "12", "18", "--tier", "T2")
    assert (p.returncode, p.stdout) == (0, "6\n"), p.stderr
    (tmp_path / "bad.py").write_text("def f(x: int) -> int:\n    return [x]\n")
    p = tinypy_cli("bad.py", "f", "1")
    assert p.returncode == 1 and p.stderr == "error: bad.py, line 2: unsupported syntax: list display\n"
