"""Rayzor benchmark suite.

    python benches/run.py [--quick] [--json PATH] [--plot PATH] [--repeat N]

Systems: rayzor at forced tiers (T0, T1, T2, and T3 when this build has LLVM; background
promotion off), rayzor tiered from a cold start (development and production presets),
pure CPython, numba (in a subprocess: numba and rayzor each carry an LLVM, and only one
may live in a process) and C (``cc -O2 -shared -fPIC`` at run time, through ctypes).

The OSR section times one long first call (``loop``, and the one-call ``collatz`` of
``workloads.ONE_CALL``) on a fresh jit under both presets with on-stack replacement on
and off, beside forced-T3 code, and compares steady-state speed with OSR on and off.

Every result is checked against C's; any mismatch, failed compile or crashed worker
prints a banner on stderr and makes the exit status non-zero (after the report).
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import timing  # noqa: E402
import workloads as W  # noqa: E402

import rayzor  # noqa: E402
from rayzor import Tier  # noqa: E402

CC_FLAGS = ["-O2", "-shared", "-fPIC"]
MODES = {
    # repeat, per-system time budget for repeated runs (s), K cold-start calls, overhead calls
    "full": (5, 5.0, 10, 2_000_000),
    "quick": (3, 1.0, 5, 300_000),
    "tiny": (2, 0.2, 3, 50_000),
}
OSR_MODES = {
    # fresh jits (and numba processes) per first-call measurement; steady state: rounds,
    # jits (code placements) per configuration
    "full": (5, 7, 4),
    "quick": (3, 5, 3),
    "tiny": (1, 2, 2),
}
OSR_WORKLOADS = ("loop", "collatz")
#: Tiered steady state vs the best forced tier: interleaved rounds per mode; the
#: steady state is the STEADY_CALL-th call of a cold run; verdict within STEADY_MARGIN.
STEADY_ROUNDS = {"full": 5, "quick": 3, "tiny": 1}
STEADY_CALL = 10
STEADY_MARGIN = 0.05
PGO_MODES = {
    # rounds, jits (code placements) per configuration
    "full": (7, 3),
    "quick": (5, 2),
    "tiny": (2, 1),
}
# (label, tier, profile): no profile, one recorded by the interpreter on the training call
# (`TieredJit.train_profile`), or one the T0 code (the profiling tier) collected running it.
PGO_CONFIGS = [
    ("T1", Tier.T1, None),
    ("T2", Tier.T2, None),
    ("T3", Tier.T3, None),
    ("T2+pgo", Tier.T2, "interp"),
    ("T3+pgo", Tier.T3, "interp"),
    ("T3+pgo(T0)", Tier.T3, "collected"),
]
PRESETS = ("development", "production")


class Bench:
    def __init__(self, mode: str, repeat: int | None, only: list[str] | None) -> None:
        self.mode = mode
        rep, self.budget, self.k, self.overhead_calls = MODES[mode]
        self.repeat = repeat or rep
        self.workloads = [W.WORKLOADS[n] for n in (only or W.WORKLOADS) if n in W.WORKLOADS]
        self.results: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.nbody_check: dict[str, dict[str, str]] = {}
        self.ttr: dict[str, dict[str, Any]] = {}
        self.tmp = Path(tempfile.mkdtemp(prefix="rayzor-bench-"))
        self.c_libs: dict[str, ctypes.CDLL] = {}
        self.c_compile_ms: dict[str, float] = {}
        llvm = getattr(rayzor, "llvm_available", None)
        self.t3 = bool(llvm()) if callable(llvm) else False
        if self.t3:
            self.t3_note = "available"
        elif callable(llvm):
            self.t3_note = f"rayzor.llvm_available() is False ({rayzor.TieredJit.top_tier()[1]})"
        else:
            self.t3_note = f"rayzor.llvm_available() missing ({rayzor.TieredJit.top_tier()[1]})"
        self.tiers = [Tier.T0, Tier.T1, Tier.T2] + ([Tier.T3] if self.t3 else [])
        self.has_numba = importlib.util.find_spec("numba") is not None
        self.only = only

    # ------------------------------------------------------------------ helpers

    def fail(self, msg: str) -> None:
        self.errors.append(msg)
        print(f"!! {msg}", file=sys.stderr, flush=True)

    def log(self, msg: str) -> None:
        print(f"[bench] {msg}", file=sys.stderr, flush=True)

    def record(
        self, w: W.Workload, system: str, compile_ms: float | None, run_ms: float, result: Any, **extra: Any
    ) -> None:
        row = {
            "workload": w.name,
            "system": system,
            "size": w.sizes[self.mode],
            "compile_ms": compile_ms,
            "run_ms": run_ms,
            "result": result,
            **extra,
        }
        c = next((r for r in self.results if r["workload"] == w.name and r["system"] == "c"), None)
        if c is not None:
            ok = W.same_result(w.result_kind, result, c["result"])
            row["matches_c"] = ok
            row["ratio_to_c"] = run_ms / c["run_ms"] if c["run_ms"] > 0 else None
            if not ok:
                self.fail(f"MISMATCH {w.name} / {system}: got {result!r}, C gave {c['result']!r}")
        self.results.append(row)

    def cc(self, name: str, path: Path) -> tuple[ctypes.CDLL, float]:
        if name not in self.c_libs:
            so = self.tmp / f"{name}.so"
            t = time.perf_counter()
            subprocess.run(["cc", *CC_FLAGS, "-o", str(so), str(path), "-lm"], check=True)
            self.c_compile_ms[name] = (time.perf_counter() - t) * 1e3
            self.c_libs[name] = ctypes.CDLL(str(so))
        return self.c_libs[name], self.c_compile_ms[name]

    def check_nbody(self, system: str, call: Any) -> None:
        got = W.nbody_check(call)
        self.nbody_check[system] = got
        if got != W.NBODY_PUBLISHED:
            self.fail(f"n-body energies of {system}: {got}, published {W.NBODY_PUBLISHED}")

    # ------------------------------------------------------------------ systems

    def run_c(self, w: W.Workload, size: int) -> None:
        lib, cc_ms = self.cc(w.name, w.c_path())
        fn = getattr(lib, w.entry)
        fn.argtypes = w.c_argtypes
        fn.restype = w.c_restype
        holder: list[tuple[Any, ...]] = []

        def prepare() -> tuple[Any, ...]:
            holder[:] = [w.args(size)]  # keep the numpy buffers alive during the call
            return W.c_args(holder[0])

        samples, result = timing.measure(fn, prepare, self.repeat, self.budget)
        self.record(w, "c", cc_ms, timing.median_ms(samples), result, runs=len(samples))
        if w.name == "nbody":
            self.check_nbody("c", lambda b, s: fn(W.c_args((b,))[0], s))

    def run_cpython(self, w: W.Workload, size: int) -> None:
        samples, result = timing.measure(w.py, lambda: w.args(size), self.repeat, self.budget)
        self.record(w, "cpython", None, timing.median_ms(samples), result, runs=len(samples))
        if w.name == "nbody":
            self.check_nbody("cpython", W.py_nbody)

    def run_tier(self, w: W.Workload, size: int, tier: Tier) -> None:
        system = f"rayzor-{tier.name}"
        module = w.mir()
        config = rayzor.TieredConfig(enable_background_optimization=False)
        try:
            with rayzor.TieredJit(module, config) as jit:
                totals = []
                for _ in range(3):  # median of three compiles of every function
                    totals.append(sum(jit.compile(name, tier) for name in jit.functions))
                compile_ms = statistics.median(totals) * 1e3
                fn = jit[w.entry]
                samples, result = timing.measure(fn, lambda: w.args(size), self.repeat, self.budget)
                info = jit.info(w.entry)
                self.record(
                    w,
                    system,
                    compile_ms,
                    timing.median_ms(samples),
                    result,
                    runs=len(samples),
                    code_bytes=sum(jit.info(n).code_bytes.get(tier, 0) for n in jit.functions),
                    tier=str(info.tier),
                )
                if w.name == "nbody":
                    self.check_nbody(system, fn)
        except rayzor.RayzorError as e:
            self.fail(f"{w.name} / {system}: {type(e).__name__}: {e}")

    def run_tiered(self, w: W.Workload, size: int, preset: str) -> None:
        system = f"rayzor-tiered-{preset}"
        module = w.mir()
        config = getattr(rayzor.TieredConfig, {"dev": "development", "prod": "production"}[preset])()
        arg_sets = [w.args(size) for _ in range(self.k)]
        box: list[rayzor.TieredJit] = []

        def start() -> Any:
            box.append(rayzor.TieredJit(module, config))
            return box[0][w.entry]

        cumulative, each, results = timing.time_to_result(start, arg_sets)
        jit = box[0]
        try:
            jit.wait_idle(5.0)
            events = jit.events()
            for e in events:
                if not e.ok:
                    self.fail(f"{w.name} / {system}: compile failed: {e.describe()}")
            tiers = {n: str(jit.tier_of(n)) for n in jit.functions}
            compile_ms = sum(e.compile_seconds for e in events if e.ok) * 1e3
            for r in results[:-1]:
                if not W.same_result(w.result_kind, r, results[-1]):
                    self.fail(f"MISMATCH {w.name} / {system}: cold-start results differ: {results}")
            self.record(
                w,
                system,
                compile_ms,
                each[-1],  # the K-th call: where the promoter got to
                results[-1],
                runs=1,
                ttr_ms=cumulative,
                final_tiers=tiers,
                promotions=[e.describe() for e in events if e.reason == "promotion"],
            )
            self.ttr.setdefault(w.name, {})[system] = {"cumulative_ms": cumulative, "call_ms": each}
        finally:
            jit.close()

    def run_numba(self, w: W.Workload, size: int) -> None:
        out = self.numba_worker(
            w.name,
            str(size),
            "--repeat",
            str(self.repeat),
            "--budget",
            str(self.budget),
            "--k",
            str(self.k),
        )
        if out is None:
            return
        for r in out["ttr_results"]:
            if not W.same_result(w.result_kind, r, out["result"]):
                self.fail(f"MISMATCH {w.name} / numba: cold-start results differ: {out['ttr_results']}")
        self.record(
            w,
            "numba",
            out["compile_ms"],
            out["run_ms"],
            out["result"],
            runs=out["runs"],
            ttr_ms=out["ttr_ms"],
            import_ms=out["import_ms"],
            init_ms=out["init_ms"],
        )
        self.ttr.setdefault(w.name, {})["numba"] = {
            "cumulative_ms": out["ttr_ms"],
            "call_ms": out["ttr_call_ms"],
        }
        if "nbody_check" in out:
            self.nbody_check["numba"] = out["nbody_check"]
            if out["nbody_check"] != W.NBODY_PUBLISHED:
                self.fail(f"n-body energies of numba: {out['nbody_check']}, published {W.NBODY_PUBLISHED}")

    def numba_worker(self, *argv: str) -> dict[str, Any] | None:
        cmd = [sys.executable, str(HERE / "numba_worker.py"), *argv]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        if p.returncode != 0:
            self.fail(f"numba worker {' '.join(argv[:2])} failed ({p.returncode}):\n{p.stderr[-2000:]}")
            return None
        return json.loads(p.stdout.strip().splitlines()[-1])

    # ------------------------------------------------------------------ micro

    def call_overhead(self) -> dict[str, float]:
        """ns per identity call from Python: rayzor in each GIL mode (one JitFunction per
        mode; "rayzor" is the default, adaptive), ctypes and a Python function, measured
        interleaved round by round; numba in its worker process."""
        n = self.overhead_calls
        top = self.tiers[-1]
        lib, _ = self.cc("ident", W.C_DIR / "ident.c")
        c = lib.ident
        c.argtypes = [ctypes.c_int64]
        c.restype = ctypes.c_int64

        def ident(x: int) -> int:
            return x

        with rayzor.TieredJit(
            W.mir_ident(), rayzor.TieredConfig(enable_background_optimization=False)
        ) as jit:
            jit.compile("ident", top)
            fns: dict[str, Any] = {}
            for key, mode in (
                ("rayzor", "adaptive"),
                ("rayzor_gil_hold", "hold"),
                ("rayzor_gil_release", "release"),
            ):
                f = jit._core.function("ident")
                f.gil = mode
                fns[key] = f
            fns["ctypes"] = c
            fns["cpython"] = ident
            out = timing.call_overhead_interleaved(fns, n)
        if self.has_numba:
            res = self.numba_worker("ident", str(n))
            if res is not None:
                out["numba"] = res["call_overhead_ns"]
        return out

    def counter_cost(self) -> dict[str, Any]:
        """T1 code counting every call and back-edge (sample_rate=1) against the same
        code compiled without counting code (sample_rate=0)."""
        out: dict[str, Any] = {}
        off = 0
        for name in ("fib", "loop"):
            if name not in {w.name for w in self.workloads}:
                continue
            w = W.WORKLOADS[name]
            size = w.sizes[self.mode]
            jits, fns = [], []
            for rate in (1, off):
                cfg = rayzor.TieredConfig(
                    enable_background_optimization=False,
                    profile_config=rayzor.ProfileConfig(sample_rate=rate),
                )
                jit = rayzor.TieredJit(w.mir(), cfg)
                for fn_name in jit.functions:
                    jit.compile(fn_name, Tier.T1)
                jits.append(jit)
                fns.append(jit[w.entry])
            times: list[list[float]] = [[], []]
            rounds = max(5, self.repeat * 3)
            for k in (0, 1):
                fns[k](*w.args(size))  # warm-up
            for _ in range(rounds):  # interleaved to share the machine's noise
                for k in (0, 1):
                    t = time.perf_counter()
                    fns[k](*w.args(size))
                    times[k].append(time.perf_counter() - t)
            for jit in jits:
                jit.close()
            every, sampled = (statistics.median(t) * 1e3 for t in times)
            every_min, sampled_min = (min(t) * 1e3 for t in times)
            out[name] = {
                "tier": "T1",
                "size": size,
                "rounds": rounds,
                "sample_rate_1_ms": every,
                f"sample_rate_{off}_ms": sampled,
                "overhead_pct": (every / sampled - 1) * 100,
                "sample_rate_1_min_ms": every_min,
                f"sample_rate_{off}_min_ms": sampled_min,
                "overhead_pct_min": (every_min / sampled_min - 1) * 100,
            }
        return out

    def profile_cost(self) -> dict[str, Any]:
        """What collecting profiles (branch, switch, indirect-target and call-site
        counts, issue 12) costs: the same code with and without profile collection at T0
        (the profiling tier) and T1 (which could profile, and does not because of this),
        the call and loop counters as they are, at sample_rate 1 (the development preset)
        and 16 (production); interleaved runs, medians of the calling thread's CPU time
        (the code runs on it; wall time on a shared machine measures the neighbours).
        The workloads, plus the switch-dispatch bytecode VM of tests/mir/bytecode_vm.mir."""
        out: dict[str, Any] = {}
        vm_mir = HERE.parent / "tests" / "mir" / "bytecode_vm.mir"
        vm_n = {"full": 2_000_000, "quick": 500_000, "tiny": 10_000}[self.mode]
        cases: list[tuple[str, Any, str, Any]] = [
            (w.name, w.mir, w.entry, (lambda w=w: w.args(w.sizes[self.mode]))) for w in self.workloads
        ]
        if vm_mir.exists():
            cases.append(("bytecode_vm", lambda: rayzor.parse(vm_mir.read_text()), "vm", lambda: (vm_n,)))
        rounds = max(5, self.repeat * 3)
        for name, mir, entry, args in cases:
            row: dict[str, Any] = {}
            for tier in (Tier.T0, Tier.T1):
                for rate in (1, 16):
                    jits, fns = [], []
                    for collect in (True, False):
                        cfg = rayzor.TieredConfig(
                            enable_background_optimization=False,
                            profile_config=rayzor.ProfileConfig(sample_rate=rate),
                        )
                        jit = rayzor.TieredJit(mir(), cfg)
                        jit._set_profiling_tiers([tier] if collect else [])
                        for fn_name in jit.functions:
                            jit.compile(fn_name, tier)
                        jits.append(jit)
                        fns.append(jit[entry])
                    results = [fns[k](*args()) for k in (0, 1)]  # warm-up, and both agree
                    if results[0] != results[1]:
                        self.errors.append(f"profile cost {name} {tier}: {results[0]} != {results[1]}")
                    times: list[list[float]] = [[], []]
                    for _ in range(rounds):  # interleaved to share the machine's noise
                        for k in (0, 1):
                            a = args()
                            t = time.thread_time()
                            fns[k](*a)
                            times[k].append(time.thread_time() - t)
                    for jit in jits:
                        jit.close()
                    on, off = (statistics.median(t) * 1e3 for t in times)
                    row[f"{tier.name}@{rate}"] = {"profile_ms": on, "no_profile_ms": off, "rounds": rounds}
                    self.log(f"  {name} {tier} sample_rate {rate}: {on:.2f} vs {off:.2f} ms")
            out[name] = row
        return out

    # ------------------------------------------------------------------ OSR

    def c_reference(self, w: W.Workload, size: int) -> tuple[Any, float]:
        """C's result and median run time (ms) for ``w`` at ``size``."""
        lib, _ = self.cc(w.name, w.c_path())
        fn = getattr(lib, w.entry)
        fn.argtypes = w.c_argtypes
        fn.restype = w.c_restype
        samples, result = timing.measure(
            lambda *a: fn(*W.c_args(a)), lambda: w.args(size), self.repeat, self.budget
        )
        return result, timing.median_ms(samples)

    def osr_first_call(self, w: W.Workload, size: int, preset: str, osr: bool) -> dict[str, Any]:
        """One first call on a fresh jit: the clock starts before ``TieredJit(...)`` (the
        initial T0 compile is included, as the OSR events' times count from there)."""
        config = dataclasses.replace(getattr(rayzor.TieredConfig, preset)(), osr=osr)
        module = w.mir()
        args = w.args(size)
        t0 = time.perf_counter()
        jit = rayzor.TieredJit(module, config)
        try:
            fn = jit[w.entry]
            t1 = time.perf_counter()
            result = fn(*args)
            t2 = time.perf_counter()
            jit.wait_idle(10.0)
            events = jit.events()
        finally:
            jit.close()
        for e in events:
            if not e.ok:
                self.fail(f"{w.name} / first call ({preset}, osr={osr}): compile failed: {e.describe()}")
        osr_events = [e for e in events if e.reason == "osr" and e.ok]
        call_end_s = t2 - t0
        t3 = [e.at_seconds for e in osr_events if e.to_tier == Tier.T3 and e.at_seconds <= call_end_s]
        return {
            "first_call_ms": (t2 - t0) * 1e3,
            "call_only_ms": (t2 - t1) * 1e3,
            "result": result,
            # The first OSR entry at T3 published while the call ran (ms since the jit was created).
            "t3_osr_published_ms": min(t3) * 1e3 if t3 else None,
            "osr_events": [
                {
                    "from_tier": str(e.from_tier),
                    "to_tier": str(e.to_tier),
                    "loop_header": e.loop_header,
                    "backedges": e.backedges,
                    "at_ms": e.at_seconds * 1e3,
                    "compile_ms": e.compile_seconds * 1e3,
                    "during_call": e.at_seconds <= call_end_s,
                }
                for e in osr_events
            ],
            "promotions": [e.describe() for e in events if e.reason == "promotion" and e.ok],
        }

    def forced_t3(self, w: W.Workload, size: int) -> dict[str, Any] | None:
        """T3 code compiled up front: the compile (median of three, all functions) and a
        call's run time (median)."""
        if not self.t3:
            return None
        config = rayzor.TieredConfig(enable_background_optimization=False)
        try:
            with rayzor.TieredJit(w.mir(), config) as jit:
                totals = [sum(jit.compile(n, Tier.T3) for n in jit.functions) for _ in range(3)]
                fn = jit[w.entry]
                samples, result = timing.measure(fn, lambda: w.args(size), self.repeat, self.budget)
        except rayzor.RayzorError as e:
            self.fail(f"{w.name} / forced T3: {type(e).__name__}: {e}")
            return None
        return {
            "compile_ms": statistics.median(totals) * 1e3,
            "run_ms": timing.median_ms(samples),
            "runs": len(samples),
            "result": result,
        }

    def numba_first_calls(self, w: W.Workload, size: int, n: int) -> dict[str, Any] | None:
        """numba's first call (dispatcher creation + compile + run), one fresh process each."""
        if not self.has_numba:
            return None
        samples, results = [], []
        for _ in range(n):
            out = self.numba_worker(w.name, str(size), "--first-call")
            if out is None:
                return None
            samples.append(out["first_call_ms"])
            results.append(out["result"])
            version = out["numba"]
        return {
            "first_call_ms": statistics.median(samples),
            "samples_ms": samples,
            "results": results,
            "numba": version,
        }

    def osr_first_calls(self) -> dict[str, Any]:
        n, _, _ = OSR_MODES[self.mode]
        out: dict[str, Any] = {"samples": n, "load_avg_before": os.getloadavg()}
        names = [x for x in OSR_WORKLOADS if self.only is None or x in self.only]
        for name in names:
            w = W.ALL[name]
            size = w.sizes[self.mode]
            self.log(f"OSR first call: {name} (size {size})")
            want, c_ms = self.c_reference(w, size)
            if name in W.ONE_CALL:  # its CPython reference, at the toy size, against C
                tiny = w.sizes["tiny"]
                py, (c_tiny, _) = w.py(*w.args(tiny)), self.c_reference(w, tiny)
                if not W.same_result(w.result_kind, py, c_tiny):
                    self.fail(f"MISMATCH {name} / cpython at {tiny}: got {py!r}, C gave {c_tiny!r}")
            row: dict[str, Any] = {"size": size, "c_run_ms": c_ms, "c_result": want, "configs": {}}
            t3 = self.forced_t3(w, size)
            row["forced_t3"] = t3
            if t3 is not None and not W.same_result(w.result_kind, t3["result"], want):
                self.fail(f"MISMATCH {name} / forced T3: got {t3['result']!r}, C gave {want!r}")
            runs: dict[str, list[dict[str, Any]]] = {}
            for _ in range(n):  # interleaved: every configuration once per round
                for preset in PRESETS:
                    for osr in (True, False):
                        key = f"{preset}/osr={'on' if osr else 'off'}"
                        r = self.osr_first_call(w, size, preset, osr)
                        if not W.same_result(w.result_kind, r["result"], want):
                            self.fail(
                                f"MISMATCH {name} / first call {key}: got {r['result']!r}, C gave {want!r}"
                            )
                        runs.setdefault(key, []).append(r)
            for key, rs in runs.items():
                pub = [r["t3_osr_published_ms"] for r in rs if r["t3_osr_published_ms"] is not None]
                row["configs"][key] = {
                    "first_call_ms": statistics.median(r["first_call_ms"] for r in rs),
                    "call_only_ms": statistics.median(r["call_only_ms"] for r in rs),
                    "samples_ms": [r["first_call_ms"] for r in rs],
                    # Median over the runs in which a T3 OSR entry was published in time.
                    "t3_osr_published_ms": statistics.median(pub) if pub else None,
                    "t3_osr_published_in": f"{len(pub)}/{len(rs)}",
                    "runs": rs,
                }
                self.log(f"  {key}: {row['configs'][key]['first_call_ms']:.1f} ms")
            nb = self.numba_first_calls(w, size, n)
            row["numba"] = nb if nb is not None else "numba is not installed (pip install numba)"
            if nb is not None:
                for r in nb["results"]:
                    if not W.same_result(w.result_kind, r, want):
                        self.fail(f"MISMATCH {name} / numba first call: got {r!r}, C gave {want!r}")
            row["ratio"], row["beats_numba"] = {}, {}
            for preset in PRESETS:
                on = row["configs"][f"{preset}/osr=on"]
                pub = on["t3_osr_published_ms"]
                row["ratio"][preset] = (
                    on["first_call_ms"] / (t3["run_ms"] + pub) if t3 is not None and pub is not None else None
                )
                row["beats_numba"][preset] = None if nb is None else on["first_call_ms"] < nb["first_call_ms"]
            out[name] = row
        out["load_avg_after"] = os.getloadavg()
        return out

    def osr_steady_state(self) -> dict[str, Any]:
        """The six workloads at T0-T2, compiled with OSR points (``osr=True``) and without,
        background promotion off. Each configuration is compiled into several jits (code
        placement alone moves a small loop's time by up to 2.5x: the same bytes at another
        address), and every round runs all of them, on and off alternating; the figure is
        the median over all runs of a configuration."""
        _, rounds, placements = OSR_MODES[self.mode]
        out: dict[str, Any] = {
            "rounds": rounds,
            "placements": placements,
            "load_avg_before": os.getloadavg(),
            "rows": [],
        }
        for w in self.workloads:
            size = w.sizes[self.mode]
            self.log(f"OSR steady state: {w.name} (size {size})")
            for tier in (Tier.T0, Tier.T1, Tier.T2):
                jits: list[rayzor.TieredJit] = []
                fns: list[tuple[bool, Any]] = []
                times: list[list[float]] = []
                results: list[Any] = []
                try:
                    for k in range(2 * placements):
                        osr = k % 2 == 0
                        cfg = rayzor.TieredConfig(enable_background_optimization=False, osr=osr)
                        jit = rayzor.TieredJit(w.mir(), cfg)
                        jits.append(jit)
                        for fn_name in jit.functions:
                            jit.compile(fn_name, tier)
                        fns.append((osr, jit[w.entry]))
                        times.append([])
                    results = [fn(*w.args(size)) for _, fn in fns]  # warm-up
                    for r in range(rounds):
                        order = range(len(fns)) if r % 2 == 0 else reversed(range(len(fns)))
                        for k in order:
                            args = w.args(size)
                            t = time.perf_counter()
                            results[k] = fns[k][1](*args)
                            times[k].append(time.perf_counter() - t)
                except rayzor.RayzorError as e:
                    self.fail(f"{w.name} / OSR steady state at {tier}: {type(e).__name__}: {e}")
                    continue
                finally:
                    for jit in jits:
                        jit.close()
                for r in results[1:]:
                    if not W.same_result(w.result_kind, r, results[0]):
                        self.fail(f"MISMATCH {w.name} at {tier}: OSR on/off results differ: {results}")
                on_t = [t for (osr, _), ts in zip(fns, times, strict=True) if osr for t in ts]
                off_t = [t for (osr, _), ts in zip(fns, times, strict=True) if not osr for t in ts]
                on, off = statistics.median(on_t) * 1e3, statistics.median(off_t) * 1e3

                # Per placement: the best round (preemption by other load only adds time).
                per = [(osr, min(ts) * 1e3) for (osr, _), ts in zip(fns, times, strict=True)]
                on_p = statistics.median(m for osr, m in per if osr)
                off_p = statistics.median(m for osr, m in per if not osr)
                out["rows"].append(
                    {
                        "workload": w.name,
                        "tier": str(tier),
                        "size": size,
                        "osr_on_ms": on,
                        "osr_off_ms": off,
                        "diff_pct": (on / off - 1) * 100,
                        "osr_on_best_ms": on_p,
                        "osr_off_best_ms": off_p,
                        "diff_best_pct": (on_p / off_p - 1) * 100,
                        "osr_on_best_by_placement_ms": [m for osr, m in per if osr],
                        "osr_off_best_by_placement_ms": [m for osr, m in per if not osr],
                    }
                )
        out["load_avg_after"] = os.getloadavg()
        return out

    def tiered_steady_state(self) -> dict[str, Any]:
        """Per workload, interleaved rounds of: one call of each forced tier's code (jits
        compiled once, warmed up) and one cold run of STEADY_CALL calls per preset, with
        the tier policy on (the default) and off (demotion_margin_pct=0, the behaviour
        before it); the steady state is the last call of the cold run. Medians of rounds."""
        rounds = STEADY_ROUNDS[self.mode]
        presets = {
            "dev": rayzor.TieredConfig.development(),
            "prod": rayzor.TieredConfig.production(),
        }
        variants = {**presets}
        for name, c in presets.items():
            variants[f"{name}-nopolicy"] = dataclasses.replace(c, demotion_margin_pct=0)
        out: dict[str, Any] = {}
        for w in self.workloads:
            size = w.sizes[self.mode]
            module = w.mir()
            forced: dict[str, Any] = {}
            jits = []
            try:
                for t in self.tiers:
                    jit = rayzor.TieredJit(module, rayzor.TieredConfig(enable_background_optimization=False))
                    jits.append(jit)
                    for name in jit.functions:
                        jit.compile(name, t)
                    forced[t.name] = jit[w.entry]
                    forced[t.name](*w.args(size))  # warm-up
                samples: dict[str, list[float]] = {k: [] for k in [*forced, *variants]}
                demoted: dict[str, list[str]] = {k: [] for k in variants}
                final: dict[str, list[str]] = {k: [] for k in variants}
                for _ in range(rounds):
                    for t, fn in forced.items():
                        args = w.args(size)
                        t0 = time.perf_counter()
                        fn(*args)
                        samples[t].append((time.perf_counter() - t0) * 1e3)
                    for v, config in variants.items():
                        box: list[rayzor.TieredJit] = []

                        def start(
                            config: rayzor.TieredConfig = config,
                            box: list[rayzor.TieredJit] = box,
                            module: rayzor.Module = module,
                            entry: str = w.entry,
                        ) -> Any:
                            box.append(rayzor.TieredJit(module, config))
                            return box[0][entry]

                        arg_sets = [w.args(size) for _ in range(STEADY_CALL)]
                        try:
                            _, each, _ = timing.time_to_result(start, arg_sets)
                            samples[v].append(each[-1])
                            ev = box[0].events()
                            demoted[v] += [e.describe() for e in ev if e.reason == "demoted"]
                            final[v].append(str(box[0].tier_of(w.entry)))
                        finally:
                            if box:
                                box[0].close()
            except rayzor.RayzorError as e:
                self.fail(f"{w.name} / tiered steady state: {type(e).__name__}: {e}")
                continue
            finally:
                for jit in jits:
                    jit.close()
            med = {k: statistics.median(v) for k, v in samples.items() if v}
            best = min(forced, key=lambda t: med[t])
            row: dict[str, Any] = {
                "size": size,
                "rounds": rounds,
                "ms": med,
                "best_tier": best,
                "best_ms": med[best],
                "ratio": {v: med[v] / med[best] for v in variants},
                "entry_tier": final,
                "demotions": demoted,
            }
            row["within"] = {v: row["ratio"][v] <= 1 + STEADY_MARGIN for v in variants}
            out[w.name] = row
            self.log(
                f"  {w.name}: best {best} {fmt_ms(med[best])} ms; "
                + ", ".join(f"{v} {fmt_ms(med[v])} ({row['ratio'][v]:.3f}x)" for v in variants)
            )
        return out

    def pgo(self) -> dict[str, Any]:
        """The PGO workloads (``workloads.PGO_WORKLOADS``) at T1, T2 and T3 without a
        profile, and at T2/T3 with the profile of one training call (``entry(train)``):
        recorded by the interpreter, or collected by the function's own T0 code. Each
        configuration is compiled into several jits (code placement), every round runs all
        of them in alternating order; the figure is the median over all runs."""
        rounds, placements = PGO_MODES[self.mode]
        configs = [c for c in PGO_CONFIGS if self.t3 or c[1] != Tier.T3]
        out: dict[str, Any] = {
            "rounds": rounds,
            "placements": placements,
            "load_avg_before": os.getloadavg(),
            "rows": [],
        }
        for w in W.PGO_WORKLOADS.values():
            size = w.sizes[self.mode]
            self.log(f"PGO: {w.name} (size {size})")
            jits: list[rayzor.TieredJit] = []
            fns: list[tuple[str, Any]] = []
            try:
                for _ in range(placements):
                    for label, tier, profile in configs:
                        cfg = rayzor.TieredConfig(enable_background_optimization=False, osr=False)
                        jit = rayzor.TieredJit(w.mir(), cfg)
                        jits.append(jit)
                        if profile == "interp":
                            jit.train_profile(w.entry, [(w.train,)])
                        elif profile == "collected":
                            for name in jit.functions:
                                jit.compile(name, Tier.T0)
                            jit[w.entry](w.train)
                        for name in jit.functions:
                            jit.compile(name, tier)
                        fns.append((label, jit[w.entry]))
                want = fns[0][1](size)
                for label, fn in fns:
                    got = fn(size)
                    if got != want:
                        self.fail(f"MISMATCH PGO {w.name} {label}: {got} != {want}")
                times: dict[str, list[float]] = {label: [] for label, _, _ in configs}
                for r in range(rounds):
                    for label, fn in fns if r % 2 == 0 else fns[::-1]:
                        t = time.perf_counter()
                        fn(size)
                        times[label].append(time.perf_counter() - t)
            except rayzor.RayzorError as e:
                self.fail(f"PGO {w.name}: {type(e).__name__}: {e}")
                continue
            finally:
                for jit in jits:
                    jit.close()
            row: dict[str, Any] = {"workload": w.name, "size": size, "description": w.description}
            row["ms"] = {label: statistics.median(ts) * 1e3 for label, ts in times.items()}
            if w.py is not None:
                t = time.perf_counter()
                got = w.py(size)
                row["ms"]["cpython"] = (time.perf_counter() - t) * 1e3
                if got != want:
                    self.fail(f"MISMATCH PGO {w.name} cpython: {got} != {want}")
            ms = row["ms"]
            if "T3" in ms:
                row["pgo_speedup_t3"] = ms["T3"] / ms["T3+pgo"]
                row["pgo_speedup_t3_collected"] = ms["T3"] / ms["T3+pgo(T0)"]
            row["pgo_speedup_t2"] = ms["T2"] / ms["T2+pgo"]
            out["rows"].append(row)
        ups = [r["pgo_speedup_t3"] for r in out["rows"] if "pgo_speedup_t3" in r]
        if ups:
            out["geomean_t3"] = statistics.geometric_mean(ups)
            out["geomean_t3_collected"] = statistics.geometric_mean(
                r["pgo_speedup_t3_collected"] for r in out["rows"]
            )
        out["load_avg_after"] = os.getloadavg()
        return out

    # ------------------------------------------------------------------ driver

    def run(self, osr_only: bool = False, pgo_only: bool = False) -> dict[str, Any]:
        if pgo_only:
            return {
                "mode": self.mode,
                "machine": machine(),
                "results": [],
                "pgo": self.pgo(),
                "errors": self.errors,
            }
        for w in [] if osr_only else self.workloads:
            size = w.sizes[self.mode]
            self.log(f"{w.name} (size {size})")
            self.run_c(w, size)
            self.log(f"  c: {self.results[-1]['run_ms']:.3f} ms -> {self.results[-1]['result']}")
            steps: list[tuple[str, Any]] = [(f"rayzor-{t.name}", (self.run_tier, t)) for t in self.tiers]
            steps += [("rayzor-tiered-dev", (self.run_tiered, "dev"))]
            steps += [("rayzor-tiered-prod", (self.run_tiered, "prod"))]
            steps += [("cpython", (self.run_cpython,))]
            if self.has_numba and w.name != "vm":  # no numba kernel for the bytecode VM
                steps += [("numba", (self.run_numba,))]
            for label, (fn, *extra) in steps:
                n_before = len(self.results)
                fn(w, size, *extra)
                if len(self.results) > n_before:
                    r = self.results[-1]
                    self.log(f"  {label}: {r['run_ms']:.3f} ms -> {r['result']}")
        overhead: dict[str, float] = {}
        counters: dict[str, Any] = {}
        profiles: dict[str, Any] = {}
        if not osr_only:
            self.log("call overhead")
            overhead = self.call_overhead()
            self.log("counter cost")
            counters = self.counter_cost()
            self.log("profile cost")
            profiles = self.profile_cost()
        steady: dict[str, Any] = {}
        if not osr_only:
            self.log("tiered steady state vs forced tiers")
            steady = self.tiered_steady_state()
        osr = {"first_call": self.osr_first_calls(), "steady_state": self.osr_steady_state()}
        pgo = {} if osr_only else self.pgo()
        systems = ["c"] + [f"rayzor-{t.name}" for t in self.tiers]
        systems += ["rayzor-tiered-dev", "rayzor-tiered-prod", "cpython"] + (
            ["numba"] if self.has_numba else []
        )
        return {
            "mode": self.mode,
            "machine": machine(),
            "systems": systems,
            "workloads": {
                w.name: {"size": w.sizes[self.mode], "description": w.description} for w in self.workloads
            },
            "t3": self.t3_note,
            "results": self.results,
            "call_overhead_ns": overhead,
            "counter_cost": counters,
            "profile_cost": profiles,
            "osr": osr,
            "tiered_steady_state": steady,
            "pgo": pgo,
            "time_to_result": {"k": self.k, "ms": self.ttr},
            "nbody_check": {"published": W.NBODY_PUBLISHED, "steps": W.NBODY_CHECK_STEPS, **self.nbody_check},
            "c_flags": CC_FLAGS,
            "errors": self.errors,
        }


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    cc = subprocess.run(["cc", "--version"], capture_output=True, text=True).stdout.splitlines()
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "memory": mem,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cc": cc[0] if cc else "",
        "load_avg": os.getloadavg(),
    }


