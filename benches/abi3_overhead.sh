#!/usr/bin/env bash
# Measures what the stable ABI costs per Python -> JIT call: builds an abi3 wheel
# (feature abi3 = pyo3's abi3-py311, where calls go through tp_call, not vectorcall;
# abi3-py310 does not build, the buffer protocol joined the limited API in 3.11) and a per-version wheel for PYTHON, installs each in a fresh venv
# and times the identity i64 function at T3 (benches/timing.call_overhead_ns).
# Usage: bash benches/abi3_overhead.sh [PYTHON]   (default python3; takes ~1 minute)
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
ensure_toolchain
ensure_venv
ensure_llvm
py="$(command -v "${1:-python3}")"
tmp="$(mktemp -d "${TMPDIR:-/tmp}/rayzor-abi3.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
cd "$ROOT"
maturin build --release -q --auditwheel skip -i "$py" -o "$tmp/native" "${CARGO_FEATURE_ARGS[@]}"
maturin build --release -q --auditwheel skip -i "$py" -o "$tmp/abi3" "${CARGO_FEATURE_ARGS[@]}" \
    --features abi3
for kind in native abi3; do
    "$py" -m venv "$tmp/venv-$kind"
    "$tmp/venv-$kind/bin/python" -m pip install -q --no-index --no-deps "$tmp/$kind"/*.whl
done
for round in 1 2 3; do
    for kind in native abi3; do
        (cd "$tmp" && PYTHONPATH="$ROOT/benches" "$tmp/venv-$kind/bin/python" - "$kind" <<'PY')
import sys

import rayzor
import timing

m = rayzor.Module()
f = m.function("ident", [rayzor.i64], rayzor.i64)
f.ret(f.params[0])
with rayzor.TieredJit(m, rayzor.TieredConfig(enable_background_optimization=False)) as jit:
    top = rayzor.TieredJit.top_tier()[0]
    jit.compile("ident", top)
    ns = timing.call_overhead_ns(jit["ident"], 200_000, rounds=15)
print(f"{sys.argv[1]:>6}  Python {sys.version.split()[0]}  {rayzor._rayzor.__file__.rsplit('/', 1)[-1]:<40} {ns:6.1f} ns/call")
PY
    done
done
