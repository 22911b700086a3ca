#!/usr/bin/env bash
# Installs glassformer and what it needs; `--test` adds the test dependencies.
# torch is pinned first so that pip takes the local CPU build instead of a multi-GB CUDA one.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --disable-pip-version-check "torch==2.13.0"
if [[ "${1:-}" == "--test" ]]; then
    python3 -m pip install -q --disable-pip-version-check -e ".[test]"
else
    python3 -m pip install -q --disable-pip-version-check -e .
fi
