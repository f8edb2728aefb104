#!/usr/bin/env bash
# One call on one CUDA GPU (sized for an H200, under 10 minutes): everything chapter 9 and 10 need
# from a GPU, with results under figures/gpu/<device>/.
#
#   bash scripts/gpu_check.sh            # on the GPU machine, from anywhere in the repository
#   bash scripts/gpu_check.sh --dry-run  # on a CPU: the same steps in smoke-test form (what the tests run)
#
# Steps, each with its own time limit inside an overall budget (GPU_CHECK_BUDGET_S, default 540 s),
# in order of importance; a failed or cut step is recorded and the next one still runs:
#   1. pytest -m gpu  tests/test_kernels.py tests/test_kernel_inspect.py
#        compiled kernels vs the float64 reference (fp32, fp16, bf16), the deterministic backward
#        bitwise repeatable under contention, the JIT's own build vs the ahead-of-time inspection
#   2. python -m ultramem_edu.kernels.bench      -> kernel_bench.json/.csv: Triton vs F.embedding_bag vs
#        the torch composition, forward and forward+backward, fp32 and bf16, tables of 2**20 rows (far
#        beyond L2; L2 flushed before every repetition), decode-size batches in microseconds, the
#        measured copy bandwidth and the targets (forward >= 80 % of it at large shapes, forward +
#        backward >= 50 %, faster than F.embedding_bag and the composition everywhere), and the one-pass
#        forward variant's time next to the forward kernel's (onepass_speedup)
#   3. python -m ultramem_edu.benchmarks decode --device cuda   -> bench_decode.json/.csv
#   4. bash scripts/gpu_experiments.sh, if it exists (the chapter-11 GPU suite; GPU_EXPERIMENTS=0 skips
#        it), with what is left of the budget; the files it writes under figures/ and checkpoints/ are
#        copied into <results>/experiments/
#   5. pytest -m "not gpu" tests/test_kernels.py tests/test_kernel_inspect.py  (the CPU-sized tests on
#        compiled kernels; the ahead-of-time inspection under the machine's own triton)
#   6. the summary: versions, device, each step's exit code and time, the targets (printed last)
#
# The Python: $PYTHON, else python3. It must have CUDA torch, triton, pytest and hypothesis; the GPU
# image of this project's device machines has all of them (torch 2.11, triton 3.6 seen there) and no
# network, so nothing is installed. Only the repository is needed (PYTHONPATH is set to it).
#
# Where results go: $RESULTS_DIR if set, else figures/gpu/<device slug>/. When $OUT is set (the
# device machine's return folder, which brings back at most 8 files), the results are written to a
# scratch folder and packed into $OUT/gpu_<slug>.tar.gz, with gpu_check.log and summary.txt beside
# it; unpack into figures/gpu/ here: tar -xzf gpu_<slug>.tar.gz -C figures/gpu/
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
DRY_RUN=0
[ "${1:-}" = "--dry-run" ] && DRY_RUN=1
PY="${PYTHON:-python3}"
BUDGET="${GPU_CHECK_BUDGET_S:-540}"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
T0=$SECONDS

if [ "$DRY_RUN" = 1 ]; then
  export TRITON_INTERPRET=1      # CPU: the kernels run in Triton's interpreter
  SLUG=cpu-dry-run
else
  unset TRITON_INTERPRET         # compiled kernels: the interpreter would test nothing GPU-specific
  if ! "$PY" -c "import torch, triton, pytest, hypothesis; assert torch.cuda.is_available()" 2>/dev/null; then
    echo "FAILED: $PY lacks CUDA torch, triton, pytest or hypothesis (or sees no GPU); set PYTHON=..."
    "$PY" -c "import sys, torch; print(sys.version, torch.__version__, torch.cuda.is_available())" || true
    nvidia-smi || true
    exit 2
  fi
  SLUG=$("$PY" -c "import re, torch; print(re.sub(r'[^a-z0-9]+', '-', torch.cuda.get_device_name().lower()).strip('-'))")
fi

if [ -n "${OUT:-}" ]; then
  SCRATCH=$(mktemp -d)
  RES="${RESULTS_DIR:-$SCRATCH/$SLUG}"
else
  RES="${RESULTS_DIR:-$REPO/figures/gpu/$SLUG}"
fi
mkdir -p "$RES"
LOG="$RES/gpu_check.log"
exec 3>&1 4>&2 > >(tee "$LOG") 2>&1
TEE_PID=$!

STEPS=()
step() {  # step NAME LIMIT_S CMD...: run within min(LIMIT_S, budget left); record exit code and time
  local name=$1 limit=$2; shift 2
  local left=$((BUDGET - (SECONDS - T0)))
  [ "$left" -lt "$limit" ] && limit=$left
  if [ "$limit" -le 5 ]; then
    echo "=== $name: SKIPPED, the budget of $BUDGET s is spent"
    STEPS+=("$name|skipped|0")
    return
  fi
  echo "=== $name (limit $limit s, $(date -u +%T))"
  local t=$SECONDS
  timeout "$limit" "$@"
  local rc=$?
  echo "=== $name: exit $rc after $((SECONDS - t)) s$([ $rc -eq 124 ] && echo ' (TIMED OUT)')"
  STEPS+=("$name|$rc|$((SECONDS - t))")
}

