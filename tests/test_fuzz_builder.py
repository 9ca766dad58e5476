"""Fuzzing the builder, the verifier, the interpreter and the parser.

Property: whatever sequence of builder calls is made, and whatever text is
parsed, nothing but a ``rayzor.RayzorError`` ever comes out: no other Python
exception, no Rust panic, no crash. Verified modules additionally round-trip
through text (the conftest wrapper checks that on every ``rayzor.interpret``).

Two modes:

* run mode: only programs whose memory accesses are in bounds by construction
  (loads/stores/memset/memcpy go through fresh 32-byte allocations, pointers are
  never made from integers) are generated; verified ones are interpreted with
  random arguments under a step limit.
* build-only mode: anything goes (wild pointers included); modules are only
  verified and printed/parsed, never run.
"""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

import programs
import rayzor
from conftest import check_round_trip

SCALARS = [programs.SCALARS[n] for n in programs.SCALARS]
RUN_SCALARS = [t for t in SCALARS if t != rayzor.ptr]
SAFE_BYTES = 32

INT_RANGES = {
    "bool": None,
    "i8": (-(2**7), 2**7 - 1),
    "i16": (-(2**15), 2**15 - 1),
    "i32": (-(2**31), 2**31 - 1),
    "i64": (-(2**63), 2**63 - 1),
    "u8": (0, 2**8 - 1),
    "u16": (0, 2**16 - 1),
    "u32": (0, 2**32 - 1),
    "u64": (0, 2**64 - 1),
}


def types(max_leaves: int = 5):
    base = st.sampled_from(SCALARS + [rayzor.any_, rayzor.str_])

    def extend(inner):
        return st.one_of(
            st.builds(rayzor.array, inner, st.sampled_from([0, 1, 2, 3, 4, 5000])),
            st.lists(inner, max_size=3).map(lambda fs: rayzor.struct(*fs)),
            st.lists(inner, min_size=1, max_size=3).map(lambda vs: rayzor.union(*vs)),
            st.builds(rayzor.slice, inner),
            st.builds(rayzor.fn, st.lists(inner, max_size=2), inner),
            st.builds(rayzor.extern_fn, st.lists(inner, max_size=2), st.sampled_from(SCALARS + [rayzor.void])),
        )

    return st.recursive(base, extend, max_leaves=max_leaves)


