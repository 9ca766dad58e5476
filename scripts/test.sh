#!/usr/bin/env bash
# Build everything and run every test: cargo tests, then pytest (hypothesis included).
# Usage: bash scripts/test.sh [extra pytest args, e.g. --hypothesis-profile=long]
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
ensure_toolchain
ensure_venv
ensure_llvm
log "lint: cargo fmt, ruff, mypy, clippy"
(cd "$ROOT" && cargo fmt --all --check)
(cd "$ROOT" && ruff check python tests benches examples && ruff format --check python tests benches examples)
(cd "$ROOT/python" && mypy rayzor --ignore-missing-imports)
(cd "$ROOT" && mypy examples --ignore-missing-imports)
# The workspace's default features include llvm (T3) unless ensure_llvm turned it off.
(cd "$ROOT" && cargo clippy --workspace --all-targets "${CARGO_FEATURE_ARGS[@]}" -q -- -D warnings)
log "cargo test"
core_features=()
if [ "${#CARGO_FEATURE_ARGS[@]}" -eq 0 ] && grep -q "^llvm *=" crates/rayzor_core/Cargo.toml; then core_features=(--features llvm); fi
(cd "$ROOT" && cargo test --release -p rayzor_core "${core_features[@]}" -q)
build_extension
cd "$ROOT"
if [ "${RAYZOR_REQUIRE_LLVM:-0}" = "1" ] && ! python -c "import rayzor, sys; sys.exit(not rayzor.llvm_available())"; then
    echo "error: RAYZOR_REQUIRE_LLVM=1 but the built extension has no T3 (LLVM)" >&2
    exit 1
fi
log "stubtest: the stubs match the extension"
python -m mypy.stubtest rayzor._rayzor --allowlist scripts/stubtest-allowlist.txt
log "pytest"
set +e
python -m pytest tests -q "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "error: pytest collected no tests" >&2
    exit 1
fi
exit "$rc"