# ---------------------------------------------------------------------- output


def fmt_ms(x: float | None) -> str:
    if x is None:
        return "-"
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def markdown_pgo(pgo: dict[str, Any]) -> list[str]:
    if not pgo.get("rows"):
        return []
    labels = [c[0] for c in PGO_CONFIGS if any(c[0] in r["ms"] for r in pgo["rows"])]
    lines = [
        f"## Profile-guided T2/T3, ms (median of {pgo['rounds']} rounds x {pgo['placements']} jits; "
        f"load average {fmt_load(pgo['load_avg_before'])} before, {fmt_load(pgo['load_avg_after'])} after)",
        "",
        "+pgo: compiled with the profile the interpreter recorded on one training call; "
        "+pgo(T0): with the profile the function's T0 code collected on that call. "
        "Speedup: T3 / T3+pgo.",
        "",
        "| workload | size | " + " | ".join(labels) + " | cpython | speedup T3 | speedup T3 (T0 profile) |",
        "|---" * (len(labels) + 5) + "|",
    ]
    for r in pgo["rows"]:
        ms = r["ms"]
        cells = [fmt_ms(ms.get(label)) for label in labels]
        up = r.get("pgo_speedup_t3")
        upc = r.get("pgo_speedup_t3_collected")
        lines.append(
            f"| {r['workload']} | {r['size']:,} | " + " | ".join(cells) + f" | {fmt_ms(ms.get('cpython'))} "
            f"| {'-' if up is None else f'{up:.2f}x'} | {'-' if upc is None else f'{upc:.2f}x'} |"
        )
    if "geomean_t3" in pgo:
        lines += [
            "",
            f"Geometric mean of the T3 speedups: {pgo['geomean_t3']:.2f}x "
            f"(T0-collected profiles: {pgo['geomean_t3_collected']:.2f}x).",
        ]
    lines.append("")
    return lines


