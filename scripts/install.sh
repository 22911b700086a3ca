#!/usr/bin/env bash
# Installs glassformer and what it needs; `--test` adds the test dependencies.
# torch is pinned first so that pip takes the local CPU build instead of a multi-GB CUDA one.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --disable-pip-version-check "torch==2.13.0"
if [[ "${1:-}" == "--test" ]]; then
    python3 -m pip install -q --disable-pip-version-check -e ".[test]"
    # The report tests open the HTML page in a real headless browser (skipped without one).
    if [[ ! -x /usr/bin/chromium ]] && command -v apt-get >/dev/null; then
        (apt-get update -qq && apt-get install -y -qq chromium) \
            || echo "install.sh: chromium not installed; the browser tests will be skipped" >&2
    fi
else
    python3 -m pip install -q --disable-pip-version-check -e .
fi
