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

import programs
from conftest import check_round_trip
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

import rayzor

SCALARS = [programs.SCALARS[n] for n in programs.SCALARS]
RUN_SCALARS = [t for t in SCALARS if t != rayzor.ptr]
SAFE_BYTES = 32

INT_RANGES = {
    "bool": (0, 1),
    "i8": (-(2**7), 2**7 - 1),
    "i16": (-(2**15), 2**15 - 1),
    "i32": (-(2**31), 2**31 - 1),
    "i64": (-(2**63), 2**63 - 1),
    "u8": (0, 2**8 - 1),
    "u16": (0, 2**16 - 1),
    "u32": (0, 2**32 - 1),
    "u64": (0, 2**64 - 1),
}


def _types(max_leaves: int, lengths, host_params=None):
    base = st.sampled_from(SCALARS + [rayzor.any_, rayzor.str_])

    def extend(inner):
        return st.one_of(
            st.builds(rayzor.array, inner, st.sampled_from(lengths)),
            st.lists(inner, max_size=3).map(lambda fs: rayzor.struct(*fs)),
            st.lists(inner, min_size=1, max_size=3).map(lambda vs: rayzor.union(*vs)),
            st.builds(rayzor.slice, inner),
            st.builds(rayzor.fn, st.lists(inner, max_size=2), inner),
            st.builds(
                rayzor.extern_fn,
                st.lists(host_params if host_params is not None else inner, max_size=2),
                st.sampled_from(SCALARS + [rayzor.void]),
            ),
        )

    return st.recursive(base, extend, max_leaves=max_leaves)


