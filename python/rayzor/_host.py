"""Exceptions raised inside raw ctypes callbacks given as host functions.

A plain Python callable in ``host=`` runs behind Rayzor's own C-ABI thunk
(``src/host.rs``): an exception it raises aborts the MIR call like a trap and is
re-raised from it. A raw ctypes function pointer is called directly, and ctypes cannot
pass an exception out of its callbacks: it reports it to :data:`sys.unraisablehook`
and returns 0. When such a pointer is given to ``TieredJit``/``interpret``, Rayzor puts
its own hook in front of the current one, so that the exception aborts the MIR call
and is re-raised from it the same way. If the hook is replaced afterwards (some test
runners do), the exception is only reported, as ctypes does, and the call continues
with the 0 ctypes returned; prefer plain callables.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from . import _rayzor

_previous_hook: Callable[[Any], Any] = sys.__unraisablehook__


def _unraisable_hook(unraisable: Any) -> None:
    exc = unraisable.exc_value
    if exc is not None and "ctypes callback" in (unraisable.err_msg or "") and _rayzor._host_abort(exc):
        return  # re-raised from the MIR call it aborted
    _previous_hook(unraisable)


def watch_ctypes_callbacks() -> None:
    """Put Rayzor's hook in front of the current :data:`sys.unraisablehook` (idempotent)."""
    global _previous_hook
    if sys.unraisablehook is not _unraisable_hook:
        _previous_hook = sys.unraisablehook
        sys.unraisablehook = _unraisable_hook
