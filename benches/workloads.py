"""Benchmark workloads: each one as MIR built through the rayzor Python API, as pure
CPython, and as C (``benches/c/*.c``); the numba versions live in ``numba_worker.py``.

This module must stay importable without rayzor (the numba worker imports it, and
numba and rayzor each bring their own LLVM, which must not meet in one process), so
``import rayzor`` happens inside the MIR builders only.

Every implementation of a workload runs the same algorithm with the same floating-point
operation order, so results agree exactly (floats are still compared with a tiny
relative tolerance, see :func:`same_result`).
"""

from __future__ import annotations

import ctypes
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import rayzor

C_DIR = Path(__file__).resolve().parent / "c"

#: Benchmarks-game n-body: the energy after offsetting momentum, and after 1000 steps.
NBODY_PUBLISHED = {"before": "-0.169075164", "after_1000": "-0.169087605"}
NBODY_CHECK_STEPS = 1000

MANDEL_MAXIT = 50


# --------------------------------------------------------------------------- inputs


def nbody_bodies() -> np.ndarray:
    """Sun, Jupiter, Saturn, Uranus, Neptune as a flat float64 buffer of 5 x 7:
    x, y, z, vx, vy, vz, mass (velocities in AU/year, masses in solar masses x 4 pi^2)."""
    pi = 3.141592653589793
    solar_mass = 4 * pi * pi
    dpy = 365.24
    raw = [
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0),
        (
            4.84143144246472090e00,
            -1.16032004402742839e00,
            -1.03622044471123109e-01,
            1.66007664274403694e-03,
            7.69901118419740425e-03,
            -6.90460016972063023e-05,
            9.54791938424326609e-04,
        ),
        (
            8.34336671824457987e00,
            4.12479856412430479e00,
            -4.03523417114321381e-01,
            -2.76742510726862411e-03,
            4.99852801234917238e-03,
            2.30417297573763929e-05,
            2.85885980666130812e-04,
        ),
        (
            1.28943695621391310e01,
            -1.51111514016986312e01,
            -2.23307578892655734e-01,
            2.96460137564761618e-03,
            2.37847173959480950e-03,
            -2.96589568540237556e-05,
            4.36624404335156298e-05,
        ),
        (
            1.53796971148509165e01,
            -2.59193146099879641e01,
            1.79258772950371181e-01,
            2.68067772490389322e-03,
            1.62824170038242295e-03,
            -9.51592254519715870e-05,
            5.15138902046611451e-05,
        ),
    ]
    out = []
    for x, y, z, vx, vy, vz, m in raw:
        out += [x, y, z, vx * dpy, vy * dpy, vz * dpy, m * solar_mass]
    return np.array(out, dtype=np.float64)


