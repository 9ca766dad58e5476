"""numba measurements, run in their own process by ``run.py``.

numba bundles its own LLVM and rayzor links LLVM statically; only one LLVM may live in a
process, so this script must never import rayzor (``workloads`` imports it lazily).

    python benches/numba_worker.py <workload> <size> [--repeat N] [--budget S] [--k K]
    python benches/numba_worker.py <workload> <size> --first-call
    python benches/numba_worker.py ident <calls>

``--first-call``: only the first call on a fresh dispatcher (compile included), as
``first_call_ms`` and ``result``.

prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import timing  # noqa: E402
import workloads as W  # noqa: E402

# Plain Python kernels, the same algorithms as benches/c/*.c; njit-ed in main() so the
# cold start (dispatcher creation, first-call compile) can be timed.
nb_fib = None
nb_nbody_offset = nb_nbody_advance = nb_nbody_energy = None


def k_fib(n):
    if n < 2:
        return n
    return nb_fib(n - 1) + nb_fib(n - 2)


def k_loop_sum(n):
    s = 0
    for i in range(n):
        s += i ^ (i >> 3)  # int64, wraps
    return s


def k_mandelbrot(w, h, maxit):
    total = 0
    for py in range(h):
        ci = float(py) * 2.0 / float(h) - 1.0
        for px in range(w):
            cr = float(px) * 3.0 / float(w) - 2.0
            zr = 0.0
            zi = 0.0
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


def k_nbody_energy(b):
    e = 0.0
    for i in range(5):
        oi = 7 * i
        e += 0.5 * b[oi + 6] * (b[oi + 3] * b[oi + 3] + b[oi + 4] * b[oi + 4] + b[oi + 5] * b[oi + 5])
        for j in range(i + 1, 5):
            oj = 7 * j
            dx = b[oi] - b[oj]
            dy = b[oi + 1] - b[oj + 1]
            dz = b[oi + 2] - b[oj + 2]
            e -= b[oi + 6] * b[oj + 6] / math.sqrt(dx * dx + dy * dy + dz * dz)
    return e


def k_nbody_offset(b):
    solar_mass = 4.0 * 3.141592653589793 * 3.141592653589793
    px = 0.0
    py = 0.0
    pz = 0.0
    for i in range(5):
        o = 7 * i
        px += b[o + 3] * b[o + 6]
        py += b[o + 4] * b[o + 6]
        pz += b[o + 5] * b[o + 6]
    b[3] = -px / solar_mass
    b[4] = -py / solar_mass
    b[5] = -pz / solar_mass


def k_nbody_advance(b, steps, dt):
    for _ in range(steps):
        for i in range(5):
            oi = 7 * i
            for j in range(i + 1, 5):
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
        for i in range(5):
            o = 7 * i
            b[o] += dt * b[o + 3]
            b[o + 1] += dt * b[o + 4]
            b[o + 2] += dt * b[o + 5]


def k_nbody(b, steps):
    nb_nbody_offset(b)
    nb_nbody_advance(b, steps, 0.01)
    return nb_nbody_energy(b)


def k_sieve(flags, n):
    if n < 2:
        return 0
    flags[:n] = 1
    flags[0] = 0
    flags[1] = 0
    i = 2
    while i * i < n:
        if flags[i]:
            for j in range(i * i, n, i):
                flags[j] = 0
        i += 1
    count = 0
    for i in range(n):
        count += flags[i]
    return count


def k_matmul(a, b, c, n):
    total = 0.0
    for i in range(n):
        for j in range(n):
            s = 0.0
            for k in range(n):
                s += a[i * n + k] * b[k * n + j]
            c[i * n + j] = s
            total += s
    return total


def k_collatz(n):
    total = 0
    for i in range(1, n):
        x = i
        while x != 1:
            total += 1
            if x & 1:
                x = 3 * x + 1
            else:
                x = x >> 1
    return total


def k_ident(x):
    return x


KERNELS = {
    "fib": k_fib,
    "loop": k_loop_sum,
    "mandelbrot": k_mandelbrot,
    "nbody": k_nbody,
    "sieve": k_sieve,
    "matmul": k_matmul,
    "collatz": k_collatz,
}


def fresh(numba, name):
    """A new, not yet compiled dispatcher for ``name`` (and its helpers)."""
    g = globals()
    if name == "fib":
        g["nb_fib"] = numba.njit(k_fib)
        return g["nb_fib"]
    if name == "nbody":
        g["nb_nbody_offset"] = numba.njit(k_nbody_offset)
        g["nb_nbody_advance"] = numba.njit(k_nbody_advance)
        g["nb_nbody_energy"] = numba.njit(k_nbody_energy)
    return numba.njit(KERNELS[name])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("workload")
    ap.add_argument("size", type=int)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--budget", type=float, default=5.0)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--first-call", action="store_true", help="time one first call only")
    a = ap.parse_args()
    assert "rayzor" not in sys.modules, "numba_worker must not import rayzor"

    t = time.perf_counter()
    import numba

    import_ms = (time.perf_counter() - t) * 1e3
    # Warm numba's compiler on an unrelated function, so the cold start below is a
    # first compile of the kernel, not numba's own lazy initialisation (reported apart).
    t = time.perf_counter()
    numba.njit(lambda x: x + 1)(1)
    init_ms = (time.perf_counter() - t) * 1e3

    if a.workload == "ident":
        f = numba.njit(k_ident)
        f(1)
        print(
            json.dumps(
                {
                    # Median of rounds, as benches/run.py measures rayzor's.
                    "call_overhead_ns": timing.call_overhead_interleaved({"numba": f}, a.size)["numba"],
                    "numba": numba.__version__,
                }
            )
        )
        return

    w = W.ALL[a.workload]
    if a.first_call:
        cumulative, _, results = timing.time_to_result(lambda: fresh(numba, a.workload), [w.args(a.size)])
        out = {"workload": a.workload, "numba": numba.__version__, "first_call_ms": cumulative[0]}
        print(json.dumps({**out, "result": results[0], "import_ms": import_ms, "init_ms": init_ms}))
        return
    arg_sets = [w.args(a.size) for _ in range(a.k)]
    cumulative, each, ttr_results = timing.time_to_result(lambda: fresh(numba, a.workload), arg_sets)

    # Compile time alone, on another fresh dispatcher with the signature given.
    disp = fresh(numba, a.workload)
    sig = tuple(numba.typeof(x) for x in w.args(a.size))
    t = time.perf_counter()
    disp.compile(sig)
    compile_ms = (time.perf_counter() - t) * 1e3
    samples, result = timing.measure(disp, lambda: w.args(a.size), a.repeat, a.budget)
    out = {
        "workload": a.workload,
        "system": "numba",
        "numba": numba.__version__,
        "import_ms": import_ms,
        "init_ms": init_ms,
        "compile_ms": compile_ms,
        "run_ms": timing.median_ms(samples),
        "runs": len(samples),
        "result": result,
        "ttr_ms": cumulative,
        "ttr_call_ms": each,
        "ttr_results": ttr_results,
    }
    if a.workload == "nbody":
        out["nbody_check"] = W.nbody_check(disp)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
