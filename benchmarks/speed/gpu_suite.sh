#!/usr/bin/env bash
# The GPU measurements of d2sp in one call: about 5 minutes on one H100/H200 (each step has a
# time limit and the whole suite a budget, BUDGET_S, default 560 s). Run from anywhere:
#
#   bash benchmarks/speed/gpu_suite.sh                    # purification mode "paper"
#   bash benchmarks/speed/gpu_suite.sh --mode adaptive    # another mode (any registered one)
#   bash benchmarks/speed/gpu_suite.sh --tiny             # CPU smoke run of every step (~1 minute)
#
# Steps (each one's command, output and exit status go into the report):
#   1. the machine: nvidia-smi, torch/CUDA versions, CPUs, memory, disk;
#   2. the disk's read bandwidth: dd (4 MiB blocks, O_DIRECT) of a freshly written 1 GiB file;
#   3. R18-LSTM trained from disk (the cache `d2sp prepare` makes by default) vs the same model
#      fed from memory, in one run, purification on (target: >= 90% of memory);
#   4. D2SP overhead over plain CE in the same pipeline, every backbone incl. Former-DFER and
#      clip_vit (benchmarks/speed/throughput.py; target: <= 3%);
#   5. Former-DFER trained from disk (target: >= 585 clips/s, 2.5x its public code's 234);
#   6. the NCCL path: torchrun --nproc_per_node=1, a few epochs of a small demo run;
#   7. the purifier's epoch step as N grows (benchmarks/speed/purifier_scale.py --device cuda);
#   8. pytest tests/test_gpu.py (no host-GPU synchronisation in a training step);
#   9. for comparison, step 3 from a raw cache (codec raw, ~12 GB of scratch data).
#
# The report is one Markdown file, gpu_suite_<UTC time>.md, under $OUT if set (a device
# runner copies $OUT back), else benchmarks/results/. Options:
#   --mode MODE      purification mode of steps 3-6 and 9 (default paper)
#   --workers N      loader workers of steps 3, 5 and 9 (default: CPUs - 2)
#   --tiny           small models and data on the CPU (device=cpu): checks that every step runs
# Environment: PYTHON (default python; needs torch with CUDA and d2sp's dependencies),
# BUDGET_S (default 560), TMPDIR (scratch data, removed at the end; up to ~13 GB),
# D2SP_COMMIT (the commit the report names where the tree is a copy without .git).
set -u -o pipefail

MODE=paper
TINY=0
WORKERS=""
while [ $# -gt 0 ]; do
    case "$1" in
        --mode) MODE=$2; shift 2 ;;
        --mode=*) MODE=${1#--mode=}; shift ;;
        --workers) WORKERS=$2; shift 2 ;;
        --workers=*) WORKERS=${1#--workers=}; shift ;;
        --tiny) TINY=1; shift ;;
        -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
        *) echo "gpu_suite.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done

cd "$(dirname "$0")/../.." || exit 2
REPO=$(pwd)
PY=${PYTHON:-python}
export PYTHONPATH="$REPO/src${PYTHONPATH:+:$PYTHONPATH}"
OUTDIR=${OUT:-$REPO/benchmarks/results}
mkdir -p "$OUTDIR"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
if [ "$TINY" = 1 ]; then
    REPORT="$OUTDIR/gpu_suite_tiny_$STAMP.md"
    DEVICE=cpu
else
    REPORT="$OUTDIR/gpu_suite_$STAMP.md"
    DEVICE=cuda
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/d2sp-gpu-suite-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export D2SP_CACHE="$WORK/d2sp-cache"  # SynthDFER of the torchrun step, not in ~/.cache
BUDGET=${BUDGET_S:-560}
START=$(date +%s)
SUMMARY=()
CPUS=$(nproc 2>/dev/null || echo 1)
[ -n "$WORKERS" ] || WORKERS=$(( CPUS > 3 ? CPUS - 2 : 1 ))
TINY_FLAG=()
[ "$TINY" = 1 ] && TINY_FLAG=(--tiny)
RUNS="$WORK/runs"
export PY WORK TINY DEVICE RUNS MODE  # for the steps written as functions

say() { printf '%s\n' "$*" >> "$REPORT"; }

