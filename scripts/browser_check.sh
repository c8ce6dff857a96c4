#!/usr/bin/env bash
# Browser check of the built book (`make test-browser`; last step of `make test`).
# Installs Debian's chromium when it is missing (needs root, as in CI), then opens every page of _build/html in
# headless Chromium over a 127.0.0.1-only HTTP server and checks console errors, local links and anchors, figures,
# MathJax typesetting and that nothing is fetched from the network. Writes screenshots to _build/screenshots/.
# Exit status: 0 all pages pass, 1 a page failed, 2 the check could not run.
# Usage: scripts/browser_check.sh [HTML_DIR]   (default: _build/html)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
html=${1:-$here/_build/html}
py=${PYTHON:-$here/.venv/bin/python}
chromium=${CHROMIUM:-/usr/bin/chromium}

if [ ! -x "$chromium" ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "browser_check: $chromium is missing; install Debian's chromium (apt-get install -y chromium) as root" >&2
    exit 2
  fi
  echo "browser_check: installing Debian's chromium with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi
if [ ! -f "$html/index.html" ]; then
  echo "browser_check: no built book at $html; run 'make book' first" >&2
  exit 2
fi
exec "$py" "$here/scripts/browser_check.py" --html "$html" --screenshots "$here/_build/screenshots" --chromium "$chromium"
