#!/usr/bin/env bash
# Build the release wheels, one per CPython 3.10-3.13 found on the machine (per-version
# wheels, not abi3: see README "Wheels"), check each with `auditwheel show`, and
# smoke-test the oldest and newest in fresh virtualenvs outside the source tree.
#
# Usage: bash scripts/wheels.sh
#   RAYZOR_PYTHONS="/path/to/python3.10 /path/to/python3.13"  use these interpreters
#   RAYZOR_WHEEL_TEST=all                                     smoke-test every wheel
#   RAYZOR_WHEEL_DIR=DIR                                      output (default dist/)
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
ensure_toolchain
ensure_venv
ensure_llvm

started=$SECONDS
WHEEL_DIR="${RAYZOR_WHEEL_DIR:-$ROOT/dist}"
TOOLS="${RAYZOR_WHEEL_TOOLS:-$HOME/.cache/rayzor/wheel-tools}"
VERSION="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' "$ROOT/Cargo.toml")"
[ -n "$VERSION" ] || { echo "error: no [workspace.package] version in Cargo.toml" >&2; exit 1; }

# ---------------------------------------------------------------- interpreters
# The newest patch release of each CPython 3.10-3.13 (GIL builds only), found in pyenv,
# the usual system paths and PATH, each one checked by running it.
declare -A PY_BY_MINOR=()
candidates=()
if [ -n "${RAYZOR_PYTHONS:-}" ]; then
    read -r -a candidates <<<"$RAYZOR_PYTHONS"
else
    pyenv_root="${PYENV_ROOT:-$HOME/.pyenv}"
    command -v pyenv >/dev/null 2>&1 && pyenv_root="$(pyenv root)"
    for minor in 13 12 11 10; do
        while IFS= read -r dir; do
            candidates+=("$dir/bin/python3.$minor")
        done < <(ls -d "$pyenv_root"/versions/3."$minor".* 2>/dev/null | sort -rV)
        candidates+=("/usr/bin/python3.$minor" "/usr/local/bin/python3.$minor")
        command -v "python3.$minor" >/dev/null 2>&1 && candidates+=("$(command -v "python3.$minor")")
    done
fi
for py in "${candidates[@]}"; do
    [ -x "$py" ] || continue
    minor="$("$py" - 2>/dev/null <<'PY'
import sys, sysconfig, venv  # noqa: F401  (venv must exist to test the wheel)
ok = sys.implementation.name == "cpython" and not sysconfig.get_config_var("Py_GIL_DISABLED")
if ok and sys.version_info[:2] >= (3, 10) and sys.version_info[:2] <= (3, 13):
    print(sys.version_info[1])
PY
)" || continue
    [ -n "$minor" ] && [ -z "${PY_BY_MINOR[$minor]:-}" ] && PY_BY_MINOR[$minor]="$py"
done
minors=()
for minor in 10 11 12 13; do [ -n "${PY_BY_MINOR[$minor]:-}" ] && minors+=("$minor"); done
if [ "${#minors[@]}" -eq 0 ]; then
    echo "error: no CPython 3.10-3.13 found (looked in ${candidates[*]:-nothing});" \
        "install one (pyenv install 3.13) or set RAYZOR_PYTHONS" >&2
    exit 1
fi
oldest="${minors[0]}"
newest="${minors[-1]}"
[ "$oldest" = "$newest" ] && echo "warning: only CPython 3.$oldest found; testing just that" >&2
interp_args=()
for minor in "${minors[@]}"; do interp_args+=(-i "${PY_BY_MINOR[$minor]}"); done
log "wheels for CPython $(printf '3.%s ' "${minors[@]}")"

# ---------------------------------------------------------------- tools
# patchelf lets maturin bundle libzstd/libffi into the wheel (rayzor.libs/) and tag it
# manylinux; auditwheel checks the result. Both live in a cached venv, not in .venv.
if ! "$TOOLS/bin/python" -c "import auditwheel" >/dev/null 2>&1 || [ ! -x "$TOOLS/bin/patchelf" ]; then
    log "installing auditwheel and patchelf into $TOOLS"
    python3 -m venv "$TOOLS"
    "$TOOLS/bin/python" -m pip install -q "auditwheel>=6,<7" "patchelf>=0.17"
fi

# ---------------------------------------------------------------- build
mkdir -p "$WHEEL_DIR"
rm -f "$WHEEL_DIR"/rayzor-*.whl
t0=$SECONDS
(cd "$ROOT" && PATH="$TOOLS/bin:$PATH" maturin build --release --strip -q -o "$WHEEL_DIR" \
    "${CARGO_FEATURE_ARGS[@]}" "${interp_args[@]}")
build_s=$((SECONDS - t0))