NUMBERS = st.one_of(
    st.integers(-3, 3),
    st.integers(-(2**64), 2**64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
)
JUNK = st.sampled_from(["x", None, (), [1], object(), 2**70, -(2**70)])


class Fuzzer:
    def __init__(self, data, run_mode: bool):
        self.data = data
        self.run_mode = run_mode
        self.m = rayzor.Module()
        self.funcs: list[rayzor.FunctionBuilder] = []
        self.values: dict[int, list[rayzor.Value]] = {}
        self.blocks: dict[int, list[rayzor.Block]] = {}
        self.vars: dict[int, list[rayzor.Var]] = {}
        self.safe: dict[int, list[rayzor.Value]] = {}
        self.outcomes: dict[str, int] = {}

    # ----- drawing helpers -----

    def draw(self, strategy):
        return self.data.draw(strategy)

    def pick(self, seq):
        return seq[self.draw(st.integers(0, len(seq) - 1))]

    def ty(self):
        if self.run_mode and self.draw(st.booleans()):
            return self.pick(RUN_SCALARS)
        return self.draw(types())

    def scalar_ty(self):
        return self.pick(RUN_SCALARS if self.run_mode else SCALARS)

    def value(self, fi: int):
        """Mostly a value of function fi; sometimes a number, junk, or a foreign value."""
        k = self.draw(st.integers(0, 19))
        own = self.values[fi]
        if own and k < 14:
            return self.pick(own)
        if k < 17:
            return self.draw(NUMBERS)
        if k < 18:
            return self.draw(JUNK)
        others = [v for j, vs in self.values.items() if j != fi for v in vs]
        return self.pick(others) if others else self.draw(NUMBERS)

    def block(self, fi: int):
        if self.draw(st.integers(0, 15)) == 0:
            others = [b for j, bs in self.blocks.items() if j != fi for b in bs]
            if others:
                return self.pick(others)
        return self.pick(self.blocks[fi])

    def args(self, fi: int, n_max: int = 3):
        return [self.value(fi) for _ in range(self.draw(st.integers(0, n_max)))]

    # ----- the actions -----

    def new_function(self):
        name = self.draw(st.sampled_from(["f", "g", "h", "main", "fn", "f.1", "a b"]))
        params = self.draw(st.lists(self.ty_strategy(), max_size=3))
        ret = self.draw(st.one_of(self.ty_strategy(), st.just(rayzor.void)))
        fb = self.m.function(name, params, ret)
        fi = len(self.funcs)
        self.funcs.append(fb)
        self.values[fi] = list(fb.params)
        self.blocks[fi] = [fb.entry]
        self.vars[fi] = []
        self.safe[fi] = []

    def ty_strategy(self):
        if self.run_mode:
            return st.one_of(st.sampled_from(RUN_SCALARS), types(3))
        return types()

    def step(self):
        fi = self.draw(st.integers(0, len(self.funcs) - 1))
        f = self.funcs[fi]
        v = lambda: self.value(fi)  # noqa: E731
        kind = self.draw(
            st.sampled_from(
                [
                    "binary", "binary", "binary", "compare", "unary", "const", "const", "zero",
                    "select", "cast", "bitcast", "extract", "insert", "union_make", "union_tag",
                    "union_get", "any_make", "any_tag", "any_get", "str_const", "func_addr", "call",
                    "call_indirect", "alloc", "load", "store", "memset", "memcpy", "field_addr",
                    "elem_addr", "free", "block", "switch_to", "switch_to", "jump", "brif", "switch",
                    "ret", "ret", "trap", "unreachable", "var", "set", "get", "get", "extern",
                    "function",
                ]
            )
        )  # fmt: skip
        op = None
        if kind == "binary":
            op = lambda: programs.method(f, self.pick(programs.BINARY_OPS))(v(), v())  # noqa: E731
        elif kind == "compare":
            op = lambda: getattr(f, self.pick(programs.COMPARE_OPS))(v(), v())  # noqa: E731
        elif kind == "unary":
            op = lambda: programs.method(f, self.pick(programs.UNARY_OPS))(v())  # noqa: E731
        elif kind == "const":
            t = self.scalar_ty()
            name = str(t)
            if name in INT_RANGES and INT_RANGES[name] and self.draw(st.booleans()):
                lo, hi = INT_RANGES[name]
                val = self.draw(st.integers(lo, hi))
            else:
                val = self.draw(NUMBERS)
            op = lambda: f.const(val, t)  # noqa: E731
        elif kind == "zero":
            op = lambda: f.zero(self.ty())  # noqa: E731
        elif kind == "select":
            op = lambda: f.select(v(), v(), v())  # noqa: E731
        elif kind in ("cast", "bitcast"):
            op = lambda: getattr(f, kind)(v(), self.scalar_ty())  # noqa: E731
        elif kind == "extract":
            op = lambda: f.extract(v(), self.draw(st.integers(0, 5)))  # noqa: E731
        elif kind == "insert":
            op = lambda: f.insert(v(), self.draw(st.integers(0, 5)), v())  # noqa: E731
        elif kind == "union_make":
            op = lambda: f.union_make(self.ty(), self.draw(st.integers(0, 3)), v())  # noqa: E731
        elif kind == "union_tag":
            op = lambda: f.union_tag(v())  # noqa: E731
        elif kind == "union_get":
            op = lambda: f.union_get(v(), self.draw(st.integers(0, 3)))  # noqa: E731
        elif kind == "any_make":
            op = lambda: f.any_make(v())  # noqa: E731
        elif kind == "any_tag":
            op = lambda: f.any_tag(v())  # noqa: E731
        elif kind == "any_get":
            op = lambda: f.any_get(v(), self.scalar_ty() if self.draw(st.booleans()) else self.ty())  # noqa: E731
        elif kind == "str_const":
            op = lambda: f.str_const(self.draw(st.one_of(st.text(max_size=8), st.binary(max_size=8))))  # noqa: E731
        elif kind == "func_addr":
            names = self.m.functions + self.m.externs + ["missing"]
            op = lambda: f.func_addr(self.pick(names))  # noqa: E731
        elif kind == "call":
            names = self.m.functions + self.m.externs + ["missing"]
            op = lambda: f.call(self.pick(names), *self.args(fi))  # noqa: E731
        elif kind == "call_indirect":
            op = lambda: f.call_indirect(v(), *self.args(fi))  # noqa: E731
        elif kind == "alloc":
            op = self.alloc_action(f, fi)
        elif kind in ("load", "store", "memset", "memcpy", "free"):
            op = self.memory_action(kind, f, fi)
        elif kind == "field_addr":
            op = lambda: f.field_addr(self.ty(), v(), self.draw(st.integers(0, 4)))  # noqa: E731
        elif kind == "elem_addr":
            op = lambda: f.elem_addr(self.ty(), v(), v())  # noqa: E731
        elif kind == "block":
            tys = self.draw(st.lists(self.ty_strategy(), max_size=2))
            op = lambda: self.blocks[fi].append(f.block(*tys))  # noqa: E731
        elif kind == "switch_to":
            op = lambda: f.switch_to(self.block(fi))  # noqa: E731
        elif kind == "jump":
            op = lambda: f.jump(self.block(fi), *self.args(fi, 2))  # noqa: E731
        elif kind == "brif":
            op = lambda: f.brif(v(), self.block(fi), self.block(fi), self.args(fi, 2), self.args(fi, 2))  # noqa: E731
        elif kind == "switch":

            def op():
                n = self.draw(st.integers(0, 3))
                cases = {}
                for _ in range(n):
                    key = self.draw(st.integers(-300, 300))
                    cases[key] = self.block(fi) if self.draw(st.booleans()) else (self.block(fi), self.args(fi, 2))
                return f.switch(v(), cases, self.block(fi), self.args(fi, 2))

        elif kind == "ret":
            op = lambda: f.ret(v()) if self.draw(st.integers(0, 3)) else f.ret()  # noqa: E731
        elif kind == "trap":
            op = f.trap
        elif kind == "unreachable":
            op = f.unreachable
        elif kind == "var":

            def op():
                t = self.ty()
                init = v() if self.draw(st.booleans()) else None
                self.vars[fi].append(f.var(self.draw(st.sampled_from(["x", "y", "x"])), t, init))

        elif kind == "set":
            op = lambda: f.set(self.pick(self.all_vars(fi)), v())  # noqa: E731
        elif kind == "get":
            op = lambda: f.get(self.pick(self.all_vars(fi)))  # noqa: E731
        elif kind == "extern":
            name = self.draw(st.sampled_from(["ext", "ext2", "f"]))
            params = self.draw(st.lists(self.ty_strategy(), max_size=8))
            ret = self.draw(st.one_of(st.just(rayzor.void), self.ty_strategy()))
            op = lambda: self.m.extern(name, params, ret)  # noqa: E731
        elif kind == "function":
            op = self.new_function
        self.attempt(kind, fi, op)

    def all_vars(self, fi):
        own = self.vars[fi]
        others = [x for j, xs in self.vars.items() if j != fi for x in xs]
        pool = own if own and self.draw(st.integers(0, 9)) else own + others
        if not pool:
            raise _Skip()
        return pool

    def alloc_action(self, f, fi):
        if self.run_mode:

            def op():
                p = f.alloc(rayzor.u64, f.const(SAFE_BYTES // 8, rayzor.u64))
                self.safe[fi].append(p)
                return p

            return op
        return lambda: f.alloc(self.ty(), self.value(fi))

    def memory_action(self, kind, f, fi):
        if not self.run_mode:
            v = lambda: self.value(fi)  # noqa: E731
            return {
                "load": lambda: f.load(self.ty(), v()),
                "store": lambda: f.store(v(), v()),
                "memset": lambda: f.memset(v(), v(), v()),
                "memcpy": lambda: f.memcpy(v(), v(), v()),
                "free": lambda: f.free(v()),
            }[kind]
        if kind == "free" or not self.safe[fi]:
            raise_skip = _Skip()

            def op():
                raise raise_skip

            return op

        def at(p, size):
            k = self.draw(st.integers(0, SAFE_BYTES - size))
            return p if k == 0 else f.elem_addr(rayzor.u8, p, f.const(k, rayzor.i64))

        def op():
            p = self.pick(self.safe[fi])
            if kind == "load":
                t = self.pick(RUN_SCALARS)
                return f.load(t, at(p, t.size))
            if kind == "store":
                x = self.value(fi)
                size = x.type.size if isinstance(x, rayzor.Value) else 8
                if size > SAFE_BYTES:
                    raise _Skip()
                return f.store(at(p, size), x)
            n = self.draw(st.integers(0, SAFE_BYTES))
            if kind == "memset":
                return f.memset(at(p, n), self.value(fi), f.const(n, rayzor.u64))
            q = self.pick(self.safe[fi])
            return f.memcpy(at(p, n), at(q, n), f.const(n, rayzor.u64))

        return op

    def attempt(self, kind, fi, op):
        try:
            out = op()
        except _Skip:
            return
        except rayzor.RayzorError as e:
            self.outcomes[type(e).__name__] = self.outcomes.get(type(e).__name__, 0) + 1
            return
        if isinstance(out, rayzor.Value):
            assert isinstance(out.type, rayzor.Type)
            self.values[fi].append(out)
        self.outcomes["ok"] = self.outcomes.get("ok", 0) + 1

    # ----- running -----

    def arg_for(self, t):
        name = str(t)
        if name == "bool":
            return self.draw(st.booleans())
        if name in INT_RANGES:
            lo, hi = INT_RANGES[name]
            return self.draw(st.one_of(st.integers(lo, hi), st.sampled_from([lo, hi, 0, 1])))
        if name in ("f32", "f64"):
            return self.draw(st.floats(allow_nan=True, allow_infinity=True))
        if name == "ptr" or name.startswith("fn") or name.startswith("extern fn"):
            return None if self.draw(st.booleans()) else 0
        return 0  # aggregates: the call must be refused with ArgumentError

    def run_all(self):
        try:
            self.m.verify()
        except rayzor.RayzorError:
            return "rejected"
        check_round_trip(self.m)
        if not self.run_mode:
            return "verified"
        for name in self.m.functions:
            params, _ret = self.m.signature(name)
            args = [self.arg_for(t) for t in params]
            try:
                result = rayzor.interpret(self.m, name, *args, step_limit=2000)
            except rayzor.RayzorError:
                continue
            assert result is None or isinstance(result, (bool, int, float))
            if isinstance(result, float) and not math.isnan(result):
                assert math.isfinite(result) or math.isinf(result)
        return "ran"


class _Skip(Exception):
    pass


def _fuzz(data, run_mode: bool):
    fz = Fuzzer(data, run_mode)
    try:
        fz.new_function()
    except rayzor.RayzorError:
        return
    for _ in range(data.draw(st.integers(1, 60))):
        fz.step()
    fz.run_all()


@given(st.data())
def test_random_builder_sequences_run_mode(data):
    _fuzz(data, run_mode=True)


@given(st.data())
def test_random_builder_sequences_build_only(data):
    _fuzz(data, run_mode=False)


def _straight_line_int_program(data):
    """A well-typed straight-line i64 program: always verifies, never traps but for div/rem."""
    m = rayzor.Module()
    f = m.function("f", [rayzor.i64, rayzor.i64], rayzor.i64)
    vals = list(f.params)
    model = ["a", "b"]
    for _ in range(data.draw(st.integers(1, 25))):
        op = data.draw(st.sampled_from(["add", "sub", "mul", "and", "or", "xor", "shl", "shr", "min", "max", "neg", "not", "const"]))
        if op == "const":
            c = data.draw(st.integers(-(2**63), 2**63 - 1))
            vals.append(f.const(c, rayzor.i64))
            model.append(("const", c))
        elif op in ("neg", "not"):
            i = data.draw(st.integers(0, len(vals) - 1))
            vals.append(programs.method(f, op)(vals[i]))
            model.append((op, i))
        else:
            i = data.draw(st.integers(0, len(vals) - 1))
            j = data.draw(st.integers(0, len(vals) - 1))
            vals.append(programs.method(f, op)(vals[i], vals[j]))
            model.append((op, i, j))
    f.ret(vals[-1])
    return m, model


def _wrap64(x):
    x &= 2**64 - 1
    return x - 2**64 if x >= 2**63 else x


def _eval(model, a, b):
    env = [a, b]
    for step in model[2:]:
        op = step[0]
        if op == "const":
            env.append(step[1])
            continue
        if op in ("neg", "not"):
            x = env[step[1]]
            env.append(_wrap64(-x if op == "neg" else ~x))
            continue
        x, y = env[step[1]], env[step[2]]
        r = {
            "add": lambda: x + y,
            "sub": lambda: x - y,
            "mul": lambda: x * y,
            "and": lambda: x & y,
            "or": lambda: x | y,
            "xor": lambda: x ^ y,
            "shl": lambda: x << (y & 63),
            "shr": lambda: x >> (y & 63),
            "min": lambda: min(x, y),
            "max": lambda: max(x, y),
        }[op]()
        env.append(_wrap64(r))
    return env[-1]


@given(st.data(), st.integers(-(2**63), 2**63 - 1), st.integers(-(2**63), 2**63 - 1))
def test_random_straight_line_programs_match_python(data, a, b):
    m, model = _straight_line_int_program(data)
    assert rayzor.interpret(m, "f", a, b) == _eval(model, a, b)


# ---------------------------------------------------------------------------
# Parser fuzzing
# ---------------------------------------------------------------------------

SEED_TEXTS = [
    str(programs.fib()),
    """extern fn labs(i64) -> i64

fn f(i64, ptr) -> f64 {
block0(v0: i64, v1: ptr):
  v2: i64 = call labs(v0)
  v3: {i32, [f64; 2]} = zero
  v4: f64 = const -1.5e10
  v5: i32 = cast v2
  v6: {i32, [f64; 2]} = insert v3, 0, v5
  v7: union<i8, f64> = union.make 1, v4
  v8: u32 = union.tag v7
  v9: str = str.const "h\\xffi\\n"
  v10: any = any.make v4
  v11: f64 = any.get v10
  v12: fn(i64) -> i64 = func.addr f2
  switch v0, [-1: block1, 7: block2(v4)], block1
block1:
  store v1, v4
  ret v11
block2(v13: f64):
  v14: f64 = const nan:0x7ff8000000000001
  v15: f64 = min v13, v14
  ret v15
}

fn f2(i64) -> i64 {
block0(v0: i64):
  v1: fn(i64) -> i64 = func.addr f2
  v2: i64 = call_indirect v1(v0)
  ret v2
}
""",
]

TOKENS = ["fn", "block0", "block1", "v0", "v1", ":", "=", "(", ")", "{", "}", "[", "]", "<", ">", ",", ";", "->",
          "i64", "f32", "ptr", "union", "slice", "extern", "const", "add", "ret", "jump", "brif", "switch", "call",
          '"', "\\x", "nan", "inf", "-", "0x", "99999999999999999999999999", "\n", " ", "\t", "\u00e9", "\x00"]  # fmt: skip


def _check_text(text: str):
    try:
        m = rayzor.parse(text)
    except rayzor.ParseError as e:
        assert isinstance(e.line, int) and isinstance(e.column, int)
        assert e.line >= 1 and e.column >= 1
        assert e.line <= text.count("\n") + 1
        return
    printed = str(m)
    assert str(rayzor.parse(printed)) == printed
    try:
        m.verify()
    except rayzor.VerifyError:
        return
    check_round_trip(m)


@given(st.text(max_size=200))
def test_random_text_parses_or_raises_parse_error(text):
    _check_text(text)


@given(st.data())
def test_mutated_programs_parse_or_raise_parse_error(data):
    text = data.draw(st.sampled_from(SEED_TEXTS))
    for _ in range(data.draw(st.integers(1, 6))):
        pos = data.draw(st.integers(0, len(text)))
        action = data.draw(st.sampled_from(["insert", "delete", "replace", "token"]))
        if action == "insert":
            text = text[:pos] + data.draw(st.text(min_size=1, max_size=3)) + text[pos:]
        elif action == "delete":
            text = text[:pos] + text[pos + data.draw(st.integers(1, 8)) :]
        elif action == "replace":
            text = text[:pos] + data.draw(st.characters()) + text[pos + 1 :]
        else:
            text = text[:pos] + data.draw(st.sampled_from(TOKENS)) + text[pos:]
    _check_text(text)


@settings(max_examples=30)
@given(types(8))
def test_random_types_print_and_parse(t):
    text = str(t)
    try:
        again = rayzor.parse_type(text)
    except rayzor.ParseError:
        raise AssertionError(f"printed type does not parse: {text}")
    assert again == t and str(again) == text
    assert hash(again) == hash(t)
    try:
        size = t.size
    except rayzor.RayzorError:
        return
    assert size >= 0 and t.align in (1, 2, 4, 8)


def test_seed_texts_parse_and_verify():
    for text in SEED_TEXTS:
        m = rayzor.parse(text)
        m.verify()
        check_round_trip(m)