# step TITLE LIMIT_S KIND CMD... : run CMD with a time limit (cut to what is left of the
# budget); KIND md: its stdout is Markdown, text: put in a code block. stderr's tail is kept.
step() {
    local title=$1 limit=$2 kind=$3
    shift 3
    local left=$(( BUDGET - ($(date +%s) - START) ))
    say "## $title"
    say ""
    say "\`$*\`"
    say ""
    if [ "$left" -lt 20 ]; then
        say "Not run: the suite's time budget (${BUDGET} s) is spent."
        say ""
        SUMMARY+=("| $title | not run (budget spent) | – |")
        return
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    echo "[$(date -u +%H:%M:%S)] $title (limit ${limit} s)" >&2
    local t0 rc dt
    t0=$(date +%s)
    if [ "$(type -t "$1")" = function ]; then  # a step written as a function of this script
        timeout --kill-after=10 "$limit" bash -c "$(declare -f "$1"); $1" \
            > "$WORK/stdout" 2> "$WORK/stderr"
    else
        timeout --kill-after=10 "$limit" "$@" > "$WORK/stdout" 2> "$WORK/stderr"
    fi
    rc=$?
    dt=$(( $(date +%s) - t0 ))
    if [ "$kind" = md ]; then
        cat "$WORK/stdout" >> "$REPORT"
    else
        say '```'
        tail -c 20000 "$WORK/stdout" >> "$REPORT"
        say '```'
    fi
    say ""
    local status="exit $rc"
    [ "$rc" = 124 ] || [ "$rc" = 137 ] && status="timed out after ${limit} s (exit $rc)"
    if [ "$rc" != 0 ]; then
        say "**$status**; the end of its stderr:"
        say ""
        say '```'
        tail -n 40 "$WORK/stderr" >> "$REPORT"
        say '```'
        say ""
    fi
    say "($status, ${dt} s)"
    say ""
    SUMMARY+=("| $title | $status | ${dt} s |")
    cat "$WORK/stderr" >> "$WORK/all-stderr"
}

{
    echo "# d2sp GPU suite ($STAMP)"
    echo ""
    echo "\`bash benchmarks/speed/gpu_suite.sh --mode $MODE --workers $WORKERS$([ "$TINY" = 1 ] && echo ' --tiny')\`"
    echo ""
    if [ -n "${D2SP_COMMIT:-}" ]; then
        echo "Commit: $D2SP_COMMIT (as given by D2SP_COMMIT)."
    elif COMMIT=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null); then
        echo "Commit: $COMMIT$(git -C "$REPO" diff --quiet HEAD -- 2>/dev/null ||
            echo ' (with local changes)')."
    else
        echo "Commit: unknown (no git repository here; D2SP_COMMIT names it)."
    fi
    echo "Device: $DEVICE; purification mode: $MODE; loader workers: $WORKERS of $CPUS CPUs."
    echo ""
} > "$REPORT"

machine() {
    echo "GPU:"
    if command -v nvidia-smi > /dev/null; then
        nvidia-smi --query-gpu=name,driver_version,memory.total,power.limit,clocks.max.sm \
            --format=csv,noheader || true
        nvidia-smi || true
    else
        echo "no nvidia-smi on this machine"
    fi
    echo
    "$PY" - <<'EOF'
import platform, torch
print(f"python {platform.python_version()}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"cuDNN {torch.backends.cudnn.version()}, NCCL "
      f"{'.'.join(map(str, torch.cuda.nccl.version())) if torch.cuda.is_available() else '-'}")
for i in range(torch.cuda.device_count()):
    print(f"cuda:{i} {torch.cuda.get_device_name(i)}")
EOF
    echo
    echo "CPUs: $(nproc) ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'))"
    free -g | head -2
    df -h "$WORK" | tail -1
}

