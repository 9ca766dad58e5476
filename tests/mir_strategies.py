"""Hypothesis strategies that generate random, well-typed, terminating MIR modules.

``modules()`` draws a :class:`GenModule`: MIR text (and the parsed, verified
``rayzor.Module``) with an entry function ``main`` taking a few scalar
parameters and returning a scalar, plus helper functions it calls.
``arguments(param_types)`` draws inputs for ``main``.

What the generator guarantees, so that every tier must agree with the
interpreter on every input:

* well-typed, verifiable SSA (a verify failure is a generator bug);
* termination: loops count a block-parameter counter up to a bound of at most
  7, self-recursion passes an explicit depth parameter (at most 3) that
  decreases, and the call graph is otherwise acyclic;
* memory safety: every heap access goes through ``elem`` with an index masked
  into a power-of-two buffer length, memset/memcpy lengths are constants within
  the buffers, and every buffer is freed at the end of the region that made it
  (a trap may leak it, which the contract allows);
* determinism: addresses (``alloc``, ``elem``, ``field``, ``str.const``
  pointers, ``func.addr``) never flow into computed values, and floats only
  reach ``bitcast`` after their NaNs are canonicalised (NaN payloads are not
  part of the contract).

Traps are generated on purpose: integer ``div``/``rem`` by values that may be 0
or -1 (with ``MIN`` dividends), ``union.get``/``any.get`` whose tag may not
match, and conditional ``trap``/``unreachable``.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from functools import cache

from hypothesis import strategies as st

import rayzor

INTS = ["i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64"]
SIGNED = {"i8", "i16", "i32", "i64"}
FLOATS = ["f32", "f64"]
NUMS = INTS + FLOATS
SCALARS = ["bool"] + NUMS + ["ptr"]
BITS = {
    "bool": 1,
    "i8": 8,
    "u8": 8,
    "i16": 16,
    "u16": 16,
    "i32": 32,
    "u32": 32,
    "f32": 32,
    "i64": 64,
    "u64": 64,
    "f64": 64,
    "ptr": 64,
}
INT_BINOPS = [
    "add",
    "sub",
    "mul",
    "div",
    "rem",
    "and",
    "or",
    "xor",
    "shl",
    "shr",
    "rotl",
    "rotr",
    "min",
    "max",
]
FLOAT_BINOPS = ["add", "sub", "mul", "div", "rem", "min", "max", "copysign"]
BOOL_BINOPS = ["and", "or", "xor"]
INT_UNOPS = ["neg", "not", "abs", "clz", "ctz", "popcnt"]
FLOAT_UNOPS = ["neg", "abs", "sqrt", "floor", "ceil", "trunc", "nearest"]
CMPS = ["eq", "ne", "lt", "le", "gt", "ge"]


def int_range(t: str) -> tuple[int, int]:
    if t == "bool":
        return 0, 1
    if t == "ptr":
        return 0, 2**64 - 1
    w = BITS[t]
    if t in SIGNED:
        return -(2 ** (w - 1)), 2 ** (w - 1) - 1
    return 0, 2**w - 1


def f32_round(x: float) -> float:
    try:
        return struct.unpack("<f", struct.pack("<f", x))[0]
    except OverflowError:
        return math.copysign(math.inf, x)


F64_SPECIAL = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.5,
    -2.5,
    3.0,
    1e308,
    -1e308,
    1.7976931348623157e308,
    5e-324,
    -5e-324,
    2.2250738585072014e-308,
    2.225073858507201e-308,
    math.inf,
    -math.inf,
    math.nan,
    9007199254740993.0,
    2.0**63,
    -(2.0**63),
    2.0**64,
    4294967296.0,
    2147483648.5,
    -2147483649.0,
    127.5,
    255.9,
    65536.0,
    1e-10,
]
F32_SPECIAL = [f32_round(x) for x in F64_SPECIAL if not math.isnan(x)] + [
    math.nan,
    3.4028234663852886e38,
    1.401298464324817e-45,
    1.1754942106924411e-38,
    16777217.0,
]


# ---------------------------------------------------------------------------
# Types: scalars are strings ("i32", "any"); aggregates are tuples
#   ("struct", (T, ...)), ("array", T, n), ("union", (T, ...)).
# ---------------------------------------------------------------------------


def tstr(t) -> str:
    if isinstance(t, str):
        return t
    if t[0] == "struct":
        return "{" + ", ".join(tstr(x) for x in t[1]) + "}"
    if t[0] == "array":
        return f"[{tstr(t[1])}; {t[2]}]"
    if t[0] == "union":
        return "union<" + ", ".join(tstr(x) for x in t[1]) + ">"
    raise AssertionError(t)


@cache
def size_of(t) -> int:
    return rayzor.parse_type(tstr(t)).size


def is_scalar(t) -> bool:
    return isinstance(t, str) and t in SCALARS


def fields(t) -> list:
    if t[0] == "struct":
        return list(t[1])
    if t[0] == "array":
        return [t[1]] * t[2]
    raise AssertionError(t)


def has_float(t) -> bool:
    return "f32" in tstr(t) or "f64" in tstr(t) or t == "any" or "any" in tstr(t)


def fmt_float(x: float, t: str) -> str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return repr(float(x))


# ---------------------------------------------------------------------------
# Drawing helpers
# ---------------------------------------------------------------------------


class R:
    """Random choices through hypothesis's `draw` (so examples shrink)."""

    def __init__(self, draw):
        self.draw = draw

    def int(self, lo: int, hi: int) -> int:
        return self.draw(st.integers(lo, hi))

    def choice(self, seq):
        seq = list(seq)
        return seq[self.int(0, len(seq) - 1)]

    def chance(self, p: float) -> bool:
        # Weighted coin via an integer draw: 0 shrinks to "no".
        return self.int(0, 999) >= 1000 - int(p * 1000)

    def weighted(self, items):
        total = sum(w for _, w in items)
        k = self.int(0, total - 1)
        for x, w in items:
            if k < w:
                return x
            k -= w
        raise AssertionError