def matmul_inputs(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deterministic matrices of small binary fractions (row-major, flat)."""
    k = np.arange(n * n, dtype=np.int64)
    a = (k % 17).astype(np.float64) * 0.25 - 1.875
    b = (k % 13).astype(np.float64) * 0.5 - 2.75
    return a, b, np.zeros(n * n, dtype=np.float64)


# --------------------------------------------------------------------------- CPython


def py_fib(n: int) -> int:
    return n if n < 2 else py_fib(n - 1) + py_fib(n - 2)


def py_loop_sum(n: int) -> int:
    s = 0
    for i in range(n):
        s += i ^ (i >> 3)
    s &= 0xFFFF_FFFF_FFFF_FFFF  # wrapping i64
    return s - (1 << 64) if s >= 1 << 63 else s


def py_mandelbrot(w: int, h: int, maxit: int) -> int:
    total = 0
    for py in range(h):
        ci = float(py) * 2.0 / float(h) - 1.0
        for px in range(w):
            cr = float(px) * 3.0 / float(w) - 2.0
            zr = zi = 0.0
            k = 0
            while k < maxit:
                zr2 = zr * zr
                zi2 = zi * zi
                if zr2 + zi2 > 4.0:
                    break
                zi = 2.0 * zr * zi + ci
                zr = zr2 - zi2 + cr
                k += 1
            total += k
    return total


def py_nbody(bodies: np.ndarray, steps: int) -> float:
    """Works on a list copy of the buffer (numpy scalar indexing would dominate) and
    writes the state back."""
    b = bodies.tolist()
    nb = 5
    solar_mass = 4.0 * 3.141592653589793 * 3.141592653589793
    dt = 0.01
    px = py = pz = 0.0
    for i in range(nb):
        o = 7 * i
        px += b[o + 3] * b[o + 6]
        py += b[o + 4] * b[o + 6]
        pz += b[o + 5] * b[o + 6]
    b[3] = -px / solar_mass
    b[4] = -py / solar_mass
    b[5] = -pz / solar_mass
    for _ in range(steps):
        for i in range(nb):
            oi = 7 * i
            for j in range(i + 1, nb):
                oj = 7 * j
                dx = b[oi] - b[oj]
                dy = b[oi + 1] - b[oj + 1]
                dz = b[oi + 2] - b[oj + 2]
                d2 = dx * dx + dy * dy + dz * dz
                mag = dt / (d2 * math.sqrt(d2))
                mj = b[oj + 6] * mag
                mi = b[oi + 6] * mag
                b[oi + 3] -= dx * mj
                b[oi + 4] -= dy * mj
                b[oi + 5] -= dz * mj
                b[oj + 3] += dx * mi
                b[oj + 4] += dy * mi
                b[oj + 5] += dz * mi
        for i in range(nb):
            o = 7 * i
            b[o] += dt * b[o + 3]
            b[o + 1] += dt * b[o + 4]
            b[o + 2] += dt * b[o + 5]
    bodies[:] = b
    e = 0.0
    for i in range(nb):
        oi = 7 * i
        e += 0.5 * b[oi + 6] * (b[oi + 3] * b[oi + 3] + b[oi + 4] * b[oi + 4] + b[oi + 5] * b[oi + 5])
        for j in range(i + 1, nb):
            oj = 7 * j
            dx = b[oi] - b[oj]
            dy = b[oi + 1] - b[oj + 1]
            dz = b[oi + 2] - b[oj + 2]
            e -= b[oi + 6] * b[oj + 6] / math.sqrt(dx * dx + dy * dy + dz * dz)
    return e


def py_sieve(flags: np.ndarray, n: int) -> int:
    if n < 2:
        return 0
    mv = memoryview(flags)  # the numpy buffer, indexed as Python ints
    mv[:n] = b"\x01" * n
    mv[0] = 0
    mv[1] = 0
    i = 2
    while i * i < n:
        if mv[i]:
            for j in range(i * i, n, i):
                mv[j] = 0
        i += 1
    count = 0
    for i in range(n):
        count += mv[i]
    return count


#: The bytecode of tests/mir/bytecode_vm.mir (see benches/c/vm.c for the opcodes).
VM_CODE = bytes([1, 2, 3, 9, 11, 3, 5, 6, 2, 11, 7, 7, 3, 9, 11, 1, 8, 6, 12, 13, 0, 0])
VM_MIR = Path(__file__).resolve().parent.parent / "tests" / "mir" / "bytecode_vm.mir"


def _wrap(x: int) -> int:
    return ((x + (1 << 63)) & ((1 << 64) - 1)) - (1 << 63)


def py_vm(n: int) -> int:
    """The bytecode VM interpreted in Python, opcode for opcode (a switch as an if chain)."""
    code, st = VM_CODE, [0] * 16
    pc = sp = acc = i = 0
    while True:
        op = code[pc]
        pc += 1
        if op == 0:
            return acc
        if op == 1:
            st[sp] = acc
            sp += 1
        elif op == 2:
            st[sp] = i
            sp += 1
        elif op == 3:
            st[sp - 2] = _wrap(st[sp - 2] + st[sp - 1])
            sp -= 1
        elif op == 4:
            st[sp - 2] = _wrap(st[sp - 2] - st[sp - 1])
            sp -= 1
        elif op == 5:
            st[sp - 2] = _wrap(st[sp - 2] * st[sp - 1])
            sp -= 1
        elif op == 6:
            st[sp - 2] ^= st[sp - 1]
            sp -= 1
        elif op == 7:
            st[sp - 2] &= st[sp - 1]
            sp -= 1
        elif op == 8:
            st[sp - 2] >>= st[sp - 1] & 63
            sp -= 1
        elif op == 9:
            st[sp] = st[sp - 1]
            sp += 1
        elif op == 10:
            st[sp - 2], st[sp - 1] = st[sp - 1], st[sp - 2]
        elif op == 11:
            st[sp] = code[pc]
            sp += 1
            pc += 1
        elif op == 12:
            sp -= 1
            acc = st[sp]
        elif op == 13:
            i += 1
            if i < n:
                pc = 0
        elif op == 14:
            sp -= 1
        else:
            raise ValueError(f"bad opcode {op}")


def py_collatz(n: int) -> int:
    total = 0
    for i in range(1, n):
        x = i
        while x != 1:
            x = 3 * x + 1 if x & 1 else x >> 1
            total += 1
    return total


def py_matmul(a: np.ndarray, b: np.ndarray, c: np.ndarray, n: int) -> float:
    av, bv, cv = memoryview(a), memoryview(b), memoryview(c)
    total = 0.0
    for i in range(n):
        for j in range(n):
            s = 0.0
            for k in range(n):
                s += av[i * n + k] * bv[k * n + j]
            cv[i * n + j] = s
            total += s
    return total


# --------------------------------------------------------------------------- MIR


class _Loops:
    """Structured-control helpers over a FunctionBuilder (variables do the SSA)."""

    def __init__(self, f: rayzor.FunctionBuilder) -> None:
        self.f = f
        self.k = 0

    def var(self, ty: rayzor.Type, init: Any) -> rayzor.Var:
        self.k += 1
        return self.f.var(f"v{self.k}", ty, init)

    @contextmanager
    def range(self, start: Any, stop: Any, step: Any = 1) -> Iterator[rayzor.Value]:
        """``for i in range(start, stop, step)`` (i64); yields ``i`` in the body."""
        import rayzor

        f = self.f
        i = self.var(rayzor.i64, start)
        head, body, done = f.block(), f.block(), f.block()
        f.jump(head)
        f.switch_to(head)
        f.brif(f.lt(f.get(i), stop), body, done)
        f.switch_to(body)
        yield f.get(i)
        f.set(i, f.get(i) + step)
        f.jump(head)
        f.switch_to(done)


def _ld(f: rayzor.FunctionBuilder, ty: rayzor.Type, p: rayzor.Value, i: Any) -> rayzor.Value:
    return f.load(ty, f.elem_addr(ty, p, i))


def _st(f: rayzor.FunctionBuilder, ty: rayzor.Type, p: rayzor.Value, i: Any, v: Any) -> None:
    f.store(f.elem_addr(ty, p, i), v)


def mir_fib() -> rayzor.Module:
    from rayzor.examples import fib_module

    return fib_module()


def mir_loop() -> rayzor.Module:
    from rayzor.examples import loop_sum_module

    return loop_sum_module()


def mir_mandelbrot() -> rayzor.Module:
    import rayzor

    m = rayzor.Module()
    f = m.function("mandelbrot", [rayzor.i64, rayzor.i64, rayzor.i64], rayzor.i64)
    w, h, maxit = f.params
    L = _Loops(f)
    f64 = rayzor.f64
    total = L.var(rayzor.i64, 0)
    with L.range(0, h) as py:
        ci = f.cast(py, f64) * 2.0 / f.cast(h, f64) - 1.0
        with L.range(0, w) as px:
            cr = f.cast(px, f64) * 3.0 / f.cast(w, f64) - 2.0
            zr = L.var(f64, 0.0)
            zi = L.var(f64, 0.0)
            k = L.var(rayzor.i64, 0)
            head, test, step, done = f.block(), f.block(), f.block(), f.block()
            f.jump(head)
            f.switch_to(head)
            f.brif(f.lt(f.get(k), maxit), test, done)
            f.switch_to(test)
            zrv, ziv = f.get(zr), f.get(zi)
            zr2 = zrv * zrv
            zi2 = ziv * ziv
            f.brif(f.gt(zr2 + zi2, 4.0), done, step)
            f.switch_to(step)
            f.set(zi, 2.0 * zrv * ziv + ci)
            f.set(zr, zr2 - zi2 + cr)
            f.set(k, f.get(k) + 1)
            f.jump(head)
            f.switch_to(done)
            f.set(total, f.get(total) + f.get(k))
    f.ret(f.get(total))
    m.verify()
    return m


def mir_nbody() -> rayzor.Module:
    """``nbody(bodies, steps) -> energy`` calling ``nbody_offset``, ``nbody_advance`` and
    ``nbody_energy``, all over the flat 5 x 7 float64 buffer (loops, as in C)."""
    import rayzor

    f64, i64, ptr = rayzor.f64, rayzor.i64, rayzor.ptr
    nb = 5
    m = rayzor.Module()

    f = m.function("nbody_energy", [ptr], f64)
    (b,) = f.params
    L = _Loops(f)
    e = L.var(f64, 0.0)
    with L.range(0, nb) as i:
        oi = i * 7
        vx, vy, vz = (_ld(f, f64, b, oi + k) for k in (3, 4, 5))
        mi = _ld(f, f64, b, oi + 6)
        f.set(e, f.get(e) + 0.5 * mi * (vx * vx + vy * vy + vz * vz))
        with L.range(i + 1, nb) as j:
            oj = j * 7
            dx = _ld(f, f64, b, oi) - _ld(f, f64, b, oj)
            dy = _ld(f, f64, b, oi + 1) - _ld(f, f64, b, oj + 1)
            dz = _ld(f, f64, b, oi + 2) - _ld(f, f64, b, oj + 2)
            mj = _ld(f, f64, b, oj + 6)
            f.set(e, f.get(e) - mi * mj / f.sqrt(dx * dx + dy * dy + dz * dz))
    f.ret(f.get(e))

    f = m.function("nbody_offset", [ptr], rayzor.void)
    (b,) = f.params
    L = _Loops(f)
    p = [L.var(f64, 0.0) for _ in range(3)]
    with L.range(0, nb) as i:
        oi = i * 7
        mi = _ld(f, f64, b, oi + 6)
        for k in range(3):
            f.set(p[k], f.get(p[k]) + _ld(f, f64, b, oi + 3 + k) * mi)
    solar_mass = 4.0 * 3.141592653589793 * 3.141592653589793
    for k in range(3):
        _st(f, f64, b, 3 + k, -f.get(p[k]) / solar_mass)
    f.ret()

    f = m.function("nbody_advance", [ptr, i64, f64], rayzor.void)
    b, steps, dt = f.params
    L = _Loops(f)
    with L.range(0, steps):
        with L.range(0, nb) as i:
            oi = i * 7
            with L.range(i + 1, nb) as j:
                oj = j * 7
                dx = _ld(f, f64, b, oi) - _ld(f, f64, b, oj)
                dy = _ld(f, f64, b, oi + 1) - _ld(f, f64, b, oj + 1)
                dz = _ld(f, f64, b, oi + 2) - _ld(f, f64, b, oj + 2)
                d2 = dx * dx + dy * dy + dz * dz
                mag = dt / (d2 * f.sqrt(d2))
                mj = _ld(f, f64, b, oj + 6) * mag
                mi = _ld(f, f64, b, oi + 6) * mag
                for k, d in enumerate((dx, dy, dz)):
                    _st(f, f64, b, oi + 3 + k, _ld(f, f64, b, oi + 3 + k) - d * mj)
                for k, d in enumerate((dx, dy, dz)):
                    _st(f, f64, b, oj + 3 + k, _ld(f, f64, b, oj + 3 + k) + d * mi)
        with L.range(0, nb) as i:
            oi = i * 7
            for k in range(3):
                _st(f, f64, b, oi + k, _ld(f, f64, b, oi + k) + dt * _ld(f, f64, b, oi + 3 + k))
    f.ret()

    f = m.function("nbody", [ptr, i64], f64)
    b, steps = f.params
    f.call_void("nbody_offset", b)
    f.call_void("nbody_advance", b, steps, 0.01)
    f.ret(f.call("nbody_energy", b))
    m.verify()
    return m


def mir_sieve() -> rayzor.Module:
    import rayzor

    u8, i64 = rayzor.u8, rayzor.i64
    m = rayzor.Module()
    f = m.function("sieve", [rayzor.ptr, i64], i64)
    flags, n = f.params
    L = _Loops(f)
    small, go = f.block(), f.block()
    f.brif(f.lt(n, 2), small, go)
    f.switch_to(small)
    f.ret(0)
    f.switch_to(go)
    f.memset(flags, f.const(1, u8), f.cast(n, rayzor.u64))
    _st(f, u8, flags, 0, f.const(0, u8))
    _st(f, u8, flags, 1, f.const(0, u8))
    i = L.var(i64, 2)
    head, body, strike, nxt, done = f.block(), f.block(), f.block(), f.block(), f.block()
    f.jump(head)
    f.switch_to(head)
    iv = f.get(i)
    f.brif(f.lt(iv * iv, n), body, done)
    f.switch_to(body)
    iv = f.get(i)
    f.brif(f.ne(_ld(f, u8, flags, iv), f.const(0, u8)), strike, nxt)
    f.switch_to(strike)
    iv = f.get(i)
    with L.range(iv * iv, n, step=iv) as j:
        _st(f, u8, flags, j, f.const(0, u8))
    f.jump(nxt)
    f.switch_to(nxt)
    f.set(i, f.get(i) + 1)
    f.jump(head)
    f.switch_to(done)
    count = L.var(i64, 0)
    with L.range(0, n) as k:
        f.set(count, f.get(count) + f.cast(_ld(f, u8, flags, k), i64))
    f.ret(f.get(count))
    m.verify()
    return m


def mir_matmul() -> rayzor.Module:
    import rayzor

    f64, i64, ptr = rayzor.f64, rayzor.i64, rayzor.ptr
    m = rayzor.Module()
    f = m.function("matmul", [ptr, ptr, ptr, i64], f64)
    a, b, c, n = f.params
    L = _Loops(f)
    total = L.var(f64, 0.0)
    with L.range(0, n) as i:
        with L.range(0, n) as j:
            s = L.var(f64, 0.0)
            with L.range(0, n) as k:
                f.set(s, f.get(s) + _ld(f, f64, a, i * n + k) * _ld(f, f64, b, k * n + j))
            sv = f.get(s)
            _st(f, f64, c, i * n + j, sv)
            f.set(total, f.get(total) + sv)
    f.ret(f.get(total))
    m.verify()
    return m


def mir_collatz() -> rayzor.Module:
    """``collatz(n)``: total Collatz steps to reach 1 of every 1 <= i < n, in one call
    (two nested loops, the inner one branching on the parity of ``x``)."""
    import rayzor

    i64 = rayzor.i64
    m = rayzor.Module()
    f = m.function("collatz", [i64], i64)
    (n,) = f.params
    L = _Loops(f)
    total = L.var(i64, 0)
    with L.range(1, n) as i:
        x = L.var(i64, i)
        head, body, odd, even, done = f.block(), f.block(), f.block(), f.block(), f.block()
        f.jump(head)
        f.switch_to(head)
        f.brif(f.ne(f.get(x), 1), body, done)
        f.switch_to(body)
        f.set(total, f.get(total) + 1)
        xv = f.get(x)
        f.brif(f.ne(xv & 1, 0), odd, even)
        f.switch_to(odd)
        f.set(x, xv * 3 + 1)
        f.jump(head)
        f.switch_to(even)
        f.set(x, xv >> 1)
        f.jump(head)
        f.switch_to(done)
    f.ret(f.get(total))
    m.verify()
    return m


def mir_vm() -> rayzor.Module:
    """The bytecode VM of issue 12, from the run test that defines it."""
    import rayzor

    return rayzor.parse(VM_MIR.read_text())


def mir_ident() -> rayzor.Module:
    import rayzor

    m = rayzor.Module()
    f = m.function("ident", [rayzor.i64], rayzor.i64)
    f.ret(f.params[0])
    m.verify()
    return m


# --------------------------------------------------------------------------- catalogue


@dataclass(frozen=True)
class Workload:
    name: str
    description: str
    #: Size per mode: "full", "quick", "tiny".
    sizes: dict[str, int]
    #: The function every system calls (MIR, C symbol, numba kernel).
    entry: str
    #: (size) -> positional args; called before every run (fresh buffers), not timed.
    args: Callable[[int], tuple[Any, ...]]
    py: Callable[..., Any]
    mir: Callable[[], rayzor.Module]
    #: ctypes argument types (None for buffers) and result type.
    c_argtypes: list[Any]
    c_restype: Any
    result_kind: str = "int"
    c_file: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def c_path(self) -> Path:
        return C_DIR / (self.c_file or f"{self.name}.c")


def _nbody_args(steps: int) -> tuple[Any, ...]:
    return (nbody_bodies(), steps)


def _sieve_args(n: int) -> tuple[Any, ...]:
    return (np.zeros(max(n, 2), dtype=np.uint8), n)


def _matmul_args(n: int) -> tuple[Any, ...]:
    a, b, c = matmul_inputs(n)
    return (a, b, c, n)


_i64 = ctypes.c_int64
_f64 = ctypes.c_double
_p = ctypes.c_void_p

WORKLOADS: dict[str, Workload] = {
    w.name: w
    for w in [
        Workload(
            "fib",
            "recursive fib(n), i64",
            {"full": 30, "quick": 27, "tiny": 18},
            "fib",
            lambda n: (n,),
            py_fib,
            mir_fib,
            [_i64],
            _i64,
        ),
        Workload(
            "loop",
            "s += i ^ (i >> 3) for i < n, wrapping i64",
            {"full": 50_000_000, "quick": 5_000_000, "tiny": 100_000},
            "loop_sum",
            lambda n: (n,),
            py_loop_sum,
            mir_loop,
            [_i64],
            _i64,
        ),
        Workload(
            "mandelbrot",
            f"n x n grid, {MANDEL_MAXIT} iterations, total iteration count (f64)",
            {"full": 400, "quick": 200, "tiny": 24},
            "mandelbrot",
            lambda n: (n, n, MANDEL_MAXIT),
            py_mandelbrot,
            mir_mandelbrot,
            [_i64, _i64, _i64],
            _i64,
        ),
        Workload(
            "nbody",
            "benchmarks-game n-body, 5 bodies in a float64 buffer, n steps; energy after",
            {"full": 200_000, "quick": 20_000, "tiny": 1000},
            "nbody",
            _nbody_args,
            py_nbody,
            mir_nbody,
            [_p, _i64],
            _f64,
            result_kind="float",
        ),
        Workload(
            "sieve",
            "sieve of Eratosthenes over a uint8 buffer, primes below n",
            {"full": 5_000_000, "quick": 1_000_000, "tiny": 10_000},
            "sieve",
            _sieve_args,
            py_sieve,
            mir_sieve,
            [_p, _i64],
            _i64,
        ),
        Workload(
            "matmul",
            "n x n float64 matrix multiply (i-j-k), sum of the product",
            {"full": 200, "quick": 100, "tiny": 12},
            "matmul",
            _matmul_args,
            py_matmul,
            mir_matmul,
            [_p, _p, _p, _i64],
            _f64,
            result_kind="float",
        ),
        Workload(
            "vm",
            "switch-dispatch bytecode VM (tests/mir/bytecode_vm.mir), 17 opcodes x n iterations",
            {"full": 1_000_000, "quick": 300_000, "tiny": 10_000},
            "vm",
            lambda n: (n,),
            py_vm,
            mir_vm,
            [_i64],
            _i64,
        ),
    ]
}


#: Workloads of the OSR section only (``run.py`` runs them as one long call on a fresh
#: jit); the seven of :data:`WORKLOADS` make up the main tables.
ONE_CALL: dict[str, Workload] = {
    w.name: w
    for w in [
        Workload(
            "collatz",
            "total Collatz steps to reach 1 of every 1 <= i < n, in one call",
            {"full": 1_000_000, "quick": 100_000, "tiny": 3_000},
            "collatz",
            lambda n: (n,),
            py_collatz,
            mir_collatz,
            [_i64],
            _i64,
        ),
    ]
}

#: Every workload by name (the numba worker takes any of them).
ALL: dict[str, Workload] = {**WORKLOADS, **ONE_CALL}


def c_args(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """numpy buffers as raw addresses for ctypes (the arrays stay alive in ``args``)."""
    return tuple(a.ctypes.data if isinstance(a, np.ndarray) else a for a in args)


def same_result(kind: str, got: Any, want: Any) -> bool:
    if kind == "int":
        return isinstance(got, int) and not isinstance(got, bool) and got == want
    return isinstance(got, float) and math.isclose(got, want, rel_tol=1e-12, abs_tol=0.0)


def nbody_check(call: Callable[[np.ndarray, int], float]) -> dict[str, str]:
    """Energies (9 decimals) before and after 1000 steps through one system's ``nbody``."""
    before = call(nbody_bodies(), 0)
    after = call(nbody_bodies(), NBODY_CHECK_STEPS)
    return {"before": f"{before:.9f}", "after_1000": f"{after:.9f}"}


# --------------------------------------------------------------------------- PGO group

MIR_DIR = Path(__file__).resolve().parent.parent / "tests" / "mir"
_M64 = (1 << 64) - 1


def _i64(x: int) -> int:
    x &= _M64
    return x - (1 << 64) if x >> 63 else x


def py_icall(n: int) -> int:
    fs = (lambda x: _i64(x * 3 + 1), lambda x: x ^ 21845, lambda x: _i64(x - 7))
    acc = k = 0
    for i in range(n):
        f = fs[0] if k < 95 else fs[1] if k < 99 else fs[2]
        acc = f(_i64(acc + i))
        k = 0 if k == 99 else k + 1
    return acc


def py_bias(n: int) -> int:
    acc, b = 1, 0
    for i in range(n):
        if i % 100 == 0:
            m = _i64(acc * 31 + i)
            acc = _i64(m * 31 + acc)
        else:
            acc = _i64(acc + ((acc >> 3) ^ i))
            b = _i64(b * 3 + i)
    return acc ^ b


@dataclass(frozen=True)
class PgoWorkload:
    """A workload where a profile matters: MIR from ``tests/mir/<file>``, called as
    ``entry(n)``; the profile comes from one call ``entry(train)``."""

    name: str
    description: str
    file: str
    entry: str
    sizes: dict[str, int]
    train: int
    py: Callable[[int], int] | None = None

    def mir(self) -> rayzor.Module:
        import rayzor

        return rayzor.parse((MIR_DIR / self.file).read_text())


PGO_WORKLOADS: dict[str, PgoWorkload] = {
    w.name: w
    for w in [
        PgoWorkload(
            "vm",
            "switch-dispatch bytecode VM (17 opcodes per iteration), n iterations",
            "bytecode_vm.mir",
            "vm",
            {"full": 3_000_000, "quick": 600_000, "tiny": 60_000},
            10_000,
        ),
        PgoWorkload(
            "icall",
            "calls through a table of 3 function pointers used 95/4/1%, n calls",
            "pgo_icall.mir",
            "icall",
            {"full": 10_000_000, "quick": 2_000_000, "tiny": 200_000},
            10_000,
            py_icall,
        ),
        PgoWorkload(
            "bias",
            "loop with a 99:1 branch (the rare side calls a non-inlined function), n iterations",
            "pgo_branch.mir",
            "bias",
            {"full": 10_000_000, "quick": 2_000_000, "tiny": 200_000},
            10_000,
            py_bias,
        ),
    ]
}
