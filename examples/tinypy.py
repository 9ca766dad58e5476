"""tinypy: a typed subset of Python compiled to Rayzor MIR with the builder API.

A program is a list of ``def`` functions whose parameters and results are annotated
``int`` (MIR ``i64``), ``float`` (``f64``) or ``bool`` (results also ``None``)::

    def fib(n: int) -> int:
        if n < 2:
            return n
        return fib(n - 1) + fib(n - 2)

Supported: assignments (also ``x: float = ...``, ``a, b = b, a + b`` and ``+=``-style),
``if``/``elif``/``else``, ``while``, ``for i in range(...)`` (constant step),
``break``, ``continue``, ``return``, ``assert``, ``pass``; arithmetic, ``//`` and ``%``
with Python's floor semantics, bitwise operators, comparisons (chained), ``and``/``or``
/``not`` (short-circuit, returning an operand like Python), ``x if c else y``, calls
(recursion, functions defined later), and ``abs``, ``min``, ``max``, ``int``, ``float``,
``bool``. Everything else is a :class:`FrontendError` naming the line.

Where it differs from Python: ints are 64-bit and wrap on overflow; a local keeps the
type of its first assignment (an int may be stored in a float local); a local read
before any assignment is 0; float ``//``, ``%`` and ``**`` are rejected; float division
by zero gives inf/nan; an integer division by zero, a failed ``assert`` and running off
the end of a function that returns a value raise :class:`rayzor.Trap`.

Run a file: ``python examples/tinypy.py prog.py fib 30 [--tier T3] [--mir]``.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import rayzor

INT, FLOAT, BOOL, NONE = "int", "float", "bool", "None"
MIR_TYPE = {INT: rayzor.i64, FLOAT: rayzor.f64, BOOL: rayzor.bool_, NONE: rayzor.void}
BUILTINS = ("abs", "min", "max", "int", "float", "bool")
INT_MIN, INT_MAX = -(1 << 63), (1 << 63) - 1

_NAMES = {
    ast.List: "list display",
    ast.Tuple: "tuple",
    ast.Dict: "dict",
    ast.Set: "set",
    ast.Subscript: "subscript",
    ast.Attribute: "attribute access",
    ast.Lambda: "lambda",
    ast.JoinedStr: "f-string",
    ast.ListComp: "comprehension",
    ast.GeneratorExp: "generator expression",
    ast.Import: "import",
    ast.ImportFrom: "import",
    ast.ClassDef: "class definition",
    ast.FunctionDef: "nested function",
    ast.Global: "global",
    ast.Nonlocal: "nonlocal",
    ast.Try: "try",
    ast.With: "with",
    ast.Raise: "raise",
    ast.Delete: "del",
}


class FrontendError(Exception):
    """A program outside the subset: ``FILE, line N: message`` (``lineno`` is 1-based)."""

    def __init__(self, message: str, lineno: int, filename: str) -> None:
        super().__init__(f"{filename}, line {lineno}: {message}")
        self.lineno = lineno


@dataclass(frozen=True)
class Signature:
    params: list[tuple[str, str]]
    ret: str


def _annotation(a: ast.expr | None, what: str, node: ast.AST, file: str, allow_none: bool = False) -> str:
    if a is None:
        raise FrontendError(
            f"{what} needs a type annotation (int, float or bool)", getattr(node, "lineno", 0), file
        )
    if isinstance(a, ast.Name) and a.id in (INT, FLOAT, BOOL):
        return a.id
    if allow_none and isinstance(a, ast.Constant) and a.value is None:
        return NONE
    raise FrontendError(f"{what}: unsupported type {ast.unparse(a)!r} (int, float or bool)", a.lineno, file)


def _what(node: ast.AST) -> str:
    return _NAMES.get(type(node), type(node).__name__)


def _assignable(src: str, dst: str) -> bool:
    return src == dst or (dst == FLOAT and src in (INT, BOOL)) or (dst == INT and src == BOOL)


def _unify(types: Iterable[str]) -> str:
    ts = set(types)
    return FLOAT if FLOAT in ts else INT if INT in ts else BOOL


@dataclass
class _Loop:
    exit: rayzor.Block
    make_continue: Callable[[], rayzor.Block]


class _Function:
    """Compiles one ``def``: pass 1 types the locals, pass 2 emits MIR."""

    def __init__(self, module: rayzor.Module, node: ast.FunctionDef, sigs: dict[str, Signature], file: str):
        self.node, self.sigs, self.file = node, sigs, file
        self.sig = sigs[node.name]
        self.f = module.function(node.name, [MIR_TYPE[t] for _, t in self.sig.params], MIR_TYPE[self.sig.ret])
        self.types: dict[str, str] = dict(self.sig.params)
        self.vars: dict[str, rayzor.Var] = {}
        self.loops: list[_Loop] = []
        self.temps = 0

    def error(self, node: ast.AST, message: str) -> FrontendError:
        return FrontendError(message, getattr(node, "lineno", self.node.lineno), self.file)

    # ------------------------------------------------------------- typing

    def value_type(self, e: ast.expr) -> str:
        t = self.infer(e)
        if t == NONE:
            raise self.error(e, "this call returns None, which has no value")
        return t

    def numeric(self, e: ast.expr) -> str:
        t = self.value_type(e)
        return INT if t == BOOL else t

    def infer(self, e: ast.expr) -> str:
        if isinstance(e, ast.Constant):
            if isinstance(e.value, bool):
                return BOOL
            if isinstance(e.value, int):
                if not INT_MIN <= e.value <= INT_MAX:
                    raise self.error(e, f"{e.value} does not fit in a 64-bit int")
                return INT
            if isinstance(e.value, float):
                return FLOAT
            raise self.error(e, f"{type(e.value).__name__} constants are not supported")
        if isinstance(e, ast.Name):
            if e.id in self.types:
                return self.types[e.id]
            if e.id in self.sigs or e.id in BUILTINS:
                raise self.error(e, f"functions are not values: call {e.id}(...)")
            raise self.error(e, f"name '{e.id}' is not defined (or used before its first assignment)")
        if isinstance(e, ast.BinOp):
            return self.binop_type(e.op, self.value_type(e.left), self.value_type(e.right), e)
        if isinstance(e, ast.UnaryOp):
            if isinstance(e.op, ast.Not):
                self.value_type(e.operand)
                return BOOL
            t = self.numeric(e.operand)
            if isinstance(e.op, ast.Invert) and t != INT:
                raise self.error(e, "~ needs an int")
            return t
        if isinstance(e, ast.Compare):
            for op in e.ops:
                if not isinstance(op, (ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE)):
                    text = {ast.Is: "is", ast.IsNot: "is not", ast.In: "in", ast.NotIn: "not in"}
                    raise self.error(
                        e, f"comparison '{text.get(type(op), type(op).__name__)}' is not supported"
                    )
            for x in [e.left, *e.comparators]:
                self.value_type(x)
            return BOOL
        if isinstance(e, ast.BoolOp):
            return _unify(self.value_type(v) for v in e.values)
        if isinstance(e, ast.IfExp):
            self.value_type(e.test)
            return _unify([self.value_type(e.body), self.value_type(e.orelse)])
        if isinstance(e, ast.Call):
            return self.call_type(e)
        raise self.error(e, f"unsupported syntax: {_what(e)}")

    def binop_type(self, op: ast.operator, a: str, b: str, node: ast.AST) -> str:
        if isinstance(op, (ast.Add, ast.Sub, ast.Mult)):
            return _unify([a, b, INT])
        if isinstance(op, ast.Div):
            return FLOAT
        if isinstance(op, (ast.FloorDiv, ast.Mod, ast.LShift, ast.RShift, ast.BitAnd, ast.BitOr, ast.BitXor)):
            if FLOAT in (a, b):
                raise self.error(node, f"'{_OP_TEXT[type(op)]}' needs ints, not float")
            if isinstance(op, (ast.BitAnd, ast.BitOr, ast.BitXor)) and a == b == BOOL:
                return BOOL
            return INT
        raise self.error(node, f"operator '{_OP_TEXT.get(type(op), type(op).__name__)}' is not supported")

    def call_type(self, e: ast.Call) -> str:
        if not isinstance(e.func, ast.Name):
            raise self.error(e, "only calls of functions by name are supported")
        if e.keywords:
            raise self.error(e, "keyword arguments are not supported")
        name, args = e.func.id, e.args
        if any(isinstance(a, ast.Starred) for a in args):
            raise self.error(e, "*args in calls are not supported")
        if name in self.sigs:
            sig = self.sigs[name]
            if len(args) != len(sig.params):
                raise self.error(e, f"{name}() takes {len(sig.params)} argument(s), got {len(args)}")
            for a, (pname, pt) in zip(args, sig.params, strict=True):
                t = self.value_type(a)
                if not _assignable(t, pt):
                    raise self.error(a, f"argument '{pname}' of {name}() is {pt}, got {t}")
            return sig.ret
        if name not in BUILTINS:
            raise self.error(e, f"unknown function '{name}'")
        want = (2, 99) if name in ("min", "max") else (1, 1)
        if not want[0] <= len(args) <= want[1]:
            raise self.error(e, f"{name}() takes {'at least 2 arguments' if want[0] == 2 else '1 argument'}")
        types = [self.value_type(a) for a in args]
        if name == "abs":
            return INT if types[0] == BOOL else types[0]
        if name in ("min", "max"):
            return _unify(types + [INT])
        return {"int": INT, "float": FLOAT, "bool": BOOL}[name]

    def annotation(self, a: ast.expr | None, what: str) -> str:
        return _annotation(a, what, self.node, self.file)

    def declare(self, name: str, t: str, node: ast.AST) -> None:
        old = self.types.get(name)
        if old is None:
            self.types[name] = t
        elif not _assignable(t, old):
            raise self.error(node, f"cannot assign a {t} to '{name}', which holds {old} values")

    def collect(self, body: list[ast.stmt]) -> None:
        """Pass 1: give every local the type of its first assignment, in source order."""
        for s in body:
            if isinstance(s, ast.Assign):
                if len(s.targets) != 1:
                    raise self.error(s, "chained assignment (a = b = ...) is not supported")
                for name, value in self.pairs(s.targets[0], s.value):
                    self.declare(name, self.value_type(value), s)
            elif isinstance(s, ast.AnnAssign):
                if not isinstance(s.target, ast.Name):
                    raise self.error(s, "only names can be assigned")
                t = self.annotation(s.annotation, f"'{ast.unparse(s.target)}'")
                if s.value is not None and not _assignable(self.value_type(s.value), t):
                    raise self.error(s, f"cannot assign a {self.value_type(s.value)} to a {t}")
                self.declare(s.target.id, t, s)
            elif isinstance(s, ast.AugAssign):
                if not isinstance(s.target, ast.Name):
                    raise self.error(s, "only names can be assigned")
                old = self.value_type(s.target)
                self.declare(s.target.id, self.binop_type(s.op, old, self.value_type(s.value), s), s)
            elif isinstance(s, (ast.If, ast.While)):
                self.value_type(s.test)
                if isinstance(s, ast.While) and s.orelse:
                    raise self.error(s, "while ... else is not supported")
                self.collect(s.body)
                self.collect(s.orelse)
            elif isinstance(s, ast.For):
                self.range_args(s)
                assert isinstance(s.target, ast.Name)
                self.declare(s.target.id, INT, s)
                self.collect(s.body)
            elif isinstance(s, ast.Return):
                if s.value is not None:
                    self.value_type(s.value)
            elif isinstance(s, ast.Expr):
                if not (isinstance(s.value, ast.Constant) and isinstance(s.value.value, str)):
                    self.infer(s.value)
            elif isinstance(s, ast.Assert):
                self.value_type(s.test)
            elif not isinstance(s, (ast.Pass, ast.Break, ast.Continue)):
                raise self.error(s, f"unsupported syntax: {_what(s)}")

    def pairs(self, target: ast.expr, value: ast.expr) -> list[tuple[str, ast.expr]]:
        if isinstance(target, ast.Name):
            return [(target.id, value)]
        if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple):
            if len(target.elts) != len(value.elts) or not all(isinstance(t, ast.Name) for t in target.elts):
                raise self.error(target, "tuple assignment needs names on the left, as many as values")
            return [
                (t.id, v) for t, v in zip(target.elts, value.elts, strict=True) if isinstance(t, ast.Name)
            ]
        raise self.error(target, f"unsupported syntax: assignment to {_what(target)}")

    def range_args(self, s: ast.For) -> tuple[list[ast.expr], int]:
        it = s.iter
        if s.orelse:
            raise self.error(s, "for ... else is not supported")
        if not isinstance(s.target, ast.Name):
            raise self.error(s, "the loop variable must be a name")
        if not (isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and it.func.id == "range"):
            raise self.error(s, "for loops must iterate over range(...)")
        if it.keywords or not 1 <= len(it.args) <= 3:
            raise self.error(s, "range() takes 1 to 3 positional arguments")
        for a in it.args:
            if self.value_type(a) == FLOAT:
                raise self.error(a, "range() arguments must be ints")
        step = 1
        if len(it.args) == 3:
            try:
                step = ast.literal_eval(it.args[2])
            except ValueError:
                step = 0
            if isinstance(step, bool) or not isinstance(step, int) or step == 0:
                raise self.error(it, "the step of range() must be a non-zero int constant")
        args = list(it.args[:2]) if len(it.args) > 1 else [ast.Constant(0), it.args[0]]
        return args, step

    # ------------------------------------------------------------- emitting

    def compile(self) -> None:
        self.collect(self.node.body)
        f = self.f
        for i, (name, _) in enumerate(self.sig.params):
            self.vars[name] = f.var(name, MIR_TYPE[self.types[name]], f.params[i])
        for name, t in self.types.items():
            if name not in self.vars:
                self.vars[name] = f.var(name, MIR_TYPE[t], f.zero(MIR_TYPE[t]))
        self.stmts(self.node.body)
        if self.open:
            if self.sig.ret == NONE:
                f.ret()
            else:
                f.trap()  # fell off the end of a function that returns a value

    @property
    def open(self) -> bool:
        """The current block has no terminator yet: code can still be added to it."""
        return not self.f.is_terminated

    def jump(self, block: rayzor.Block) -> None:
        self.f.jump(block)

    def enter(self, block: rayzor.Block) -> None:
        self.f.switch_to(block)

    def temp(self, t: str) -> rayzor.Var:
        self.temps += 1
        return self.f.var(f"$t{self.temps}", MIR_TYPE[t])

    def stmts(self, body: list[ast.stmt]) -> None:
        for s in body:
            if not self.open:
                return  # unreachable code after return/break/continue
            self.stmt(s)

    def stmt(self, s: ast.stmt) -> None:
        f = self.f
        if isinstance(s, ast.Assign):
            pairs = self.pairs(s.targets[0], s.value)
            values = [self.expr(v) for _, v in pairs]  # all right-hand sides first
            for (name, _), (v, t) in zip(pairs, values, strict=True):
                f.set(self.vars[name], self.coerce(v, t, self.types[name]))
        elif isinstance(s, ast.AnnAssign):
            assert isinstance(s.target, ast.Name)
            if s.value is not None:
                v, t = self.expr(s.value)
                f.set(self.vars[s.target.id], self.coerce(v, t, self.types[s.target.id]))
        elif isinstance(s, ast.AugAssign):
            assert isinstance(s.target, ast.Name)
            name = s.target.id
            left = (f.get(self.vars[name]), self.types[name])
            v, t = self.binop(s.op, left, self.expr(s.value), s)
            f.set(self.vars[name], self.coerce(v, t, self.types[name]))
        elif isinstance(s, ast.Expr):
            if isinstance(s.value, ast.Constant) and isinstance(s.value.value, str):
                return  # docstring
            if isinstance(s.value, ast.Call) and self.infer(s.value) == NONE:
                self.call(s.value)
            else:
                self.expr(s.value)
        elif isinstance(s, ast.Return):
            self.ret(s)
        elif isinstance(s, ast.If):
            self.if_(s)
        elif isinstance(s, ast.While):
            self.while_(s)
        elif isinstance(s, ast.For):
            self.for_(s)
        elif isinstance(s, (ast.Break, ast.Continue)):
            if not self.loops:
                raise self.error(s, f"'{'break' if isinstance(s, ast.Break) else 'continue'}' outside a loop")
            loop = self.loops[-1]
            self.jump(loop.exit if isinstance(s, ast.Break) else loop.make_continue())
        elif isinstance(s, ast.Assert):
            ok, fail = f.block(), f.block()
            f.brif(self.truth(*self.expr(s.test)), ok, fail)
            self.enter(fail)
            f.trap()
            self.enter(ok)
        elif not isinstance(s, ast.Pass):
            raise self.error(s, f"unsupported syntax: {_what(s)}")

    def ret(self, s: ast.Return) -> None:
        want = self.sig.ret
        if s.value is None:
            if want != NONE:
                raise self.error(s, f"return without a value in a function returning {want}")
            self.f.ret()
        else:
            if want == NONE:
                raise self.error(s, "return with a value in a function returning None")
            v, t = self.expr(s.value)
            if not _assignable(t, want):
                raise self.error(s, f"returning a {t} from a function returning {want}")
            self.f.ret(self.coerce(v, t, want))

    def if_(self, s: ast.If) -> None:
        f = self.f
        then = f.block()
        join: rayzor.Block | None = None
        if s.orelse:
            other = f.block()
        else:
            join = other = f.block()
        f.brif(self.truth(*self.expr(s.test)), then, other)
        self.enter(then)
        self.stmts(s.body)
        if self.open:
            join = join or f.block()
            self.jump(join)
        if s.orelse:
            self.enter(other)
            self.stmts(s.orelse)
            if self.open:
                join = join or f.block()
                self.jump(join)
        if join is not None:
            self.enter(join)

    def while_(self, s: ast.While) -> None:
        f = self.f
        head, body, done = f.block(), f.block(), f.block()
        self.jump(head)
        self.enter(head)
        f.brif(self.truth(*self.expr(s.test)), body, done)
        self.enter(body)
        self.loops.append(_Loop(done, lambda: head))
        self.stmts(s.body)
        self.loops.pop()
        if self.open:
            self.jump(head)
        self.enter(done)

    def for_(self, s: ast.For) -> None:
        f = self.f
        (start, stop), step = self.range_args(s)
        assert isinstance(s.target, ast.Name)
        counter = self.temp(INT)
        f.set(counter, self.coerce(*self.expr(start), INT))
        end = self.coerce(*self.expr(stop), INT)  # evaluated once, like Python
        head, body, done = f.block(), f.block(), f.block()
        step_block: list[rayzor.Block] = []

        def make_continue() -> rayzor.Block:
            if not step_block:
                step_block.append(f.block())
            return step_block[0]

        self.jump(head)
        self.enter(head)
        i = f.get(counter)
        f.brif(f.lt(i, end) if step > 0 else f.gt(i, end), body, done)
        self.enter(body)
        f.set(self.vars[s.target.id], self.coerce(f.get(counter), INT, self.types[s.target.id]))
        self.loops.append(_Loop(done, make_continue))
        self.stmts(s.body)
        self.loops.pop()
        if self.open:
            self.jump(make_continue())
        if step_block:
            self.enter(step_block[0])
            f.set(counter, f.get(counter) + step)
            self.jump(head)
        self.enter(done)

    # ------------------------------------------------------------- expressions

    def coerce(self, v: rayzor.Value, src: str, dst: str) -> rayzor.Value:
        return v if src == dst else self.f.cast(v, MIR_TYPE[dst])

    def truth(self, v: rayzor.Value, t: str) -> rayzor.Value:
        if t == BOOL:
            return v
        return self.f.ne(v, self.f.zero(MIR_TYPE[t]))

    def expr(self, e: ast.expr) -> tuple[rayzor.Value, str]:
        t = self.value_type(e)  # also rejects what the subset lacks
        f = self.f
        if isinstance(e, ast.Constant):
            assert isinstance(e.value, (int, float))  # bool is an int
            return f.const(e.value, MIR_TYPE[t]), t
        if isinstance(e, ast.Name):
            return f.get(self.vars[e.id]), t
        if isinstance(e, ast.BinOp):
            return self.binop(e.op, self.expr(e.left), self.expr(e.right), e)
        if isinstance(e, ast.UnaryOp):
            v, vt = self.expr(e.operand)
            if isinstance(e.op, ast.Not):
                return f.not_(self.truth(v, vt)), BOOL
            v = self.coerce(v, vt, t)
            if isinstance(e.op, ast.USub):
                return f.neg(v), t
            if isinstance(e.op, ast.Invert):
                return f.not_(v), t
            return v, t
        if isinstance(e, ast.Compare):
            return self.compare(e), BOOL
        if isinstance(e, ast.BoolOp):
            res, done = self.temp(t), f.block()
            for k, operand in enumerate(e.values):
                v, vt = self.expr(operand)
                f.set(res, self.coerce(v, vt, t))
                if k == len(e.values) - 1:
                    self.jump(done)
                else:
                    nxt = f.block()
                    if isinstance(e.op, ast.And):
                        f.brif(self.truth(v, vt), nxt, done)
                    else:
                        f.brif(self.truth(v, vt), done, nxt)
                    self.enter(nxt)
            self.enter(done)
            return f.get(res), t
        if isinstance(e, ast.IfExp):
            res, yes, no, done = self.temp(t), f.block(), f.block(), f.block()
            f.brif(self.truth(*self.expr(e.test)), yes, no)
            for block, branch in ((yes, e.body), (no, e.orelse)):
                self.enter(block)
                v, vt = self.expr(branch)
                f.set(res, self.coerce(v, vt, t))
                self.jump(done)
            self.enter(done)
            return f.get(res), t
        assert isinstance(e, ast.Call)
        result = self.call(e)
        assert result is not None  # value_type() rejected calls of None functions
        return result, t

    def binop(
        self, op: ast.operator, left: tuple[rayzor.Value, str], right: tuple[rayzor.Value, str], node: ast.AST
    ) -> tuple[rayzor.Value, str]:
        f = self.f
        t = self.binop_type(op, left[1], right[1], node)
        a, b = self.coerce(*left, t), self.coerce(*right, t)
        if isinstance(op, (ast.FloorDiv, ast.Mod)):
            # MIR divides truncating toward zero; Python floors.
            q, r = f.div(a, b), f.rem(a, b)
            adjust = f.and_(f.ne(r, 0), f.lt(f.xor(r, b), 0))
            if isinstance(op, ast.FloorDiv):
                return f.sub(q, f.cast(adjust, rayzor.i64)), t
            return f.add(r, f.select(adjust, b, f.zero(rayzor.i64))), t
        emit = {
            ast.Add: f.add,
            ast.Sub: f.sub,
            ast.Mult: f.mul,
            ast.Div: f.div,
            ast.LShift: f.shl,
            ast.RShift: f.shr,
            ast.BitAnd: f.and_,
            ast.BitOr: f.or_,
            ast.BitXor: f.xor,
        }[type(op)]
        return emit(a, b), t

    def compare(self, e: ast.Compare) -> rayzor.Value:
        f = self.f
        emit = {ast.Eq: f.eq, ast.NotEq: f.ne, ast.Lt: f.lt, ast.LtE: f.le, ast.Gt: f.gt, ast.GtE: f.ge}
        left, lt = self.expr(e.left)
        res = self.temp(BOOL) if len(e.ops) > 1 else None
        done = f.block() if res is not None else None
        for k, (op, node) in enumerate(zip(e.ops, e.comparators, strict=True)):
            right, rt = self.expr(node)
            t = _unify([lt, rt, INT])
            c = emit[type(op)](self.coerce(left, lt, t), self.coerce(right, rt, t))
            if res is None or done is None:
                return c
            f.set(res, c)
            if k == len(e.ops) - 1:
                self.jump(done)
            else:
                nxt = f.block()
                f.brif(c, nxt, done)
                self.enter(nxt)
            left, lt = right, rt
        assert res is not None and done is not None
        self.enter(done)
        return f.get(res)

    def call(self, e: ast.Call) -> rayzor.Value | None:
        f = self.f
        assert isinstance(e.func, ast.Name)
        name = e.func.id
        args = [self.expr(a) for a in e.args]
        if name in self.sigs:
            params = self.sigs[name].params
            coerced = [self.coerce(v, t, pt) for (v, t), (_, pt) in zip(args, params, strict=True)]
            if self.sigs[name].ret == NONE:
                f.call_void(name, *coerced)
                return None
            return f.call(name, *coerced)
        t = self.infer(e)
        if name == "abs":
            return f.abs(self.coerce(*args[0], t))
        if name in ("min", "max"):
            op = f.min if name == "min" else f.max
            acc = self.coerce(*args[0], t)
            for v, vt in args[1:]:
                acc = op(acc, self.coerce(v, vt, t))
            return acc
        if name == "bool":
            return self.truth(*args[0])
        return self.coerce(*args[0], t)


_OP_TEXT: dict[type, str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
    ast.LShift: "<<",
    ast.RShift: ">>",
    ast.BitAnd: "&",
    ast.BitOr: "|",
    ast.BitXor: "^",
    ast.MatMult: "@",
}


def compile_source(source: str, filename: str = "<source>") -> rayzor.Module:
    """Compile a tinypy program to a verified :class:`rayzor.Module`."""
    try:
        tree = ast.parse(source, filename)
    except SyntaxError as e:
        raise FrontendError(f"syntax error: {e.msg}", e.lineno or 0, filename) from None
    module = rayzor.Module()
    sigs: dict[str, Signature] = {}
    defs: list[ast.FunctionDef] = []
    for node in tree.body:
        if (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            continue  # module docstring
        if not isinstance(node, ast.FunctionDef):
            raise FrontendError(
                f"unsupported syntax: only def statements are allowed at the top level, not {_what(node)}",
                node.lineno,
                filename,
            )
        a = node.args
        if node.decorator_list or a.vararg or a.kwarg or a.kwonlyargs or a.posonlyargs or a.defaults:
            raise FrontendError(
                "decorators, defaults, *args and keyword-only parameters are not supported",
                node.lineno,
                filename,
            )
        if node.name in sigs:
            raise FrontendError(f"function '{node.name}' is defined twice", node.lineno, filename)
        params = [(p.arg, _annotation(p.annotation, f"parameter '{p.arg}'", p, filename)) for p in a.args]
        ret = _annotation(node.returns, f"the result of {node.name}()", node, filename, allow_none=True)
        sigs[node.name] = Signature(params, ret)
        defs.append(node)
    # Declare every function first: a call may come before the callee's definition.
    for name, sig in sigs.items():
        module.declare(name, [MIR_TYPE[t] for _, t in sig.params], MIR_TYPE[sig.ret])
    for node in defs:
        _Function(module, node, sigs, filename).compile()
    module.verify()  # a VerifyError here is a bug in this front end
    return module


@dataclass
class Program:
    """A compiled program running in a :class:`rayzor.TieredJit`: ``prog["fib"](30)``."""

    source: str
    config: rayzor.TieredConfig | None = None
    filename: str = "<source>"
    module: rayzor.Module = field(init=False)
    jit: rayzor.TieredJit = field(init=False)

    def __post_init__(self) -> None:
        self.module = compile_source(self.source, self.filename)
        self.jit = rayzor.TieredJit(self.module, self.config)

    def __getitem__(self, name: str) -> Callable[..., Any]:
        return self.jit[name]

    def close(self) -> None:
        self.jit.close()

    def __enter__(self) -> Program:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _arg(text: str, t: rayzor.Type) -> int | float | bool:
    if t.is_float:
        return float(text)
    if t.kind == "bool":
        return text.lower() in ("true", "1")
    return int(text, 0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="tinypy", description="Compile a typed Python subset to MIR and run it.")
    p.add_argument("file")
    p.add_argument("func", nargs="?")
    p.add_argument("args", nargs="*")
    p.add_argument("--tier", choices=["T0", "T1", "T2", "T3", "tiered"], default="tiered")
    p.add_argument("--mir", action="store_true", help="print the MIR")
    a = p.parse_args(argv)
    try:
        with open(a.file, encoding="utf-8") as fh:
            source = fh.read()
        if a.mir or a.func is None:
            print(compile_source(source, a.file), end="")
            if a.func is None:
                return 0
        tiered = a.tier == "tiered"
        config = None if tiered else rayzor.TieredConfig(enable_background_optimization=False)
        with Program(source, config, a.file) as prog:
            if not tiered:
                for name in prog.jit.functions:
                    prog.jit.compile(name, rayzor.Tier[a.tier])
            params = prog.module.signature(a.func)[0] if a.func in prog.module.functions else []
            print(prog[a.func](*[_arg(x, t) for x, t in zip(a.args, params, strict=False)]))
    except (OSError, ValueError, FrontendError, rayzor.RayzorError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