def markdown(rep: dict[str, Any]) -> str:
    if not rep["results"] and "pgo" in rep and "osr" not in rep:  # --pgo-only
        return "\n".join(markdown_pgo(rep["pgo"]))
    if not rep["results"]:  # --osr-only
        return "\n".join(markdown_osr(rep["osr"]))
    systems = rep["systems"]
    by = {(r["workload"], r["system"]): r for r in rep["results"]}
    wl = list(rep["workloads"])
    lines = [f"## Run time, ms (median; ratio to C) — mode `{rep['mode']}`", ""]
    lines.append("| workload | size | " + " | ".join(systems) + " |")
    lines.append("|---" * (len(systems) + 2) + "|")
    for w in wl:
        cells = []
        for s in systems:
            r = by.get((w, s))
            if r is None:
                cells.append("n/a")
                continue
            ratio = r.get("ratio_to_c")
            mark = "" if r.get("matches_c", True) else " **MISMATCH**"
            cells.append(
                fmt_ms(r["run_ms"]) + ("" if s == "c" or ratio is None else f" ({ratio:.2f}x)") + mark
            )
        lines.append(f"| {w} | {rep['workloads'][w]['size']:,} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        f"T3 (LLVM): {rep['t3']}. Tiered columns: the last of the "
        f"{rep['time_to_result']['k']} calls of the cold-start run."
    )
    lines.append("")

    comp = [s for s in systems if s.startswith("rayzor-T")] + ["numba", "c"]
    comp = [s for s in comp if s in systems]
    lines += ["## Compile time, ms (all functions of the workload; numba: explicit compile; c: cc)", ""]
    lines.append("| workload | " + " | ".join(comp) + " |")
    lines.append("|---" * (len(comp) + 1) + "|")
    for w in wl:
        cells = [fmt_ms(by[(w, s)]["compile_ms"]) if (w, s) in by else "n/a" for s in comp]
        lines.append(f"| {w} | " + " | ".join(cells) + " |")
    lines.append("")

    k = rep["time_to_result"]["k"]
    ttr_sys = [s for s in ("rayzor-tiered-dev", "rayzor-tiered-prod", "numba") if s in systems]
    lines += [f"## Time to result from a cold start, ms (first call / all {k} calls)", ""]
    lines.append("| workload | " + " | ".join(ttr_sys) + " | C run x" + str(k) + " |")
    lines.append("|---" * (len(ttr_sys) + 2) + "|")
    for w in wl:
        cells = []
        for s in ttr_sys:
            t = rep["time_to_result"]["ms"].get(w, {}).get(s)
            cells.append(
                "n/a" if t is None else f"{fmt_ms(t['cumulative_ms'][0])} / {fmt_ms(t['cumulative_ms'][-1])}"
            )
        c = by.get((w, "c"))
        lines.append(f"| {w} | " + " | ".join(cells) + f" | {fmt_ms(c['run_ms'] * k) if c else 'n/a'} |")
    lines.append("")

    ov = rep["call_overhead_ns"]
    if ov:
        lines += [
            "## Python-to-native call overhead, ns per call (identity i64 -> i64; rayzor: gil=adaptive, "
            "the default, and hold/release; median of interleaved rounds, numba in its own process)",
            "",
        ]
        lines.append("| " + " | ".join(ov) + " |")
        lines.append("|---" * len(ov) + "|")
        lines.append("| " + " | ".join(f"{v:.0f}" for v in ov.values()) + " |")
        lines.append("")

    if rep["counter_cost"]:
        lines += [
            "## Profiling counters at T1: counting (sample_rate=1) vs compiled out (sample_rate=0) "
            "(median / min of interleaved runs), ms",
            "",
        ]
        lines.append("| workload | counters | no counters | overhead (median) | overhead (min) |")
        lines.append("|---|---|---|---|---|")
        for w, c in rep["counter_cost"].items():
            huge = c["sample_rate_0_ms"]
            huge_min = c["sample_rate_0_min_ms"]
            lines.append(
                f"| {w} | {fmt_ms(c['sample_rate_1_ms'])} / {fmt_ms(c['sample_rate_1_min_ms'])} "
                f"| {fmt_ms(huge)} / {fmt_ms(huge_min)} "
                f"| {c['overhead_pct']:+.1f}% | {c['overhead_pct_min']:+.1f}% |"
            )
        lines.append("")

    lines += markdown_steady(rep.get("tiered_steady_state") or {})
    lines += markdown_profile_cost(rep.get("profile_cost", {}))
    lines += markdown_osr(rep["osr"])
    lines += markdown_pgo(rep.get("pgo", {}))

    nb = rep["nbody_check"]
    checked = {s: v for s, v in nb.items() if s not in ("published", "steps")}
    if checked:
        lines += [f"## n-body energies (before / after {nb['steps']} steps)", ""]
        lines.append(f"- published: {nb['published']['before']} / {nb['published']['after_1000']}")
        for s, v in checked.items():
            lines.append(f"- {s}: {v['before']} / {v['after_1000']}")
        lines.append("")
    return "\n".join(lines)


