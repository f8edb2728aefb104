#!/usr/bin/env bash
# Chapter 11's pre-registered evidence suite on the CPU, in the background, resumable across sittings:
# PROCS processes of one thread each (default 2), each training its shard of the runs and starting over
# until every run it can train has finished (a shard waits while the rates it needs are being chosen by
# another). Finished runs land in figures/runs/exp_evidence/full/ the moment they finish; rerun the
# script after an interruption and they are reused. Publish at any time with
#   python -m ultramem_edu.experiments evidence --collect
# Usage: nohup nice -n 10 scripts/evidence_runs.sh > checkpoints/evidence.log 2>&1 &
set -u
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
PROCS="${PROCS:-2}"
LOG=checkpoints/evidence
mkdir -p "$LOG"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
runs() { ls figures/runs/exp_evidence/full/*.json 2>/dev/null | wc -l; }
complete() { "$PY" -m ultramem_edu.experiments evidence --collect --no-progress 2>/dev/null | grep -q "(complete)"; }
for ((i = 0; i < PROCS; i++)); do
  (
    while ! complete; do
      before=$(runs)
      "$PY" -m ultramem_edu.experiments evidence --resume --no-progress --threads 1 --shard "$i/$PROCS"
      [ "$(runs)" -gt "$before" ] || sleep 120     # nothing of this shard's was ready: wait for the others
    done
  ) >> "$LOG/shard$i.log" 2>&1 &
done
wait
echo "evidence suite complete: $(date -u)"
