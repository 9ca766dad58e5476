"""The named arithmetic, comparison and unary methods, generated from one table.

The extension has a single entry for all of them, ``FunctionBuilder._op(op, *operands)``
(``op`` is the MIR name: ``"add"``, ``"lt"``, ``"neg"``, ...). This module defines
``FunctionBuilder.add``, ``.lt``, ``.neg``, ... and ``Value.__add__``, ``.__neg__``, ...
from the tables below and attaches them to the extension classes when ``rayzor`` is
imported. Their typed signatures are in ``_rayzor.pyi``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ._rayzor import FunctionBuilder, Value

if TYPE_CHECKING:
    from ._rayzor import Operand

#: Builder method name -> MIR operation, for two-operand instructions (binary and compare).
BINARY: dict[str, str] = {
    "add": "add",
    "sub": "sub",
    "mul": "mul",
    "div": "div",
    "rem": "rem",
    "and_": "and",
    "or_": "or",
    "xor": "xor",
    "shl": "shl",
    "shr": "shr",
    "rotl": "rotl",
    "rotr": "rotr",
    "min": "min",
    "max": "max",
    "copysign": "copysign",
    "eq": "eq",
    "ne": "ne",
    "lt": "lt",
    "le": "le",
    "gt": "gt",
    "ge": "ge",
}

#: Builder method name -> MIR operation, for one-operand instructions.
UNARY: dict[str, str] = {
    "neg": "neg",
    "not_": "not",
    "abs": "abs",
    "sqrt": "sqrt",
    "clz": "clz",
    "ctz": "ctz",
    "popcnt": "popcnt",
    "floor": "floor",
    "ceil": "ceil",
    "trunc": "trunc",
    "nearest": "nearest",
}

#: Python operator (``__add__`` and ``__radd__``, ...) -> MIR operation.
VALUE_BINARY: dict[str, str] = {
    "add": "add",
    "sub": "sub",
    "mul": "mul",
    "truediv": "div",
    "floordiv": "div",
    "mod": "rem",
    "and": "and",
    "or": "or",
    "xor": "xor",
    "lshift": "shl",
    "rshift": "shr",
}

#: Python unary operator -> MIR operation.
VALUE_UNARY: dict[str, str] = {"neg": "neg", "invert": "not"}


def _named(fn: Callable[..., Value], owner: type, name: str, doc: str) -> Callable[..., Value]:
    fn.__name__ = name
    fn.__qualname__ = f"{owner.__name__}.{name}"
    fn.__doc__ = doc
    return fn


def _builder_binary(name: str, op: str) -> Callable[..., Value]:
    def method(self: FunctionBuilder, a: Operand, b: Operand) -> Value:
        return self._op(op, a, b)

    return _named(method, FunctionBuilder, name, f"Emit ``{op} a, b`` (a number takes the other's type).")


def _builder_unary(name: str, op: str) -> Callable[..., Value]:
    def method(self: FunctionBuilder, a: Operand) -> Value:
        return self._op(op, a)

    return _named(method, FunctionBuilder, name, f"Emit ``{op} a``.")


def _value_binary(name: str, op: str, reflected: bool) -> Callable[..., Value]:
    if reflected:

        def method(self: Value, other: Operand) -> Value:
            return self._builder._op(op, other, self)

    else:

        def method(self: Value, other: Operand) -> Value:
            return self._builder._op(op, self, other)

    return _named(method, Value, name, f"Emit ``{op}`` in the value's function.")


def _value_unary(name: str, op: str) -> Callable[..., Value]:
    def method(self: Value) -> Value:
        return self._builder._op(op, self)

    return _named(method, Value, name, f"Emit ``{op}`` in the value's function.")


def install() -> None:
    """Attach the generated methods to the extension classes (idempotent)."""
    for name, op in BINARY.items():
        setattr(FunctionBuilder, name, _builder_binary(name, op))
    for name, op in UNARY.items():
        setattr(FunctionBuilder, name, _builder_unary(name, op))
    for name, op in VALUE_BINARY.items():
        for dunder, reflected in ((f"__{name}__", False), (f"__r{name}__", True)):
            setattr(Value, dunder, _value_binary(dunder, op, reflected))
    for name, op in VALUE_UNARY.items():
        setattr(Value, f"__{name}__", _value_unary(f"__{name}__", op))


install()
