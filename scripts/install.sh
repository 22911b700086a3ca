#!/usr/bin/env bash
# Installs glassformer and what it needs; `--test` adds the test dependencies.
# torch is pinned first so that pip takes the local CPU build instead of a multi-GB CUDA one.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --disable-pip-version-check "torch==2.13.0"
if [[ "${1:-}" == "--test" ]]; then
    # The test extra includes sentencepiece: the opus-mt tests train tiny SentencePiece models and
    # compare with transformers' MarianTokenizer, which needs it (glassformer itself does not).
    python3 -m pip install -q --disable-pip-version-check -e ".[test]"
    # The report tests drive the HTML page in a real headless browser: Debian's chromium through
    # its chromedriver and Selenium (test extra). Nothing downloads a browser; without them the
    # browser tests are skipped.
    if { [[ ! -x /usr/bin/chromium ]] || [[ ! -x /usr/bin/chromedriver ]]; } && command -v apt-get >/dev/null; then
        SUDO=""; [[ "$(id -u)" != 0 ]] && command -v sudo >/dev/null && SUDO="sudo"
        ($SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium chromium-driver) \
            || echo "install.sh: chromium/chromium-driver not installed; the browser tests will be skipped" >&2
    fi
else
    python3 -m pip install -q --disable-pip-version-check -e .
fi