def markdown_steady(ss: dict[str, Any]) -> list[str]:
    if not ss:
        return []
    variants = ["dev", "prod", "dev-nopolicy", "prod-nopolicy"]
    lines = [
        f"## Tiered steady state ({STEADY_CALL}th call of a cold run) vs the best forced tier, ms "
        f"(median of interleaved rounds; ratio to the best tier; ok: within {STEADY_MARGIN:.0%})",
        "",
        "`-nopolicy`: `demotion_margin_pct=0`, promotion only ever goes up (the behaviour before the "
        "never-slower policy). Entry tier: the tier of the entry function after the run, per round.",
        "",
    ]
    lines.append("| workload | best forced | " + " | ".join(variants) + " | entry tier dev / prod |")
    lines.append("|---" * (len(variants) + 3) + "|")
    for w, r in ss.items():
        cells = []
        for v in variants:
            ok = "ok" if r["within"][v] else "**SLOWER**"
            cells.append(f"{fmt_ms(r['ms'][v])} ({r['ratio'][v]:.2f}x, {ok})")
        tiers = f"{' '.join(r['entry_tier']['dev'])} / {' '.join(r['entry_tier']['prod'])}"
        lines.append(
            f"| {w} | {r['best_tier']} {fmt_ms(r['best_ms'])} | " + " | ".join(cells) + f" | {tiers} |"
        )
    lines.append("")
    dem = [(w, v, d) for w, r in ss.items() for v in ("dev", "prod") for d in r["demotions"][v]]
    if dem:
        lines += ["Demotions by the tier policy in these runs:", ""]
        lines += [f"- {w} ({v}): {d}" for w, v, d in dem]
        lines.append("")
    return lines