def draw_int_value(r: R, t: str) -> int:
    lo, hi = int_range(t)
    specials = [0, 1, lo, hi, 2, 3, 7, lo + 1, hi - 1]
    if t in SIGNED:
        specials += [-1, -2]
    if r.chance(0.6):
        return r.choice(specials)
    return r.int(lo, hi)


def draw_float_value(r: R, t: str) -> float:
    if r.chance(0.6):
        return r.choice(F32_SPECIAL if t == "f32" else F64_SPECIAL)
    x = r.draw(st.floats(width=32 if t == "f32" else 64))
    return x


def const_text(r: R, t: str) -> str:
    if t == "bool":
        return r.choice(["true", "false"])
    if t in FLOATS:
        if r.chance(0.1):
            # A NaN with a payload (only observable as bits, which the generator hides).
            return "nan:0x7fc00001" if t == "f32" else "nan:0x7ff8000000000001"
        return fmt_float(draw_float_value(r, t), t)
    if t == "ptr":
        return hex(r.choice([0, 1, 4096, 0xDEADBEEF, 2**64 - 1, r.int(0, 2**64 - 1)]))
    return str(draw_int_value(r, t))


def scalar_type(r: R, allow_ptr: bool = True) -> str:
    items = [("bool", 2)] + [(t, 3) for t in INTS] + [("f32", 4), ("f64", 4)]
    if allow_ptr:
        items.append(("ptr", 1))
    return r.weighted(items)


def agg_type(r: R, depth: int = 0):
    """A small struct/array type with scalar (or nested) leaves."""

    def leaf():
        if depth < 1 and r.chance(0.2):
            return agg_type(r, depth + 1)
        return scalar_type(r, allow_ptr=False)

    if r.chance(0.6):
        return ("struct", tuple(leaf() for _ in range(r.int(1, 3))))
    return ("array", leaf(), r.int(1, 3))


def union_type(r: R):
    vs = []
    for _ in range(r.int(1, 3)):
        vs.append(scalar_type(r, allow_ptr=False) if r.chance(0.75) else agg_type(r, 1))
    return ("union", tuple(vs))


# ---------------------------------------------------------------------------
# Function generation
# ---------------------------------------------------------------------------


@dataclass
class Helper:
    name: str
    params: list
    ret: object  # type or "void"
    recursive: bool
    deep: bool = False  # recursion to near MAX_CALL_DEPTH (hand-written template)


