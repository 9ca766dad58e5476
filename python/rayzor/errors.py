"""Rayzor's exception hierarchy. Everything Rayzor raises on bad input derives from
:class:`RayzorError`."""

from __future__ import annotations

from enum import Enum


class TrapKind(str, Enum):
    """Why a MIR program trapped. Every tier reports the same kind for the same program."""

    DIVISION_BY_ZERO = "division_by_zero"
    INTEGER_OVERFLOW = "integer_overflow"
    USER = "user"
    UNREACHABLE = "unreachable"
    STACK_OVERFLOW = "stack_overflow"
    BAD_TAG = "bad_tag"
    MEMORY_FAULT = "memory_fault"
    OUT_OF_MEMORY = "out_of_memory"
    #: Interrupted from outside (``TieredJit.interrupt()``); SIGINT raises KeyboardInterrupt.
    INTERRUPTED = "interrupted"

    def __str__(self) -> str:
        return self.value


class RayzorError(Exception):
    """Base class of every error Rayzor raises."""


class BuildError(RayzorError):
    """The builder API was misused (unknown value, block already terminated, ...)."""


class ArgumentError(RayzorError, TypeError):
    """A Python value cannot be passed as (or returned from) a MIR value of the given type."""


class VerifyError(RayzorError):
    """A module breaks a rule of the MIR verifier.

    ``function``, ``block`` and ``inst`` locate the problem (``block``/``inst`` may be
    ``None``; ``inst`` names the instruction by its number in the function, ``"inst5"``);
    ``position`` is the instruction's 0-based index within ``block`` (``None`` when no
    instruction is named); ``rule`` is a short stable name of the rule broken.
    """

    def __init__(
        self,
        message: str,
        function: str | None = None,
        block: str | None = None,
        inst: str | None = None,
        rule: str | None = None,
        position: int | None = None,
    ) -> None:
        super().__init__(message)
        self.function = function
        self.block = block
        self.inst = inst
        self.rule = rule
        self.position = position


class ParseError(RayzorError):
    """MIR text could not be parsed; ``line`` and ``column`` are 1-based. ``str(e)`` is
    ``"line L, column C: <message>"``; ``message`` is the text without the location."""

    def __init__(self, message: str, line: int = 0, column: int = 0, bare: str | None = None) -> None:
        super().__init__(message)
        self.line = line
        self.column = column
        self.message = message if bare is None else bare


class Trap(RayzorError):
    """A MIR program trapped (division by zero, explicit trap, deep recursion, ...).

    The process is unaffected and the function can be called again.
    """

    def __init__(self, message: str, kind: str, function: str | None = None) -> None:
        super().__init__(message)
        self.kind = TrapKind(kind)
        self.function = function


class StepLimitError(RayzorError):
    """The interpreter ran more instructions than the ``step_limit`` it was given."""


class CompileError(RayzorError):
    """A backend failed to compile a function; it keeps running its previous code."""


class ClosedError(RayzorError):
    """The jit was closed; calls and compiles are no longer accepted."""


class ConfigError(RayzorError, ValueError):
    """A configuration value is out of range or inconsistent."""