# Strategies are built once: building them per draw is what makes hypothesis slow.
TYPES = _types(5, [0, 1, 2, 3, 4] * 4 + [5000])
CLEAN_TYPES = _types(4, [0, 1, 2, 3], host_params=st.sampled_from(SCALARS))
BIG_TYPES = _types(8, [0, 1, 2, 3, 4, 5000, 2**32 - 1])
NUMBERS = st.one_of(
    st.integers(-3, 3),
    st.integers(-(2**64), 2**64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
)
JUNK = st.sampled_from(["x", None, (), [1], object(), 2**70, -(2**70), 10**400, rayzor.i64])
TEXTS = st.one_of(st.text(max_size=8), st.binary(max_size=8))
KINDS = {
    "binary": 12, "compare": 5, "unary": 4, "const": 8, "zero": 2, "select": 3, "cast": 4,
    "bitcast": 2, "extract": 3, "insert": 3, "union_make": 2, "union_tag": 1, "union_get": 2,
    "any_make": 2, "any_tag": 1, "any_get": 2, "str_const": 1, "func_addr": 2, "call": 3,
    "call_indirect": 2, "alloc": 2, "load": 3, "store": 3, "memset": 1, "memcpy": 1,
    "field_addr": 1, "elem_addr": 1, "free": 1, "block": 4, "switch_to": 3, "jump": 3,
    "brif": 3, "switch": 2, "ret": 2, "trap": 1, "unreachable": 1, "var": 2, "set": 3,
    "get": 3, "extern": 1, "function": 1,
}  # fmt: skip
KIND_ST = st.sampled_from([k for k, w in KINDS.items() for _ in range(w)])
BINARY_BY_CLASS = {
    "any": programs.BINARY_OPS,
    "int": programs.BINARY_OPS,
    "float": ["add", "sub", "mul", "div", "rem", "min", "max", "copysign"],
    "bool": ["and", "or", "xor"],
}
UNARY_BY_CLASS = {
    "any": programs.UNARY_OPS,
    "int": ["neg", "not", "abs", "clz", "ctz", "popcnt"],
    "float": ["neg", "abs", "sqrt", "floor", "ceil", "trunc", "nearest"],
    "bool": ["not"],
}
WIDTH = {
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


def cast_targets(src: str) -> list[str]:
    nums = [n for n in programs.SCALARS if n not in ("bool", "ptr")]
    if src == "ptr":
        return ["ptr", "i64", "u64"]
    if src == "bool":
        return nums + ["bool"]
    return nums + ["bool"] + (["ptr"] if src in ("i64", "u64") else [])


class _Skip(Exception):
    pass


class Fn:
    """What the fuzzer knows about one function under construction."""

    def __init__(self, fb: rayzor.FunctionBuilder, ret: rayzor.Type):
        self.fb = fb
        self.ret = ret
        self.ret_name = str(ret)
        self.blocks = [fb.entry]
        self.block_params = [[str(p.type) for p in fb.params]]
        self.terminated: set[int] = set()
        self.edges: dict[int, set[int]] = {}
        self.cur = 0
        # (value, defining block, type name)
        self.values = [(p, 0, str(p.type)) for p in fb.params]
        self.safe: list[tuple[rayzor.Value, int]] = []
        self.vars: list[tuple[rayzor.Var, str]] = []
        self.fn_values: list[tuple[rayzor.Value, int, str]] = []


class Fuzzer:
    """Drives random builder calls.

    In clean mode it only makes choices meant to verify (well-typed operands
    whose definitions dominate their uses, valid indices, reachable blocks);
    otherwise it also injects mistakes of every kind.
    """

    def __init__(self, data, run_mode: bool, clean: bool):
        self.data = data
        self.run_mode = run_mode
        self.clean = clean
        self.m = rayzor.Module()
        self.fns: list[Fn] = []
        self._last_name = None

    # ----- drawing helpers -----

    def draw(self, strategy):
        return self.data.draw(strategy)

    def chance(self, percent: int) -> bool:
        return self.draw(st.integers(0, 99)) < percent

    def chaos(self, percent: int) -> bool:
        """A deliberate mistake, never in clean mode."""
        return not self.clean and self.chance(percent)

    def index(self, hi: int) -> int:
        """A field/variant index, occasionally out of any range."""
        if self.chaos(3):
            return self.draw(st.sampled_from([-1, 2**32, 2**64]))
        return self.draw(st.integers(0, hi))

    def pick(self, seq):
        if not seq:
            raise _Skip()
        return seq[self.draw(st.integers(0, len(seq) - 1))]

    def scalar_ty(self):
        return self.pick(RUN_SCALARS if self.run_mode else SCALARS)

    def ty(self):
        if self.chance(60):
            return self.scalar_ty()
        return self.draw(CLEAN_TYPES if self.clean else TYPES)

    def number(self, like: str | None):
        if like in INT_RANGES and not self.chaos(15):
            if like == "bool":
                return self.draw(st.booleans())
            lo, hi = INT_RANGES[like]
            return self.draw(st.one_of(st.integers(lo, hi), st.sampled_from([lo, hi, 0, 1, -1 if lo else 2])))
        if like in ("f32", "f64") and not self.chaos(15):
            return self.draw(st.floats(allow_nan=True, allow_infinity=True))
        if self.clean and like is not None:
            raise _Skip()  # no well-typed number for this type
        return self.draw(NUMBERS)

    def visible(self, fs: Fn, pred=None):
        """Values whose definitions dominate the current insertion point."""
        return [v for v in fs.values if v[1] in (0, fs.cur) and (pred is None or pred(v[2]))]

    def operand(self, fs: Fn, like: str | None = None, pred=None):
        if self.chaos(12):
            r = self.draw(st.integers(0, 3))
            if r == 0 and fs.values:
                return self.pick(fs.values)[0]  # may not dominate the use
            if r == 1:
                return self.draw(JUNK)
            if r == 2:
                others = [v for o in self.fns if o is not fs for v in o.values]
                if others:
                    return self.pick(others)[0]
            vis = self.visible(fs)
            return self.pick(vis)[0] if vis else self.draw(NUMBERS)
        vis = self.visible(fs, (lambda t: t == like) if like else pred)
        if vis and not (like in INT_RANGES and self.chance(20)):
            return self.pick(vis)[0]
        return self.number(like)

    def typed(self, fs: Fn, pred) -> rayzor.Value:
        """A visible Value whose type name satisfies pred (skip if none)."""
        if self.chaos(10):
            return self.operand(fs)
        return self.pick(self.visible(fs, pred))[0]

    def reachable(self, fs: Fn) -> set[int]:
        reach, work = {0}, [0]
        while work:
            for s in fs.edges.get(work.pop(), ()):
                if s not in reach:
                    reach.add(s)
                    work.append(s)
        return reach

    def target(self, fs: Fn) -> int:
        """A branch target: usually an open non-entry block, sometimes a fresh one."""
        if self.chaos(5):
            return self.draw(st.integers(0, len(fs.blocks) - 1))
        r = self.draw(st.integers(0, 99))
        open_blocks = [i for i in range(1, len(fs.blocks)) if i not in fs.terminated and i != fs.cur]
        if r < 45 and open_blocks:
            return self.pick(open_blocks)
        if r < 80 or len(fs.blocks) == 1:
            if self.clean and all(i in fs.terminated for i in self.reachable(fs)):
                raise _Skip()  # nothing could branch to a new block
            return self.new_block(fs)
        return self.draw(st.integers(1, len(fs.blocks) - 1))

    def new_block(self, fs: Fn) -> int:
        tys = [self.ty() for _ in range(self.draw(st.integers(0, 2)))]
        b = fs.fb.block(*tys)
        fs.blocks.append(b)
        idx = len(fs.blocks) - 1
        fs.block_params.append([str(p.type) for p in b.params])
        for p in b.params:
            fs.values.append((p, idx, str(p.type)))
        return idx

    def args_for(self, fs: Fn, params: list[str]):
        if self.chaos(5):
            return [self.operand(fs) for _ in range(self.draw(st.integers(0, 3)))]
        return [self.operand(fs, like=t) for t in params]

    def ops_for(self, type_name, table):
        """Operations that accept the operand type (or, as a mistake, any)."""
        if self.chaos(15):
            return table["any"]
        if type_name in ("f32", "f64"):
            return table["float"]
        if type_name == "bool":
            return table["bool"]
        if type_name in INT_RANGES:
            return table["int"]
        if self.clean:
            raise _Skip()
        return table["any"]

    def signature(self, name: str):
        params, ret = self.m.signature(name)
        return [str(p) for p in params], ret

    # ----- building -----

    def new_function(self):
        name = self.draw(st.sampled_from(["f", "g", "h", "main", "fn", "f.1", "a b"]))
        n = self.draw(st.integers(0, 3))
        params = [self.scalar_ty() if self.chance(85) else self.ty() for _ in range(n)]
        ret = rayzor.void if self.chance(20) else self.scalar_ty() if self.chance(85) else self.ty()
        fb = self.m.function(name, params, ret)
        self.fns.append(Fn(fb, ret))

    def step(self):
        fs = self.pick(self.fns)
        kind = self.draw(KIND_ST)
        self._last_name = None
        try:
            out = self.action(kind, fs, fs.fb)
        except (_Skip, rayzor.RayzorError):
            return
        if isinstance(out, rayzor.Value):
            fs.values.append((out, fs.cur, str(out.type)))
            if kind == "func_addr":
                fs.fn_values.append((out, fs.cur, self._last_name))

    def action(self, kind: str, fs: Fn, f: rayzor.FunctionBuilder):
        o = lambda **kw: self.operand(fs, **kw)  # noqa: E731
        is_scalar = lambda t: t in programs.SCALARS  # noqa: E731
        if kind in ("binary", "compare"):
            a = self.typed(fs, is_scalar)
            like = str(a.type) if isinstance(a, rayzor.Value) else None
            names = programs.COMPARE_OPS if kind == "compare" else self.ops_for(like, BINARY_BY_CLASS)
            return programs.method(f, self.pick(names))(a, o(like=like))
        if kind == "unary":
            a = self.typed(fs, is_scalar)
            like = str(a.type) if isinstance(a, rayzor.Value) else None
            return programs.method(f, self.pick(self.ops_for(like, UNARY_BY_CLASS)))(a)
        if kind == "const":
            t = self.scalar_ty()
            return f.const(self.number(str(t)), t)
        if kind == "zero":
            return f.zero(self.ty())
        if kind == "select":
            c = o(like="bool")
            a = self.typed(fs, lambda t: True)
            return f.select(c, a, o(like=str(a.type) if isinstance(a, rayzor.Value) else None))
        if kind in ("cast", "bitcast"):
            a = self.typed(fs, lambda t: t in programs.SCALARS and (kind == "cast" or t != "bool"))
            src = str(a.type) if isinstance(a, rayzor.Value) else "i64"
            if kind == "cast":
                options = cast_targets(src)
            else:
                options = [n for n, w in WIDTH.items() if w == WIDTH.get(src)]
            if self.run_mode:
                options = [n for n in options if n != "ptr"]
            to = self.scalar_ty() if self.chaos(20) else programs.SCALARS[self.pick(options)]
            return getattr(f, kind)(a, to)
        if kind == "extract":
            return f.extract(self.typed(fs, lambda t: t[0] in "[{s"), self.index(4))
        if kind == "insert":
            agg = self.typed(fs, lambda t: t[0] in "[{s")
            i = self.index(4)
            if self.chaos(20):
                return f.insert(agg, i, o())
            field = str(f.extract(agg, i).type)  # raises BuildError when there is no field i
            return f.insert(agg, i, o(like=field))
        if kind == "union_make":
            v = o()
            vt = v.type if isinstance(v, rayzor.Value) else self.scalar_ty()
            others = [self.ty() for _ in range(self.draw(st.integers(0, 2)))]
            k = self.draw(st.integers(0, len(others)))
            if self.chaos(10):
                k = self.index(4)
            return f.union_make(rayzor.union(*(others[:k] + [vt] + others[k:])), k, v)
        if kind == "union_tag":
            return f.union_tag(self.typed(fs, lambda t: t.startswith("union<")))
        if kind == "union_get":
            return f.union_get(self.typed(fs, lambda t: t.startswith("union<")), self.index(2))
        if kind == "any_make":
            return f.any_make(self.typed(fs, is_scalar))
        if kind == "any_tag":
            return f.any_tag(self.typed(fs, lambda t: t == "any"))
        if kind == "any_get":
            return f.any_get(
                self.typed(fs, lambda t: t == "any"), self.ty() if self.chaos(10) else self.scalar_ty()
            )
        if kind == "str_const":
            return f.str_const(self.draw(TEXTS))
        if kind in ("func_addr", "call"):
            names = self.m.functions + self.m.externs
            name = "missing" if self.chaos(3) else self.pick(names)
            self._last_name = name
            if kind == "func_addr":
                return f.func_addr(name)
            params, ret = self.signature(name) if name in names else ([], None)
            # call_void for void callees (call of one is deprecated), sometimes for others.
            call = f.call_void if ret == rayzor.void or self.chaos(10) else f.call
            return call(name, *self.args_for(fs, params))
        if kind == "call_indirect":
            vis = [v for v in fs.fn_values if v[1] in (0, fs.cur)]
            if self.chaos(10) or not vis:
                callee = self.typed(fs, lambda t: "fn(" in t)
                return f.call_indirect(callee, *[o() for _ in range(self.draw(st.integers(0, 2)))])
            v, _, name = self.pick(vis)
            params, ret = self.signature(name)
            call_indirect = f.call_indirect_void if ret == rayzor.void else f.call_indirect
            return call_indirect(v, *self.args_for(fs, params))
        if kind == "alloc":
            if self.run_mode:
                p = f.alloc(rayzor.u64, f.const(SAFE_BYTES // 8, rayzor.u64))
                fs.safe.append((p, fs.cur))
                return p
            return f.alloc(self.ty(), o(like="u64"))
        if kind in ("load", "store", "memset", "memcpy", "free"):
            return self.memory(kind, fs, f)
        if kind == "field_addr":
            t = self.draw(CLEAN_TYPES if self.clean else TYPES)
            return f.field_addr(t, o(like="ptr"), self.index(3))
        if kind == "elem_addr":
            return f.elem_addr(
                self.ty(), o(like="ptr"), self.typed(fs, lambda t: t in INT_RANGES and t != "bool")
            )
        if kind == "block":
            if self.clean and all(i in fs.terminated for i in self.reachable(fs)):
                raise _Skip()  # nothing could branch to it
            return self.new_block(fs)
        if kind == "switch_to":
            if self.chaos(3):
                others = [o2 for o2 in self.fns if o2 is not fs]
                if others:
                    f.switch_to(self.pick(others).blocks[0])
            open_blocks = [i for i in range(len(fs.blocks)) if i not in fs.terminated]
            b = (
                self.pick(open_blocks)
                if open_blocks and not self.chaos(15)
                else self.pick(range(len(fs.blocks)))
            )
            f.switch_to(fs.blocks[b])
            fs.cur = b
            return None
        if kind in ("jump", "brif", "switch", "ret", "trap", "unreachable"):
            return self.terminator(kind, fs, f)
        if kind == "var":
            t = self.ty()
            init = o(like=str(t)) if self.chance(70) else None
            var = f.var(self.pick(["x", "y", "x"]), t, init)
            fs.vars.append((var, str(t)))
            return None
        if kind in ("set", "get"):
            pool = [v for o2 in self.fns for v in o2.vars] if self.chaos(3) else fs.vars
            var, t = self.pick(pool)
            if kind == "set":
                return f.set(var, o(like=t))
            return f.get(var)
        if kind == "extern":
            name = self.pick(["ext", "ext2", "f"])
            n = self.draw(st.integers(0, 8 if self.chaos(30) else 3))
            params = [self.ty() if self.chaos(15) else self.scalar_ty() for _ in range(n)]
            ret = rayzor.void if self.chance(30) else self.ty() if self.chaos(15) else self.scalar_ty()
            return self.m.extern(name, params, ret)
        if kind == "function":
            return self.new_function()
        raise AssertionError(kind)

    def terminator(self, kind: str, fs: Fn, f: rayzor.FunctionBuilder):
        cur = fs.cur
        targets: list[int] = []
        emit = None
        if kind == "jump":
            t = self.target(fs)
            targets = [t]
            emit = lambda: f.jump(fs.blocks[t], *self.args_for(fs, fs.block_params[t]))  # noqa: E731
        elif kind == "brif":
            t1, t2 = self.target(fs), self.target(fs)
            targets = [t1, t2]
            cond = self.operand(fs, like="bool")
            a1, a2 = self.args_for(fs, fs.block_params[t1]), self.args_for(fs, fs.block_params[t2])
            emit = lambda: f.brif(cond, fs.blocks[t1], fs.blocks[t2], a1, a2)  # noqa: E731
        elif kind == "switch":
            v = self.typed(fs, lambda t: t in INT_RANGES and t != "bool")
            vt = str(v.type) if isinstance(v, rayzor.Value) else "i64"
            lo, hi = INT_RANGES.get(vt, (-(2**63), 2**64))
            cases = {}
            for _ in range(self.draw(st.integers(0, 3))):
                t = self.target(fs)
                targets.append(t)
                key = self.draw(
                    st.integers(-130, 300) if self.chaos(10) else st.integers(max(lo, -130), min(hi, 300))
                )
                cases[key] = (fs.blocks[t], self.args_for(fs, fs.block_params[t]))
            d = self.target(fs)
            targets.append(d)
            dargs = self.args_for(fs, fs.block_params[d])
            emit = lambda: f.switch(v, cases, fs.blocks[d], dargs)  # noqa: E731
        elif kind == "ret":
            if fs.ret_name == "void" and not self.chaos(5):
                emit = f.ret
            else:
                value = self.operand(fs, like=fs.ret_name)
                emit = lambda: f.ret(value)  # noqa: E731
        else:
            emit = f.trap if kind == "trap" else f.unreachable
        if not self.chaos(10):
            # Do not strand blocks that nothing could reach any more.
            fs.edges.setdefault(cur, set())
            saved = set(fs.edges[cur])
            fs.edges[cur].update(targets)
            reach = self.reachable(fs)
            fs.edges[cur] = saved
            if not any(i not in fs.terminated and i != cur for i in reach) and len(reach) < len(fs.blocks):
                raise _Skip()
        emit()
        fs.terminated.add(cur)
        fs.edges.setdefault(cur, set()).update(targets)
        open_blocks = [i for i in range(len(fs.blocks)) if i not in fs.terminated]
        if open_blocks:
            fs.cur = self.pick(open_blocks)
            f.switch_to(fs.blocks[fs.cur])
        return None

    def memory(self, kind: str, fs: Fn, f: rayzor.FunctionBuilder):
        o = lambda **kw: self.operand(fs, **kw)  # noqa: E731
        if not self.run_mode:
            return {
                "load": lambda: f.load(self.ty(), o(like="ptr")),
                "store": lambda: f.store(o(like="ptr"), o()),
                "memset": lambda: f.memset(o(like="ptr"), o(like="u8"), o(like="u64")),
                "memcpy": lambda: f.memcpy(o(like="ptr"), o(like="ptr"), o(like="u64")),
                "free": lambda: f.free(o(like="ptr")),
            }[kind]()
        # Run mode: only in-bounds accesses to fresh 32-byte allocations.
        safe = [p for p, b in fs.safe if b in (0, fs.cur)]
        if kind == "free" or not safe:
            raise _Skip()

        def at(p, size):
            k = self.draw(st.integers(0, SAFE_BYTES - size))
            return p if k == 0 else f.elem_addr(rayzor.u8, p, f.const(k, rayzor.i64))

        p = self.pick(safe)
        if kind == "load":
            t = self.pick(RUN_SCALARS)
            return f.load(t, at(p, t.size))
        if kind == "store":
            x = self.typed(fs, lambda t: True)
            if not isinstance(x, rayzor.Value) or x.type.size > SAFE_BYTES:
                raise _Skip()
            return f.store(at(p, x.type.size), x)
        n = self.draw(st.integers(0, SAFE_BYTES))
        if kind == "memset":
            return f.memset(at(p, n), o(like="u8"), f.const(n, rayzor.u64))
        q = self.pick(safe)
        return f.memcpy(at(p, n), at(q, n), f.const(n, rayzor.u64))

    def finalize(self):
        """Make every block reachable and terminated where possible."""
        for fs in self.fns:
            f = fs.fb
            try:
                self._connect(fs, f)
                for i in range(len(fs.blocks)):
                    if i in fs.terminated:
                        continue
                    f.switch_to(fs.blocks[i])
                    fs.cur = i
                    if fs.ret_name == "void":
                        f.ret()
                    else:
                        vis = self.visible(fs, lambda t, want=fs.ret_name: t == want)
                        f.ret(self.pick(vis)[0] if vis and self.chance(70) else f.zero(fs.ret))
                    fs.terminated.add(i)
            except (rayzor.RayzorError, _Skip):
                continue

    def _connect(self, fs: Fn, f: rayzor.FunctionBuilder):
        while True:
            reach = self.reachable(fs)
            missing = [i for i in range(1, len(fs.blocks)) if i not in reach]
            opened = sorted(i for i in reach if i not in fs.terminated)
            if not missing or not opened:
                return
            b = opened[0]
            f.switch_to(fs.blocks[b])
            fs.cur = b
            ints = self.visible(fs, lambda t: t in ("i32", "i64", "u32", "u64", "i16", "u16"))
            sel = self.pick(ints)[0] if ints else f.const(0, rayzor.i32)
            cases = {
                k: (fs.blocks[t], [f.zero(p.type) for p in fs.blocks[t].params])
                for k, t in enumerate(missing)
            }
            default_args = [f.zero(p.type) for p in fs.blocks[missing[0]].params]
            f.switch(sel, cases, fs.blocks[missing[0]], default_args)
            fs.terminated.add(b)
            fs.edges.setdefault(b, set()).update(missing)

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

    def run_all(self) -> str:
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
        return "ran"


def _fuzz(data, run_mode: bool) -> str:
    fz = Fuzzer(data, run_mode, clean=data.draw(st.integers(0, 99)) < 60)
    try:
        fz.new_function()
    except rayzor.RayzorError:
        return "no function"
    for _ in range(data.draw(st.integers(1, 50))):
        fz.step()
    if run_mode or fz.clean or data.draw(st.integers(0, 99)) < 80:
        fz.finalize()
    return fz.run_all()


# Shrinking these long random programs takes minutes; report the first failure as found.
NO_SHRINK = settings(phases=[Phase.explicit, Phase.reuse, Phase.generate])


@NO_SHRINK
@given(st.data())
def test_random_builder_sequences_run_mode(data):
    _fuzz(data, run_mode=True)


@NO_SHRINK
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
        op = data.draw(
            st.sampled_from(
                ["add", "sub", "mul", "and", "or", "xor", "shl", "shr", "min", "max", "neg", "not", "const"]
            )
        )
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


_BIN64 = {
    "add": lambda x, y: x + y,
    "sub": lambda x, y: x - y,
    "mul": lambda x, y: x * y,
    "and": lambda x, y: x & y,
    "or": lambda x, y: x | y,
    "xor": lambda x, y: x ^ y,
    "shl": lambda x, y: x << (y & 63),
    "shr": lambda x, y: x >> (y & 63),
    "min": min,
    "max": max,
}


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
        env.append(_wrap64(_BIN64[op](x, y)))
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

TOKENS = [
    "fn", "block0", "block1", "v0", "v1", ":", "=", "(", ")", "{", "}", "[", "]", "<", ">", ",", ";",
    "->", "i64", "f32", "ptr", "union", "slice", "extern", "const", "add", "ret", "jump", "brif",
    "switch", "call", '"', "\\x", "nan", "inf", "-", "0x", "99999999999999999999999999", "\n", " ",
    "\t", "\u00e9", "\x00",
]  # fmt: skip


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


@NO_SHRINK
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
@given(BIG_TYPES)
def test_random_types_print_and_parse(t):
    text = str(t)
    try:
        again = rayzor.parse_type(text)
    except rayzor.ParseError as e:
        raise AssertionError(f"printed type does not parse: {text}") from e
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
