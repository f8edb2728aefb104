#!/usr/bin/env bash
# The whole chapter-11 CPU suite (about 3 hours on 2 idle cores), as two background processes of one
# thread each, resumable: rerun this script after an interruption and finished runs are reused.
#   process A: lm, then its shares of ladder and facts
#   process B: topology, scaling, then its shares of ladder and facts
# then one pass that trains anything left (lm's seeds at a chosen lr that the other process swept)
# and publishes every figures/exp_<name>.json. Per-run results land in figures/runs/ as they finish.
# Usage: nohup nice -n 5 scripts/cpu_experiments.sh > checkpoints/cpu_suite.log 2>&1 &
set -u
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
LOG=checkpoints/cpu_suite
mkdir -p "$LOG"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
run() { "$PY" -m ultramem_edu.experiments "$@" --resume --no-progress --threads 1; }
(
  run lm
  run ladder --shard 0/2
  run facts --shard 0/2
) > "$LOG/a.log" 2>&1 &
A=$!
(
  run topology
  run scaling
  run ladder --shard 1/2
  run facts --shard 1/2
) > "$LOG/b.log" 2>&1 &
B=$!
echo "suite: process A pid $A (log $LOG/a.log), process B pid $B (log $LOG/b.log)"
wait $A $B
for name in lm scaling ladder facts topology; do run "$name"; done > "$LOG/final.log" 2>&1
echo "suite finished: $(date -u)"
