#!/usr/bin/env bash
# Build the book: execute every notebook (cached by jupyter-cache under _build/.jupyter_cache) and write _build/html.
# Fails (non-zero exit) when any notebook cell raises or Sphinx warns; prints the execution logs of failing notebooks.
# Usage: scripts/build_book.sh [BOOK_DIR]   (default: the repository root)
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
book=${1:-$here}
jb=${JUPYTER_BOOK:-$here/.venv/bin/jupyter-book}
start=$(date +%s)
"$jb" build "$book" -n -W --keep-going
rc=$?
reports="$book/_build/html/reports"
if [ -d "$reports" ] && compgen -G "$reports/*.log" >/dev/null; then
  for log in "$reports"/*.log; do
    echo "=================== notebook execution log: $log"
    cat "$log"
  done
  [ $rc -eq 0 ] && rc=1
fi
echo "book build finished in $(( $(date +%s) - start )) s with exit code $rc"
exit $rc
