#!/usr/bin/env bash
# The whole chapter-11 CPU suite (eight to ten core-hours: about five hours on 2 idle cores), as two
# background processes of one thread each, resumable: rerun this script after an interruption and
# finished runs are reused. More processes (e.g. ``--shard i/k`` of one experiment) finish no sooner
# on two cores.
#   process A: lm (the longest: ten families, a sweep each), then budget (lm's headline families at twice
#              the characters, at the rates lm chose: about 1 more core-hour)
#   process B: scaling, facts, the ladder, topology
# then one pass that trains anything left and publishes every figures/exp_<name>.json. Per-run results
# land in figures/runs/ as they finish; `python -m ultramem_edu.experiments all --collect` publishes
# what has finished at any time.
# Usage: nohup nice -n 5 scripts/cpu_experiments.sh > checkpoints/cpu_suite.log 2>&1 &
# WAIT_FOR="pid ..." makes process B start only after those processes have ended.
set -u
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
LOG=checkpoints/cpu_suite
mkdir -p "$LOG"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
run() { "$PY" -m ultramem_edu.experiments "$@" --resume --no-progress --threads 1; }
waitfor() { for p in "$@"; do while kill -0 "$p" 2>/dev/null; do sleep 20; done; done; }
if [ -z "${SKIP_A:-}" ]; then
  (
    run lm
    run budget
  ) >> "$LOG/a.log" 2>&1 &
  A=$!
else
  A=""
fi
(
  waitfor ${WAIT_FOR:-}
  run scaling
  run facts
  run ladder
  run topology
) >> "$LOG/b.log" 2>&1 &
B=$!
echo "suite: process A pid ${A:-skipped} (log $LOG/a.log), process B pid $B (log $LOG/b.log)"
waitfor $A $B ${WAIT_A:-}
for name in lm budget scaling ladder facts topology; do run "$name"; done >> "$LOG/final.log" 2>&1
echo "suite finished: $(date -u)"
