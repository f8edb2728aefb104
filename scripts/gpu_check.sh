#!/usr/bin/env bash
# GPU check of the value-lookup kernels, for a fresh CUDA machine; run from anywhere:
#   bash scripts/gpu_check.sh
# 1. a Python with CUDA torch + triton: the one there, else pip install the pins of requirements.txt
# 2. pytest -m gpu tests/test_kernels.py        (compiled kernels: larger shapes, bf16, determinism)
# 3. python -m ultramem_edu.kernels.bench       (full sweep -> kernel_bench.json/.csv)
# 4. pytest -m "not gpu" tests/test_kernels.py  (the CPU-sized tests again, now compiled on CUDA)
# Results and the log go to $OUT if set, else figures/. Budget: about 5 minutes (1-2 of them pip).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${OUT:-figures}"
mkdir -p "$OUT_DIR"
LOG="$OUT_DIR/gpu_check.log"
PY="${PYTHON:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
unset TRITON_INTERPRET   # compiled kernels: the interpreter would test nothing GPU-specific

exec > >(tee "$LOG") 2>&1
status=0
step() {  # step NAME TIMEOUT_S CMD...: run, time, record failure without stopping the others
  local name=$1 limit=$2; shift 2
  echo "=== $name ($(date -u +%T))"
  local t0=$SECONDS
  timeout "$limit" "$@"
  local rc=$?
  echo "=== $name: exit $rc after $((SECONDS - t0)) s"
  [ "$rc" -eq 0 ] || status=1
}

has_cuda_stack() { "$PY" -c "import torch, triton, pytest, hypothesis; assert torch.cuda.is_available()" 2>/dev/null; }
if ! has_cuda_stack; then
  pins=$(grep -E '^(torch|triton|numpy|pytest|hypothesis)==' requirements.txt)
  echo "=== installing: $(echo $pins)"
  # PyPI's Linux torch wheel is the CUDA build (its nvidia-* libraries come as dependencies).
  timeout 240 "$PY" -m pip install --quiet $pins || echo "pip install failed (no network?)"
fi
if ! has_cuda_stack; then
  echo "FAILED: no Python with CUDA torch, triton, pytest and hypothesis (set PYTHON=...)"
  nvidia-smi || true
  exit 2
fi
"$PY" -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__, torch.cuda.get_device_name())"

step "pytest -m gpu" 120 "$PY" -m pytest -q -p no:cacheprovider -m gpu tests/test_kernels.py
step "benchmark" 180 "$PY" -m ultramem_edu.kernels.bench --out-dir "$OUT_DIR"
step "pytest -m 'not gpu' (compiled)" 60 "$PY" -m pytest -q -p no:cacheprovider -m "not gpu" tests/test_kernels.py
echo "=== gpu_check: $([ $status -eq 0 ] && echo PASSED || echo FAILED); results in $OUT_DIR"
exit $status