class FnGen:
    MAX_NEST = 3

    def __init__(
        self, mg: ModuleGen, name: str, params: list, ret, callees: list[Helper], recursive: bool = False
    ):
        self.mg, self.r = mg, mg.r
        self.name, self.params, self.ret = name, params, ret
        self.callees, self.recursive = callees, recursive
        self.blocks: list[list] = []  # [param list, line list]
        self.cur: int | None = None
        self.nval = 0
        self.pool: list[tuple[str, object]] = []
        self.bufs: list[tuple[str, object, int]] = []  # (ptr, element type, count)
        self.tags: dict[str, set[int]] = {}  # possible union variants / any types of a value
        self.nest = 0
        self.loops = 0
        self.self_calls = 0
        self.in_self_arm = False

    # --- low level ---
    def new_block(self, ptypes=()) -> tuple[int, list[str]]:
        names = [self.fresh() for _ in ptypes]
        self.blocks.append([list(zip(names, ptypes, strict=True)), []])
        return len(self.blocks) - 1, names

    def switch_to(self, b: int) -> None:
        self.cur = b

    def fresh(self) -> str:
        self.nval += 1
        return f"v{self.nval - 1}"

    def line(self, s: str) -> None:
        self.blocks[self.cur][1].append("  " + s)

    def term(self, s: str) -> None:
        self.line(s)
        self.cur = None

    def define(self, t, rhs: str, pool: bool = True) -> str:
        v = self.fresh()
        self.line(f"{v}: {tstr(t)} = {rhs}")
        if pool:
            self.pool.append((v, t))
        return v

    def of_type(self, t) -> list[str]:
        return [v for v, vt in self.pool if vt == t]

    def pool_types(self, pred=lambda t: True) -> list:
        seen = []
        for _, t in self.pool:
            if pred(t) and t not in seen:
                seen.append(t)
        return seen

    def get(self, t) -> str:
        """A value of type `t`: from the pool or freshly built."""
        have = self.of_type(t)
        if have and self.r.chance(0.8):
            return self.r.choice(have)
        if is_scalar(t):
            if t != "ptr" and self.r.chance(0.15):
                src_t = self.r.choice(self.pool_types(lambda x: is_scalar(x) and x != "ptr") or ["i32"])
                return self.convert(self.get(src_t), src_t, t)
            return self.define(t, f"const {const_text(self.r, t)}")
        if t == "any":
            s = scalar_type(self.r, allow_ptr=False)
            v = self.define("any", f"any.make {self.get(s)}")
            self.tags[v] = {s}
            return v
        if t[0] == "union":
            i = self.r.int(0, len(t[1]) - 1)
            if self.r.chance(0.1):
                v = self.define(t, "zero")
                self.tags[v] = {0}
                return v
            v = self.define(t, f"union.make {i}, {self.get(t[1][i])}")
            self.tags[v] = {i}
            return v
        # struct / array: zero then a few inserts
        v = self.define(t, "zero")
        fs = fields(t)
        for i in range(len(fs)):
            if self.r.chance(0.7):
                v = self.define(t, f"insert {v}, {i}, {self.get(fs[i])}")
        return v

    def convert(self, v: str, a: str, b: str) -> str:
        """Convert scalar `v` of type `a` to type `b` with casts the verifier accepts."""
        if a == b:
            return v
        if a == "ptr":
            v, a = self.define("u64", f"cast {v}"), "u64"
            return self.convert(v, a, b)
        if b == "ptr":
            if a not in ("i64", "u64"):
                v, a = self.convert(v, a, "i64"), "i64"
            return self.define("ptr", f"cast {v}")
        if a != "bool" and b != "bool" and BITS[a] == BITS[b] and self.r.chance(0.3):
            return self.bitcast(v, a, b)
        return self.define(b, f"cast {v}")

    def canon_nan(self, v: str, t: str) -> str:
        isnan = self.define("bool", f"ne {v}, {v}", pool=False)
        nan = self.define(t, "const nan", pool=False)
        return self.define(t, f"select {isnan}, {nan}, {v}", pool=False)

    def bitcast(self, v: str, a: str, b: str) -> str:
        if a in FLOATS:
            v = self.canon_nan(v, a)
        return self.define(b, f"bitcast {v}")

    def int_type(self) -> str:
        return self.r.choice(INTS)

    def small_index(self, n: int) -> tuple[str, str]:
        """An integer value in [0, n) for a power-of-two n, and its type."""
        it = self.r.choice(self.pool_types(lambda t: t in INTS) or ["i64"])
        x = self.get(it)
        m = self.define(it, f"const {n - 1}", pool=False)
        return self.define(it, f"and {x}, {m}", pool=False), it

    # --- statements ---
    def region(self, budget: int) -> None:
        """Statements in the current block (and blocks they create); buffers allocated
        here are freed at the end. Values stay in the pool: callers scope them."""
        mark_bufs = len(self.bufs)
        while budget > 0:
            budget -= self.statement(budget)
        for p, _, _ in self.bufs[mark_bufs:]:
            self.line(f"free {p}")
        del self.bufs[mark_bufs:]

    def statement(self, budget: int) -> int:
        r = self.r
        nest_ok = self.nest < self.MAX_NEST and budget >= 4
        choices = [
            ("binary", 30),
            ("unary", 8),
            ("fma", 2),
            ("cmp", 24),
            ("select", 5),
            ("cast", 10),
            ("const", 3),
            ("divtrap", 4),
            ("agg", 5),
            ("union", 4),
            ("any", 3),
            ("mem", 4 if budget >= 4 else 0),
            ("buf", 8 if self.bufs else 0),
            ("str", 1),
            ("trapbr", 1),
            ("earlyret", 1),
            ("brif2", 2),
            ("if", 6 if nest_ok else 0),
            ("switch", 4 if nest_ok else 0),
            ("loop", 4 if nest_ok and self.loops < 2 else 0),
            # Calls inside loops are rarer: they multiply the work.
            ("call", (1 if self.loops else 5) if self.callees else 0),
            ("self", 8 if self.in_self_arm and self.self_calls < 2 and not self.loops else 0),
        ]
        kind = r.weighted(choices)
        return getattr(self, "s_" + kind)(budget)

    def s_binary(self, budget: int) -> int:
        t = self.r.choice(
            self.pool_types(lambda t: is_scalar(t) and t != "ptr") or [scalar_type(self.r, False)]
        )
        ops = BOOL_BINOPS if t == "bool" else FLOAT_BINOPS if t in FLOATS else INT_BINOPS
        op = self.r.choice(ops)
        a, b = self.get(t), self.get(t)
        if op == "copysign":
            # The sign of a NaN an operation produced is unspecified (docs/mir.md): read
            # only the sign of a canonical NaN.
            b = self.canon_nan(b, t)
        if op in ("div", "rem") and t in INTS and self.r.chance(0.7):
            one = self.define(t, "const 1", pool=False)
            b = self.define(t, f"or {b}, {one}", pool=False)  # never 0 (may still be -1)
        self.define(t, f"{op} {a}, {b}")
        return 1

    def s_divtrap(self, budget: int) -> int:
        t = self.r.choice(["i8", "i16", "i32", "i64", "u32", "u8", "u64"])
        lo, _ = int_range(t)
        a = self.get(t) if self.r.chance(0.5) else self.define(t, f"const {lo}")
        b = self.get(t)
        if t in SIGNED and self.r.chance(0.4):
            # -1 or 0 from the low bit of a value: MIN / -1 and x / 0 both reachable.
            one = self.define(t, "const 1", pool=False)
            low = self.define(t, f"and {b}, {one}", pool=False)
            b = self.define(t, f"neg {low}", pool=False)
        self.define(t, f"{self.r.choice(['div', 'rem'])} {a}, {b}")
        return 1

    def s_unary(self, budget: int) -> int:
        t = self.r.choice(
            self.pool_types(lambda t: is_scalar(t) and t != "ptr") or [scalar_type(self.r, False)]
        )
        ops = ["not"] if t == "bool" else FLOAT_UNOPS if t in FLOATS else INT_UNOPS
        self.define(t, f"{self.r.choice(ops)} {self.get(t)}")
        return 1

    def s_fma(self, budget: int) -> int:
        t = self.r.choice(self.pool_types(lambda t: t in FLOATS) or list(FLOATS))
        self.define(t, f"fma {self.get(t)}, {self.get(t)}, {self.get(t)}")
        return 1

    def s_cmp(self, budget: int) -> int:
        have = self.pool_types(is_scalar)
        t = self.r.choice(have) if have and self.r.chance(0.5) else scalar_type(self.r)
        a, b = self.get(t), self.get(t)
        if self.r.chance(0.15):
            b = a
        c = self.define("bool", f"{self.r.choice(CMPS)} {a}, {b}")
        if self.r.chance(0.5):
            # Use the outcome right away, so that it reaches the result.
            u = self.r.choice(self.pool_types(lambda x: is_scalar(x) and x != "bool") or ["i64"])
            self.define(u, f"select {c}, {self.get(u)}, {self.get(u)}")
        return 1

    def s_select(self, budget: int) -> int:
        t = self.r.choice(self.pool_types() or ["i32"])
        c = self.get("bool")
        a, b = self.get(t), self.get(t)
        v = self.define(t, f"select {c}, {a}, {b}")
        if a in self.tags or b in self.tags:
            self.tags[v] = self.tags.get(a, set()) | self.tags.get(b, set())
        return 1

    def s_cast(self, budget: int) -> int:
        a = self.r.choice(self.pool_types(is_scalar) or ["i32"])
        b = scalar_type(self.r)
        v = self.get(a)
        if a != b and a != "bool" and b != "bool" and BITS[a] == BITS[b] and self.r.chance(0.4):
            self.bitcast(v, a, b)
        elif (a == "ptr") != (b == "ptr") and {a, b} - {"i64", "u64", "ptr"}:
            self.convert(v, a, b)
        else:
            self.define(b, f"cast {v}")
        return 1

    def s_const(self, budget: int) -> int:
        t = scalar_type(self.r)
        self.define(t, f"const {const_text(self.r, t)}")
        return 1

    def s_agg(self, budget: int) -> int:
        have = self.pool_types(lambda t: isinstance(t, tuple) and t[0] != "union")
        t = self.r.choice(have) if have and self.r.chance(0.6) else agg_type(self.r)
        v = self.get(t)
        fs = fields(t)
        i = self.r.int(0, len(fs) - 1)
        if self.r.chance(0.5):
            self.define(fs[i], f"extract {v}, {i}")
        else:
            self.define(t, f"insert {v}, {i}, {self.get(fs[i])}")
        return 2

    def s_union(self, budget: int) -> int:
        have = self.pool_types(lambda t: isinstance(t, tuple) and t[0] == "union")
        t = self.r.choice(have) if have and self.r.chance(0.6) else union_type(self.r)
        u = self.get(t)
        if self.r.chance(0.3):
            self.define("u32", f"union.tag {u}")
            return 1
        possible = sorted(self.tags.get(u, {0}))
        i = self.r.choice(possible) if self.r.chance(0.9) else self.r.int(0, len(t[1]) - 1)
        self.define(t[1][i], f"union.get {i}, {u}")
        return 1

    def s_any(self, budget: int) -> int:
        a = self.get("any")
        if self.r.chance(0.3):
            self.define("u32", f"any.tag {a}")
            return 1
        possible = sorted(self.tags.get(a, {"i32"}))
        t = self.r.choice(possible) if self.r.chance(0.9) else scalar_type(self.r, False)
        self.define(t, f"any.get {a}")
        return 1

    def s_str(self, budget: int) -> int:
        text = self.r.choice(["", "a", "hi\n", "h\u00e9llo", '\x00\xff-\\"q', "0123456789abcdef"])
        data = text.encode("latin-1")
        lit = "".join(c if 0x20 <= ord(c) <= 0x7E and c not in '\\"' else f"\\x{ord(c):02x}" for c in text)
        s = self.define("str", f'str.const "{lit}"', pool=False)
        n = self.define("u64", f"extract {s}, 1")
        if data:
            p = self.define("ptr", f"extract {s}, 0", pool=False)
            it = self.r.choice(self.pool_types(lambda t: t in INTS) or ["u64"])
            i = self.convert(self.get(it), it, "u64")
            k = self.define("u64", f"rem {i}, {n}", pool=False)
            a = self.define("ptr", f"elem u8, {p}, {k}", pool=False)
            self.define("u8", f"load {a}")
        return 3

    # memory
    def s_mem(self, budget: int) -> int:
        t = self.r.choice(
            [
                scalar_type(self.r, False),
                scalar_type(self.r, False),
                agg_type(self.r),
                union_type(self.r),
                "any",
            ]
        )
        n = self.r.choice([1, 2, 4, 8])
        cnt = self.define("u64", f"const {n}", pool=False)
        p = self.define("ptr", f"alloc {tstr(t)}, {cnt}", pool=False)
        self.bufs.append((p, t, n))
        for _ in range(self.r.int(1, 3)):
            self.s_buf(budget)
        return 4

    def elem(self, p: str, t, n: int) -> str:
        idx, _ = self.small_index(n)
        return self.define("ptr", f"elem {tstr(t)}, {p}, {idx}", pool=False)

    def s_buf(self, budget: int) -> int:
        r = self.r
        p, t, n = r.choice(self.bufs)
        size = size_of(t) * n
        op = r.weighted(
            [
                ("store", 4),
                ("load", 4),
                ("pun", 2),
                ("field", 2 if isinstance(t, tuple) and t[0] == "struct" else 0),
                ("memset", 1),
                ("memcpy", 1),
                ("memmove", 1 if n > 1 else 0),
            ]
        )
        if op == "store":
            self.line(f"store {self.elem(p, t, n)}, {self.get(t)}")
        elif op == "load":
            v = self.define(t, f"load {self.elem(p, t, n)}")
            if t == "any":
                self.tags[v] = {"i32"}  # whatever was stored (or a zero any): may trap
            elif isinstance(t, tuple) and t[0] == "union":
                self.tags[v] = set(range(len(t[1])))
        elif op == "field":
            i = r.int(0, len(t[1]) - 1)
            a = self.define("ptr", f"field {tstr(t)}, {self.elem(p, t, n)}, {i}", pool=False)
            ft = t[1][i]
            if r.chance(0.5):
                self.line(f"store {a}, {self.get(ft)}")
            else:
                self.define(ft, f"load {a}")
        elif op == "pun":
            # Reinterpret memory as another scalar type. Integer views only of buffers
            # without float leaves (float bits may hold NaN payloads, which may differ).
            ok = [
                x
                for x in NUMS + ["bool"]
                if size_of(x) <= size and (x in FLOATS or x == "bool" or not has_float(t))
            ]
            if ok:
                x = r.choice(ok)
                off = r.int(0, size - size_of(x))
                o = self.define("u64", f"const {off}", pool=False)
                a = self.define("ptr", f"elem u8, {p}, {o}", pool=False)
                self.define(x, f"load {a}")
        elif op == "memset":
            byte = self.get("u8")
            ln = self.define("u64", f"const {r.int(0, size)}", pool=False)
            self.line(f"memset {p}, {byte}, {ln}")
        elif op == "memcpy":
            cnt = self.define("u64", f"const {n}", pool=False)
            q = self.define("ptr", f"alloc {tstr(t)}, {cnt}", pool=False)
            ln = self.define("u64", f"const {r.int(0, size)}", pool=False)
            if r.chance(0.5):
                self.line(f"memcpy {q}, {p}, {ln}")
                self.bufs.append((q, t, n))
            else:
                self.line(f"memcpy {q}, {p}, {ln}")
                self.line(f"memcpy {p}, {q}, {ln}")
                self.line(f"free {q}")
        else:  # overlapping memmove inside one buffer
            one = self.define("u64", "const 1", pool=False)
            a = self.define("ptr", f"elem {tstr(t)}, {p}, {one}", pool=False)
            ln = self.define("u64", f"const {r.int(0, size - size_of(t))}", pool=False)
            self.line(f"memcpy {a}, {p}, {ln}" if r.chance(0.5) else f"memcpy {p}, {a}, {ln}")
        return 1

    # control flow
    def arm(self, budget: int, out_types: list) -> list[str]:
        """Generate a region in the current block; return values for `out_types` (scoped)."""
        mark_pool, mark_bufs = len(self.pool), len(self.bufs)
        self.nest += 1
        self.region(budget)
        self.nest -= 1
        vals = [self.get(t) for t in out_types]
        tags = [self.tags.get(v) for v in vals]
        del self.pool[mark_pool:]
        del self.bufs[mark_bufs:]
        return vals, tags

    def merge_types(self) -> list:
        k = self.r.int(0, 2)
        cand = self.pool_types() or ["i32"]
        return [self.r.choice(cand) for _ in range(k)]

    def finish_merge(self, merge: int, names: list[str], types: list, incoming: list[list]) -> None:
        self.switch_to(merge)
        for i, (v, t) in enumerate(zip(names, types, strict=True)):
            self.pool.append((v, t))
            ts = [inc[i] for inc in incoming if inc[i] is not None]
            if ts:
                self.tags[v] = set().union(*ts)

    def s_if(self, budget: int) -> int:
        sub = self.r.int(1, max(1, budget // 2))
        c = self.get("bool")
        types = self.merge_types()
        tb, _ = self.new_block()
        eb, _ = self.new_block()
        mb, names = self.new_block(types)
        self.term(f"brif {c}, block{tb}, block{eb}")
        incoming = []
        for b in (tb, eb):
            self.switch_to(b)
            vals, tags = self.arm(self.r.int(0, sub), types)
            incoming.append(tags)
            self.term(f"jump block{mb}{args(vals)}")
        self.finish_merge(mb, names, types, incoming)
        return sub + 2

    def s_brif2(self, budget: int) -> int:
        """`brif c, m(x), m(y)`: both edges to one block with different arguments."""
        t = self.r.choice(self.pool_types() or ["i64"])
        c = self.get("bool")
        x, y = self.get(t), self.get(t)
        mb, names = self.new_block([t])
        self.term(f"brif {c}, block{mb}({x}), block{mb}({y})")
        self.finish_merge(mb, names, [t], [[self.tags.get(x)], [self.tags.get(y)]])
        return 2

    def s_switch(self, budget: int) -> int:
        r = self.r
        sub = r.int(1, max(1, budget // 2))
        st_ = r.choice(self.pool_types(lambda t: t in INTS) or INTS)
        v = self.get(st_)
        if r.chance(0.5):
            m = self.define(st_, "const 3", pool=False)
            v = self.define(st_, f"and {v}, {m}", pool=False)
        lo, hi = int_range(st_)
        keys: list[int] = []
        for _ in range(r.int(1, 4)):
            k = r.choice([0, 1, 2, 3, lo, hi, r.int(lo, hi)] + ([-1, -2] if st_ in SIGNED else []))
            if k not in keys:
                keys.append(k)
        types = self.merge_types()
        narms = r.int(1, len(keys))
        # Arm blocks; some take a parameter passed by the switch.
        arms = []
        for _ in range(narms):
            pt = [r.choice(self.pool_types() or ["i32"])] if r.chance(0.3) else []
            b, ps = self.new_block(pt)
            arms.append((b, ps, pt))
        db, _ = self.new_block()
        mb, names = self.new_block(types)

        def call(arm):
            b, _, pt = arm
            return f"block{b}{args([self.get(t) for t in pt])}"

        cases = ", ".join(f"{k}: {call(arms[i % narms])}" for i, k in enumerate(keys))
        self.term(f"switch {v}, [{cases}], block{db}")
        incoming = []
        for b, ps, pt in arms + [(db, [], [])]:
            self.switch_to(b)
            for p, t in zip(ps, pt, strict=True):
                self.pool.append((p, t))
            vals, tags = self.arm(r.int(0, sub // 2), types)
            self.pool = [x for x in self.pool if x[0] not in ps]
            incoming.append(tags)
            self.term(f"jump block{mb}{args(vals)}")
        self.finish_merge(mb, names, types, incoming)
        return sub + 3

    def s_loop(self, budget: int) -> int:
        r = self.r
        sub = r.int(1, max(1, budget // 2))
        ct = r.choice(INTS)
        if r.chance(0.5):
            bt = r.choice(self.pool_types(lambda t: t in INTS) or ["i32"])
            seven = self.define(bt, "const 7", pool=False)
            bnd = self.define(bt, f"and {self.get(bt)}, {seven}", pool=False)
            bound = self.convert(bnd, bt, ct) if bt != ct else bnd
            if bt != ct:
                # convert() may bitcast; re-mask in the counter type to stay in [0, 7].
                s7 = self.define(ct, "const 7", pool=False)
                bound = self.define(ct, f"and {bound}, {s7}", pool=False)
        else:
            bound = self.define(ct, f"const {r.int(0, 5)}", pool=False)
        zero = self.define(ct, "const 0", pool=False)
        acc_types = [r.choice(self.pool_types() or ["i64"]) for _ in range(r.int(0, 2))]
        acc_types = [t for t in acc_types if t != "any" and not (isinstance(t, tuple) and t[0] == "union")]
        inits = [self.get(t) for t in acc_types]
        hb, hnames = self.new_block([ct] + acc_types)
        bb, _ = self.new_block()
        xb, _ = self.new_block()
        self.term(f"jump block{hb}{args([zero] + inits)}")
        self.switch_to(hb)
        i, accs = hnames[0], hnames[1:]
        for a, t in zip(accs, acc_types, strict=True):
            self.pool.append((a, t))
        self.pool.append((i, ct))
        c = self.define("bool", f"lt {i}, {bound}", pool=False)
        self.term(f"brif {c}, block{bb}, block{xb}")
        self.switch_to(bb)
        self.loops += 1
        vals, _ = self.arm(sub, acc_types)
        self.loops -= 1
        one = self.define(ct, "const 1", pool=False)
        i2 = self.define(ct, f"add {i}, {one}", pool=False)
        self.term(f"jump block{hb}{args([i2] + vals)}")
        self.switch_to(xb)
        return sub + 4

    def s_trapbr(self, budget: int) -> int:
        c = self.get("bool")
        tb, _ = self.new_block()
        cb, _ = self.new_block()
        if self.r.chance(0.5):
            self.term(f"brif {c}, block{tb}, block{cb}")
        else:
            self.term(f"brif {c}, block{cb}, block{tb}")
        self.switch_to(tb)
        self.term(self.r.choice(["trap", "unreachable"]))
        self.switch_to(cb)
        return 1

    def s_earlyret(self, budget: int) -> int:
        c = self.get("bool")
        rb, _ = self.new_block()
        cb, _ = self.new_block()
        self.term(f"brif {c}, block{rb}, block{cb}")
        self.switch_to(rb)
        self.emit_ret()
        self.switch_to(cb)
        return 2

    def call_args(self, h: Helper) -> list[str]:
        out = []
        for k, t in enumerate(h.params):
            if h.deep and k == 0:
                # Depth K + (x & 15) with K near MAX_CALL_DEPTH: stack_overflow or not.
                x = self.get("u32")
                m = self.define("u32", "const 15", pool=False)
                lo = self.define("u32", f"const {self.r.choice([9980, 9990, 9993, 9995, 9998])}", pool=False)
                y = self.define("u32", f"and {x}, {m}", pool=False)
                out.append(self.define("u32", f"add {y}, {lo}", pool=False))
            elif h.recursive and k == 0:
                if self.r.chance(0.5):
                    out.append(self.define("u32", f"const {self.r.int(0, 3)}", pool=False))
                else:
                    x = self.convert(self.get("u32"), "u32", "u32")
                    three = self.define("u32", "const 3", pool=False)
                    out.append(self.define("u32", f"and {x}, {three}", pool=False))
            else:
                out.append(self.get(t))
        return out

    def emit_call(self, h: Helper, argv: list[str], indirect: bool) -> None:
        a = ", ".join(argv)
        if indirect:
            ft = f"fn({', '.join(tstr(t) for t in h.params)}) -> {tstr(h.ret)}"
            fp = self.define(ft, f"func.addr {h.name}", pool=False)
            target = f"call_indirect {fp}({a})"
        else:
            target = f"call {h.name}({a})"
        if h.ret == "void":
            self.line(target)
        else:
            v = self.define(h.ret, target)
            if h.ret == "any":
                self.tags[v] = {"i32"}

    def s_call(self, budget: int) -> int:
        cs = [h for h in self.callees if not (h.deep and self.loops)]
        if not cs:
            return 1
        h = self.r.choice(cs)
        self.emit_call(h, self.call_args(h), self.r.chance(0.25))
        return 3

    def s_self(self, budget: int) -> int:
        me = self.mg.helpers[self.name]
        self.self_calls += 1
        argv = [self.dec_depth] + [self.get(t) for t in me.params[1:]]
        self.emit_call(me, argv, self.r.chance(0.2))
        return 2

    def emit_ret(self) -> None:
        mark = len(self.pool)
        self._emit_ret()
        del self.pool[mark:]  # values made for the return block are not visible elsewhere

    def _emit_ret(self) -> None:
        if self.ret == "void":
            self.term("ret")
            return
        if is_scalar(self.ret) and self.r.chance(0.85):
            self.term(f"ret {self.checksum()}")
        else:
            self.term(f"ret {self.get(self.ret)}")

    def checksum(self) -> str:
        """Fold every scalar value in scope into one value of the return type, so that
        a wrong result anywhere in the function shows. Floats enter by their bits
        (NaNs canonicalised first); aggregates by their scalar fields."""
        vals = [(v, t) for v, t in self.pool if is_scalar(t)]
        for v, t in self.pool:
            if isinstance(t, tuple) and t[0] != "union" and len(vals) < 48:
                for i, ft in enumerate(fields(t)):
                    if is_scalar(ft):
                        vals.append((self.define(ft, f"extract {v}, {i}", pool=False), ft))
        vals = vals[-48:]
        acc = self.define("u64", f"const {self.r.int(0, 2**64 - 1)}", pool=False)
        five = self.define("u64", "const 5", pool=False)
        for v, t in vals:
            if t in FLOATS:
                v = self.canon_nan(v, t)
                it = "u32" if t == "f32" else "u64"
                v, t = self.define(it, f"bitcast {v}", pool=False), it
            x = self.define("u64", f"cast {v}", pool=False)
            rot = self.define("u64", f"rotl {acc}, {five}", pool=False)
            acc = self.define("u64", f"xor {rot}, {x}", pool=False)
        ret = self.ret
        if ret in ("i64", "u64", "ptr"):
            return self.define(ret, f"cast {acc}", pool=False)
        if ret == "f64":
            return self.define("f64", f"bitcast {acc}", pool=False)
        # Narrow: fold the high bits down first.
        for sh in (32, 16, 8):
            if sh < BITS[ret] or (ret == "f32" and sh < 32):
                break
            k = self.define("u64", f"const {sh}", pool=False)
            hi = self.define("u64", f"shr {acc}, {k}", pool=False)
            acc = self.define("u64", f"xor {acc}, {hi}", pool=False)
        if ret == "bool":
            p = self.define("u64", f"popcnt {acc}", pool=False)
            one = self.define("u64", "const 1", pool=False)
            b = self.define("u64", f"and {p}, {one}", pool=False)
            return self.define("bool", f"cast {b}", pool=False)
        if ret == "f32":
            w = self.define("u32", f"cast {acc}", pool=False)
            return self.define("f32", f"bitcast {w}", pool=False)
        return self.define(ret, f"cast {acc}", pool=False)

    def generate(self, budget: int) -> str:
        b0, names = self.new_block(self.params)
        self.switch_to(b0)
        for v, t in zip(names, self.params, strict=True):
            self.pool.append((v, t))
            if t == "any":
                self.tags[v] = {"i32"}
            elif isinstance(t, tuple) and t[0] == "union":
                self.tags[v] = {0}
        if self.recursive:
            depth = names[0]
            zero = self.define("u32", "const 0", pool=False)
            isz = self.define("bool", f"eq {depth}, {zero}", pool=False)
            base, _ = self.new_block()
            rec, _ = self.new_block()
            self.term(f"brif {isz}, block{base}, block{rec}")
            self.switch_to(base)
            self.emit_ret()
            self.switch_to(rec)
            one = self.define("u32", "const 1", pool=False)
            self.dec_depth = self.define("u32", f"sub {depth}, {one}", pool=False)
            self.in_self_arm = True
            self.s_self(budget)
        self.region(budget)
        self.emit_ret()
        for i, (_, body) in enumerate(self.blocks):
            assert body and body[-1].split()[0] in ("ret", "jump", "brif", "switch", "trap", "unreachable"), (
                f"generator bug: block{i} of {self.name} has no terminator"
            )
        lines = [f"fn {self.name}({', '.join(tstr(t) for t in self.params)}) -> {tstr(self.ret)} {{"]
        for i, (ps, body) in enumerate(self.blocks):
            head = f"block{i}"
            if ps:
                head += "(" + ", ".join(f"{v}: {tstr(t)}" for v, t in ps) + ")"
            lines.append(head + ":")
            lines.extend(body)
        lines.append("}")
        return "\n".join(lines)


def args(vals: list[str]) -> str:
    return f"({', '.join(vals)})" if vals else ""


class ModuleGen:
    def __init__(self, r: R):
        self.r = r
        self.helpers: dict[str, Helper] = {}


@dataclass
class GenModule:
    text: str
    module: rayzor.Module
    params: list[str]
    ret: str

    def __repr__(self) -> str:  # hypothesis prints this for a failing example
        return f"GenModule(params={self.params}, ret={self.ret}):\n{self.text}"


def _helper_type(r: R):
    k = r.int(0, 9)
    if k < 6:
        return scalar_type(r)
    if k < 8:
        return agg_type(r)
    return union_type(r) if k == 8 else "any"


DEEP_TEMPLATE = """fn leafy(i64) -> i64 {
block0(v0: i64):
  v1: i64 = const K
  v2: i64 = xor v0, v1
  v3: i64 = const 1
  v4: i64 = rotl v2, v3
  ret v4
}

fn deep(u32, i64) -> i64 {
block0(v0: u32, v1: i64):
  v2: u32 = const 0
  v3: bool = eq v0, v2
  brif v3, block1, block2
block1:
  ret v1
block2:
  v4: u32 = const 1
  v5: u32 = sub v0, v4
PRE  v6: i64 = call deep(v5, v1)
  v7: i64 = call leafy(v6)
POST}"""


def deep_text(k: int, live: int) -> str:
    """DEEP_TEMPLATE with `live` values computed before the recursive call and used
    after it (large frames: 10,000 of them must still fit, per docs/mir.md)."""
    pre = "".join(
        f"  v{100 + i}: i64 = const {i + 3}\n  v{1000 + i}: i64 = mul v1, v{100 + i}\n" for i in range(live)
    )
    post, acc = "", "v7"
    for i in range(live):
        post += f"  v{3000 + i}: i64 = xor {acc}, v{1000 + i}\n"
        acc = f"v{3000 + i}"
    post += f"  ret {acc}\n"
    return DEEP_TEMPLATE.replace("K", str(k)).replace("PRE", pre).replace("POST", post)


@st.composite
def modules(draw, max_helpers: int = 3, budget: int = 14) -> GenModule:
    r = R(draw)
    mg = ModuleGen(r)
    nh = r.int(0, max_helpers)
    helpers: list[Helper] = []
    for i in range(nh):
        rec = r.chance(0.3)
        many = r.chance(0.15)  # beyond the argument registers
        params = (["u32"] if rec else []) + [_helper_type(r) for _ in range(r.int(0, 9 if many else 3))]
        ret = "void" if r.chance(0.1) else _helper_type(r)
        helpers.append(Helper(f"h{i}", params, ret, rec))
    for h in helpers:
        mg.helpers[h.name] = h
    texts = []
    # Helper i calls only helpers j > i: the call graph is acyclic.
    for i in reversed(range(nh)):
        h = helpers[i]
        g = FnGen(mg, h.name, h.params, h.ret, helpers[i + 1 :], recursive=h.recursive)
        texts.append(g.generate(r.int(2, budget // 2 + 2)))
    main_callees = list(helpers)
    if r.chance(0.08):
        # deep(d, x) = d == 0 ? x : leafy(deep(d - 1, x)); T2 inlines leafy and leaves a
        # depth.check, which must trap exactly where the call would.
        k = r.int(0, 2**63 - 1)
        texts.append(deep_text(k, r.choice([0, 0, 8, 48, 128])))
        main_callees.append(Helper("deep", ["u32", "i64"], "i64", False, deep=True))
    params = [scalar_type(r) for _ in range(r.int(1, 4))]
    ret = scalar_type(r)
    g = FnGen(mg, "main", params, ret, main_callees)
    texts.append(g.generate(r.int(budget // 2, budget)))
    text = "\n\n".join(reversed(texts)) + "\n"
    try:
        m = rayzor.parse(text)
        m.verify()
    except rayzor.RayzorError as e:  # a generator bug: show the text
        raise AssertionError(f"generated an invalid module: {e}\n{text}") from e
    return GenModule(text, m, params, ret)


def scalar_values(t: str):
    if t == "bool":
        return st.booleans()
    if t in FLOATS:
        specials = F32_SPECIAL if t == "f32" else F64_SPECIAL
        return st.one_of(st.sampled_from(specials), st.floats(width=32 if t == "f32" else 64))
    lo, hi = int_range(t)
    specials = sorted({0, 1, lo, hi, lo + 1, hi - 1, 2, 7} | ({-1} if t in SIGNED else set()))
    if t == "ptr":
        return st.one_of(st.sampled_from([0, 1, 2**64 - 1]), st.integers(lo, hi))
    return st.one_of(st.sampled_from(specials), st.integers(lo, hi))


def arguments(params: list[str]):
    return st.tuples(*[scalar_values(t) for t in params])
