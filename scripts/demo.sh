#!/usr/bin/env bash
# Build Rayzor and run its main job: the tier-promotion demo.
# Usage: bash scripts/demo.sh [demo flags, see `python -m rayzor demo --help`]
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
ensure_toolchain
ensure_venv
ensure_llvm
build_extension
cd "$ROOT"
python -m rayzor demo "$@"
