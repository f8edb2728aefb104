#!/usr/bin/env bash
# Chapter 11's pre-registered evidence suite on the CPU, then the scaling curves at the rates it chose, in
# the background, resumable across sittings: PROCS processes of one thread each (default 2), each taking
# the next run that no other process has claimed (`--shard claim`: a claim file per run under
# checkpoints/exp_<name>/full/, removed when the run ends; a dead process's claim is taken over) and
# starting over until both experiments are complete. A process with nothing left to take while others
# still train goes on to the next experiment, and comes back for any run that becomes free (a run whose
# rate another process was still choosing). Finished runs land in figures/runs/exp_<name>/full/ the
# moment they finish; rerun the script after an interruption and they are reused. The evidence file is
# published as it grows (figures/exp_evidence.json); the scaling file replaces figures/exp_scaling.json
# only once every one of its runs has finished (until then it is written to checkpoints/staging/).
# Publish at any time with
#   python -m ultramem_edu.experiments evidence --collect
# Usage: nohup nice -n 10 scripts/evidence_runs.sh > checkpoints/evidence.log 2>&1 &
set -u
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
PROCS="${PROCS:-2}"
LOG=checkpoints/evidence
STAGE=checkpoints/staging
mkdir -p "$LOG" "$STAGE"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
runs() { ls figures/runs/exp_"$1"/full/*.json 2>/dev/null | wc -l; }
out_of() { if [ "$1" = evidence ]; then echo figures; else echo "$STAGE"; fi; }
complete() {
  "$PY" -m ultramem_edu.experiments "$1" --collect --no-progress --out "$(out_of "$1")" --runs-dir figures/runs \
    2>/dev/null | grep -q "(complete)"
}
for ((i = 0; i < PROCS; i++)); do
  (
    until complete evidence && complete scaling; do
      idle=1
      for name in evidence scaling; do
        while ! complete "$name"; do
          before=$(runs "$name")
          "$PY" -m ultramem_edu.experiments "$name" --resume --no-progress --threads 1 --shard claim \
            --out "$(out_of "$name")" --runs-dir figures/runs
          [ "$(runs "$name")" -gt "$before" ] && { idle=0; continue; }
          # nothing was free for this process: the rest is claimed by others (go on to the next
          # experiment, and come back for runs that become free) or waits on rates others choose
          ls checkpoints/exp_"$name"/full/*.claim > /dev/null 2>&1 && break
          sleep 120
        done
      done
      [ "$idle" = 1 ] && sleep 60                          # others hold every run left: look again later
    done
  ) >> "$LOG/shard$i.log" 2>&1 &
done
wait
"$PY" -m ultramem_edu.experiments scaling --collect --no-progress     # the complete curves, into figures/
echo "evidence suite and scaling curves complete: $(date -u)"
