# Shared set-up for the project's commands: installs what is missing, idempotently.
# Sourced by scripts/demo.sh, scripts/test.sh and .ci/run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${RAYZOR_VENV:-$ROOT/.venv}"
# Dependencies compile once per machine, not once per clone.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${HOME}/.cache/rayzor/target}"
export LLVM_SYS_191_PREFIX="${LLVM_SYS_191_PREFIX:-/usr/lib/llvm-19}"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

need_cmd() {
    command -v "$1" >/dev/null 2>&1 || { echo "error: '$1' is required but not installed ($2)" >&2; exit 1; }
}

ensure_toolchain() {
    need_cmd cargo "install Rust with rustup: https://rustup.rs"
    need_cmd python3 "install CPython 3.10 or newer"
    need_cmd cc "install a C compiler (gcc or clang)"
}

ensure_venv() {
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating virtualenv $VENV"
        python3 -m venv "$VENV"
    fi
    # shellcheck disable=SC1091
    source "$VENV/bin/activate"
    local want=("maturin>=1.5,<2" "pytest>=7" "hypothesis>=6.100" "numpy>=1.24" "rich>=13" "matplotlib>=3.7"
                "ruff==0.17.6" "mypy==2.4.1")
    if ! python - "${want[@]}" <<'PY' >/dev/null 2>&1
import sys
from importlib.metadata import version
from packaging.requirements import Requirement
for spec in sys.argv[1:]:
    r = Requirement(spec)
    assert r.specifier.contains(version(r.name), prereleases=True), spec
PY
    then
        log "installing Python packages: ${want[*]}"
        python -m pip install -q --upgrade pip packaging
        python -m pip install -q "${want[@]}"
    fi
}

# LLVM 19 for the T3 tier. Without it (and without a way to install it) Rayzor
# builds with T0-T2 only; RAYZOR_NO_LLVM=1 forces that. RAYZOR_REQUIRE_LLVM=1 (set
# by .ci/run) makes a missing LLVM an error instead, so CI cannot pass without T3.
CARGO_FEATURE_ARGS=()
ensure_llvm() {
    local require="${RAYZOR_REQUIRE_LLVM:-0}"
    if [ "${RAYZOR_NO_LLVM:-0}" = "1" ]; then
        if [ "$require" = "1" ]; then
            echo "error: RAYZOR_NO_LLVM=1 (build without T3) contradicts RAYZOR_REQUIRE_LLVM=1 (T3 required); unset one of them" >&2
            exit 1
        fi
        CARGO_FEATURE_ARGS=(--no-default-features)
        return
    fi
    if [ ! -x "$LLVM_SYS_191_PREFIX/bin/llvm-config" ] || [ ! -e "$LLVM_SYS_191_PREFIX/lib/libLLVMCore.a" ]; then
        local sudo=""
        [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && sudo="sudo"
        if command -v apt-get >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || [ -n "$sudo" ]; }; then
            log "installing LLVM 19 development packages"
            if ! { $sudo apt-get update -qq &&
                DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
                    llvm-19-dev libpolly-19-dev libzstd-dev zlib1g-dev >/dev/null; }; then
                echo "warning: installing LLVM 19 with apt-get failed" >&2
            fi
        fi
    fi
    if [ ! -x "$LLVM_SYS_191_PREFIX/bin/llvm-config" ]; then
        if [ "$require" = "1" ]; then
            echo "error: RAYZOR_REQUIRE_LLVM=1 but LLVM 19 is not at LLVM_SYS_191_PREFIX=$LLVM_SYS_191_PREFIX" \
                "(no bin/llvm-config) and could not be installed: the build would have no T3 tier." \
                "Install llvm-19-dev (apt) or point LLVM_SYS_191_PREFIX at an LLVM 19 install." >&2
            exit 1
        fi
        echo "warning: LLVM 19 not found at $LLVM_SYS_191_PREFIX; building without the T3 tier" >&2
        CARGO_FEATURE_ARGS=(--no-default-features)
    fi
}

build_extension() {
    log "building the extension (release) into $VENV"
    (cd "$ROOT" && maturin develop --release -q "${CARGO_FEATURE_ARGS[@]}")
}
