#!/usr/bin/env bash
# Render a run's HTML report in headless Chromium and save a PNG screenshot of it.
#
#   scripts/screenshot_report.sh RUN_DIR OUT.png [WIDTH] [HEIGHT]
#
# Writes RUN_DIR/report.html (as d2sp report does) and then OUT.png (default 1400x3000
# pixels). Needs Chromium (Debian: apt-get install -y chromium). Uses the Python of the
# repository's .venv when there is one, else python3 on PATH (with d2sp installed).
set -euo pipefail

if [[ $# -lt 2 ]]; then
    echo "usage: $0 RUN_DIR OUT.png [WIDTH] [HEIGHT]" >&2
    exit 2
fi
run_dir=$1
out=$2
width=${3:-1400}
height=${4:-3000}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -n "${PYTHON:-}" ]]; then
    python=$PYTHON
elif [[ -x "$here/.venv/bin/python" ]]; then
    python="$here/.venv/bin/python"
else
    python=$(command -v python3 || true)
fi
if [[ -z "$python" ]]; then
    echo "error: no Python found (create $here/.venv or put python3 on PATH)" >&2
    exit 1
fi
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [[ -z "$browser" ]]; then
    echo "error: Chromium not found; install it (Debian: apt-get install -y chromium)" >&2
    exit 1
fi

if [[ ! -d "$run_dir" ]]; then
    echo "error: $run_dir: no such folder (expected a run folder)" >&2
    exit 2
fi
html="$(cd "$run_dir" && pwd)/report.html"
"$python" - "$run_dir" "$html" <<'PY'
import sys

from d2sp.runs.folder import RunFolderError
from d2sp.runs.report import write_report

try:
    write_report(sys.argv[1], out=sys.argv[2])
except RunFolderError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
PY

mkdir -p "$(dirname "$out")"
out_abs="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --hide-scrollbars --user-data-dir="$profile" --screenshot="$out_abs" \
    --window-size="$width,$height" "file://$html" 2>/dev/null
if [[ ! -s "$out_abs" ]]; then
    echo "error: Chromium wrote no screenshot to $out_abs" >&2
    exit 1
fi
echo "$out_abs"
