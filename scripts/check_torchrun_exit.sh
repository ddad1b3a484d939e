#!/usr/bin/env bash
# Exit status of finished two-process runs on the CPU: trains one tiny SynthDFER run under
# torchrun (2 processes, gloo), then resumes a copy of it that lost its last checkpoint N
# times (default 30) and counts the resumes whose exit status is not 0. Prints the count.
#
#     bash scripts/check_torchrun_exit.sh [N] [WORK_DIR]
set -u
n=${1:-30}
work=${2:-$(mktemp -d)}
mkdir -p "$work"
args=(
  "data.options={num_train: 48, num_test: 21, size: 32, min_frames: 4, max_frames: 8, workers: 1}"
  data.num_frames=4 data.size=32 data.workers=0 model.name=vit_lstm
  "model.options={img_size: 32, dim: 32, depth: 2, heads: 4, lstm_hidden: 16}"
  device=cpu optim.epochs=5 optim.batch_size=8 optim.lr=0.05 purify.mode=paper
  purify.warmup_epochs=2 purify.t=2 purify.lam=0.9 purify.tau=0.1
  "data.root=$work/synth" "out_dir=$work"
)
launch=(python -m torch.distributed.run --standalone --nproc_per_node=2 -m d2sp train --no-progress)
export OMP_NUM_THREADS=1
if ! "${launch[@]}" "${args[@]}" name=two > "$work/first.log" 2>&1; then
  echo "the first run failed: $work/first.log"
  exit 1
fi
failed=0
for i in $(seq 1 "$n"); do
  rm -rf "$work/killed" && cp -r "$work/two" "$work/killed" && rm "$work/killed/last.pt"
  if ! "${launch[@]}" --resume "$work/killed" > "$work/resume_$i.log" 2>&1; then
    failed=$((failed + 1))
    echo "resume $i failed: $work/resume_$i.log"
  fi
done
echo "$failed of $n resumed two-process runs exited with a non-zero status ($work)"
