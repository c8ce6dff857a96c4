#!/usr/bin/env bash
# The paper profile, end to end, at tiny size: every chapter that takes a profile is executed by papermill with
# `-p profile paper` on CIFAR-shaped synthetic data (3x32x32, 100 classes, a few hundred images), the model at width
# 1/8, one seed, one epoch
# and a tiny population, on the CPU. It proves that the one-flag GPU path runs; the numbers mean nothing.
# Outputs: _build/paper_smoke/<chapter>.ipynb (and the run store _build/paper_smoke/store, reused by a second run).
# Usage: scripts/paper_smoke.sh [CHAPTER ...]   (default: every chapter below)
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
out=_build/paper_smoke
mkdir -p "$out"
pm=".venv/bin/papermill"
data='{"image_size": 32, "num_classes": 100, "n_train": 200, "n_test": 50}'
common=(-p profile paper -p dataset synthetic -p data_options "$data" -p width 0.125 -p device cpu -p seeds "[0]" -p epochs 1
        -p store "$here/$out/store")
declare -A extra=(
  [itop_correlation]="-p retrain_epochs 1 -p snapshots 3 -p update_interval 1 -p models [\"resnet18\"]"
  [pags]="-p generators [\"snip\",\"erk\"] -p population 2 -p premise_masks 2 -p executor serial"
  [pegs]="-p generators [\"snip\",\"erk\"] -p population 2 -p pretrain_iters [1] -p lth_rounds 2 -p executor serial"
  [custom_architecture]="-p population 2 -p executor serial"
)
chapters=("$@")
[ ${#chapters[@]} -eq 0 ] && chapters=(weighted_metrics itop_correlation pags pegs custom_architecture)
rc=0
for ch in "${chapters[@]}"; do
  start=$(date +%s)
  args=("${common[@]}")
  [ "$ch" = weighted_metrics ] && args=(-p profile paper -p dataset synthetic -p data_options "$data" -p device cpu)
  # shellcheck disable=SC2206
  more=(${extra[$ch]:-})
  if MPLBACKEND= "$pm" "notebooks/$ch.ipynb" "$out/$ch.ipynb" --cwd notebooks "${args[@]}" "${more[@]}" \
      --log-output --no-progress-bar > "$out/$ch.log" 2>&1; then
    echo "paper profile smoke: $ch passed in $(( $(date +%s) - start )) s"
  else
    echo "paper profile smoke: $ch FAILED after $(( $(date +%s) - start )) s; the end of its log ($out/$ch.log):"
    tail -n 40 "$out/$ch.log"
    rc=1
  fi
done
exit $rc
