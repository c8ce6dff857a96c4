#!/usr/bin/env bash
# Browser check of the built book (`make test-browser`; last step of `make test`).
# Installs Debian's chromium when it is missing (needs root, as in CI), then either
#   scripts/browser_check.sh [HTML_DIR]    opens every page of HTML_DIR (default: _build/html) in headless Chromium
#                                          driven by Playwright over a 127.0.0.1-only HTTP server and checks console
#                                          errors, local links and anchors, figures, MathJax typesetting and that
#                                          nothing is fetched from the network; screenshots go to _build/screenshots/;
#   scripts/browser_check.sh --self-test   runs tests/test_browser_check.py: the checker must pass a good tiny site and
#                                          fail a broken one, naming each page and defect.
# Exit status: 0 all pages pass, 1 a page failed, 2 the check could not run.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
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
export CHROMIUM=$chromium
if [ "${1:-}" = "--self-test" ]; then
  PAGS_REQUIRE_BROWSER=1 exec "$py" -m pytest -q -p no:cacheprovider "$here/tests/test_browser_check.py"
fi
html=${1:-$here/_build/html}
if [ ! -f "$html/index.html" ]; then
  echo "browser_check: no built book at $html; run 'make book' first" >&2
  exit 2
fi
exec "$py" "$here/scripts/browser_check.py" --html "$html" --screenshots "$here/_build/screenshots" --chromium "$chromium"
