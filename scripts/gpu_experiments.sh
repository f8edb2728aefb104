#!/usr/bin/env bash
# The whole chapter-11 suite at GPU scale (--device cuda: D=128, ten times the characters per run) on
# one GPU, in one call. A small model on a GPU is bound by kernel launches, so the runs are spread over
# SHARDS processes that share the GPU; then one pass trains what is left and publishes the results
# (figures/exp_<name>_gpu.json, mode "gpu", with the device name; per-run files in figures/runs/exp_<name>/gpu/).
# Resumable: a second call reuses every finished run. Budget: LIMIT seconds for the sharded pass.
#   scripts/gpu_experiments.sh            (defaults: SHARDS=12, LIMIT=330)
set -u
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
SHARDS="${SHARDS:-12}"
LIMIT="${LIMIT:-330}"
LOG=checkpoints/gpu_suite
"$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device: torch.cuda.is_available() is False')" || exit 2
mkdir -p "$LOG"
export OMP_NUM_THREADS=1
start=$(date +%s)
for ((i = 0; i < SHARDS; i++)); do
  (
    for name in evidence lm scaling ladder topology facts budget; do   # budget last: it needs lm's chosen rates
      left=$(( LIMIT - ($(date +%s) - start) ))
      [ "$left" -gt 5 ] || break
      timeout "$left" "$PY" -m ultramem_edu.experiments "$name" --device cuda --resume --no-progress --shard "$i/$SHARDS"
    done
  ) > "$LOG/shard$i.log" 2>&1 &
done
wait
echo "sharded pass: $(( $(date +%s) - start )) s"
for name in evidence lm scaling ladder topology facts budget; do
  timeout 25 "$PY" -m ultramem_edu.experiments "$name" --device cuda --resume --no-progress \
    || "$PY" -m ultramem_edu.experiments "$name" --device cuda --collect --no-progress
done 2>&1 | grep -v "^$" | tail -n 20
echo "GPU suite: $(( $(date +%s) - start )) s in all; results in figures/exp_*_gpu.json"