echo "=== gpu_check $([ $DRY_RUN = 1 ] && echo '--dry-run (CPU smoke test, not a measurement)') in $REPO -> $RES"
"$PY" -c "import sys, torch, triton; print('python', sys.version.split()[0], '| torch', torch.__version__, '| cuda', torch.version.cuda, '| triton', triton.__version__, '|', torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU')"
[ "$DRY_RUN" = 0 ] && nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.mem --format=csv
git -C "$REPO" rev-parse HEAD 2>/dev/null | sed 's/^/commit /'

PYTEST=("$PY" -m pytest -q -p no:cacheprovider -o addopts="")
if [ "$DRY_RUN" = 1 ]; then
  # on a CPU the GPU tests are collected and skipped: this checks they import and are selected
  step "pytest -m gpu" 120 "${PYTEST[@]}" -m gpu tests/test_kernels.py tests/test_kernel_inspect.py
  step "kernel benchmark" 120 "$PY" -m ultramem_edu.kernels.bench --quick --out-dir "$RES"
  step "decode benchmark" 120 "$PY" -m ultramem_edu.benchmarks decode --quick --device cpu --out "$RES"
else
  step "pytest -m gpu" 150 "${PYTEST[@]}" -m gpu tests/test_kernels.py tests/test_kernel_inspect.py --junitxml="$RES/pytest_gpu.xml"
  step "kernel benchmark" 240 "$PY" -m ultramem_edu.kernels.bench --out-dir "$RES"
  step "decode benchmark" 90 "$PY" -m ultramem_edu.benchmarks decode --device cuda --budget-s 2 --out "$RES"
fi
if [ -f scripts/gpu_experiments.sh ] && [ "${GPU_EXPERIMENTS:-1}" = 1 ]; then
  if [ "$DRY_RUN" = 1 ]; then
    echo "=== chapter-11 GPU suite: scripts/gpu_experiments.sh exists; not run in a dry run"
    STEPS+=("chapter-11 GPU suite|not run (dry run)|0")
  else
    # its sharded pass gets what is left of the budget but ~150 s for its final pass and step 5
    STAMP=$(mktemp); left=$((BUDGET - (SECONDS - T0)))
    LIMIT=$((left > 300 ? left - 150 : 150)) PYTHON="$PY" step "chapter-11 GPU suite" "$left" bash scripts/gpu_experiments.sh
    # it writes into the repository (figures/exp_*.json, figures/runs/, checkpoints/gpu_suite/): keep what it wrote
    mkdir -p "$RES/experiments"
    find figures checkpoints/gpu_suite -type f -newer "$STAMP" 2>/dev/null | grep -v "^figures/gpu/" \
      | xargs -r cp --parents -t "$RES/experiments"
  fi
else
  echo "=== chapter-11 GPU suite: scripts/gpu_experiments.sh does not exist or GPU_EXPERIMENTS=0; skipped"
  STEPS+=("chapter-11 GPU suite|absent|0")
fi
if [ "$DRY_RUN" = 0 ]; then
  # the CPU-sized tests on compiled kernels, and the inspection compiled in-process under this triton
  step "pytest -m 'not gpu' (compiled)" 120 "${PYTEST[@]}" -m "not gpu" tests/test_kernels.py tests/test_kernel_inspect.py
fi

{
  echo "gpu_check summary ($([ $DRY_RUN = 1 ] && echo 'DRY RUN on a CPU: nothing here is a GPU measurement' || echo "$SLUG")), $(date -u +%FT%TZ), $((SECONDS - T0)) s"
  for s in "${STEPS[@]}"; do IFS='|' read -r name rc secs <<<"$s"; printf '  %-32s exit %-18s %4s s\n' "$name" "$rc" "$secs"; done
} | tee "$RES/summary.txt"
[ -f "$RES/kernel_bench.json" ] && "$PY" -m ultramem_edu.kernels.bench --summary "$RES/kernel_bench.json" | tee -a "$RES/summary.txt"

status=0
for s in "${STEPS[@]}"; do IFS='|' read -r name rc secs <<<"$s"; [[ "$rc" =~ ^[0-9]+$ ]] && [ "$rc" != 0 ] && status=1; done
echo "=== gpu_check: $([ $status -eq 0 ] && echo PASSED || echo FAILED); results in $RES"
exec 1>&3 2>&4                   # end the log: let tee finish before the log is packed
wait "$TEE_PID" 2>/dev/null
if [ -n "${OUT:-}" ]; then
  tar -czf "$OUT/gpu_$SLUG.tar.gz" -C "$(dirname "$RES")" "$(basename "$RES")"
  cp "$RES/summary.txt" "$LOG" "$OUT/"
  echo "=== packed into $OUT/gpu_$SLUG.tar.gz"
  [ -z "${RESULTS_DIR:-}" ] && rm -rf "$SCRATCH"
fi
exit $status