def fmt_pct(x: float) -> str:
    return f"{x:+.1f}%"


def markdown_profile_cost(pc: dict[str, Any]) -> list[str]:
    """The profile-collection cost table (``Bench.profile_cost``)."""
    if not pc:
        return []
    lines: list[str] = []
    lines += [
        "## Profile collection: with vs without, ms (median CPU time of interleaved runs)",
        "",
        "Branch, switch, indirect-target and call-site profiles (issue 12) at T0 (the "
        "profiling tier) and T1 (not profiling by default); counters as they are, sampled "
        "1 in sample_rate (1: development preset, 16: production); profiles count every event.",
        "",
    ]
    keys = ["T0@1", "T0@16", "T1@1", "T1@16"]
    lines.append("| workload | " + " | ".join(f"{k.replace('@', ' rate ')}" for k in keys) + " |")
    lines.append("|---" * (len(keys) + 1) + "|")
    for w, row in pc.items():
        cells = []
        for k in keys:
            c = row[k]
            on, off = c["profile_ms"], c["no_profile_ms"]
            cells.append(f"{fmt_ms(on)} vs {fmt_ms(off)} ({(on / off - 1) * 100:+.1f}%)")
        lines.append(f"| {w} | " + " | ".join(cells) + " |")
    lines.append("")
    return lines


