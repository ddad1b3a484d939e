#!/usr/bin/env bash
# Render run reports in headless Chromium and save PNG screenshots of them.
#
#   scripts/screenshot_report.sh RUN_DIR OUT.png [WIDTH] [HEIGHT]
#   scripts/screenshot_report.sh --every-mode OUT_DIR [WIDTH] [HEIGHT]
#
# The first form writes RUN_DIR/report.html (as d2sp report does) and then OUT.png (default
# 1400x3000 pixels). The second trains a 4-epoch run of every registered purification mode on
# a tiny SynthDFER (the test suite's, generated under OUT_DIR; about a minute on 2 CPU cores)
# and writes OUT_DIR/report-MODE.png for each. Needs Chromium (Debian: apt-get install -y
# chromium). Python: $PYTHON when set, else the repository's .venv, else python3 on PATH
# (with d2sp importable).
set -euo pipefail

usage="usage: $0 RUN_DIR OUT.png [WIDTH] [HEIGHT]  |  $0 --every-mode OUT_DIR [WIDTH] [HEIGHT]"
if [[ $# -lt 2 ]]; then
    echo "$usage" >&2
    exit 2
fi

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [[ -n "${PYTHON:-}" ]]; then
    python=$PYTHON
elif [[ -x "$here/.venv/bin/python" ]]; then
    python="$here/.venv/bin/python"
else
    python=$(command -v python3 || true)
fi
if [[ -z "$python" ]]; then
    echo "error: no Python found (set PYTHON, create $here/.venv or put python3 on PATH)" >&2
    exit 1
fi
browser=$(command -v chromium || command -v chromium-browser || command -v google-chrome || true)
if [[ -z "$browser" ]]; then
    echo "error: Chromium not found; install it (Debian: apt-get install -y chromium)" >&2
    exit 1
fi

# screenshot HTML OUT.png WIDTH HEIGHT
screenshot() {
    local page=$1 out=$2 profile
    mkdir -p "$(dirname "$out")"
    out="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"
    profile=$(mktemp -d)
    "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --hide-scrollbars --user-data-dir="$profile" --screenshot="$out" \
        --window-size="$3,$4" "file://$page" >/dev/null 2>&1 || true
    rm -rf "$profile"
    if [[ ! -s "$out" ]]; then
        echo "error: Chromium wrote no screenshot to $out" >&2
        return 1
    fi
    echo "$out"
}

if [[ $1 == --every-mode ]]; then
    out_dir=$(mkdir -p "$2" && cd "$2" && pwd)
    width=${3:-1400}
    height=${4:-3000}
    # one line per mode: MODE<TAB>REPORT.html (a mode that cannot train here says why on stderr)
    "$python" - "$here" "$out_dir" <<'PY'
import sys
from pathlib import Path

sys.path.insert(0, sys.argv[1])
from tests.conftest import tiny_config, tiny_mode_overrides  # noqa: E402

from d2sp import list_modes, train  # noqa: E402
from d2sp.data.splits import load_split  # noqa: E402
from d2sp.runs.report import write_report  # noqa: E402

out = Path(sys.argv[2])
listing = open(out / "reports.tsv", "w", encoding="utf-8")
synth = out / "synth"
synth.mkdir(exist_ok=True)
load_split(tiny_config(synth, synth).data, "train", progress=False)  # generated once
for mode in list_modes():
    cfg = tiny_config(out / "runs", synth, f"name={mode}", *tiny_mode_overrides(mode))
    try:
        run = train(cfg, progress=False, overwrite=True)
    except ValueError as e:
        print(f"{mode}: not run here: {e}", file=sys.stderr)
        continue
    print(f"{mode}\t{write_report(run.run_dir)}", file=listing, flush=True)
PY
    while IFS=$'\t' read -r mode page; do
        screenshot "$page" "$out_dir/report-$mode.png" "$width" "$height"
    done < "$out_dir/reports.tsv"
    exit 0
fi

run_dir=$1
out=$2
width=${3:-1400}
height=${4:-3000}
if [[ ! -d "$run_dir" ]]; then
    echo "error: $run_dir: no such folder (expected a run folder)" >&2
    exit 2
fi
page="$(cd "$run_dir" && pwd)/report.html"
"$python" - "$run_dir" "$page" <<'PY'
import sys

from d2sp.runs.folder import RunFolderError
from d2sp.runs.report import write_report

try:
    write_report(sys.argv[1], out=sys.argv[2])
except RunFolderError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
PY
screenshot "$page" "$out" "$width" "$height"