wheel_for() {
    local tag="cp3$1-cp3$1" found=()
    shopt -s nullglob
    found=("$WHEEL_DIR/rayzor-$VERSION-$tag-"*.whl)
    shopt -u nullglob
    [ "${#found[@]}" -eq 1 ] || { echo "error: expected one rayzor-$VERSION-$tag wheel in $WHEEL_DIR" >&2; exit 1; }
    printf '%s\n' "${found[0]}"
}

# ---------------------------------------------------------------- auditwheel
for minor in "${minors[@]}"; do
    whl="$(wheel_for "$minor")"
    name="$(basename "$whl" .whl)"
    platform="${name##*-}"
    log "auditwheel show $(basename "$whl") ($(du -h "$whl" | cut -f1))"
    out="$("$TOOLS/bin/auditwheel" show "$whl")"
    printf '%s\n' "$out"
    flat="$(printf '%s' "$out" | tr '\n' ' ' | tr -s ' ')"
    case "$platform" in
        manylinux_*) ;;
        *) echo "error: $(basename "$whl") is tagged $platform, not manylinux" >&2; exit 1 ;;
    esac
    if [[ "$flat" != *"consistent with the following platform tag: \"$platform\""* ]]; then
        echo "error: auditwheel does not confirm $(basename "$whl") as $platform" >&2
        exit 1
    fi
done

# ---------------------------------------------------------------- smoke test
tmp="$(mktemp -d "${TMPDIR:-/tmp}/rayzor-wheel-test.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
case "$tmp" in "$ROOT"/*) echo "error: the smoke test must run outside $ROOT" >&2; exit 1 ;; esac
cat >"$tmp/smoke.py" <<'PY'
"""Smoke test of an installed rayzor wheel: parse, verify, compile at the top tier, call."""
import os
import sys

import rayzor

root, version, need_t3 = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
where = os.path.realpath(rayzor.__file__)
assert not where.startswith(os.path.realpath(root) + os.sep), f"imported from the source tree: {where}"
assert where.startswith(os.path.realpath(sys.prefix) + os.sep), f"not imported from the venv: {where}"
assert rayzor.__version__ == version, (rayzor.__version__, version)
m = rayzor.parse(open("fib.mir", encoding="utf-8").read())
m.verify()
top, why = rayzor.TieredJit.top_tier()
assert top == rayzor.Tier.T3 or not need_t3, f"no T3 in the wheel: {why}"
with rayzor.TieredJit(m, rayzor.TieredConfig(enable_background_optimization=False)) as jit:
    jit.compile("fib", top)
    assert jit.tier_of("fib") == top
    result = jit["fib"](25)
assert result == 75025, result
print(f"ok: rayzor {rayzor.__version__} on Python {sys.version.split()[0]}: fib(25) = {result} at {top}")
PY
cat >"$tmp/fib.mir" <<'MIR'
fn fib(i64) -> i64 {
block0(v0: i64):
  v1: i64 = const 2
  v2: bool = lt v0, v1
  brif v2, block1, block2
block1:
  ret v0
block2:
  v3: i64 = const 1
  v4: i64 = sub v0, v3
  v5: i64 = call fib(v4)
  v6: i64 = const 2
  v7: i64 = sub v0, v6
  v8: i64 = call fib(v7)
  v9: i64 = add v5, v8
  ret v9
}
MIR
need_t3=1
[ "${#CARGO_FEATURE_ARGS[@]}" -gt 0 ] && need_t3=0
test_minors=("$oldest")
[ "$newest" != "$oldest" ] && test_minors+=("$newest")
[ "${RAYZOR_WHEEL_TEST:-}" = "all" ] && test_minors=("${minors[@]}")
t0=$SECONDS
for minor in "${test_minors[@]}"; do
    whl="$(wheel_for "$minor")"
    venv="$tmp/venv-3.$minor"
    log "smoke test $(basename "$whl") with ${PY_BY_MINOR[$minor]} in $venv"
    "${PY_BY_MINOR[$minor]}" -m venv "$venv"
    "$venv/bin/python" -m pip install -q --no-index --no-deps "$whl"
    (cd "$tmp" && "$venv/bin/python" -I smoke.py "$ROOT" "$VERSION" "$need_t3")
    (cd "$tmp" && "$venv/bin/python" -I -m rayzor check fib.mir)
    (cd "$tmp" && [ "$("$venv/bin/python" -I -m rayzor run fib.mir fib 20 --tier interp 2>/dev/null)" = 6765 ])
done
test_s=$((SECONDS - t0))
log "wheels ok: $(printf '3.%s ' "${minors[@]}")built in ${build_s}s, smoke-tested $(printf '3.%s ' "${test_minors[@]}")in ${test_s}s; $((SECONDS - started))s in all; in $WHEEL_DIR"