def markdown_osr(osr: dict[str, Any]) -> list[str]:
    fc = osr["first_call"]
    lines = [
        f"## OSR: one long first call on a fresh jit, ms (median of {fc['samples']} fresh jits; "
        f"load average {fmt_load(fc['load_avg_before'])} before, {fmt_load(fc['load_avg_after'])} after)",
        "",
        "First call: from `TieredJit(...)` (initial T0 compile included) to the call's return. "
        "T3 OSR entry: when the first T3 OSR entry was published, ms since the jit was created. "
        "Forced T3: every function compiled at T3 first, then a call timed. "
        "Ratio: first call with OSR / (forced-T3 run + T3 OSR entry published); target <= 1.3. "
        "numba: dispatcher creation + first call (compile included), a fresh process each.",
        "",
        "| workload | size | preset | first call, OSR on | first call, OSR off | T3 OSR entry at "
        "| forced-T3 run | T3 compile | ratio | numba first call | beats numba | C run |",
        "|---" * 12 + "|",
    ]
    for name, row in fc.items():
        if not isinstance(row, dict):
            continue
        t3 = row["forced_t3"]
        nb = row["numba"]
        for preset in PRESETS:
            on = row["configs"][f"{preset}/osr=on"]
            off = row["configs"][f"{preset}/osr=off"]
            pub = on["t3_osr_published_ms"]
            ratio = row["ratio"][preset]
            beats = row["beats_numba"][preset]
            lines.append(
                f"| {name} | {row['size']:,} | {preset} | {fmt_ms(on['first_call_ms'])} "
                f"| {fmt_ms(off['first_call_ms'])} "
                f"| {'-' if pub is None else fmt_ms(pub)} ({on['t3_osr_published_in']}) "
                f"| {fmt_ms(t3['run_ms']) if t3 else 'n/a'} | {fmt_ms(t3['compile_ms']) if t3 else 'n/a'} "
                f"| {'-' if ratio is None else f'{ratio:.2f}x'} "
                f"| {fmt_ms(nb['first_call_ms']) if isinstance(nb, dict) else 'n/a'} "
                f"| {'n/a' if beats is None else 'yes' if beats else 'no'} | {fmt_ms(row['c_run_ms'])} |"
            )
    notes = {row["numba"] for row in fc.values() if isinstance(row, dict) and isinstance(row["numba"], str)}
    lines += [""] + [f"numba: {n}." for n in sorted(notes)] + ([""] if notes else [])
    ss = osr["steady_state"]
    lines += [
        "## OSR: steady state with OSR points compiled in (osr=True) vs not (osr=False), ms",
        "",
        f"{ss['rounds']} interleaved rounds over {ss['placements']} jits per configuration (code "
        "placements), on and off alternating. *median*: of all runs of a configuration; *best*: "
        "the median over placements of each placement's best round (other load only adds "
        "time; placement moves small loops a lot), also listed per placement. Load average "
        f"{fmt_load(ss['load_avg_before'])} before, {fmt_load(ss['load_avg_after'])} after. "
        "Target: within 2%.",
        "",
        "| workload | tier | on: median / best | off: median / best | difference (median) "
        "| difference (best) | on, best by placement | off, best by placement |",
        "|---" * 8 + "|",
    ]
    for r in ss["rows"]:

        def by(xs: list[float]) -> str:
            return ", ".join(fmt_ms(x) for x in xs)

        lines.append(
            f"| {r['workload']} | {r['tier']} | {fmt_ms(r['osr_on_ms'])} / {fmt_ms(r['osr_on_best_ms'])} "
            f"| {fmt_ms(r['osr_off_ms'])} / {fmt_ms(r['osr_off_best_ms'])} "
            f"| {fmt_pct(r['diff_pct'])} | {fmt_pct(r['diff_best_pct'])} "
            f"| {by(r['osr_on_best_by_placement_ms'])} | {by(r['osr_off_best_by_placement_ms'])} |"
        )
    lines.append("")
    return lines


