"""Rayzor: a tiered JIT compiler for a small typed IR (MIR), driven from Python.

Build functions with :class:`Module` and :class:`FunctionBuilder`, check them with
:meth:`Module.verify`, print them with ``str(module)``, read them back with
:func:`parse`, and run them in the reference interpreter with :func:`interpret`.
``docs/mir.md`` is the contract for what every instruction means.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import _ops as _ops  # attaches the named builder methods and Value's operators
from . import _rayzor
from ._rayzor import (
    MAX_CALL_DEPTH,
    T3_MAX_BLOCK,
    T3_MAX_SIZE,
    Block,
    FunctionBuilder,
    Module,
    Type,
    Value,
    Var,
    array,
    interpret,
    llvm_available,
    parse,
    parse_type,
    slice,
    struct_,
    union,
)
from ._rayzor import extern_fn_ptr as extern_fn
from ._rayzor import fn_ptr as fn
from .config import ProfileConfig, TieredConfig
from .errors import (
    ArgumentError,
    BuildError,
    ClosedError,
    CompileError,
    ConfigError,
    ParseError,
    RayzorError,
    StepLimitError,
    Trap,
    TrapKind,
    VerifyError,
)
from .jit import TieredJit
from .jit_types import (
    BranchProfile,
    CallProfile,
    FunctionInfo,
    FunctionProfile,
    IndirectProfile,
    MachineCode,
    OsrPoint,
    SwitchProfile,
    Tier,
)
from .stats import CompileEvent, FunctionStats, Stats

#: Scalar types.
bool_: Type = _rayzor.bool_t
i8: Type = _rayzor.i8_t
i16: Type = _rayzor.i16_t
i32: Type = _rayzor.i32_t
i64: Type = _rayzor.i64_t
u8: Type = _rayzor.u8_t
u16: Type = _rayzor.u16_t
u32: Type = _rayzor.u32_t
u64: Type = _rayzor.u64_t
f32: Type = _rayzor.f32_t
f64: Type = _rayzor.f64_t
ptr: Type = _rayzor.ptr_t
#: No value (only as a return type).
void: Type = _rayzor.void_t
#: A tagged dynamic scalar.
any_: Type = _rayzor.any_t
#: A string: {ptr, u64 len} of UTF-8 bytes.
str_: Type = _rayzor.str_t
#: ``rayzor.struct(i32, f64)`` reads better than ``struct_``; both work.
struct = struct_

if TYPE_CHECKING:
    #: The installed distribution's version: Cargo.toml's workspace version.
    __version__: str
else:

    def __getattr__(name: str) -> str:
        # __version__ is read on first use: importing importlib.metadata costs
        # tens of ms at import, and again at interpreter exit (its modules are
        # finalised too).
        if name != "__version__":
            raise AttributeError(f"module 'rayzor' has no attribute {name!r}")
        from importlib.metadata import PackageNotFoundError, version

        try:
            v = version("rayzor")
        except PackageNotFoundError:  # imported from a source tree that was never installed
            v = "0+unknown"
        globals()["__version__"] = v
        return v


__all__ = [
    "MAX_CALL_DEPTH",
    "T3_MAX_BLOCK",
    "T3_MAX_SIZE",
    "ArgumentError",
    "Block",
    "BuildError",
    "ClosedError",
    "CompileError",
    "CompileEvent",
    "ConfigError",
    "FunctionInfo",
    "FunctionProfile",
    "BranchProfile",
    "SwitchProfile",
    "IndirectProfile",
    "CallProfile",
    "OsrPoint",
    "MachineCode",
    "FunctionStats",
    "ProfileConfig",
    "Stats",
    "TieredConfig",
    "FunctionBuilder",
    "Module",
    "ParseError",
    "RayzorError",
    "StepLimitError",
    "Tier",
    "TieredJit",
    "Trap",
    "TrapKind",
    "Type",
    "Value",
    "Var",
    "VerifyError",
    "any_",
    "array",
    "bool_",
    "extern_fn",
    "f32",
    "f64",
    "fn",
    "i8",
    "i16",
    "i32",
    "i64",
    "interpret",
    "llvm_available",
    "parse",
    "parse_type",
    "ptr",
    "slice",
    "str_",
    "struct_",
    "u8",
    "u16",
    "u32",
    "u64",
    "union",
    "void",
]