disk() {
    local mib=1024
    [ "$TINY" = 1 ] && mib=16
    "$PY" - "$WORK/ddfile" "$mib" <<'EOF'
import os, sys
path, mib = sys.argv[1], int(sys.argv[2])
with open(path, "wb") as f:
    for _ in range(mib // 16):
        f.write(os.urandom(16 << 20))
    f.flush()
    os.fsync(f.fileno())
EOF
    echo "sequential read of a ${mib} MiB file, O_DIRECT (no page cache):"
    dd if="$WORK/ddfile" of=/dev/null bs=4M iflag=direct 2>&1 | tail -1
    echo "the same through the page cache, after POSIX_FADV_DONTNEED:"
    "$PY" -c "import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); os.posix_fadvise(fd,0,0,os.POSIX_FADV_DONTNEED)" "$WORK/ddfile"
    dd if="$WORK/ddfile" of=/dev/null bs=4M 2>&1 | tail -1
    rm -f "$WORK/ddfile"
}

step "Machine" 60 text machine
step "Disk read bandwidth" 60 text disk
step "R18-LSTM trained from disk vs from memory (target: >= 90%)" 150 md \
    "$PY" benchmarks/speed/train_from_disk.py --model r18_lstm --mode "$MODE" --device "$DEVICE" \
    --workers "$WORKERS" --work "$WORK/fromdisk" --target-pct 90 "${TINY_FLAG[@]}"
THROUGHPUT=(--device "$DEVICE" --mode "$MODE" --target-overhead 3)
[ "$TINY" = 1 ] && THROUGHPUT+=(--tiny --steps 4 --warmup 1)
step "D2SP overhead over plain CE, every backbone (target: <= 3%)" 200 md \
    "$PY" benchmarks/speed/throughput.py "${THROUGHPUT[@]}"
step "Former-DFER trained from disk (target: >= 585 clips/s)" 150 md \
    "$PY" benchmarks/speed/train_from_disk.py --model former_dfer --mode "$MODE" --device "$DEVICE" \
    --workers "$WORKERS" --work "$WORK/fromdisk" --target-rate 585 "${TINY_FLAG[@]}"
rm -rf "$WORK/fromdisk"
nccl() {
    # purification mode $MODE with its own defaults (the demo's paper thresholds nulled)
    "$PY" -m torch.distributed.run --standalone --nproc_per_node=1 -m d2sp train -c demo \
        device="$DEVICE" purify.mode="$MODE" purify.lam=null purify.tau=null purify.t=null \
        purify.warmup_epochs=null optim.epochs=8 data.options.num_train=192 \
        data.options.num_test=64 out_dir="$RUNS" name=nccl --overwrite --no-progress || return $?
    "$PY" - "$RUNS/nccl" <<'EOF'
import json, sys
from pathlib import Path
run = Path(sys.argv[1])
rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
print(f"{len(rows)} epochs; last: " + json.dumps({k: rows[-1][k] for k in rows[-1]
      if k in ("epoch", "loss", "war", "uar", "kept", "pruned", "corrected", "seconds")}))
print("summary.json:", (run / "summary.json").read_text()[:600])
EOF
}
step "torchrun --nproc_per_node=1 ($([ "$TINY" = 1 ] && echo gloo || echo NCCL)), a small demo run" 120 text nccl
SIZES=(10000 100000 1000000 10000000)
[ "$TINY" = 1 ] && SIZES=(1000 10000)
step "The purifier's epoch step as N grows" 90 md \
    "$PY" benchmarks/speed/purifier_scale.py --device "$DEVICE" --epochs 3 --sizes "${SIZES[@]}"
step "pytest tests/test_gpu.py" 120 text "$PY" -m pytest -q -p no:cacheprovider tests/test_gpu.py
step "For comparison: R18-LSTM trained from a raw cache (codec raw)" 150 md \
    "$PY" benchmarks/speed/train_from_disk.py --model r18_lstm --mode "$MODE" --device "$DEVICE" \
    --workers "$WORKERS" --work "$WORK/fromdisk-raw" --codec raw --target-pct 90 "${TINY_FLAG[@]}"
rm -rf "$WORK/fromdisk-raw"

{
    echo "## Summary"
    echo ""
    echo "| step | status | time |"
    echo "|---|---|---:|"
    printf '%s\n' "${SUMMARY[@]}"
    echo ""
    echo "Targets met or not: the lines starting with \"target:\" above."
    echo "Suite time: $(( $(date +%s) - START )) s."
} >> "$REPORT"
echo "report: $REPORT" >&2
grep -h "^target:" "$REPORT" >&2 || true