def fmt_load(load: Any) -> str:
    return " / ".join(f"{x:.2f}" for x in load)


def plot(rep: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = [s for s in rep["systems"]]
    wl = list(rep["workloads"])
    by = {(r["workload"], r["system"]): r for r in rep["results"]}
    fig, ax = plt.subplots(figsize=(13, 5.5))
    width = 0.8 / len(systems)
    cmap = plt.get_cmap("tab10")
    for i, s in enumerate(systems):
        xs, ys = [], []
        for j, w in enumerate(wl):
            r = by.get((w, s))
            if r is not None and r["run_ms"] > 0:
                xs.append(j + (i - (len(systems) - 1) / 2) * width)
                ys.append(r["run_ms"])
        ax.bar(xs, ys, width, label=s, color=cmap(i % 10))
    ax.set_yscale("log")
    lo, hi = ax.get_ylim()
    ax.set_ylim(lo, hi * 10)  # headroom for the legend
    ax.set_xticks(range(len(wl)))
    ax.set_xticklabels([f"{w}\n({rep['workloads'][w]['size']:,})" for w in wl])
    ax.set_ylabel("run time, ms (log scale, lower is better)")
    ax.set_title(f"Rayzor benchmarks ({rep['mode']}): median run time per system")
    ax.legend(ncol=5, fontsize=8, loc="upper left")
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller sizes, whole run under 2 minutes")
    ap.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--json", metavar="PATH", help="write the full report as JSON")
    ap.add_argument("--plot", metavar="PATH", help="write a PNG bar chart of run times")
    ap.add_argument("--repeat", type=int, metavar="N", help="runs per measurement (median)")
    ap.add_argument("--only", help=argparse.SUPPRESS)  # comma-separated workloads, for debugging
    ap.add_argument("--osr-only", action="store_true", help=argparse.SUPPRESS)  # the OSR section alone
    # the tiered-steady-state section alone
    ap.add_argument("--steady-only", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--pgo-only", action="store_true", help=argparse.SUPPRESS)  # the PGO section alone
    a = ap.parse_args()
    mode = "tiny" if a.tiny else "quick" if a.quick else "full"
    only = a.only.split(",") if a.only else None
    if shutil.which("cc") is None:
        print("benches/run.py needs a C compiler as `cc`", file=sys.stderr)
        return 2
    bench = Bench(mode, a.repeat, only)
    t0 = time.perf_counter()
    if a.steady_only:
        ss = bench.tiered_steady_state()
        print("\n".join(markdown_steady(ss)))
        if a.json:
            Path(a.json).write_text(
                json.dumps({"machine": machine(), "tiered_steady_state": ss}, indent=1) + "\n"
            )
        return 1 if bench.errors else 0
    rep = bench.run(osr_only=a.osr_only, pgo_only=a.pgo_only)
    rep["wall_s"] = time.perf_counter() - t0
    print(markdown(rep))
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(rep, indent=1) + "\n")
    if a.plot:
        Path(a.plot).parent.mkdir(parents=True, exist_ok=True)
        plot(rep, a.plot)
    shutil.rmtree(bench.tmp, ignore_errors=True)
    if rep["errors"]:
        bar = "!" * 78
        print(f"\n{bar}\nBENCHMARK FAILED: {len(rep['errors'])} error(s)", file=sys.stderr)
        for e in rep["errors"]:
            print(f"  - {e}", file=sys.stderr)
        print(bar, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
